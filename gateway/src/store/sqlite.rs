//! The embedded default store: SQLite in WAL mode with `synchronous = FULL` (configurable).
//!
//! Why FULL: an acknowledged message must survive `kill -9` and a power cut. In WAL mode,
//! NORMAL already survives a killed process (the WAL write is in the OS page cache), but
//! not losing power; FULL fsyncs the WAL at every commit. Its cost is paid once per batch,
//! not per message: the hub's committer groups everything queued into one transaction.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use bytes::Bytes;
use garou_protocol::{Offset, StoredMessage, UserId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use super::*;

/// SQLite behind [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (creating if needed) `dir/garou.db` with `synchronous = FULL` and run the migrations.
    pub async fn open(dir: &Path) -> Result<SqliteStore> {
        Self::open_with(dir, crate::config::SqliteSynchronous::Full).await
    }

    /// [`open`](Self::open) with the configured `synchronous` setting.
    pub async fn open_with(dir: &Path, sync: crate::config::SqliteSynchronous) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        let url = format!("sqlite://{}", dir.join("garou.db").display());
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                crate::config::SqliteSynchronous::Full => SqliteSynchronous::Full,
                crate::config::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file on this machine cannot hang up: no ping (a round trip to the
            // connection's thread) before every query.
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

/// The batch's SQL: one string of statements with their values, run in one call.
type Batch<'a> = sqlx::QueryBuilder<'a, sqlx::Sqlite>;

/// Every row of `room`: reactions, messages, events, receipts, memberships, the room.
/// Uploads stay (their files too) but can no longer be downloaded: that needs membership.
fn delete_room<'a>(q: &mut Batch<'a>, room: &'a str) {
    for (stmt, end) in [
        (
            "DELETE FROM reactions WHERE message IN (SELECT id FROM messages WHERE room = ",
            ");",
        ),
        ("DELETE FROM messages WHERE room = ", ";"),
        ("DELETE FROM events WHERE room = ", ";"),
        ("DELETE FROM receipts WHERE room = ", ";"),
        ("DELETE FROM memberships WHERE room = ", ";"),
        ("DELETE FROM sanctions WHERE room = ", ";"),
        ("DELETE FROM rooms WHERE name = ", ";"),
    ] {
        q.push(stmt).push_bind(room).push(end);
    }
}

/// Rows per multi-row INSERT (9 columns each: far below SQLite's bound-variable limit).
const APPEND_ROWS: usize = 128;

/// Message and Event rows: what every chat message appends (one of each).
fn is_append(op: &Op) -> bool {
    matches!(op, Op::Message { .. } | Op::Event { .. })
}

/// A run of consecutive Message / Event ops as multi-row INSERTs, plus one `last_offset`
/// update for every room they touch: three statements per batch instead of three per
/// message. Messages and events live in different tables, so only the order within each
/// table matters, and it is kept.
fn append<'a>(q: &mut Batch<'a>, ops: &'a [Op]) {
    let messages: Vec<&Op> = ops.iter().filter(|op| matches!(op, Op::Message { .. })).collect();
    for chunk in messages.chunks(APPEND_ROWS) {
        q.push("INSERT INTO messages (id, room, offset, author, nick, ts_ms, text, client_id, attachment) ");
        q.push_values(chunk, |mut row, op| {
            if let Op::Message {
                id,
                room,
                offset,
                author,
                nick,
                ts_ms,
                text,
                client_id,
                attachment,
            } = op
            {
                row.push_bind(i(*id))
                    .push_bind(room.as_str())
                    .push_bind(i(*offset))
                    .push_bind(i(*author))
                    .push_bind(nick.as_str())
                    .push_bind(i(*ts_ms))
                    .push_bind(text.as_str())
                    .push_bind(i(*client_id))
                    .push_bind(attachment.as_deref());
            }
        });
        q.push(";");
    }
    let events: Vec<&Op> = ops.iter().filter(|op| matches!(op, Op::Event { .. })).collect();
    let mut last: Vec<(&'a str, Offset)> = Vec::new();
    for chunk in events.chunks(APPEND_ROWS) {
        q.push("INSERT INTO events (room, offset, ts_ms, frame) ");
        q.push_values(chunk, |mut row, op| {
            if let Op::Event {
                room,
                offset,
                ts_ms,
                frame,
            } = op
            {
                row.push_bind(room.as_str())
                    .push_bind(i(*offset))
                    .push_bind(i(*ts_ms))
                    .push_bind(frame.as_ref());
                match last.iter_mut().find(|(r, _)| *r == room.as_str()) {
                    Some((_, o)) => *o = (*o).max(*offset),
                    None => last.push((room.as_str(), *offset)),
                }
            }
        });
        q.push(";");
    }
    for (room, offset) in last {
        q.push("UPDATE rooms SET last_offset = MAX(last_offset, ")
            .push_bind(i(offset))
            .push(") WHERE name = ")
            .push_bind(room)
            .push(";");
    }
}

/// One op other than an append.
fn push_op<'a>(q: &mut Batch<'a>, op: &'a Op) {
    match op {
        Op::User { id, nick } => {
            q.push("INSERT INTO users (id, nick) VALUES (")
                .push_bind(i(*id))
                .push(", ")
                .push_bind(nick.as_str())
                .push(") ON CONFLICT(id) DO UPDATE SET nick = excluded.nick;");
        }
        Op::Subject { subject, user } => {
            q.push("INSERT OR REPLACE INTO subjects (subject, user) VALUES (")
                .push_bind(subject.as_str())
                .push(", ")
                .push_bind(i(*user))
                .push(");");
        }
        Op::RoomTitle { room, title } => {
            q.push("UPDATE rooms SET title = ")
                .push_bind(title.as_str())
                .push(" WHERE name = ")
                .push_bind(room.as_str())
                .push(";");
        }
        Op::Sanction {
            room,
            user,
            kind,
            until_ms,
        } => {
            let k = sanction_to_i64(*kind);
            match until_ms {
                Some(until) => q
                    .push("INSERT OR REPLACE INTO sanctions (room, user, kind, until_ms) VALUES (")
                    .push_bind(room.as_str())
                    .push(", ")
                    .push_bind(i(*user))
                    .push(", ")
                    .push_bind(k)
                    .push(", ")
                    .push_bind(i(*until))
                    .push(");"),
                None => q
                    .push("DELETE FROM sanctions WHERE room = ")
                    .push_bind(room.as_str())
                    .push(" AND user = ")
                    .push_bind(i(*user))
                    .push(" AND kind = ")
                    .push_bind(k)
                    .push(";"),
            };
        }
        Op::Room { name, kind, epoch } => {
            q.push("INSERT OR IGNORE INTO rooms (name, kind, epoch) VALUES (")
                .push_bind(name.as_str())
                .push(", ")
                .push_bind(kind_to_i64(*kind))
                .push(", ")
                .push_bind(i(*epoch))
                .push(");");
        }
        Op::Member { room, user, role } => {
            q.push("INSERT INTO memberships (room, user, role) VALUES (")
                .push_bind(room.as_str())
                .push(", ")
                .push_bind(i(*user))
                .push(", ")
                .push_bind(role_to_i64(*role))
                .push(") ON CONFLICT(room, user) DO UPDATE SET role = excluded.role;");
        }
        Op::RemoveMember { room, user } => {
            q.push("DELETE FROM memberships WHERE room = ")
                .push_bind(room.as_str())
                .push(" AND user = ")
                .push_bind(i(*user))
                .push(";");
        }
        Op::Event { .. } | Op::Message { .. } => append(q, std::slice::from_ref(op)),
        Op::Edit { id, text } => {
            q.push("UPDATE messages SET text = ")
                .push_bind(text.as_str())
                .push(", edited = 1 WHERE id = ")
                .push_bind(i(*id))
                .push(";");
        }
        Op::Delete { id } => {
            q.push("UPDATE messages SET deleted = 1, text = '' WHERE id = ")
                .push_bind(i(*id))
                .push(";");
        }
        Op::React { id, user, emoji, add } => {
            q.push(if *add {
                "INSERT OR IGNORE INTO reactions (message, user, emoji) VALUES ("
            } else {
                "DELETE FROM reactions WHERE (message, user, emoji) = ("
            })
            .push_bind(i(*id))
            .push(", ")
            .push_bind(i(*user))
            .push(", ")
            .push_bind(emoji.as_str())
            .push(");");
        }
        Op::Receipt {
            room,
            user,
            offset,
            read,
        } => {
            // Placeholders are positional across the batch's statements, so no `?3` reuse:
            // the conflict clause reads the new values from `excluded`.
            q.push("INSERT INTO receipts (room, user, delivered, read) VALUES (")
                .push_bind(room.as_str())
                .push(", ")
                .push_bind(i(*user))
                .push(", ")
                .push_bind(i(*offset))
                .push(", ")
                .push_bind(if *read { i(*offset) } else { 0 })
                .push(
                    ") ON CONFLICT(room, user) DO UPDATE SET \
                     read = MAX(read, excluded.read), delivered = MAX(delivered, excluded.delivered);",
                );
        }
        Op::DeleteRoom { room } => delete_room(q, room),
    }
}

