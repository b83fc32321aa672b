//! Durable state behind one trait: SQLite embedded by default ([`sqlite`]), PostgreSQL for a
//! cluster later. The hub keeps the live state in memory and writes every change through
//! [`Store::apply`] in batches (group commit); it loads everything back at start.

pub mod sqlite;

use bytes::Bytes;
use garou_protocol::{MsgId, Offset, Role, RoomKind, StoredMessage, UserId};

/// A store failure, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row broke a constraint (a UNIQUE index, a foreign key): this change can never
    /// be applied as it is; retrying it is pointless, other changes are unaffected.
    #[error("store conflict: {0}")]
    Conflict(String),
    /// The store cannot be reached or written right now (I/O error, disk full, busy or
    /// locked, pool timeout, connection lost): retry the same change later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bad migration, a corrupt file, a bug).
    #[error("store: {0}")]
    Other(String),
}

impl StoreError {
    /// A constraint violation (see [`StoreError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict(_))
    }

    /// A transient failure worth retrying (see [`StoreError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// A short label for logs and metrics: `conflict`, `unavailable` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Conflict(_) => "conflict",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Other(_) => "other",
        }
    }
}

/// SQLite primary result codes (the low byte of an extended code) that mean "try again":
/// BUSY, LOCKED, NOMEM, READONLY (a file or directory made read-only), IOERR, FULL,
/// CANTOPEN, PROTOCOL.
const SQLITE_TRANSIENT: [i64; 8] = [5, 6, 7, 8, 10, 13, 14, 15];
/// SQLITE_CONSTRAINT.
const SQLITE_CONSTRAINT: i64 = 19;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let text = e.to_string();
        match &e {
            sqlx::Error::Database(db) => {
                let primary = db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
                match db.kind() {
                    ErrorKind::UniqueViolation
                    | ErrorKind::ForeignKeyViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation => StoreError::Conflict(text),
                    _ if primary == Some(SQLITE_CONSTRAINT) => StoreError::Conflict(text),
                    _ if primary.is_some_and(|c| SQLITE_TRANSIENT.contains(&c)) => {
                        StoreError::Unavailable(text)
                    }
                    _ => StoreError::Other(text),
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(text),
            _ => StoreError::Other(text),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            e => StoreError::Other(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One change, applied with others of its batch in a single transaction.
#[derive(Debug, Clone)]
pub enum Op {
    User {
        id: UserId,
        nick: String,
    },
    Room {
        name: String,
        kind: RoomKind,
        epoch: u64,
    },
    Member {
        room: String,
        user: UserId,
        role: Role,
    },
    RemoveMember {
        room: String,
        user: UserId,
    },
    /// A sequenced room event, stored as the frame clients receive.
    Event {
        room: String,
        offset: Offset,
        ts_ms: u64,
        frame: Bytes,
    },
    Message {
        id: MsgId,
        room: String,
        offset: Offset,
        author: UserId,
        nick: String,
        ts_ms: u64,
        text: String,
        client_id: u64,
        attachment: Option<String>,
    },
    Edit {
        id: MsgId,
        text: String,
    },
    Delete {
        id: MsgId,
    },
    React {
        id: MsgId,
        user: UserId,
        emoji: String,
        add: bool,
    },
    Receipt {
        room: String,
        user: UserId,
        offset: Offset,
        read: bool,
    },
    /// Forget a room and everything in it (see [`Store::delete_room`]); as an op it is
    /// ordered with the room's other changes by the committer.
    DeleteRoom {
        room: String,
    },
    /// A token user's subject (`sub` claim).
    Subject {
        subject: String,
        user: UserId,
    },
    RoomTitle {
        room: String,
        title: String,
    },
    /// Set (`until_ms`: end, 0 = none) or lift (`None`) a ban or mute.
    Sanction {
        room: String,
        user: UserId,
        kind: SanctionKind,
        until_ms: Option<u64>,
    },
}

/// What a moderator imposed on a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanctionKind {
    Ban,
    Mute,
}

/// A room as loaded at start.
#[derive(Debug, Clone)]
pub struct RoomRecord {
    pub name: String,
    pub kind: RoomKind,
    pub epoch: u64,
    pub last_offset: Offset,
    pub first_offset: Offset,
    pub members: Vec<(UserId, Role)>,
    pub title: String,
    /// Bans and mutes: (user, kind, until_ms with 0 = no end).
    pub sanctions: Vec<(UserId, SanctionKind, u64)>,
}

/// A recent message as loaded at start (for edits, reactions, receipts, idempotency).
#[derive(Debug, Clone)]
pub struct RecentRecord {
    pub id: MsgId,
    pub offset: Offset,
    pub author: UserId,
    pub client_id: u64,
    pub deleted: bool,
    pub reactions: Vec<(UserId, String)>,
}

/// An upload's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub owner: UserId,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: Vec<u8>,
    pub received: u64,
    pub complete: bool,
    /// The room of the first message that referenced it (download needs membership).
    pub room: Option<String>,
}

/// Retention rule of one room kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Keep at most this many messages (0: no limit).
    pub max_messages: u64,
    /// Drop messages older than this (0: no limit).
    pub max_age_secs: u64,
}

/// The store. Methods are called from the hub's committer (writes, in order) and from
/// request handlers (reads).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Apply a batch atomically and durably: when this returns Ok, it survives a crash.
    async fn apply(&self, ops: &[Op]) -> Result<()>;
    async fn users(&self) -> Result<Vec<(UserId, String)>>;
    /// Token subjects and their users.
    async fn subjects(&self) -> Result<Vec<(String, UserId)>>;
    async fn rooms(&self) -> Result<Vec<RoomRecord>>;
    /// The newest `limit` messages of a room, oldest first.
    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<RecentRecord>>;
    /// Highest id used by users and messages (ids continue after it).
    async fn max_id(&self) -> Result<u64>;
    /// Encoded events with `after < offset <= upto`, in order.
    async fn events(&self, room: &str, after: Offset, upto: Offset) -> Result<Vec<Bytes>>;
    /// A page of messages, oldest first.
    async fn messages(
        &self,
        room: &str,
        before: Option<Offset>,
        after: Option<Offset>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>>;
    /// The message `author` sent to `room` with `client_id`, as (id, offset), if the store
    /// holds it: the authority on idempotent publishing once the hub's in-memory window
    /// has forgotten some of the room's messages.
    async fn client_message(
        &self,
        room: &str,
        author: UserId,
        client_id: u64,
    ) -> Result<Option<(MsgId, Offset)>>;
    /// Messages after the user's read mark, not written by the user.
    async fn unread(&self, room: &str, user: UserId) -> Result<u64>;
    /// Every (room, user, read offset).
    async fn read_marks(&self) -> Result<Vec<(String, UserId, Offset)>>;
    /// Apply a room kind's retention; returns the room's new first offset.
    async fn trim(&self, room: &str, rule: Retention, now_ms: u64) -> Result<Offset>;
    /// Find a resumable upload of `owner` with this hash and size, or record a new one.
    async fn upload_begin(&self, new: UploadRecord) -> Result<UploadRecord>;
    async fn upload_progress(&self, id: &str, received: u64, complete: bool) -> Result<()>;
    async fn upload_attach(&self, id: &str, room: &str) -> Result<()>;
    async fn upload(&self, id: &str) -> Result<Option<UploadRecord>>;
    /// Bytes reserved by uploads (their declared sizes, finished or not): `owner`'s, all.
    async fn upload_usage(&self, owner: UserId) -> Result<(u64, u64)>;
    /// Forget an upload record (a refused new upload; its files are the caller's).
    async fn upload_delete(&self, id: &str) -> Result<()>;
    /// Delete a room with its messages, reactions, events, receipts and memberships.
    async fn delete_room(&self, room: &str) -> Result<()>;
}

pub(crate) fn kind_to_i64(k: RoomKind) -> i64 {
    match k {
        RoomKind::Direct => 0,
        RoomKind::Group => 1,
        RoomKind::Channel => 2,
    }
}

pub(crate) fn kind_from_i64(k: i64) -> RoomKind {
    match k {
        0 => RoomKind::Direct,
        2 => RoomKind::Channel,
        _ => RoomKind::Group,
    }
}

pub(crate) fn role_to_i64(r: Role) -> i64 {
    r as i64
}

pub(crate) fn role_from_i64(r: i64) -> Role {
    match r {
        0 => Role::Guest,
        2 => Role::Moderator,
        3 => Role::Admin,
        4 => Role::Owner,
        _ => Role::Member,
    }
}
