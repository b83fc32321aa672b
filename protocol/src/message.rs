//! Typed messages, one per frame type, and their payload encoding.
//!
//! Payloads are [postcard](https://docs.rs/postcard): serde-driven, varint-compact, no
//! schema compiler, `no_std`-friendly (so the same code runs in wasm32), and among the
//! fastest serde formats. Versioning: the Hello frame carries [`PROTOCOL_VERSION`]; within
//! a version, fields are only ever appended and decoders ignore trailing bytes, so an
//! older peer can still read a newer payload's prefix. A field appended to a frame that
//! has shipped is of a type that decodes leniently when missing ([`ResumeToken`]), so a
//! newer peer can read an older one's payload too.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;
use crate::frame::{Frame, HEADER_LEN};
use crate::types::*;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// ALPN of the native QUIC transport (WebTransport uses `h3`).
pub const ALPN: &[u8] = b"garou/1";

macro_rules! messages {
    ($( $(#[$doc:meta])* $code:literal => $name:ident { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
            pub struct $name { $( $(#[$fdoc])* pub $field: $fty ),* }

            impl From<$name> for Message {
                fn from(m: $name) -> Message { Message::$name(m) }
            }
        )*

        /// Every frame type of the protocol.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum FrameType { $( #[doc = concat!("Type byte `", stringify!($code), "`: [`", stringify!($name), "`].")] $name = $code ),* }

        impl FrameType {
            /// The frame type for a raw type byte, `None` if unknown.
            pub fn from_u8(b: u8) -> Option<FrameType> {
                match b { $( $code => Some(FrameType::$name), )* _ => None }
            }
        }

        /// A decoded frame.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Message { $( #[doc = concat!("A decoded [`", stringify!($name), "`] frame.")] $name($name) ),* }

        impl Message {
            /// This message's frame type.
            pub fn frame_type(&self) -> FrameType {
                match self { $( Message::$name(_) => FrameType::$name ),* }
            }

            /// Decode a frame's payload according to its type.
            pub fn decode(frame: &Frame) -> Result<Message, DecodeError> {
                let ty = FrameType::from_u8(frame.ty).ok_or(DecodeError::UnknownType(frame.ty))?;
                let bad = |e: postcard::Error| DecodeError::Payload { ty: frame.ty, reason: e.to_string() };
                Ok(match ty {
                    $( FrameType::$name => Message::$name(postcard::from_bytes(&frame.payload).map_err(bad)?), )*
                })
            }

            fn write_payload(&self, out: Vec<u8>) -> Vec<u8> {
                // Serializing into a Vec cannot fail for these plain types.
                match self {
                    $( Message::$name(m) => postcard::to_extend(m, out).expect("postcard into Vec"), )*
                }
            }
        }
    };
}

messages! {
    // ---- control 0x00-0x0F (control stream, except StreamHeader) ----
    /// First frame from the client on the control stream. `resume`: the `resume_token` of
    /// the client's previous session's Welcome, if any (takes that session over).
    0x01 => Hello {
        /// The protocol version the client speaks ([`PROTOCOL_VERSION`]).
        version: u16,
        /// Free-form client name and version, for the server's logs.
        client: String,
        /// The previous session's `resume_token`, or empty.
        resume: ResumeToken,
    }
    /// Server's answer to Hello: the session id and the limits the client must respect.
    0x02 => HelloAck {
        /// Id the server gave this session.
        session: u64,
        /// The protocol version the server speaks.
        version: u16,
        /// Server name and version, for logs.
        server: String,
        /// Largest frame payload the server accepts from this client, in bytes.
        max_frame: u32,
        /// Interval at which the client must ping, in milliseconds.
        heartbeat_ms: u32,
    }
    /// Client credentials.
    0x03 => Auth {
        /// Who the client claims to be, and the proof.
        credentials: Credentials,
    }
    /// Authentication accepted.
    0x04 => AuthOk {
        /// The authenticated user's id.
        user: UserId,
        /// The nick the session has.
        nick: String,
    }
    /// Authentication refused (`code`: AuthFailed, NickUnavailable, ...); the server closes after it.
    0x05 => AuthError {
        /// Why authentication failed.
        code: ErrorCode,
        /// Human-readable detail.
        reason: String,
    }
    /// Keepalive probe (either side).
    0x06 => Ping {
        /// Opaque value the Pong echoes.
        nonce: u64,
    }
    /// Keepalive answer.
    0x07 => Pong {
        /// The nonce of the Ping answered.
        nonce: u64,
    }
    /// The client exceeds its command rate: pause for `retry_after_ms`.
    0x08 => Throttle {
        /// How long to pause, in milliseconds.
        retry_after_ms: u32,
    }
    /// The server is going away; reconnect later (or elsewhere).
    0x09 => Shutdown {
        /// Why the server is going away, for the user.
        reason: String,
    }
    /// First frame on every uni stream: what the stream carries.
    0x0A => StreamHeader {
        /// What the rest of the stream carries.
        kind: StreamKind,
    }
    /// Greeting after the handshake; `ticket` authorizes this session's HTTP upload and
    /// download requests (`?ticket=`) while it lives. `resume_token`: offer it in the next
    /// session's Hello to take this session over at once (new at every Welcome).
    0x0B => Welcome {
        /// Greeting text to show the user.
        message: String,
        /// HTTP ticket for uploads and downloads, valid while this session lives.
        ticket: String,
        /// Token to offer in the next session's Hello to take this one over.
        resume_token: ResumeToken,
    }

    // ---- commands 0x10-0x1F (client->server, commands stream) ----
    /// Change nick.
    0x10 => SetNick {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The nick wanted.
        nick: String,
    }
    /// Create a room and join it as owner.
    0x11 => CreateRoom {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The new room's name.
        room: String,
        /// Direct, group or channel.
        kind: RoomKind,
    }
    /// Join a room (a group room that does not exist yet is created). With `since`, the
    /// client asks to recover what it missed after that offset of that epoch.
    0x12 => Join {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// Where the client's delivery stopped in this room, to replay what came after.
        since: Option<Since>,
    }
    /// Leave a room.
    0x13 => Leave {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
    }
    /// Post a message. `client_id` is the sender's own id for the message (idempotency).
    0x14 => Send {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The sender's own id for the message; a re-send with the same id gets the original ack.
        client_id: u64,
        /// The message text.
        text: String,
        /// Id of a complete upload of the sender to attach, if any.
        attachment: Option<String>,
    }
    /// Replace the text of a message.
    0x15 => Edit {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The message to edit.
        id: MsgId,
        /// The new text.
        text: String,
    }
    /// Delete a message.
    0x16 => Delete {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The message to delete.
        id: MsgId,
    }
    /// Add or remove a reaction.
    0x17 => React {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The message reacted to.
        id: MsgId,
        /// The reaction.
        emoji: String,
        /// True to add the reaction, false to remove it.
        add: bool,
    }
    /// Direct message to a user by nick (opens the direct room on first use).
    0x18 => DirectMessage {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The recipient's nick.
        to: String,
        /// The sender's own id for the message; a re-send with the same id gets the original ack.
        client_id: u64,
        /// The message text.
        text: String,
    }
    /// List rooms visible to the caller.
    0x19 => ListRooms {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
    }
    /// List the members of a room.
    0x1A => ListUsers {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
    }
    /// Change a member's role.
    0x1B => SetRole {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The member whose role changes.
        nick: String,
        /// Their new role.
        role: Role,
    }
    /// A page of a room's message history, oldest first (`limit` at most 1,000).
    0x1C => History {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// Only messages before this offset (without `after`: the newest ones before it).
        before: Option<Offset>,
        /// Only messages after this offset, the oldest ones first.
        after: Option<Offset>,
        /// Most messages in the page (at most 1,000).
        limit: u32,
    }
    /// Kick, mute (for `secs`, 0 = until unmuted), unmute, ban or unban the member `nick`.
    0x1D => Moderate {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The member acted on.
        nick: String,
        /// What to do to them.
        action: ModAction,
        /// Length of a mute in seconds (0 = until unmuted); ignored otherwise.
        secs: u32,
        /// Why, shown to the room (may be empty).
        reason: String,
    }
    /// Add the user `nick` to the room as a member (in a channel: with posting rights).
    0x1E => Invite {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The user to add.
        nick: String,
    }

    // ---- replies 0x20-0x2F (server->client, control stream) ----
    /// Nick accepted.
    0x20 => NickOk {
        /// The request this answers.
        req: ReqId,
        /// The nick now in use.
        nick: String,
    }
    /// Joined a room. `offset` is the first event of this room the client delivers: its own
    /// MemberJoined when new, the event after `since` when `resumed`, else the next event.
    /// `resumed = false` after a `since` means the gap cannot be replayed (history trimmed,
    /// or another `epoch`): reload history. `unread`: messages after the user's read mark.
    0x21 => Joined {
        /// The request this answers.
        req: ReqId,
        /// The room, as listed.
        room: RoomInfo,
        /// The user's role in it.
        role: Role,
        /// The first offset of this room the client delivers.
        offset: Offset,
        /// The room's members.
        members: Vec<MemberInfo>,
        /// The room's epoch (offsets compare only within one epoch).
        epoch: u64,
        /// Whether the gap after `since` is replayed; false: reload history.
        resumed: bool,
        /// Messages after the user's read mark.
        unread: u64,
    }
    /// Left a room.
    0x22 => Left {
        /// The request this answers.
        req: ReqId,
        /// The room left.
        room: String,
    }
    /// Rooms visible to the caller.
    0x23 => RoomList {
        /// The request this answers.
        req: ReqId,
        /// The rooms.
        rooms: Vec<RoomInfo>,
    }
    /// Members of a room.
    0x24 => UserList {
        /// The request this answers.
        req: ReqId,
        /// The room's name.
        room: String,
        /// Its members.
        users: Vec<MemberInfo>,
    }
    /// A command without a specific answer (edit, delete, react, set role) succeeded.
    0x25 => Done {
        /// The request this answers.
        req: ReqId,
    }
    /// A page of history, oldest first.
    0x26 => HistoryPage {
        /// The request this answers.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The room's epoch the page's offsets belong to.
        epoch: u64,
        /// The messages, oldest first.
        messages: Vec<StoredMessage>,
    }
    /// An upload may proceed; send chunks from `offset` (non-zero when resuming).
    0x27 => UploadReady {
        /// The request this answers.
        req: ReqId,
        /// The upload's id (32 hex digits).
        upload: String,
        /// Bytes the server already holds: send chunks from here.
        offset: u64,
    }
    /// The upload is complete and verified; reference it by `upload` in a message.
    0x28 => UploadDone {
        /// The request this answers.
        req: ReqId,
        /// The upload's id, to name in a Send's `attachment`.
        upload: String,
        /// Download path on the gateway's HTTP server (add `?ticket=`).
        url: String,
    }

    // ---- room events 0x30-0x4F (server->client, shard or hot-room stream) ----
    /// A chat message.
    0x30 => RoomMessage {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// The message's server-assigned id.
        id: MsgId,
        /// The author's user id.
        author: UserId,
        /// The author's nick.
        nick: String,
        /// When it happened: milliseconds since the Unix epoch, by the server's clock.
        ts_ms: u64,
        /// The message text.
        text: String,
        /// Id of the attached upload, if any.
        attachment: Option<String>,
    }
    /// A message's text was replaced.
    0x31 => MessageEdited {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// The message edited.
        id: MsgId,
        /// Who edited it.
        by: UserId,
        /// When it happened: milliseconds since the Unix epoch, by the server's clock.
        ts_ms: u64,
        /// The new text.
        text: String,
    }
    /// A message was deleted.
    0x32 => MessageDeleted {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// The message deleted (0: a placeholder for an event the store refused).
        id: MsgId,
        /// Who deleted it.
        by: UserId,
    }
    /// A reaction was added or removed.
    0x33 => ReactionChanged {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// The message reacted to.
        id: MsgId,
        /// Who reacted.
        user: UserId,
        /// Their nick.
        nick: String,
        /// The reaction.
        emoji: String,
        /// True if added, false if removed.
        added: bool,
    }
    /// Someone joined the room.
    0x34 => MemberJoined {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// Who joined.
        user: UserId,
        /// Their nick.
        nick: String,
        /// Their role in the room.
        role: Role,
    }
    /// Someone left the room.
    0x35 => MemberLeft {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// Who left.
        user: UserId,
        /// Their nick.
        nick: String,
    }
    /// A member's role or nick changed.
    0x36 => MemberUpdated {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// The member.
        user: UserId,
        /// Their current nick.
        nick: String,
        /// Their current role.
        role: Role,
    }
    /// A moderator acted on a member; kick and ban also remove them from the room.
    /// `until_ms`: end of a mute (0 = until unmuted, or not a mute).
    0x37 => MemberModerated {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// The member acted on.
        user: UserId,
        /// Their nick.
        nick: String,
        /// What was done.
        action: ModAction,
        /// The moderator.
        by: UserId,
        /// End of a mute, in milliseconds since the Unix epoch (0 = until unmuted, or not a mute).
        until_ms: u64,
        /// The moderator's reason (may be empty).
        reason: String,
    }
    /// The room's display title changed (its name, the id clients join by, never does).
    0x38 => RoomRenamed {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// The new display title.
        title: String,
        /// Who renamed it.
        by: UserId,
    }
    /// The room was deleted: its last event; members are removed and its history is gone.
    0x39 => RoomDeleted {
        /// The room the event belongs to.
        room: String,
        /// This event's offset in the room's sequence.
        offset: Offset,
        /// Who deleted it.
        by: UserId,
    }

    // ---- shard management 0x50-0x5F (server->client, control stream) ----
    /// How rooms map onto shard streams for this session.
    0x50 => ShardAssignment {
        /// Number of shard streams; a room is on shard `shard_of(room, num_shards)`.
        num_shards: u16,
    }
    /// The room now has its own stream; its events arrive there.
    0x51 => RoomPromoted {
        /// The room promoted.
        room: String,
    }
    /// The room is back on its shard stream.
    0x52 => RoomDemoted {
        /// The room demoted.
        room: String,
        /// The shard stream its events arrive on again.
        shard: u16,
    }

    // ---- acks 0x60-0x6F ----
    /// The server accepted a Send / DirectMessage (control stream).
    0x60 => MessageAck {
        /// The request this answers.
        req: ReqId,
        /// The room the message was posted to (for a DirectMessage: the direct room).
        room: String,
        /// The id the server assigned to the message.
        id: MsgId,
        /// The room offset of the message's event.
        offset: Offset,
    }
    /// The client has received a message (acks stream).
    0x61 => Delivered {
        /// The room's name.
        room: String,
        /// The message received.
        id: MsgId,
    }
    /// The client's user has read a message (acks stream).
    0x62 => Read {
        /// The room's name.
        room: String,
        /// The message read.
        id: MsgId,
    }
    /// To a message's author: `user` received or read it (control stream).
    0x63 => Receipt {
        /// The room's name.
        room: String,
        /// The author's message.
        id: MsgId,
        /// Who received or read it.
        user: UserId,
        /// Their nick.
        nick: String,
        /// True for read, false for received.
        read: bool,
    }

    // ---- uploads 0x70-0x7F (commands stream for start/complete, upload stream for chunks) ----
    /// Start (or resume: same name, size and hash) an upload.
    0x70 => UploadStart {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// File name (no path separator, at most 255 characters).
        name: String,
        /// MIME type of the file.
        content_type: String,
        /// Total size in bytes.
        size: u64,
        /// SHA-256 of the whole file (32 bytes), checked at completion.
        sha256: Vec<u8>,
    }
    /// Bytes of an upload at `offset` (upload stream).
    0x71 => UploadChunk {
        /// The upload's id from UploadReady.
        upload: String,
        /// Where in the file `data` starts; must be the bytes the server holds.
        offset: u64,
        /// The bytes (at most 256 KiB).
        data: Vec<u8>,
    }
    /// All bytes sent: verify size and SHA-256.
    0x72 => UploadComplete {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The upload's id.
        upload: String,
    }

    // ---- datagrams 0x80-0x8F (unreliable; payloads stay under 1,200 bytes) ----
    /// Someone is typing in a room (the client sends user 0 and an empty nick; the server fills them in).
    0x80 => Typing {
        /// The room typed in.
        room: String,
        /// Who is typing (0 from the client; the server fills it in).
        user: UserId,
        /// Their nick (empty from the client).
        nick: String,
    }
    /// A user came online or went offline.
    0x81 => Presence {
        /// The user.
        user: UserId,
        /// Their nick.
        nick: String,
        /// True when they came online.
        online: bool,
    }

    // ---- room administration 0x90-0x9F (client->server, commands stream) ----
    /// Set the room's display title.
    0x90 => RenameRoom {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
        /// The new title (empty: show the name).
        title: String,
    }
    /// Delete the room and its history.
    0x91 => DeleteRoom {
        /// Request id chosen by the client; the reply carries it back.
        req: ReqId,
        /// The room's name.
        room: String,
    }

    // ---- error 0xFF ----
    /// An error, in reply to request `req` if it has one.
    0xFF => Error {
        /// The request it answers; `None` when not tied to a request.
        req: Option<ReqId>,
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    }
}

impl Message {
    /// Encode into one contiguous frame (header + payload), ready to write.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[self.frame_type() as u8, 0, 0, 0, 0]);
        let mut out = self.write_payload(out);
        let len = (out.len() - HEADER_LEN) as u32;
        out[1..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
        out.into()
    }

    /// Decode one whole frame from contiguous bytes (a datagram): header, payload, nothing after.
    pub fn decode_datagram(data: &[u8], max_frame: usize) -> Result<Message, DecodeError> {
        let mut dec = crate::Decoder::new(max_frame);
        dec.push(data);
        let frame = dec.next_frame()?.ok_or(DecodeError::Truncated(data.len()))?;
        dec.finish()?;
        Message::decode(&frame)
    }

    /// The (room, offset) of a sequenced room event, `None` for other messages.
    pub fn room_offset(&self) -> Option<(&str, Offset)> {
        Some(match self {
            Message::RoomMessage(m) => (&m.room, m.offset),
            Message::MessageEdited(m) => (&m.room, m.offset),
            Message::MessageDeleted(m) => (&m.room, m.offset),
            Message::ReactionChanged(m) => (&m.room, m.offset),
            Message::MemberJoined(m) => (&m.room, m.offset),
            Message::MemberLeft(m) => (&m.room, m.offset),
            Message::MemberUpdated(m) => (&m.room, m.offset),
            Message::MemberModerated(m) => (&m.room, m.offset),
            Message::RoomRenamed(m) => (&m.room, m.offset),
            Message::RoomDeleted(m) => (&m.room, m.offset),
            _ => return None,
        })
    }

    /// The request id this message answers, if it is a reply.
    pub fn reply_to(&self) -> Option<ReqId> {
        Some(match self {
            Message::NickOk(m) => m.req,
            Message::Joined(m) => m.req,
            Message::Left(m) => m.req,
            Message::RoomList(m) => m.req,
            Message::UserList(m) => m.req,
            Message::Done(m) => m.req,
            Message::HistoryPage(m) => m.req,
            Message::UploadReady(m) => m.req,
            Message::UploadDone(m) => m.req,
            Message::MessageAck(m) => m.req,
            Message::Error(m) => return m.req,
            _ => return None,
        })
    }

    /// The request id a client command carries.
    pub fn request_id(&self) -> Option<ReqId> {
        Some(match self {
            Message::SetNick(m) => m.req,
            Message::CreateRoom(m) => m.req,
            Message::Join(m) => m.req,
            Message::Leave(m) => m.req,
            Message::Send(m) => m.req,
            Message::Edit(m) => m.req,
            Message::Delete(m) => m.req,
            Message::React(m) => m.req,
            Message::DirectMessage(m) => m.req,
            Message::ListRooms(m) => m.req,
            Message::ListUsers(m) => m.req,
            Message::SetRole(m) => m.req,
            Message::History(m) => m.req,
            Message::UploadStart(m) => m.req,
            Message::UploadComplete(m) => m.req,
            Message::Moderate(m) => m.req,
            Message::Invite(m) => m.req,
            Message::RenameRoom(m) => m.req,
            Message::DeleteRoom(m) => m.req,
            _ => return None,
        })
    }
}

impl Error {
    /// An error reply to request `req`.
    pub fn reply(req: ReqId, code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Error(Error {
            req: Some(req),
            code,
            message: message.into(),
        })
    }

    /// An error not tied to a request.
    pub fn fatal(code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Error(Error {
            req: None,
            code,
            message: message.into(),
        })
    }
}
