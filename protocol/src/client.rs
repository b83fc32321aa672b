//! The client session state machine, shared by the native and the wasm client.
//!
//! It does no I/O and reads no clock. A driver (tokio + quinn, or web-sys) moves bytes:
//! - in: [`ClientSession::on_stream_data`] for the control stream ([`CONTROL`]) and each
//!   server-opened uni stream (any other id the driver picks), [`ClientSession::on_datagram`];
//! - out: [`ClientSession::poll_transmit`] says which lane (control, commands, acks,
//!   datagram) each encoded frame goes to;
//! - time: [`ClientSession::poll_timeout`] / [`ClientSession::handle_timeout`] with
//!   milliseconds from any monotonic clock.
//!
//! It owns the handshake (Hello -> HelloAck -> Auth -> AuthOk -> ShardAssignment), request
//! ids and their replies (with timeouts), room -> shard routing, hot-room bookkeeping and
//! per-room ordering: room events are delivered strictly by offset, whichever stream they
//! came on, so a room's promotion to its own stream (or demotion back) never reorders it.
//!
//! Recovery across connections: [`ClientSession::suspend`] (or the snapshot
//! [`ClientSession::resume_state`]) yields a [`ResumeState`]: every room with where its
//! delivery stopped ([`Since`]: last delivered offset and the room's epoch) and every send
//! the server has not acknowledged. A new session started with it
//! ([`ClientConfig::resume`]) rejoins each room with `Join { since }`, so the server
//! replays what was missed, drops whatever it had delivered already (by offset), and then
//! re-sends the unacknowledged messages with their original `client_id` (the server
//! answers a duplicate with the original ack) **and their original request ids**, so a
//! driver keeps waiting on the same [`ReqId`] across the reconnect.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::Bytes;

use crate::codec::{DecodeError, Decoder};
use crate::message::*;
use crate::shard::shard_of;
use crate::types::*;

/// Driver-chosen id of an inbound stream. The control stream is always [`CONTROL`].
pub type StreamId = u64;
/// The id of the control stream.
pub const CONTROL: StreamId = 0;

/// Settings of one session.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Who the session authenticates as (sent in the Auth frame).
    pub credentials: Credentials,
    /// Free-form client name sent in Hello (for logs).
    pub client_name: String,
    /// A request without a reply after this long fails with [`ErrorCode::Timeout`].
    pub request_timeout_ms: u64,
    /// Largest frame accepted from the server.
    pub max_frame: usize,
    /// Out-of-order room events buffered per room before the session gives up.
    pub reorder_limit: usize,
    /// Events of a room buffered while its join is unanswered (the replay of a rejoin may
    /// overtake the Joined reply, which says where the room starts), if more than
    /// `reorder_limit`. At least the server's replay bound (10,000). Default 10,000.
    pub replay_limit: usize,
    /// Where a previous session left off (used on reconnect): its rooms are rejoined as
    /// soon as this session is ready (each reports [`Event::Rejoined`]), then its
    /// unacknowledged sends are sent again, before any command issued on this session.
    pub resume: ResumeState,
    /// Random bits that make this client's message `client_id`s unique across the user's
    /// sessions and devices (the server de-duplicates by room, author and client id):
    /// message `n` gets `client_id_base.wrapping_add(n)`, with `n` counting from 1 and
    /// carried over in [`ResumeState::next_client_id`]. Drivers pass 64 random bits once
    /// per client; the default 0 is only unique within one session.
    pub client_id_base: u64,
    /// Most unacknowledged sends kept (with their text) for re-sending after a reconnect;
    /// sends beyond it work as usual but fail with `Disconnected` if the connection drops
    /// before their ack. Default 10,000.
    pub max_unacked: usize,
}

impl ClientConfig {
    /// Defaults for a nick-only (open dev mode) session.
    pub fn with_nick(nick: impl Into<String>) -> Self {
        ClientConfig {
            credentials: Credentials::Nick(nick.into()),
            client_name: concat!("garou-protocol/", env!("CARGO_PKG_VERSION")).into(),
            request_timeout_ms: 10_000,
            max_frame: crate::DEFAULT_MAX_FRAME,
            reorder_limit: 4096,
            replay_limit: 10_000,
            resume: ResumeState::default(),
            client_id_base: 0,
            max_unacked: MAX_UNACKED,
        }
    }
}

/// Default of [`ClientConfig::max_unacked`].
pub const MAX_UNACKED: usize = 10_000;

/// What a new session needs to take over from a lost one; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeState {
    /// Rooms to rejoin, each with where delivery stopped: `Some(since)` once the room's
    /// join was answered (`since.offset` is the last offset delivered, `since.epoch` the
    /// room's epoch), `None` for a room whose join never completed or whose epoch is not
    /// known (a direct room we were added to): the server then has nothing to resume from.
    pub rooms: Vec<(String, Option<Since>)>,
    /// Sends (Send, DirectMessage) without an ack yet, oldest first, at most
    /// [`ClientConfig::max_unacked`]. The next session sends them again with the same
    /// request id and client id, and answers them with [`Event::Reply`] for that request id.
    pub unacked: Vec<Unacked>,
    /// The next request id to use (0: start at 1), so new requests never reuse the id of
    /// a carried send.
    pub next_req: ReqId,
    /// The next client-id counter (0: start at 1); see [`ClientConfig::client_id_base`].
    pub next_client_id: u64,
    /// The resume token of the lost session's Welcome (empty: none). Offered in the next
    /// Hello, it lets the server close the lost session at once and give its nick to the
    /// new one, instead of refusing the nick until the lost session times out.
    pub token: ResumeToken,
}

impl ResumeState {
    /// A state that only joins `rooms` (no resume point, nothing to re-send).
    pub fn with_rooms<S: Into<String>>(rooms: impl IntoIterator<Item = S>) -> Self {
        ResumeState {
            rooms: rooms.into_iter().map(|r| (r.into(), None)).collect(),
            ..ResumeState::default()
        }
    }

