//! Messages: sending (idempotent by client id, with the store as the judge of what the
//! window forgot), direct messages, edits, deletions, reactions, and the retention trim a
//! growing room triggers.

use std::sync::Arc;

use garou_protocol::*;

use super::commit::{self, Refusal};
use super::permissions::{self, Action};
use super::room::{self, Member, Recent, Room};
use super::{err, moderation, no_room, not_member, now_ms, Hub, Reply};
use crate::conn::Conn;
use crate::store::{Op, Store};

/// The store's answer for a message of `author` in `room` with `client_id`: its original
/// ack, `None` when the store has no such message, an Error when the store cannot say.
async fn stored_reply(
    store: &dyn Store,
    room: &str,
    author: UserId,
    client_id: u64,
    req: ReqId,
) -> Option<Message> {
    match store.client_message(room, author, client_id).await {
        Ok(found) => found.map(|(id, offset)| {
            MessageAck {
                req,
                room: room.to_owned(),
                id,
                offset,
            }
            .into()
        }),
        Err(e) => {
            tracing::warn!(error = %e, room, "could not look up a re-sent message");
            let code = match e.is_unavailable() {
                true => ErrorCode::Unavailable,
                false => ErrorCode::Internal,
            };
            Some(Error::reply(
                req,
                code,
                "could not check whether this message was stored",
            ))
        }
    }
}

impl Hub {
    pub(super) fn check_text(&self, text: &str) -> Result<(), Refusal> {
        if text.trim().is_empty() {
            return err(ErrorCode::InvalidArgument, "empty message");
        }
        if text.len() > self.cfg.max_message_len {
            return err(
                ErrorCode::InvalidArgument,
                format!("message longer than {} bytes", self.cfg.max_message_len),
            );
        }
        Ok(())
    }

    pub(super) fn send(
        &self,
        conn: &Arc<Conn>,
        req: ReqId,
        name: &str,
        client_id: u64,
        text: String,
        attachment: Option<String>,
    ) -> Reply {
        self.check_text(&text)?;
        // The session has checked that it is a complete upload of the sender's (uploads.rs).
        if attachment
            .as_deref()
            .is_some_and(|a| !crate::uploads::registry::valid_id(a))
        {
            return err(ErrorCode::InvalidArgument, "the attachment is not an upload id");
        }
        let room = self.room(name).ok_or_else(|| no_room(name))?;
        let now = self.now_sec();
        let mut st = room.state.lock();
        let role = st.role_of(conn.user).ok_or_else(|| not_member(name))?;
        if !permissions::allowed(room.kind, role, Action::Post) {
            return err(
                ErrorCode::Forbidden,
                format!("a {} may not post in {name}", role.as_str()),
            );
        }
        moderation::check_muted(&st, conn.user, name)?;
        let ack = |id, offset| {
            Message::from(MessageAck {
                req,
                room: name.to_owned(),
                id,
                offset,
            })
        };
        // A retry (after a reconnect) of a message we already have: the first ack again,
        // once that message is durable. (Messages the window forgot were looked up in the
        // store before this: see [`Hub::stored_ack`].)
        if let Some(&(id, offset)) = st.client_ids.get(&(conn.user, client_id)) {
            if offset <= st.durable {
                return Ok(Some(ack(id, offset)));
            }
            let then = self.ack_when_durable(&room, conn, (client_id, id, offset), ack(id, offset));
            self.commits.push(Vec::new(), Some(then))?;
            return Ok(None);
        }
        let nick = st.members[&conn.user].nick.clone();
        let id = self.next_id();
        let ts_ms = now_ms();
        let offset = st.offset + 1;
        let row = Op::Message {
            id,
            room: name.to_owned(),
            offset,
            author: conn.user,
            nick: nick.clone(),
            ts_ms,
            text: text.clone(),
            client_id,
            attachment: attachment.clone(),
        };
        let event = |offset| {
            RoomMessage {
                room: name.to_owned(),
                offset,
                id,
                author: conn.user,
                nick,
                ts_ms,
                text,
                attachment,
            }
            .into()
        };
        let on_refused = self.message_refused(&room, conn, req, client_id, id);
        room.publish_with(
            &mut st,
            &self.commits,
            event,
            vec![row],
            Some((conn.clone(), ack(id, offset))),
            None,
            Some(on_refused),
        )?;
        let recent = Recent {
            author: conn.user,
            offset,
            client_id,
            deleted: false,
            reactions: Vec::new(),
        };
        let evicted = room.remember_within(&mut st, id, recent, &self.windows);
        st.rate.record(now);
        if !st.hot && st.rate.rate(now) > self.cfg.hot_room_threshold && self.reserve_hot() {
            tracing::info!(room = name, "room promoted to its own stream");
            room.promote(&mut st);
            self.hot.lock().insert(room.name.clone());
        }
        self.maybe_trim(&room, &st);
        drop(st);
        evicted.apply();
        Ok(None)
    }

