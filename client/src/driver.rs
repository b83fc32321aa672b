//! The driver task: runs a [`ClientSession`] over a [`Link`], reconnects when it breaks.
//!
//! One task owns the session, so the state machine needs no locks. Each loop turn moves
//! the session's output (frames to lane queues, events to the application, replies to
//! their [`Pending`](crate::Pending)s), then waits for whichever comes first: room in the
//! event channel, inbound bytes, a command, a blocked lane freeing up, the session timer,
//! or the connection closing.
//!
//! Recovery: when a connection is lost the session is suspended into a [`ResumeState`]
//! (each room with the last offset delivered and its epoch, and the sends not yet
//! acknowledged); the next session starts from it, so it rejoins with `since` (the
//! server replays the gap, the session drops what was delivered already) and re-sends
//! those messages with their original request and client ids. The reply channels of those
//! sends are kept meanwhile ([`Carried`]): a send resolves with its original ack once a
//! new session is up, or fails with `Disconnected` if none is ready within
//! `request_timeout` of the disconnect (it is then dropped from the state, never sent
//! again).
//!
//! Backpressure, without any unbounded buffer: reading room streams and datagrams pauses
//! as soon as an event waits for room in the channel; the control stream keeps being read
//! (so replies still resolve while the application is busy elsewhere) until `event_buffer`
//! events that it produced wait, however many room events are queued; command intake
//! pauses while a lane queue is full.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use garou_protocol::client::CONTROL;
use garou_protocol::{
    ClientConfig, ClientSession, Credentials, ErrorCode, Event, Failure, Lane, ReqId, ResumeState,
    SessionError, Transmit,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::backoff::backoff_random;
use crate::events::ClientEvent;
use crate::handle::{CloseRequest, Command, Identity, ReplyResult, Shared};
use crate::link::{Inbound, Link};
use crate::options::ClientOptions;
use crate::ClientError;

/// How long a graceful close waits for queued frames to reach the server.
const FLUSH_WAIT: Duration = Duration::from_secs(3);
/// How long a graceful close waits for the CONNECTION_CLOSE to go out.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// How a connection ended.
enum Outcome {
    /// The application closed the client (or dropped every handle).
    Closed,
    /// The connection is gone; `ready` says whether its handshake had completed.
    Lost { error: ClientError, ready: bool },
}

/// One connection's state.
struct Conn {
    link: Link,
    session: ClientSession,
    pending: HashMap<ReqId, oneshot::Sender<ReplyResult>>,
    /// A frame whose lane queue was full; nothing else is sent until it goes.
    stalled: Option<Transmit>,
    ready: bool,
    /// The reason from the server's Shutdown frame, which explains the close that follows.
    shutdown: Option<String>,
}

pub(crate) struct Driver {
    opts: ClientOptions,
    quic: quinn::ClientConfig,
    cmds: mpsc::Receiver<Command>,
    close_rx: mpsc::Receiver<CloseRequest>,
    events: mpsc::Sender<ClientEvent>,
    /// Events waiting for room in `events`.
    outbox: VecDeque<ClientEvent>,
    /// How many events the control stream added to `outbox` since it was last empty
    /// (an upper bound: some may have been delivered). Reading the control stream pauses
    /// at `event_buffer`; room events in `outbox` do not count, since one chunk of a room
    /// stream can carry many and replies must not wait for the application to read them.
    control_backlog: usize,
    /// False once the application dropped its `Events`.
    events_open: bool,
    shared: Arc<Shared>,
    start: Instant,
    server: usize,
    /// What the next session takes over: rooms with their resume points, unacked sends.
    resume: ResumeState,
    /// Reply channels of the sends in `resume.unacked`, between sessions.
    carried: Carried,
    /// Random high bits of every client id this client generates (unique across the
    /// user's clients), with a counter carried across sessions in `resume`.
    client_id_base: u64,
}

/// The reply channels of sends carried over to the next session, each with the time it
/// gives up (fails with `Disconnected`) if no session has re-sent it by then.
#[derive(Default)]
pub(crate) struct Carried {
    waiting: HashMap<ReqId, (oneshot::Sender<ReplyResult>, Instant)>,
}

impl Carried {
    fn insert(&mut self, req: ReqId, reply: oneshot::Sender<ReplyResult>, deadline: Instant) {
        self.waiting.insert(req, (reply, deadline));
    }

    fn contains(&self, req: ReqId) -> bool {
        self.waiting.contains_key(&req)
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The earliest deadline.
    fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|(_, d)| *d).min()
    }

    /// Fail (Disconnected) and forget every send whose deadline is past; their ids.
    fn expire(&mut self, now: Instant) -> Vec<ReqId> {
        let gone: Vec<ReqId> = self
            .waiting
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(r, _)| *r)
            .collect();
        for req in &gone {
            if let Some((tx, _)) = self.waiting.remove(req) {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
        }
        gone
    }

    /// Hand every channel over (to the connection that re-sends them).
    fn drain(&mut self) -> impl Iterator<Item = (ReqId, oneshot::Sender<ReplyResult>)> + '_ {
        self.waiting.drain().map(|(r, (tx, _))| (r, tx))
    }

    /// Fail them all with `error`.
    fn fail_all(&mut self, error: ClientError) {
        for (_, tx) in self.drain() {
            let _ = tx.send(Err(error.clone()));
        }
    }
}

