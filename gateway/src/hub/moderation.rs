//! Moderation and room administration: kick, mute, ban (and lifting them), invitations,
//! titles, deletion. Every action is checked against the permission matrix (one place,
//! [`super::permissions`]) and announced to the room as a sequenced event.

use std::sync::Arc;

use garou_protocol::*;

use super::commit::Refusal;
use super::permissions::{self, Action};
use super::room::{Member, RoomState};
use super::{err, no_room, not_member, now_ms, Hub, Reply};
use crate::conn::Conn;
use crate::store::{Op, SanctionKind};

/// Longest moderation reason kept, in characters.
const MAX_REASON: usize = 256;

/// Refuse when `user` is muted in the room (mutes end by themselves).
pub(super) fn check_muted(st: &RoomState, user: UserId, room: &str) -> Result<(), Refusal> {
    match st.muted.get(&user) {
        Some(0) => err(ErrorCode::Muted, format!("you are muted in {room}")),
        Some(&until) if until > now_ms() => err(
            ErrorCode::Muted,
            format!(
                "you are muted in {room} for {} more s",
                (until - now_ms()).div_ceil(1000)
            ),
        ),
        _ => Ok(()),
    }
}

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
        let action = match m.action {
            ModAction::Kick => Action::Kick,
            ModAction::Mute | ModAction::Unmute => Action::Mute,
            ModAction::Ban | ModAction::Unban => Action::Ban,
        };
        let reason: String = m.reason.trim().chars().take(MAX_REASON).collect();
        let mut st = room.state.lock();
        let actor = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        if !permissions::allowed(room.kind, actor, action) {
            return Err(forbidden(actor, &format!("{:?}", m.action).to_lowercase()));
        }
        let target_role = st.role_of(target);
        // Moderators act on those below them only.
        if let Some(r) = target_role.filter(|&r| r >= actor) {
            return Err((
                ErrorCode::Forbidden,
                format!("a {} may not moderate a {}", actor.as_str(), r.as_str()),
            ));
        }
        let room_name = m.room.clone();
        let until_ms = match m.action {
            ModAction::Mute if m.secs > 0 => now_ms() + u64::from(m.secs) * 1000,
            _ => 0,
        };
        let mut ops = Vec::new();
        let removes = matches!(m.action, ModAction::Kick | ModAction::Ban) && target_role.is_some();
        match m.action {
            ModAction::Kick | ModAction::Mute | ModAction::Unmute if target_role.is_none() => {
                return err(
                    ErrorCode::NoSuchUser,
                    format!("{nick} is not a member of {room_name}"),
                );
            }
            ModAction::Unban if !st.banned.contains(&target) => {
                return err(ErrorCode::NoSuchUser, format!("{nick} is not banned"));
            }
            ModAction::Kick => {}
            ModAction::Ban => {
                st.banned.insert(target);
                ops.push(Op::Sanction {
                    room: room_name.clone(),
                    user: target,
                    kind: SanctionKind::Ban,
                    until_ms: Some(0),
                });
            }
            ModAction::Unban => {
                st.banned.remove(&target);
                ops.push(Op::Sanction {
                    room: room_name.clone(),
                    user: target,
                    kind: SanctionKind::Ban,
                    until_ms: None,
                });
            }
            ModAction::Mute => {
                st.muted.insert(target, until_ms);
                ops.push(Op::Sanction {
                    room: room_name.clone(),
                    user: target,
                    kind: SanctionKind::Mute,
                    until_ms: Some(until_ms),
                });
            }
            ModAction::Unmute => {
                st.muted.remove(&target);
                ops.push(Op::Sanction {
                    room: room_name.clone(),
                    user: target,
                    kind: SanctionKind::Mute,
                    until_ms: None,
                });
            }
        }
        if removes {
            ops.push(Op::RemoveMember {
                room: room_name.clone(),
                user: target,
            });
        }
        let event = |offset| {
            MemberModerated {
                room: room_name.clone(),
                offset,
                user: target,
                nick: nick.clone(),
                action: m.action,
                by: conn.user,
                until_ms,
                reason,
            }
            .into()
        };
        let done = Some((conn.clone(), Done { req: m.req }.into()));
        // A removed member still receives its removal, then stops receiving the room.
        let after: Option<Box<dyn FnOnce() + std::marker::Send>> = removes.then(|| {
            let room = room.clone();
            Box::new(move || {
                let mut st = room.state.lock();
                if st.role_of(target).is_none() {
                    room.unsubscribe(&mut st, |c| c.user == target);
                }
            }) as Box<dyn FnOnce() + std::marker::Send>
        });
        room.publish_then(&mut st, &self.commits, event, ops, done, after)?;
        if removes {
            room.remove_member(&mut st, target);
            drop(st);
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
        let actor = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
        if !permissions::allowed(room.kind, actor, Action::Invite) {
            return Err(forbidden(actor, "invite"));
        }
        if st.banned.contains(&target) {
            return err(
                ErrorCode::Banned,
                format!("{nick} is banned from {}: unban first", m.room),
            );
        }
        let current = st.role_of(target);
        if current.is_some_and(|r| r >= Role::Member) {
            return Ok(Some(Done { req: m.req }.into()));
        }
        let role = Role::Member;
        room.set_member(
            &mut st,
            target,
            Member {
                nick: nick.clone(),
                role,
            },
        );
        let ops = vec![Op::Member {
            room: m.room.clone(),
            user: target,
            role,
        }];
        let done = Some((conn.clone(), Done { req: m.req }.into()));
        let room_name = m.room.clone();
        if current.is_some() {
            let event = |offset| {
                MemberUpdated {
                    room: room_name.clone(),
                    offset,
                    user: target,
                    nick: nick.clone(),
                    role,
                }
                .into()
            };
            room.publish(&mut st, &self.commits, event, ops, done)?;
            return Ok(None);
        }
        // Online connections start receiving the room at their own MemberJoined, as with
        // a direct room opened by someone else.
        for c in &target_conns {
            room.subscribe(&mut st, c);
        }
        let event = |offset| {
            MemberJoined {
                room: room_name.clone(),
                offset,
                user: target,
                nick: nick.clone(),
                role,
            }
            .into()
        };
        room.publish(&mut st, &self.commits, event, ops, done)?;
        drop(st);
        self.user_rooms(target, |r| {
            r.insert(room.name.clone());
        });
        Ok(None)
    }

    pub(super) fn rename_room(&self, conn: &Arc<Conn>, m: RenameRoom) -> Reply {
        let title = m.title.trim().to_owned();
        if !(1..=64).contains(&title.chars().count()) || title.chars().any(char::is_control) {
            return err(ErrorCode::InvalidArgument, "a title is 1-64 printable characters");
        }
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let actor = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
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
            let actor = st.role_of(conn.user).ok_or_else(|| not_member(&m.room))?;
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
