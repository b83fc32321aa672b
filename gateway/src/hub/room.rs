//! One room: members, subscribers, ordering and fan-out.
//!
//! Everything that changes a room happens under its own short lock (never held across an
//! await): the next offset is taken, the event is encoded **once**, and the shared bytes are
//! pushed into each subscriber's lane queue. Taking the offset and queueing under the same
//! lock is what makes every subscriber see the room in offset order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::{
    MemberInfo, Message, MsgId, Offset, Role, RoomDemoted, RoomInfo, RoomKind, RoomPromoted, StreamKind,
    UserId,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::rate::RateWindow;
use crate::session::outbound::Conn;

/// Messages remembered per room for edits, deletes, reactions and receipts.
/// (Durable history comes with the store; this is the in-memory window.)
pub const RECENT_MESSAGES: usize = 10_000;
/// Distinct reactions kept per message.
pub const MAX_REACTIONS: usize = 64;

pub struct Room {
    pub name: Arc<str>,
    pub kind: RoomKind,
    pub shard: u16,
    member_count: AtomicU32,
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
    pub deleted: bool,
    pub reactions: Vec<(UserId, String)>,
}

pub struct RoomState {
    /// Offset of the last event published.
    pub offset: Offset,
    pub members: HashMap<UserId, Member>,
    pub subs: Vec<Sub>,
    pub recent: HashMap<MsgId, Recent>,
    recent_order: VecDeque<MsgId>,
    pub hot: bool,
    pub rate: RateWindow,
    /// Second at which a hot room's rate first fell below the cool-down threshold.
    pub cool_since: Option<u64>,
}

impl Room {
    pub fn new(name: &str, kind: RoomKind, num_shards: u16, rate_window_secs: u64) -> Room {
        Room {
            name: name.into(),
            kind,
            shard: garou_protocol::shard_of(name, num_shards),
            member_count: AtomicU32::new(0),
            state: Mutex::new(RoomState {
                offset: 0,
                members: HashMap::new(),
                subs: Vec::new(),
                recent: HashMap::new(),
                recent_order: VecDeque::new(),
                hot: false,
                rate: RateWindow::new(rate_window_secs),
                cool_since: None,
            }),
        }
    }

    /// Listing info without taking the lock.
    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            name: self.name.to_string(),
            kind: self.kind,
            members: self.member_count.load(Ordering::Relaxed),
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

    /// Publish one event: next offset, encode once, queue to every subscriber.
    pub fn publish(&self, st: &mut RoomState, make: impl FnOnce(Offset) -> Message) -> Offset {
        st.offset += 1;
        let frame = make(st.offset).encode();
        for sub in &st.subs {
            sub.conn.deliver(&sub.tx, &frame);
        }
        st.offset
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
    pub fn remember(&mut self, id: MsgId, author: UserId) {
        self.recent.insert(
            id,
            Recent {
                author,
                deleted: false,
                reactions: Vec::new(),
            },
        );
        self.recent_order.push_back(id);
        if self.recent_order.len() > RECENT_MESSAGES {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// The role of `user`, `None` if not a member.
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        self.members.get(&user).map(|m| m.role)
    }
}
