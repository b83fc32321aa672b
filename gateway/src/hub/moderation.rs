//! Moderation and room administration: kick, mute, ban (and lifting them), invitations,
//! titles, deletion. Every action is checked against the permission matrix (one place,
//! [`super::permissions`]) and announced to the room as a sequenced event. Kicks, mutes,
//! bans and invitations are decided by the room core ([`super::room::core`]); this file
//! finds the target user and carries the decision out (subscriptions, the user's rooms).

use std::sync::Arc;

use garou_protocol::*;

use super::commit::{Refusal, Then};
use super::permissions::{self, Action};
use super::room::core::Effects;
use super::{err, no_room, not_member, Hub, Reply};
use crate::conn::Conn;
use crate::store::Op;

fn forbidden(role: Role, what: &str) -> Refusal {
    (
        ErrorCode::Forbidden,
        format!("a {} may not {what} here", role.as_str()),
    )
}

impl Hub {
    /// The user called `nick`, with whether it is a guest and its connections.
    fn user_by_nick(&self, nick: &str) -> Result<(UserId, String, Vec<Arc<Conn>>), Refusal> {
        let users = self.users.lock();
        let nick = nick.trim();
        let Some(&id) = users.by_nick.get(nick) else {
            return err(ErrorCode::NoSuchUser, format!("no user {nick}"));
        };
        let u = &users.by_id[&id];
        Ok((id, u.nick.clone(), u.conns.clone()))
    }

    pub(super) fn moderate(&self, conn: &Arc<Conn>, m: Moderate) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let (target, nick, _) = self.user_by_nick(&m.nick)?;
        if target == conn.user {
            return err(ErrorCode::InvalidArgument, "you cannot moderate yourself");
        }
        let room_name = m.room.clone();
        let mut st = room.state.lock();
        let (slot, now) = (self.commits.reserve(), self.now());
        let (publish, removes) = st.core.moderate(conn.user, (target, &nick), m, slot, now)?;
        // A removed member still receives its removal, then stops receiving the room.
        let after: Option<Then> = removes.then(|| {
            let room = room.clone();
            Box::new(move || {
                let mut st = room.state.lock();
                if st.core.role_of(target).is_none() {
                    room.unsubscribe(&mut st, |c| c.user == target);
                }
            }) as Then
        });
        room.execute(publish, Some(conn), after, None);
        drop(st);
        if removes {
            self.user_rooms(target, |r| {
                r.remove(&*room_name);
            });
        }
        Ok(None)
    }

    /// Add a user as a member; a guest of a channel becomes a member (may post).
    pub(super) fn invite(&self, conn: &Arc<Conn>, m: Invite) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let (target, nick, target_conns) = self.user_by_nick(&m.nick)?;
        if self.is_guest(target) {
            return err(
                ErrorCode::Forbidden,
                format!("{nick} is an anonymous guest: they need to sign in"),
            );
        }
        let mut st = room.state.lock();
        let (slot, now) = (self.commits.reserve(), self.now());
        let (publish, new) = match st.core.invite(conn.user, (target, &nick), m.req, slot, now)? {
            (Effects::Reply(done), _) => return Ok(Some(done)),
            (Effects::Publish(publish), new) => (publish, new),
        };
        // Online connections start receiving the room at their own MemberJoined, as with
        // a direct room opened by someone else.
        if new {
            for c in &target_conns {
                room.subscribe(&mut st, c);
            }
        }
        room.execute(publish, Some(conn), None, None);
        drop(st);
        if new {
            self.user_rooms(target, |r| {
                r.insert(room.name.clone());
            });
        }
        Ok(None)
    }

    pub(super) fn rename_room(&self, conn: &Arc<Conn>, m: RenameRoom) -> Reply {
        let title = m.title.trim().to_owned();
        if !(1..=64).contains(&title.chars().count()) || title.chars().any(char::is_control) {
            return err(ErrorCode::InvalidArgument, "a title is 1-64 printable characters");
        }
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let actor = st.core.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        if !permissions::allowed(room.kind, actor, Action::RenameRoom) {
            return Err(forbidden(actor, "rename the room"));
        }
        *room.title.lock() = title.clone();
        let ops = vec![Op::RoomTitle {
            room: m.room.clone(),
            title: title.clone(),
        }];
        let event = |offset| {
            RoomRenamed {
                room: m.room.clone(),
                offset,
                title,
                by: conn.user,
            }
            .into()
        };
        let done = Some((conn.clone(), Done { req: m.req }.into()));
        room.publish(&mut st, &self.commits, event, ops, done)?;
        Ok(None)
    }

    pub(super) fn delete_room_command(&self, conn: &Arc<Conn>, m: DeleteRoom) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        {
            let st = room.state.lock();
            let actor = st.core.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
            if !permissions::allowed(room.kind, actor, Action::DeleteRoom) {
                return Err(forbidden(actor, "delete the room"));
            }
        }
        self.close_room(&m.room, conn.user)?;
        // Answered once the deletion is durable (it was queued before this).
        self.commits.push(
            Vec::new(),
            Some(super::reply_later(conn, Done { req: m.req }.into())),
        )?;
        Ok(None)
    }
}
