//! The hub: users, rooms, permissions and fan-out. Transport-agnostic.
//!
//! Sessions call it synchronously with decoded commands and get the reply frame back; the
//! hub pushes room events into the [`Conn`] handles of the room's subscribers. No method
//! awaits, and no lock is held across one. Lock order, where two are held: a room's state,
//! then a connection's lane map. The users table is never held while a room is locked.
//!
//! This file holds the [`Hub`] itself: loading it from the store, the clock, the command
//! dispatch, retention and hot rooms. The commands live by concern: [`users`] (login,
//! nicks, disconnect), [`membership`] (join, leave, roles), [`messages`] (send, direct,
//! edit, delete, react), [`lists`] (rooms, members, history), [`presence`] (receipts,
//! typing, online), [`moderation`] and [`admin`]. Below them: [`room`] (one room's state
//! and fan-out), [`commit`] (group commit), [`window`], [`rate`], [`permissions`],
//! [`stats`].

pub mod admin;
#[cfg(test)]
mod cells;
pub mod commit;
#[cfg(test)]
mod idempotency;
mod lists;
mod membership;
mod messages;
mod moderation;
pub mod permissions;
mod presence;
pub mod rate;
mod resume;
pub mod room;
pub mod stats;
#[cfg(test)]
mod tests;
mod users;
pub mod window;

pub use membership::valid_room;
pub use users::valid_nick;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use garou_protocol::*;
use parking_lot::{Mutex, RwLock};

use crate::config::ServerConfig;
use crate::conn::{Conn, ConnId};
use crate::store::{Retention, Store};
use commit::{Committer, Refusal};
use room::{Member, Recent, Room};
use users::{User, Users};

/// A command's outcome: the reply now, `None` when it is sent once the change is durable,
/// or a refusal.
type Reply = Result<Option<Message>, Refusal>;

/// Recovery replays at most this many events; further behind, the client reloads history.
pub const MAX_REPLAY: u64 = 10_000;

fn err<T>(code: ErrorCode, msg: impl Into<String>) -> Result<T, (ErrorCode, String)> {
    Err((code, msg.into()))
}

fn no_room(name: &str) -> (ErrorCode, String) {
    (ErrorCode::NoSuchRoom, format!("no room {name}"))
}

fn not_member(name: &str) -> (ErrorCode, String) {
    (ErrorCode::NotMember, format!("not a member of {name}"))
}

/// Hub settings, taken from [`ServerConfig`].
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub num_shards: u16,
    pub max_message_len: usize,
    pub hot_room_threshold: f64,
    pub cool_down_threshold: f64,
    pub cool_down_period_secs: u64,
    pub max_hot_rooms: usize,
    pub rate_window_secs: u64,
    /// Retention per room kind: direct, group, channel.
    pub retention: [Retention; 3],
    /// Credential checks (open dev mode when it has no keys).
    pub auth: crate::auth::Auth,
    /// Rooms one user may belong to / members one room may have (0 = no limit).
    pub max_rooms_per_user: usize,
    pub max_members_per_room: usize,
    /// Messages each room keeps in memory for edits, reactions, receipts and idempotent
    /// publishing ([`room::RECENT_MESSAGES`] by default). Past it, a re-sent client id is
    /// looked up in the store.
    pub recent_messages: usize,
    /// Messages all rooms together keep in memory ([`window::Windows`]).
    pub recent_messages_total: usize,
    /// How long a session's resume token stays valid after the session was lost (a
    /// session the client closed forgets it at once).
    pub resume_token_ttl: Duration,
}

impl HubConfig {
    fn retention(&self, kind: RoomKind) -> Retention {
        self.retention[crate::store::kind_to_i64(kind) as usize]
    }
}

impl From<&ServerConfig> for HubConfig {
    fn from(c: &ServerConfig) -> Self {
        HubConfig {
            num_shards: c.shard.num_shards,
            max_message_len: c.max_message_len,
            hot_room_threshold: c.shard.hot_room_threshold,
            cool_down_threshold: c.shard.cool_down_threshold,
            cool_down_period_secs: c.shard.cool_down_period_secs,
            max_hot_rooms: c.shard.max_hot_rooms,
            rate_window_secs: c.shard.rate_window_secs,
            retention: [c.retention.direct, c.retention.group, c.retention.channel],
            auth: crate::auth::Auth::open(),
            max_rooms_per_user: c.limits.max_rooms_per_user,
            max_members_per_room: c.limits.max_members_per_room,
            recent_messages: c.recent_messages,
            recent_messages_total: c.recent_messages_total,
            resume_token_ttl: Duration::from_secs(c.resume_token_ttl_secs),
        }
    }
}

