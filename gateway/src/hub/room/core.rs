//! The room core: what a room decides, apart from who is connected to it.
//!
//! [`RoomCore`] holds the room's deciding state (offsets, members and roles, the recent
//! window and client ids, read marks, sanctions, the publish rate, hot and closed) and
//! turns one input into effects: authorize it, take the next offset, build the event
//! (encoded once), the store rows and the reply, or refuse. It never touches a
//! connection, spawns, reads the clock (the time is passed in, [`Now`]) or calls the
//! store; the room driver ([`super::Room`]) owns the subscribers and the committer and
//! carries the effects out: commit, then, once durable, fan out and reply.
//!
//! A place in the commit queue is an input too (`slot`): the driver reserves one before it
//! asks, and the core takes it only when it sequences an event. A refused slot therefore
//! refuses only commands that would publish, after their own checks, and an offset is
//! never taken without a place to commit it (no gap in a room's offsets).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::*;

use crate::hub::commit::Refusal;
use crate::hub::permissions::{self, Action};
use crate::hub::rate::RateWindow;
use crate::store::{Op, SanctionKind};

/// Distinct reactions kept per message.
pub const MAX_REACTIONS: usize = 64;

/// A member's place in the room.
#[derive(Debug, Clone)]
pub struct Member {
    pub nick: String,
    pub role: Role,
}

/// What the room remembers of a recent message.
#[derive(Debug, Clone)]
pub struct Recent {
    pub author: UserId,
    pub offset: Offset,
    pub client_id: u64,
    pub deleted: bool,
    pub reactions: Vec<(UserId, String)>,
}

/// The time, passed in: the wall clock for timestamps and mutes, and the hub's clock
/// (seconds, movable in tests) for rates.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    /// The hub's seconds.
    pub sec: u64,
}

/// One sequenced event: its offset, its frame (encoded once, shared by every recipient)
/// and the rows to commit with it (its `Op::Event` last).
#[derive(Debug)]
pub struct Event {
    pub offset: Offset,
    pub frame: Bytes,
    pub ops: Vec<Op>,
}

/// An event to publish on queue place `slot`, and the reply its sender gets once it is
/// durable.
#[derive(Debug)]
pub struct Publish<S> {
    pub slot: S,
    pub event: Event,
    pub reply: Option<Message>,
}

/// What a command comes to.
#[derive(Debug)]
pub enum Effects<S> {
    /// Answer now: nothing changes.
    Reply(Message),
    /// Publish an event.
    Publish(Publish<S>),
}

/// What a Send comes to.
#[derive(Debug)]
pub enum Sent<S> {
    /// A re-sent client id whose message is durable: its first ack, now.
    Ack(Message),
    /// A re-sent client id whose message `id` at `offset` is still on its way to the
    /// store: `ack` once it is durable.
    Pending { id: MsgId, offset: Offset, ack: Message },
    /// A new message `id`, remembered in the window (`forgot`: the window let an older one
    /// go). `hot`: the room's rate is past the threshold and it is not hot yet.
    New {
        publish: Publish<S>,
        id: MsgId,
        forgot: bool,
        hot: bool,
    },
}

/// A Send as the core takes it (the text already checked for length by the hub).
#[derive(Debug)]
pub struct Post {
    pub req: ReqId,
    pub author: UserId,
    pub client_id: u64,
    pub text: String,
    pub attachment: Option<String>,
}

/// How a join goes, decided before anything changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joining {
    /// Not a member yet: admit with this role ([`RoomCore::admit`]).
    New,
    /// A member already, with this role: resume after `since` when the history allows.
    Again { role: Role, resume: Option<Since> },
}

/// Counts read without the room's lock.
#[derive(Debug, Default)]
pub struct Listed {
    /// Members, for listings.
    pub members: AtomicU32,
    /// Set once the window has forgotten a stored message of this room (evicted, or only
    /// the newest were loaded at start): from then on a publish whose client id the window
    /// does not know must ask the store ([`crate::store::Store::client_message`]).
    pub forgotten: AtomicBool,
}