    /// What a refused message does (see [`room::Room::publish_with`]): leave the window,
    /// and answer its sender. A conflict means the store already holds a message of this
    /// author and client id (one the window had forgotten): the sender gets that original
    /// ack, from the store. Any other refusal is an Internal error.
    pub(super) fn message_refused(
        &self,
        room: &Arc<Room>,
        conn: &Arc<Conn>,
        req: ReqId,
        client_id: u64,
        id: MsgId,
    ) -> room::OnRefused {
        let (room, conn, store) = (room.clone(), conn.clone(), self.store.clone());
        Box::new(move |e: &crate::store::StoreError| {
            room.state.lock().forget(id);
            if !e.is_conflict() {
                let msg = "the message could not be stored";
                return conn.control(&Error::reply(req, ErrorCode::Internal, msg));
            }
            tokio::spawn(async move {
                let reply = stored_reply(&*store, &room.name, conn.user, client_id, req).await;
                conn.control(&reply.unwrap_or_else(|| {
                    Error::reply(req, ErrorCode::Internal, "the message could not be stored")
                }));
            });
        })
    }

    /// A continuation acking a re-sent client id whose first message `(client_id, id,
    /// offset)` was still on its way to the store: `ack` once it is durable, or (when the
    /// store refused that first message) whatever the store holds for the client id.
    pub(super) fn ack_when_durable(
        &self,
        room: &Arc<Room>,
        conn: &Arc<Conn>,
        (client_id, id, offset): (u64, MsgId, Offset),
        ack: Message,
    ) -> commit::Then {
        let (room, conn, store) = (room.clone(), conn.clone(), self.store.clone());
        Box::new(move || {
            let kept = room.state.lock().client_ids.get(&(conn.user, client_id)) == Some(&(id, offset));
            if kept {
                return conn.control(&ack);
            }
            let req = ack.reply_to().unwrap_or_default();
            tokio::spawn(async move {
                let reply = stored_reply(&*store, &room.name, conn.user, client_id, req).await;
                conn.control(&reply.unwrap_or_else(|| {
                    Error::reply(req, ErrorCode::Internal, "the message could not be stored")
                }));
            });
        })
    }

    /// For a Send or DirectMessage whose client id the room's window may have forgotten:
    /// the original ack when the store holds that message (`None`: publish it as new). The
    /// store decides idempotency; the window is only its cache: no store read for client
    /// ids the window knows. Call it only when [`Hub::may_have_forgotten`] says so.
    pub async fn stored_ack(&self, conn: &Conn, msg: &Message) -> Option<Message> {
        let (req, room_name, client_id) = match msg {
            Message::Send(m) => (m.req, m.room.clone(), m.client_id),
            Message::DirectMessage(m) => (m.req, self.direct_room_name(conn.user, &m.to)?, m.client_id),
            _ => return None,
        };
        let room = self.room(&room_name)?;
        if !room.forgotten() {
            return None;
        }
        {
            let st = room.state.lock();
            if st.role_of(conn.user).is_none() || st.client_ids.contains_key(&(conn.user, client_id)) {
                return None; // refused, or answered from the window, by the hub
            }
        }
        stored_reply(&*self.store, &room_name, conn.user, client_id, req).await
    }

    /// Whether `msg` (a Send or DirectMessage) goes to a room whose window has forgotten
    /// a message: only then may [`Hub::stored_ack`] have to read the store. Cheap: a map
    /// lookup and an atomic load.
    pub fn may_have_forgotten(&self, conn: &Conn, msg: &Message) -> bool {
        let forgotten = |name: &str| self.rooms.read().get(name).is_some_and(|r| r.forgotten());
        match msg {
            Message::Send(m) => forgotten(&m.room),
            Message::DirectMessage(m) => self
                .direct_room_name(conn.user, &m.to)
                .is_some_and(|name| forgotten(&name)),
            _ => false,
        }
    }

