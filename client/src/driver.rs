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
//! `offline_timeout` (when set) of the disconnect (it is then dropped from the state,
//! never sent again). Messages handed off while no session is ready wait in the bounded
//! offline queue and are issued, in order, once one is.
//!
//! Pacing: every frame the server counts takes a token of the [`Pacer`] when it is moved
//! to its lane; without one it waits (and no new command is taken meanwhile), so a
//! request's timeout starts about when it can go out, and the burst of rejoins and
//! re-sends after a reconnect goes out at the client's rate. A server `Throttle` pauses
//! the pacer and halves its rate. Terminal errors (certificate, credentials, ban) stop
//! the client: everything waiting fails with the error and the application is told.
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
    ClientConfig, ClientSession, Credentials, Decoder, ErrorCode, Event, Failure, Lane, ReqId, ResumeState,
    SessionError, Transmit,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::backoff::backoff_random;
use crate::events::{ClientEvent, Item};
use crate::handle::{CloseRequest, Command, Identity, Op, ReplyResult, Shared};
use crate::link::{Inbound, Link};
use crate::options::ClientOptions;
use crate::rate::{Pacer, SharedPacer};
use crate::tls::CertFailures;
use crate::uploads::Uploads;
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

/// A frame held back: it waits for a token of the pacer (`charged == false`, until
/// `Conn::pace_at`) or, with its token taken, for room in its lane queue.
struct Stall {
    t: Transmit,
    charged: bool,
}

/// One connection's state.
struct Conn {
    link: Link,
    session: ClientSession,
    pending: HashMap<ReqId, oneshot::Sender<ReplyResult>>,
    /// A frame held back; nothing else is sent (nor new commands taken) until it goes.
    stalled: Option<Stall>,
    /// When the pacer has a token for the stalled frame.
    pace_at: Option<Instant>,
    /// Splits the control stream into frames, so upload replies are taken out before
    /// the rest goes to the session (which does not know the upload requests).
    tap: Decoder,
    ready: bool,
    /// The reason from the server's Shutdown frame, which explains the close that follows.
    shutdown: Option<String>,
}

/// A message waiting for a session, with when it was queued.
type Queued = (Op, oneshot::Sender<ReplyResult>, Instant);

