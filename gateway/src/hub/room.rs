//! One room: members, subscribers, ordering and fan-out.
//!
//! Everything that changes a room happens under its own short lock (never held across an
//! await): the next offset is taken, the event is encoded **once**, and the shared bytes are
//! pushed into each subscriber's lane queue. Taking the offset and queueing under the same
//! lock is what makes every subscriber see the room in offset order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::{
    MemberInfo, Message, MessageDeleted, MsgId, Offset, Role, RoomDemoted, RoomInfo, RoomKind, RoomPromoted,
    StreamKind, UserId,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::commit::{Commit, Committer, Refusal};
use super::rate::RateWindow;
use super::stats::Stats;
use super::window::{Evictions, Windows};
use crate::conn::Conn;
use crate::store::{Op, StoreError};

/// Messages remembered per room for edits, deletes, reactions, receipts and idempotent
/// publishing, by default ([`super::HubConfig::recent_messages`]). Durable history is in
/// the store; this is the in-memory window.
pub const RECENT_MESSAGES: usize = 10_000;

/// What a publisher does when the store refused its change on its own (see
/// [`Room::publish_with`]): undo in-memory effects and answer the sender. Runs on the
/// committer's task, no lock held; it may spawn (a store lookup) but must not block.
pub type OnRefused = Box<dyn FnOnce(&StoreError) + Send>;
/// Distinct reactions kept per message.
pub const MAX_REACTIONS: usize = 64;

pub struct Room {
    pub name: Arc<str>,
    pub kind: RoomKind,
    pub shard: u16,
    /// Identifies this room's history: recovery across another epoch is refused.
    pub epoch: u64,
    member_count: AtomicU32,
    /// Set once the in-memory window has forgotten a stored message of this room (evicted,
    /// or only the newest were loaded at start): from then on a publish whose client id
    /// the window does not know must ask the store ([`crate::store::Store::client_message`]).
    /// Read without the room's lock, so the common path of a room whose window is complete
    /// costs nothing.
    forgotten: AtomicBool,
    /// Display title (RenameRoom); empty shows the name.
    pub title: Mutex<String>,
    pub state: Mutex<RoomState>,
    /// The hub's counters (fan-outs).
    stats: Arc<Stats>,
}

/// A member's place in the room.
#[derive(Debug, Clone)]
pub struct Member {
    pub nick: String,
    pub role: Role,
}

/// One online connection receiving the room, with the lane queue it currently uses.
pub struct Sub {
    pub conn: Arc<Conn>,
    pub tx: mpsc::Sender<Bytes>,
}

/// What the room remembers of a recent message.
#[derive(Debug, Clone)]
pub struct Recent {
    pub author: UserId,
    pub offset: Offset,
    pub client_id: u64,
    pub deleted: bool,
    pub reactions: Vec<(UserId, String)>,
}

pub struct RoomState {
    /// Offset of the last event published.
    pub offset: Offset,
    /// Offset of the last event the store has committed (and subscribers were sent).
    pub durable: Offset,
    /// Oldest offset still in the store (retention moves it forward).
    pub first_offset: Offset,
    /// (author, client message id) -> (id, offset): a retried publish gets the first ack.
    pub client_ids: HashMap<(UserId, u64), (MsgId, Offset)>,
    /// Read marks (highest offset read) per member.
    pub read: HashMap<UserId, Offset>,
    pub members: HashMap<UserId, Member>,
    pub subs: Vec<Sub>,
    pub recent: HashMap<MsgId, Recent>,
    recent_order: VecDeque<MsgId>,
    /// Messages the window keeps (`recent`, `client_ids`).
    window: usize,
    pub hot: bool,
    /// Closed (RoomDeleted was its last event): nothing more is published.
    pub closed: bool,
    pub rate: RateWindow,
    /// Second at which a hot room's rate first fell below the cool-down threshold.
    pub cool_since: Option<u64>,
    /// Users banned from the room.
    pub banned: HashSet<UserId>,
    /// Muted members and the end of their mute (ms since the epoch, 0 = until unmuted).
    pub muted: HashMap<UserId, u64>,
}