    /// The name of the direct room of `user` and the user called `to`, if that user exists.
    pub(super) fn direct_room_name(&self, user: UserId, to: &str) -> Option<String> {
        let them = *self.users.lock().by_nick.get(to.trim())?;
        Some(format!("dm:{}:{}", user.min(them), user.max(them)))
    }

    pub(super) fn direct(&self, conn: &Arc<Conn>, m: DirectMessage) -> Reply {
        self.check_text(&m.text)?;
        if self.is_guest(conn.user) {
            return err(
                ErrorCode::Forbidden,
                "guests cannot send direct messages: sign in",
            );
        }
        let (me, them, their_conns) = {
            let users = self.users.lock();
            let Some(&them) = users.by_nick.get(m.to.trim()) else {
                return err(ErrorCode::NoSuchUser, format!("no user {}", m.to));
            };
            if them == conn.user {
                return err(ErrorCode::InvalidArgument, "cannot message yourself");
            }
            let me = users.by_id[&conn.user].nick.clone();
            let u = &users.by_id[&them];
            ((conn.user, me), (them, u.nick.clone()), u.conns.clone())
        };
        let (lo, hi) = (me.0.min(them.0), me.0.max(them.0));
        let name = format!("dm:{lo}:{hi}");
        let (room, created) = {
            let mut rooms = self.rooms.write();
            match rooms.get(name.as_str()) {
                Some(r) => (r.clone(), false),
                None => {
                    let r = self.new_room(&name, RoomKind::Direct);
                    rooms.insert(r.name.clone(), r.clone());
                    (r, true)
                }
            }
        };
        let mut added = false;
        {
            let mut st = room.state.lock();
            let mut ops = Vec::new();
            if created {
                ops.push(Op::Room {
                    name: name.clone(),
                    kind: RoomKind::Direct,
                    epoch: room.epoch,
                });
            }
            for (user, nick, conns) in [(me.0, &me.1, vec![conn.clone()]), (them.0, &them.1, their_conns)] {
                if st.role_of(user).is_some() {
                    continue;
                }
                added = true;
                let member = Member {
                    nick: nick.clone(),
                    role: Role::Member,
                };
                room.set_member(&mut st, user, member);
                for c in &conns {
                    room.subscribe(&mut st, c);
                }
                ops.push(Op::Member {
                    room: name.clone(),
                    user,
                    role: Role::Member,
                });
                let event = |offset| {
                    MemberJoined {
                        room: name.clone(),
                        offset,
                        user,
                        nick: nick.clone(),
                        role: Role::Member,
                    }
                    .into()
                };
                room.publish(&mut st, &self.commits, event, std::mem::take(&mut ops), None)?;
            }
            // The sender may have this direct room open on another connection only.
            room.subscribe(&mut st, conn);
        }
        if added {
            let mut users = self.users.lock();
            for u in [me.0, them.0] {
                if let Some(u) = users.by_id.get_mut(&u) {
                    u.rooms.insert(room.name.clone());
                }
            }
        }
        self.send(conn, m.req, &name, m.client_id, m.text, None)
    }

    /// Who may change message `id` of `room`, and how: the shared checks of edit, delete
    /// and react. Returns the room and its locked state for the change.
    pub(super) fn message_action(
        &self,
        conn: &Conn,
        room: &str,
        id: MsgId,
        own: Action,
        any: Action,
    ) -> Result<Arc<Room>, Refusal> {
        let r = self.room(room).ok_or_else(|| no_room(room))?;
        {
            let st = r.state.lock();
            let role = st.role_of(conn.user).ok_or_else(|| not_member(room))?;
            let Some(recent) = st.recent.get(&id).filter(|x| !x.deleted) else {
                return err(ErrorCode::NoSuchMessage, format!("no message {id} in {room}"));
            };
            let action = if recent.author == conn.user { own } else { any };
            if !permissions::allowed(r.kind, role, action) {
                return err(
                    ErrorCode::Forbidden,
                    format!("a {} may not do that here", role.as_str()),
                );
            }
            if matches!(action, Action::EditOwn | Action::EditAny | Action::React) {
                moderation::check_muted(&st, conn.user, room)?;
            }
        }
        Ok(r)
    }