fn i(v: u64) -> i64 {
    v as i64
}

#[async_trait::async_trait]
impl Changes for SqliteStore {
    /// The whole batch (BEGIN, every statement, COMMIT) is one string run in one call: one
    /// round trip to the connection's SQLite thread per commit instead of one per statement
    /// (each is two context switches; with acquire's ping, BEGIN, the appends, the offset
    /// update and COMMIT, a one-message commit used to take six).
    async fn apply(&self, ops: &[Op]) -> Result<()> {
        let mut q = Batch::new("BEGIN IMMEDIATE;");
        // Consecutive appends form one group; every other op is a group of its own.
        for group in ops.chunk_by(|a, b| is_append(a) && is_append(b)) {
            if is_append(&group[0]) {
                append(&mut q, group);
            } else {
                push_op(&mut q, &group[0]);
            }
        }
        q.push("COMMIT;");
        let mut conn = self.pool.acquire().await?;
        if let Err(e) = q.build().execute(&mut *conn).await {
            // A statement that failed left the transaction open: roll it back here, or the
            // connection goes back to the pool inside it. (When BEGIN itself failed there is
            // nothing to roll back and SQLite says so: that error means nothing.)
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                // Either no transaction was open or the connection is broken; it is not
                // worth telling which: a fresh connection replaces it.
                conn.close_on_drop();
            }
            return Err(e.into());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Messages for SqliteStore {
    async fn events(&self, room: &str, after: Offset, upto: Offset) -> Result<Vec<Bytes>> {
        let rows = sqlx::query(
            "SELECT frame FROM events WHERE room = ? AND offset > ? AND offset <= ? ORDER BY offset",
        )
        .bind(room)
        .bind(i(after))
        .bind(i(upto))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| Bytes::from(r.get::<Vec<u8>, _>(0))).collect())
    }

