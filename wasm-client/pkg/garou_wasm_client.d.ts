/* tslint:disable */
/* eslint-disable */

/** A member's role in a room. */
export type Role = "owner" | "admin" | "moderator" | "member" | "guest";
/** The kind of a room. */
export type RoomKind = "direct" | "group" | "channel";
/** The transport a client runs on. */
export type TransportKind = "webtransport" | "websocket";
/**
 * Where the client is: `connecting` (an attempt is under way: the first connect or a
 * reconnect), `connected` (the session is ready), `reconnecting` (waiting out the backoff
 * delay before the next attempt), `closed` (for good: `close()`, a terminal error, or a
 * loss with `reconnect: false`).
 */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/**
 * Every `code` a `GarouError` (and a `GarouErrorInfo`) carries: the protocol's error codes,
 * and `Closed` (the application closed the client), `QueueFull` (too many commands waiting
 * while disconnected), `CertificateMismatch` (the gateway's certificate is not the pinned
 * `certHash`), raised by this client only.
 */
export type GarouErrorCode =
| "BadFrame" | "FrameTooLarge" | "BadPayload" | "UnsupportedVersion" | "OutOfState"
| "AuthFailed" | "NickUnavailable" | "NoSuchRoom" | "RoomExists" | "NotMember" | "Forbidden"
| "NoSuchMessage" | "NoSuchUser" | "RateLimited" | "SlowConsumer" | "LimitReached"
| "InvalidArgument" | "Unsupported" | "Timeout" | "Disconnected" | "ShuttingDown" | "Internal"
| "Banned" | "Muted" | "Kicked" | "Unavailable" | "SessionReplaced"
| "Closed" | "QueueFull" | "CertificateMismatch";

/** A typed error as events carry it. */
export interface GarouErrorInfo { code: GarouErrorCode; message: string }

/**
 * What every rejected promise of this package carries. `message` is `"<code>: <reason>"`.
 * Terminal codes (the client closes instead of reconnecting): `AuthFailed`, `Banned`,
 * `Kicked`, `SessionReplaced` (a newer session of this client, e.g. a reloaded page, took
 * this one over), `UnsupportedVersion`, `InvalidArgument`, `CertificateMismatch`, `Closed`.
 */
export class GarouError extends Error {
    constructor(code: GarouErrorCode, reason: string);
    readonly name: "GarouError";
    readonly code: GarouErrorCode;
    /** The message without the code. */
    readonly reason: string;
}

/** Options of `GarouClient.connect`. Durations are milliseconds. */
export interface ConnectOptions {
    /** Gateway HTTP origin, e.g. "http://127.0.0.1:8080"; default `location.origin`. */
    url?: string;
    /** More gateway origins: every attempt takes the next address in turn (`url` first). */
    urls?: string[];
    /** Nick to authenticate with (open dev mode); default a random "guest-NNNN". */
    nick?: string;
    /** Signed token; takes precedence over `nick`. */
    token?: string;
    /** Default "auto": WebTransport when available and reachable, else WebSocket. */
    transport?: "auto" | "webtransport" | "websocket";
    /** Reconnect by itself after a lost connection (default true). */
    reconnect?: boolean;
    /** Where the WebTransport certificate hash is fetched, before every attempt (default `<url>/cert-hash`). */
    certHashUrl?: string;
    /** Pin the certificate: 64 hex digits; a gateway reporting another hash fails with `CertificateMismatch`. */
    certHash?: string;
    /** First reconnect delay (default 1000); doubles per failed attempt. */
    backoffInitialMs?: number;
    /** Largest reconnect delay (default 60000). Each delay is drawn from the upper half of the current one. */
    backoffMaxMs?: number;
    /** A keep-alive ping this often while connected (default 1000). */
    pingIntervalMs?: number;
    /** No byte from the server for this long: the connection is dead (default 3000). */
    deadAfterMs?: number;
    /** A request without a reply for this long rejects with `Timeout` (default 10000). */
    requestTimeoutMs?: number;
    /** The Garou handshake must complete within this (default 10000). */
    handshakeTimeoutMs?: number;
    /** Commands waiting to be sent (disconnected or paced), at most (default 1000); more reject with `QueueFull`. */
    maxQueue?: number;
    /** Commands per second sent at most (default 50). */
    sendRate?: number;
    /** Commands sent at once before `sendRate` applies (default 50). */
    sendBurst?: number;
    /** Requests awaiting their reply, at most (default 100). */
    maxInFlight?: number;
}

