//! Messages: sending (idempotent by client id, with the store as the judge of what the
//! window forgot), direct messages, edits, deletions, reactions, and the retention trim a
//! growing room triggers.

use std::sync::Arc;

use garou_protocol::*;

use super::commit::{self, Refusal};
use super::room::core::{Effects, Post, Sent};
use super::room::{self, Room};
use super::{err, no_room, now_ms, Hub, Reply};
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
        let now = self.now();
        let mut st = room.state.lock();
        let post = Post {
            req,
            author: conn.user,
            client_id,
            text,
            attachment,
        };
        let threshold = self.cfg.hot_room_threshold;
        match st
            .core
            .send(post, self.commits.reserve(), || self.next_id(), threshold, now)?
        {
            Sent::Ack(ack) => Ok(Some(ack)),
            Sent::Pending { id, offset, ack } => {
                // A retry of a message still on its way to the store.
                let then = self.ack_when_durable(&room, conn, (client_id, id, offset), ack);
                self.commits.push(Vec::new(), Some(then))?;
                Ok(None)
            }
            Sent::New { publish, id, hot, .. } => {
                let on_refused = self.message_refused(&room, conn, req, client_id, id);
                room.execute(publish, Some(conn), None, Some(on_refused));
                let evicted = room.within_budget(&mut st, id, &self.windows);
                if hot && self.reserve_hot() {
                    tracing::info!(room = name, "room promoted to its own stream");
                    room.promote(&mut st);
                    self.hot.lock().insert(room.name.clone());
                }
                self.maybe_trim(&room, &st);
                drop(st);
                evicted.apply();
                Ok(None)
            }
        }
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
            room.state.lock().core.forget(id);
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
            let kept = room.state.lock().core.client_ids.get(&(conn.user, client_id)) == Some(&(id, offset));
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
            if st.core.role_of(conn.user).is_none()
                || st.core.client_ids.contains_key(&(conn.user, client_id))
            {
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
                if st.core.role_of(user).is_some() {
                    continue;
                }
                added = true;
                let (ops, slot) = (std::mem::take(&mut ops), self.commits.reserve());
                let publish = st.core.admit(user, nick, Role::Member, ops, slot, self.now())?;
                for c in &conns {
                    room.subscribe(&mut st, c);
                }
                room.execute(publish, None, None, None);
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

    pub(super) fn edit(&self, conn: &Arc<Conn>, m: Edit) -> Reply {
        self.check_text(&m.text)?;
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let publish = st.core.edit(conn.user, m, self.commits.reserve(), self.now())?;
        room.execute(publish, Some(conn), None, None);
        Ok(None)
    }

    pub(super) fn delete(&self, conn: &Arc<Conn>, m: Delete) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        let publish = st.core.delete(conn.user, m, self.commits.reserve(), self.now())?;
        room.execute(publish, Some(conn), None, None);
        Ok(None)
    }

    pub(super) fn react(&self, conn: &Arc<Conn>, m: React) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let mut st = room.state.lock();
        match st.core.react(conn.user, m, self.commits.reserve(), self.now())? {
            Effects::Reply(reply) => Ok(Some(reply)),
            Effects::Publish(publish) => {
                room.execute(publish, Some(conn), None, None);
                Ok(None)
            }
        }
    }

    /// Apply retention once a room holds comfortably more than its limit (in the background).
    pub(super) fn maybe_trim(&self, room: &Arc<Room>, st: &room::RoomState) {
        let rule = self.cfg.retention(room.kind);
        if rule.max_messages == 0
            || st.core.offset + 1 - st.core.first_offset <= rule.max_messages + rule.max_messages / 10
        {
            return;
        }
        let (store, room, upto) = (self.store.clone(), room.clone(), st.core.offset);
        let commits = self.commits.clone();
        tokio::spawn(async move {
            commits.flush().await; // trim only what is committed
            match store.trim(&room.name, rule, now_ms()).await {
                Ok(first) => {
                    let mut st = room.state.lock();
                    st.core.first_offset = st.core.first_offset.max(first.min(upto + 1));
                }
                Err(e) => tracing::warn!(error = %e, room = &*room.name, "retention failed"),
            }
        });
    }
}