    async fn messages(
        &self,
        room: &str,
        before: Option<Offset>,
        after: Option<Offset>,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        let limit = i64::from(limit.clamp(1, 1000));
        let before = before.map_or(i64::MAX, i);
        // With only `after` (or neither after nor before: the newest), page forwards or backwards.
        let rows = if let Some(after) = after {
            sqlx::query(
                "SELECT id, offset, author, nick, ts_ms, text, edited, deleted, attachment FROM messages \
                 WHERE room = ? AND offset > ? AND offset < ? ORDER BY offset ASC LIMIT ?",
            )
            .bind(room)
            .bind(i(after))
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
        } else {
            let mut rows = sqlx::query(
                "SELECT id, offset, author, nick, ts_ms, text, edited, deleted, attachment FROM messages \
                 WHERE room = ? AND offset < ? ORDER BY offset DESC LIMIT ?",
            )
            .bind(room)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.reverse();
            rows
        };
        // Reaction counts of the whole page in one query.
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => (a.get::<i64, _>(1), b.get::<i64, _>(1)),
            _ => return Ok(Vec::new()),
        };
        let mut reactions: HashMap<i64, Vec<(String, u32)>> = HashMap::new();
        for x in sqlx::query(
            "SELECT r.message, r.emoji, COUNT(*) FROM reactions r JOIN messages m ON m.id = r.message \
             WHERE m.room = ? AND m.offset BETWEEN ? AND ? GROUP BY r.message, r.emoji ORDER BY r.emoji",
        )
        .bind(room)
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?
        {
            reactions
                .entry(x.get(0))
                .or_default()
                .push((x.get(1), x.get::<i64, _>(2) as u32));
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let id: i64 = r.get(0);
                StoredMessage {
                    offset: r.get::<i64, _>(1) as u64,
                    id: id as u64,
                    author: r.get::<i64, _>(2) as u64,
                    nick: r.get(3),
                    ts_ms: r.get::<i64, _>(4) as u64,
                    text: r.get(5),
                    edited: r.get::<i64, _>(6) != 0,
                    deleted: r.get::<i64, _>(7) != 0,
                    attachment: r.get(8),
                    reactions: reactions.remove(&id).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn client_message(
        &self,
        room: &str,
        author: UserId,
        client_id: u64,
    ) -> Result<Option<(MsgId, Offset)>> {
        // Served by the `messages_by_client_id` index.
        let row =
            sqlx::query("SELECT id, offset FROM messages WHERE room = ? AND author = ? AND client_id = ?")
                .bind(room)
                .bind(i(author))
                .bind(i(client_id))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| (r.get::<i64, _>(0) as u64, r.get::<i64, _>(1) as u64)))
    }

    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<RecentRecord>> {
        let rows = sqlx::query(
            "SELECT id, offset, author, client_id, deleted FROM messages WHERE room = ? \
             ORDER BY offset DESC LIMIT ?",
        )
        .bind(room)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        // One query for the reactions of every loaded message (not one per message).
        let min_offset = rows.last().map_or(0, |r| r.get::<i64, _>(1));
        let mut reactions: HashMap<i64, Vec<(UserId, String)>> = HashMap::new();
        for x in sqlx::query(
            "SELECT r.message, r.user, r.emoji FROM reactions r JOIN messages m ON m.id = r.message \
             WHERE m.room = ? AND m.offset >= ?",
        )
        .bind(room)
        .bind(min_offset)
        .fetch_all(&self.pool)
        .await?
        {
            reactions
                .entry(x.get(0))
                .or_default()
                .push((x.get::<i64, _>(1) as u64, x.get(2)));
        }
        Ok(rows
            .iter()
            .rev()
            .map(|r| {
                let id = r.get::<i64, _>(0);
                RecentRecord {
                    id: id as u64,
                    offset: r.get::<i64, _>(1) as u64,
                    author: r.get::<i64, _>(2) as u64,
                    client_id: r.get::<i64, _>(3) as u64,
                    deleted: r.get::<i64, _>(4) != 0,
                    reactions: reactions.remove(&id).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn unread(&self, room: &str, user: UserId) -> Result<u64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM messages WHERE room = ?1 AND author != ?2 AND deleted = 0 AND offset > \
             COALESCE((SELECT read FROM receipts WHERE room = ?1 AND user = ?2), 0)",
        )
        .bind(room)
        .bind(i(user))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    async fn trim(&self, room: &str, rule: Retention, now_ms: u64) -> Result<Offset> {
        let mut cutoff: i64 = 0; // events with offset <= cutoff go
        if rule.max_messages > 0 {
            if let Some(r) = sqlx::query(
                "SELECT offset FROM messages WHERE room = ? ORDER BY offset DESC LIMIT 1 OFFSET ?",
            )
            .bind(room)
            .bind(i(rule.max_messages))
            .fetch_optional(&self.pool)
            .await?
            {
                cutoff = cutoff.max(r.get::<i64, _>(0));
            }
        }
        if rule.max_age_secs > 0 {
            let oldest = i(now_ms.saturating_sub(rule.max_age_secs * 1000));
            if let Some(r) = sqlx::query("SELECT MAX(offset) FROM events WHERE room = ? AND ts_ms < ?")
                .bind(room)
                .bind(oldest)
                .fetch_optional(&self.pool)
                .await?
            {
                cutoff = cutoff.max(r.get::<Option<i64>, _>(0).unwrap_or(0));
            }
        }
        let mut tx = self.pool.begin().await?;
        if cutoff > 0 {
            sqlx::query("DELETE FROM reactions WHERE message IN (SELECT id FROM messages WHERE room = ? AND offset <= ?)")
                .bind(room)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM messages WHERE room = ? AND offset <= ?")
                .bind(room)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM events WHERE room = ? AND offset <= ?")
                .bind(room)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE rooms SET first_offset = MAX(first_offset, ?) WHERE name = ?")
                .bind(cutoff + 1)
                .bind(room)
                .execute(&mut *tx)
                .await?;
        }
        let first = sqlx::query("SELECT first_offset FROM rooms WHERE name = ?")
            .bind(room)
            .fetch_optional(&mut *tx)
            .await?
            .map_or(1, |r| r.get::<i64, _>(0) as u64);
        tx.commit().await?;
        Ok(first)
    }
}

#[async_trait::async_trait]
impl Rooms for SqliteStore {
    async fn rooms(&self) -> Result<Vec<RoomRecord>> {
        let rows = sqlx::query("SELECT name, kind, epoch, last_offset, first_offset, title FROM rooms")
            .fetch_all(&self.pool)
            .await?;
        let mut rooms: Vec<RoomRecord> = rows
            .iter()
            .map(|r| RoomRecord {
                name: r.get(0),
                kind: kind_from_i64(r.get(1)),
                epoch: r.get::<i64, _>(2) as u64,
                last_offset: r.get::<i64, _>(3) as u64,
                first_offset: r.get::<i64, _>(4) as u64,
                members: Vec::new(),
                title: r.get(5),
                sanctions: Vec::new(),
            })
            .collect();
        let sanctions = sqlx::query("SELECT room, user, kind, until_ms FROM sanctions")
            .fetch_all(&self.pool)
            .await?;
        for row in sanctions {
            let room: String = row.get(0);
            if let Some(r) = rooms.iter_mut().find(|r| r.name == room) {
                let kind = sanction_from_i64(row.get(2));
                r.sanctions
                    .push((row.get::<i64, _>(1) as u64, kind, row.get::<i64, _>(3) as u64));
            }
        }
        let members = sqlx::query("SELECT room, user, role FROM memberships")
            .fetch_all(&self.pool)
            .await?;
        for m in members {
            let room: String = m.get(0);
            if let Some(r) = rooms.iter_mut().find(|r| r.name == room) {
                r.members
                    .push((m.get::<i64, _>(1) as u64, role_from_i64(m.get(2))));
            }
        }
        Ok(rooms)
    }

    async fn read_marks(&self) -> Result<Vec<(String, UserId, Offset)>> {
        let rows = sqlx::query("SELECT room, user, read FROM receipts WHERE read > 0")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<i64, _>(1) as u64, r.get::<i64, _>(2) as u64))
            .collect())
    }

    async fn delete_room(&self, room: &str) -> Result<()> {
        self.apply(&[Op::DeleteRoom {
            room: room.to_owned(),
        }])
        .await
    }
}

#[async_trait::async_trait]
impl Users for SqliteStore {
    async fn users(&self) -> Result<Vec<(UserId, String)>> {
        let rows = sqlx::query("SELECT id, nick FROM users")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<i64, _>(0) as u64, r.get::<String, _>(1)))
            .collect())
    }

    async fn subjects(&self) -> Result<Vec<(String, UserId)>> {
        let rows = sqlx::query("SELECT subject, user FROM subjects")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
            .collect())
    }

    async fn max_id(&self) -> Result<u64> {
        let row = sqlx::query(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM users), 0), COALESCE((SELECT MAX(id) FROM messages), 0))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>(0) as u64)
    }
}