/// Shared state of the gateway. See the module docs.
pub struct Hub {
    cfg: HubConfig,
    store: Arc<dyn Store>,
    commits: Committer,
    rooms: RwLock<HashMap<Arc<str>, Arc<Room>>>,
    users: Mutex<Users>,
    conns: Mutex<HashMap<ConnId, Arc<Conn>>>,
    hot: Mutex<HashSet<Arc<str>>>,
    next_id: AtomicU64,
    hot_count: AtomicUsize,
    started: Instant,
    /// Seconds added to the clock (tests move time instead of sleeping).
    skew: AtomicU64,
    /// Session tickets and upload locks.
    uploads: crate::uploads::registry::Registry,
    /// Anonymous guests (a leaf lock: may be taken while a room is locked).
    guests: RwLock<HashSet<UserId>>,
    /// Session addresses for the admin API.
    peers: admin::Peers,
    /// The budget of every room's in-memory window together.
    windows: window::Windows,
    /// What the hub counts about itself (rendered by `/metrics`).
    stats: Arc<stats::Stats>,
}

/// A continuation that sends `msg` to `conn` (once the committer ran it).
fn reply_later(conn: &Arc<Conn>, msg: Message) -> Box<dyn FnOnce() + std::marker::Send> {
    let conn = conn.clone();
    Box::new(move || conn.control(&msg))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Hub {
    /// Load users, rooms, memberships and recent messages from `store`, and start the
    /// committer (on the current tokio runtime).
    pub async fn open(cfg: HubConfig, store: Arc<dyn Store>) -> Result<Arc<Hub>, crate::store::StoreError> {
        let stats = Arc::new(stats::Stats::default());
        let (commits, committer) = Committer::new(store.clone(), stats.clone());
        let mut users = Users {
            resume: resume::ResumeTokens::new(cfg.resume_token_ttl),
            ..Users::default()
        };
        for (id, nick) in store.users().await? {
            users.by_nick.insert(nick.clone(), id);
            users.by_id.insert(id, User::new(nick, false));
        }
        for (subject, id) in store.subjects().await? {
            users.by_subject.insert(subject, id);
        }
        let mut rooms = HashMap::new();
        let windows = window::Windows::new(cfg.recent_messages_total);
        let mut evicted = Vec::new();
        for rec in store.rooms().await? {
            let room = Arc::new(Room::new(
                &rec.name,
                rec.kind,
                rec.epoch,
                cfg.num_shards,
                cfg.rate_window_secs,
                cfg.recent_messages,
                stats.clone(),
            ));
            let window = room.state.lock().core.window();
            let recent = store
                .recent(&rec.name, u32::try_from(window).unwrap_or(u32::MAX))
                .await?;
            if recent.len() >= window {
                // Only the newest were loaded: older client ids are the store's to know.
                room.mark_forgotten();
            }
            {
                let mut st = room.state.lock();
                st.core.offset = rec.last_offset;
                st.core.durable = rec.last_offset;
                st.core.first_offset = rec.first_offset;
                *room.title.lock() = rec.title.clone();
                for &(user, kind, until) in &rec.sanctions {
                    match kind {
                        crate::store::SanctionKind::Ban => {
                            st.core.banned.insert(user);
                        }
                        crate::store::SanctionKind::Mute => {
                            st.core.muted.insert(user, until);
                        }
                    }
                }
                for (user, role) in rec.members {
                    let Some(u) = users.by_id.get_mut(&user) else {
                        continue;
                    };
                    u.rooms.insert(room.name.clone());
                    let nick = u.nick.clone();
                    st.core.set_member(user, Member { nick, role });
                }
                for r in recent {
                    let entry = Recent {
                        author: r.author,
                        offset: r.offset,
                        client_id: r.client_id,
                        deleted: r.deleted,
                        reactions: r.reactions,
                    };
                    evicted.push(room.remember_within(&mut st, r.id, entry, &windows));
                }
            }
            evicted.drain(..).for_each(window::Evictions::apply);
            rooms.insert(room.name.clone(), room);
        }
        for (room, user, read) in store.read_marks().await? {
            if let Some(r) = rooms.get(room.as_str()) {
                r.state.lock().core.read.insert(user, read);
            }
        }
        tokio::spawn(committer);
        Ok(Arc::new(Hub {
            cfg,
            commits,
            next_id: AtomicU64::new(store.max_id().await? + 1),
            store,
            rooms: RwLock::new(rooms),
            users: Mutex::new(users),
            conns: Mutex::new(HashMap::new()),
            hot: Mutex::new(HashSet::new()),
            hot_count: AtomicUsize::new(0),
            started: Instant::now(),
            skew: AtomicU64::new(0),
            uploads: Default::default(),
            guests: RwLock::new(HashSet::new()),
            peers: Default::default(),
            windows,
            stats,
        }))
    }

    /// Resolves once every change queued so far is durable.
    pub async fn flush(&self) {
        self.commits.flush().await;
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// A fresh gateway-wide id (users, connections, messages share the sequence).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn now_sec(&self) -> u64 {
        self.started.elapsed().as_secs() + self.skew.load(Ordering::Relaxed)
    }

    /// The time, as the room core takes it: the wall clock and the hub's seconds.
    fn now(&self) -> room::core::Now {
        room::core::Now {
            ms: now_ms(),
            sec: self.now_sec(),
        }
    }

    /// Move the hub's clock forward (for tests of rate windows and cool-down).
    pub fn advance_clock(&self, secs: u64) {
        self.skew.fetch_add(secs, Ordering::Relaxed);
    }

    /// Connected sessions.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Rooms currently on their own stream.
    pub fn hot_rooms(&self) -> usize {
        self.hot_count.load(Ordering::Relaxed)
    }

    fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.read().get(name).cloned()
    }

    // ------------------------------------------------------------------ sessions

    /// Every connected session (for shutdown and admin).
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        self.conns.lock().values().cloned().collect()
    }

    // ------------------------------------------------------------------ commands

    /// Handle one command from `conn`. The result is the reply frame for its control
    /// stream, or `None` when the reply is sent once the command's change is durable.
    /// (History and uploads are async: see [`Hub::history`] and the session.)
    pub fn command(&self, conn: &Arc<Conn>, msg: Message) -> Option<Message> {
        let req = msg.request_id();
        let result = match msg {
            Message::SetNick(m) => self.set_nick(conn, m),
            Message::CreateRoom(m) => self.join(conn, m.req, &m.room, Some(m.kind), None),
            Message::Join(m) => self.join(conn, m.req, &m.room, None, m.since),
            Message::Leave(m) => self.leave(conn, m),
            Message::Send(m) => self.send(conn, m.req, &m.room, m.client_id, m.text, m.attachment),
            Message::DirectMessage(m) => self.direct(conn, m),
            Message::Edit(m) => self.edit(conn, m),
            Message::Delete(m) => self.delete(conn, m),
            Message::React(m) => self.react(conn, m),
            Message::ListRooms(m) => Ok(Some(self.list_rooms(conn, m.req))),
            Message::ListUsers(m) => self.list_users(conn, m),
            Message::SetRole(m) => self.set_role(conn, m),
            Message::Moderate(m) => self.moderate(conn, m),
            Message::Invite(m) => self.invite(conn, m),
            Message::RenameRoom(m) => self.rename_room(conn, m),
            Message::DeleteRoom(m) => self.delete_room_command(conn, m),
            other => err(
                ErrorCode::OutOfState,
                format!("{:?} is not a command here", other.frame_type()),
            ),
        };
        match result {
            Ok(reply) => reply,
            Err((code, message)) => Some(Message::Error(Error { req, code, message })),
        }
    }

    /// Whether the store takes commits; false while it is unavailable (publishes are then
    /// refused with [`ErrorCode::Unavailable`]).
    pub fn store_healthy(&self) -> bool {
        self.commits.healthy()
    }

    /// Apply age-based retention to every room (called periodically).
    pub async fn trim_all(&self) {
        let rooms: Vec<Arc<Room>> = self.rooms.read().values().cloned().collect();
        for room in rooms {
            let rule = self.cfg.retention(room.kind);
            if rule.max_age_secs == 0 && rule.max_messages == 0 {
                continue;
            }
            match self.store.trim(&room.name, rule, now_ms()).await {
                Ok(first) => {
                    let mut st = room.state.lock();
                    st.core.first_offset = st.core.first_offset.max(first);
                }
                Err(e) => tracing::warn!(error = %e, room = &*room.name, "retention failed"),
            }
        }
    }

    /// Take one of the `max_hot_rooms` slots.
    fn reserve_hot(&self) -> bool {
        self.hot_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cfg.max_hot_rooms).then_some(n + 1)
            })
            .is_ok()
    }

    /// The kind of a live room.
    pub fn room_kind(&self, room: &str) -> Option<RoomKind> {
        self.room(room).map(|r| r.kind)
    }

    /// The store, for handlers that read it directly (uploads, downloads).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// What the hub counts about itself (fan-outs, publish and store latency).
    pub fn stats(&self) -> &stats::Stats {
        &self.stats
    }

    /// Session tickets and upload locks.
    pub fn uploads(&self) -> &crate::uploads::registry::Registry {
        &self.uploads
    }

    // ------------------------------------------------------------------ acks and datagrams

    // ------------------------------------------------------------------ hot rooms

    /// Demote hot rooms that cooled down. Call about once a second.
    pub fn tick(&self) {
        let now = self.now_sec();
        let hot: Vec<Arc<str>> = self.hot.lock().iter().cloned().collect();
        for name in hot {
            let Some(room) = self.room(&name) else { continue };
            let mut st = room.state.lock();
            if st.core.rate.rate(now) >= self.cfg.cool_down_threshold {
                st.core.cool_since = None;
                continue;
            }
            let since = *st.core.cool_since.get_or_insert(now);
            if now.saturating_sub(since) >= self.cfg.cool_down_period_secs {
                tracing::info!(room = &*name, "room demoted to its shard stream");
                room.demote(&mut st);
                self.hot.lock().remove(&name);
                self.hot_count.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}
