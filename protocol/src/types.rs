//! Small domain types shared by messages, the hub and the clients.

use serde::{Deserialize, Serialize};

/// Client-chosen id of a request; the reply (or Error frame) carries it back.
pub type ReqId = u32;
/// Server-assigned user id, stable for the life of the user record.
pub type UserId = u64;
/// Server-assigned message id, unique per gateway.
pub type MsgId = u64;
/// Per-room sequence number. Every room event gets the next one; clients deliver a
/// room's events strictly in offset order, whatever stream they arrived on.
pub type Offset = u64;

/// Kinds of room (seed 000).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// Private 1:1 conversation: exactly two members, not listed, not joinable.
    Direct,
    /// Multi-user chat: joiners become members and may post.
    Group,
    /// Public broadcast channel: joiners become guests (read-only) until promoted.
    Channel,
}

/// A moderation action on one member of a room.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModAction {
    /// Remove from the room; they may join again.
    Kick,
    /// No posting, editing or reacting for `secs` seconds (0 = until unmuted).
    Mute,
    /// Lift a mute.
    Unmute,
    /// Remove from the room and refuse their joins until unbanned.
    Ban,
    /// Lift a ban.
    Unban,
}

/// Member roles, weakest first, so `role >= Role::Moderator` reads naturally.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Read-only.
    Guest,
    /// Posts, edits and deletes own messages, reacts.
    Member,
    /// Also deletes others' messages; mutes and kicks.
    Moderator,
    /// Also manages members and roles below admin.
    Admin,
    /// Full control, can delete the room.
    Owner,
}

impl Role {
    /// Lower-case name, as shown in member lists and accepted by `/role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parse a lower-case role name.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "guest" => Role::Guest,
            "member" => Role::Member,
            "moderator" | "mod" => Role::Moderator,
            "admin" => Role::Admin,
            "owner" => Role::Owner,
            _ => return None,
        })
    }
}

/// How a client proves who it is in the Auth frame.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Open dev mode: a nick alone.
    Nick(String),
    /// A signed token (JWT), once auth is configured.
    Token(String),
}

/// A room as listed to clients.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's name: the id clients join it by, which never changes.
    pub name: String,
    /// Direct, group or channel.
    pub kind: RoomKind,
    /// How many members the room has.
    pub members: u32,
    /// Display title set by RenameRoom (empty: show the name).
    pub title: String,
}

/// Where a client left off in a room: recovery asks for everything after `offset`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Since {
    /// The last offset the client delivered in the room.
    pub offset: Offset,
    /// The room's epoch that offset belongs to (offsets compare only within one epoch).
    pub epoch: u64,
}

/// A message as history returns it (its latest text; edits and deletion applied).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// The room offset of the message's event.
    pub offset: Offset,
    /// The message's id, which edits, deletes and reactions refer to.
    pub id: MsgId,
    /// User id of the author.
    pub author: UserId,
    /// The author's nick.
    pub nick: String,
    /// When it was posted: milliseconds since the Unix epoch, by the server's clock.
    pub ts_ms: u64,
    /// Its latest text (edits applied).
    pub text: String,
    /// Whether it was edited after posting.
    pub edited: bool,
    /// Whether it was deleted.
    pub deleted: bool,
    /// The upload attached to it (the id from `UploadDone`), if any.
    pub attachment: Option<String>,
    /// (emoji, count)
    pub reactions: Vec<(String, u32)>,
}

/// A member of a room as listed to clients.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's user id.
    pub user: UserId,
    /// The member's nick.
    pub nick: String,
    /// The member's role in this room.
    pub role: Role,
    /// Whether the user has a live session now.
    pub online: bool,
}

/// What a server->client uni stream (or client->server uni stream) carries; sent as the
/// first frame on every uni stream so the receiver can route it without guessing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// client->server: chat commands.
    Commands,
    /// client->server: delivered/read acks.
    Acks,
    /// client->server: bulk upload.
    Upload,
    /// server->client: events of every non-hot room hashed onto this shard.
    Shard(u16),
    /// server->client: events of one hot room.
    Hot(String),
}

