//! What is not sequenced: delivery and read receipts, typing, and online presence.

use std::collections::HashSet;

use bytes::Bytes;
use garou_protocol::*;

use super::permissions::{self, Action};
use super::Hub;
use crate::conn::{Conn, ConnId};
use crate::store::Op;

impl Hub {
    /// A Delivered or Read ack: persist the user's mark and tell the message's author.
    pub fn receipt(&self, conn: &Conn, room_name: &str, id: MsgId, read: bool) {
        let Some(room) = self.room(room_name) else { return };
        let (author, nick, offset) = {
            let mut st = room.state.lock();
            let Some(me) = st.core.members.get(&conn.user).map(|m| m.nick.clone()) else {
                return;
            };
            let Some(recent) = st.core.recent.get(&id) else {
                return;
            };
            let (author, offset) = (recent.author, recent.offset);
            if read {
                let mark = st.core.read.entry(conn.user).or_insert(0);
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
        let Some(me) = st.core.members.get(&conn.user) else {
            return;
        };
        if !permissions::allowed(room.kind, me.role, Action::Typing)
            || st.core.check_muted(conn.user, super::now_ms()).is_err()
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
}
