//! One room's driver: its subscribers, its commits and its fan-out, around its
//! [`RoomCore`] (what the room decides: see [`self::core`]).
//!
//! Everything that changes a room happens under its own short lock (never held across an
//! await): the core takes the next offset and encodes the event **once**; the driver
//! queues its rows to the committer, and once they are durable pushes the shared bytes into
//! each subscriber's lane queue and sends the reply. Taking the offset and queueing under
//! the same lock is what makes every subscriber see the room in offset order, and nothing
//! reaches anyone before it is durable.

pub mod core;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use garou_protocol::{
    Joined, MemberInfo, Message, MessageDeleted, MsgId, Offset, ReqId, Role, RoomDemoted, RoomInfo, RoomKind,
    RoomPromoted, StreamKind, UserId,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

pub use self::core::{Event, Listed, Member, Publish, Recent, RoomCore, MAX_REACTIONS};
use super::commit::{Commit, Committer, Refusal, Then};
use super::stats::Stats;
use super::window::{Evictions, Windows};
pub use crate::config::RECENT_MESSAGES;
use crate::conn::Conn;
use crate::store::{Op, StoreError};

/// What a publisher does when the store refused its change on its own (see
/// [`Room::publish_with`]): undo in-memory effects and answer the sender. Runs on the
/// committer's task, no lock held; it may spawn (a store lookup) but must not block.
pub type OnRefused = Box<dyn FnOnce(&StoreError) + Send>;

/// A place in the commit queue, as the core takes it.
pub type Slot<'a> = mpsc::Permit<'a, Commit>;

pub struct Room {
    pub name: Arc<str>,
    pub kind: RoomKind,
    pub shard: u16,
    /// Identifies this room's history: recovery across another epoch is refused.
    pub epoch: u64,
    /// Member count and the forgotten flag, read without the lock (the core keeps them).
    /// The common path of a room whose window is complete costs nothing.
    listed: Arc<Listed>,
    /// Display title (RenameRoom); empty shows the name.
    pub title: Mutex<String>,
    pub state: Mutex<RoomState>,
    /// The hub's counters (fan-outs).
    stats: Arc<Stats>,
}

/// One online connection receiving the room, with the lane queue it currently uses.
pub struct Sub {
    pub conn: Arc<Conn>,
    pub tx: mpsc::Sender<Bytes>,
}

/// What the room's lock guards: the core's state, and who receives the room.
pub struct RoomState {
    pub core: RoomCore,
    pub subs: Vec<Sub>,
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
        let name: Arc<str> = name.into();
        let listed = Arc::new(Listed::default());
        Room {
            shard: garou_protocol::shard_of(&name, num_shards),
            kind,
            epoch,
            title: Mutex::new(String::new()),
            stats,
            state: Mutex::new(RoomState {
                core: RoomCore::new(name.clone(), kind, rate_window_secs, window, listed.clone()),
                subs: Vec::new(),
            }),
            listed,
            name,
        }
    }

    /// Listing info without taking the lock.
    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            name: self.name.to_string(),
            kind: self.kind,
            members: self.listed.members.load(Ordering::Relaxed),
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

    /// Carry out what the core decided: queue the event's rows on its slot; once they are
    /// durable, queue the shared bytes to every subscriber and send the reply to `asker`,
    /// then run `after` (see [`Room::publish_with`] for `after` and `on_refused`). Returns
    /// the event's offset.
    pub fn execute(
        self: &Arc<Self>,
        publish: Publish<Slot<'_>>,
        asker: Option<&Arc<Conn>>,
        after: Option<Then>,
        on_refused: Option<OnRefused>,
    ) -> Offset {
        let Publish { slot, event, reply } = publish;
        let reply = asker.cloned().zip(reply);
        self.commit_then_deliver(slot, event, reply, after, on_refused)
    }

