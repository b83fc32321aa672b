//! The hub: users, rooms, permissions and fan-out. Transport-agnostic.
//!
//! Sessions call it synchronously with decoded commands and get the reply frame back; the
//! hub pushes room events into the [`Conn`] handles of the room's subscribers. No method
//! awaits, and no lock is held across one. Lock order, where two are held: a room's state,
//! then a connection's lane map. The users table is never held while a room is locked.

pub mod admin;
#[cfg(test)]
mod cells;
pub mod commit;
#[cfg(test)]
mod idempotency;
mod moderation;
pub mod permissions;
pub mod rate;
pub mod room;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod window;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use garou_protocol::*;
use parking_lot::{Mutex, RwLock};

use crate::config::ServerConfig;
use crate::conn::{Conn, ConnId};
use crate::store::{Op, Retention, Store};
use commit::{Committer, Refusal};
use permissions::Action;
use room::{Member, Recent, Room};

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
        }
    }
}

struct User {
    nick: String,
    conns: Vec<Arc<Conn>>,
    rooms: HashSet<Arc<str>>,
    /// Anonymous guest: read-only everywhere, never stored.
    guest: bool,
    /// Roles granted by the user's token, per room (applied when joining).
    grants: HashMap<String, Role>,
}

impl User {
    fn new(nick: String, guest: bool) -> User {
        User {
            nick,
            conns: Vec::new(),
            rooms: HashSet::new(),
            guest,
            grants: HashMap::new(),
        }
    }
}

#[derive(Default)]
struct Users {
    by_nick: HashMap<String, UserId>,
    by_id: HashMap<UserId, User>,
    /// Token subject (`sub`) -> user.
    by_subject: HashMap<String, UserId>,
}

impl Users {
    /// `wanted` made into a valid nick: invalid characters dropped, at most 26 kept
    /// (room for a `-N` suffix), `user` when nothing is left.
    fn base_nick(wanted: &str) -> String {
        let base: String = wanted
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(26)
            .collect();
        if base.is_empty() {
            "user".into()
        } else {
            base
        }
    }

    /// `wanted` made into a valid nick nobody has: [`Users::base_nick`], then `-2`, `-3`,
    /// ... appended while taken.
    fn free_nick(&self, wanted: &str) -> String {
        let base = Users::base_nick(wanted);
        if !self.by_nick.contains_key(&base) {
            return base;
        }
        (2u64..)
            .map(|n| format!("{base}-{n}"))
            .find(|n| !self.by_nick.contains_key(n))
            .expect("some suffix is free")
    }
}

/// A guest renamed because a registered user signed in with its nick.
struct Displaced {
    user: UserId,
    nick: String,
    conns: Vec<Arc<Conn>>,
    rooms: Vec<Arc<str>>,
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

/// Valid nicks: 1-32 chars of letters, digits, `_`, `-`, `.`.
pub fn valid_nick(nick: &str) -> bool {
    (1..=32).contains(&nick.chars().count())
        && nick
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Valid room names: 1-64 chars of letters, digits, `_`, `-`, `.`, `#` (`:` is reserved
/// for direct rooms, named `dm:<user>:<user>`).
pub fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.chars().count())
        && room
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '#'))
}

/// Trim a history page so its frame stays within `max_frame` (1,000 messages of 16 KiB
/// would not): paging back keeps the newest messages, paging forward (`forward`) the oldest;
/// the client asks again from where the page ends. Sizes are over-estimated per message.
fn fit_page(messages: &mut Vec<StoredMessage>, forward: bool, max_frame: usize) {
    let cost = |m: &StoredMessage| {
        64 + m.nick.len()
            + m.text.len()
            + m.attachment.as_ref().map_or(0, String::len)
            + m.reactions.iter().map(|(e, _)| e.len() + 8).sum::<usize>()
    };
    let mut budget = max_frame.saturating_sub(256);
    let keep = |m: &StoredMessage, budget: &mut usize| {
        let c = cost(m);
        let fits = c <= *budget;
        *budget = budget.saturating_sub(c);
        fits
    };
    if forward {
        let n = messages.iter().take_while(|m| keep(m, &mut budget)).count();
        messages.truncate(n);
    } else {
        let n = messages.iter().rev().take_while(|m| keep(m, &mut budget)).count();
        messages.drain(..messages.len() - n);
    }
}

