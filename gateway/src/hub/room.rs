//! One room: members, subscribers, ordering and fan-out.
//!
//! Everything that changes a room happens under its own short lock (never held across an
//! await): the next offset is taken, the event is encoded **once**, and the shared bytes are
//! pushed into each subscriber's lane queue. Taking the offset and queueing under the same
//! lock is what makes every subscriber see the room in offset order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::{
    MemberInfo, Message, MsgId, Offset, Role, RoomDemoted, RoomInfo, RoomKind, RoomPromoted, StreamKind,
    UserId,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::commit::{Commit, Committer, Refusal};
use super::rate::RateWindow;
use crate::session::outbound::Conn;
use crate::store::Op;

/// Messages remembered per room for edits, deletes, reactions and receipts.
/// (Durable history comes with the store; this is the in-memory window.)
pub const RECENT_MESSAGES: usize = 10_000;
/// Distinct reactions kept per message.
pub const MAX_REACTIONS: usize = 64;

pub struct Room {
    pub name: Arc<str>,
    pub kind: RoomKind,
    pub shard: u16,
    /// Identifies this room's history: recovery across another epoch is refused.
    pub epoch: u64,
    member_count: AtomicU32,
    /// Display title (RenameRoom); empty shows the name.
    pub title: Mutex<String>,
    pub state: Mutex<RoomState>,
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
    pub fn new(name: &str, kind: RoomKind, epoch: u64, num_shards: u16, rate_window_secs: u64) -> Room {
        Room {
            name: name.into(),
            kind,
            shard: garou_protocol::shard_of(name, num_shards),
            epoch,
            member_count: AtomicU32::new(0),
            title: Mutex::new(String::new()),
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
        mut ops: Vec<Op>,
        reply: Option<(Arc<Conn>, Message)>,
        after: Option<Box<dyn FnOnce() + Send>>,
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
        let room = self.clone();
        permit.send(Commit {
            ops,
            then: Some(Box::new(move || {
                room.deliver_durable(offset, &frame, reply, arrived);
                if let Some(after) = after {
                    after();
                }
            })),
        });
        Ok(offset)
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
            crate::metrics::fanout(st.subs.len(), arrived);
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
    /// Remember a new message, forgetting the oldest past [`RECENT_MESSAGES`].
    pub fn remember(&mut self, id: MsgId, recent: Recent) {
        self.client_ids
            .insert((recent.author, recent.client_id), (id, recent.offset));
        self.recent.insert(id, recent);
        self.recent_order.push_back(id);
        if self.recent_order.len() > RECENT_MESSAGES {
            if let Some(old) = self.recent_order.pop_front() {
                if let Some(r) = self.recent.remove(&old) {
                    self.client_ids.remove(&(r.author, r.client_id));
                }
            }
        }
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