/// Machine-readable error codes carried by Error frames and close reasons.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// Bytes that are not a valid frame (unknown type, bad length).
    BadFrame = 1,
    /// Frame larger than the negotiated maximum.
    FrameTooLarge = 2,
    /// A payload that does not decode as its frame type says.
    BadPayload = 3,
    /// Hello with a protocol version this server does not speak.
    UnsupportedVersion = 4,
    /// A valid frame sent at the wrong time or on the wrong stream.
    OutOfState = 5,
    /// Credentials refused.
    AuthFailed = 6,
    /// The nick is in use or invalid.
    NickUnavailable = 7,
    /// No such room.
    NoSuchRoom = 8,
    /// A room with that name exists already.
    RoomExists = 9,
    /// The command needs membership of the room.
    NotMember = 10,
    /// The sender's role does not allow this action.
    Forbidden = 11,
    /// No such message (or it is too old to edit).
    NoSuchMessage = 12,
    /// No such user.
    NoSuchUser = 13,
    /// Sending too fast.
    RateLimited = 14,
    /// The client did not read fast enough and was dropped.
    SlowConsumer = 15,
    /// A limit was reached (rooms, members, streams, connections).
    LimitReached = 16,
    /// Invalid argument (empty text, bad room name, ...).
    InvalidArgument = 17,
    /// The server does not support this yet.
    Unsupported = 18,
    /// The request was not answered in time (client-side only).
    Timeout = 19,
    /// The connection went away before the reply (client-side only).
    Disconnected = 20,
    /// The server is shutting down.
    ShuttingDown = 21,
    /// A bug on the server side.
    Internal = 22,
    /// Banned from the room: joining it is refused.
    Banned = 23,
    /// Muted in the room until the time its MemberModerated event said.
    Muted = 24,
    /// An administrator closed this connection (admin API).
    Kicked = 25,
    /// The server cannot store anything right now (its store is down): nothing was
    /// published; try again later. The server recovers by itself.
    Unavailable = 26,
    /// The same client started a new session with this session's resume token: this one
    /// is closed and the new one holds the nick. Terminal: do not reconnect.
    SessionReplaced = 27,
}

impl ErrorCode {
    /// Numeric value, also used as the QUIC application close code.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code with numeric value `n` (e.g. a QUIC application close code), if any.
    pub fn from_u16(n: u16) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match n {
            1 => BadFrame,
            2 => FrameTooLarge,
            3 => BadPayload,
            4 => UnsupportedVersion,
            5 => OutOfState,
            6 => AuthFailed,
            7 => NickUnavailable,
            8 => NoSuchRoom,
            9 => RoomExists,
            10 => NotMember,
            11 => Forbidden,
            12 => NoSuchMessage,
            13 => NoSuchUser,
            14 => RateLimited,
            15 => SlowConsumer,
            16 => LimitReached,
            17 => InvalidArgument,
            18 => Unsupported,
            19 => Timeout,
            20 => Disconnected,
            21 => ShuttingDown,
            22 => Internal,
            23 => Banned,
            24 => Muted,
            25 => Kicked,
            26 => Unavailable,
            27 => SessionReplaced,
            _ => return None,
        })
    }
}

/// Longest resume token accepted, in bytes: a longer one decodes as no token, without
/// being copied.
pub const MAX_RESUME_TOKEN: usize = 64;

/// The server's opaque proof that a new session comes from the client of an earlier one
/// (`Welcome.resume_token`, offered back in `Hello.resume`). Empty: none.
///
/// Appended to Hello and Welcome after they first shipped, so it decodes leniently: a
/// payload that ends before it (an older peer's), or a token longer than
/// [`MAX_RESUME_TOKEN`] or otherwise malformed, decodes as no token instead of an error.
/// It must therefore stay the last field of its frames.
///
/// No token is encoded as nothing at all (not an empty string), so a payload without one
/// is byte for byte an older peer's, and decoding then encoding never adds a byte.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ResumeToken(String);