impl Driver {
    pub(crate) fn new(
        opts: ClientOptions,
        quic: quinn::ClientConfig,
        cmds: mpsc::Receiver<Command>,
        close_rx: mpsc::Receiver<CloseRequest>,
        events: mpsc::Sender<ClientEvent>,
        shared: Arc<Shared>,
    ) -> Self {
        Driver {
            opts,
            quic,
            cmds,
            close_rx,
            events,
            outbox: VecDeque::new(),
            control_backlog: 0,
            events_open: true,
            shared,
            start: Instant::now(),
            server: 0,
            resume: ResumeState::default(),
            carried: Carried::default(),
            client_id_base: rand::random(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn instant(&self, ms: u64) -> Instant {
        self.start
            .checked_add(Duration::from_millis(ms))
            .unwrap_or_else(far_future)
    }

    /// Connect (servers in order), report readiness through `ready`, then keep the client
    /// connected until it is closed.
    pub(crate) async fn run(mut self, ready: oneshot::Sender<Result<(), ClientError>>) {
        let mut notify = Some(ready);
        let mut last = None;
        let mut lost = None;
        for i in 0..self.opts.servers.len() {
            self.server = i;
            match self.attempt(&mut notify, false).await {
                Outcome::Closed => return,
                Outcome::Lost { error, ready: true } => {
                    lost = Some(error);
                    break;
                }
                Outcome::Lost { error, ready: false } => {
                    // The last failure is returned to the caller; earlier ones are worth a
                    // warning since we move on to a fallback.
                    if i + 1 < self.opts.servers.len() {
                        warn!(server = %self.opts.servers[i], "connect failed, trying the next server: {error}");
                    } else {
                        debug!(server = %self.opts.servers[i], "connect failed: {error}");
                    }
                    // A refusal (credentials, nick) would be the same on every gateway.
                    let refused = matches!(error, ClientError::Refused(_));
                    last = Some(error);
                    if refused || notify.as_ref().is_none_or(|n| n.is_closed()) {
                        break;
                    }
                }
            }
        }
        let Some(mut error) = lost else {
            if let Some(n) = notify.take() {
                let _ = n.send(Err(last.unwrap_or(ClientError::Closed)));
            }
            return;
        };
        loop {
            info!("disconnected: {error}");
            self.push(ClientEvent::Disconnected {
                reason: error.to_string(),
            });
            if !self.opts.reconnect {
                break;
            }
            let mut attempt = 0u32;
            error = loop {
                attempt = attempt.saturating_add(1);
                let delay = backoff_random(attempt, self.opts.backoff_min, self.opts.backoff_max);
                debug!(attempt, ?delay, "reconnecting");
                self.push(ClientEvent::Reconnecting { attempt, delay });
                if !self.idle(Some(Instant::now() + delay)).await {
                    return;
                }
                self.server = (self.server + 1) % self.opts.servers.len();
                match self.attempt(&mut None, true).await {
                    Outcome::Closed => return,
                    Outcome::Lost { error, ready: true } => break error,
                    Outcome::Lost { error, ready: false } => {
                        warn!(server = %self.opts.servers[self.server], attempt, "reconnect failed: {error}");
                    }
                }
            };
        }
        // Not reconnecting: the carried sends will never be re-sent; hand over the last
        // events, refuse commands, then end.
        self.carried.fail_all(ClientError::Disconnected);
        self.resume.unacked.clear();
        self.idle(None).await;
    }

    /// Give up on the carried sends whose time is up: they fail and are not re-sent.
    fn expire_carried(&mut self) {
        let gone = self.carried.expire(Instant::now());
        if !gone.is_empty() {
            debug!(
                count = gone.len(),
                "unacknowledged sends given up: no session in time"
            );
            self.resume.unacked.retain(|u| !gone.contains(&u.req()));
        }
    }

    /// Without a connection: deliver queued events and fail requests until `until` (or,
    /// with `None`, until the events are delivered). False if the client was closed.
    async fn idle(&mut self, until: Option<Instant>) -> bool {
        loop {
            self.deliver();
            self.expire_carried();
            let give_up = self.carried.next_deadline();
            if until.is_none() && (self.outbox.is_empty() || !self.events_open) {
                return false;
            }
            tokio::select! {
                biased;
                permit = self.events.clone().reserve_owned(), if !self.outbox.is_empty() => self.deliver_one(permit.ok()),
                done = self.close_rx.recv() => {
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return false;
                }
                cmd = self.cmds.recv() => match cmd {
                    None => return false,
                    Some(Command::Request { reply, .. }) => {
                        let _ = reply.send(Err(ClientError::Disconnected));
                    }
                    Some(_) => {}
                },
                _ = sleep_until(until.unwrap_or_else(far_future)), if until.is_some() => return true,
                _ = sleep_until(give_up.unwrap_or_else(far_future)), if give_up.is_some() => {}
            }
        }
    }

    /// Credentials for a new session: a nick-only identity keeps the nick it had last.
    fn credentials(&self) -> Credentials {
        match &self.opts.credentials {
            Credentials::Nick(n) => {
                let current = self.shared.identity().nick;
                Credentials::Nick(if current.is_empty() { n.clone() } else { current })
            }
            other => other.clone(),
        }
    }

    /// One connection to the current server, from dial to loss or close.
    async fn attempt(
        &mut self,
        notify: &mut Option<oneshot::Sender<Result<(), ClientError>>>,
        reconnect: bool,
    ) -> Outcome {
        let server = self.opts.servers[self.server].clone();
        let span = info_span!("connection", server = %server, session = tracing::field::Empty);
        async {
            let deadline = Instant::now() + self.opts.connect_timeout;
            let link = {
                let open = Link::open(&server, &self.opts, self.quic.clone(), deadline);
                tokio::pin!(open);
                loop {
                    tokio::select! {
                        link = &mut open => break link,
                        done = self.close_rx.recv() => {
                            if let Some(done) = done {
                                let _ = done.send(());
                            }
                            return Outcome::Closed;
                        }
                        cmd = self.cmds.recv() => match cmd {
                            None => return Outcome::Closed,
                            Some(Command::Request { reply, .. }) => {
                                let _ = reply.send(Err(ClientError::Disconnected));
                            }
                            Some(_) => {}
                        },
                    }
                }
            };
            let link = match link {
                Ok(link) => link,
                Err(error) => return Outcome::Lost { error, ready: false },
            };
            self.expire_carried();
            let mut config = ClientConfig::with_nick("");
            config.credentials = self.credentials();
            config.client_name = self.opts.client_name.clone();
            config.request_timeout_ms = self.opts.request_timeout.as_millis() as u64;
            config.client_id_base = self.client_id_base;
            config.resume = self.resume.clone();
            let mut conn = Conn {
                link,
                session: ClientSession::new(config, self.now_ms()),
                pending: HashMap::new(),
                stalled: None,
                ready: false,
                shutdown: None,
            };
            self.serve(&mut conn, notify, reconnect, deadline).await
        }
        .instrument(span)
        .await
    }

    /// Run one connection until it is lost or the client is closed.
    async fn serve(
        &mut self,
        c: &mut Conn,
        notify: &mut Option<oneshot::Sender<Result<(), ClientError>>>,
        reconnect: bool,
        handshake_deadline: Instant,
    ) -> Outcome {
        loop {
            self.pump(c, notify, reconnect);
            flush(c);
            self.deliver();
            let stalled_tx = c.stalled.as_ref().and_then(|t| c.link.lane(t.lane));
            let timer = c.session.poll_timeout().map(|ms| self.instant(ms));
            // Not `biased`: a steady flow on one branch (room events, or a burst of
            // commands) must not starve the others or the timer.
            tokio::select! {
                permit = self.events.clone().reserve_owned(), if !self.outbox.is_empty() => self.deliver_one(permit.ok()),
                inbound = c.link.control.recv(), if self.control_backlog < self.opts.event_buffer => {
                    if let Err((error, code)) = self.on_inbound_opt(c, inbound) {
                        return self.lose(c, error, code);
                    }
                    let before = self.outbox.len();
                    self.pump(c, notify, reconnect);
                    self.control_backlog += self.outbox.len().saturating_sub(before);
                }
                inbound = c.link.inbound.recv(), if self.outbox.is_empty() => {
                    if let Err((error, code)) = self.on_inbound_opt(c, inbound) {
                        return self.lose(c, error, code);
                    }
                }
                permit = async { stalled_tx.as_ref().expect("guarded").reserve().await }, if stalled_tx.is_some() => {
                    let t = c.stalled.take().expect("stalled frame");
                    if let Ok(permit) = permit {
                        permit.send(t.data);
                    }
                }
                done = self.close_rx.recv() => {
                    self.close(c).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return Outcome::Closed;
                }
                cmd = self.cmds.recv(), if c.stalled.is_none() => match cmd {
                    None => {
                        self.close(c).await;
                        return Outcome::Closed;
                    }
                    Some(cmd) => self.on_command(c, cmd),
                },
                _ = sleep_until(timer.unwrap_or_else(far_future)), if timer.is_some() => {
                    if let Err(e) = c.session.handle_timeout(self.now_ms()) {
                        let (error, code) = session_error(e);
                        return self.lose(c, error, code);
                    }
                }
                _ = sleep_until(handshake_deadline), if !c.ready => {
                    return self.lose(c, ClientError::Timeout, ErrorCode::Timeout.as_u16());
                }
                _ = c.link.conn.closed() => {
                    // Take in what the readers already forwarded (a final AuthError,
                    // Shutdown or reply) before reporting the loss.
                    while let Ok(i) = c.link.control.try_recv().or_else(|_| c.link.inbound.try_recv()) {
                        if let Err((error, code)) = self.on_inbound(c, i) {
                            return self.lose(c, error, code);
                        }
                    }
                    self.pump(c, notify, reconnect);
                    let error = lost_reason(&c.link.conn);
                    return self.lose(c, error, 0);
                }
            }
        }
    }

    fn on_inbound_opt(&mut self, c: &mut Conn, i: Option<Inbound>) -> Result<(), (ClientError, u16)> {
        match i {
            Some(i) => self.on_inbound(c, i),
            // Every reader is gone: only happens once the connection is closing.
            None => Err((lost_reason(&c.link.conn), 0)),
        }
    }

    /// Feed one inbound item to the session. Err: the connection must end.
    fn on_inbound(&mut self, c: &mut Conn, i: Inbound) -> Result<(), (ClientError, u16)> {
        let now = self.now_ms();
        let r = match i {
            Inbound::Data(id, data) => c.session.on_stream_data(id, &data, now),
            Inbound::Datagram(d) => c.session.on_datagram(&d, now),
            Inbound::End(CONTROL) => {
                return Err((ClientError::Lost("the server ended the control stream".into()), 0))
            }
            Inbound::End(id) => c.session.on_stream_end(id),
            Inbound::Failed(CONTROL, why) => {
                let error = match c.link.conn.close_reason() {
                    Some(_) => lost_reason(&c.link.conn),
                    None => ClientError::Lost(format!("control stream failed: {why}")),
                };
                return Err((error, 0));
            }
            Inbound::Failed(id, why) => {
                debug!(id, "server stream failed: {why}");
                Ok(())
            }
        };
        r.map_err(session_error)
    }

    fn on_command(&mut self, c: &mut Conn, cmd: Command) {
        match cmd {
            Command::Request { op, reply } => {
                let req = op.issue(&mut c.session, self.now_ms());
                c.pending.insert(req, reply);
            }
            Command::Typing(room) => c.session.typing(&room),
            Command::Delivered(room, id) => c.session.delivered(&room, id),
            Command::Read(room, id) => c.session.read(&room, id),
        }
    }

    /// Route the session's events: replies to their requests, the rest to the outbox.
    fn pump(
        &mut self,
        c: &mut Conn,
        notify: &mut Option<oneshot::Sender<Result<(), ClientError>>>,
        reconnect: bool,
    ) {
        while let Some(ev) = c.session.poll_event() {
            match ev {
                Event::Reply { req, result } => {
                    if let Some(tx) = c.pending.remove(&req) {
                        let _ = tx.send(result.map_err(ClientError::from_failure));
                    }
                }
                Event::Ready {
                    session,
                    user,
                    ref nick,
                    ..
                } => {
                    c.ready = true;
                    // The session re-sends the carried messages now, under their ids: their
                    // replies (and request timeouts) are this connection's from here on.
                    if !self.carried.is_empty() {
                        debug!(
                            count = self.carried.waiting.len(),
                            "re-sending unacknowledged messages"
                        );
                        c.pending.extend(self.carried.drain());
                    }
                    tracing::Span::current().record("session", session);
                    info!(user, nick = %nick, "session ready");
                    let nick = nick.clone();
                    self.shared.set_identity(Identity {
                        session,
                        user,
                        nick: nick.clone(),
                    });
                    self.shared.connected.store(true, Ordering::Release);
                    self.push(ClientEvent::Session(ev));
                    if reconnect {
                        self.push(ClientEvent::Reconnected { session, user, nick });
                    }
                    if let Some(n) = notify.take() {
                        let _ = n.send(Ok(()));
                    }
                }
                Event::Shutdown { ref reason } => {
                    c.shutdown = Some(reason.clone());
                    self.push(ClientEvent::Session(ev));
                }
                other => self.push(ClientEvent::Session(other)),
            }
        }
        if c.ready {
            let nick = c.session.nick();
            if self.shared.identity().nick != nick {
                let mut id = self.shared.identity();
                id.nick = nick.to_owned();
                self.shared.set_identity(id);
            }
        }
    }

    /// The connection is gone: close it, fail what was in flight except the sends the next
    /// session re-sends, remember where each room stopped.
    fn lose(&mut self, c: &mut Conn, error: ClientError, code: u16) -> Outcome {
        let error = match (error, &c.shutdown) {
            (ClientError::Lost(_), Some(reason)) => {
                ClientError::Lost(format!("the server shut down: {reason}"))
            }
            (error, _) => error,
        };
        c.link.close(code, &error.to_string());
        let state = c.session.suspend(&error.to_string());
        self.pump(c, &mut None, false);
        // Sends carried over keep their reply channel; those of an earlier connection that
        // never got ready keep their original deadline.
        let give_up = Instant::now() + self.opts.request_timeout;
        for u in &state.unacked {
            if let Some(tx) = c.pending.remove(&u.req()) {
                self.carried.insert(u.req(), tx, give_up);
            } else if !self.carried.contains(u.req()) {
                debug!(req = u.req(), "re-sending a message nobody waits for");
            }
        }
        for (_, tx) in c.pending.drain() {
            let _ = tx.send(Err(ClientError::Disconnected));
        }
        self.resume = state;
        self.shared.connected.store(false, Ordering::Release);
        Outcome::Lost {
            error,
            ready: c.ready,
        }
    }

    /// Graceful close: issue what was already handed off, flush queued frames, finish the
    /// streams, close with 0 "bye".
    async fn close(&mut self, c: &mut Conn) {
        info!("closing");
        while let Ok(cmd) = self.cmds.try_recv() {
            self.on_command(c, cmd);
        }
        let flush_all = async {
            while let Some(t) = c.stalled.take().or_else(|| c.session.poll_transmit()) {
                match t.lane {
                    Lane::Datagram => c.link.send_datagram(t.data),
                    lane => {
                        if let Some(tx) = c.link.lane(lane) {
                            let _ = tx.send(t.data).await;
                        }
                    }
                }
            }
            c.link.finish_writers().await;
        };
        if tokio::time::timeout(FLUSH_WAIT, flush_all).await.is_err() {
            debug!("close: flush timed out");
        }
        c.link.close(0, "bye");
        c.session.abort("client closed");
        while let Some(ev) = c.session.poll_event() {
            if let Event::Reply { req, .. } = ev {
                if let Some(tx) = c.pending.remove(&req) {
                    let _ = tx.send(Err(ClientError::Closed));
                }
            }
        }
        for (_, tx) in c.pending.drain() {
            let _ = tx.send(Err(ClientError::Closed));
        }
        self.shared.connected.store(false, Ordering::Release);
        if c.link.owns_endpoint {
            let _ = tokio::time::timeout(DRAIN_WAIT, c.link.endpoint.wait_idle()).await;
        }
    }

    /// Queue an event for the application (dropped if it no longer listens).
    fn push(&mut self, ev: ClientEvent) {
        if !self.events_open {
            return;
        }
        // Keep only the latest of consecutive reconnect notices, so a client that is not
        // read while the server stays away does not pile them up.
        if let (ClientEvent::Reconnecting { .. }, Some(ClientEvent::Reconnecting { .. })) =
            (&ev, self.outbox.back())
        {
            self.outbox.pop_back();
        }
        self.outbox.push_back(ev);
    }

    /// Move queued events into the channel while it has room.
    fn deliver(&mut self) {
        while let Some(ev) = self.outbox.pop_front() {
            match self.events.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => {
                    self.outbox.push_front(ev);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.events_open = false;
                    self.outbox.clear();
                    break;
                }
            }
        }
        self.outbox_drained();
    }

    /// Once every queued event is delivered, the control stream's budget starts afresh.
    fn outbox_drained(&mut self) {
        if self.outbox.is_empty() {
            self.control_backlog = 0;
        }
    }

    fn deliver_one(&mut self, permit: Option<mpsc::OwnedPermit<ClientEvent>>) {
        match (permit, self.outbox.pop_front()) {
            (Some(p), Some(ev)) => {
                p.send(ev);
                self.outbox_drained();
            }
            (None, _) => {
                self.events_open = false;
                self.outbox.clear();
            }
            (Some(_), None) => {}
        }
    }
}

/// Move the session's frames into the lane queues until one is full.
fn flush(c: &mut Conn) {
    while let Some(t) = c.stalled.take().or_else(|| c.session.poll_transmit()) {
        if t.lane == Lane::Datagram {
            c.link.send_datagram(t.data);
            continue;
        }
        let Some(tx) = c.link.lane(t.lane) else {
            continue;
        };
        match tx.try_send(t.data) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(data)) => {
                c.stalled = Some(Transmit { lane: t.lane, data });
                return;
            }
            // The writer died with the connection; `closed()` reports it.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Map a fatal session error to the client error and the QUIC close code to use.
fn session_error(e: SessionError) -> (ClientError, u16) {
    match e {
        SessionError::Decode(d) => (ClientError::Protocol(d.to_string()), ErrorCode::BadFrame.as_u16()),
        SessionError::Protocol(p) => (ClientError::Protocol(p), ErrorCode::OutOfState.as_u16()),
        SessionError::Refused(f) => (ClientError::Refused(f), 0),
        SessionError::Timeout(ms) => (
            ClientError::Lost(format!("no traffic from the server for {ms} ms")),
            ErrorCode::Timeout.as_u16(),
        ),
    }
}

/// Why the connection closed, as a client error. A close by the server with an
/// authentication or nick error code is a refusal.
fn lost_reason(conn: &quinn::Connection) -> ClientError {
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => {
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            let code = close.error_code.into_inner();
            match u16::try_from(code).ok().and_then(ErrorCode::from_u16) {
                Some(c @ (ErrorCode::AuthFailed | ErrorCode::NickUnavailable)) => {
                    ClientError::Refused(Failure {
                        code: c,
                        message: reason,
                    })
                }
                Some(c) => ClientError::Lost(format!("closed by the server ({c:?}): {reason}")),
                None => ClientError::Lost(format!("closed by the server (code {code}): {reason}")),
            }
        }
        Some(e) => ClientError::Lost(e.to_string()),
        None => ClientError::Lost("connection lost".into()),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_sends_expire_with_disconnected_and_hand_over_the_rest() {
        let now = Instant::now();
        let mut c = Carried::default();
        assert!(c.is_empty());
        assert_eq!(c.next_deadline(), None);
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        c.insert(1, tx1, now + Duration::from_secs(1));
        c.insert(2, tx2, now + Duration::from_secs(5));
        assert!(c.contains(1) && c.contains(2) && !c.contains(3));
        assert_eq!(c.next_deadline(), Some(now + Duration::from_secs(1)));

        assert_eq!(c.expire(now), Vec::<ReqId>::new());
        assert_eq!(c.expire(now + Duration::from_secs(2)), vec![1]);
        assert!(matches!(rx1.try_recv(), Ok(Err(ClientError::Disconnected))));
        assert!(rx2.try_recv().is_err(), "still waiting");
        assert_eq!(c.next_deadline(), Some(now + Duration::from_secs(5)));

        // Handed over to a connection, which answers with the original ack.
        let mut pending: HashMap<ReqId, oneshot::Sender<ReplyResult>> = HashMap::new();
        pending.extend(c.drain());
        assert!(c.is_empty());
        let _ = pending.remove(&2).unwrap().send(Ok(garou_protocol::Reply::Done));
        assert!(matches!(rx2.try_recv(), Ok(Ok(garou_protocol::Reply::Done))));

        let (tx3, mut rx3) = oneshot::channel();
        c.insert(3, tx3, now);
        c.fail_all(ClientError::Closed);
        assert!(matches!(rx3.try_recv(), Ok(Err(ClientError::Closed))));
        assert!(c.is_empty());
    }
}
