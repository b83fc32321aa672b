//! One memory budget for the in-memory message windows of every room.
//!
//! Each room remembers its newest messages (edits, reactions, receipts, unread counts, and
//! the fast path of idempotent publishing) up to its own window (`recent_messages`). With
//! only that bound, memory grew with the number of rooms: 250 busy rooms × 10,000 messages
//! was about half a gigabyte, and 100,000 rooms could not fit. This budget bounds the sum:
//! every remembered message takes a place in one gateway-wide queue, in the order messages
//! were remembered; past `recent_messages_total` places the oldest message anywhere is
//! forgotten by its room. A forgotten message is still in the store: a re-sent client id
//! is then answered from the store, and edits of it are refused as too old.
//!
//! Lock order: a room's state, then this queue (a leaf). Evicting from another room needs
//! that room's lock, so it is returned as [`Evictions`] and applied once the caller has
//! released its own room.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use garou_protocol::MsgId;
use parking_lot::Mutex;

use super::room::Room;

/// The gateway-wide budget of remembered messages.
pub struct Windows {
    max: usize,
    order: Mutex<VecDeque<(Weak<Room>, MsgId)>>,
}

/// Messages to forget in rooms other than the one that was locked: apply them with
/// [`Evictions::apply`] once no room lock is held.
#[must_use = "apply the evictions once the room lock is released"]
#[derive(Default)]
pub struct Evictions(Vec<(Weak<Room>, MsgId)>);

impl Windows {
    /// A budget of `max` remembered messages over all rooms (at least 1).
    pub fn new(max: usize) -> Windows {
        Windows {
            max: max.max(1),
            order: Mutex::new(VecDeque::new()),
        }
    }

    /// Places taken now (an upper bound of the messages rooms remember).
    pub fn len(&self) -> usize {
        self.order.lock().len()
    }

    /// Whether no message is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take a place for message `id` of `room`; returns the messages that fell out of the
    /// budget (oldest first), which their rooms must forget.
    pub(super) fn push(&self, room: &Arc<Room>, id: MsgId) -> Vec<(Weak<Room>, MsgId)> {
        let mut order = self.order.lock();
        order.push_back((Arc::downgrade(room), id));
        let over = order.len().saturating_sub(self.max);
        order.drain(..over).collect()
    }
}

impl Evictions {
    pub(super) fn new(victims: Vec<(Weak<Room>, MsgId)>) -> Evictions {
        Evictions(victims)
    }

    /// Make each room forget its messages up to the evicted one. Takes each room's lock in
    /// turn: call with no room lock held.
    pub fn apply(self) {
        for (room, id) in self.0 {
            if let Some(room) = room.upgrade() {
                let mut st = room.state.lock();
                st.core.forget_upto(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::room::Recent;
    use garou_protocol::RoomKind;

    fn room(name: &str, window: usize) -> Arc<Room> {
        Arc::new(Room::new(
            name,
            RoomKind::Group,
            1,
            16,
            10,
            window,
            Default::default(),
        ))
    }

    fn recent(offset: u64) -> Recent {
        Recent {
            author: 7,
            offset,
            client_id: offset,
            deleted: false,
            reactions: Vec::new(),
        }
    }

    fn remember(room: &Arc<Room>, windows: &Windows, id: MsgId) -> Evictions {
        let mut st = room.state.lock();
        room.remember_within(&mut st, id, recent(id), windows)
    }

    #[test]
    fn the_budget_bounds_all_rooms_together() {
        let windows = Windows::new(10);
        let (a, b) = (room("a", 100), room("b", 100));
        for id in 1..=8 {
            assert!(remember(&a, &windows, id).0.is_empty(), "a alone fits");
        }
        assert!(!a.forgotten());
        let mut later = Vec::new();
        for id in 9..=16 {
            later.extend(remember(&b, &windows, id).0);
        }
        // b's 8 messages pushed a's 6 oldest out; they are forgotten once applied.
        assert_eq!(later.len(), 6);
        Evictions::new(later).apply();
        let kept: Vec<MsgId> = {
            let st = a.state.lock();
            let mut v: Vec<_> = st.core.recent.keys().copied().collect();
            v.sort();
            v
        };
        assert_eq!(kept, vec![7, 8], "a keeps its newest");
        assert!(a.forgotten(), "a must ask the store for older client ids");
        assert!(!a.state.lock().core.client_ids.contains_key(&(7, 1)));
        assert_eq!(b.state.lock().core.recent.len(), 8);
        assert!(!b.forgotten());
        assert_eq!(windows.len(), 10);
    }

    #[test]
    fn a_busy_room_evicts_itself_in_place() {
        let windows = Windows::new(5);
        let a = room("a", 100);
        for id in 1..=20 {
            assert!(
                remember(&a, &windows, id).0.is_empty(),
                "same room: no deferred work"
            );
        }
        let st = a.state.lock();
        assert_eq!(st.core.recent.len(), 5);
        assert!(st.core.recent.contains_key(&20) && !st.core.recent.contains_key(&15));
        assert!(a.forgotten());
    }

    #[test]
    fn a_deleted_room_costs_nothing_to_evict() {
        let windows = Windows::new(2);
        let a = room("a", 100);
        let _ = remember(&a, &windows, 1);
        drop(a);
        let b = room("b", 100);
        let _ = remember(&b, &windows, 2);
        let gone = remember(&b, &windows, 3);
        gone.apply(); // the dropped room's place is simply released
        assert_eq!(b.state.lock().core.recent.len(), 2);
    }
}