impl Serialize for ResumeToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        if self.0.is_empty() {
            // An empty tuple: postcard writes no byte for it.
            s.serialize_tuple(0)?.end()
        } else {
            s.serialize_str(&self.0)
        }
    }
}

impl ResumeToken {
    /// A token from its text; one longer than [`MAX_RESUME_TOKEN`] becomes no token.
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        if token.len() > MAX_RESUME_TOKEN {
            return ResumeToken::default();
        }
        ResumeToken(token)
    }

    /// The token's text (empty: none).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ResumeToken {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResumeToken({} bytes)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for ResumeToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Capped;
        impl serde::de::Visitor<'_> for Capped {
            type Value = ResumeToken;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a string of at most {MAX_RESUME_TOKEN} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ResumeToken, E> {
                // Checked before the copy: an oversized token costs no allocation.
                Ok(if v.len() > MAX_RESUME_TOKEN {
                    ResumeToken::default()
                } else {
                    ResumeToken(v.to_owned())
                })
            }
        }
        // Missing (an older peer's payload) or malformed: no token.
        Ok(d.deserialize_str(Capped).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorCode, ResumeToken, MAX_RESUME_TOKEN};

    #[test]
    fn resume_tokens_decode_leniently_and_capped() {
        let t = ResumeToken::new("abc");
        let bytes = postcard::to_allocvec(&t).unwrap();
        assert_eq!(postcard::from_bytes::<ResumeToken>(&bytes).unwrap(), t);
        // Missing (an older peer's payload ends before it).
        assert_eq!(
            postcard::from_bytes::<ResumeToken>(&[]).unwrap(),
            ResumeToken::default()
        );
        // Oversized: no token.
        let long = "x".repeat(MAX_RESUME_TOKEN + 1);
        let bytes = postcard::to_allocvec(&long).unwrap();
        assert!(postcard::from_bytes::<ResumeToken>(&bytes).unwrap().is_empty());
        assert!(ResumeToken::new(long).is_empty());
        // A length past the end, or invalid UTF-8: no token.
        assert!(postcard::from_bytes::<ResumeToken>(&[40, b'a'])
            .unwrap()
            .is_empty());
        assert!(postcard::from_bytes::<ResumeToken>(&[2, 0xff, 0xfe])
            .unwrap()
            .is_empty());
        // No token is no byte (an older peer's payload), so a decoded payload never
        // re-encodes longer (the payload_decoder fuzz target found `Hello` growing by one).
        assert!(postcard::to_allocvec(&ResumeToken::default()).unwrap().is_empty());
        // The secret is never printed.
        assert_eq!(format!("{t:?}"), "ResumeToken(3 bytes)");
    }

    /// Every variant, in declaration order, found without listing them by hand: postcard
    /// encodes a unit variant as its index, and decoding rejects indexes past the last one.
    fn every_code() -> Vec<ErrorCode> {
        (0u8..128)
            .map_while(|i| postcard::from_bytes::<ErrorCode>(&[i]).ok())
            .collect()
    }

    #[test]
    fn error_codes_round_trip_through_u16() {
        let all = every_code();
        // The enumeration works: it finds the first and the (currently) last code.
        assert_eq!(all.first(), Some(&ErrorCode::BadFrame));
        assert_eq!(all.last(), Some(&ErrorCode::SessionReplaced), "{all:?}");
        for c in &all {
            assert_eq!(ErrorCode::from_u16(c.as_u16()), Some(*c), "{c:?}");
        }
        // Nothing else maps to a code.
        let known = (0..=u16::MAX)
            .filter(|&n| ErrorCode::from_u16(n).is_some())
            .count();
        assert_eq!(known, all.len());
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(28), None);
    }
}