pub(crate) struct Driver {
    opts: ClientOptions,
    quic: quinn::ClientConfig,
    /// Why the last handshake refused the server's certificate.
    certs: CertFailures,
    /// Paces every counted frame (shared with the upload tasks).
    pacer: SharedPacer,
    /// Messages handed off while no session was ready, oldest first.
    offline: VecDeque<Queued>,
    /// Uploads until they complete, across connections.
    uploads: Uploads,
    /// Set once the client stops for good: what new requests fail with.
    stopping: Option<ClientError>,
    cmds: mpsc::Receiver<Command>,
    close_rx: mpsc::Receiver<CloseRequest>,
    events: mpsc::Sender<Item>,
    /// Events waiting for room in `events`.
    outbox: VecDeque<Item>,
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
        certs: CertFailures,
        cmds: mpsc::Receiver<Command>,
        close_rx: mpsc::Receiver<CloseRequest>,
        events: mpsc::Sender<Item>,
        shared: Arc<Shared>,
    ) -> Self {
        Driver {
            pacer: Pacer::shared(opts.rate),
            offline: VecDeque::new(),
            uploads: Uploads::default(),
            stopping: None,
            opts,
            quic,
            certs,
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

    /// Connect (servers in order, in rounds as `connect_retry` allows), report readiness
    /// through `ready`, then keep the client connected until it is closed or stops.
    pub(crate) async fn run(mut self, ready: oneshot::Sender<Result<(), ClientError>>) {
        let mut notify = Some(ready);
        let started = Instant::now();
        let retry = self.opts.connect_retry;
        let mut round = 0u32;
        let lost = 'connect: loop {
            round += 1;
            let mut last = None;
            for i in 0..self.opts.servers.len() {
                self.server = i;
                match self.attempt(&mut notify, false).await {
                    Outcome::Closed => return,
                    Outcome::Lost { error, ready: true } => break 'connect error,
                    Outcome::Lost { error, ready: false } => {
                        if i + 1 < self.opts.servers.len() {
                            warn!(server = %self.opts.servers[i], "connect failed, trying the next server: {error}");
                        } else {
                            debug!(server = %self.opts.servers[i], "connect failed: {error}");
                        }
                        let (terminal, refused) =
                            (error.is_terminal(), matches!(error, ClientError::Refused(_)));
                        last = Some(error);
                        if terminal || notify.as_ref().is_none_or(|n| n.is_closed()) {
                            round = u32::MAX;
                            break;
                        }
                        // A refusal would be the same on every gateway of the cluster.
                        if refused {
                            break;
                        }
                    }
                }
            }
            let error = last.unwrap_or(ClientError::Closed);
            if round >= retry.attempts || started.elapsed() >= retry.max_elapsed {
                if let Some(n) = notify.take() {
                    let _ = n.send(Err(error));
                }
                return;
            }
            let delay = backoff_random(round, self.opts.backoff_min, self.opts.backoff_max);
            info!(round, ?delay, "connect failed, retrying: {error}");
            let Some(n) = notify.as_mut() else { return };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = n.closed() => return,
            }
        };
        let mut error = lost;
        loop {
            info!("disconnected: {error}");
            self.push(Item::Disconnected(error.clone()));
            if !self.opts.reconnect {
                break;
            }
            let mut attempt = 0u32;
            let mut last: Option<ClientError> = None;
            error = loop {
                attempt = attempt.saturating_add(1);
                let delay = backoff_random(attempt, self.opts.backoff_min, self.opts.backoff_max);
                debug!(attempt, ?delay, "reconnecting");
                self.push(Item::Reconnecting {
                    attempt,
                    delay,
                    error: last.take(),
                });
                if !self.idle(Some(Instant::now() + delay)).await {
                    return;
                }
                self.server = (self.server + 1) % self.opts.servers.len();
                match self.attempt(&mut None, true).await {
                    Outcome::Closed => return,
                    Outcome::Lost { error, ready: true } => break error,
                    Outcome::Lost { error, ready: false } => {
                        warn!(server = %self.opts.servers[self.server], attempt, "reconnect failed: {error}");
                        if error.is_terminal() {
                            self.stop(error).await;
                            return;
                        }
                        last = Some(error);
                    }
                }
            };
        }
        // Not reconnecting: the carried sends will never be re-sent; hand over the last
        // events, refuse commands, then end.
        self.fail_waiting(ClientError::Disconnected);
        self.idle(None).await;
    }

    /// Stop for good on a terminal error: everything waiting fails with it, the
    /// application is told, the event stream ends once delivered.
    async fn stop(&mut self, error: ClientError) {
        warn!("stopping for good: {error}");
        *self.shared.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
        self.fail_waiting(error.clone());
        self.push(Item::Stopped(error));
        self.idle(None).await;
    }

    /// Fail every message and upload waiting for a session with `error`; new ones fail
    /// with it too from now on.
    fn fail_waiting(&mut self, error: ClientError) {
        self.stopping = Some(error.clone());
        self.carried.fail_all(error.clone());
        self.resume.unacked.clear();
        for (_, tx, _) in self.offline.drain(..) {
            let _ = tx.send(Err(error.clone()));
        }
        self.uploads.fail_all(&error);
    }

    /// A command while no session is ready: messages and uploads wait (bounded), other
    /// requests fail with `Disconnected`, fire-and-forget ones are dropped.
    fn on_command_offline(&mut self, cmd: Command) {
        match cmd {
            Command::Request { op, reply } => {
                if let Some(e) = &self.stopping {
                    let _ = reply.send(Err(e.clone()));
                } else if !op.is_message() {
                    let _ = reply.send(Err(ClientError::Disconnected));
                } else if self.offline.len() >= self.opts.offline_queue {
                    let _ = reply.send(Err(ClientError::QueueFull(self.offline.len())));
                } else {
                    self.offline.push_back((op, reply, Instant::now()));
                }
            }
            Command::Upload(job) => match &self.stopping {
                Some(e) => {
                    let _ = job.done.send(Err(e.clone()));
                }
                None => self.uploads.add(*job),
            },
            Command::Typing(_) | Command::Delivered(..) | Command::Read(..) => {}
        }
    }

    /// Fail the offline messages that waited longer than `offline_timeout`.
    fn expire_offline(&mut self) {
        let Some(limit) = self.opts.offline_timeout else {
            return;
        };
        let now = Instant::now();
        while self
            .offline
            .front()
            .is_some_and(|(_, _, at)| now.duration_since(*at) >= limit)
        {
            if let Some((_, tx, _)) = self.offline.pop_front() {
                let _ = tx.send(Err(ClientError::Disconnected));
            }
        }
    }

    /// When the oldest offline message expires.
    fn offline_deadline(&self) -> Option<Instant> {
        let limit = self.opts.offline_timeout?;
        self.offline.front().map(|(_, _, at)| *at + limit)
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
            self.expire_offline();
            let give_up = match (self.carried.next_deadline(), self.offline_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
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
                    Some(cmd) => self.on_command_offline(cmd),
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
            let _ = self.certs.take();
            let link = {
                let opts = self.opts.clone();
                let open = Link::open(&server, &opts, self.quic.clone(), deadline);
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
                            Some(cmd) => self.on_command_offline(cmd),
                        },
                    }
                }
            };
            let link = match link {
                Ok(link) => link,
                Err(error) => {
                    // A refused certificate is not an unreachable server: say so, typed.
                    let error = match self.certs.take() {
                        Some(why) => ClientError::Certificate(format!("{server}: {why}")),
                        None => error,
                    };
                    return Outcome::Lost { error, ready: false };
                }
            };
            self.expire_carried();
            let mut config = ClientConfig::with_nick("");
            config.credentials = self.credentials();
            config.client_name = self.opts.client_name.clone();
            config.request_timeout_ms = self.opts.effective_request_timeout().as_millis() as u64;
            config.client_id_base = self.client_id_base;
            config.resume = self.resume.clone();
            let mut conn = Conn {
                link,
                session: ClientSession::new(config, self.now_ms()),
                pending: HashMap::new(),
                stalled: None,
                pace_at: None,
                tap: Decoder::new(garou_protocol::DEFAULT_MAX_FRAME),
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
            if c.ready {
                self.uploads.start_queued(&mut c.link, &self.pacer);
                self.intake_offline(c);
            }
            self.flush(c);
            self.deliver();
            let lane_tx = match &c.stalled {
                Some(st) if st.charged => c.link.lane(st.t.lane),
                _ => None,
            };
            let pace_at = c.stalled.as_ref().filter(|st| !st.charged).and(c.pace_at);
            let timer = c.session.poll_timeout().map(|ms| self.instant(ms));
            // New commands only once the offline queue went out and nothing waits.
            let take_cmds = c.stalled.is_none() && (!c.ready || self.offline.is_empty());
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
                permit = async { lane_tx.as_ref().expect("guarded").reserve().await }, if lane_tx.is_some() => {
                    let st = c.stalled.take().expect("stalled frame");
                    if let Ok(permit) = permit {
                        permit.send(st.t.data);
                    }
                }
                _ = sleep_until(pace_at.unwrap_or_else(far_future)), if pace_at.is_some() => {
                    c.pace_at = None;
                }
                done = self.uploads.next_done() => {
                    if let Err(error) = self.uploads.chunks_done(done, &mut c.link, &self.pacer) {
                        warn!("upload stream failed: {error}");
                    }
                }
                done = self.close_rx.recv() => {
                    self.close(c).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return Outcome::Closed;
                }
                cmd = self.cmds.recv(), if take_cmds => match cmd {
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

    /// Hand the messages queued while offline to the session, in order, as fast as the
    /// pacer lets them out (so their request timeouts start when they can be sent).
    fn intake_offline(&mut self, c: &mut Conn) {
        self.expire_offline();
        while c.stalled.is_none() {
            let Some((op, reply, _)) = self.offline.pop_front() else {
                return;
            };
            let req = op.issue(&mut c.session, self.now_ms());
            c.pending.insert(req, reply);
            self.flush(c);
        }
    }

    /// Move the session's frames into the lane queues until one is full or the pacer
    /// has no token. Handshake frames and stream headers are not counted by the server.
    fn flush(&mut self, c: &mut Conn) {
        let counted = c.session.is_ready();
        loop {
            let (t, mut charged) = match c.stalled.take() {
                Some(st) => (st.t, st.charged),
                None => match c.session.poll_transmit() {
                    Some(t) => (t, false),
                    None => return,
                },
            };
            let header = t.data.first() == Some(&(garou_protocol::FrameType::StreamHeader as u8));
            if !charged && counted && !header {
                let now = Instant::now();
                let mut pacer = self.pacer.lock().unwrap_or_else(|e| e.into_inner());
                if !pacer.try_take(now) {
                    if t.lane == Lane::Datagram {
                        continue; // lossy anyway: over the rate it is dropped
                    }
                    c.pace_at = Some(pacer.ready_at(now));
                    c.stalled = Some(Stall { t, charged: false });
                    return;
                }
            }
            charged = true;
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
                    c.stalled = Some(Stall {
                        t: Transmit { lane: t.lane, data },
                        charged,
                    });
                    return;
                }
                // The writer died with the connection; `closed()` reports it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
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
            Inbound::Data(CONTROL, data) => {
                c.tap.push(&data);
                loop {
                    let frame = match c.tap.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(SessionError::Decode(e)),
                    };
                    if let Some(reply) = self.uploads.intercept(&frame) {
                        self.uploads.on_reply(reply, &mut c.link, &self.pacer);
                        continue;
                    }
                    if let Err(e) = c.session.on_stream_data(CONTROL, &frame.to_bytes(), now) {
                        break Err(e);
                    }
                }
            }
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
            // Until the session is ready, messages wait in the offline queue (a failed
            // handshake would fail them otherwise).
            Command::Request { op, reply } if !c.ready && op.is_message() => {
                self.on_command_offline(Command::Request { op, reply })
            }
            Command::Request { op, reply } => {
                let req = op.issue(&mut c.session, self.now_ms());
                c.pending.insert(req, reply);
            }
            Command::Upload(job) => self.uploads.add(*job),
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
                        ticket: c.session.ticket().to_owned(),
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
                Event::Welcome(_) => {
                    let mut id = self.shared.identity();
                    id.ticket = c.session.ticket().to_owned();
                    self.shared.set_identity(id);
                    self.push(ClientEvent::Session(ev));
                }
                Event::Throttled { retry_after_ms } => {
                    let mut pacer = self.pacer.lock().unwrap_or_else(|e| e.into_inner());
                    pacer.throttled(Duration::from_millis(u64::from(retry_after_ms)), Instant::now());
                    warn!(
                        retry_after_ms,
                        rate = pacer.rate(),
                        "throttled by the server: pacing slower"
                    );
                    drop(pacer);
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
        self.uploads.connection_lost();
        // Sends carried over keep their reply channel; those of an earlier connection that
        // never got ready keep their original deadline.
        let give_up = self
            .opts
            .offline_timeout
            .map_or_else(far_future, |t| Instant::now() + t);
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
        self.uploads.fail_all(&ClientError::Closed);
        self.uploads.connection_lost();
        while let Ok(cmd) = self.cmds.try_recv() {
            self.on_command(c, cmd);
        }
        let flush_all = async {
            while let Some(t) = c
                .stalled
                .take()
                .map(|st| st.t)
                .or_else(|| c.session.poll_transmit())
            {
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
        self.fail_waiting(ClientError::Closed);
        self.shared.connected.store(false, Ordering::Release);
        if c.link.owns_endpoint {
            let _ = tokio::time::timeout(DRAIN_WAIT, c.link.endpoint.wait_idle()).await;
        }
    }

    /// Queue an event for the application (dropped if it no longer listens).
    fn push(&mut self, ev: impl Into<Item>) {
        if !self.events_open {
            return;
        }
        let ev = ev.into();
        // Keep only the latest of consecutive reconnect notices, so a client that is not
        // read while the server stays away does not pile them up.
        if let (Item::Reconnecting { .. }, Some(Item::Reconnecting { .. })) = (&ev, self.outbox.back()) {
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

    fn deliver_one(&mut self, permit: Option<mpsc::OwnedPermit<Item>>) {
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
/// authentication, nick or ban error code, or because a newer session of this client took
/// it over (`SessionReplaced`: reconnecting would only take it back), is a refusal
/// (terminal but for the nick).
fn lost_reason(conn: &quinn::Connection) -> ClientError {
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => {
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            let code = close.error_code.into_inner();
            match u16::try_from(code).ok().and_then(ErrorCode::from_u16) {
                Some(
                    c @ (ErrorCode::AuthFailed
                    | ErrorCode::NickUnavailable
                    | ErrorCode::Banned
                    | ErrorCode::SessionReplaced),
                ) => ClientError::Refused(Failure {
                    code: c,
                    message: reason,
                }),
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
