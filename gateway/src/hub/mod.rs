//! The hub: users, rooms, permissions and fan-out. Transport-agnostic.
//!
//! Sessions call it synchronously with decoded commands and get the reply frame back; the
//! hub pushes room events into the [`Conn`] handles of the room's subscribers. No method
//! awaits, and no lock is held across one. Lock order, where two are held: a room's state,
//! then a connection's lane map. The users table is never held while a room is locked.

pub mod permissions;
pub mod rate;
pub mod room;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use garou_protocol::*;
use parking_lot::{Mutex, RwLock};

use crate::config::ServerConfig;
use crate::session::outbound::{Conn, ConnId};
use permissions::Action;
use room::{Member, Room};

type Reply = Result<Message, (ErrorCode, String)>;

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
        }
    }
}

struct User {
    nick: String,
    conns: Vec<Arc<Conn>>,
    rooms: HashSet<Arc<str>>,
}

#[derive(Default)]
struct Users {
    by_nick: HashMap<String, UserId>,
    by_id: HashMap<UserId, User>,
}

/// Shared state of the gateway. See the module docs.
pub struct Hub {
    cfg: HubConfig,
    rooms: RwLock<HashMap<Arc<str>, Arc<Room>>>,
    users: Mutex<Users>,
    conns: Mutex<HashMap<ConnId, Arc<Conn>>>,
    hot: Mutex<HashSet<Arc<str>>>,
    next_id: AtomicU64,
    hot_count: AtomicUsize,
    started: Instant,
    /// Seconds added to the clock (tests move time instead of sleeping).
    skew: AtomicU64,
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Hub {
        Hub {
            cfg,
            rooms: RwLock::new(HashMap::new()),
            users: Mutex::new(Users::default()),
            conns: Mutex::new(HashMap::new()),
            hot: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            hot_count: AtomicUsize::new(0),
            started: Instant::now(),
            skew: AtomicU64::new(0),
        }
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

    /// Open dev mode login: claim `nick` (free, or owned by an offline user, whose rooms
    /// are then yours again) and attach the connection `make_conn` builds for the user id.
    pub fn login(
        &self,
        credentials: &Credentials,
        make_conn: impl FnOnce(UserId) -> Arc<Conn>,
    ) -> Result<(Arc<Conn>, String), (ErrorCode, String)> {
        let nick = match credentials {
            Credentials::Nick(n) => n.trim().to_owned(),
            Credentials::Token(_) => {
                return err(
                    ErrorCode::AuthFailed,
                    "token auth is not configured on this gateway; send a nick",
                )
            }
        };
        if !valid_nick(&nick) {
            return err(
                ErrorCode::NickUnavailable,
                "nick must be 1-32 letters, digits, _ - .",
            );
        }
        let conn = {
            let mut users = self.users.lock();
            let existing = users.by_nick.get(&nick).copied();
            let user = match existing {
                Some(id) if !users.by_id[&id].conns.is_empty() => {
                    return err(ErrorCode::NickUnavailable, format!("nick {nick} is in use"))
                }
                Some(id) => id,
                None => {
                    let id = self.next_id();
                    users.by_nick.insert(nick.clone(), id);
                    users.by_id.insert(
                        id,
                        User {
                            nick: nick.clone(),
                            conns: Vec::new(),
                            rooms: HashSet::new(),
                        },
                    );
                    id
                }
            };
            let conn = make_conn(user);
            users
                .by_id
                .get_mut(&user)
                .expect("user present")
                .conns
                .push(conn.clone());
            conn
        };
        self.conns.lock().insert(conn.id, conn.clone());
        Ok((conn, nick))
    }

    /// The connection is gone: unsubscribe it everywhere; the user goes offline with its last one.
    pub fn disconnect(&self, conn: &Conn) {
        if self.conns.lock().remove(&conn.id).is_none() {
            return;
        }
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

    /// Handle one command from `conn`; the result is the reply frame for its control stream.
    pub fn command(&self, conn: &Arc<Conn>, msg: Message) -> Message {
        let req = msg.request_id();
        let result = match msg {
            Message::SetNick(m) => self.set_nick(conn, m),
            Message::CreateRoom(m) => self.join(conn, m.req, &m.room, Some(m.kind)),
            Message::Join(m) => self.join(conn, m.req, &m.room, None),
            Message::Leave(m) => self.leave(conn, m),
            Message::Send(m) => self.send(conn, m.req, &m.room, m.text),
            Message::DirectMessage(m) => self.direct(conn, m),
            Message::Edit(m) => self.edit(conn, m),
            Message::Delete(m) => self.delete(conn, m),
            Message::React(m) => self.react(conn, m),
            Message::ListRooms(m) => Ok(self.list_rooms(conn, m.req)),
            Message::ListUsers(m) => self.list_users(conn, m),
            Message::SetRole(m) => self.set_role(conn, m),
            other => err(
                ErrorCode::OutOfState,
                format!("{:?} is not a command", other.frame_type()),
            ),
        };
        match result {
            Ok(reply) => reply,
            Err((code, message)) => Message::Error(Error { req, code, message }),
        }
    }

    fn set_nick(&self, conn: &Conn, m: SetNick) -> Reply {
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
                Some(&id) if id == conn.user => return Ok(NickOk { req: m.req, nick }.into()),
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
        for name in rooms {
            let Some(room) = self.room(&name) else { continue };
            let mut st = room.state.lock();
            let Some(role) = st.role_of(conn.user) else {
                continue;
            };
            room.set_member(
                &mut st,
                conn.user,
                Member {
                    nick: nick.clone(),
                    role,
                },
            );
            room.publish(&mut st, |offset| {
                MemberUpdated {
                    room: name.to_string(),
                    offset,
                    user: conn.user,
                    nick: nick.clone(),
                    role,
                }
                .into()
            });
        }
        Ok(NickOk { req: m.req, nick }.into())
    }

    /// Join (or create, with `create = Some(kind)`) a room.
    fn join(&self, conn: &Arc<Conn>, req: ReqId, name: &str, create: Option<RoomKind>) -> Reply {
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
        let (room, created) = {
            let mut rooms = self.rooms.write();
            match (rooms.get(name), create) {
                (Some(_), Some(_)) => return err(ErrorCode::RoomExists, format!("room {name} exists")),
                (Some(r), None) => (r.clone(), false),
                (None, _) if name.starts_with("dm:") => {
                    return err(ErrorCode::NoSuchRoom, format!("no direct room {name}"))
                }
                (None, kind) => {
                    let kind = kind.unwrap_or(RoomKind::Group);
                    let r = Arc::new(Room::new(
                        name,
                        kind,
                        self.cfg.num_shards,
                        self.cfg.rate_window_secs,
                    ));
                    rooms.insert(r.name.clone(), r.clone());
                    (r, true)
                }
            }
        };
        let nick = self.nick_of(conn.user);
        let reply = {
            let mut st = room.state.lock();
            // `first`: the first offset this client delivers: its own MemberJoined when it
            // is new, else the next event.
            let (role, first) = match st.role_of(conn.user) {
                Some(role) => {
                    room.subscribe(&mut st, conn);
                    (role, st.offset + 1)
                }
                None if room.kind == RoomKind::Direct => {
                    return err(ErrorCode::Forbidden, "direct rooms have exactly two members")
                }
                None => {
                    let role = if created {
                        Role::Owner
                    } else {
                        permissions::join_role(room.kind)
                    };
                    let member = Member {
                        nick: nick.clone(),
                        role,
                    };
                    room.set_member(&mut st, conn.user, member);
                    room.subscribe(&mut st, conn);
                    let first = room.publish(&mut st, |offset| {
                        MemberJoined {
                            room: name.to_owned(),
                            offset,
                            user: conn.user,
                            nick: nick.clone(),
                            role,
                        }
                        .into()
                    });
                    (role, first)
                }
            };
            Joined {
                req,
                room: room.info(),
                role,
                offset: first,
                members: room.members(&st),
                epoch: 0,
                resumed: false,
                unread: 0,
            }
        };
        self.users
            .lock()
            .by_id
            .get_mut(&conn.user)
            .map(|u| u.rooms.insert(room.name.clone()));
        Ok(reply.into())
    }

    fn leave(&self, conn: &Arc<Conn>, m: Leave) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        {
            let mut st = room.state.lock();
            let member = room
                .remove_member(&mut st, conn.user)
                .ok_or_else(|| not_member(&m.room))?;
            room.publish(&mut st, |offset| {
                MemberLeft {
                    room: m.room.clone(),
                    offset,
                    user: conn.user,
                    nick: member.nick,
                }
                .into()
            });
            room.unsubscribe(&mut st, |c| c.user == conn.user);
        }
        if let Some(u) = self.users.lock().by_id.get_mut(&conn.user) {
            u.rooms.remove(&*m.room);
        }
        Ok(Left {
            req: m.req,
            room: m.room,
        }
        .into())
    }

    fn check_text(&self, text: &str) -> Result<(), (ErrorCode, String)> {
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

    fn send(&self, conn: &Conn, req: ReqId, name: &str, text: String) -> Reply {
        self.check_text(&text)?;
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
        let nick = st.members[&conn.user].nick.clone();
        let id = self.next_id();
        let offset = room.publish(&mut st, |offset| {
            RoomMessage {
                room: name.to_owned(),
                offset,
                id,
                author: conn.user,
                nick,
                ts_ms: now_ms(),
                text,
                attachment: None,
            }
            .into()
        });
        st.remember(id, conn.user);
        st.rate.record(now);
        if !st.hot && st.rate.rate(now) > self.cfg.hot_room_threshold && self.reserve_hot() {
            tracing::info!(room = name, "room promoted to its own stream");
            room.promote(&mut st);
            self.hot.lock().insert(room.name.clone());
        }
        Ok(MessageAck {
            req,
            room: name.to_owned(),
            id,
            offset,
        }
        .into())
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
        let room = self
            .rooms
            .write()
            .entry(name.as_str().into())
            .or_insert_with(|| {
                Arc::new(Room::new(
                    &name,
                    RoomKind::Direct,
                    self.cfg.num_shards,
                    self.cfg.rate_window_secs,
                ))
            })
            .clone();
        let mut added = false;
        {
            let mut st = room.state.lock();
            for (user, nick, conns) in [(me.0, &me.1, vec![conn.clone()]), (them.0, &them.1, their_conns)] {
                if st.role_of(user).is_none() {
                    added = true;
                    let member = Member {
                        nick: nick.clone(),
                        role: Role::Member,
                    };
                    room.set_member(&mut st, user, member);
                    for c in &conns {
                        room.subscribe(&mut st, c);
                    }
                    room.publish(&mut st, |offset| {
                        MemberJoined {
                            room: name.clone(),
                            offset,
                            user,
                            nick: nick.clone(),
                            role: Role::Member,
                        }
                        .into()
                    });
                }
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
        self.send(conn, m.req, &name, m.text)
    }

    fn edit(&self, conn: &Conn, m: Edit) -> Reply {
        self.check_text(&m.text)?;
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let role = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        let Some(recent) = st.recent.get(&m.id).filter(|r| !r.deleted) else {
            return err(
                ErrorCode::NoSuchMessage,
                format!("no message {} in {}", m.id, m.room),
            );
        };
        let action = if recent.author == conn.user {
            Action::EditOwn
        } else {
            Action::EditAny
        };
        if !permissions::allowed(room.kind, role, action) {
            return err(ErrorCode::Forbidden, "you may not edit this message");
        }
        room.publish(&mut st, |offset| {
            MessageEdited {
                room: m.room.clone(),
                offset,
                id: m.id,
                by: conn.user,
                ts_ms: now_ms(),
                text: m.text,
            }
            .into()
        });
        Ok(Done { req: m.req }.into())
    }

    fn delete(&self, conn: &Conn, m: Delete) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let role = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        let Some(recent) = st.recent.get(&m.id).filter(|r| !r.deleted) else {
            return err(
                ErrorCode::NoSuchMessage,
                format!("no message {} in {}", m.id, m.room),
            );
        };
        let action = if recent.author == conn.user {
            Action::DeleteOwn
        } else {
            Action::DeleteAny
        };
        if !permissions::allowed(room.kind, role, action) {
            return err(ErrorCode::Forbidden, "you may not delete this message");
        }
        if let Some(r) = st.recent.get_mut(&m.id) {
            r.deleted = true;
        }
        room.publish(&mut st, |offset| {
            MessageDeleted {
                room: m.room.clone(),
                offset,
                id: m.id,
                by: conn.user,
            }
            .into()
        });
        Ok(Done { req: m.req }.into())
    }

    fn react(&self, conn: &Conn, m: React) -> Reply {
        if m.emoji.is_empty() || m.emoji.chars().count() > 16 {
            return err(ErrorCode::InvalidArgument, "a reaction is 1-16 characters");
        }
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let role = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        if !permissions::allowed(room.kind, role, Action::React) {
            return err(ErrorCode::Forbidden, format!("a {} may not react", role.as_str()));
        }
        let nick = st.members[&conn.user].nick.clone();
        let Some(recent) = st.recent.get_mut(&m.id).filter(|r| !r.deleted) else {
            return err(
                ErrorCode::NoSuchMessage,
                format!("no message {} in {}", m.id, m.room),
            );
        };
        let pos = recent
            .reactions
            .iter()
            .position(|(u, e)| *u == conn.user && *e == m.emoji);
        let changed = match (m.add, pos) {
            (true, None) if recent.reactions.len() < room::MAX_REACTIONS => {
                recent.reactions.push((conn.user, m.emoji.clone()));
                true
            }
            (true, None) => return err(ErrorCode::LimitReached, "too many reactions on this message"),
            (false, Some(i)) => {
                recent.reactions.swap_remove(i);
                true
            }
            _ => false,
        };
        if changed {
            room.publish(&mut st, |offset| {
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
            });
        }
        Ok(Done { req: m.req }.into())
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
        Ok(UserList {
            req: m.req,
            room: m.room,
            users: room.members(&st),
        }
        .into())
    }

    fn set_role(&self, conn: &Conn, m: SetRole) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let actor = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        let Some((&user, member)) = st.members.iter().find(|(_, mem)| mem.nick == m.nick) else {
            return err(
                ErrorCode::NoSuchUser,
                format!("{} is not a member of {}", m.nick, m.room),
            );
        };
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
        let member = Member {
            nick: member.nick.clone(),
            role: m.role,
        };
        let nick = member.nick.clone();
        room.set_member(&mut st, user, member);
        room.publish(&mut st, |offset| {
            MemberUpdated {
                room: m.room.clone(),
                offset,
                user,
                nick,
                role: m.role,
            }
            .into()
        });
        Ok(Done { req: m.req }.into())
    }

    // ------------------------------------------------------------------ acks and datagrams

    /// A Delivered or Read ack: tell the message's author.
    pub fn receipt(&self, conn: &Conn, room_name: &str, id: MsgId, read: bool) {
        let Some(room) = self.room(room_name) else { return };
        let (author, nick) = {
            let st = room.state.lock();
            let Some(me) = st.members.get(&conn.user) else {
                return;
            };
            let Some(recent) = st.recent.get(&id) else { return };
            if recent.author == conn.user {
                return;
            }
            (recent.author, me.nick.clone())
        };
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
        if !permissions::allowed(room.kind, me.role, Action::Typing) {
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