    pub(super) fn edit(&self, conn: &Arc<Conn>, m: Edit) -> Reply {
        self.check_text(&m.text)?;
        let room = self.message_action(conn, &m.room, m.id, Action::EditOwn, Action::EditAny)?;
        let mut st = room.state.lock();
        let ops = vec![Op::Edit {
            id: m.id,
            text: m.text.clone(),
        }];
        let event = |offset| {
            MessageEdited {
                room: m.room.clone(),
                offset,
                id: m.id,
                by: conn.user,
                ts_ms: now_ms(),
                text: m.text,
            }
            .into()
        };
        let done = Done { req: m.req }.into();
        room.publish(&mut st, &self.commits, event, ops, Some((conn.clone(), done)))?;
        Ok(None)
    }

    pub(super) fn delete(&self, conn: &Arc<Conn>, m: Delete) -> Reply {
        let room = self.message_action(conn, &m.room, m.id, Action::DeleteOwn, Action::DeleteAny)?;
        let mut st = room.state.lock();
        let event = |offset| {
            MessageDeleted {
                room: m.room.clone(),
                offset,
                id: m.id,
                by: conn.user,
            }
            .into()
        };
        let done = Done { req: m.req }.into();
        room.publish(
            &mut st,
            &self.commits,
            event,
            vec![Op::Delete { id: m.id }],
            Some((conn.clone(), done)),
        )?;
        if let Some(r) = st.recent.get_mut(&m.id) {
            r.deleted = true;
        }
        Ok(None)
    }

    pub(super) fn react(&self, conn: &Arc<Conn>, m: React) -> Reply {
        if m.emoji.is_empty() || m.emoji.chars().count() > 16 {
            return err(ErrorCode::InvalidArgument, "a reaction is 1-16 characters");
        }
        let room = self.message_action(conn, &m.room, m.id, Action::React, Action::React)?;
        let mut st = room.state.lock();
        let nick = st
            .members
            .get(&conn.user)
            .map(|x| x.nick.clone())
            .unwrap_or_default();
        let Some(recent) = st.recent.get_mut(&m.id) else {
            return err(
                ErrorCode::NoSuchMessage,
                format!("no message {} in {}", m.id, m.room),
            );
        };
        let pos = recent
            .reactions
            .iter()
            .position(|(u, e)| *u == conn.user && *e == m.emoji);
        match (m.add, pos) {
            (true, None) if recent.reactions.len() < room::MAX_REACTIONS => {
                recent.reactions.push((conn.user, m.emoji.clone()))
            }
            (true, None) => return err(ErrorCode::LimitReached, "too many reactions on this message"),
            (false, Some(i)) => {
                recent.reactions.swap_remove(i);
            }
            _ => return Ok(Some(Done { req: m.req }.into())), // nothing changes
        }
        let ops = vec![Op::React {
            id: m.id,
            user: conn.user,
            emoji: m.emoji.clone(),
            add: m.add,
        }];
        let event = |offset| {
            ReactionChanged {
                room: m.room.clone(),
                offset,
                id: m.id,
                user: conn.user,
                nick,
                emoji: m.emoji,
                added: m.add,
            }
            .into()
        };
        let done = Done { req: m.req }.into();
        room.publish(&mut st, &self.commits, event, ops, Some((conn.clone(), done)))?;
        Ok(None)
    }

    /// Apply retention once a room holds comfortably more than its limit (in the background).
    pub(super) fn maybe_trim(&self, room: &Arc<Room>, st: &room::RoomState) {
        let rule = self.cfg.retention(room.kind);
        if rule.max_messages == 0
            || st.offset + 1 - st.first_offset <= rule.max_messages + rule.max_messages / 10
        {
            return;
        }
        let (store, room, upto) = (self.store.clone(), room.clone(), st.offset);
        let commits = self.commits.clone();
        tokio::spawn(async move {
            commits.flush().await; // trim only what is committed
            match store.trim(&room.name, rule, now_ms()).await {
                Ok(first) => {
                    let mut st = room.state.lock();
                    st.first_offset = st.first_offset.max(first.min(upto + 1));
                }
                Err(e) => tracing::warn!(error = %e, room = &*room.name, "retention failed"),
            }
        });
    }
}