export interface RoomInfo { name: string; kind: RoomKind; members: number; title: string }
export interface MemberInfo { user: number; nick: string; role: Role; online: boolean }
/**
 * What `join` and `createRoom` resolve to. `offset`: the first offset of the room's events
 * from now on; `epoch`: the room's epoch (offsets compare only within one); `resumed`: the
 * server replayed what was missed since a resume point (false for a plain join);
 * `unread`: messages after the user's read mark.
 */
export interface JoinInfo {
    room: RoomInfo; role: Role; offset: number; members: MemberInfo[];
    epoch: number; resumed: boolean; unread: number;
}
/** What `send` and `direct` resolve to once the server acked the message. */
export interface SentInfo { room: string; id: number; offset: number }
/** Options of `history`: offsets bounding the page (exclusive), and its size (default 50, at most 1000). */
export interface HistoryOptions { before?: number; after?: number; limit?: number }
/** A message as history returns it: its latest text, edits and deletion applied. */
export interface StoredMessage {
    offset: number; id: number; author: number; nick: string; ts: number; text: string;
    edited: boolean; deleted: boolean; attachment?: string; reactions: { emoji: string; count: number }[];
}
/**
 * What the gateway's `POST /api/uploads?ticket=<client.ticket>&name=<file name>` (the file
 * as the body, its type as `Content-Type`) answers with `201`: pass `id` as the third
 * argument of `send` to attach the file; `url` + `?ticket=` downloads it.
 */
export interface UploadInfo { id: string; url: string }
/** What `history` resolves to: messages oldest first. */
export interface HistoryPage { room: string; epoch: number; messages: StoredMessage[] }

/** Everything the listeners receive. */
export type GarouEvent =
| { type: "message"; room: string; offset: number; id: number; author: number; nick: string; ts: number; text: string; attachment?: string }
| { type: "edit"; room: string; offset: number; id: number; by: number; ts: number; text: string }
| { type: "delete"; room: string; offset: number; id: number; by: number }
| { type: "reaction"; room: string; offset: number; id: number; user: number; nick: string; emoji: string; added: boolean }
| { type: "member_joined" | "member_updated"; room: string; offset: number; user: number; nick: string; role: Role }
| { type: "member_left"; room: string; offset: number; user: number; nick: string }
| { type: "member_moderated"; room: string; offset: number; user: number; nick: string; action: "kick" | "mute" | "unmute" | "ban" | "unban"; by: number; until: number; reason: string }
| { type: "room_renamed"; room: string; offset: number; title: string; by: number }
| { type: "room_deleted"; room: string; offset: number; by: number }
| { type: "typing"; room: string; user: number; nick: string }
| { type: "presence"; user: number; nick: string; online: boolean }
| { type: "receipt"; room: string; id: number; user: number; nick: string; read: boolean }
| { type: "promoted" | "demoted"; room: string }
| { type: "transport"; transport: TransportKind; fallback_reason?: string }
| { type: "welcome"; message: string }
| { type: "error"; code: string; message: string }
| { type: "closed"; reason: string }
| { type: "connecting"; attempt: number; url: string }
| { type: "connected"; transport: TransportKind; url: string; attempt: number; reconnected: boolean }
| { type: "disconnected"; reason: GarouErrorInfo; willReconnect: boolean }
| { type: "reconnecting"; attempt: number; delayMs: number; lastError: GarouErrorInfo }
| { type: "rejoined"; room: string; resumed: boolean; offset?: number; epoch?: number; error?: GarouErrorInfo };

/** The `type` of every event. */
export type GarouEventType = GarouEvent["type"];
/** The event object of type `K`. */
export type GarouEventOf<K extends GarouEventType> = GarouEvent extends infer E
    ? E extends { type: infer T } ? (K extends T ? E : never) : never
    : never;
/** A listener for every event (`on(listener)`). */
export type GarouEventHandler = (event: GarouEvent) => void;
/** A listener for events of type `K` (`on(type, listener)`). */
export type GarouEventListener<K extends GarouEventType> = (event: GarouEventOf<K>) => void;

export interface GarouClient {
    /**
     * Add a listener: for every event (`on(listener)`) or for one type (`on("message",
     * listener)`). Any number of listeners, called in the order they were added; adding the
     * same function twice for the same type calls it twice. Events emitted before the
     * first listener was added are kept and delivered, in a microtask, to the listeners
     * added by then (so several `on()` calls in a row all see them).
     */
    on(listener: GarouEventHandler): void;
    on<K extends GarouEventType>(type: K, listener: GarouEventListener<K>): void;
    /** Like `on`, but the listener is removed after its first call. */
    once(listener: GarouEventHandler): void;
    once<K extends GarouEventType>(type: K, listener: GarouEventListener<K>): void;
    /** Remove a listener added with `on` or `once` (the last one added, for duplicates). */
    off(listener: GarouEventHandler): void;
    off<K extends GarouEventType>(type: K, listener: GarouEventListener<K>): void;
}