    /// Whether it has neither rooms nor sends to carry over.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty() && self.unacked.is_empty()
    }
}

/// A message the server has not acknowledged yet, as it will be sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unacked {
    /// A room message (a Send command).
    Send(Send),
    /// A direct message to a user by nick.
    Direct(DirectMessage),
}

impl Unacked {
    /// The request id its reply will carry (the same in every session).
    pub fn req(&self) -> ReqId {
        match self {
            Unacked::Send(m) => m.req,
            Unacked::Direct(m) => m.req,
        }
    }

    /// The sender's id for the message, which the server de-duplicates by.
    pub fn client_id(&self) -> u64 {
        match self {
            Unacked::Send(m) => m.client_id,
            Unacked::Direct(m) => m.client_id,
        }
    }

    /// The message as sent.
    pub fn message(&self) -> Message {
        match self {
            Unacked::Send(m) => m.clone().into(),
            Unacked::Direct(m) => m.clone().into(),
        }
    }

    fn of(m: &Message) -> Option<Unacked> {
        match m {
            Message::Send(m) => Some(Unacked::Send(m.clone())),
            Message::DirectMessage(m) => Some(Unacked::Direct(m.clone())),
            _ => None,
        }
    }
}

/// Where an outgoing frame must be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The control stream (client's first bidi stream).
    Control,
    /// The client->server commands uni stream.
    Commands,
    /// The client->server acks uni stream.
    Acks,
    /// A datagram (unreliable).
    Datagram,
}

/// One encoded frame to write on `lane`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The stream (or datagram) `data` must be written to.
    pub lane: Lane,
    /// One whole encoded frame (header and payload).
    pub data: Bytes,
}

/// An error the server returned, or one raised locally (timeout, disconnect).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Failure {
    /// What went wrong ([`ErrorCode::Timeout`] and [`ErrorCode::Disconnected`] are raised locally).
    pub code: ErrorCode,
    /// Human-readable detail, from the server's Error frame or the session.
    pub message: String,
}

/// What a successful request returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// SetNick succeeded: the nick now in use.
    Nick(String),
    /// CreateRoom or Join succeeded.
    Joined(JoinInfo),
    /// Leave succeeded: the room left.
    Left(String),
    /// ListRooms: the rooms visible to the caller.
    Rooms(Vec<RoomInfo>),
    /// ListUsers: the members of `room`.
    Users {
        /// The room listed.
        room: String,
        /// Its members.
        users: Vec<MemberInfo>,
    },
    /// A Send or DirectMessage was accepted (for a re-sent message: its original ack).
    Sent {
        /// The room the message was posted to (for a DirectMessage: the direct room).
        room: String,
        /// The message's server-assigned id.
        id: MsgId,
        /// The room offset of the message's event.
        offset: Offset,
    },
    /// A command without a specific answer (edit, delete, react, set role, ...) succeeded.
    Done,
    /// A page of history, oldest first.
    History {
        /// The room the page is from.
        room: String,
        /// The room's epoch the page's offsets belong to.
        epoch: u64,
        /// The messages, oldest first.
        messages: Vec<StoredMessage>,
    },
    /// An upload may proceed from `offset`.
    UploadReady {
        /// The upload's id.
        upload: String,
        /// Bytes the server already holds: send chunks from here (non-zero when resuming).
        offset: u64,
    },
    /// An upload is complete.
    UploadDone {
        /// The upload's id, to reference it in a message's `attachment`.
        upload: String,
        /// Where it can be downloaded (with the session's ticket).
        url: String,
    },
}

/// The answer to a join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinInfo {
    /// The room joined, as listed.
    pub room: RoomInfo,
    /// The user's role in it.
    pub role: Role,
    /// The first offset of the room delivered from now on: our own MemberJoined when we
    /// are new, the event after the resume point when `resumed`, else the next event.
    pub offset: Offset,
    /// The room's members at join time.
    pub members: Vec<MemberInfo>,
    /// The room's epoch (its offsets are only comparable within one epoch).
    pub epoch: u64,
    /// The server replays everything after the resume point ([`ResumeState::rooms`]), so
    /// nothing was missed. False for a plain join, and after a reconnect when the gap
    /// cannot be replayed (history trimmed, another epoch): events may have been missed,
    /// reload the room's history (e.g. [`ClientSession::history`] before `offset`).
    pub resumed: bool,
    /// Messages after the user's read mark.
    pub unread: u64,
}

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed; commands flow from now on.
    Ready {
        /// The server's session id (from HelloAck).
        session: u64,
        /// The authenticated user's id.
        user: UserId,
        /// The nick the server granted.
        nick: String,
        /// Number of shard streams the server's rooms are spread over.
        num_shards: u16,
    },
    /// The server's greeting (Welcome), shown to the user.
    Welcome(String),
    /// The answer to request `req`.
    Reply {
        /// The request id the command was issued with.
        req: ReqId,
        /// What it returned, or why it failed (server error, timeout, disconnect).
        result: Result<Reply, Failure>,
    },
    /// A room from [`ClientConfig::resume`] was joined again (or could not be). With
    /// `JoinInfo::resumed == false` events may have been missed: reload history.
    Rejoined {
        /// The room's name.
        room: String,
        /// The join's answer, or why it failed.
        result: Result<JoinInfo, Failure>,
    },
    /// A room event, in offset order. `via` is the stream it arrived on.
    Room {
        /// The event (one of the room event messages, with its room and offset).
        event: Message,
        /// The stream it arrived on: the room's shard stream or its own hot-room stream.
        via: StreamKind,
    },
    /// Someone is typing in a room the session has joined (datagram, may be lost).
    Typing {
        /// The room.
        room: String,
        /// Who is typing.
        user: UserId,
        /// Their nick.
        nick: String,
    },
    /// A user came online or went offline (datagram, may be lost).
    Presence {
        /// The user.
        user: UserId,
        /// Their nick.
        nick: String,
        /// True when they came online.
        online: bool,
    },
    /// To the author of a message: someone received or read it.
    Receipt(Receipt),
    /// A room now has its own stream; its events arrive there.
    Promoted {
        /// The promoted room.
        room: String,
    },
    /// A room is back on its shard stream.
    Demoted {
        /// The demoted room.
        room: String,
    },
    /// The server asks the client to slow its commands down.
    Throttled {
        /// How long to pause, in milliseconds.
        retry_after_ms: u32,
    },
    /// The server is shutting down; the connection will close.
    Shutdown {
        /// The reason the server gave.
        reason: String,
    },
    /// An error not tied to a request.
    Error(Failure),
}