#[async_trait::async_trait]
impl Uploads for SqliteStore {
    async fn upload_begin(&self, new: UploadRecord) -> Result<UploadRecord> {
        let existing = sqlx::query(
            "SELECT id FROM uploads WHERE owner = ? AND sha256 = ? AND size = ? AND name = ? LIMIT 1",
        )
        .bind(i(new.owner))
        .bind(&new.sha256)
        .bind(i(new.size))
        .bind(&new.name)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = existing {
            let id: String = row.get(0);
            if let Some(rec) = self.upload(&id).await? {
                return Ok(rec);
            }
        }
        sqlx::query(
            "INSERT INTO uploads (id, owner, name, content_type, size, sha256, received, complete) \
             VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
        )
        .bind(&new.id)
        .bind(i(new.owner))
        .bind(&new.name)
        .bind(&new.content_type)
        .bind(i(new.size))
        .bind(&new.sha256)
        .execute(&self.pool)
        .await?;
        Ok(UploadRecord {
            received: 0,
            complete: false,
            room: None,
            ..new
        })
    }

    async fn upload_progress(&self, id: &str, received: u64, complete: bool) -> Result<()> {
        sqlx::query("UPDATE uploads SET received = ?, complete = ? WHERE id = ?")
            .bind(i(received))
            .bind(complete)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upload_attach(&self, id: &str, room: &str) -> Result<()> {
        sqlx::query("UPDATE uploads SET room = COALESCE(room, ?) WHERE id = ?")
            .bind(room)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        let row = sqlx::query(
            "SELECT id, owner, name, content_type, size, sha256, received, complete, room FROM uploads WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| UploadRecord {
            id: r.get(0),
            owner: r.get::<i64, _>(1) as u64,
            name: r.get(2),
            content_type: r.get(3),
            size: r.get::<i64, _>(4) as u64,
            sha256: r.get(5),
            received: r.get::<i64, _>(6) as u64,
            complete: r.get::<i64, _>(7) != 0,
            room: r.get(8),
        }))
    }

    async fn upload_usage(&self, owner: UserId) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN owner = ? THEN size ELSE 0 END), 0), COALESCE(SUM(size), 0) FROM uploads",
        )
        .bind(i(owner))
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64))
    }

    async fn upload_delete(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garou_protocol::{Role, RoomKind};

    #[tokio::test]
    async fn synchronous_follows_the_config() {
        use crate::config::SqliteSynchronous as Sync;
        for (sync, pragma) in [(Sync::Full, 2), (Sync::Normal, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let s = SqliteStore::open_with(dir.path(), sync).await.unwrap();
            let got: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&s.pool)
                .await
                .unwrap();
            assert_eq!(got, pragma, "{sync:?}");
        }
    }

    #[tokio::test]
    async fn batches_survive_reopening_and_history_pages() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).await.unwrap();
            let mut ops = vec![
                Op::User {
                    id: 1,
                    nick: "ann".into(),
                },
                Op::Room {
                    name: "r".into(),
                    kind: RoomKind::Group,
                    epoch: 77,
                },
                Op::Member {
                    room: "r".into(),
                    user: 1,
                    role: Role::Owner,
                },
            ];
            for o in 1..=30u64 {
                ops.push(Op::Event {
                    room: "r".into(),
                    offset: o,
                    ts_ms: o,
                    frame: Bytes::from(vec![o as u8]),
                });
                ops.push(Op::Message {
                    id: 100 + o,
                    room: "r".into(),
                    offset: o,
                    author: 1,
                    nick: "ann".into(),
                    ts_ms: o,
                    text: format!("m{o}"),
                    client_id: o,
                    attachment: None,
                });
            }
            ops.push(Op::Edit {
                id: 101,
                text: "edited".into(),
            });
            ops.push(Op::React {
                id: 101,
                user: 1,
                emoji: "👍".into(),
                add: true,
            });
            s.apply(&ops).await.unwrap();
        }
        let s = SqliteStore::open(dir.path()).await.unwrap();
        let rooms = s.rooms().await.unwrap();
        assert_eq!(
            (rooms[0].epoch, rooms[0].last_offset, rooms[0].members.len()),
            (77, 30, 1)
        );
        assert_eq!(s.max_id().await.unwrap(), 130);
        assert_eq!(
            s.events("r", 10, 12).await.unwrap(),
            vec![Bytes::from(vec![11u8]), Bytes::from(vec![12u8])]
        );
        let page = s.messages("r", None, None, 5).await.unwrap();
        assert_eq!(
            page.iter().map(|m| m.offset).collect::<Vec<_>>(),
            vec![26, 27, 28, 29, 30]
        );
        let page = s.messages("r", None, Some(0), 2).await.unwrap();
        assert_eq!((page[0].text.as_str(), page[0].edited), ("edited", true));
        assert_eq!(page[0].reactions, vec![("👍".to_string(), 1)]);
        assert_eq!(
            s.recent("r", 100).await.unwrap()[0].reactions,
            vec![(1, "👍".to_string())]
        );
        let first = s
            .trim(
                "r",
                Retention {
                    max_messages: 10,
                    max_age_secs: 0,
                },
                0,
            )
            .await
            .unwrap();
        assert_eq!(first, 21);
        assert!(s.events("r", 0, 20).await.unwrap().is_empty());
        assert_eq!(s.messages("r", None, Some(0), 100).await.unwrap().len(), 10);
    }

    /// One batch larger than a multi-row INSERT, two rooms interleaved, and an edit between
    /// two append runs that targets a row of the first run.
    #[tokio::test]
    async fn append_runs_keep_every_row_and_the_order_of_edits() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        let mut ops = vec![Op::User {
            id: 1,
            nick: "ann".into(),
        }];
        for room in ["a", "b"] {
            ops.push(Op::Room {
                name: room.into(),
                kind: RoomKind::Group,
                epoch: 1,
            });
        }
        let mut id = 0;
        let mut push = |ops: &mut Vec<Op>, room: &str, offset: u64| {
            id += 1;
            ops.push(Op::Message {
                id,
                room: room.into(),
                offset,
                author: 1,
                nick: "ann".into(),
                ts_ms: offset,
                text: format!("{room}{offset}"),
                client_id: id,
                attachment: None,
            });
            ops.push(Op::Event {
                room: room.into(),
                offset,
                ts_ms: offset,
                frame: Bytes::from(format!("{room}{offset}")),
            });
        };
        for o in 1..=200 {
            push(&mut ops, "a", o);
            push(&mut ops, "b", o);
        }
        ops.push(Op::Edit {
            id: 1,
            text: "edited".into(),
        });
        for o in 201..=300 {
            push(&mut ops, "a", o);
        }
        s.apply(&ops).await.unwrap();
        let rooms = s.rooms().await.unwrap();
        let last = |name: &str| rooms.iter().find(|r| r.name == name).unwrap().last_offset;
        assert_eq!((last("a"), last("b")), (300, 200));
        let a = s.messages("a", None, Some(0), 1000).await.unwrap();
        assert_eq!(a.len(), 300);
        assert_eq!((a[0].text.as_str(), a[0].edited), ("edited", true));
        assert!(a.windows(2).all(|w| w[0].offset + 1 == w[1].offset));
        assert_eq!(a[299].text, "a300");
        let b = s.events("b", 0, 200).await.unwrap();
        assert_eq!(b.len(), 200);
        assert_eq!(b[199], Bytes::from("b200"));
    }

    /// Store errors are classified from real SQLite failures: a broken UNIQUE index is a
    /// Conflict, a database another connection holds locked is Unavailable.
    #[tokio::test]
    async fn errors_are_classified_conflict_or_unavailable() {
        use sqlx::{ConnectOptions, Connection};
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        let room = Op::Room {
            name: "r".into(),
            kind: RoomKind::Group,
            epoch: 1,
        };
        let message = |id, client_id| Op::Message {
            id,
            room: "r".into(),
            offset: id,
            author: 1,
            nick: "ann".into(),
            ts_ms: 1,
            text: "hi".into(),
            client_id,
            attachment: None,
        };
        s.apply(&[room, message(1, 7)]).await.unwrap();
        assert_eq!(s.client_message("r", 1, 7).await.unwrap(), Some((1, 1)));
        let e = s.apply(&[message(2, 7)]).await.unwrap_err();
        assert!(e.is_conflict(), "{e:?}");
        assert_eq!(s.client_message("r", 1, 7).await.unwrap(), Some((1, 1)));

        // Another connection takes the write lock; ours gives up at once.
        let db = dir.path().join("garou.db");
        let mut holder = SqliteConnectOptions::new().filename(&db).connect().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();
        let mut writer = SqliteConnectOptions::new()
            .filename(&db)
            .busy_timeout(std::time::Duration::ZERO)
            .connect()
            .await
            .unwrap();
        let busy = sqlx::query("INSERT INTO users (id, nick) VALUES (9, 'x')")
            .execute(&mut writer)
            .await
            .unwrap_err();
        let e = StoreError::from(busy);
        assert!(e.is_unavailable(), "{e:?}");
        assert_eq!(e.kind(), "unavailable");
        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        holder.close().await.unwrap();
        writer.close().await.unwrap();
        // A query that is wrong is neither.
        let bad = sqlx::query("SELECT nope FROM nowhere")
            .execute(&s.pool)
            .await
            .unwrap_err();
        assert_eq!(StoreError::from(bad).kind(), "other");
    }

    #[tokio::test]
    async fn delete_room_removes_only_that_room() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        let mut ops = vec![Op::User {
            id: 1,
            nick: "ann".into(),
        }];
        for (n, room) in ["gone", "kept"].into_iter().enumerate() {
            let id = 10 + n as u64;
            ops.extend([
                Op::Room {
                    name: room.into(),
                    kind: RoomKind::Group,
                    epoch: 1,
                },
                Op::Member {
                    room: room.into(),
                    user: 1,
                    role: Role::Owner,
                },
                Op::Event {
                    room: room.into(),
                    offset: 1,
                    ts_ms: 1,
                    frame: Bytes::from_static(b"x"),
                },
                Op::Message {
                    id,
                    room: room.into(),
                    offset: 1,
                    author: 1,
                    nick: "ann".into(),
                    ts_ms: 1,
                    text: "hi".into(),
                    client_id: 1,
                    attachment: None,
                },
                Op::React {
                    id,
                    user: 1,
                    emoji: "x".into(),
                    add: true,
                },
                Op::Receipt {
                    room: room.into(),
                    user: 1,
                    offset: 1,
                    read: true,
                },
            ]);
        }
        s.apply(&ops).await.unwrap();
        s.delete_room("gone").await.unwrap();
        let rooms: Vec<String> = s.rooms().await.unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(rooms, ["kept"]);
        assert!(s.messages("gone", None, None, 10).await.unwrap().is_empty());
        assert!(s.events("gone", 0, 10).await.unwrap().is_empty());
        assert_eq!(
            s.messages("kept", None, None, 10).await.unwrap()[0]
                .reactions
                .len(),
            1
        );
        assert_eq!(s.events("kept", 0, 10).await.unwrap().len(), 1);
        let marks = s.read_marks().await.unwrap();
        assert_eq!(marks, [("kept".to_owned(), 1, 1)]);
        // As an op, in a batch with other changes.
        s.apply(&[Op::DeleteRoom { room: "kept".into() }]).await.unwrap();
        assert!(s.rooms().await.unwrap().is_empty());
    }
}