/**
 * A connection to a Garou gateway. Create it with `GarouClient.connect(options)`.
 */
export class GarouClient {
    private constructor();
    free(): void;
    /**
     * Close the client for good: no reconnect. Requests in flight reject with
     * `Disconnected`, queued commands with `Closed`; `disconnected` (if connected) and
     * `closed` events follow.
     */
    close(): void;
    /**
     * Connect to a gateway; resolves once the session is ready (handshake done).
     */
    static connect(options?: ConnectOptions): Promise<GarouClient>;
    /**
     * Create a room and join it as its owner.
     */
    createRoom(room: string, kind: "group" | "channel"): Promise<JoinInfo>;
    /**
     * Delete a room and its history.
     */
    deleteRoom(room: string): Promise<void>;
    /**
     * Delete a message.
     */
    delete(room: string, id: number): Promise<void>;
    /**
     * Direct message to a user by nick; resolves with the direct room once acked.
     */
    direct(toNick: string, text: string): Promise<SentInfo>;
    /**
     * Replace the text of a message.
     */
    edit(room: string, id: number, text: string): Promise<void>;
    /**
     * A page of a room's history, oldest first: at most `limit` (default 50) messages
     * with offsets below `before` and above `after`; without `after` the newest such
     * messages (paging back), with `after` the oldest (paging forward).
     */
    history(room: string, options?: HistoryOptions): Promise<HistoryPage>;
    /**
     * Add a user to a room as a member.
     */
    invite(room: string, nick: string): Promise<void>;
    /**
     * Join a room (a group room that does not exist yet is created).
     */
    join(room: string): Promise<JoinInfo>;
    /**
     * Leave a room.
     */
    leave(room: string): Promise<void>;
    /**
     * Rooms visible to us.
     */
    listRooms(): Promise<RoomInfo[]>;
    /**
     * Members of a room.
     */
    listUsers(room: string): Promise<MemberInfo[]>;
    /**
     * Tell a message's author we received it (they get a `receipt` event).
     */
    markDelivered(room: string, id: number): void;
    /**
     * Tell a message's author we read it (they get a `receipt` event with `read: true`).
     */
    markRead(room: string, id: number): void;
    /**
     * Moderate a member: `action` is "kick", "mute" (for `secs`, 0 = until unmuted),
     * "unmute", "ban" or "unban"; the room sees a `member_moderated` event.
     */
    moderate(room: string, nick: string, action: string, secs: number, reason: string): Promise<void>;
    /**
     * Add (`add` true) or remove a reaction.
     */
    react(room: string, id: number, emoji: string, add: boolean): Promise<void>;
    /**
     * While waiting out a reconnect delay: attempt now (e.g. when the browser reports
     * that it is online again). Does nothing in any other state.
     */
    reconnectNow(): void;
    /**
     * Set a room's display title.
     */
    renameRoom(room: string, title: string): Promise<void>;
    /**
     * Post a message, optionally with an attachment (the id of a completed upload of
     * ours, e.g. from `POST /api/uploads`); resolves when the server acked it.
     */
    send(room: string, text: string, attachment?: string | null): Promise<SentInfo>;
    /**
     * Change our nick; resolves with the nick the server accepted.
     */
    setNick(nick: string): Promise<string>;
    /**
     * Tell the room we are typing (an unreliable datagram).
     */
    typing(room: string): void;
    /**
     * Our current nick (the last known one while reconnecting).
     */
    readonly nick: string;
    /**
     * Commands waiting to be sent (while disconnected, or paced).
     */
    readonly queued: number;
    /**
     * Where the client is: "connecting", "connected", "reconnecting" or "closed".
     */
    readonly state: ConnectionState;
    /**
     * This session's ticket for the gateway's HTTP uploads and downloads
     * (`/api/uploads?ticket=`, `/api/uploads/{id}?ticket=`), valid while the connection
     * lives (a reconnect brings a new one); empty until the server's welcome arrived.
     */
    readonly ticket: string;
    /**
     * The transport in use (of the last connection while reconnecting).
     */
    readonly transport: TransportKind;
    /**
     * The gateway origin of the current (or last) connection.
     */
    readonly url: string;
    /**
     * Our user id.
     */
    readonly userId: number;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly __wbg_garouclient_free: (a: number, b: number) => void;
    readonly garouclient_close: (a: number) => void;
    readonly garouclient_connect: (a: any) => any;
    readonly garouclient_createRoom: (a: number, b: number, c: number, d: number, e: number) => any;
    readonly garouclient_delete: (a: number, b: number, c: number, d: number) => any;
    readonly garouclient_deleteRoom: (a: number, b: number, c: number) => any;
    readonly garouclient_direct: (a: number, b: number, c: number, d: number, e: number) => any;
    readonly garouclient_edit: (a: number, b: number, c: number, d: number, e: number, f: number) => any;
    readonly garouclient_history: (a: number, b: number, c: number, d: any) => any;
    readonly garouclient_invite: (a: number, b: number, c: number, d: number, e: number) => any;
    readonly garouclient_join: (a: number, b: number, c: number) => any;
    readonly garouclient_leave: (a: number, b: number, c: number) => any;
    readonly garouclient_listRooms: (a: number) => any;
    readonly garouclient_listUsers: (a: number, b: number, c: number) => any;
    readonly garouclient_markDelivered: (a: number, b: number, c: number, d: number) => void;
    readonly garouclient_markRead: (a: number, b: number, c: number, d: number) => void;
    readonly garouclient_moderate: (a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number, j: number) => any;
    readonly garouclient_nick: (a: number) => [number, number];
    readonly garouclient_off: (a: number, b: any, c: number) => [number, number];
    readonly garouclient_on: (a: number, b: any, c: number) => [number, number];
    readonly garouclient_once: (a: number, b: any, c: number) => [number, number];
    readonly garouclient_queued: (a: number) => number;
    readonly garouclient_react: (a: number, b: number, c: number, d: number, e: number, f: number, g: number) => any;
    readonly garouclient_reconnectNow: (a: number) => void;
    readonly garouclient_renameRoom: (a: number, b: number, c: number, d: number, e: number) => any;
    readonly garouclient_send: (a: number, b: number, c: number, d: number, e: number, f: number, g: number) => any;
    readonly garouclient_setNick: (a: number, b: number, c: number) => any;
    readonly garouclient_state: (a: number) => [number, number];
    readonly garouclient_ticket: (a: number) => [number, number];
    readonly garouclient_transport: (a: number) => [number, number];
    readonly garouclient_typing: (a: number, b: number, c: number) => void;
    readonly garouclient_url: (a: number) => [number, number];
    readonly garouclient_userId: (a: number) => number;
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined___js_sys_f2248913486b8f06___Function_fn_wasm_bindgen_177a629aab31bcb6___JsValue_____wasm_bindgen_177a629aab31bcb6___sys__Undefined_______true_: (a: number, b: number, c: any, d: any) => void;
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___wasm_bindgen_177a629aab31bcb6___JsValue__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_: (a: number, b: number, c: any) => [number, number];
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true_: (a: number, b: number, c: any) => [number, number];
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__38: (a: number, b: number, c: any) => [number, number];
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_WebTransportCloseInfo__WebTransportCloseInfo__core_9369f11bc16453f___result__Result_____wasm_bindgen_177a629aab31bcb6___JsError___true__39: (a: number, b: number, c: any) => [number, number];
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true_: (a: number, b: number, c: any) => void;
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__36: (a: number, b: number, c: any) => void;
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke___web_sys_6280971fd6e68042___features__gen_CloseEvent__CloseEvent______true__37: (a: number, b: number, c: any) => void;
    readonly wasm_bindgen_177a629aab31bcb6___convert__closures_____invoke_______true_: (a: number, b: number) => void;
    readonly __wbindgen_malloc: (a: number, b: number) => number;
    readonly __wbindgen_realloc: (a: number, b: number, c: number, d: number) => number;
    readonly __wbindgen_free: (a: number, b: number, c: number) => void;
    readonly __wbindgen_exn_store: (a: number) => void;
    readonly __externref_table_alloc: () => number;
    readonly __wbindgen_externrefs: WebAssembly.Table;
    readonly __wbindgen_destroy_closure: (a: number, b: number) => void;
    readonly __externref_table_dealloc: (a: number) => void;
    readonly __wbindgen_start: () => void;
}

export type SyncInitInput = BufferSource | WebAssembly.Module;

/**
 * Instantiates the given `module`, which can either be bytes or
 * a precompiled `WebAssembly.Module`.
 *
 * @param {{ module: SyncInitInput }} module - Passing `SyncInitInput` directly is deprecated.
 *
 * @returns {InitOutput}
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/**
 * If `module_or_path` is {RequestInfo} or {URL}, makes a request and
 * for everything else, calls `WebAssembly.instantiate` directly.
 *
 * @param {{ module_or_path: InitInput | Promise<InitInput> }} module_or_path - Passing `InitInput` directly is deprecated.
 *
 * @returns {Promise<InitOutput>}
 */
export default function __wbg_init (module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;