/// Why the session cannot go on; the driver should close the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A frame from the server could not be decoded.
    #[error("undecodable input: {0}")]
    Decode(#[from] DecodeError),
    /// The server broke the protocol (an unexpected frame, an impossible value).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The server refused the session during the handshake (an Error or AuthError frame).
    #[error("refused by server: {0}")]
    Refused(Failure),
    /// Nothing arrived from the server for this many milliseconds (over three heartbeats).
    #[error("no traffic from the server for {0} ms")]
    Timeout(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitHelloAck,
    AwaitAuthOk,
    AwaitShards,
    Ready,
}

#[derive(Debug)]
enum PendingKind {
    Plain,
    Join(String),
    Rejoin(String),
    Leave(String),
    /// A Send or DirectMessage: `seq` orders them; `keep` is the message while it is kept
    /// for re-sending (see [`ClientConfig::max_unacked`]).
    Send {
        seq: u64,
        keep: Option<Unacked>,
    },
    /// A quiet join of a room we were added to, for its epoch.
    Probe(String),
}

#[derive(Debug)]
struct Pending {
    deadline: u64,
    kind: PendingKind,
}

/// Ordering state of one room.
#[derive(Debug, Default)]
struct RoomTrack {
    /// Next offset to deliver; `None` while a join is in flight.
    next: Option<Offset>,
    /// Events that arrived ahead of `next`.
    ahead: BTreeMap<Offset, (Message, StreamKind)>,
    /// The room's epoch, from the Joined reply.
    epoch: Option<u64>,
    /// The resume point of a rejoin in flight.
    since: Option<Since>,
}

#[derive(Debug)]
struct Inbound {
    decoder: Decoder,
    kind: Option<StreamKind>,
}

/// The client side of one connection. See the module docs.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    state: State,
    session: u64,
    user: UserId,
    nick: String,
    /// The HTTP upload/download ticket from the server's Welcome (empty before it).
    ticket: String,
    /// The resume token from the server's Welcome (empty before it).
    resume_token: ResumeToken,
    num_shards: u16,
    heartbeat_ms: u64,
    max_frame: usize,
    next_req: ReqId,
    next_client_id: u64,
    /// Orders sends (for [`ResumeState::unacked`]).
    next_seq: u64,
    /// Pending sends holding their message for re-sending.
    kept: usize,
    pending: HashMap<ReqId, Pending>,
    /// Commands issued before the handshake finished, sent on Ready.
    held: Vec<Message>,
    rooms: HashMap<String, RoomTrack>,
    hot: HashSet<String>,
    streams: HashMap<StreamId, Inbound>,
    opened: HashSet<Lane>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    last_rx: u64,
    next_ping: u64,
    ping_nonce: u64,
}

impl ClientSession {
    /// A new session; the Hello frame is queued at once.
    /// Sends carried over in [`ClientConfig::resume`] are held (like commands issued
    /// before the handshake) and sent right after the rejoins.
    pub fn new(mut config: ClientConfig, now_ms: u64) -> Self {
        let held: Vec<Message> = std::mem::take(&mut config.resume.unacked)
            .iter()
            .map(Unacked::message)
            .collect();
        let mut s = ClientSession {
            max_frame: config.max_frame,
            next_req: config.resume.next_req.max(1),
            next_client_id: config.resume.next_client_id.max(1),
            config,
            state: State::AwaitHelloAck,
            session: 0,
            user: 0,
            nick: String::new(),
            ticket: String::new(),
            resume_token: ResumeToken::default(),
            num_shards: 0,
            heartbeat_ms: 15_000,
            next_seq: 0,
            kept: 0,
            pending: HashMap::new(),
            held,
            rooms: HashMap::new(),
            hot: HashSet::new(),
            streams: HashMap::new(),
            opened: HashSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            last_rx: now_ms,
            next_ping: u64::MAX,
            ping_nonce: 0,
        };
        s.streams.insert(
            CONTROL,
            Inbound {
                decoder: Decoder::new(s.max_frame),
                kind: None,
            },
        );
        let hello = Hello {
            version: PROTOCOL_VERSION,
            client: s.config.client_name.clone(),
            resume: s.config.resume.token.clone(),
        };
        s.queue(Lane::Control, hello.into());
        s
    }

    // ------------------------------------------------------------------ accessors