/// The store's answer for a message of `author` in `room` with `client_id`: its original
/// ack, `None` when the store has no such message, an Error when the store cannot say.
async fn stored_reply(
    store: &dyn Store,
    room: &str,
    author: UserId,
    client_id: u64,
    req: ReqId,
) -> Option<Message> {
    match store.client_message(room, author, client_id).await {
        Ok(found) => found.map(|(id, offset)| {
            MessageAck {
                req,
                room: room.to_owned(),
                id,
                offset,
            }
            .into()
        }),
        Err(e) => {
            tracing::warn!(error = %e, room, "could not look up a re-sent message");
            let code = match e.is_unavailable() {
                true => ErrorCode::Unavailable,
                false => ErrorCode::Internal,
            };
            Some(Error::reply(
                req,
                code,
                "could not check whether this message was stored",
            ))
        }
    }
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
        let mut users = Users::default();
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
            let window = room.state.lock().window();
            let recent = store
                .recent(&rec.name, u32::try_from(window).unwrap_or(u32::MAX))
                .await?;
            if recent.len() >= window {
                // Only the newest were loaded: older client ids are the store's to know.
                room.mark_forgotten();
            }
            {
                let mut st = room.state.lock();
                st.offset = rec.last_offset;
                st.durable = rec.last_offset;
                st.first_offset = rec.first_offset;
                *room.title.lock() = rec.title.clone();
                for &(user, kind, until) in &rec.sanctions {
                    match kind {
                        crate::store::SanctionKind::Ban => {
                            st.banned.insert(user);
                        }
                        crate::store::SanctionKind::Mute => {
                            st.muted.insert(user, until);
                        }
                    }
                }
                for (user, role) in rec.members {
                    let Some(u) = users.by_id.get_mut(&user) else {
                        continue;
                    };
                    u.rooms.insert(room.name.clone());
                    let nick = u.nick.clone();
                    room.set_member(&mut st, user, Member { nick, role });
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
                r.state.lock().read.insert(user, read);
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

    fn nick_of(&self, user: UserId) -> String {
        self.users
            .lock()
            .by_id
            .get(&user)
            .map(|u| u.nick.clone())
            .unwrap_or_default()
    }

    // ------------------------------------------------------------------ sessions

    /// Check `credentials` ([`crate::auth`]) and attach the connection `make_conn` builds
    /// for the user. Open dev mode and guests claim a nick (free, or owned by an offline
    /// user of the same kind, whose rooms are then yours again); a token user is found by
    /// its subject, or created with its name made unique, and may have several connections.
    pub fn login(
        &self,
        credentials: &Credentials,
        make_conn: impl FnOnce(UserId) -> Arc<Conn>,
    ) -> Result<(Arc<Conn>, String), (ErrorCode, String)> {
        use crate::auth::Identity;
        let identity = self
            .cfg
            .auth
            .verify(credentials)
            .map_err(|e| (e.code(), e.to_string()))?;
        let mut displaced = None;
        let (conn, nick) = {
            let mut users = self.users.lock();
            let user = match identity {
                Identity::Open { nick } => self.claim_nick(&mut users, &nick, false)?,
                Identity::Guest { nick } => self.claim_nick(&mut users, &nick, true)?,
                Identity::Token {
                    subject,
                    name,
                    grants,
                } => {
                    let id = match users.by_subject.get(&subject) {
                        Some(&id) if users.by_id.contains_key(&id) => id,
                        _ => {
                            let id = self.next_id();
                            // Registered names win over guests: a guest holding this
                            // user's name gives it up (renamed, and told, below).
                            let wanted = Users::base_nick(&name);
                            let guest = users
                                .by_nick
                                .get(&wanted)
                                .copied()
                                .filter(|g| users.by_id.get(g).is_some_and(|u| u.guest));
                            let nick = match guest {
                                Some(_) => wanted.clone(),
                                None => users.free_nick(&name),
                            };
                            self.commits.push(
                                vec![
                                    Op::User {
                                        id,
                                        nick: nick.clone(),
                                    },
                                    Op::Subject {
                                        subject: subject.clone(),
                                        user: id,
                                    },
                                ],
                                None,
                            )?;
                            if let Some(guest) = guest {
                                displaced = Some(Self::displace_guest(&mut users, guest, &wanted));
                            }
                            users.by_nick.insert(nick.clone(), id);
                            users.by_id.insert(id, User::new(nick, false));
                            users.by_subject.insert(subject, id);
                            id
                        }
                    };
                    users.by_id.get_mut(&id).expect("user present").grants = grants;
                    id
                }
            };
            let conn = make_conn(user);
            let u = users.by_id.get_mut(&user).expect("user present");
            u.conns.push(conn.clone());
            (conn, u.nick.clone())
        };
        self.conns.lock().insert(conn.id, conn.clone());
        if let Some(d) = displaced {
            self.tell_displaced(d, &nick);
        }
        Ok((conn, nick))
    }

    /// Rename guest `id`, who holds `name`, out of the way of the registered user taking
    /// it: `name-guest` (made unique). The caller then gives `name` to the registered user.
    fn displace_guest(users: &mut Users, id: UserId, name: &str) -> Displaced {
        let nick = users.free_nick(&format!("{name}-guest"));
        users.by_nick.remove(name);
        users.by_nick.insert(nick.clone(), id);
        let u = users.by_id.get_mut(&id).expect("guest present");
        u.nick = nick.clone();
        Displaced {
            user: id,
            nick,
            conns: u.conns.clone(),
            rooms: u.rooms.iter().cloned().collect(),
        }
    }

    /// Tell a renamed guest's sessions why (a non-fatal Error frame without a request id)
    /// and its rooms its new nick (MemberUpdated), as a `/nick` would.
    fn tell_displaced(&self, d: Displaced, taken: &str) {
        tracing::info!(user = d.user, nick = %d.nick, taken, "guest renamed: a registered user signed in with its nick");
        let notice = Message::Error(Error {
            req: None,
            code: ErrorCode::NickUnavailable,
            message: format!(
                "the nick {taken} belongs to a registered user who just signed in; you are now {}",
                d.nick
            ),
        });
        for c in &d.conns {
            c.control(&notice);
        }
        if let Err((code, reason)) = self.rename_in_rooms(d.user, &d.nick, d.rooms) {
            tracing::warn!(?code, %reason, "could not announce a guest's new nick");
        }
    }

    /// Set `user`'s nick in each of `rooms` and publish MemberUpdated there.
    fn rename_in_rooms(&self, user: UserId, nick: &str, rooms: Vec<Arc<str>>) -> Result<(), Refusal> {
        for name in rooms {
            let Some(room) = self.room(&name) else { continue };
            let mut st = room.state.lock();
            let Some(role) = st.role_of(user) else {
                continue;
            };
            let member = Member {
                nick: nick.to_owned(),
                role,
            };
            room.set_member(&mut st, user, member);
            let event = |offset| {
                MemberUpdated {
                    room: name.to_string(),
                    offset,
                    user,
                    nick: nick.to_owned(),
                    role,
                }
                .into()
            };
            room.publish(&mut st, &self.commits, event, Vec::new(), None)?;
        }
        Ok(())
    }

    /// Nick login (open dev mode or guest): the nick's offline user of the same kind, or a
    /// new user (guests are never stored).
    fn claim_nick(&self, users: &mut Users, nick: &str, guest: bool) -> Result<UserId, Refusal> {
        if !valid_nick(nick) {
            return err(
                ErrorCode::NickUnavailable,
                "nick must be 1-32 letters, digits, _ - .",
            );
        }
        if let Some(&id) = users.by_nick.get(nick) {
            let u = &users.by_id[&id];
            if !u.conns.is_empty() {
                return err(ErrorCode::NickUnavailable, format!("nick {nick} is in use"));
            }
            if guest && !u.guest {
                return err(
                    ErrorCode::NickUnavailable,
                    format!("nick {nick} belongs to a registered user"),
                );
            }
            return Ok(id);
        }
        let id = self.next_id();
        if guest {
            self.guests.write().insert(id);
        } else {
            self.commits.push(
                vec![Op::User {
                    id,
                    nick: nick.to_owned(),
                }],
                None,
            )?;
        }
        users.by_nick.insert(nick.to_owned(), id);
        users.by_id.insert(id, User::new(nick.to_owned(), guest));
        Ok(id)
    }

    /// Whether `user` is an anonymous guest.
    pub fn is_guest(&self, user: UserId) -> bool {
        self.guests.read().contains(&user)
    }

    /// The connection is gone: unsubscribe it everywhere; the user goes offline with its last one.
    pub fn disconnect(&self, conn: &Conn) {
        if self.conns.lock().remove(&conn.id).is_none() {
            return;
        }
        self.peers.remove(conn.id);
        let (rooms, offline, nick) = {
            let mut users = self.users.lock();
            let Some(user) = users.by_id.get_mut(&conn.user) else {
                return;
            };
            user.conns.retain(|c| c.id != conn.id);
            (
                user.rooms.iter().cloned().collect::<Vec<_>>(),
                user.conns.is_empty(),
                user.nick.clone(),
            )
        };
        let mut told: HashSet<ConnId> = HashSet::new();
        let mut audience: Vec<Arc<Conn>> = Vec::new();
        for name in rooms {
            let Some(room) = self.room(&name) else { continue };
            let mut st = room.state.lock();
            room.unsubscribe(&mut st, |c| c.id == conn.id);
            if offline {
                audience.extend(
                    st.subs
                        .iter()
                        .filter(|s| told.insert(s.conn.id))
                        .map(|s| s.conn.clone()),
                );
            }
        }
        if offline {
            // Once per connection, however many rooms it shares with the user.
            let frame = Message::from(Presence {
                user: conn.user,
                nick,
                online: false,
            })
            .encode();
            for c in audience {
                c.datagram(frame.clone());
            }
        }
    }

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

    fn set_nick(&self, conn: &Arc<Conn>, m: SetNick) -> Reply {
        let nick = m.nick.trim().to_owned();
        if !valid_nick(&nick) {
            return err(
                ErrorCode::NickUnavailable,
                "nick must be 1-32 letters, digits, _ - .",
            );
        }
        let rooms = {
            let mut users = self.users.lock();
            match users.by_nick.get(&nick) {
                Some(&id) if id == conn.user => return Ok(Some(NickOk { req: m.req, nick }.into())),
                Some(_) => return err(ErrorCode::NickUnavailable, format!("nick {nick} is in use")),
                None => {}
            }
            let Some(user) = users.by_id.get_mut(&conn.user) else {
                return err(ErrorCode::Internal, "unknown user");
            };
            let old = std::mem::replace(&mut user.nick, nick.clone());
            let rooms: Vec<_> = user.rooms.iter().cloned().collect();
            users.by_nick.remove(&old);
            users.by_nick.insert(nick.clone(), conn.user);
            rooms
        };
        let ok = NickOk {
            req: m.req,
            nick: nick.clone(),
        }
        .into();
        if self.is_guest(conn.user) {
            // Guests are never stored: a stored nick would come back as a registered user
            // after a restart, holding that name against its real owner.
            self.rename_in_rooms(conn.user, &nick, rooms)?;
            return Ok(Some(ok));
        }
        let user_op = Op::User {
            id: conn.user,
            nick: nick.clone(),
        };
        self.commits.push(vec![user_op], Some(reply_later(conn, ok)))?;
        self.rename_in_rooms(conn.user, &nick, rooms)?;
        Ok(None)
    }

    /// Join (or create, with `create = Some(kind)`) a room; with `since`, replay what the
    /// client missed if the history still has it.
    fn join(
        &self,
        conn: &Arc<Conn>,
        req: ReqId,
        name: &str,
        create: Option<RoomKind>,
        since: Option<Since>,
    ) -> Reply {
        let direct_name = create.is_none() && name.starts_with("dm:");
        if !valid_room(name) && !direct_name {
            return err(
                ErrorCode::InvalidArgument,
                "room names are 1-64 letters, digits, _ - . #",
            );
        }
        if create == Some(RoomKind::Direct) {
            return err(
                ErrorCode::InvalidArgument,
                "direct rooms are opened by sending a direct message",
            );
        }
        let guest = self.is_guest(conn.user);
        let grant = self
            .users
            .lock()
            .by_id
            .get(&conn.user)
            .and_then(|u| u.grants.get(name).copied());
        // Checked before the room may be created, so a refused join leaves nothing behind.
        let max_rooms = self.cfg.max_rooms_per_user;
        if max_rooms > 0
            && self
                .users
                .lock()
                .by_id
                .get(&conn.user)
                .is_some_and(|u| !u.rooms.contains(name) && u.rooms.len() >= max_rooms)
        {
            return err(
                ErrorCode::LimitReached,
                format!("at most {max_rooms} rooms per user"),
            );
        }
        let (room, created) = {
            let mut rooms = self.rooms.write();
            match (rooms.get(name), create) {
                (None, _) if guest => {
                    return err(ErrorCode::Forbidden, "guests cannot create rooms: sign in")
                }
                (Some(_), Some(_)) => return err(ErrorCode::RoomExists, format!("room {name} exists")),
                (Some(r), None) => (r.clone(), false),
                (None, _) if direct_name => {
                    return err(ErrorCode::NoSuchRoom, format!("no direct room {name}"))
                }
                (None, kind) => {
                    let r = self.new_room(name, kind.unwrap_or(RoomKind::Group));
                    rooms.insert(r.name.clone(), r.clone());
                    (r, true)
                }
            }
        };
        let nick = self.nick_of(conn.user);
        let mut st = room.state.lock();
        let joined = |st: &room::RoomState, role, offset, resumed| {
            Message::from(Joined {
                req,
                room: room.info(),
                role,
                offset,
                members: room.members(st),
                epoch: room.epoch,
                resumed,
                unread: st.unread(conn.user),
            })
        };
        if st.banned.contains(&conn.user) {
            return err(ErrorCode::Banned, format!("you are banned from {name}"));
        }
        let Some(role) = st.role_of(conn.user) else {
            if room.kind == RoomKind::Direct {
                return err(ErrorCode::Forbidden, "direct rooms have exactly two members");
            }
            let max_members = self.cfg.max_members_per_room;
            if max_members > 0 && st.members.len() >= max_members {
                return err(
                    ErrorCode::LimitReached,
                    format!("room {name} is full ({max_members} members)"),
                );
            }
            // A new member: the first event it delivers is its own MemberJoined. Guests
            // read only; a token's grant for the room beats the kind's default.
            let role = if guest {
                Role::Guest
            } else if created {
                Role::Owner
            } else {
                grant.unwrap_or_else(|| permissions::join_role(room.kind))
            };
            let member = Member {
                nick: nick.clone(),
                role,
            };
            room.set_member(&mut st, conn.user, member);
            room.subscribe(&mut st, conn);
            let mut ops = Vec::new();
            if created {
                ops.push(Op::Room {
                    name: name.to_owned(),
                    kind: room.kind,
                    epoch: room.epoch,
                });
            }
            ops.push(Op::Member {
                room: name.to_owned(),
                user: conn.user,
                role,
            });
            let first = st.offset + 1;
            let reply = joined(&st, role, first, false);
            let event = |offset| {
                MemberJoined {
                    room: name.to_owned(),
                    offset,
                    user: conn.user,
                    nick: nick.clone(),
                    role,
                }
                .into()
            };
            room.publish(&mut st, &self.commits, event, ops, Some((conn.clone(), reply)))?;
            drop(st);
            self.user_rooms(conn.user, |r| {
                r.insert(room.name.clone());
            });
            return Ok(None);
        };
        // An existing member (a rejoin): resume after `since` when the history allows.
        let resumable = since.filter(|s| {
            s.epoch == room.epoch
                && s.offset + 1 >= st.first_offset
                && s.offset <= st.offset
                && st.offset - s.offset <= MAX_REPLAY
        });
        room.subscribe(&mut st, conn);
        let (first, resumed) = match resumable {
            Some(s) => (s.offset + 1, true),
            None => (st.offset + 1, false),
        };
        if let Some(s) = resumable {
            // Durable events come from the store; later ones reach this new subscriber
            // through the committer like any other. The client orders them by offset.
            let upto = st.durable;
            if upto > s.offset {
                let tx = conn.lane(&room.lane(st.hot));
                let (store, room_name) = (self.store.clone(), name.to_owned());
                tokio::spawn(async move {
                    match store.events(&room_name, s.offset, upto).await {
                        Ok(frames) => {
                            for f in frames {
                                if tx.send(f).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, room = room_name, "replay failed"),
                    }
                });
            }
        }
        Ok(Some(joined(&st, role, first, resumed)))
    }

    fn new_room(&self, name: &str, kind: RoomKind) -> Arc<Room> {
        let epoch = rand::random::<u64>() >> 11; // exact in a JS number
        Arc::new(Room::new(
            name,
            kind,
            epoch,
            self.cfg.num_shards,
            self.cfg.rate_window_secs,
            self.cfg.recent_messages,
            self.stats.clone(),
        ))
    }

    fn user_rooms(&self, user: UserId, f: impl FnOnce(&mut HashSet<Arc<str>>)) {
        if let Some(u) = self.users.lock().by_id.get_mut(&user) {
            f(&mut u.rooms);
        }
    }

    fn leave(&self, conn: &Arc<Conn>, m: Leave) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        {
            let mut st = room.state.lock();
            let member = st
                .members
                .get(&conn.user)
                .cloned()
                .ok_or_else(|| not_member(&m.room))?;
            let ops = vec![Op::RemoveMember {
                room: m.room.clone(),
                user: conn.user,
            }];
            let reply = Left {
                req: m.req,
                room: m.room.clone(),
            }
            .into();
            let event = |offset| {
                MemberLeft {
                    room: m.room.clone(),
                    offset,
                    user: conn.user,
                    nick: member.nick,
                }
                .into()
            };
            room.publish(&mut st, &self.commits, event, ops, Some((conn.clone(), reply)))?;
            room.remove_member(&mut st, conn.user);
            // The leaver's client stops tracking the room on the Left reply.
            room.unsubscribe(&mut st, |c| c.user == conn.user);
        }
        self.user_rooms(conn.user, |r| {
            r.remove(&*m.room);
        });
        Ok(None)
    }

    fn check_text(&self, text: &str) -> Result<(), Refusal> {
        if text.trim().is_empty() {
            return err(ErrorCode::InvalidArgument, "empty message");
        }
        if text.len() > self.cfg.max_message_len {
            return err(
                ErrorCode::InvalidArgument,
                format!("message longer than {} bytes", self.cfg.max_message_len),
            );
        }
        Ok(())
    }

    fn send(
        &self,
        conn: &Arc<Conn>,
        req: ReqId,
        name: &str,
        client_id: u64,
        text: String,
        attachment: Option<String>,
    ) -> Reply {
        self.check_text(&text)?;
        // The session has checked that it is a complete upload of the sender's (uploads.rs).
        if attachment
            .as_deref()
            .is_some_and(|a| !crate::uploads::registry::valid_id(a))
        {
            return err(ErrorCode::InvalidArgument, "the attachment is not an upload id");
        }
        let room = self.room(name).ok_or_else(|| no_room(name))?;
        let now = self.now_sec();
        let mut st = room.state.lock();
        let role = st.role_of(conn.user).ok_or_else(|| not_member(name))?;
        if !permissions::allowed(room.kind, role, Action::Post) {
            return err(
                ErrorCode::Forbidden,
                format!("a {} may not post in {name}", role.as_str()),
            );
        }
        moderation::check_muted(&st, conn.user, name)?;
        let ack = |id, offset| {
            Message::from(MessageAck {
                req,
                room: name.to_owned(),
                id,
                offset,
            })
        };
        // A retry (after a reconnect) of a message we already have: the first ack again,
        // once that message is durable. (Messages the window forgot were looked up in the
        // store before this: see [`Hub::stored_ack`].)
        if let Some(&(id, offset)) = st.client_ids.get(&(conn.user, client_id)) {
            if offset <= st.durable {
                return Ok(Some(ack(id, offset)));
            }
            let then = self.ack_when_durable(&room, conn, (client_id, id, offset), ack(id, offset));
            self.commits.push(Vec::new(), Some(then))?;
            return Ok(None);
        }
        let nick = st.members[&conn.user].nick.clone();
        let id = self.next_id();
        let ts_ms = now_ms();
        let offset = st.offset + 1;
        let row = Op::Message {
            id,
            room: name.to_owned(),
            offset,
            author: conn.user,
            nick: nick.clone(),
            ts_ms,
            text: text.clone(),
            client_id,
            attachment: attachment.clone(),
        };
        let event = |offset| {
            RoomMessage {
                room: name.to_owned(),
                offset,
                id,
                author: conn.user,
                nick,
                ts_ms,
                text,
                attachment,
            }
            .into()
        };
        let on_refused = self.message_refused(&room, conn, req, client_id, id);
        room.publish_with(
            &mut st,
            &self.commits,
            event,
            vec![row],
            Some((conn.clone(), ack(id, offset))),
            None,
            Some(on_refused),
        )?;
        let recent = Recent {
            author: conn.user,
            offset,
            client_id,
            deleted: false,
            reactions: Vec::new(),
        };
        let evicted = room.remember_within(&mut st, id, recent, &self.windows);
        st.rate.record(now);
        if !st.hot && st.rate.rate(now) > self.cfg.hot_room_threshold && self.reserve_hot() {
            tracing::info!(room = name, "room promoted to its own stream");
            room.promote(&mut st);
            self.hot.lock().insert(room.name.clone());
        }
        self.maybe_trim(&room, &st);
        drop(st);
        evicted.apply();
        Ok(None)
    }

    /// What a refused message does (see [`room::Room::publish_with`]): leave the window,
    /// and answer its sender. A conflict means the store already holds a message of this
    /// author and client id (one the window had forgotten): the sender gets that original
    /// ack, from the store. Any other refusal is an Internal error.
    fn message_refused(
        &self,
        room: &Arc<Room>,
        conn: &Arc<Conn>,
        req: ReqId,
        client_id: u64,
        id: MsgId,
    ) -> room::OnRefused {
        let (room, conn, store) = (room.clone(), conn.clone(), self.store.clone());
        Box::new(move |e: &crate::store::StoreError| {
            room.state.lock().forget(id);
            if !e.is_conflict() {
                let msg = "the message could not be stored";
                return conn.control(&Error::reply(req, ErrorCode::Internal, msg));
            }
            tokio::spawn(async move {
                let reply = stored_reply(&*store, &room.name, conn.user, client_id, req).await;
                conn.control(&reply.unwrap_or_else(|| {
                    Error::reply(req, ErrorCode::Internal, "the message could not be stored")
                }));
            });
        })
    }

    /// A continuation acking a re-sent client id whose first message `(client_id, id,
    /// offset)` was still on its way to the store: `ack` once it is durable, or (when the
    /// store refused that first message) whatever the store holds for the client id.
    fn ack_when_durable(
        &self,
        room: &Arc<Room>,
        conn: &Arc<Conn>,
        (client_id, id, offset): (u64, MsgId, Offset),
        ack: Message,
    ) -> commit::Then {
        let (room, conn, store) = (room.clone(), conn.clone(), self.store.clone());
        Box::new(move || {
            let kept = room.state.lock().client_ids.get(&(conn.user, client_id)) == Some(&(id, offset));
            if kept {
                return conn.control(&ack);
            }
            let req = ack.reply_to().unwrap_or_default();
            tokio::spawn(async move {
                let reply = stored_reply(&*store, &room.name, conn.user, client_id, req).await;
                conn.control(&reply.unwrap_or_else(|| {
                    Error::reply(req, ErrorCode::Internal, "the message could not be stored")
                }));
            });
        })
    }

    /// For a Send or DirectMessage whose client id the room's window may have forgotten:
    /// the original ack when the store holds that message (`None`: publish it as new). The
    /// store decides idempotency; the window is only its cache: no store read for client
    /// ids the window knows. Call it only when [`Hub::may_have_forgotten`] says so.
    pub async fn stored_ack(&self, conn: &Conn, msg: &Message) -> Option<Message> {
        let (req, room_name, client_id) = match msg {
            Message::Send(m) => (m.req, m.room.clone(), m.client_id),
            Message::DirectMessage(m) => (m.req, self.direct_room_name(conn.user, &m.to)?, m.client_id),
            _ => return None,
        };
        let room = self.room(&room_name)?;
        if !room.forgotten() {
            return None;
        }
        {
            let st = room.state.lock();
            if st.role_of(conn.user).is_none() || st.client_ids.contains_key(&(conn.user, client_id)) {
                return None; // refused, or answered from the window, by the hub
            }
        }
        stored_reply(&*self.store, &room_name, conn.user, client_id, req).await
    }

    /// Whether `msg` (a Send or DirectMessage) goes to a room whose window has forgotten
    /// a message: only then may [`Hub::stored_ack`] have to read the store. Cheap: a map
    /// lookup and an atomic load.
    pub fn may_have_forgotten(&self, conn: &Conn, msg: &Message) -> bool {
        let forgotten = |name: &str| self.rooms.read().get(name).is_some_and(|r| r.forgotten());
        match msg {
            Message::Send(m) => forgotten(&m.room),
            Message::DirectMessage(m) => self
                .direct_room_name(conn.user, &m.to)
                .is_some_and(|name| forgotten(&name)),
            _ => false,
        }
    }

    /// The name of the direct room of `user` and the user called `to`, if that user exists.
    fn direct_room_name(&self, user: UserId, to: &str) -> Option<String> {
        let them = *self.users.lock().by_nick.get(to.trim())?;
        Some(format!("dm:{}:{}", user.min(them), user.max(them)))
    }

    /// Whether the store takes commits; false while it is unavailable (publishes are then
    /// refused with [`ErrorCode::Unavailable`]).
    pub fn store_healthy(&self) -> bool {
        self.commits.healthy()
    }

    /// Apply retention once a room holds comfortably more than its limit (in the background).
    fn maybe_trim(&self, room: &Arc<Room>, st: &room::RoomState) {
        let rule = self.cfg.retention(room.kind);
        if rule.max_messages == 0
            || st.offset + 1 - st.first_offset <= rule.max_messages + rule.max_messages / 10
        {
            return;
        }
        let (store, room, upto) = (self.store.clone(), room.clone(), st.offset);
        let commits = self.commits.clone();
        tokio::spawn(async move {
            commits.flush().await; // trim only what is committed
            match store.trim(&room.name, rule, now_ms()).await {
                Ok(first) => {
                    let mut st = room.state.lock();
                    st.first_offset = st.first_offset.max(first.min(upto + 1));
                }
                Err(e) => tracing::warn!(error = %e, room = &*room.name, "retention failed"),
            }
        });
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
                    st.first_offset = st.first_offset.max(first);
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

    fn direct(&self, conn: &Arc<Conn>, m: DirectMessage) -> Reply {
        self.check_text(&m.text)?;
        if self.is_guest(conn.user) {
            return err(
                ErrorCode::Forbidden,
                "guests cannot send direct messages: sign in",
            );
        }
        let (me, them, their_conns) = {
            let users = self.users.lock();
            let Some(&them) = users.by_nick.get(m.to.trim()) else {
                return err(ErrorCode::NoSuchUser, format!("no user {}", m.to));
            };
            if them == conn.user {
                return err(ErrorCode::InvalidArgument, "cannot message yourself");
            }
            let me = users.by_id[&conn.user].nick.clone();
            let u = &users.by_id[&them];
            ((conn.user, me), (them, u.nick.clone()), u.conns.clone())
        };
        let (lo, hi) = (me.0.min(them.0), me.0.max(them.0));
        let name = format!("dm:{lo}:{hi}");
        let (room, created) = {
            let mut rooms = self.rooms.write();
            match rooms.get(name.as_str()) {
                Some(r) => (r.clone(), false),
                None => {
                    let r = self.new_room(&name, RoomKind::Direct);
                    rooms.insert(r.name.clone(), r.clone());
                    (r, true)
                }
            }
        };
        let mut added = false;
        {
            let mut st = room.state.lock();
            let mut ops = Vec::new();
            if created {
                ops.push(Op::Room {
                    name: name.clone(),
                    kind: RoomKind::Direct,
                    epoch: room.epoch,
                });
            }
            for (user, nick, conns) in [(me.0, &me.1, vec![conn.clone()]), (them.0, &them.1, their_conns)] {
                if st.role_of(user).is_some() {
                    continue;
                }
                added = true;
                let member = Member {
                    nick: nick.clone(),
                    role: Role::Member,
                };
                room.set_member(&mut st, user, member);
                for c in &conns {
                    room.subscribe(&mut st, c);
                }
                ops.push(Op::Member {
                    room: name.clone(),
                    user,
                    role: Role::Member,
                });
                let event = |offset| {
                    MemberJoined {
                        room: name.clone(),
                        offset,
                        user,
                        nick: nick.clone(),
                        role: Role::Member,
                    }
                    .into()
                };
                room.publish(&mut st, &self.commits, event, std::mem::take(&mut ops), None)?;
            }
            // The sender may have this direct room open on another connection only.
            room.subscribe(&mut st, conn);
        }
        if added {
            let mut users = self.users.lock();
            for u in [me.0, them.0] {
                if let Some(u) = users.by_id.get_mut(&u) {
                    u.rooms.insert(room.name.clone());
                }
            }
        }
        self.send(conn, m.req, &name, m.client_id, m.text, None)
    }

    /// Who may change message `id` of `room`, and how: the shared checks of edit, delete
    /// and react. Returns the room and its locked state for the change.
    fn message_action(
        &self,
        conn: &Conn,
        room: &str,
        id: MsgId,
        own: Action,
        any: Action,
    ) -> Result<Arc<Room>, Refusal> {
        let r = self.room(room).ok_or_else(|| no_room(room))?;
        {
            let st = r.state.lock();
            let role = st.role_of(conn.user).ok_or_else(|| not_member(room))?;
            let Some(recent) = st.recent.get(&id).filter(|x| !x.deleted) else {
                return err(ErrorCode::NoSuchMessage, format!("no message {id} in {room}"));
            };
            let action = if recent.author == conn.user { own } else { any };
            if !permissions::allowed(r.kind, role, action) {
                return err(
                    ErrorCode::Forbidden,
                    format!("a {} may not do that here", role.as_str()),
                );
            }
            if matches!(action, Action::EditOwn | Action::EditAny | Action::React) {
                moderation::check_muted(&st, conn.user, room)?;
            }
        }
        Ok(r)
    }

    fn edit(&self, conn: &Arc<Conn>, m: Edit) -> Reply {
        self.check_text(&m.text)?;
        let room = self.message_action(conn, &m.room, m.id, Action::EditOwn, Action::EditAny)?;
        let mut st = room.state.lock();
        let ops = vec![Op::Edit {
            id: m.id,
            text: m.text.clone(),
        }];
        let event = |offset| {
            MessageEdited {
                room: m.room.clone(),
                offset,
                id: m.id,
                by: conn.user,
                ts_ms: now_ms(),
                text: m.text,
            }
            .into()
        };
        let done = Done { req: m.req }.into();
        room.publish(&mut st, &self.commits, event, ops, Some((conn.clone(), done)))?;
        Ok(None)
    }

    fn delete(&self, conn: &Arc<Conn>, m: Delete) -> Reply {
        let room = self.message_action(conn, &m.room, m.id, Action::DeleteOwn, Action::DeleteAny)?;
        let mut st = room.state.lock();
        let event = |offset| {
            MessageDeleted {
                room: m.room.clone(),
                offset,
                id: m.id,
                by: conn.user,
            }
            .into()
        };
        let done = Done { req: m.req }.into();
        room.publish(
            &mut st,
            &self.commits,
            event,
            vec![Op::Delete { id: m.id }],
            Some((conn.clone(), done)),
        )?;
        if let Some(r) = st.recent.get_mut(&m.id) {
            r.deleted = true;
        }
        Ok(None)
    }

    fn react(&self, conn: &Arc<Conn>, m: React) -> Reply {
        if m.emoji.is_empty() || m.emoji.chars().count() > 16 {
            return err(ErrorCode::InvalidArgument, "a reaction is 1-16 characters");
        }
        let room = self.message_action(conn, &m.room, m.id, Action::React, Action::React)?;
        let mut st = room.state.lock();
        let nick = st
            .members
            .get(&conn.user)
            .map(|x| x.nick.clone())
            .unwrap_or_default();
        let Some(recent) = st.recent.get_mut(&m.id) else {
            return err(
                ErrorCode::NoSuchMessage,
                format!("no message {} in {}", m.id, m.room),
            );
        };
        let pos = recent
            .reactions
            .iter()
            .position(|(u, e)| *u == conn.user && *e == m.emoji);
        match (m.add, pos) {
            (true, None) if recent.reactions.len() < room::MAX_REACTIONS => {
                recent.reactions.push((conn.user, m.emoji.clone()))
            }
            (true, None) => return err(ErrorCode::LimitReached, "too many reactions on this message"),
            (false, Some(i)) => {
                recent.reactions.swap_remove(i);
            }
            _ => return Ok(Some(Done { req: m.req }.into())), // nothing changes
        }
        let ops = vec![Op::React {
            id: m.id,
            user: conn.user,
            emoji: m.emoji.clone(),
            add: m.add,
        }];
        let event = |offset| {
            ReactionChanged {
                room: m.room.clone(),
                offset,
                id: m.id,
                user: conn.user,
                nick,
                emoji: m.emoji,
                added: m.add,
            }
            .into()
        };
        let done = Done { req: m.req }.into();
        room.publish(&mut st, &self.commits, event, ops, Some((conn.clone(), done)))?;
        Ok(None)
    }

    fn list_rooms(&self, conn: &Conn, req: ReqId) -> Message {
        let mine: HashSet<Arc<str>> = self
            .users
            .lock()
            .by_id
            .get(&conn.user)
            .map(|u| u.rooms.clone())
            .unwrap_or_default();
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .read()
            .values()
            .filter(|r| r.kind != RoomKind::Direct || mine.contains(&r.name))
            .map(|r| r.info())
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        RoomList { req, rooms }.into()
    }

    fn list_users(&self, conn: &Conn, m: ListUsers) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let st = room.state.lock();
        if room.kind == RoomKind::Direct && st.role_of(conn.user).is_none() {
            return Err(not_member(&m.room));
        }
        Ok(Some(
            UserList {
                req: m.req,
                room: m.room,
                users: room.members(&st),
            }
            .into(),
        ))
    }

    fn set_role(&self, conn: &Arc<Conn>, m: SetRole) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let actor = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        let Some((&user, member)) = st.members.iter().find(|(_, mem)| mem.nick == m.nick) else {
            return err(
                ErrorCode::NoSuchUser,
                format!("{} is not a member of {}", m.nick, m.room),
            );
        };
        if m.role > Role::Guest && self.is_guest(user) {
            return err(
                ErrorCode::Forbidden,
                format!("{} is an anonymous guest: read-only until they sign in", m.nick),
            );
        }
        if !permissions::may_change_role(room.kind, actor, member.role, m.role) {
            return err(
                ErrorCode::Forbidden,
                format!(
                    "a {} may not make a {} a {}",
                    actor.as_str(),
                    member.role.as_str(),
                    m.role.as_str()
                ),
            );
        }
        let nick = member.nick.clone();
        let ops = vec![Op::Member {
            room: m.room.clone(),
            user,
            role: m.role,
        }];
        let event = |offset| {
            MemberUpdated {
                room: m.room.clone(),
                offset,
                user,
                nick: nick.clone(),
                role: m.role,
            }
            .into()
        };
        let done = Done { req: m.req }.into();
        room.publish(&mut st, &self.commits, event, ops, Some((conn.clone(), done)))?;
        room.set_member(&mut st, user, Member { nick, role: m.role });
        Ok(None)
    }

    /// A page of history (oldest first) for a member of the room (see [`Hub::history_page`]).
    pub async fn history(&self, conn: &Conn, m: History, max_frame: usize) -> Message {
        match self
            .history_page(Some(conn.user), &m.room, m.before, m.after, m.limit)
            .await
        {
            Ok((epoch, mut messages)) => {
                fit_page(&mut messages, m.after.is_some(), max_frame);
                HistoryPage {
                    req: m.req,
                    room: m.room,
                    epoch,
                    messages,
                }
                .into()
            }
            Err((code, message)) => Error::reply(m.req, code, message),
        }
    }

    /// History for `reader`: `Some(user)` reads only rooms it is a member of, whatever the
    /// kind (group, channel or direct; a non-member gets NotMember, over the protocol and
    /// over HTTP alike); `None` is a back-end with full read access (the HTTP API with the
    /// admin token).
    pub async fn history_page(
        &self,
        reader: Option<UserId>,
        room_name: &str,
        before: Option<Offset>,
        after: Option<Offset>,
        limit: u32,
    ) -> Result<(u64, Vec<StoredMessage>), Refusal> {
        let room = self.room(room_name).ok_or_else(|| no_room(room_name))?;
        if let Some(user) = reader {
            if room.state.lock().role_of(user).is_none() {
                return Err(not_member(room_name));
            }
        }
        let started = Instant::now();
        let messages = self
            .store
            .messages(room_name, before, after, limit.clamp(1, 1000))
            .await
            .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        self.stats.store_history(started.elapsed());
        Ok((room.epoch, messages))
    }

    /// The kind of a live room.
    pub fn room_kind(&self, room: &str) -> Option<RoomKind> {
        self.room(room).map(|r| r.kind)
    }

    /// The user a token subject signed in as, if it ever did.
    pub fn user_by_subject(&self, subject: &str) -> Option<UserId> {
        self.users.lock().by_subject.get(subject).copied()
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

    /// Whether `user` is a member of `room`.
    pub fn is_member(&self, room: &str, user: UserId) -> bool {
        self.room(room)
            .is_some_and(|r| r.state.lock().role_of(user).is_some())
    }

    // ------------------------------------------------------------------ acks and datagrams

    /// A Delivered or Read ack: persist the user's mark and tell the message's author.
    pub fn receipt(&self, conn: &Conn, room_name: &str, id: MsgId, read: bool) {
        let Some(room) = self.room(room_name) else { return };
        let (author, nick, offset) = {
            let mut st = room.state.lock();
            let Some(me) = st.members.get(&conn.user).map(|m| m.nick.clone()) else {
                return;
            };
            let Some(recent) = st.recent.get(&id) else { return };
            let (author, offset) = (recent.author, recent.offset);
            if read {
                let mark = st.read.entry(conn.user).or_insert(0);
                *mark = (*mark).max(offset);
            }
            (author, me, offset)
        };
        let op = Op::Receipt {
            room: room_name.to_owned(),
            user: conn.user,
            offset,
            read,
        };
        let _ = self.commits.push(vec![op], None);
        if author == conn.user {
            return;
        }
        let frame = Message::from(Receipt {
            room: room_name.to_owned(),
            id,
            user: conn.user,
            nick,
            read,
        })
        .encode();
        let conns = self
            .users
            .lock()
            .by_id
            .get(&author)
            .map(|u| u.conns.clone())
            .unwrap_or_default();
        for c in conns {
            c.control_bytes(frame.clone());
        }
    }

    /// A typing datagram: relay to the room's other online members.
    pub fn typing(&self, conn: &Conn, room_name: &str) {
        let Some(room) = self.room(room_name) else { return };
        let st = room.state.lock();
        let Some(me) = st.members.get(&conn.user) else {
            return;
        };
        if !permissions::allowed(room.kind, me.role, Action::Typing)
            || moderation::check_muted(&st, conn.user, room_name).is_err()
        {
            return;
        }
        let frame: Bytes = Message::from(Typing {
            room: room_name.to_owned(),
            user: conn.user,
            nick: me.nick.clone(),
        })
        .encode();
        for s in st.subs.iter().filter(|s| s.conn.user != conn.user) {
            s.conn.datagram(frame.clone());
        }
    }

    /// Announce `conn`'s user as online to the rooms it belongs to (first connection only).
    pub fn announce_online(&self, conn: &Conn) {
        let (rooms, nick) = {
            let users = self.users.lock();
            let Some(u) = users.by_id.get(&conn.user) else {
                return;
            };
            if u.conns.len() != 1 {
                return;
            }
            (u.rooms.iter().cloned().collect::<Vec<_>>(), u.nick.clone())
        };
        let frame = Message::from(Presence {
            user: conn.user,
            nick,
            online: true,
        })
        .encode();
        let mut told: HashSet<ConnId> = HashSet::new();
        for name in rooms {
            if let Some(room) = self.room(&name) {
                for s in room.state.lock().subs.iter().filter(|s| told.insert(s.conn.id)) {
                    s.conn.datagram(frame.clone());
                }
            }
        }
    }

    // ------------------------------------------------------------------ hot rooms

    /// Demote hot rooms that cooled down. Call about once a second.
    pub fn tick(&self) {
        let now = self.now_sec();
        let hot: Vec<Arc<str>> = self.hot.lock().iter().cloned().collect();
        for name in hot {
            let Some(room) = self.room(&name) else { continue };
            let mut st = room.state.lock();
            if st.rate.rate(now) >= self.cfg.cool_down_threshold {
                st.cool_since = None;
                continue;
            }
            let since = *st.cool_since.get_or_insert(now);
            if now.saturating_sub(since) >= self.cfg.cool_down_period_secs {
                tracing::info!(room = &*name, "room demoted to its shard stream");
                room.demote(&mut st);
                self.hot.lock().remove(&name);
                self.hot_count.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}