/// A room's deciding state. See the module docs.
pub struct RoomCore {
    pub name: Arc<str>,
    pub kind: RoomKind,
    /// Offset of the last event sequenced.
    pub offset: Offset,
    /// Offset of the last event the store has committed (and subscribers were sent).
    pub durable: Offset,
    /// Oldest offset still in the store (retention moves it forward).
    pub first_offset: Offset,
    /// (author, client message id) -> (id, offset): a retried publish gets the first ack.
    pub client_ids: HashMap<(UserId, u64), (MsgId, Offset)>,
    /// Read marks (highest offset read) per member.
    pub read: HashMap<UserId, Offset>,
    pub members: HashMap<UserId, Member>,
    pub recent: HashMap<MsgId, Recent>,
    recent_order: VecDeque<MsgId>,
    /// Messages the window keeps (`recent`, `client_ids`).
    window: usize,
    pub hot: bool,
    /// Closed (RoomDeleted was its last event): nothing more is published.
    pub closed: bool,
    pub rate: RateWindow,
    /// Second at which a hot room's rate first fell below the cool-down threshold.
    pub cool_since: Option<u64>,
    /// Users banned from the room.
    pub banned: HashSet<UserId>,
    /// Muted members and the end of their mute (ms since the epoch, 0 = until unmuted).
    pub muted: HashMap<UserId, u64>,
    listed: Arc<Listed>,
}

/// Longest moderation reason kept, in characters.
const MAX_REASON: usize = 256;

fn refuse<T>(code: ErrorCode, msg: impl Into<String>) -> Result<T, Refusal> {
    Err((code, msg.into()))
}

fn forbidden(role: Role, what: &str) -> Refusal {
    (
        ErrorCode::Forbidden,
        format!("a {} may not {what} here", role.as_str()),
    )
}

impl RoomCore {
    /// An empty room keeping the newest `window` messages in memory (at least one); its
    /// lock-free counts go to `listed`.
    pub fn new(
        name: Arc<str>,
        kind: RoomKind,
        rate_window_secs: u64,
        window: usize,
        listed: Arc<Listed>,
    ) -> RoomCore {
        RoomCore {
            name,
            kind,
            offset: 0,
            durable: 0,
            first_offset: 1,
            client_ids: HashMap::new(),
            read: HashMap::new(),
            members: HashMap::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            window: window.max(1),
            hot: false,
            closed: false,
            rate: RateWindow::new(rate_window_secs),
            cool_since: None,
            banned: HashSet::new(),
            muted: HashMap::new(),
            listed,
        }
    }

    // ------------------------------------------------------------------ sequencing

    /// Take the next offset for the event `make` builds, on queue place `slot`: encode it
    /// once and append its `Op::Event` (stamped `ts_ms`) to `ops`. Refused when the room is
    /// closed, or when there is no place (then no offset is taken).
    pub fn sequence<S>(
        &mut self,
        slot: Result<S, Refusal>,
        make: impl FnOnce(Offset) -> Message,
        mut ops: Vec<Op>,
        ts_ms: u64,
    ) -> Result<(S, Event), Refusal> {
        if self.closed {
            return refuse(ErrorCode::NoSuchRoom, format!("no room {}", self.name));
        }
        let slot = slot?;
        self.offset += 1;
        let offset = self.offset;
        let frame = make(offset).encode();
        ops.push(Op::Event {
            room: self.name.to_string(),
            offset,
            ts_ms,
            frame: frame.clone(),
        });
        Ok((slot, Event { offset, frame, ops }))
    }

    /// [`RoomCore::sequence`] with the reply for its sender.
    fn publish<S>(
        &mut self,
        slot: Result<S, Refusal>,
        make: impl FnOnce(Offset) -> Message,
        ops: Vec<Op>,
        reply: Option<Message>,
        now: Now,
    ) -> Result<Publish<S>, Refusal> {
        let (slot, event) = self.sequence(slot, make, ops, now.ms)?;
        Ok(Publish { slot, event, reply })
    }

    // ------------------------------------------------------------------ authorization

