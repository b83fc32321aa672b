//! Room membership: joining (and creating) rooms, resuming after a reconnect, leaving,
//! and role changes. Invitations and removals by moderators are in [`super::moderation`].

use std::collections::HashSet;
use std::sync::Arc;

use garou_protocol::*;

use super::permissions;
use super::room::core::Joining;
use super::room::{self, Room};
use super::{err, no_room, Hub, Reply, MAX_REPLAY};
use crate::conn::Conn;
use crate::store::Op;

/// Valid room names: 1-64 chars of letters, digits, `_`, `-`, `.`, `#` (`:` is reserved
/// for direct rooms, named `dm:<user>:<user>`).
pub fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.chars().count())
        && room
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '#'))
}

impl Hub {
    /// Join (or create, with `create = Some(kind)`) a room; with `since`, replay what the
    /// client missed if the history still has it.
    pub(super) fn join(
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
        let max_members = self.cfg.max_members_per_room;
        let role = match st
            .core
            .joining(conn.user, since, room.epoch, max_members, MAX_REPLAY)?
        {
            Joining::Again { role, resume } => {
                let was_online = st.subs.iter().any(|s| s.conn.user == conn.user);
                room.subscribe(&mut st, conn);
                if !was_online {
                    // Online in a room means receiving it: tell the others now (the
                    // connect-time announcement reached only those subscribed then).
                    room.announce(&st, conn, &nick, true);
                }
                if let Some(s) = resume {
                    self.replay(&room, &st, conn, s.offset);
                }
                // Events from the first one not yet stored come live (this connection is
                // subscribed before any pending commit delivers); history (the store) has
                // every one before it. The last *published* offset would leave a hole.
                let first = resume.map_or(st.core.durable, |s| s.offset) + 1;
                return Ok(Some(room.joined(
                    &st,
                    req,
                    conn.user,
                    role,
                    first,
                    resume.is_some(),
                )));
            }
            // A new member: the first event it delivers is its own MemberJoined. Guests
            // read only; a token's grant for the room beats the kind's default.
            Joining::New if guest => Role::Guest,
            Joining::New if created => Role::Owner,
            Joining::New => grant.unwrap_or_else(|| permissions::join_role(room.kind)),
        };
        let mut ops = Vec::new();
        if created {
            ops.push(Op::Room {
                name: name.to_owned(),
                kind: room.kind,
                epoch: room.epoch,
            });
        }
        let (slot, now) = (self.commits.reserve(), self.now());
        let mut publish = st.core.admit(conn.user, &nick, role, ops, slot, now)?;
        room.subscribe(&mut st, conn);
        let first = publish.event.offset;
        publish.reply = Some(room.joined(&st, req, conn.user, role, first, false));
        room.execute(publish, Some(conn), None, None);
        drop(st);
        self.user_rooms(conn.user, |r| {
            r.insert(room.name.clone());
        });
        Ok(None)
    }

    /// Replay to `conn` the durable events of `room` after `since`: they come from the
    /// store; later ones reach this new subscriber through the committer like any other.
    /// The client orders them by offset.
    fn replay(&self, room: &Room, st: &room::RoomState, conn: &Conn, since: Offset) {
        let upto = st.core.durable;
        if upto <= since {
            return;
        }
        let tx = conn.lane(&room.lane(st.core.hot));
        let (store, room_name) = (self.store.clone(), room.name.to_string());
        tokio::spawn(async move {
            match store.events(&room_name, since, upto).await {
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

    pub(super) fn new_room(&self, name: &str, kind: RoomKind) -> Arc<Room> {
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

    pub(super) fn user_rooms(&self, user: UserId, f: impl FnOnce(&mut HashSet<Arc<str>>)) {
        if let Some(u) = self.users.lock().by_id.get_mut(&user) {
            f(&mut u.rooms);
        }
    }

    pub(super) fn leave(&self, conn: &Arc<Conn>, m: Leave) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        {
            let mut st = room.state.lock();
            let publish = st
                .core
                .leave(conn.user, m.req, self.commits.reserve(), self.now())?;
            room.execute(publish, Some(conn), None, None);
            // The leaver's client stops tracking the room on the Left reply.
            room.unsubscribe(&mut st, |c| c.user == conn.user);
        }
        self.user_rooms(conn.user, |r| {
            r.remove(&*m.room);
        });
        Ok(None)
    }

    pub(super) fn set_role(&self, conn: &Arc<Conn>, m: SetRole) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let (slot, now) = (self.commits.reserve(), self.now());
        let publish = st.core.set_role(conn.user, m, |u| self.is_guest(u), slot, now)?;
        room.execute(publish, Some(conn), None, None);
        Ok(None)
    }

    /// Whether `user` is a member of `room`.
    pub fn is_member(&self, room: &str, user: UserId) -> bool {
        self.room(room)
            .is_some_and(|r| r.state.lock().core.role_of(user).is_some())
    }
}
