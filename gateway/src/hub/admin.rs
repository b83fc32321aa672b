//! What the admin API and `/metrics` ask of the hub: listings, counts, kicking a user and
//! closing a room.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use garou_protocol::{ErrorCode, Message, Offset, RoomDeleted, RoomKind, UserId};
use parking_lot::Mutex;
use serde::Serialize;

use super::commit::{Commit, Refusal};
use super::{no_room, now_ms, Hub};
use crate::conn::ConnId;
use crate::store::Op;

/// Where and since when each session is connected (the hub's [`Conn`] does not carry it).
///
/// [`Conn`]: crate::conn::Conn
#[derive(Default)]
pub struct Peers(Mutex<HashMap<ConnId, (SocketAddr, u64)>>);

impl Peers {
    /// Remember a new session's remote address (connected now).
    pub fn insert(&self, id: ConnId, remote: SocketAddr) {
        self.0.lock().insert(id, (remote, now_ms()));
    }
    pub fn remove(&self, id: ConnId) {
        self.0.lock().remove(&id);
    }
    fn get(&self, id: ConnId) -> Option<(SocketAddr, u64)> {
        self.0.lock().get(&id).copied()
    }
}

/// Counts read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sessions per transport, in [`crate::conn::TRANSPORTS`] order.
    pub sessions: [usize; 3],
    pub rooms: usize,
    pub hot_rooms: usize,
    /// Memberships summed over rooms.
    pub members: usize,
    pub uptime: Duration,
}

/// One session, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    pub id: ConnId,
    pub user: UserId,
    pub nick: String,
    pub transport: &'static str,
    pub remote: Option<String>,
    /// Unix milliseconds.
    pub connected_since_ms: Option<u64>,
    pub rooms: Vec<String>,
}

/// One room, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct RoomSummary {
    pub name: String,
    pub kind: &'static str,
    pub title: String,
    pub members: usize,
    /// Members with a connection receiving the room.
    pub online: usize,
    pub hot: bool,
    pub last_offset: Offset,
}

fn kind_name(k: RoomKind) -> &'static str {
    match k {
        RoomKind::Direct => "direct",
        RoomKind::Group => "group",
        RoomKind::Channel => "channel",
    }
}

impl Hub {
    /// Session addresses for the admin listing.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Counts for `/metrics` and stats: each lock taken briefly, one at a time.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot {
            uptime: self.started.elapsed(),
            hot_rooms: self.hot_rooms(),
            ..Snapshot::default()
        };
        for c in self.conns.lock().values() {
            snap.sessions[crate::conn::transport_index(c.transport)] += 1;
        }
        let rooms: Vec<_> = self.rooms.read().values().cloned().collect();
        snap.rooms = rooms.len();
        snap.members = rooms.iter().map(|r| r.info().members as usize).sum();
        snap
    }

    /// Every session with its user, address and rooms, by connection id.
    pub fn connection_infos(&self) -> Vec<ConnectionInfo> {
        let conns = self.connections();
        let users = self.users.lock();
        let mut out: Vec<ConnectionInfo> = conns
            .iter()
            .map(|c| {
                let user = users.by_id.get(&c.user);
                let peer = self.peers.get(c.id);
                let mut rooms: Vec<String> = user
                    .map(|u| u.rooms.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default();
                rooms.sort();
                ConnectionInfo {
                    id: c.id,
                    user: c.user,
                    nick: user.map(|u| u.nick.clone()).unwrap_or_default(),
                    transport: c.transport,
                    remote: peer.map(|p| p.0.to_string()),
                    connected_since_ms: peer.map(|p| p.1),
                    rooms,
                }
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Every room (direct ones included), by name.
    pub fn room_summaries(&self) -> Vec<RoomSummary> {
        let rooms: Vec<_> = self.rooms.read().values().cloned().collect();
        let mut out: Vec<RoomSummary> = rooms
            .iter()
            .map(|r| {
                let title = r.title.lock().clone();
                let st = r.state.lock();
                let mut online: Vec<UserId> = st.subs.iter().map(|s| s.conn.user).collect();
                online.sort_unstable();
                online.dedup();
                RoomSummary {
                    name: r.name.to_string(),
                    kind: kind_name(r.kind),
                    title,
                    members: st.core.members.len(),
                    online: online.len(),
                    hot: st.core.hot,
                    last_offset: st.core.offset,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Close every connection of the user called `nick` with [`ErrorCode::Kicked`] and
    /// `reason`. Returns how many connections were closed (`None`: no such user).
    pub fn kick(&self, nick: &str, reason: &str) -> Option<usize> {
        let conns = {
            let users = self.users.lock();
            let id = users.by_nick.get(nick)?;
            users.by_id.get(id)?.conns.clone()
        };
        for c in &conns {
            c.kill(ErrorCode::Kicked, reason);
        }
        tracing::info!(nick, reason, connections = conns.len(), "user kicked");
        Some(conns.len())
    }

    /// Close a room: sequence `RoomDeleted { by }` (0 = the server) as its last event, fan
    /// it out, then forget the room and delete its messages, memberships and events from
    /// the store. Returns the event's offset.
    ///
    /// The room is marked closed under its lock, so no event can follow RoomDeleted, and it
    /// leaves the room map at once (a new room of that name may be created right away: its
    /// rows are queued after the deletion, so they survive it). Subscribers are dropped only
    /// after RoomDeleted was queued to them, in the committer's order.
    pub fn close_room(&self, name: &str, by: UserId) -> Result<Offset, Refusal> {
        let room = self.room(name).ok_or_else(|| no_room(name))?;
        let (offset, members) = {
            let mut st = room.state.lock();
            if st.core.closed {
                return Err(no_room(name));
            }
            let event = |offset| {
                Message::from(RoomDeleted {
                    room: name.to_owned(),
                    offset,
                    by,
                })
            };
            // Both queue slots are taken first: the deletion must follow the event.
            let cleanup = self.commits.reserve()?;
            let offset = room.publish(&mut st, &self.commits, event, Vec::new(), None)?;
            st.core.closed = true;
            let room_after = room.clone();
            let forget: Box<dyn FnOnce() + std::marker::Send> = Box::new(move || {
                let mut st = room_after.state.lock();
                room_after.unsubscribe(&mut st, |_| true);
            });
            cleanup.send(Commit {
                ops: vec![Op::DeleteRoom {
                    room: name.to_owned(),
                }],
                then: Some(forget),
                refused: None,
            });
            if st.core.hot {
                st.core.hot = false;
                if self.hot.lock().remove(&room.name) {
                    self.hot_count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                }
            }
            (offset, st.core.members.keys().copied().collect::<Vec<_>>())
        };
        {
            let mut rooms = self.rooms.write();
            if rooms.get(name).is_some_and(|r| Arc::ptr_eq(r, &room)) {
                rooms.remove(name);
            }
        }
        for user in members {
            self.user_rooms(user, |r| {
                r.remove(name);
            });
        }
        tracing::info!(room = name, by, offset, "room closed");
        Ok(offset)
    }
}
