//! Durable state behind small traits, one per concern: [`Changes`] (the batched writes),
//! [`Messages`], [`Rooms`], [`Users`], [`Uploads`]; [`Store`] is all of them. SQLite embedded
//! by default ([`sqlite`]), PostgreSQL as the shared store of a cluster ([`postgres`]). The
//! hub keeps the live state in memory and writes every change through [`Changes::apply`] in
//! batches (group commit); it loads everything back at start.
//!
//! Failures are typed ([`StoreError`]): a conflict belongs to one change and never stops
//! the process; an unavailable store is retried; anything else is reported.

mod error;
mod op;
#[cfg(feature = "postgres")]
pub mod postgres;
mod records;
pub mod sqlite;

use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::{MsgId, Offset, Role, RoomKind, StoredMessage, UserId};

pub use error::{Result, StoreError};
pub use op::{Op, SanctionKind};
pub use records::{RecentRecord, Retention, RoomRecord, UploadRecord};

use crate::config::{SqliteSynchronous, StoreLocation};

/// Open the configured store (see [`crate::config::StoreConfig`]), logging which one.
pub async fn open(location: &StoreLocation, sync: SqliteSynchronous) -> Result<Arc<dyn Store>> {
    match location {
        StoreLocation::Sqlite(dir) => {
            let store = sqlite::SqliteStore::open_with(dir, sync).await?;
            tracing::info!(dir = %dir.display(), synchronous = ?sync, "store: SQLite (WAL)");
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        StoreLocation::Postgres(url) => {
            let store = postgres::PostgresStore::open(url).await?;
            tracing::info!(at = %postgres::PostgresStore::describe(url), "store: PostgreSQL");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        StoreLocation::Postgres(_) => Err(StoreError::Other(
            "this garou was built without the `postgres` feature".into(),
        )),
    }
}

/// The write path: batches of [`Op`]s from the hub's committer, in order.
#[async_trait::async_trait]
pub trait Changes: Send + Sync + 'static {
    /// Apply a batch atomically and durably: when this returns Ok, it survives a crash;
    /// when it fails, none of it was applied.
    async fn apply(&self, ops: &[Op]) -> Result<()>;
}

/// Room history: events replayed on recovery, message pages, idempotency, retention.
#[async_trait::async_trait]
pub trait Messages: Send + Sync + 'static {
    /// Encoded events with `after < offset <= upto`, in order.
    async fn events(&self, room: &str, after: Offset, upto: Offset) -> Result<Vec<Bytes>>;
    /// A page of messages, oldest first: with `after`, the oldest ones after it (and before
    /// `before`, if given); otherwise the newest ones before `before` (or the newest).
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
    /// The newest `limit` messages of a room, oldest first.
    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<RecentRecord>>;
    /// Messages after the user's read mark, not written by the user.
    async fn unread(&self, room: &str, user: UserId) -> Result<u64>;
    /// Apply a room kind's retention; returns the room's new first offset.
    async fn trim(&self, room: &str, rule: Retention, now_ms: u64) -> Result<Offset>;
}

/// Rooms with their members, sanctions and titles, and the read marks in them.
#[async_trait::async_trait]
pub trait Rooms: Send + Sync + 'static {
    /// Every room, as loaded at start.
    async fn rooms(&self) -> Result<Vec<RoomRecord>>;
    /// Every (room, user, read offset).
    async fn read_marks(&self) -> Result<Vec<(String, UserId, Offset)>>;
    /// Delete a room with its messages, reactions, events, receipts and memberships.
    async fn delete_room(&self, room: &str) -> Result<()>;
}

/// Users, their token subjects, and the id counter.
#[async_trait::async_trait]
pub trait Users: Send + Sync + 'static {
    /// Every (id, nick).
    async fn users(&self) -> Result<Vec<(UserId, String)>>;
    /// Token subjects and their users.
    async fn subjects(&self) -> Result<Vec<(String, UserId)>>;
    /// Highest id used by users and messages (ids continue after it).
    async fn max_id(&self) -> Result<u64>;
}

/// Upload bookkeeping (the bytes themselves are files, see [`crate::uploads`]).
#[async_trait::async_trait]
pub trait Uploads: Send + Sync + 'static {
    /// Find a resumable upload of `owner` with this hash and size, or record a new one.
    async fn upload_begin(&self, new: UploadRecord) -> Result<UploadRecord>;
    /// Record how many bytes arrived, and whether the upload is complete.
    async fn upload_progress(&self, id: &str, received: u64, complete: bool) -> Result<()>;
    /// Tie an upload to the room of the first message that references it (kept after).
    async fn upload_attach(&self, id: &str, room: &str) -> Result<()>;
    /// One upload's record.
    async fn upload(&self, id: &str) -> Result<Option<UploadRecord>>;
    /// Bytes reserved by uploads (their declared sizes, finished or not): `owner`'s, all.
    async fn upload_usage(&self, owner: UserId) -> Result<(u64, u64)>;
    /// Forget an upload record (a refused new upload; its files are the caller's).
    async fn upload_delete(&self, id: &str) -> Result<()>;
    /// Whether this store keeps the bytes of complete uploads too (PostgreSQL: a cluster's
    /// nodes share it), so a node can serve a file whose upload went through another.
    /// Otherwise the files under `--data` are the only copy.
    fn keeps_files(&self) -> bool {
        false
    }
    /// Keep the complete upload `id`, read from `path` (no-op unless [`Uploads::keeps_files`]).
    async fn file_put(&self, _id: &str, _path: &std::path::Path) -> Result<()> {
        Ok(())
    }
    /// Write the kept bytes of upload `id` to `path`: false when the store has none.
    async fn file_get(&self, _id: &str, _path: &std::path::Path) -> Result<bool> {
        Ok(false)
    }
}

/// The whole store: every concern. Implemented by anything that implements them all, so a
/// caller holding `Arc<dyn Store>` can use any part of it.
pub trait Store: Changes + Messages + Rooms + Users + Uploads {}

impl<T: Changes + Messages + Rooms + Users + Uploads> Store for T {}

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

pub(crate) fn sanction_to_i64(k: SanctionKind) -> i64 {
    match k {
        SanctionKind::Ban => 0,
        SanctionKind::Mute => 1,
    }
}

pub(crate) fn sanction_from_i64(k: i64) -> SanctionKind {
    match k {
        0 => SanctionKind::Ban,
        _ => SanctionKind::Mute,
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
