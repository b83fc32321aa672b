//! PostgreSQL behind the store traits: the shared store of a cluster of gateways. A single
//! gateway on it behaves exactly like one on the embedded SQLite store (the same contract
//! tests run against both, `gateway/tests/store_contract.rs`).
//!
//! Durability: a commit returns once PostgreSQL has flushed its WAL (`synchronous_commit`
//! is the server's, `on` by default). The hub's committer groups everything queued into one
//! transaction, so that cost is paid per batch, not per message.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use garou_protocol::{MsgId, Offset, StoredMessage, UserId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};

use super::*;

/// Connections per gateway.
const POOL: u32 = 8;
/// How long a caller waits for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle longer than this is pinged before it is used.
const IDLE_PING: Duration = Duration::from_secs(1);

/// PostgreSQL behind [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    /// The hub term whose commits this store takes (see [`PostgresStore::fenced`]).
    fence: Option<i64>,
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user@host:port/db`) and run the migrations (under
    /// PostgreSQL's advisory lock, so gateways starting together take turns).
    pub async fn open(url: &str) -> Result<PostgresStore> {
        let opts = PgConnectOptions::from_str(url)?.application_name("garou");
        let pool = PgPoolOptions::new()
            .max_connections(POOL)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Ping a connection before use only when it sat idle for a while (it may have
            // been cut meanwhile): a ping before every query was a round trip per commit.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool, fence: None })
    }

    /// Commit only while term `gen` holds the cluster's hub lease
    /// ([`crate::cluster::lease`]): every transaction first checks the lease row under a
    /// share lock, so a node that lost the lease (and may not know it yet) commits nothing
    /// more: its batches fail with [`StoreError::Fenced`] (never acked, never delivered) and
    /// the node steps down. The share lock also makes a takeover wait for commits in flight.
    pub fn fenced(mut self, gen: u64) -> PostgresStore {
        self.fence = Some(gen as i64);
        self
    }

    /// Where `url` points, without its password: `host:port/database`, for logs.
    pub fn describe(url: &str) -> String {
        match PgConnectOptions::from_str(url) {
            Ok(o) => format!(
                "{}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("(default)")
            ),
            Err(_) => "(unparsable url)".into(),
        }
    }
}

/// Bytes per row of `upload_files`.
const FILE_PIECE: usize = 1 << 20;

fn i(v: u64) -> i64 {
    v as i64
}

fn u(v: i64) -> u64 {
    v as u64
}

/// A text column stored as UTF-8 bytes (see the migration): written from a `String`, so
/// valid; anything else is shown, not refused.
fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Message and Event rows: what every chat message appends (one of each).
fn is_append(op: &Op) -> bool {
    matches!(op, Op::Message { .. } | Op::Event { .. })
}

/// Message and Event ops (what chat traffic commits) as ONE statement: the rows travel as
/// arrays, the three writes (messages, events, each room's `last_offset`) are data-modifying
/// CTEs, and the lease check (when `fence` is given) is a CTE the writes depend on, so a
/// deposed hub writes nothing and learns it from the result. On the pool, a batch of appends
/// only is its own transaction: one round trip instead of six (BEGIN, the lease check, two
/// INSERTs, the offset update, COMMIT); inside a mixed batch's transaction (which checked
/// the lease already) it is one statement of it. The text is fixed, so it is prepared once
/// per connection whatever the batch size.
async fn append<'e>(ex: impl sqlx::PgExecutor<'e>, fence: Option<i64>, ops: &[Op]) -> Result<()> {
    let mut m = MessageColumns::default();
    let (mut e_room, mut e_offset, mut e_ts, mut e_frame) = (vec![], vec![], vec![], vec![]);
    let mut last: Vec<(&str, i64)> = Vec::new();
    for op in ops {
        match op {
            Op::Message {
                id,
                room,
                offset,
                author,
                nick,
                ts_ms,
                text,
                client_id,
                attachment,
            } => {
                m.id.push(i(*id));
                m.room.push(room.as_str());
                m.offset.push(i(*offset));
                m.author.push(i(*author));
                m.nick.push(nick.as_str());
                m.ts.push(i(*ts_ms));
                m.text.push(text.as_bytes());
                m.client_id.push(i(*client_id));
                m.attachment.push(attachment.as_deref());
            }
            Op::Event {
                room,
                offset,
                ts_ms,
                frame,
            } => {
                e_room.push(room.as_str());
                e_offset.push(i(*offset));
                e_ts.push(i(*ts_ms));
                e_frame.push(frame.as_ref());
                match last.iter_mut().find(|(r, _)| *r == room.as_str()) {
                    Some((_, o)) => *o = (*o).max(i(*offset)),
                    None => last.push((room.as_str(), i(*offset))),
                }
            }
            _ => unreachable!("append is given appends only"),
        }
    }
    let (l_room, l_offset): (Vec<&str>, Vec<i64>) = last.into_iter().unzip();
    let held: bool = sqlx::query_scalar(if fence.is_some() { APPEND_FENCED } else { APPEND })
        .bind(fence.unwrap_or(0))
        .bind(m.id)
        .bind(m.room)
        .bind(m.offset)
        .bind(m.author)
        .bind(m.nick)
        .bind(m.ts)
        .bind(m.text)
        .bind(m.client_id)
        .bind(m.attachment)
        .bind(e_room)
        .bind(e_offset)
        .bind(e_ts)
        .bind(e_frame)
        .bind(l_room)
        .bind(l_offset)
        .fetch_one(ex)
        .await?;
    match (held, fence) {
        (false, Some(gen)) => Err(StoreError::Fenced(format!(
            "hub term {gen} no longer holds the lease"
        ))),
        _ => Ok(()),
    }
}

/// Message rows as columns, for `unnest`.
#[derive(Default)]
struct MessageColumns<'a> {
    id: Vec<i64>,
    room: Vec<&'a str>,
    offset: Vec<i64>,
    author: Vec<i64>,
    nick: Vec<&'a str>,
    ts: Vec<i64>,
    text: Vec<&'a [u8]>,
    client_id: Vec<i64>,
    attachment: Vec<Option<&'a str>>,
}

/// [`append`]'s statement. `$1` is the fencing generation (unused here); `lease` holds
/// one row while the batch may be written.
macro_rules! append_sql {
    ($lease:literal) => {
        concat!(
            "WITH lease AS (",
            $lease,
            "), m AS (INSERT INTO messages \
               (id, room, room_offset, author, nick, ts_ms, text, client_id, attachment) \
             SELECT * FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
               $6::text[], $7::bigint[], $8::bytea[], $9::bigint[], $10::text[]) \
             WHERE EXISTS (SELECT 1 FROM lease)), \
             e AS (INSERT INTO events (room, room_offset, ts_ms, frame) \
             SELECT * FROM unnest($11::text[], $12::bigint[], $13::bigint[], $14::bytea[]) \
             WHERE EXISTS (SELECT 1 FROM lease)), \
             r AS (UPDATE rooms SET last_offset = GREATEST(rooms.last_offset, x.o) \
             FROM unnest($15::text[], $16::bigint[]) AS x(name, o) \
             WHERE rooms.name = x.name AND EXISTS (SELECT 1 FROM lease)) \
             SELECT EXISTS (SELECT 1 FROM lease)"
        )
    };
}
/// Unfenced (a single gateway): nothing to check.
const APPEND: &str = append_sql!("SELECT $1::bigint");
/// Fenced: the lease row, share-locked as in [`PostgresStore::apply`]'s transaction, so a
/// takeover waits for this commit.
const APPEND_FENCED: &str = append_sql!("SELECT 1 FROM garou_hub WHERE id = 1 AND gen = $1 FOR SHARE");

/// Every row of `room`: reactions, messages, events, receipts, memberships, sanctions, the
/// room. Uploads stay (their files too) but can no longer be downloaded: that needs membership.
async fn delete_room(tx: &mut sqlx::Transaction<'_, Postgres>, room: &str) -> Result<()> {
    for q in [
        "DELETE FROM reactions WHERE message IN (SELECT id FROM messages WHERE room = $1)",
        "DELETE FROM messages WHERE room = $1",
        "DELETE FROM events WHERE room = $1",
        "DELETE FROM receipts WHERE room = $1",
        "DELETE FROM memberships WHERE room = $1",
        "DELETE FROM sanctions WHERE room = $1",
        "DELETE FROM rooms WHERE name = $1",
    ] {
        sqlx::query(q).bind(room).execute(&mut **tx).await?;
    }
    Ok(())
}

/// One op other than an append, inside the batch's transaction.
async fn apply_one(tx: &mut sqlx::Transaction<'_, Postgres>, op: &Op) -> Result<()> {
    let q = match op {
        Op::User { id, nick } => sqlx::query(
            "INSERT INTO users (id, nick) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET nick = excluded.nick",
        )
        .bind(i(*id))
        .bind(nick),
        Op::Subject { subject, user } => {
            // As SQLite's INSERT OR REPLACE: a subject names one user and a user has one
            // subject, so rows holding either go first.
            sqlx::query("DELETE FROM subjects WHERE subject = $1 OR user_id = $2")
                .bind(subject)
                .bind(i(*user))
                .execute(&mut **tx)
                .await?;
            sqlx::query("INSERT INTO subjects (subject, user_id) VALUES ($1, $2)")
                .bind(subject)
                .bind(i(*user))
        }
        Op::RoomTitle { room, title } => sqlx::query("UPDATE rooms SET title = $1 WHERE name = $2")
            .bind(title)
            .bind(room),
        Op::Sanction {
            room,
            user,
            kind,
            until_ms,
        } => {
            let k = sanction_to_i64(*kind);
            match until_ms {
                Some(until) => sqlx::query(
                    "INSERT INTO sanctions (room, user_id, kind, until_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (room, user_id, kind) DO UPDATE SET until_ms = excluded.until_ms",
                )
                .bind(room)
                .bind(i(*user))
                .bind(k)
                .bind(i(*until)),
                None => sqlx::query("DELETE FROM sanctions WHERE room = $1 AND user_id = $2 AND kind = $3")
                    .bind(room)
                    .bind(i(*user))
                    .bind(k),
            }
        }
        Op::Room { name, kind, epoch } => sqlx::query(
            "INSERT INTO rooms (name, kind, epoch) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(kind_to_i64(*kind))
        .bind(i(*epoch)),
        Op::Member { room, user, role } => sqlx::query(
            "INSERT INTO memberships (room, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (room, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(room)
        .bind(i(*user))
        .bind(role_to_i64(*role)),
        Op::RemoveMember { room, user } => {
            sqlx::query("DELETE FROM memberships WHERE room = $1 AND user_id = $2")
                .bind(room)
                .bind(i(*user))
        }
        Op::Event { .. } | Op::Message { .. } => return append(&mut **tx, None, std::slice::from_ref(op)).await,
        Op::Edit { id, text } => sqlx::query("UPDATE messages SET text = $1, edited = TRUE WHERE id = $2")
            .bind(text.as_bytes())
            .bind(i(*id)),
        Op::Delete { id } => {
            sqlx::query("UPDATE messages SET deleted = TRUE, text = ''::BYTEA WHERE id = $1").bind(i(*id))
        }
        Op::React { id, user, emoji, add } => sqlx::query(if *add {
            "INSERT INTO reactions (message, user_id, emoji) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM reactions WHERE message = $1 AND user_id = $2 AND emoji = $3"
        })
        .bind(i(*id))
        .bind(i(*user))
        .bind(emoji.as_bytes()),
        Op::Receipt {
            room,
            user,
            offset,
            read,
        } => sqlx::query(if *read {
            "INSERT INTO receipts (room, user_id, delivered, read) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (room, user_id) DO UPDATE SET read = GREATEST(receipts.read, $3), \
             delivered = GREATEST(receipts.delivered, $3)"
        } else {
            "INSERT INTO receipts (room, user_id, delivered) VALUES ($1, $2, $3) \
             ON CONFLICT (room, user_id) DO UPDATE SET delivered = GREATEST(receipts.delivered, $3)"
        })
        .bind(room)
        .bind(i(*user))
        .bind(i(*offset)),
        Op::DeleteRoom { room } => return delete_room(tx, room).await,
    };
    q.execute(&mut **tx).await?;
    Ok(())
}

#[async_trait::async_trait]
impl Changes for PostgresStore {
    async fn apply(&self, ops: &[Op]) -> Result<()> {
        if ops.iter().all(is_append) {
            return append(&self.pool, self.fence, ops).await;
        }
        let mut tx = self.pool.begin().await?;
        if let Some(gen) = self.fence {
            let held = sqlx::query("SELECT 1 FROM garou_hub WHERE id = 1 AND gen = $1 FOR SHARE")
                .bind(gen)
                .fetch_optional(&mut *tx)
                .await?;
            if held.is_none() {
                return Err(StoreError::Fenced(format!(
                    "hub term {gen} no longer holds the lease"
                )));
            }
        }
        // Consecutive appends form one group; every other op is a group of its own.
        for group in ops.chunk_by(|a, b| is_append(a) && is_append(b)) {
            if is_append(&group[0]) {
                append(&mut *tx, None, group).await?;
            } else {
                apply_one(&mut tx, &group[0]).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Messages for PostgresStore {
    async fn events(&self, room: &str, after: Offset, upto: Offset) -> Result<Vec<Bytes>> {
        let rows = sqlx::query(
            "SELECT frame FROM events WHERE room = $1 AND room_offset > $2 AND room_offset <= $3 \
             ORDER BY room_offset",
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
        const COLUMNS: &str =
            "SELECT id, room_offset, author, nick, ts_ms, text, edited, deleted, attachment FROM messages";
        let limit = i64::from(limit.clamp(1, 1000));
        let before = before.map_or(i64::MAX, i);
        let rows = if let Some(after) = after {
            sqlx::query(&format!(
                "{COLUMNS} WHERE room = $1 AND room_offset > $2 AND room_offset < $3 \
                 ORDER BY room_offset ASC LIMIT $4"
            ))
            .bind(room)
            .bind(i(after))
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
        } else {
            let mut rows = sqlx::query(&format!(
                "{COLUMNS} WHERE room = $1 AND room_offset < $2 ORDER BY room_offset DESC LIMIT $3"
            ))
            .bind(room)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.reverse();
            rows
        };
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => (a.get::<i64, _>(1), b.get::<i64, _>(1)),
            _ => return Ok(Vec::new()),
        };
        let mut reactions: HashMap<i64, Vec<(String, u32)>> = HashMap::new();
        for x in sqlx::query(
            "SELECT r.message, r.emoji, COUNT(*) FROM reactions r JOIN messages m ON m.id = r.message \
             WHERE m.room = $1 AND m.room_offset BETWEEN $2 AND $3 \
             GROUP BY r.message, r.emoji ORDER BY r.emoji",
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
                .push((utf8(x.get(1)), x.get::<i64, _>(2) as u32));
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let id: i64 = r.get(0);
                StoredMessage {
                    offset: u(r.get(1)),
                    id: u(id),
                    author: u(r.get(2)),
                    nick: r.get(3),
                    ts_ms: u(r.get(4)),
                    text: utf8(r.get(5)),
                    edited: r.get(6),
                    deleted: r.get(7),
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
        let row = sqlx::query(
            "SELECT id, room_offset FROM messages WHERE room = $1 AND author = $2 AND client_id = $3",
        )
        .bind(room)
        .bind(i(author))
        .bind(i(client_id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (u(r.get(0)), u(r.get(1)))))
    }

    async fn recent(&self, room: &str, limit: u32) -> Result<Vec<RecentRecord>> {
        let rows = sqlx::query(
            "SELECT id, room_offset, author, client_id, deleted FROM messages WHERE room = $1 \
             ORDER BY room_offset DESC LIMIT $2",
        )
        .bind(room)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let min_offset = rows.last().map_or(0, |r| r.get::<i64, _>(1));
        let mut reactions: HashMap<i64, Vec<(UserId, String)>> = HashMap::new();
        for x in sqlx::query(
            "SELECT r.message, r.user_id, r.emoji FROM reactions r JOIN messages m ON m.id = r.message \
             WHERE m.room = $1 AND m.room_offset >= $2",
        )
        .bind(room)
        .bind(min_offset)
        .fetch_all(&self.pool)
        .await?
        {
            reactions
                .entry(x.get(0))
                .or_default()
                .push((u(x.get(1)), utf8(x.get(2))));
        }
        Ok(rows
            .iter()
            .rev()
            .map(|r| {
                let id = r.get::<i64, _>(0);
                RecentRecord {
                    id: u(id),
                    offset: u(r.get(1)),
                    author: u(r.get(2)),
                    client_id: u(r.get(3)),
                    deleted: r.get(4),
                    reactions: reactions.remove(&id).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn unread(&self, room: &str, user: UserId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE room = $1 AND author <> $2 AND NOT deleted AND room_offset > \
             COALESCE((SELECT read FROM receipts WHERE room = $1 AND user_id = $2), 0)",
        )
        .bind(room)
        .bind(i(user))
        .fetch_one(&self.pool)
        .await?;
        Ok(u(n))
    }

    async fn trim(&self, room: &str, rule: Retention, now_ms: u64) -> Result<Offset> {
        let mut cutoff: i64 = 0; // events with offset <= cutoff go
        if rule.max_messages > 0 {
            let nth: Option<i64> = sqlx::query_scalar(
                "SELECT room_offset FROM messages WHERE room = $1 ORDER BY room_offset DESC LIMIT 1 OFFSET $2",
            )
            .bind(room)
            .bind(i(rule.max_messages))
            .fetch_optional(&self.pool)
            .await?;
            cutoff = cutoff.max(nth.unwrap_or(0));
        }
        if rule.max_age_secs > 0 {
            let oldest = i(now_ms.saturating_sub(rule.max_age_secs * 1000));
            let newest_old: Option<i64> =
                sqlx::query_scalar("SELECT MAX(room_offset) FROM events WHERE room = $1 AND ts_ms < $2")
                    .bind(room)
                    .bind(oldest)
                    .fetch_one(&self.pool)
                    .await?;
            cutoff = cutoff.max(newest_old.unwrap_or(0));
        }
        let mut tx = self.pool.begin().await?;
        if cutoff > 0 {
            for q in [
                "DELETE FROM reactions WHERE message IN \
                 (SELECT id FROM messages WHERE room = $1 AND room_offset <= $2)",
                "DELETE FROM messages WHERE room = $1 AND room_offset <= $2",
                "DELETE FROM events WHERE room = $1 AND room_offset <= $2",
            ] {
                sqlx::query(q).bind(room).bind(cutoff).execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE rooms SET first_offset = GREATEST(first_offset, $1) WHERE name = $2")
                .bind(cutoff + 1)
                .bind(room)
                .execute(&mut *tx)
                .await?;
        }
        let first: Option<i64> = sqlx::query_scalar("SELECT first_offset FROM rooms WHERE name = $1")
            .bind(room)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(first.map_or(1, u))
    }
}

#[async_trait::async_trait]
impl Rooms for PostgresStore {
    async fn rooms(&self) -> Result<Vec<RoomRecord>> {
        let rows = sqlx::query("SELECT name, kind, epoch, last_offset, first_offset, title FROM rooms")
            .fetch_all(&self.pool)
            .await?;
        let mut rooms: Vec<RoomRecord> = rows
            .iter()
            .map(|r| RoomRecord {
                name: r.get(0),
                kind: kind_from_i64(r.get(1)),
                epoch: u(r.get(2)),
                last_offset: u(r.get(3)),
                first_offset: u(r.get(4)),
                members: Vec::new(),
                title: r.get(5),
                sanctions: Vec::new(),
            })
            .collect();
        let index: HashMap<String, usize> = rooms
            .iter()
            .enumerate()
            .map(|(n, r)| (r.name.clone(), n))
            .collect();
        for row in sqlx::query("SELECT room, user_id, kind, until_ms FROM sanctions")
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(&n) = index.get(&row.get::<String, _>(0)) {
                let kind = sanction_from_i64(row.get(2));
                rooms[n].sanctions.push((u(row.get(1)), kind, u(row.get(3))));
            }
        }
        for m in sqlx::query("SELECT room, user_id, role FROM memberships")
            .fetch_all(&self.pool)
            .await?
        {
            if let Some(&n) = index.get(&m.get::<String, _>(0)) {
                rooms[n].members.push((u(m.get(1)), role_from_i64(m.get(2))));
            }
        }
        Ok(rooms)
    }

    async fn read_marks(&self) -> Result<Vec<(String, UserId, Offset)>> {
        let rows = sqlx::query("SELECT room, user_id, read FROM receipts WHERE read > 0")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), u(r.get(1)), u(r.get(2))))
            .collect())
    }

    async fn delete_room(&self, room: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        delete_room(&mut tx, room).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Users for PostgresStore {
    async fn users(&self) -> Result<Vec<(UserId, String)>> {
        let rows = sqlx::query("SELECT id, nick FROM users")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (u(r.get(0)), r.get(1))).collect())
    }

    async fn subjects(&self) -> Result<Vec<(String, UserId)>> {
        let rows = sqlx::query("SELECT subject, user_id FROM subjects")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), u(r.get(1)))).collect())
    }

    async fn max_id(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT GREATEST(COALESCE((SELECT MAX(id) FROM users), 0), COALESCE((SELECT MAX(id) FROM messages), 0))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u(n))
    }
}

#[async_trait::async_trait]
impl Uploads for PostgresStore {
    fn keeps_files(&self) -> bool {
        true
    }

    async fn file_put(&self, id: &str, path: &std::path::Path) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let io = |e: std::io::Error| StoreError::Other(format!("reading upload {id}: {e}"));
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM upload_files WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let mut piece = vec![0u8; FILE_PIECE];
        for n in 0i32.. {
            let mut len = 0;
            while len < piece.len() {
                let got = file.read(&mut piece[len..]).await.map_err(io)?;
                if got == 0 {
                    break;
                }
                len += got;
            }
            if len == 0 && n > 0 {
                break;
            }
            sqlx::query("INSERT INTO upload_files (id, n, data) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(n)
                .bind(&piece[..len])
                .execute(&mut *tx)
                .await?;
            if len < piece.len() {
                break;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn file_get(&self, id: &str, path: &std::path::Path) -> Result<bool> {
        use futures::TryStreamExt;
        use tokio::io::AsyncWriteExt;
        let io = |e: std::io::Error| StoreError::Other(format!("writing upload {id}: {e}"));
        // Written beside the final path, then renamed: a reader never sees half a file.
        let tmp = path.with_extension(format!("fetch{}", rand::random::<u32>()));
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut rows =
            sqlx::query_scalar::<_, Vec<u8>>("SELECT data FROM upload_files WHERE id = $1 ORDER BY n")
                .bind(id)
                .fetch(&self.pool);
        let mut any = false;
        let written = async {
            while let Some(data) = rows.try_next().await? {
                any = true;
                file.write_all(&data).await.map_err(io)?;
            }
            file.flush().await.map_err(io)?;
            Ok::<_, StoreError>(())
        }
        .await;
        drop(rows);
        if written.is_err() || !any {
            let _ = tokio::fs::remove_file(&tmp).await;
            return written.map(|()| false);
        }
        tokio::fs::rename(&tmp, path).await.map_err(io)?;
        Ok(true)
    }

    async fn upload_begin(&self, new: UploadRecord) -> Result<UploadRecord> {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM uploads WHERE owner = $1 AND sha256 = $2 AND size = $3 AND name = $4 LIMIT 1",
        )
        .bind(i(new.owner))
        .bind(&new.sha256)
        .bind(i(new.size))
        .bind(&new.name)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = existing {
            if let Some(rec) = self.upload(&id).await? {
                return Ok(rec);
            }
        }
        sqlx::query(
            "INSERT INTO uploads (id, owner, name, content_type, size, sha256, received, complete) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, FALSE)",
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
        sqlx::query("UPDATE uploads SET received = $1, complete = $2 WHERE id = $3")
            .bind(i(received))
            .bind(complete)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upload_attach(&self, id: &str, room: &str) -> Result<()> {
        sqlx::query("UPDATE uploads SET room = COALESCE(room, $1) WHERE id = $2")
            .bind(room)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        let row = sqlx::query(
            "SELECT id, owner, name, content_type, size, sha256, received, complete, room FROM uploads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| UploadRecord {
            id: r.get(0),
            owner: u(r.get(1)),
            name: r.get(2),
            content_type: r.get(3),
            size: u(r.get(4)),
            sha256: r.get(5),
            received: u(r.get(6)),
            complete: r.get(7),
            room: r.get(8),
        }))
    }

    async fn upload_usage(&self, owner: UserId) -> Result<(u64, u64)> {
        // SUM of BIGINT is NUMERIC in PostgreSQL: cast back.
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN owner = $1 THEN size ELSE 0 END), 0)::BIGINT, \
             COALESCE(SUM(size), 0)::BIGINT FROM uploads",
        )
        .bind(i(owner))
        .fetch_one(&self.pool)
        .await?;
        Ok((u(row.get(0)), u(row.get(1))))
    }

    async fn upload_delete(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