    /// Publish one event outside the core's commands (moderation, administration): the
    /// core takes the next offset and encodes the event once; the committer stores it with
    /// `ops` (one group commit with whatever else is queued), then queues the shared bytes
    /// to every subscriber and sends `reply`. Nothing reaches anyone before it is durable,
    /// and a room's events are committed in offset order.
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
        after: Option<Then>,
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
        ops: Vec<Op>,
        reply: Option<(Arc<Conn>, Message)>,
        after: Option<Then>,
        on_refused: Option<OnRefused>,
    ) -> Result<Offset, Refusal> {
        let (slot, event) = st.core.sequence(commits.reserve(), make, ops, super::now_ms())?;
        Ok(self.commit_then_deliver(slot, event, reply, after, on_refused))
    }

    /// Queue `event` on `slot`; once durable, deliver it and send `reply` (see
    /// [`Room::publish_with`]).
    fn commit_then_deliver(
        self: &Arc<Self>,
        slot: Slot<'_>,
        event: Event,
        reply: Option<(Arc<Conn>, Message)>,
        after: Option<Then>,
        on_refused: Option<OnRefused>,
    ) -> Offset {
        let arrived = Instant::now();
        let Event { offset, frame, ops } = event;
        let asker = reply
            .as_ref()
            .and_then(|(conn, msg)| Some((conn.clone(), msg.reply_to()?)));
        let (room, stand_in) = (self.clone(), self.clone());
        slot.send(Commit {
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
        offset
    }

    /// The commit that fills `offset` of a refused change (see [`Room::publish_with`]).
    fn stand_in(self: &Arc<Self>, offset: Offset, arrived: Instant) -> Commit {
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

    /// Whether the window may have forgotten a stored message (see [`Listed::forgotten`]).
    pub fn forgotten(&self) -> bool {
        self.listed.forgotten.load(Ordering::Acquire)
    }

    /// Remember a message loaded from the store within the room's window and the
    /// gateway-wide budget (see [`Room::within_budget`]).
    pub fn remember_within(
        self: &Arc<Self>,
        st: &mut RoomState,
        id: MsgId,
        recent: Recent,
        windows: &Windows,
    ) -> Evictions {
        st.core.remember(id, recent);
        self.within_budget(st, id, windows)
    }

    /// Count message `id`, just remembered by the core, against the gateway-wide budget
    /// ([`Windows`]). What the budget evicts from this room is forgotten at once; evictions
    /// from other rooms are returned, to be applied once `st` is released.
    pub fn within_budget(self: &Arc<Self>, st: &mut RoomState, id: MsgId, windows: &Windows) -> Evictions {
        let mut elsewhere = Vec::new();
        for (room, victim) in windows.push(self, id) {
            if std::ptr::eq(room.as_ptr(), Arc::as_ptr(self)) {
                st.core.forget_upto(victim);
            } else {
                elsewhere.push((room, victim));
            }
        }
        Evictions::new(elsewhere)
    }

    /// Note that the window does not hold every stored message (loaded only the newest).
    pub fn mark_forgotten(&self) {
        self.listed.forgotten.store(true, Ordering::Release);
    }

    /// Called by the committer once `offset` is durable: the fan-out fast path (the shared
    /// frame into each subscriber's lane queue, no allocation per recipient).
    fn deliver_durable(
        &self,
        offset: Offset,
        frame: &Bytes,
        mut reply: Option<(Arc<Conn>, Message)>,
        arrived: Instant,
    ) {
        {
            let mut st = self.state.lock();
            st.core.durable = st.core.durable.max(offset);
            for sub in &st.subs {
                sub.conn.deliver(&sub.tx, frame);
            }
            self.stats.fanout(st.subs.len(), arrived);
            // A new member's Joined goes out now, not when it was decided: who is online
            // may have changed meanwhile (a member subscribed while this commit waited).
            if let Some((_, Message::Joined(j))) = &mut reply {
                j.members = self.members(&st);
            }
        }
        if let Some((conn, msg)) = reply {
            conn.control(&msg);
        }
    }

    /// Tell the room's other subscribers (a datagram each) that `conn`'s user is `online`.
    pub fn announce(&self, st: &RoomState, conn: &Conn, nick: &str, online: bool) {
        let frame = Message::from(garou_protocol::Presence {
            user: conn.user,
            nick: nick.to_owned(),
            online,
        })
        .encode();
        for s in st.subs.iter().filter(|s| s.conn.id != conn.id) {
            s.conn.datagram(frame.clone());
        }
    }

    /// Start delivering the room to `conn` (no-op if it already receives it).
    pub fn subscribe(&self, st: &mut RoomState, conn: &Arc<Conn>) {
        if st.subs.iter().any(|s| s.conn.id == conn.id) {
            return;
        }
        let tx = conn.lane(&self.lane(st.core.hot));
        if st.core.hot {
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

    /// Stop delivering to every connection `drop_it` picks.
    pub fn unsubscribe(&self, st: &mut RoomState, mut drop_it: impl FnMut(&Conn) -> bool) {
        let hot_lane = st.core.hot.then(|| self.lane(true));
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
        st.core.hot = true;
        st.core.cool_since = None;
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
        st.core.hot = false;
        st.core.cool_since = None;
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
            .core
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

    /// The Joined reply for `user`, a `role` here, whose events start at `offset`.
    pub fn joined(
        &self,
        st: &RoomState,
        req: ReqId,
        user: UserId,
        role: Role,
        offset: Offset,
        resumed: bool,
    ) -> Message {
        Message::from(Joined {
            req,
            room: self.info(),
            role,
            offset,
            members: self.members(st),
            epoch: self.epoch,
            resumed,
            unread: st.core.unread(user),
        })
    }
}
