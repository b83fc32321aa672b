//! Room membership: joining (and creating) rooms, resuming after a reconnect, leaving,
//! and role changes. Invitations and removals by moderators are in [`super::moderation`].

use std::collections::HashSet;
use std::sync::Arc;

use garou_protocol::*;

use super::permissions;
use super::room::{self, Member, Room};
use super::{err, no_room, not_member, Hub, Reply, MAX_REPLAY};
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

    pub(super) fn set_role(&self, conn: &Arc<Conn>, m: SetRole) -> Reply {
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

    /// Whether `user` is a member of `room`.
    pub fn is_member(&self, room: &str, user: UserId) -> bool {
        self.room(room)
            .is_some_and(|r| r.state.lock().role_of(user).is_some())
    }
}
