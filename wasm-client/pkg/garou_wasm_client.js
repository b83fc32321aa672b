/* @ts-self-types="./garou_wasm_client.d.ts" */
import { garouError } from './snippets/garou-wasm-client-87a56fb6e2fa2073/inline0.js';


/**
 * A connection to a Garou gateway. Create it with `GarouClient.connect(options)`.
 */
export class GarouClient {
    static __wrap(ptr) {
        const obj = Object.create(GarouClient.prototype);
        obj.__wbg_ptr = ptr;
        GarouClientFinalization.register(obj, obj.__wbg_ptr, obj);
        return obj;
    }
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        GarouClientFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_garouclient_free(ptr, 0);
    }
    /**
     * Close the client for good: no reconnect. Requests in flight reject with
     * `Disconnected`, queued commands with `Closed`; `disconnected` (if connected) and
     * `closed` events follow.
     */
    close() {
        wasm.garouclient_close(this.__wbg_ptr);
    }
    /**
     * Connect to a gateway; resolves once the session is ready (handshake done).
     * @param {ConnectOptions} [options]
     * @returns {Promise<GarouClient>}
     */
    static connect(options) {
        const ret = wasm.garouclient_connect(options);
        return ret;
    }
    /**
     * Create a room and join it as its owner.
     * @param {string} room
     * @param {"group" | "channel"} kind
     * @returns {Promise<JoinInfo>}
     */
    createRoom(room, kind) {
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(kind, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_createRoom(this.__wbg_ptr, ptr0, len0, ptr1, len1);
        return ret;
    }
    /**
     * Delete a room and its history.
     * @param {string} room
     * @returns {Promise<void>}
     */
    deleteRoom(room) {
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.garouclient_deleteRoom(this.__wbg_ptr, ptr0, len0);
        return ret;
    }
    /**
     * Delete a message.
     * @param {string} room
     * @param {number} id
     * @returns {Promise<void>}
     */
    delete(room, id) {
        const val2 = +id;
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.garouclient_delete(this.__wbg_ptr, ptr0, len0, val2);
        return ret;
    }
    /**
     * Direct message to a user by nick; resolves with the direct room once acked.
     * @param {string} toNick
     * @param {string} text
     * @returns {Promise<SentInfo>}
     */
    direct(toNick, text) {
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(toNick, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(text, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_direct(this.__wbg_ptr, ptr0, len0, ptr1, len1);
        return ret;
    }
    /**
     * Replace the text of a message.
     * @param {string} room
     * @param {number} id
     * @param {string} text
     * @returns {Promise<void>}
     */
    edit(room, id, text) {
        const val3 = +id;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(text, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_edit(this.__wbg_ptr, ptr0, len0, val3, ptr1, len1);
        return ret;
    }
    /**
     * A page of a room's history, oldest first: at most `limit` (default 50) messages
     * with offsets below `before` and above `after`; without `after` the newest such
     * messages (paging back), with `after` the oldest (paging forward).
     * @param {string} room
     * @param {HistoryOptions} [options]
     * @returns {Promise<HistoryPage>}
     */
    history(room, options) {
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.garouclient_history(this.__wbg_ptr, ptr0, len0, options);
        return ret;
    }
    /**
     * Add a user to a room as a member.
     * @param {string} room
     * @param {string} nick
     * @returns {Promise<void>}
     */
    invite(room, nick) {
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(nick, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_invite(this.__wbg_ptr, ptr0, len0, ptr1, len1);
        return ret;
    }
    /**
     * Join a room (a group room that does not exist yet is created).
     * @param {string} room
     * @returns {Promise<JoinInfo>}
     */
    join(room) {
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.garouclient_join(this.__wbg_ptr, ptr0, len0);
        return ret;
    }
    /**
     * Leave a room.
     * @param {string} room
     * @returns {Promise<void>}
     */
    leave(room) {
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.garouclient_leave(this.__wbg_ptr, ptr0, len0);
        return ret;
    }
    /**
     * Rooms visible to us.
     * @returns {Promise<RoomInfo[]>}
     */
    listRooms() {
        const ret = wasm.garouclient_listRooms(this.__wbg_ptr);
        return ret;
    }
    /**
     * Members of a room.
     * @param {string} room
     * @returns {Promise<MemberInfo[]>}
     */
    listUsers(room) {
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.garouclient_listUsers(this.__wbg_ptr, ptr0, len0);
        return ret;
    }
    /**
     * Tell a message's author we received it (they get a `receipt` event).
     * @param {string} room
     * @param {number} id
     */
    markDelivered(room, id) {
        const val2 = +id;
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        wasm.garouclient_markDelivered(this.__wbg_ptr, ptr0, len0, val2);
    }
    /**
     * Tell a message's author we read it (they get a `receipt` event with `read: true`).
     * @param {string} room
     * @param {number} id
     */
    markRead(room, id) {
        const val2 = +id;
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        wasm.garouclient_markRead(this.__wbg_ptr, ptr0, len0, val2);
    }
    /**
     * Moderate a member: `action` is "kick", "mute" (for `secs`, 0 = until unmuted),
     * "unmute", "ban" or "unban"; the room sees a `member_moderated` event.
     * @param {string} room
     * @param {string} nick
     * @param {string} action
     * @param {number} secs
     * @param {string} reason
     * @returns {Promise<void>}
     */
    moderate(room, nick, action, secs, reason) {
        const val5 = +secs;
        let ptr0, len0, ptr1, len1, ptr2, len2, ptr3, len3;
        try {
            ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(nick, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passStringToWasm0(action, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len2 = WASM_VECTOR_LEN;
            ptr3 = passStringToWasm0(reason, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len3 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr3) { wasm.__wbindgen_free(ptr3, len3 * 1, 1); }
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_moderate(this.__wbg_ptr, ptr0, len0, ptr1, len1, ptr2, len2, val5, ptr3, len3);
        return ret;
    }
    /**
     * Our current nick (the last known one while reconnecting).
     * @returns {string}
     */
    get nick() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.garouclient_nick(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * Remove a listener added with `on` or `once`.
     * @param {any} a
     * @param {Function | null} [b]
     */
    off(a, b) {
        const ret = wasm.garouclient_off(this.__wbg_ptr, a, isLikeNone(b) ? 0 : addToExternrefTable0(b));
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Add a listener: `on(listener)` for every event, `on(type, listener)` for one type.
     * Events emitted before the first listener was added are delivered in a microtask
     * to the listeners added by then.
     * @param {any} a
     * @param {Function | null} [b]
     */
    on(a, b) {
        const ret = wasm.garouclient_on(this.__wbg_ptr, a, isLikeNone(b) ? 0 : addToExternrefTable0(b));
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Like `on`, for one call only.
     * @param {any} a
     * @param {Function | null} [b]
     */
    once(a, b) {
        const ret = wasm.garouclient_once(this.__wbg_ptr, a, isLikeNone(b) ? 0 : addToExternrefTable0(b));
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Commands waiting to be sent (while disconnected, or paced).
     * @returns {number}
     */
    get queued() {
        const ret = wasm.garouclient_queued(this.__wbg_ptr);
        return ret >>> 0;
    }
    /**
     * Add (`add` true) or remove a reaction.
     * @param {string} room
     * @param {number} id
     * @param {string} emoji
     * @param {boolean} add
     * @returns {Promise<void>}
     */
    react(room, id, emoji, add) {
        const val3 = +id;
        const val4 = +add;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(emoji, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_react(this.__wbg_ptr, ptr0, len0, val3, ptr1, len1, val4);
        return ret;
    }
    /**
     * While waiting out a reconnect delay: attempt now (e.g. when the browser reports
     * that it is online again). Does nothing in any other state.
     */
    reconnectNow() {
        wasm.garouclient_reconnectNow(this.__wbg_ptr);
    }
    /**
     * Set a room's display title.
     * @param {string} room
     * @param {string} title
     * @returns {Promise<void>}
     */
    renameRoom(room, title) {
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(title, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_renameRoom(this.__wbg_ptr, ptr0, len0, ptr1, len1);
        return ret;
    }
    /**
     * Post a message, optionally with an attachment (the id of a completed upload of
     * ours, e.g. from `POST /api/uploads`); resolves when the server acked it.
     * @param {string} room
     * @param {string} text
     * @param {string | null} [attachment]
     * @returns {Promise<SentInfo>}
     */
    send(room, text, attachment) {
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(text, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = isLikeNone(attachment) ? 0 : passStringToWasm0(attachment, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.garouclient_send(this.__wbg_ptr, ptr0, len0, ptr1, len1, ptr2, len2);
        return ret;
    }
    /**
     * Change our nick; resolves with the nick the server accepted.
     * @param {string} nick
     * @returns {Promise<string>}
     */
    setNick(nick) {
        const ptr0 = passStringToWasm0(nick, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.garouclient_setNick(this.__wbg_ptr, ptr0, len0);
        return ret;
    }
    /**
     * Where the client is: "connecting", "connected", "reconnecting" or "closed".
     * @returns {ConnectionState}
     */
    get state() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.garouclient_state(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * This session's ticket for the gateway's HTTP uploads and downloads
     * (`/api/uploads?ticket=`, `/api/uploads/{id}?ticket=`), valid while the connection
     * lives (a reconnect brings a new one); empty until the server's welcome arrived.
     * @returns {string}
     */
    get ticket() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.garouclient_ticket(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * The transport in use (of the last connection while reconnecting).
     * @returns {TransportKind}
     */
    get transport() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.garouclient_transport(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * Tell the room we are typing (an unreliable datagram).
     * @param {string} room
     */
    typing(room) {
        const ptr0 = passStringToWasm0(room, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        wasm.garouclient_typing(this.__wbg_ptr, ptr0, len0);
    }
    /**
     * The gateway origin of the current (or last) connection.
     * @returns {string}
     */
    get url() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.garouclient_url(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * Our user id.
     * @returns {number}
     */
    get userId() {
        const ret = wasm.garouclient_userId(this.__wbg_ptr);
        return ret;
    }
}
if (Symbol.dispose) GarouClient.prototype[Symbol.dispose] = GarouClient.prototype.free;
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        __wbg_Error_208446807d0d1e30: function(arg0, arg1) {
            const ret = Error(getStringFromWasm0(arg0, arg1));
            return ret;
        },
        __wbg_String_8564e559799eccda: function(arg0, arg1) {
            const ret = String(arg1);
            const ptr1 = passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        },
        __wbg___wbindgen_boolean_get_4f1baf9a00be3c74: function(arg0) {
            const v = arg0;
            const ret = typeof(v) === 'boolean' ? v : undefined;
            return isLikeNone(ret) ? 0xFFFFFF : ret ? 1 : 0;
        },
        __wbg___wbindgen_debug_string_f249a2a76caa9a55: function(arg0, arg1) {
            const ret = debugString(arg1);
            const ptr1 = passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        },
        __wbg___wbindgen_in_3f58a9d3b3a7eed2: function(arg0, arg1) {
            const ret = arg0 in arg1;
            return ret;
        },
        __wbg___wbindgen_is_function_741ff2bb612836f5: function(arg0) {
            const ret = typeof(arg0) === 'function';
            return ret;
        },
        __wbg___wbindgen_is_null_c22311b1cc228e3a: function(arg0) {
            const ret = arg0 === null;
            return ret;
        },
        __wbg___wbindgen_is_object_8b968c3ab8e96595: function(arg0) {
            const val = arg0;
            const ret = typeof(val) === 'object' && val !== null;
            return ret;
        },
        __wbg___wbindgen_is_undefined_be5b34249ff1fc15: function(arg0) {
            const ret = arg0 === undefined;
            return ret;
        },
        __wbg___wbindgen_jsval_eq_38d7bfbe4cc84039: function(arg0, arg1) {
            const ret = arg0 === arg1;
            return ret;
        },
        __wbg___wbindgen_jsval_loose_eq_b2f214e2e4b30e36: function(arg0, arg1) {
            const ret = arg0 == arg1;
            return ret;
        },
        __wbg___wbindgen_number_get_934b640d0889af78: function(arg0, arg1) {
            const obj = arg1;
            const ret = typeof(obj) === 'number' ? obj : undefined;
            getDataViewMemory0().setFloat64((arg0 >>> 0) + 8 * 1, isLikeNone(ret) ? 0 : ret, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, !isLikeNone(ret), true);
        },
        __wbg___wbindgen_string_get_7ce8eee7fd327545: function(arg0, arg1) {
            const obj = arg1;
            const ret = typeof(obj) === 'string' ? obj : undefined;
            var ptr1 = isLikeNone(ret) ? 0 : passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            var len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        },
        __wbg___wbindgen_throw_4c88d8bf264fd984: function(arg0, arg1) {
            throw new Error(getStringFromWasm0(arg0, arg1));
        },
        __wbg__wbg_cb_unref_09736879a3f67559: function(arg0) {
            arg0._wbg_cb_unref();
        },
        __wbg_call_40b008ba32f73991: function() { return handleError(function (arg0, arg1) {
            const ret = arg0.call(arg1);
            return ret;
        }, arguments); },
        __wbg_call_a410eb4b59ed5965: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = arg0.call(arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_call_fc92fee6137d452d: function() { return handleError(function (arg0, arg1, arg2, arg3) {
            const ret = arg0.call(arg1, arg2, arg3);
            return ret;
        }, arguments); },
        __wbg_clearTimeout_8f4ac001d09661cc: function(arg0) {
            clearTimeout(arg0);
        },
        __wbg_close_2a8b1ba07b9e0fee: function() { return handleError(function (arg0, arg1, arg2, arg3) {
            arg0.close(arg1, getStringFromWasm0(arg2, arg3));
        }, arguments); },
        __wbg_close_9d698d13861ccfb3: function(arg0, arg1) {
            arg0.close(arg1);
        },
        __wbg_close_cee6fa489413fa4f: function(arg0) {
            arg0.close();
        },
        __wbg_closed_f2ee72b975853f0b: function(arg0) {
            const ret = arg0.closed;
            return ret;
        },
        __wbg_code_3e6881d821eab2c4: function(arg0) {
            const ret = arg0.code;
            return ret;
        },
        __wbg_createBidirectionalStream_5e43809fe9256e57: function(arg0) {
            const ret = arg0.createBidirectionalStream();
            return ret;
        },
        __wbg_createUnidirectionalStream_d8e32b6f02a6419e: function(arg0) {
            const ret = arg0.createUnidirectionalStream();
            return ret;
        },
        __wbg_data_c7e5e8500f1bca2f: function(arg0) {
            const ret = arg0.data;
            return ret;
        },
        __wbg_datagrams_c31e7bb4b7300ae1: function(arg0) {
            const ret = arg0.datagrams;
            return ret;
        },
        __wbg_done_57e08d0be6e30c02: function(arg0) {
            const ret = arg0.done;
            return ret;
        },
        __wbg_error_9b95f63d905893d2: function(arg0, arg1) {
            console.error(arg0, arg1);
        },
        __wbg_fetch_dd3e9b306d6951ad: function(arg0, arg1, arg2) {
            const ret = fetch(getStringFromWasm0(arg0, arg1), arg2);
            return ret;
        },
        __wbg_garouError_b7098c88be5037bc: function(arg0, arg1, arg2, arg3) {
            const ret = garouError(getStringFromWasm0(arg0, arg1), getStringFromWasm0(arg2, arg3));
            return ret;
        },
        __wbg_garouclient_new: function(arg0) {
            const ret = GarouClient.__wrap(arg0);
            return ret;
        },
        __wbg_getReader_fadcafe607253a67: function(arg0) {
            const ret = arg0.getReader();
            return ret;
        },
        __wbg_getWriter_174052e9b400c61b: function() { return handleError(function (arg0) {
            const ret = arg0.getWriter();
            return ret;
        }, arguments); },
        __wbg_get_2080c49015e35254: function() { return handleError(function (arg0, arg1) {
            const ret = Reflect.get(arg0, arg1);
            return ret;
        }, arguments); },
        __wbg_get_635eea311fa1a291: function() { return handleError(function (arg0, arg1) {
            const ret = Reflect.get(arg0, arg1);
            return ret;
        }, arguments); },
        __wbg_get_close_code_bd1f91ab79ba4b46: function(arg0) {
            const ret = arg0.closeCode;
            return isLikeNone(ret) ? Number.MAX_SAFE_INTEGER : (ret) >>> 0;
        },
        __wbg_get_reason_fe3eeada1a185984: function(arg0, arg1) {
            const ret = arg1.reason;
            var ptr1 = isLikeNone(ret) ? 0 : passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            var len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        },
        __wbg_get_unchecked_e6325ad374eff861: function(arg0, arg1) {
            const ret = arg0[arg1 >>> 0];
            return ret;
        },
        __wbg_get_with_ref_key_fc601247060b7204: function(arg0, arg1) {
            const ret = arg0[arg1];
            return ret;
        },
        __wbg_incomingUnidirectionalStreams_b000a294c7f7be14: function(arg0) {
            const ret = arg0.incomingUnidirectionalStreams;
            return ret;
        },
        __wbg_instanceof_ArrayBuffer_12cdaa4161423e6b: function(arg0) {
            let result;
            try {
                result = arg0 instanceof ArrayBuffer;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_instanceof_Error_74e3cca0c4a69161: function(arg0) {
            let result;
            try {
                result = arg0 instanceof Error;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_instanceof_Performance_2b9444a94b6a603f: function(arg0) {
            let result;
            try {
                result = arg0 instanceof Performance;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_instanceof_Uint8Array_d7aeb0dcb3108fea: function(arg0) {
            let result;
            try {
                result = arg0 instanceof Uint8Array;
            } catch (_) {
                result = false;
            }
            const ret = result;
            return ret;
        },
        __wbg_isArray_bcf1376d0d732d08: function(arg0) {
            const ret = Array.isArray(arg0);
            return ret;
        },
        __wbg_iterator_e4c5e8f68ada7b58: function() {
            const ret = Symbol.iterator;
            return ret;
        },
        __wbg_json_8d1f3da8fcd11229: function() { return handleError(function (arg0) {
            const ret = arg0.json();
            return ret;
        }, arguments); },
        __wbg_length_186163212ffe79c3: function(arg0) {
            const ret = arg0.length;
            return ret;
        },
        __wbg_length_b03a0fabb109b1e9: function(arg0) {
            const ret = arg0.length;
            return ret;
        },
        __wbg_maxDatagramSize_f31d931ff88c7b74: function(arg0) {
            const ret = arg0.maxDatagramSize;
            return ret;
        },
        __wbg_message_43d8c8f1d543a349: function(arg0) {
            const ret = arg0.message;
            return ret;
        },
        __wbg_name_d1fa514fdca6a975: function(arg0) {
            const ret = arg0.name;
            return ret;
        },
        __wbg_new_13de428334042d26: function(arg0) {
            const ret = new Uint8Array(arg0);
            return ret;
        },
        __wbg_new_37eb45aaf5eeb820: function() {
            const ret = new Array();
            return ret;
        },
        __wbg_new_787b9fb330d55d78: function(arg0, arg1) {
            const ret = new Error(getStringFromWasm0(arg0, arg1));
            return ret;
        },
        __wbg_new_ba40181b3f24ac80: function(arg0, arg1) {
            try {
                var state0 = {a: arg0, b: arg1};
                var cb0 = (arg0, arg1) => {
                    const a = state0.a;
                    state0.a = 0;
                    try {
                        return wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined_______true_(a, state0.b, arg0, arg1);
                    } finally {
                        state0.a = a;
                    }
                };
                const ret = new Promise(cb0);
                return ret;
            } finally {
                state0.a = 0;
            }
        },
        __wbg_new_cd4348290afae586: function() {
            const ret = new Object();
            return ret;
        },
        __wbg_new_d72daa1c90ded389: function() { return handleError(function (arg0, arg1) {
            const ret = new WebSocket(getStringFromWasm0(arg0, arg1));
            return ret;
        }, arguments); },
        __wbg_new_from_slice_b8daf545a41c6aa0: function(arg0, arg1) {
            const ret = new Uint8Array(getArrayU8FromWasm0(arg0, arg1));
            return ret;
        },
        __wbg_new_typed_e09da9dae6ee5935: function(arg0, arg1) {
            try {
                var state0 = {a: arg0, b: arg1};
                var cb0 = (arg0, arg1) => {
                    const a = state0.a;
                    state0.a = 0;
                    try {
                        return wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined_______true_(a, state0.b, arg0, arg1);
                    } finally {
                        state0.a = a;
                    }
                };
                const ret = new Promise(cb0);
                return ret;
            } finally {
                state0.a = 0;
            }
        },
        __wbg_new_with_options_2b7d4e52be27db43: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = new WebTransport(getStringFromWasm0(arg0, arg1), arg2);
            return ret;
        }, arguments); },
        __wbg_next_178c1651c11432b3: function(arg0) {
            const ret = arg0.next;
            return ret;
        },
        __wbg_next_af5ac6a08bb0a717: function() { return handleError(function (arg0) {
            const ret = arg0.next();
            return ret;
        }, arguments); },
        __wbg_now_043d245551b22f9c: function(arg0) {
            const ret = arg0.now();
            return ret;
        },
        __wbg_now_463ac581d2fc7ea3: function() {
            const ret = Date.now();
            return ret;
        },
        __wbg_of_e7ea0fcd535c1444: function(arg0, arg1) {
            const ret = Array.of(arg0, arg1);
            return ret;
        },
        __wbg_ok_670a05555db5f713: function(arg0) {
            const ret = arg0.ok;
            return ret;
        },
        __wbg_prototypesetcall_13162965d1fe7aa3: function(arg0, arg1, arg2) {
            Uint8Array.prototype.set.call(getArrayU8FromWasm0(arg0, arg1), arg2);
        },
        __wbg_queueMicrotask_1e8503a8a690f0a3: function(arg0) {
            const ret = arg0.queueMicrotask;
            return ret;
        },
        __wbg_queueMicrotask_4a1a4d8dd332373b: function(arg0) {
            queueMicrotask(arg0);
        },
        __wbg_race_d17769ed306b5623: function(arg0) {
            const ret = Promise.race(arg0);
            return ret;
        },
        __wbg_random_df36b90cd78a7d54: function() {
            const ret = Math.random();
            return ret;
        },
        __wbg_read_e3bea75dace70752: function(arg0) {
            const ret = arg0.read();
            return ret;
        },
        __wbg_readable_31a21a592117aaea: function(arg0) {
            const ret = arg0.readable;
            return ret;
        },
        __wbg_readable_9d837f70281b731e: function(arg0) {
            const ret = arg0.readable;
            return ret;
        },
        __wbg_ready_82152a859e59ead5: function(arg0) {
            const ret = arg0.ready;
            return ret;
        },
        __wbg_reason_34b16516ab3f72d4: function(arg0, arg1) {
            const ret = arg1.reason;
            const ptr1 = passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len1 = WASM_VECTOR_LEN;
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
            getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
        },
        __wbg_reject_334b730b3c00849b: function(arg0) {
            const ret = Promise.reject(arg0);
            return ret;
        },
        __wbg_resolve_dbf78ab4942478b0: function(arg0) {
            const ret = Promise.resolve(arg0);
            return ret;
        },
        __wbg_send_d83d0891cf698779: function() { return handleError(function (arg0, arg1, arg2) {
            arg0.send(getArrayU8FromWasm0(arg1, arg2));
        }, arguments); },
        __wbg_setTimeout_7ca5376ff6f8e231: function(arg0, arg1) {
            const ret = setTimeout(arg0, arg1);
            return ret;
        },
        __wbg_setTimeout_880ae34a752b63c7: function(arg0, arg1, arg2) {
            const ret = setTimeout(arg0, arg1, arg2);
            return ret;
        },
        __wbg_set_2793479888329cb6: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = Reflect.set(arg0, arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_set_algorithm_b96693873908739b: function(arg0, arg1, arg2) {
            arg0.algorithm = getStringFromWasm0(arg1, arg2);
        },
        __wbg_set_binaryType_d5b4dafd0f127fb2: function(arg0, arg1) {
            arg0.binaryType = __wbindgen_enum_BinaryType[arg1];
        },
        __wbg_set_close_code_1bab35b37f4a7ba9: function(arg0, arg1) {
            arg0.closeCode = arg1 >>> 0;
        },
        __wbg_set_d2d33b52458e984a: function(arg0, arg1, arg2) {
            arg0[arg1 >>> 0] = arg2;
        },
        __wbg_set_e4b9a833d288759a: function(arg0, arg1, arg2) {
            arg0[arg1] = arg2;
        },
        __wbg_set_onclose_078935cf8d0fb024: function(arg0, arg1) {
            arg0.onclose = arg1;
        },
        __wbg_set_onerror_f7f089f7f059501c: function(arg0, arg1) {
            arg0.onerror = arg1;
        },
        __wbg_set_onmessage_26abc49cfa5f9ffc: function(arg0, arg1) {
            arg0.onmessage = arg1;
        },
        __wbg_set_onopen_757be120cc7b1ea6: function(arg0, arg1) {
            arg0.onopen = arg1;
        },
        __wbg_set_reason_ac3ab741831cc923: function(arg0, arg1, arg2) {
            arg0.reason = getStringFromWasm0(arg1, arg2);
        },
        __wbg_set_server_certificate_hashes_5c2e061cc49c13ee: function(arg0, arg1, arg2) {
            arg0.serverCertificateHashes = getArrayJsValueViewFromWasm0(arg1, arg2);
        },
        __wbg_set_value_u8_array_c85e8426d0802519: function(arg0, arg1) {
            arg0.value = arg1;
        },
        __wbg_static_accessor_GLOBAL_THIS_003ee833af9699fc: function() {
            const ret = typeof globalThis === 'undefined' ? undefined : globalThis;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_GLOBAL_e4293fb22cbe77da: function() {
            const ret = typeof global === 'undefined' ? undefined : global;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_SELF_53bb20457401453d: function() {
            const ret = typeof self === 'undefined' ? undefined : self;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_WINDOW_b5e0810bfecb7feb: function() {
            const ret = typeof window === 'undefined' ? undefined : window;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_status_cb85b6c8d1769fa1: function(arg0) {
            const ret = arg0.status;
            return ret;
        },
        __wbg_stringify_0a0fbf2ef722380a: function() { return handleError(function (arg0) {
            const ret = JSON.stringify(arg0);
            return ret;
        }, arguments); },
        __wbg_then_656f253a5dd7d8ea: function(arg0, arg1, arg2) {
            const ret = arg0.then(arg1, arg2);
            return ret;
        },
        __wbg_then_e3f7f2d365708be8: function(arg0, arg1) {
            const ret = arg0.then(arg1);
            return ret;
        },
        __wbg_value_e0f328965e184931: function(arg0) {
            const ret = arg0.value;
            return ret;
        },
        __wbg_warn_42702744b2284b6f: function(arg0, arg1) {
            console.warn(arg0, arg1);
        },
        __wbg_writable_0b74e9fe28f09968: function(arg0) {
            const ret = arg0.writable;
            return ret;
        },
        __wbg_writable_ccdaf6f43a1ca68e: function(arg0) {
            const ret = arg0.writable;
            return ret;
        },
        __wbg_write_eb694c46174356a6: function(arg0, arg1) {
            const ret = arg0.write(arg1);
            return ret;
        },
        __wbindgen_generic_0000000000000001: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [Externref], shim_idx: 138, ret: Result(Unit), inner_ret: Some(Result(Unit)) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___wasm_bindgen_177a629aab31bcb6___JsValue__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_);
            return ret;
        },
        __wbindgen_generic_0000000000000002: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [Externref], shim_idx: 16, ret: Result(Unit), inner_ret: Some(Result(Unit)) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_);
            return ret;
        },
        __wbindgen_generic_0000000000000003: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("CloseEvent")], shim_idx: 15, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true_);
            return ret;
        },
        __wbindgen_generic_0000000000000004: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("Event")], shim_idx: 15, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__36);
            return ret;
        },
        __wbindgen_generic_0000000000000005: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("MessageEvent")], shim_idx: 15, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__37);
            return ret;
        },
        __wbindgen_generic_0000000000000006: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("WebTransportBidirectionalStream")], shim_idx: 16, ret: Result(Unit), inner_ret: Some(Result(Unit)) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__38);
            return ret;
        },
        __wbindgen_generic_0000000000000007: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [NamedExternref("WebTransportSendStream")], shim_idx: 16, ret: Result(Unit), inner_ret: Some(Result(Unit)) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__39);
            return ret;
        },
        __wbindgen_generic_0000000000000008: function(arg0, arg1) {
            // Cast intrinsic for `Closure(Closure { owned: true, function: Function { arguments: [], shim_idx: 14, ret: Unit, inner_ret: Some(Unit) }, mutable: true }) -> Externref`.
            const ret = makeMutClosure(arg0, arg1, wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke_______true_);
            return ret;
        },
        __wbindgen_generic_0000000000000009: function(arg0) {
            // Cast intrinsic for `F64 -> Externref`.
            const ret = arg0;
            return ret;
        },
        __wbindgen_generic_000000000000000a: function(arg0, arg1) {
            // Cast intrinsic for `Ref(String) -> Externref`.
            const ret = getStringFromWasm0(arg0, arg1);
            return ret;
        },
        __wbindgen_init_externref_table: function() {
            const table = wasm.__wbindgen_externrefs;
            table.set(0, undefined);
            table.set(1024, undefined);
            table.set(1025, null);
            table.set(1026, true);
            table.set(1027, false);
        },
    };
    return {
        __proto__: null,
        "./garou_wasm_client_bg.js": import0,
    };
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke_______true_(arg0, arg1) {
    wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke_______true_(arg0, arg1);
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true_(arg0, arg1, arg2) {
    wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true_(arg0, arg1, arg2);
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__36(arg0, arg1, arg2) {
    wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__36(arg0, arg1, arg2);
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__37(arg0, arg1, arg2) {
    wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__37(arg0, arg1, arg2);
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___wasm_bindgen_177a629aab31bcb6___JsValue__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_(arg0, arg1, arg2) {
    const ret = wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___wasm_bindgen_177a629aab31bcb6___JsValue__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_(arg0, arg1, arg2);
    if (ret[1]) {
        throw takeFromExternrefTable0(ret[0]);
    }
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_(arg0, arg1, arg2) {
    const ret = wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_(arg0, arg1, arg2);
    if (ret[1]) {
        throw takeFromExternrefTable0(ret[0]);
    }
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__38(arg0, arg1, arg2) {
    const ret = wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__38(arg0, arg1, arg2);
    if (ret[1]) {
        throw takeFromExternrefTable0(ret[0]);
    }
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__39(arg0, arg1, arg2) {
    const ret = wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__39(arg0, arg1, arg2);
    if (ret[1]) {
        throw takeFromExternrefTable0(ret[0]);
    }
}

function wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined_______true_(arg0, arg1, arg2, arg3) {
    wasm.wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined_______true_(arg0, arg1, arg2, arg3);
}


const __wbindgen_enum_BinaryType = ["blob", "arraybuffer"];
const GarouClientFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_garouclient_free(ptr, 1));

function addToExternrefTable0(obj) {
    const idx = wasm.__externref_table_alloc();
    wasm.__wbindgen_externrefs.set(idx, obj);
    return idx;
}

const CLOSURE_DTORS = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(state => wasm.__wbindgen_destroy_closure(state.a, state.b));

function debugString(val) {
    switch (typeof val) {
        // primitive types
        case 'number':
        case 'boolean':
        case 'undefined':
        return `${val}`;
        case 'string':
        return JSON.stringify(val);
        case 'bigint':
        return `${val}n`;
        case 'symbol':
        return val.description !== undefined
            ? `Symbol(${val.description})`
            : 'Symbol';
        case 'function':
        return typeof val.name === 'string' && val.name !== ''
            ? `Function(${val.name})`
            : 'Function';
        case 'object': {
            if (val === null) {
                return 'null';
            }
            // objects
            if (Array.isArray(val)) {
                return '[' + Array.from(val, debugString).join(', ') + ']';
            }
            // errors
            if (val instanceof Error) {
                return `${val.name}: ${val.message}\n${val.stack}`;
            }

            const toStringOutput = toString.call(val);
            // Test for built-in
            const className = /\[object ([^\]]+)\]/.exec(toStringOutput)?.[1];

            // Failed to match the standard '[object ClassName]'
            if (className === undefined) {
                return toStringOutput;
            }
            if (className === 'Object') {
                // we're a user defined class or Object
                // JSON.stringify avoids problems with cycles, and is generally much
                // easier than looping through ownProperties of `val`.
                try {
                    return 'Object(' + JSON.stringify(val) + ')';
                } catch (_) {
                    return 'Object';
                }
            }
            // TODO we could test for more things here, like `Set`s and `Map`s.
            return className;
        }
        // Per MDN: 'This list of values is exhaustive.'
        // https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Operators/typeof#description
    }
}

function getArrayJsValueViewFromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    const mem = getDataViewMemory0();
    const result = [];
    for (let i = ptr; i < ptr + 4 * len; i += 4) {
        result.push(wasm.__wbindgen_externrefs.get(mem.getUint32(i, true)));
    }
    return result;
}

function getArrayU8FromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return getUint8ArrayMemory0().subarray(ptr / 1, ptr / 1 + len);
}

let cachedDataViewMemory0 = null;
function getDataViewMemory0() {
    if (cachedDataViewMemory0 === null || cachedDataViewMemory0.buffer.detached === true || (cachedDataViewMemory0.buffer.detached === undefined && cachedDataViewMemory0.buffer !== wasm.memory.buffer)) {
        cachedDataViewMemory0 = new DataView(wasm.memory.buffer);
    }
    return cachedDataViewMemory0;
}

function getStringFromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return decodeText(getUint8ArrayMemory0().subarray(ptr, ptr + len));
}

let cachedUint8ArrayMemory0 = null;
function getUint8ArrayMemory0() {
    if (cachedUint8ArrayMemory0 === null || cachedUint8ArrayMemory0.byteLength === 0) {
        cachedUint8ArrayMemory0 = new Uint8Array(wasm.memory.buffer);
    }
    return cachedUint8ArrayMemory0;
}

function handleError(f, args) {
    try {
        return f.apply(this, args);
    } catch (e) {
        const idx = addToExternrefTable0(e);
        wasm.__wbindgen_exn_store(idx);
    }
}

function isLikeNone(x) {
    return x === undefined || x === null;
}

function makeMutClosure(arg0, arg1, f) {
    const state = { a: arg0, b: arg1, cnt: 1 };
    const real = (...args) => {

        // First up with a closure we increment the internal reference
        // count. This ensures that the Rust closure environment won't
        // be deallocated while we're invoking it.
        state.cnt++;
        const a = state.a;
        state.a = 0;
        try {
            return f(a, state.b, ...args);
        } finally {
            state.a = a;
            real._wbg_cb_unref();
        }
    };
    real._wbg_cb_unref = () => {
        if (--state.cnt === 0) {
            wasm.__wbindgen_destroy_closure(state.a, state.b);
            state.a = 0;
            CLOSURE_DTORS.unregister(state);
        }
    };
    CLOSURE_DTORS.register(real, state, state);
    return real;
}

function passStringToWasm0(arg, malloc, realloc) {
    if (realloc === undefined) {
        const buf = cachedTextEncoder.encode(arg);
        const ptr = malloc(buf.length, 1) >>> 0;
        getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);
        WASM_VECTOR_LEN = buf.length;
        return ptr;
    }

    let len = arg.length;
    let ptr = malloc(len, 1) >>> 0;

    const mem = getUint8ArrayMemory0();

    let offset = 0;

    for (; offset < len; offset++) {
        const code = arg.charCodeAt(offset);
        if (code > 0x7F) break;
        mem[ptr + offset] = code;
    }
    if (offset !== len) {
        if (offset !== 0) {
            arg = arg.slice(offset);
        }
        ptr = realloc(ptr, len, len = offset + arg.length * 3, 1) >>> 0;
        const view = getUint8ArrayMemory0().subarray(ptr + offset, ptr + len);
        const ret = cachedTextEncoder.encodeInto(arg, view);

        offset += ret.written;
        ptr = realloc(ptr, len, offset, 1) >>> 0;
    }

    WASM_VECTOR_LEN = offset;
    return ptr;
}

function takeFromExternrefTable0(idx) {
    const value = wasm.__wbindgen_externrefs.get(idx);
    wasm.__externref_table_dealloc(idx);
    return value;
}

let cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
cachedTextDecoder.decode();
const MAX_SAFARI_DECODE_BYTES = 2146435072;
let numBytesDecoded = 0;
function decodeText(bytes) {
    numBytesDecoded += bytes.length;
    if (numBytesDecoded >= MAX_SAFARI_DECODE_BYTES) {
        cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
        cachedTextDecoder.decode();
        numBytesDecoded = bytes.length;
    }
    return cachedTextDecoder.decode(bytes);
}

const cachedTextEncoder = new TextEncoder();

if (!('encodeInto' in cachedTextEncoder)) {
    cachedTextEncoder.encodeInto = function (arg, view) {
        const buf = cachedTextEncoder.encode(arg);
        view.set(buf);
        return {
            read: arg.length,
            written: buf.length
        };
    };
}

let WASM_VECTOR_LEN = 0;

let wasmModule, wasmInstance, wasm;
function __wbg_finalize_init(instance, module) {
    wasmInstance = instance;
    wasm = instance.exports;
    wasmModule = module;
    cachedDataViewMemory0 = null;
    cachedUint8ArrayMemory0 = null;
    wasm.__wbindgen_start();
    return wasm;
}

async function __wbg_load(module, imports) {
    if (typeof Response === 'function' && module instanceof Response) {
        if (!module.ok) {
            throw new Error(`failed to fetch Wasm: ${module.status} ${module.statusText} fetching '${module.url}'`);
        }

        if (typeof WebAssembly.instantiateStreaming === 'function') {
            try {
                return await WebAssembly.instantiateStreaming(module, imports);
            } catch (e) {
                const validResponse = expectedResponseType(module.type);

                if (validResponse && module.headers.get('Content-Type') !== 'application/wasm') {
                    console.warn("`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm with `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which is slower. Original error:\n", e);

                } else { throw e; }
            }
        }

        const bytes = await module.arrayBuffer();
        return await WebAssembly.instantiate(bytes, imports);
    } else {
        const instance = await WebAssembly.instantiate(module, imports);

        if (instance instanceof WebAssembly.Instance) {
            return { instance, module };
        } else {
            return instance;
        }
    }

    function expectedResponseType(type) {
        switch (type) {
            case 'basic': case 'cors': case 'default': return true;
        }
        return false;
    }
}

function initSync(module) {
    if (wasm !== undefined) return wasm;


    if (module !== undefined) {
        if (Object.getPrototypeOf(module) === Object.prototype) {
            ({module} = module)
        } else {
            console.warn('using deprecated parameters for `initSync()`; pass a single object instead')
        }
    }

    const imports = __wbg_get_imports();
    if (!(module instanceof WebAssembly.Module)) {
        module = new WebAssembly.Module(module);
    }
    const instance = new WebAssembly.Instance(module, imports);
    return __wbg_finalize_init(instance, module);
}

let __wbg_init_promise;
async function __wbg_init(module_or_path) {
    if (wasm !== undefined) return wasm;
    if (__wbg_init_promise === undefined) {
        __wbg_init_promise = __wbg_init_once(module_or_path);
        __wbg_init_promise.catch(() => { __wbg_init_promise = undefined; });
    }
    return __wbg_init_promise;
}

async function __wbg_init_once(module_or_path) {

    if (module_or_path !== undefined) {
        if (Object.getPrototypeOf(module_or_path) === Object.prototype) {
            ({module_or_path} = module_or_path)
        } else {
            console.warn('using deprecated parameters for the initialization function; pass a single object instead')
        }
    }

    if (module_or_path === undefined) {
        module_or_path = new URL('garou_wasm_client_bg.wasm', import.meta.url);
    }
    const imports = __wbg_get_imports();

    if (typeof module_or_path === 'string' || (typeof Request === 'function' && module_or_path instanceof Request) || (typeof URL === 'function' && module_or_path instanceof URL)) {
        module_or_path = fetch(module_or_path);
    }

    const { instance, module } = await __wbg_load(await module_or_path, imports);

    return __wbg_finalize_init(instance, module);
}

export { initSync, __wbg_init as default };

export { GarouError } from "./snippets/garou-wasm-client-87a56fb6e2fa2073/inline0.js";
