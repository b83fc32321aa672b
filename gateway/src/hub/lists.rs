//! Listings: the rooms a user may see, a room's members, and pages of history.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use garou_protocol::*;

use super::commit::Refusal;
use super::{no_room, not_member, Hub, Reply};
use crate::conn::Conn;

/// Trim a history page so its frame stays within `max_frame` (1,000 messages of 16 KiB
/// would not): paging back keeps the newest messages, paging forward (`forward`) the oldest;
/// the client asks again from where the page ends. Sizes are over-estimated per message.
fn fit_page(messages: &mut Vec<StoredMessage>, forward: bool, max_frame: usize) {
    let cost = |m: &StoredMessage| {
        64 + m.nick.len()
            + m.text.len()
            + m.attachment.as_ref().map_or(0, String::len)
            + m.reactions.iter().map(|(e, _)| e.len() + 8).sum::<usize>()
    };
    let mut budget = max_frame.saturating_sub(256);
    let keep = |m: &StoredMessage, budget: &mut usize| {
        let c = cost(m);
        let fits = c <= *budget;
        *budget = budget.saturating_sub(c);
        fits
    };
    if forward {
        let n = messages.iter().take_while(|m| keep(m, &mut budget)).count();
        messages.truncate(n);
    } else {
        let n = messages.iter().rev().take_while(|m| keep(m, &mut budget)).count();
        messages.drain(..messages.len() - n);
    }
}

impl Hub {
    pub(super) fn list_rooms(&self, conn: &Conn, req: ReqId) -> Message {
        let mine: HashSet<Arc<str>> = self
            .users
            .lock()
            .by_id
            .get(&conn.user)
            .map(|u| u.rooms.clone())
            .unwrap_or_default();
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .read()
            .values()
            .filter(|r| r.kind != RoomKind::Direct || mine.contains(&r.name))
            .map(|r| r.info())
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        RoomList { req, rooms }.into()
    }

    pub(super) fn list_users(&self, conn: &Conn, m: ListUsers) -> Reply {
        let room = self.room(&m.room).ok_or_else(|| no_room(&m.room))?;
        let st = room.state.lock();
        if room.kind == RoomKind::Direct && st.core.role_of(conn.user).is_none() {
            return Err(not_member(&m.room));
        }
        Ok(Some(
            UserList {
                req: m.req,
                room: m.room,
                users: room.members(&st),
            }
            .into(),
        ))
    }

    /// A page of history (oldest first) for a member of the room (see [`Hub::history_page`]).
    pub async fn history(&self, conn: &Conn, m: History, max_frame: usize) -> Message {
        match self
            .history_page(Some(conn.user), &m.room, m.before, m.after, m.limit)
            .await
        {
            Ok((epoch, mut messages)) => {
                fit_page(&mut messages, m.after.is_some(), max_frame);
                HistoryPage {
                    req: m.req,
                    room: m.room,
                    epoch,
                    messages,
                }
                .into()
            }
            Err((code, message)) => Error::reply(m.req, code, message),
        }
    }

    /// History for `reader`: `Some(user)` reads only rooms it is a member of, whatever the
    /// kind (group, channel or direct; a non-member gets NotMember, over the protocol and
    /// over HTTP alike); `None` is a back-end with full read access (the HTTP API with the
    /// admin token).
    pub async fn history_page(
        &self,
        reader: Option<UserId>,
        room_name: &str,
        before: Option<Offset>,
        after: Option<Offset>,
        limit: u32,
    ) -> Result<(u64, Vec<StoredMessage>), Refusal> {
        let room = self.room(room_name).ok_or_else(|| no_room(room_name))?;
        if let Some(user) = reader {
            if room.state.lock().core.role_of(user).is_none() {
                return Err(not_member(room_name));
            }
        }
        let started = Instant::now();
        let messages = self
            .store
            .messages(room_name, before, after, limit.clamp(1, 1000))
            .await
            .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        self.stats.store_history(started.elapsed());
        Ok((room.epoch, messages))
    }
}