    /// True once the handshake has completed.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }
    /// Our user id (0 before AuthOk).
    pub fn user(&self) -> UserId {
        self.user
    }
    /// Our current nick.
    pub fn nick(&self) -> &str {
        &self.nick
    }
    /// This session's ticket for the gateway's HTTP uploads and downloads
    /// (`/api/uploads...?ticket=`), from the server's Welcome; empty until it arrived.
    /// Valid while this session lives (a new connection gets a new one).
    pub fn ticket(&self) -> &str {
        &self.ticket
    }
    /// The resume token from this session's Welcome (empty until it arrived); the next
    /// session offers it through [`ResumeState::token`].
    pub fn resume_token(&self) -> &ResumeToken {
        &self.resume_token
    }
    /// Session id given by the server.
    pub fn session_id(&self) -> u64 {
        self.session
    }
    /// Shard count from the ShardAssignment (0 before it).
    pub fn num_shards(&self) -> u16 {
        self.num_shards
    }
    /// The shard stream this room's events use while it is not hot.
    pub fn shard_of(&self, room: &str) -> u16 {
        shard_of(room, self.num_shards)
    }
    /// Whether the room currently has its own hot-room stream.
    pub fn is_hot(&self, room: &str) -> bool {
        self.hot.contains(room)
    }
    /// Rooms joined (or being joined), for rejoining after a reconnect. Before Ready that
    /// includes the rooms still waiting in [`ClientConfig::resume`] (so a connection lost
    /// during the handshake keeps them) and the joins held until Ready.
    pub fn rooms(&self) -> Vec<String> {
        let held = self.held.iter().filter_map(|m| match m {
            Message::Join(j) => Some(&j.room),
            Message::CreateRoom(c) => Some(&c.room),
            _ => None,
        });
        let mut v: Vec<String> = self
            .rooms
            .keys()
            .chain(self.config.resume.rooms.iter().map(|(r, _)| r))
            .chain(held)
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The last offset delivered in `room` and the room's epoch, once its join was
    /// answered (what a rejoin resumes from).
    pub fn since(&self, room: &str) -> Option<Since> {
        let t = self.rooms.get(room)?;
        match (t.next, t.epoch) {
            (Some(next), Some(epoch)) => Some(Since {
                offset: next.saturating_sub(1),
                epoch,
            }),
            _ => t.since,
        }
    }

    /// What a new session needs to take over if this connection were lost now (see
    /// [`ResumeState`]), as [`ClientSession::suspend`] would return it. Rooms come sorted
    /// by name, each once: the rooms joined (with their resume point) and those being
    /// rejoined or still waiting to be. Joins the application issued that are still
    /// unanswered are left out: they fail with `Disconnected` at a disconnect.
    /// Unacknowledged sends come oldest first, at most `max_unacked`.
    pub fn resume_state(&self) -> ResumeState {
        let rejoining: HashSet<&str> = self
            .pending
            .values()
            .filter_map(|p| match &p.kind {
                PendingKind::Rejoin(room) => Some(room.as_str()),
                _ => None,
            })
            .collect();
        let mut rooms: BTreeMap<String, Option<Since>> = BTreeMap::new();
        for (name, track) in &self.rooms {
            if track.next.is_some() || rejoining.contains(name.as_str()) {
                rooms.insert(name.clone(), self.since(name));
            }
        }
        for (name, since) in &self.config.resume.rooms {
            rooms.entry(name.clone()).or_insert(*since);
        }
        let mut sends: Vec<(u64, &Unacked)> = self
            .pending
            .values()
            .filter_map(|p| match &p.kind {
                PendingKind::Send { seq, keep: Some(u) } => Some((*seq, u)),
                _ => None,
            })
            .collect();
        sends.sort_unstable_by_key(|(seq, _)| *seq);
        let mut unacked: Vec<Unacked> = sends.into_iter().map(|(_, u)| u.clone()).collect();
        // Before Ready the sends wait in `held` (nothing is pending then).
        unacked.extend(self.held.iter().filter_map(Unacked::of));
        unacked.truncate(self.config.max_unacked);
        ResumeState {
            rooms: rooms.into_iter().collect(),
            unacked,
            next_req: self.next_req,
            next_client_id: self.next_client_id,
            // This session's token once its Welcome came; until then the one it offered
            // (still valid if this session never got that far).
            token: if self.resume_token.is_empty() {
                self.config.resume.token.clone()
            } else {
                self.resume_token.clone()
            },
        }
    }
    /// Number of requests still waiting for a reply.
    pub fn pending_requests(&self) -> usize {
        let internal = self
            .pending
            .values()
            .filter(|p| matches!(p.kind, PendingKind::Probe(_)))
            .count();
        self.pending.len() - internal + self.held.iter().filter(|m| m.request_id().is_some()).count()
    }

    // ------------------------------------------------------------------ output

    /// The next frame to write, and where.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`ClientSession::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        let req = self.pending.values().map(|p| p.deadline).min();
        let ping = (self.state == State::Ready).then_some(self.next_ping);
        match (req, ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expire requests, send keepalives, detect a silent server.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Result<(), SessionError> {
        let expired: Vec<ReqId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now_ms)
            .map(|(r, _)| *r)
            .collect();
        for req in expired {
            self.fail_request(
                req,
                Failure {
                    code: ErrorCode::Timeout,
                    message: "no reply from the server in time".into(),
                },
            );
        }
        if self.state == State::Ready && now_ms >= self.next_ping {
            let silent = now_ms.saturating_sub(self.last_rx);
            if silent > 3 * self.heartbeat_ms {
                return Err(SessionError::Timeout(silent));
            }
            self.ping_nonce += 1;
            self.queue(
                Lane::Control,
                Ping {
                    nonce: self.ping_nonce,
                }
                .into(),
            );
            self.next_ping = now_ms + self.heartbeat_ms;
        }
        Ok(())
    }

    /// The connection is gone and a new session will take over: returns its
    /// [`ResumeState`] (as [`ClientSession::resume_state`]) and fails every other
    /// outstanding request with `Disconnected`, like [`ClientSession::abort`]. What is
    /// carried over gets no answer from this session: the sends in
    /// `ResumeState::unacked` are answered by the next one under the same request ids,
    /// and rejoins in flight are simply tried again (no `Rejoined` error). A driver that
    /// will not start a next session must fail those sends itself (or call `abort`).
    pub fn suspend(&mut self, reason: &str) -> ResumeState {
        let state = self.resume_state();
        let carried: HashSet<ReqId> = state.unacked.iter().map(Unacked::req).collect();
        let rejoins: Vec<ReqId> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.kind, PendingKind::Rejoin(_)))
            .map(|(r, _)| *r)
            .collect();
        for req in carried.iter().chain(&rejoins) {
            self.take_pending(*req);
        }
        self.held
            .retain(|m| m.request_id().is_none_or(|r| !carried.contains(&r)));
        self.abort(reason);
        state
    }

    /// Fail every outstanding request with `Disconnected` (the connection is gone).
    pub fn abort(&mut self, reason: &str) {
        let reqs: Vec<ReqId> = self.pending.keys().copied().collect();
        for req in reqs {
            self.fail_request(
                req,
                Failure {
                    code: ErrorCode::Disconnected,
                    message: reason.into(),
                },
            );
        }
        for m in std::mem::take(&mut self.held) {
            if let Some(req) = m.request_id() {
                self.events.push_back(Event::Reply {
                    req,
                    result: Err(Failure {
                        code: ErrorCode::Disconnected,
                        message: reason.into(),
                    }),
                });
            }
        }
    }

    // ------------------------------------------------------------------ input

    /// Bytes received on stream `id` ([`CONTROL`] or a server-opened uni stream).
    pub fn on_stream_data(&mut self, id: StreamId, data: &[u8], now_ms: u64) -> Result<(), SessionError> {
        self.last_rx = now_ms;
        let max = self.max_frame;
        let inbound = self.streams.entry(id).or_insert_with(|| Inbound {
            decoder: Decoder::new(max),
            kind: None,
        });
        inbound.decoder.push(data);
        loop {
            let inbound = self.streams.get_mut(&id).expect("stream present");
            let Some(frame) = inbound.decoder.next_frame()? else {
                return Ok(());
            };
            let msg = Message::decode(&frame)?;
            if id == CONTROL {
                self.on_control(msg, now_ms)?;
            } else {
                match (&inbound.kind, msg) {
                    (None, Message::StreamHeader(h)) => match h.kind {
                        StreamKind::Shard(i) if i < self.num_shards.max(1) => inbound.kind = Some(h.kind),
                        StreamKind::Hot(_) => inbound.kind = Some(h.kind),
                        other => {
                            return Err(SessionError::Protocol(format!(
                                "unexpected server stream {other:?}"
                            )))
                        }
                    },
                    (None, m) => {
                        return Err(SessionError::Protocol(format!(
                            "server stream began with {:?}, not StreamHeader",
                            m.frame_type()
                        )))
                    }
                    (Some(kind), m) => {
                        let kind = kind.clone();
                        self.on_room_stream(kind, m, now_ms)?;
                    }
                }
            }
        }
    }

    /// Stream `id` ended cleanly.
    pub fn on_stream_end(&mut self, id: StreamId) -> Result<(), SessionError> {
        match self.streams.remove(&id) {
            Some(inbound) => inbound.decoder.finish().map_err(Into::into),
            None => Ok(()),
        }
    }

    /// A datagram arrived.
    pub fn on_datagram(&mut self, data: &[u8], now_ms: u64) -> Result<(), SessionError> {
        self.last_rx = now_ms;
        // A bad datagram is dropped, not fatal: they are unreliable anyway.
        match Message::decode_datagram(data, self.max_frame) {
            Ok(Message::Typing(t)) if self.rooms.contains_key(&t.room) => {
                self.events.push_back(Event::Typing {
                    room: t.room,
                    user: t.user,
                    nick: t.nick,
                })
            }
            Ok(Message::Presence(p)) => self.events.push_back(Event::Presence {
                user: p.user,
                nick: p.nick,
                online: p.online,
            }),
            _ => {}
        }
        Ok(())
    }

    fn on_control(&mut self, msg: Message, now_ms: u64) -> Result<(), SessionError> {
        match (self.state, msg) {
            (_, Message::Error(e)) if e.req.is_none() => {
                let f = Failure {
                    code: e.code,
                    message: e.message,
                };
                if self.state != State::Ready {
                    return Err(SessionError::Refused(f));
                }
                self.events.push_back(Event::Error(f));
            }
            (State::AwaitHelloAck, Message::HelloAck(a)) => {
                if a.version != PROTOCOL_VERSION {
                    return Err(SessionError::Protocol(format!(
                        "server speaks version {}",
                        a.version
                    )));
                }
                self.session = a.session;
                self.max_frame = self.max_frame.min(a.max_frame as usize).max(1024);
                self.heartbeat_ms = u64::from(a.heartbeat_ms.max(100));
                self.state = State::AwaitAuthOk;
                let credentials = self.config.credentials.clone();
                self.queue(Lane::Control, Auth { credentials }.into());
            }
            (State::AwaitAuthOk, Message::AuthOk(ok)) => {
                self.user = ok.user;
                self.nick = ok.nick;
                self.state = State::AwaitShards;
            }
            (State::AwaitAuthOk, Message::AuthError(e)) => {
                return Err(SessionError::Refused(Failure {
                    code: e.code,
                    message: e.reason,
                }))
            }
            (State::AwaitShards, Message::ShardAssignment(s)) => {
                if s.num_shards == 0 {
                    return Err(SessionError::Protocol("zero shards assigned".into()));
                }
                self.num_shards = s.num_shards;
                self.state = State::Ready;
                self.next_ping = now_ms + self.heartbeat_ms;
                self.events.push_back(Event::Ready {
                    session: self.session,
                    user: self.user,
                    nick: self.nick.clone(),
                    num_shards: self.num_shards,
                });
                // Rejoin first, then re-send what was not acknowledged (held first), then
                // the commands issued during the handshake: all on the commands stream,
                // which the server handles in order.
                for (room, since) in std::mem::take(&mut self.config.resume.rooms) {
                    let req = self.alloc_req();
                    self.rooms.entry(room.clone()).or_default().since = since;
                    self.pending.insert(
                        req,
                        Pending {
                            deadline: now_ms + self.config.request_timeout_ms,
                            kind: PendingKind::Rejoin(room.clone()),
                        },
                    );
                    self.queue(Lane::Commands, Join { req, room, since }.into());
                }
                for m in std::mem::take(&mut self.held) {
                    self.dispatch(m, now_ms);
                }
            }
            (State::Ready, Message::Ping(p)) => self.queue(Lane::Control, Pong { nonce: p.nonce }.into()),
            (State::Ready, Message::Pong(_)) => {}
            (State::Ready, Message::Welcome(w)) => {
                self.ticket = w.ticket;
                self.resume_token = w.resume_token;
                self.events.push_back(Event::Welcome(w.message))
            }
            (_, Message::Shutdown(s)) => self.events.push_back(Event::Shutdown { reason: s.reason }),
            (State::Ready, Message::Throttle(t)) => self.events.push_back(Event::Throttled {
                retry_after_ms: t.retry_after_ms,
            }),
            (State::Ready, Message::RoomPromoted(p)) => {
                self.hot.insert(p.room.clone());
                self.events.push_back(Event::Promoted { room: p.room });
            }
            (State::Ready, Message::RoomDemoted(d)) => {
                self.hot.remove(&d.room);
                self.events.push_back(Event::Demoted { room: d.room });
            }
            (State::Ready, Message::Receipt(r)) => self.events.push_back(Event::Receipt(r)),
            (State::Ready, m) if m.reply_to().is_some() => self.on_reply(m),
            (state, m) => {
                return Err(SessionError::Protocol(format!(
                    "{:?} on the control stream in state {state:?}",
                    m.frame_type()
                )))
            }
        }
        Ok(())
    }

    /// Remove a pending request, releasing the message it kept for re-sending.
    fn take_pending(&mut self, req: ReqId) -> Option<Pending> {
        let p = self.pending.remove(&req)?;
        if matches!(p.kind, PendingKind::Send { keep: Some(_), .. }) {
            self.kept -= 1;
        }
        Some(p)
    }

    fn on_reply(&mut self, msg: Message) {
        let req = msg.reply_to().expect("checked by caller");
        let Some(p) = self.take_pending(req) else {
            return; // late reply to a request that timed out
        };
        let result = match msg {
            Message::NickOk(m) => {
                self.nick = m.nick.clone();
                Ok(Reply::Nick(m.nick))
            }
            Message::Joined(m) => Ok(Reply::Joined(JoinInfo {
                room: m.room,
                role: m.role,
                offset: m.offset,
                members: m.members,
                epoch: m.epoch,
                resumed: m.resumed,
                unread: m.unread,
            })),
            Message::Left(m) => Ok(Reply::Left(m.room)),
            Message::RoomList(m) => Ok(Reply::Rooms(m.rooms)),
            Message::UserList(m) => Ok(Reply::Users {
                room: m.room,
                users: m.users,
            }),
            Message::Done(_) => Ok(Reply::Done),
            Message::MessageAck(m) => Ok(Reply::Sent {
                room: m.room,
                id: m.id,
                offset: m.offset,
            }),
            Message::HistoryPage(m) => Ok(Reply::History {
                room: m.room,
                epoch: m.epoch,
                messages: m.messages,
            }),
            Message::UploadReady(m) => Ok(Reply::UploadReady {
                upload: m.upload,
                offset: m.offset,
            }),
            Message::UploadDone(m) => Ok(Reply::UploadDone {
                upload: m.upload,
                url: m.url,
            }),
            Message::Error(e) => Err(Failure {
                code: e.code,
                message: e.message,
            }),
            _ => unreachable!("reply_to() is Some only for replies"),
        };
        self.finish_request(req, p.kind, result);
    }

    fn fail_request(&mut self, req: ReqId, f: Failure) {
        if let Some(p) = self.take_pending(req) {
            self.finish_request(req, p.kind, Err(f));
        }
    }

    fn finish_request(&mut self, req: ReqId, kind: PendingKind, result: Result<Reply, Failure>) {
        match (kind, result) {
            // The reply first, then the room's events buffered while the join was in flight.
            (PendingKind::Join(room), Ok(Reply::Joined(info))) => {
                let (offset, epoch, resumed) = (info.offset, info.epoch, info.resumed);
                self.events.push_back(Event::Reply {
                    req,
                    result: Ok(Reply::Joined(info)),
                });
                self.start_room(&room, offset, epoch, resumed);
            }
            (PendingKind::Rejoin(room), Ok(Reply::Joined(info))) => {
                let (offset, epoch, resumed) = (info.offset, info.epoch, info.resumed);
                self.events.push_back(Event::Rejoined {
                    room: room.clone(),
                    result: Ok(info),
                });
                self.start_room(&room, offset, epoch, resumed);
            }
            (PendingKind::Join(room), result) => {
                if result.is_err() && self.rooms.get(&room).is_some_and(|t| t.next.is_none()) {
                    self.rooms.remove(&room);
                }
                self.events.push_back(Event::Reply { req, result });
            }
            (PendingKind::Rejoin(room), result) => {
                if self.rooms.get(&room).is_some_and(|t| t.next.is_none()) {
                    self.rooms.remove(&room);
                }
                let result = match result {
                    Err(f) => Err(f),
                    Ok(other) => Err(Failure {
                        code: ErrorCode::Internal,
                        message: format!("unexpected reply to join: {other:?}"),
                    }),
                };
                self.events.push_back(Event::Rejoined { room, result });
            }
            (PendingKind::Leave(room), result) => {
                if result.is_ok() {
                    self.rooms.remove(&room);
                    self.hot.remove(&room);
                }
                self.events.push_back(Event::Reply { req, result });
            }
            (PendingKind::Probe(room), Ok(Reply::Joined(info))) => {
                if let Some(t) = self.rooms.get_mut(&room) {
                    t.epoch.get_or_insert(info.epoch);
                }
            }
            // Without the epoch the room is rejoined without a resume point: the app is told
            // (`resumed == false`) and reloads its history.
            (PendingKind::Probe(_), _) => {}
            (PendingKind::Plain | PendingKind::Send { .. }, result) => {
                self.events.push_back(Event::Reply { req, result })
            }
        }
    }

    fn on_room_stream(&mut self, via: StreamKind, msg: Message, now_ms: u64) -> Result<(), SessionError> {
        let Some((room, offset)) = msg.room_offset() else {
            return Err(SessionError::Protocol(format!(
                "{:?} on a room stream",
                msg.frame_type()
            )));
        };
        match &via {
            StreamKind::Shard(i) if *i != shard_of(room, self.num_shards) => {
                return Err(SessionError::Protocol(format!(
                    "room {room} arrived on shard {i}"
                )))
            }
            StreamKind::Hot(r) if r != room => {
                return Err(SessionError::Protocol(format!(
                    "room {room} arrived on hot stream of {r}"
                )))
            }
            _ => {}
        }
        let room = room.to_owned();
        let self_join = matches!(&msg, Message::MemberJoined(j) if j.user == self.user);
        if !self.rooms.contains_key(&room) {
            if !self_join {
                return Ok(()); // a room we left; late events are dropped
            }
            // A room we were added to without asking (a direct message): start at our own
            // join, and learn the room's epoch (for resuming it) with a quiet join.
            self.rooms.insert(
                room.clone(),
                RoomTrack {
                    next: Some(offset),
                    ..RoomTrack::default()
                },
            );
            self.probe_epoch(&room, now_ms);
        }
        let track = self.rooms.get_mut(&room).expect("tracked");
        let limit = match track.next {
            None => self.config.reorder_limit.max(self.config.replay_limit),
            Some(_) => self.config.reorder_limit,
        };
        // While our join is in flight (`next` is None) everything waits for the Joined
        // reply, which says where the room starts; `start_room` drops what came before.
        match track.next {
            Some(next) if offset < next => return Ok(()), // duplicate
            _ => {}
        }
        // The next event in line, or a duplicate of a buffered one, does not grow the buffer.
        let grows = track.next != Some(offset) && !track.ahead.contains_key(&offset);
        if grows && track.ahead.len() >= limit {
            return Err(SessionError::Protocol(format!(
                "room {room}: more than {limit} events out of order"
            )));
        }
        track.ahead.insert(offset, (msg, via));
        self.drain_room(&room);
        Ok(())
    }

    /// Join a room we already are in, only to learn its epoch (no event comes of it).
    fn probe_epoch(&mut self, room: &str, now_ms: u64) {
        let req = self.alloc_req();
        self.pending.insert(
            req,
            Pending {
                deadline: now_ms + self.config.request_timeout_ms,
                kind: PendingKind::Probe(room.to_owned()),
            },
        );
        let join = Join {
            req,
            room: room.to_owned(),
            since: None,
        };
        self.queue(Lane::Commands, join.into());
    }

    /// The join of `room` was answered: delivery starts at `offset`, or after the resume
    /// point when the server resumed from it (never delivering an offset twice).
    fn start_room(&mut self, room: &str, offset: Offset, epoch: u64, resumed: bool) {
        let track = self.rooms.entry(room.to_owned()).or_default();
        let since = track.since.take();
        if track.next.is_none() {
            let first = match since {
                Some(s) if resumed && s.epoch == epoch => offset.max(s.offset.saturating_add(1)),
                _ => offset,
            };
            track.next = Some(first);
            track.ahead = track.ahead.split_off(&first);
            track.epoch = Some(epoch);
        } else if track.epoch.is_none() {
            track.epoch = Some(epoch);
        }
        self.drain_room(room);
    }

    /// Deliver every event that is next in line.
    fn drain_room(&mut self, room: &str) {
        let Some(track) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(mut next) = track.next else { return };
        let mut left = false;
        while let Some(entry) = track.ahead.first_entry() {
            if *entry.key() != next {
                break;
            }
            let (event, via) = entry.remove();
            next += 1;
            left |= match &event {
                Message::MemberLeft(l) => l.user == self.user,
                Message::MemberModerated(m) => {
                    m.user == self.user && matches!(m.action, ModAction::Kick | ModAction::Ban)
                }
                Message::RoomDeleted(_) => true,
                _ => false,
            };
            self.events.push_back(Event::Room { event, via });
        }
        track.next = Some(next);
        if left {
            // Removed from the room by someone else (kick, ban, deletion) or our own leave:
            // stop tracking.
            self.rooms.remove(room);
            self.hot.remove(room);
        }
    }

    // ------------------------------------------------------------------ commands

    fn alloc_req(&mut self) -> ReqId {
        loop {
            let r = self.next_req;
            self.next_req = self.next_req.wrapping_add(1).max(1);
            // After a wrap, never reuse the id of a request still waiting.
            if !self.pending.contains_key(&r) {
                return r;
            }
        }
    }

    fn alloc_client_id(&mut self) -> u64 {
        let n = self.next_client_id;
        self.next_client_id = self.next_client_id.wrapping_add(1).max(1);
        self.config.client_id_base.wrapping_add(n)
    }

    fn queue(&mut self, lane: Lane, msg: Message) {
        if matches!(lane, Lane::Commands | Lane::Acks) && self.opened.insert(lane) {
            let kind = if lane == Lane::Commands {
                StreamKind::Commands
            } else {
                StreamKind::Acks
            };
            self.transmits.push_back(Transmit {
                lane,
                data: Message::StreamHeader(StreamHeader { kind }).encode(),
            });
        }
        self.transmits.push_back(Transmit {
            lane,
            data: msg.encode(),
        });
    }

    fn dispatch(&mut self, msg: Message, now_ms: u64) {
        if let Some(req) = msg.request_id() {
            let kind = match &msg {
                Message::Join(j) => {
                    self.rooms.entry(j.room.clone()).or_default();
                    PendingKind::Join(j.room.clone())
                }
                Message::CreateRoom(c) => {
                    self.rooms.entry(c.room.clone()).or_default();
                    PendingKind::Join(c.room.clone())
                }
                Message::Leave(l) => PendingKind::Leave(l.room.clone()),
                Message::Send(_) | Message::DirectMessage(_) => {
                    let keep = (self.kept < self.config.max_unacked)
                        .then(|| Unacked::of(&msg))
                        .flatten();
                    self.kept += usize::from(keep.is_some());
                    self.next_seq += 1;
                    PendingKind::Send {
                        seq: self.next_seq,
                        keep,
                    }
                }
                _ => PendingKind::Plain,
            };
            self.pending.insert(
                req,
                Pending {
                    deadline: now_ms + self.config.request_timeout_ms,
                    kind,
                },
            );
        }
        self.queue(Lane::Commands, msg);
    }

    fn command(&mut self, now_ms: u64, make: impl FnOnce(ReqId) -> Message) -> ReqId {
        let req = self.alloc_req();
        let msg = make(req);
        if self.state == State::Ready {
            self.dispatch(msg, now_ms);
        } else {
            self.held.push(msg);
        }
        req
    }

    /// Change nick.
    pub fn set_nick(&mut self, nick: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            SetNick {
                req,
                nick: nick.into(),
            }
            .into()
        })
    }
    /// Create a room (and join it as owner).
    pub fn create_room(&mut self, room: &str, kind: RoomKind, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            CreateRoom {
                req,
                room: room.into(),
                kind,
            }
            .into()
        })
    }
    /// Join a room (a missing group room is created).
    pub fn join(&mut self, room: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            Join {
                req,
                room: room.into(),
                since: None,
            }
            .into()
        })
    }
    /// Leave a room.
    pub fn leave(&mut self, room: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            Leave {
                req,
                room: room.into(),
            }
            .into()
        })
    }
    /// Post a message; the reply is [`Reply::Sent`] once the server accepted it.
    pub fn send(&mut self, room: &str, text: &str, now_ms: u64) -> ReqId {
        self.send_with_attachment(room, text, None, now_ms)
    }
    /// Post a message referencing a completed upload of ours (its id, from `UploadDone`
    /// or the HTTP upload). Like [`ClientSession::send`], it is kept (attachment
    /// included) and re-sent after a reconnect until acknowledged.
    pub fn send_with_attachment(
        &mut self,
        room: &str,
        text: &str,
        attachment: Option<&str>,
        now_ms: u64,
    ) -> ReqId {
        let client_id = self.alloc_client_id();
        self.command(now_ms, |req| {
            Send {
                req,
                room: room.into(),
                client_id,
                text: text.into(),
                attachment: attachment.map(Into::into),
            }
            .into()
        })
    }
    /// Direct message to a user by nick.
    pub fn direct(&mut self, to: &str, text: &str, now_ms: u64) -> ReqId {
        let client_id = self.alloc_client_id();
        self.command(now_ms, |req| {
            DirectMessage {
                req,
                to: to.into(),
                client_id,
                text: text.into(),
            }
            .into()
        })
    }
    /// Replace a message's text.
    pub fn edit(&mut self, room: &str, id: MsgId, text: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            Edit {
                req,
                room: room.into(),
                id,
                text: text.into(),
            }
            .into()
        })
    }
    /// Delete a message.
    pub fn delete(&mut self, room: &str, id: MsgId, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            Delete {
                req,
                room: room.into(),
                id,
            }
            .into()
        })
    }
    /// Add (or remove) a reaction.
    pub fn react(&mut self, room: &str, id: MsgId, emoji: &str, add: bool, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            React {
                req,
                room: room.into(),
                id,
                emoji: emoji.into(),
                add,
            }
            .into()
        })
    }
    /// List rooms.
    pub fn list_rooms(&mut self, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| ListRooms { req }.into())
    }
    /// List a room's members.
    pub fn list_users(&mut self, room: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            ListUsers {
                req,
                room: room.into(),
            }
            .into()
        })
    }
    /// A page of `room`'s message history, oldest first: at most `limit` messages (the
    /// server caps it at 1,000) with offsets below `before` and above `after`, both
    /// optional: without `after` the newest such messages (paging back), with `after` the
    /// oldest ones (paging forward). The reply is [`Reply::History`] (with the room's
    /// epoch).
    pub fn history(
        &mut self,
        room: &str,
        before: Option<Offset>,
        after: Option<Offset>,
        limit: u32,
        now_ms: u64,
    ) -> ReqId {
        self.command(now_ms, |req| {
            History {
                req,
                room: room.into(),
                before,
                after,
                limit,
            }
            .into()
        })
    }
    /// Change a member's role.
    pub fn set_role(&mut self, room: &str, nick: &str, role: Role, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            SetRole {
                req,
                room: room.into(),
                nick: nick.into(),
                role,
            }
            .into()
        })
    }

    /// Kick, mute (`secs`, 0 = until unmuted), unmute, ban or unban a member.
    pub fn moderate(
        &mut self,
        room: &str,
        nick: &str,
        action: ModAction,
        secs: u32,
        reason: &str,
        now_ms: u64,
    ) -> ReqId {
        self.command(now_ms, |req| {
            Moderate {
                req,
                room: room.into(),
                nick: nick.into(),
                action,
                secs,
                reason: reason.into(),
            }
            .into()
        })
    }
    /// Add a user to a room as a member.
    pub fn invite(&mut self, room: &str, nick: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            Invite {
                req,
                room: room.into(),
                nick: nick.into(),
            }
            .into()
        })
    }
    /// Set a room's display title.
    pub fn rename_room(&mut self, room: &str, title: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            RenameRoom {
                req,
                room: room.into(),
                title: title.into(),
            }
            .into()
        })
    }
    /// Delete a room.
    pub fn delete_room(&mut self, room: &str, now_ms: u64) -> ReqId {
        self.command(now_ms, |req| {
            DeleteRoom {
                req,
                room: room.into(),
            }
            .into()
        })
    }

    /// Tell the room we are typing (a datagram; dropped before the handshake).
    pub fn typing(&mut self, room: &str) {
        if self.state == State::Ready {
            let t = Typing {
                room: room.into(),
                user: 0,
                nick: String::new(),
            };
            self.transmits.push_back(Transmit {
                lane: Lane::Datagram,
                data: Message::Typing(t).encode(),
            });
        }
    }

    /// Acknowledge receipt of a message to its author.
    pub fn delivered(&mut self, room: &str, id: MsgId) {
        if self.state == State::Ready {
            self.queue(
                Lane::Acks,
                Delivered {
                    room: room.into(),
                    id,
                }
                .into(),
            );
        }
    }

    /// Tell a message's author it was read.
    pub fn read(&mut self, room: &str, id: MsgId) {
        if self.state == State::Ready {
            self.queue(
                Lane::Acks,
                Read {
                    room: room.into(),
                    id,
                }
                .into(),
            );
        }
    }
}