impl Room {
    /// A room keeping the newest `window` messages in memory (at least one).
    pub fn new(
        name: &str,
        kind: RoomKind,
        epoch: u64,
        num_shards: u16,
        rate_window_secs: u64,
        window: usize,
        stats: Arc<Stats>,
    ) -> Room {
        Room {
            name: name.into(),
            kind,
            shard: garou_protocol::shard_of(name, num_shards),
            epoch,
            member_count: AtomicU32::new(0),
            forgotten: AtomicBool::new(false),
            title: Mutex::new(String::new()),
            stats,
            state: Mutex::new(RoomState {
                offset: 0,
                durable: 0,
                first_offset: 1,
                client_ids: HashMap::new(),
                read: HashMap::new(),
                members: HashMap::new(),
                subs: Vec::new(),
                recent: HashMap::new(),
                recent_order: VecDeque::new(),
                window: window.max(1),
                hot: false,
                closed: false,
                rate: RateWindow::new(rate_window_secs),
                cool_since: None,
                banned: HashSet::new(),
                muted: HashMap::new(),
            }),
        }
    }

    /// Listing info without taking the lock.
    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            name: self.name.to_string(),
            kind: self.kind,
            members: self.member_count.load(Ordering::Relaxed),
            title: self.title.lock().clone(),
        }
    }

    /// The lane this room's events use on a connection right now.
    pub fn lane(&self, hot: bool) -> StreamKind {
        if hot {
            StreamKind::Hot(self.name.to_string())
        } else {
            StreamKind::Shard(self.shard)
        }
    }

    /// Publish one event: take the next offset and encode the event once; the committer
    /// stores it with `ops` (one group commit with whatever else is queued), then queues
    /// the shared bytes to every subscriber and sends `reply`. Nothing reaches anyone
    /// before it is durable, and a room's events are committed in offset order.
    pub fn publish(
        self: &Arc<Self>,
        st: &mut RoomState,
        commits: &Committer,
        make: impl FnOnce(Offset) -> Message,
        ops: Vec<Op>,
        reply: Option<(Arc<Conn>, Message)>,
    ) -> Result<Offset, Refusal> {
        self.publish_then(st, commits, make, ops, reply, None)
    }

    /// [`Room::publish`], then run `after` once the event went out: a member removed by
    /// someone else (kick, ban) stays subscribed until it has received its removal.
    pub fn publish_then(
        self: &Arc<Self>,
        st: &mut RoomState,
        commits: &Committer,
        make: impl FnOnce(Offset) -> Message,
        ops: Vec<Op>,
        reply: Option<(Arc<Conn>, Message)>,
        after: Option<Box<dyn FnOnce() + Send>>,
    ) -> Result<Offset, Refusal> {
        self.publish_with(st, commits, make, ops, reply, after, None)
    }

    /// [`Room::publish_then`] with what to do if the store refuses this change on its own
    /// (a constraint it breaks: the rest of its batch still commits). Without `on_refused`
    /// the sender of `reply` gets an Internal error for its request.
    ///
    /// Either way the refused change's offset does not stay a hole: clients deliver a
    /// room's events strictly in offset order, so a missing offset would stall the room
    /// for every subscriber. A stand-in event takes it instead: `MessageDeleted` of
    /// message 0 (no message has id 0; clients ignore deletions of messages they do not
    /// know), stored and delivered like any event, so live delivery, resume replay and the
    /// room's `last_offset` stay gap-free.
    ///
    /// Only messages undo their in-memory effects (their place in the window, see
    /// [`super::Hub`]'s send); a refused membership, role or edit change stays in memory
    /// until the next restart. Constraint violations are not expected there: those rows
    /// upsert.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_with(
        self: &Arc<Self>,
        st: &mut RoomState,
        commits: &Committer,
        make: impl FnOnce(Offset) -> Message,
        mut ops: Vec<Op>,
        reply: Option<(Arc<Conn>, Message)>,
        after: Option<Box<dyn FnOnce() + Send>>,
        on_refused: Option<OnRefused>,
    ) -> Result<Offset, Refusal> {
        if st.closed {
            return Err((
                garou_protocol::ErrorCode::NoSuchRoom,
                format!("no room {}", self.name),
            ));
        }
        let permit = commits.reserve()?;
        let arrived = std::time::Instant::now();
        st.offset += 1;
        let offset = st.offset;
        let frame = make(offset).encode();
        ops.push(Op::Event {
            room: self.name.to_string(),
            offset,
            ts_ms: super::now_ms(),
            frame: frame.clone(),
        });
        let asker = reply
            .as_ref()
            .and_then(|(conn, msg)| Some((conn.clone(), msg.reply_to()?)));
        let (room, stand_in) = (self.clone(), self.clone());
        permit.send(Commit {
            ops,
            then: Some(Box::new(move || {
                room.deliver_durable(offset, &frame, reply, arrived);
                if let Some(after) = after {
                    after();
                }
            })),
            refused: Some(Box::new(move |e: &StoreError| {
                match on_refused {
                    Some(f) => f(e),
                    None => {
                        if let Some((conn, req)) = asker {
                            conn.control(&garou_protocol::Error::reply(
                                req,
                                garou_protocol::ErrorCode::Internal,
                                "the change could not be stored",
                            ));
                        }
                    }
                }
                Some(stand_in.stand_in(offset, arrived))
            })),
        });
        Ok(offset)
    }

    /// The commit that fills `offset` of a refused change (see [`Room::publish_with`]).
    fn stand_in(self: &Arc<Self>, offset: Offset, arrived: std::time::Instant) -> Commit {
        let frame = Message::from(MessageDeleted {
            room: self.name.to_string(),
            offset,
            id: 0,
            by: 0,
        })
        .encode();
        let room = self.clone();
        Commit {
            ops: vec![Op::Event {
                room: self.name.to_string(),
                offset,
                ts_ms: super::now_ms(),
                frame: frame.clone(),
            }],
            then: Some(Box::new(move || {
                room.deliver_durable(offset, &frame, None, arrived)
            })),
            refused: None,
        }
    }

    /// Whether the window may have forgotten a stored message (see `forgotten`).
    pub fn forgotten(&self) -> bool {
        self.forgotten.load(Ordering::Acquire)
    }

    /// Remember a new message within the room's window and the gateway-wide budget
    /// ([`Windows`]), noting when the window forgets one. What the budget evicts from this
    /// room is forgotten at once; evictions from other rooms are returned, to be applied
    /// once `st` is released.
    pub fn remember_within(
        self: &Arc<Self>,
        st: &mut RoomState,
        id: MsgId,
        recent: Recent,
        windows: &Windows,
    ) -> Evictions {
        let mut forgot = st.remember(id, recent);
        let mut elsewhere = Vec::new();
        for (room, victim) in windows.push(self, id) {
            if std::ptr::eq(room.as_ptr(), Arc::as_ptr(self)) {
                forgot |= st.forget_upto(victim);
            } else {
                elsewhere.push((room, victim));
            }
        }
        if forgot {
            self.forgotten.store(true, Ordering::Release);
        }
        Evictions::new(elsewhere)
    }

    /// Forget every remembered message up to `id` (the budget evicted it).
    pub fn forget_upto(&self, st: &mut RoomState, id: MsgId) {
        if st.forget_upto(id) {
            self.forgotten.store(true, Ordering::Release);
        }
    }

    /// Note that the window does not hold every stored message (loaded only the newest).
    pub fn mark_forgotten(&self) {
        self.forgotten.store(true, Ordering::Release);
    }

    /// Called by the committer once `offset` is durable.
    fn deliver_durable(
        &self,
        offset: Offset,
        frame: &Bytes,
        reply: Option<(Arc<Conn>, Message)>,
        arrived: std::time::Instant,
    ) {
        {
            let mut st = self.state.lock();
            st.durable = st.durable.max(offset);
            for sub in &st.subs {
                sub.conn.deliver(&sub.tx, frame);
            }
            self.stats.fanout(st.subs.len(), arrived);
        }
        if let Some((conn, msg)) = reply {
            conn.control(&msg);
        }
    }

    /// Add a member (or change its entry) and keep the listed count in step.
    pub fn set_member(&self, st: &mut RoomState, user: UserId, member: Member) {
        if st.members.insert(user, member).is_none() {
            self.member_count
                .store(st.members.len() as u32, Ordering::Relaxed);
        }
    }

    pub fn remove_member(&self, st: &mut RoomState, user: UserId) -> Option<Member> {
        let m = st.members.remove(&user);
        self.member_count
            .store(st.members.len() as u32, Ordering::Relaxed);
        m
    }

    /// Start delivering the room to `conn` (no-op if it already receives it).
    pub fn subscribe(&self, st: &mut RoomState, conn: &Arc<Conn>) {
        if st.subs.iter().any(|s| s.conn.id == conn.id) {
            return;
        }
        let tx = conn.lane(&self.lane(st.hot));
        if st.hot {
            conn.control(
                &RoomPromoted {
                    room: self.name.to_string(),
                }
                .into(),
            );
        }
        st.subs.push(Sub {
            conn: conn.clone(),
            tx,
        });
    }

    /// Stop delivering to every connection `keep` rejects.
    pub fn unsubscribe(&self, st: &mut RoomState, mut drop_it: impl FnMut(&Conn) -> bool) {
        let hot_lane = st.hot.then(|| self.lane(true));
        st.subs.retain(|s| {
            let gone = drop_it(&s.conn);
            if gone {
                if let Some(lane) = &hot_lane {
                    s.conn.drop_lane(lane);
                }
            }
            !gone
        });
    }

    /// Move every subscriber onto this room's own stream.
    pub fn promote(&self, st: &mut RoomState) {
        st.hot = true;
        st.cool_since = None;
        let lane = self.lane(true);
        let note = Message::from(RoomPromoted {
            room: self.name.to_string(),
        })
        .encode();
        for sub in &mut st.subs {
            sub.tx = sub.conn.lane(&lane);
            sub.conn.control_bytes(note.clone());
        }
    }

    /// Move every subscriber back to the shard stream and finish the hot streams.
    pub fn demote(&self, st: &mut RoomState) {
        st.hot = false;
        st.cool_since = None;
        let hot_lane = self.lane(true);
        let shard_lane = self.lane(false);
        let note = Message::from(RoomDemoted {
            room: self.name.to_string(),
            shard: self.shard,
        })
        .encode();
        for sub in &mut st.subs {
            sub.tx = sub.conn.lane(&shard_lane);
            sub.conn.drop_lane(&hot_lane);
            sub.conn.control_bytes(note.clone());
        }
    }

    /// Member list with online flags (online = a connection currently receives the room).
    pub fn members(&self, st: &RoomState) -> Vec<MemberInfo> {
        let mut v: Vec<MemberInfo> = st
            .members
            .iter()
            .map(|(&user, m)| MemberInfo {
                user,
                nick: m.nick.clone(),
                role: m.role,
                online: st.subs.iter().any(|s| s.conn.user == user),
            })
            .collect();
        v.sort_by(|a, b| b.role.cmp(&a.role).then_with(|| a.nick.cmp(&b.nick)));
        v
    }
}