    /// The role of `user`, `None` if not a member.
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        self.members.get(&user).map(|m| m.role)
    }

    /// The role of `user`, or NotMember.
    pub fn member_role(&self, user: UserId) -> Result<Role, Refusal> {
        self.role_of(user)
            .ok_or_else(|| (ErrorCode::NotMember, format!("not a member of {}", self.name)))
    }

    /// Refuse when `user` is muted (mutes end by themselves at their time).
    pub fn check_muted(&self, user: UserId, now_ms: u64) -> Result<(), Refusal> {
        let room = &self.name;
        match self.muted.get(&user) {
            Some(0) => refuse(ErrorCode::Muted, format!("you are muted in {room}")),
            Some(&until) if until > now_ms => refuse(
                ErrorCode::Muted,
                format!(
                    "you are muted in {room} for {} more s",
                    (until - now_ms).div_ceil(1000)
                ),
            ),
            _ => Ok(()),
        }
    }

    /// Who may change message `id`, and how: the shared checks of edit, delete and react
    /// (`own` when `user` wrote it, `any` otherwise).
    fn check_message_action(
        &self,
        user: UserId,
        id: MsgId,
        own: Action,
        any: Action,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let role = self.member_role(user)?;
        let Some(recent) = self.recent.get(&id).filter(|x| !x.deleted) else {
            return refuse(
                ErrorCode::NoSuchMessage,
                format!("no message {id} in {}", self.name),
            );
        };
        let action = if recent.author == user { own } else { any };
        if !permissions::allowed(self.kind, role, action) {
            return refuse(
                ErrorCode::Forbidden,
                format!("a {} may not do that here", role.as_str()),
            );
        }
        if matches!(action, Action::EditOwn | Action::EditAny | Action::React) {
            self.check_muted(user, now_ms)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ messages

    /// A message: a re-sent client id gets its first ack; a new one is sequenced (with
    /// the id `next_id` gives), remembered in the window and counted in the room's rate
    /// (`hot_threshold`: messages per second past which the room should go hot).
    pub fn send<S>(
        &mut self,
        post: Post,
        slot: Result<S, Refusal>,
        next_id: impl FnOnce() -> MsgId,
        hot_threshold: f64,
        now: Now,
    ) -> Result<Sent<S>, Refusal> {
        let Post {
            req,
            author,
            client_id,
            text,
            attachment,
        } = post;
        let name = self.name.clone();
        let role = self.member_role(author)?;
        if !permissions::allowed(self.kind, role, Action::Post) {
            return refuse(
                ErrorCode::Forbidden,
                format!("a {} may not post in {name}", role.as_str()),
            );
        }
        self.check_muted(author, now.ms)?;
        let ack = |id, offset| {
            Message::from(MessageAck {
                req,
                room: name.to_string(),
                id,
                offset,
            })
        };
        // A retry (after a reconnect) of a message the window knows: the first ack again,
        // once that message is durable. (Messages the window forgot are looked up in the
        // store before this: see `Hub::stored_ack`.)
        if let Some(&(id, offset)) = self.client_ids.get(&(author, client_id)) {
            return Ok(match offset <= self.durable {
                true => Sent::Ack(ack(id, offset)),
                false => Sent::Pending {
                    id,
                    offset,
                    ack: ack(id, offset),
                },
            });
        }
        if self.closed {
            return refuse(ErrorCode::NoSuchRoom, format!("no room {name}"));
        }
        let slot = slot?;
        let nick = self.members[&author].nick.clone();
        let id = next_id();
        let offset = self.offset + 1;
        let row = Op::Message {
            id,
            room: name.to_string(),
            offset,
            author,
            nick: nick.clone(),
            ts_ms: now.ms,
            text: text.clone(),
            client_id,
            attachment: attachment.clone(),
        };
        let event = |offset| {
            RoomMessage {
                room: name.to_string(),
                offset,
                id,
                author,
                nick,
                ts_ms: now.ms,
                text,
                attachment,
            }
            .into()
        };
        let publish = self.publish(Ok(slot), event, vec![row], Some(ack(id, offset)), now)?;
        let recent = Recent {
            author,
            offset,
            client_id,
            deleted: false,
            reactions: Vec::new(),
        };
        let forgot = self.remember(id, recent);
        self.rate.record(now.sec);
        let hot = !self.hot && self.rate.rate(now.sec) > hot_threshold;
        Ok(Sent::New {
            publish,
            id,
            forgot,
            hot,
        })
    }

    /// Edit message `m.id` (its author, or whoever may edit any).
    pub fn edit<S>(
        &mut self,
        user: UserId,
        m: Edit,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<Publish<S>, Refusal> {
        self.check_message_action(user, m.id, Action::EditOwn, Action::EditAny, now.ms)?;
        let ops = vec![Op::Edit {
            id: m.id,
            text: m.text.clone(),
        }];
        let event = |offset| {
            MessageEdited {
                room: m.room,
                offset,
                id: m.id,
                by: user,
                ts_ms: now.ms,
                text: m.text,
            }
            .into()
        };
        self.publish(slot, event, ops, Some(Done { req: m.req }.into()), now)
    }

    /// Delete message `m.id` (its author, or whoever may delete any).
    pub fn delete<S>(
        &mut self,
        user: UserId,
        m: Delete,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<Publish<S>, Refusal> {
        self.check_message_action(user, m.id, Action::DeleteOwn, Action::DeleteAny, now.ms)?;
        let event = |offset| {
            MessageDeleted {
                room: m.room,
                offset,
                id: m.id,
                by: user,
            }
            .into()
        };
        let ops = vec![Op::Delete { id: m.id }];
        let publish = self.publish(slot, event, ops, Some(Done { req: m.req }.into()), now)?;
        if let Some(r) = self.recent.get_mut(&m.id) {
            r.deleted = true;
        }
        Ok(publish)
    }

    /// Add or take back a reaction; Done at once when that changes nothing.
    pub fn react<S>(
        &mut self,
        user: UserId,
        m: React,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<Effects<S>, Refusal> {
        if m.emoji.is_empty() || m.emoji.chars().count() > 16 {
            return refuse(ErrorCode::InvalidArgument, "a reaction is 1-16 characters");
        }
        self.check_message_action(user, m.id, Action::React, Action::React, now.ms)?;
        let nick = self
            .members
            .get(&user)
            .map(|x| x.nick.clone())
            .unwrap_or_default();
        let reactions = &self.recent[&m.id].reactions;
        let pos = reactions.iter().position(|(u, e)| *u == user && *e == m.emoji);
        match (m.add, pos) {
            (true, None) if reactions.len() >= MAX_REACTIONS => {
                return refuse(ErrorCode::LimitReached, "too many reactions on this message")
            }
            (true, None) | (false, Some(_)) => {}
            _ => return Ok(Effects::Reply(Done { req: m.req }.into())), // nothing changes
        }
        let ops = vec![Op::React {
            id: m.id,
            user,
            emoji: m.emoji.clone(),
            add: m.add,
        }];
        let (id, emoji, add) = (m.id, m.emoji.clone(), m.add);
        let event = |offset| {
            ReactionChanged {
                room: m.room,
                offset,
                id: m.id,
                user,
                nick,
                emoji: m.emoji,
                added: m.add,
            }
            .into()
        };
        let publish = self.publish(slot, event, ops, Some(Done { req: m.req }.into()), now)?;
        let reactions = &mut self.recent.get_mut(&id).expect("checked above").reactions;
        match pos {
            Some(i) => {
                reactions.swap_remove(i);
            }
            None if add => reactions.push((user, emoji)),
            None => {}
        }
        Ok(Effects::Publish(publish))
    }

    // ------------------------------------------------------------------ membership

    /// How `user` may join: banned users may not; a member joins again (resuming after
    /// `since` of `epoch` when the history still has it, at most `max_replay` events); a
    /// new member needs a place (`max_members`, 0 = no limit; direct rooms have two).
    pub fn joining(
        &self,
        user: UserId,
        since: Option<Since>,
        epoch: u64,
        max_members: usize,
        max_replay: u64,
    ) -> Result<Joining, Refusal> {
        let name = &self.name;
        if self.banned.contains(&user) {
            return refuse(ErrorCode::Banned, format!("you are banned from {name}"));
        }
        if let Some(role) = self.role_of(user) {
            let resume = since.filter(|s| {
                s.epoch == epoch
                    && s.offset + 1 >= self.first_offset
                    && s.offset <= self.offset
                    && self.offset - s.offset <= max_replay
            });
            return Ok(Joining::Again { role, resume });
        }
        if self.kind == RoomKind::Direct {
            return refuse(ErrorCode::Forbidden, "direct rooms have exactly two members");
        }
        if max_members > 0 && self.members.len() >= max_members {
            return refuse(
                ErrorCode::LimitReached,
                format!("room {name} is full ({max_members} members)"),
            );
        }
        Ok(Joining::New)
    }

    /// Admit `user` as `nick` with `role`: MemberJoined, with `ops` (the room's own row
    /// when it is new) and its Member row. No reply: a joiner's Joined lists who is online,
    /// which only the driver knows (see `Room::joined`).
    pub fn admit<S>(
        &mut self,
        user: UserId,
        nick: &str,
        role: Role,
        mut ops: Vec<Op>,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<Publish<S>, Refusal> {
        ops.push(Op::Member {
            room: self.name.to_string(),
            user,
            role,
        });
        let room = self.name.to_string();
        let event = |offset| {
            MemberJoined {
                room,
                offset,
                user,
                nick: nick.to_owned(),
                role,
            }
            .into()
        };
        let publish = self.publish(slot, event, ops, None, now)?;
        let member = Member {
            nick: nick.to_owned(),
            role,
        };
        self.set_member(user, member);
        Ok(publish)
    }

    /// `user` leaves: MemberLeft, Left for the sender.
    pub fn leave<S>(
        &mut self,
        user: UserId,
        req: ReqId,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<Publish<S>, Refusal> {
        self.member_role(user)?;
        let nick = self.members[&user].nick.clone();
        let room = self.name.to_string();
        let ops = vec![Op::RemoveMember {
            room: room.clone(),
            user,
        }];
        let reply = Left {
            req,
            room: room.clone(),
        }
        .into();
        let event = |offset| {
            MemberLeft {
                room,
                offset,
                user,
                nick,
            }
            .into()
        };
        let publish = self.publish(slot, event, ops, Some(reply), now)?;
        self.remove_member(user);
        Ok(publish)
    }

    /// `actor` makes the member called `nick` a `role` (`is_guest` says who is an anonymous
    /// guest: they stay read-only).
    pub fn set_role<S>(
        &mut self,
        actor: UserId,
        m: SetRole,
        is_guest: impl Fn(UserId) -> bool,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<Publish<S>, Refusal> {
        let actor_role = self.member_role(actor)?;
        let Some((&user, member)) = self.members.iter().find(|(_, mem)| mem.nick == m.nick) else {
            return refuse(
                ErrorCode::NoSuchUser,
                format!("{} is not a member of {}", m.nick, m.room),
            );
        };
        if m.role > Role::Guest && is_guest(user) {
            return refuse(
                ErrorCode::Forbidden,
                format!("{} is an anonymous guest: read-only until they sign in", m.nick),
            );
        }
        if !permissions::may_change_role(self.kind, actor_role, member.role, m.role) {
            return refuse(
                ErrorCode::Forbidden,
                format!(
                    "a {} may not make a {} a {}",
                    actor_role.as_str(),
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
        let publish = self.rename_member(
            user,
            nick,
            m.role,
            ops,
            Some(Done { req: m.req }.into()),
            slot,
            now,
        )?;
        Ok(publish)
    }

    /// MemberUpdated for `user`, now `nick` with `role` (a role change, a new nick), with
    /// `ops`; the member's entry follows.
    #[allow(clippy::too_many_arguments)]
    pub fn rename_member<S>(
        &mut self,
        user: UserId,
        nick: String,
        role: Role,
        ops: Vec<Op>,
        reply: Option<Message>,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<Publish<S>, Refusal> {
        let room = self.name.to_string();
        let event = |offset| {
            MemberUpdated {
                room,
                offset,
                user,
                nick: nick.clone(),
                role,
            }
            .into()
        };
        let publish = self.publish(slot, event, ops, reply, now)?;
        self.set_member(user, Member { nick, role });
        Ok(publish)
    }

    /// `actor` moderates `target` (called `nick`; not the actor): kick, mute, ban or lift
    /// them, each within the permission matrix and only on those below the actor. A kick or
    /// ban of a member removes it (the second value: the driver unsubscribes it once it
    /// received its removal); sanctions are kept here and stored.
    pub fn moderate<S>(
        &mut self,
        actor: UserId,
        (target, nick): (UserId, &str),
        m: Moderate,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<(Publish<S>, bool), Refusal> {
        let action = match m.action {
            ModAction::Kick => Action::Kick,
            ModAction::Mute | ModAction::Unmute => Action::Mute,
            ModAction::Ban | ModAction::Unban => Action::Ban,
        };
        let reason: String = m.reason.trim().chars().take(MAX_REASON).collect();
        let actor_role = self.member_role(actor)?;
        if !permissions::allowed(self.kind, actor_role, action) {
            return Err(forbidden(actor_role, &format!("{:?}", m.action).to_lowercase()));
        }
        let target_role = self.role_of(target);
        // Moderators act on those below them only.
        if let Some(r) = target_role.filter(|&r| r >= actor_role) {
            return refuse(
                ErrorCode::Forbidden,
                format!("a {} may not moderate a {}", actor_role.as_str(), r.as_str()),
            );
        }
        let room = self.name.to_string();
        let until_ms = match m.action {
            ModAction::Mute if m.secs > 0 => now.ms + u64::from(m.secs) * 1000,
            _ => 0,
        };
        let sanction = |kind, until_ms| Op::Sanction {
            room: room.clone(),
            user: target,
            kind,
            until_ms,
        };
        let mut ops = match m.action {
            ModAction::Kick | ModAction::Mute | ModAction::Unmute if target_role.is_none() => {
                return refuse(ErrorCode::NoSuchUser, format!("{nick} is not a member of {room}"));
            }
            ModAction::Unban if !self.banned.contains(&target) => {
                return refuse(ErrorCode::NoSuchUser, format!("{nick} is not banned"));
            }
            ModAction::Kick => vec![],
            ModAction::Ban => vec![sanction(SanctionKind::Ban, Some(0))],
            ModAction::Unban => vec![sanction(SanctionKind::Ban, None)],
            ModAction::Mute => vec![sanction(SanctionKind::Mute, Some(until_ms))],
            ModAction::Unmute => vec![sanction(SanctionKind::Mute, None)],
        };
        let removes = matches!(m.action, ModAction::Kick | ModAction::Ban) && target_role.is_some();
        if removes {
            ops.push(Op::RemoveMember {
                room: room.clone(),
                user: target,
            });
        }
        let event = |offset| {
            MemberModerated {
                room,
                offset,
                user: target,
                nick: nick.to_owned(),
                action: m.action,
                by: actor,
                until_ms,
                reason,
            }
            .into()
        };
        let publish = self.publish(slot, event, ops, Some(Done { req: m.req }.into()), now)?;
        match m.action {
            ModAction::Ban => {
                self.banned.insert(target);
            }
            ModAction::Unban => {
                self.banned.remove(&target);
            }
            ModAction::Mute => {
                self.muted.insert(target, until_ms);
            }
            ModAction::Unmute => {
                self.muted.remove(&target);
            }
            ModAction::Kick => {}
        }
        if removes {
            self.remove_member(target);
        }
        Ok((publish, removes))
    }

    /// `actor` invites `target` (called `nick`, signed in): a new member, or a guest of
    /// the room made a member; Done at once for a member already. The second value: whether
    /// `target` is new here (its connections then start receiving the room).
    pub fn invite<S>(
        &mut self,
        actor: UserId,
        (target, nick): (UserId, &str),
        req: ReqId,
        slot: Result<S, Refusal>,
        now: Now,
    ) -> Result<(Effects<S>, bool), Refusal> {
        let actor_role = self.member_role(actor)?;
        if !permissions::allowed(self.kind, actor_role, Action::Invite) {
            return Err(forbidden(actor_role, "invite"));
        }
        if self.banned.contains(&target) {
            return refuse(
                ErrorCode::Banned,
                format!("{nick} is banned from {}: unban first", self.name),
            );
        }
        let done = || Message::from(Done { req });
        let role = Role::Member;
        let ops = vec![Op::Member {
            room: self.name.to_string(),
            user: target,
            role,
        }];
        match self.role_of(target) {
            Some(r) if r >= role => Ok((Effects::Reply(done()), false)),
            Some(_) => {
                let publish =
                    self.rename_member(target, nick.to_owned(), role, ops, Some(done()), slot, now)?;
                Ok((Effects::Publish(publish), false))
            }
            None => {
                let mut publish = self.admit(target, nick, role, Vec::new(), slot, now)?;
                publish.reply = Some(done());
                Ok((Effects::Publish(publish), true))
            }
        }
    }

    /// Add a member (or change its entry), keeping the listed count in step.
    pub fn set_member(&mut self, user: UserId, member: Member) {
        if self.members.insert(user, member).is_none() {
            self.listed
                .members
                .store(self.members.len() as u32, Ordering::Relaxed);
        }
    }

    /// Remove a member, keeping the listed count in step.
    pub fn remove_member(&mut self, user: UserId) -> Option<Member> {
        let m = self.members.remove(&user);
        self.listed
            .members
            .store(self.members.len() as u32, Ordering::Relaxed);
        m
    }

    /// Messages after `user`'s read mark not written by `user` (within the recent window).
    pub fn unread(&self, user: UserId) -> u64 {
        let mark = self.read.get(&user).copied().unwrap_or(0);
        self.recent
            .values()
            .filter(|r| r.offset > mark && r.author != user && !r.deleted)
            .count() as u64
    }

    // ------------------------------------------------------------------ the window

    /// Remember a new message, forgetting the oldest past the window; true when one was
    /// forgotten (the room's `forgotten` flag is then set).
    pub fn remember(&mut self, id: MsgId, recent: Recent) -> bool {
        self.client_ids
            .insert((recent.author, recent.client_id), (id, recent.offset));
        self.recent.insert(id, recent);
        self.recent_order.push_back(id);
        let mut forgot = false;
        while self.recent_order.len() > self.window {
            forgot |= self.forget_oldest();
        }
        self.note_forgotten(forgot);
        forgot
    }

    /// Forget the oldest remembered message; true if the window still held it.
    fn forget_oldest(&mut self) -> bool {
        let Some(old) = self.recent_order.pop_front() else {
            return false;
        };
        let Some(r) = self.recent.remove(&old) else {
            return false;
        };
        let key = (r.author, r.client_id);
        if self.client_ids.get(&key).is_some_and(|&(i, _)| i == old) {
            self.client_ids.remove(&key);
        }
        true
    }

    /// Forget the remembered messages up to `id` (the gateway-wide budget evicted it; ids
    /// grow with time, so a room's window is in id order); true if one was still held.
    pub fn forget_upto(&mut self, id: MsgId) -> bool {
        let mut forgot = false;
        while self.recent_order.front().is_some_and(|&front| front <= id) {
            forgot |= self.forget_oldest();
        }
        self.note_forgotten(forgot);
        forgot
    }

    fn note_forgotten(&self, forgot: bool) {
        if forgot {
            self.listed.forgotten.store(true, Ordering::Release);
        }
    }

    /// Undo [`RoomCore::remember`] of a message the store refused.
    pub fn forget(&mut self, id: MsgId) {
        if let Some(r) = self.recent.remove(&id) {
            let key = (r.author, r.client_id);
            if self.client_ids.get(&key).is_some_and(|&(i, _)| i == id) {
                self.client_ids.remove(&key);
            }
            self.recent_order.retain(|&x| x != id);
        }
    }

    /// Messages the window keeps.
    pub fn window(&self) -> usize {
        self.window
    }
}

#[cfg(test)]
mod tests;