impl RoomState {
    /// Remember a new message, forgetting the oldest past the window; true when one was
    /// forgotten (callers go through [`Room::remember`]).
    fn remember(&mut self, id: MsgId, recent: Recent) -> bool {
        self.client_ids
            .insert((recent.author, recent.client_id), (id, recent.offset));
        self.recent.insert(id, recent);
        self.recent_order.push_back(id);
        let mut forgot = false;
        while self.recent_order.len() > self.window {
            forgot |= self.forget_oldest();
        }
        forgot
    }

    /// Forget the oldest remembered message; true if the window still held it.
    fn forget_oldest(&mut self) -> bool {
        let Some(old) = self.recent_order.pop_front() else {
            return false;
        };
        let Some(r) = self.recent.remove(&old) else {
            return false;
        };
        let key = (r.author, r.client_id);
        if self.client_ids.get(&key).is_some_and(|&(i, _)| i == old) {
            self.client_ids.remove(&key);
        }
        true
    }

    /// Forget the remembered messages up to `id` (ids grow with time, so a room's window
    /// is in id order); true if one was still held.
    fn forget_upto(&mut self, id: MsgId) -> bool {
        let mut forgot = false;
        while self.recent_order.front().is_some_and(|&front| front <= id) {
            forgot |= self.forget_oldest();
        }
        forgot
    }

    /// Undo [`RoomState::remember`] of a message the store refused.
    pub fn forget(&mut self, id: MsgId) {
        if let Some(r) = self.recent.remove(&id) {
            let key = (r.author, r.client_id);
            if self.client_ids.get(&key).is_some_and(|&(i, _)| i == id) {
                self.client_ids.remove(&key);
            }
            self.recent_order.retain(|&x| x != id);
        }
    }

    /// Messages the window keeps.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Messages after `user`'s read mark not written by `user` (within the recent window).
    pub fn unread(&self, user: UserId) -> u64 {
        let mark = self.read.get(&user).copied().unwrap_or(0);
        self.recent
            .values()
            .filter(|r| r.offset > mark && r.author != user && !r.deleted)
            .count() as u64
    }

    /// The role of `user`, `None` if not a member.
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        self.members.get(&user).map(|m| m.role)
    }
}
