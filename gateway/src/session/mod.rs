//! Drives one client session over any [`Connection`]: written once for every transport.
//!
//! Handshake on the control stream (Hello -> HelloAck -> Auth -> AuthOk -> ShardAssignment),
//! then concurrently, in the session's one task: the control stream (ping/pong, idle
//! timeout), accepting client uni streams (commands, acks: each read in a task of its own),
//! datagrams (typing), and the shutdown signal. The server->client side is
//! [`crate::conn::Conn`]: a bounded queue and writer task per lane.

pub mod rate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use garou_protocol::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::config::ServerConfig;
use crate::conn::{Closing, Conn, Ctl, Wire};
use crate::hub::Hub;
use crate::limits::{BufferRefusal, ConnBuffers, LimitStats, Limits, Permit};
use crate::transport::{Connection, RecvStream, SendStream};
use crate::uploads;
use rate::RateGate;

/// Frames queued on a control stream before the client counts as a slow consumer.
const CONTROL_QUEUE: usize = 1024;
/// How long a closing connection waits for its last frame to reach the client.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// Frames a writer takes from its queue per write.
const WRITE_BATCH: usize = 64;

/// Why a session ended; turned into an Error frame and a close code.
#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error("{1}")]
    Protocol(ErrorCode, String),
    #[error("transport: {0}")]
    Transport(#[from] crate::transport::TransportError),
    #[error("connection closed")]
    Closed,
}

impl From<DecodeError> for Fault {
    fn from(e: DecodeError) -> Self {
        let code = match e {
            DecodeError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::Payload { .. } => ErrorCode::BadPayload,
            DecodeError::UnknownType(_) | DecodeError::Truncated(_) => ErrorCode::BadFrame,
        };
        Fault::Protocol(code, e.to_string())
    }
}

impl From<BufferRefusal> for Fault {
    fn from(e: BufferRefusal) -> Self {
        Fault::Protocol(ErrorCode::LimitReached, e.to_string())
    }
}

/// Reads whole messages from one stream. The bytes of a frame not yet whole are charged
/// to the connection's [`ConnBuffers`] (its cap across streams, and the gateway-wide
/// budget) before the next read, and released as frames complete or when the reader drops.
struct FrameReader<R> {
    recv: R,
    decoder: Decoder,
    buffers: Arc<ConnBuffers>,
    /// Bytes charged to `buffers` for what `decoder` holds.
    charged: usize,
}

impl<R> Drop for FrameReader<R> {
    fn drop(&mut self) {
        self.buffers.release(self.charged);
    }
}

impl<R: RecvStream> FrameReader<R> {
    fn new(recv: R, max_frame: usize, buffers: Arc<ConnBuffers>) -> Self {
        FrameReader {
            recv,
            decoder: Decoder::new(max_frame),
            buffers,
            charged: 0,
        }
    }

    /// Bring the charge in line with what the decoder holds. Only called before waiting
    /// for more bytes: a chunk of whole frames leaves nothing pending and costs no atomic
    /// operation; a partial frame is charged once per chunk received.
    fn account(&mut self) -> Result<(), BufferRefusal> {
        let pending = self.decoder.pending();
        if pending > self.charged {
            self.buffers.charge(pending - self.charged)?;
        } else if pending < self.charged {
            self.buffers.release(self.charged - pending);
        }
        self.charged = pending;
        Ok(())
    }

    /// The next message, `None` at a clean end of stream.
    async fn next(&mut self) -> Result<Option<Message>, Fault> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                crate::metrics::frame_in(frame.ty);
                return Ok(Some(Message::decode(&frame)?));
            }
            self.account()?;
            match self.recv.read_chunk().await? {
                Some(chunk) => self.decoder.push(&chunk),
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Lane opener and datagram sender over a concrete transport.
struct WireImpl<C: Connection> {
    conn: Arc<C>,
    limits: Arc<Limits>,
}

impl<C: Connection> Wire for WireImpl<C> {
    fn open_lane(&self, kind: StreamKind, rx: mpsc::Receiver<Bytes>) {
        let conn = self.conn.clone();
        tokio::spawn(
            async move {
                let stream = match conn.open_uni().await {
                    Ok(s) => s,
                    Err(e) => return debug!(error = %e, "could not open lane"),
                };
                let header = Message::from(StreamHeader { kind }).encode();
                if let Err(e) = write_lane(stream, header, rx).await {
                    debug!(error = %e, "lane writer ended");
                }
            }
            .in_current_span(),
        );
    }
    fn send_datagram(&self, data: Bytes) {
        if !self.conn.send_datagram(data) {
            self.dropped_datagram();
        }
    }
    fn dropped_datagram(&self) {
        LimitStats::bump(&self.limits.stats.droppable_dropped);
    }
    fn slow_consumer(&self) {
        crate::metrics::drop_slow_consumer();
        LimitStats::bump(&self.limits.stats.slow_consumers);
    }
    fn close(&self, code: ErrorCode, reason: &str) {
        self.conn.close(code.as_u16(), reason);
    }
}

/// Drain a lane queue onto its stream in batches; finish the stream when the queue closes.
async fn write_lane<S: SendStream>(
    mut stream: S,
    header: Bytes,
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<(), crate::transport::TransportError> {
    // Grown on demand (at most WRITE_BATCH): an idle lane holds no batch buffer.
    let mut batch = vec![header];
    loop {
        rx.recv_many(&mut batch, WRITE_BATCH).await;
        if batch.is_empty() {
            stream.finish_and_wait().await;
            return Ok(());
        }
        crate::metrics::frames_out(&batch);
        stream.write_chunks(&mut batch).await?;
        batch.clear();
    }
}

/// Drain the control queue onto the control stream; close the connection when told.
async fn write_control<C: Connection>(conn: Arc<C>, mut send: C::Send, mut rx: mpsc::Receiver<Ctl>) {
    // Grown on demand (at most WRITE_BATCH each): idle sessions are the common case, and
    // preallocated batches were 6 KB of every session's memory.
    let mut batch: Vec<Ctl> = Vec::new();
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        if rx.recv_many(&mut batch, WRITE_BATCH).await == 0 {
            return;
        }
        let mut close = None;
        for ctl in batch.drain(..) {
            match ctl {
                Ctl::Frame(b) if close.is_none() => chunks.push(b),
                Ctl::Frame(_) => {}
                Ctl::Close(c) => {
                    let Closing { last, code, reason } = *c;
                    chunks.extend(last);
                    close.get_or_insert((code, reason));
                }
            }
        }
        crate::metrics::frames_out(&chunks);
        if let Some((code, reason)) = close {
            // Let the client read why, but never wait on it for long.
            let _ = tokio::time::timeout(CLOSE_FLUSH, async {
                if send.write_chunks(&mut chunks).await.is_ok() {
                    send.finish_and_wait().await;
                }
            })
            .await;
            conn.close(code.as_u16(), &reason);
            return;
        }
        if send.write_chunks(&mut chunks).await.is_err() {
            return;
        }
        chunks.clear();
    }
}

/// Run one session to its end. Never panics on client input; every failure closes only
/// this connection.
///
/// `permit` is the connection's admission slot (max_connections); it is freed when this
/// returns.
pub async fn run<C: Connection>(
    conn: C,
    hub: Arc<Hub>,
    cfg: Arc<ServerConfig>,
    shutdown: CancellationToken,
    permit: Permit,
) {
    let conn = Arc::new(conn);
    let limits = permit.limits().clone();
    let buffers = ConnBuffers::new(limits.clone());
    let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("session", id = session, transport = conn.kind(), remote = %conn.remote(), user = tracing::field::Empty);
    async move {
        let _counted = crate::metrics::connection(conn.kind());
        let started = std::time::Instant::now();
        // The control stream's sending half, from the moment it is accepted until the
        // control writer takes it: a refusal is written there before the close.
        let mut control = None;
        let handshake = tokio::time::timeout(
            cfg.handshake_timeout(),
            handshake(&conn, &hub, &cfg, session, (&limits, &buffers), &mut control),
        )
        .await;
        let (handle, control_rx, ticket) = match handshake {
            Ok(Ok(v)) => v,
            Ok(Err(Fault::Protocol(code, reason))) => {
                crate::metrics::handshake(crate::metrics::Handshake::Refused(code), started.elapsed());
                info!(?code, %reason, "handshake refused");
                return refuse(&*conn, control, code, &reason).await;
            }
            Ok(Err(e)) => {
                crate::metrics::handshake(crate::metrics::Handshake::Failed, started.elapsed());
                return debug!(error = %e, "handshake failed");
            }
            Err(_) => {
                crate::metrics::handshake(crate::metrics::Handshake::Timeout, started.elapsed());
                info!("handshake timed out");
                return refuse(&*conn, control, ErrorCode::OutOfState, "handshake timed out").await;
            }
        };
        crate::metrics::handshake(crate::metrics::Handshake::Ok, started.elapsed());
        hub.peers().insert(handle.id, conn.remote());
        tracing::Span::current().record("user", handle.user);
        let result = serve(
            &conn,
            &hub,
            &cfg,
            (&limits, &buffers),
            &handle,
            control_rx,
            &shutdown,
        )
        .await;
        // Ended without a fault (closed, or the server shutting down): nothing to resume.
        // Lost (idle timeout, transport error) or closed for a fault: its resume token
        // stays valid a while.
        hub.session_ended(&handle, result.is_ok());
        match result {
            Err(Fault::Protocol(code, reason)) => {
                warn!(?code, %reason, "closing misbehaving session");
                handle.kill(code, &reason);
                // Wait (bounded) for the writer to deliver the Error frame and close.
                let _ = tokio::time::timeout(CLOSE_FLUSH * 2, conn.closed()).await;
            }
            Err(e) => debug!(error = %e, "session ended"),
            Ok(()) => debug!("session ended"),
        }
        hub.uploads().revoke(&ticket);
        hub.disconnect(&handle);
        conn.close(0, "bye");
        drop(permit);
    }
    .instrument(span)
    .await
}

/// Refuse a connection whose handshake failed: the Error frame saying why on the control
/// stream, when there is one (bounded wait for the client to receive it), then the close.
async fn refuse<C: Connection>(conn: &C, control: Option<C::Send>, code: ErrorCode, reason: &str) {
    if let Some(mut send) = control {
        let mut frames = [Error::fatal(code, reason).encode()];
        let _ = tokio::time::timeout(CLOSE_FLUSH, async {
            if send.write_chunks(&mut frames).await.is_ok() {
                send.finish_and_wait().await;
            }
        })
        .await;
    }
    conn.close(code.as_u16(), reason);
}

/// The session's handle, its control stream reader, and its download ticket.
type Handshaken<C> = (Arc<Conn>, FrameReader<<C as Connection>::Recv>, String);

/// Hello -> HelloAck -> Auth -> AuthOk, ShardAssignment, Welcome. `control` holds the
/// control stream's sending half while this runs (so a refusal or a timeout can still
/// write there); on success it is handed to the control writer.
async fn handshake<C: Connection>(
    conn: &Arc<C>,
    hub: &Arc<Hub>,
    cfg: &ServerConfig,
    session: u64,
    (limits, buffers): (&Arc<Limits>, &Arc<ConnBuffers>),
    control: &mut Option<C::Send>,
) -> Result<Handshaken<C>, Fault> {
    let (send, recv) = conn.accept_bi().await?;
    let send = control.insert(send);
    // Until AuthOk, frames are small (Hello, Auth): an unauthenticated peer cannot make
    // us buffer max_frame bytes.
    let pre_auth = cfg.limits.pre_auth_max_frame.min(cfg.max_frame);
    let mut reader = FrameReader::new(recv, pre_auth, buffers.clone());
    let hello = match reader.next().await? {
        Some(Message::Hello(h)) => h,
        Some(m) => {
            return Err(Fault::Protocol(
                ErrorCode::OutOfState,
                format!("expected Hello, got {:?}", m.frame_type()),
            ))
        }
        None => return Err(Fault::Closed),
    };
    if hello.version != PROTOCOL_VERSION {
        let reason = format!(
            "protocol version {} is not supported (this server speaks {PROTOCOL_VERSION})",
            hello.version
        );
        return Err(Fault::Protocol(ErrorCode::UnsupportedVersion, reason));
    }
    debug!(client = %hello.client, "hello");
    let ack = HelloAck {
        session,
        version: PROTOCOL_VERSION,
        server: concat!("garou/", env!("CARGO_PKG_VERSION")).into(),
        max_frame: cfg.max_frame as u32,
        heartbeat_ms: (cfg.heartbeat_secs * 1000) as u32,
    };
    send.write_chunks(&mut [Message::from(ack).encode()]).await?;
    let auth = match reader.next().await? {
        Some(Message::Auth(a)) => a,
        Some(m) => {
            return Err(Fault::Protocol(
                ErrorCode::OutOfState,
                format!("expected Auth, got {:?}", m.frame_type()),
            ))
        }
        None => return Err(Fault::Closed),
    };
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let wire: Arc<dyn Wire> = Arc::new(WireImpl {
        conn: conn.clone(),
        limits: limits.clone(),
    });
    let login = hub.login_resuming(&auth.credentials, &hello.resume, |user| {
        Arc::new(Conn::new(
            hub.next_id(),
            user,
            conn.kind(),
            control_tx,
            wire,
            cfg.stream.lane_queue,
            cfg.enable_datagrams,
        ))
    });
    let (handle, nick) = match login {
        Ok(v) => v,
        Err((code, reason)) => {
            // AuthError says why (instead of an Error frame); nothing more is written.
            let mut send = control.take().expect("the control stream is held");
            let mut frames = [Message::from(AuthError {
                code,
                reason: reason.clone(),
            })
            .encode()];
            send.write_chunks(&mut frames).await?;
            let _ = tokio::time::timeout(CLOSE_FLUSH, send.finish_and_wait()).await;
            return Err(Fault::Protocol(code, reason));
        }
    };
    info!(user = handle.user, %nick, "authenticated");
    let send = control.take().expect("the control stream is held");
    reader.decoder.set_max_frame(cfg.max_frame);
    tokio::spawn(write_control(conn.clone(), send, control_rx).in_current_span());
    handle.control(
        &AuthOk {
            user: handle.user,
            nick: nick.clone(),
        }
        .into(),
    );
    handle.control(
        &ShardAssignment {
            num_shards: cfg.shard.num_shards,
        }
        .into(),
    );
    let ticket = hub.uploads().issue(handle.user);
    handle.control(
        &Welcome {
            message: format!("Welcome to garou, {nick}!"),
            ticket: ticket.clone(),
            resume_token: hub.issue_resume_token(&handle),
        }
        .into(),
    );
    hub.announce_online(&handle);
    Ok((handle, reader, ticket))
}

async fn serve<C: Connection>(
    conn: &Arc<C>,
    hub: &Arc<Hub>,
    cfg: &Arc<ServerConfig>,
    (limits, buffers): (&Arc<Limits>, &Arc<ConnBuffers>),
    handle: &Arc<Conn>,
    control: FrameReader<C::Recv>,
    shutdown: &CancellationToken,
) -> Result<(), Fault> {
    // The session's own bucket, and the ones all sessions of its user and its IP share.
    let shared = (
        limits.rates.user(handle.user),
        limits.rates.ip(conn.remote().ip()),
    );
    let gate = Arc::new(RateGate::new(&cfg.limits, shared));
    // Stream readers report a protocol fault here; the first one ends the session.
    let faults = Arc::new(FirstFault::default());
    // The client's uni streams and its datagrams are polled by this task (no task of their
    // own: an idle session is one task, plus its control writer). Each accepted stream gets
    // a reader task; a datagram is handled right here.
    let accepts = futures::stream::unfold(conn.clone(), |c| async move {
        c.accept_uni().await.ok().map(|recv| (recv, c))
    })
    .fuse();
    let datagrams = futures::stream::unfold(conn.clone(), |c| async move {
        c.read_datagram().await.ok().map(|d| (d, c))
    })
    .fuse();
    tokio::pin!(accepts, datagrams);
    let (mut accepting, mut receiving) = (true, cfg.enable_datagrams);
    let max_datagram = cfg.limits.max_datagram.min(cfg.max_frame);
    // The control stream's messages as a stream too: like the two above, its future lives
    // across the loop's turns, so a datagram arriving never cancels a read or an admission
    // half done. No control message (ping) for `idle` ends the session.
    let (g, h, st) = (&*gate, &**handle, &limits.stats);
    let control = futures::stream::unfold(control, move |mut c| async move {
        let msg = next_admitted(&mut c, g, h, st).await;
        Some((msg, c))
    });
    tokio::pin!(control);
    let idle = cfg.idle_timeout();
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        tokio::select! {
            () = &mut idle_timer => break Err(Fault::Protocol(ErrorCode::OutOfState, "idle timeout: no ping".into())),
            msg = control.next() => {
                idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                match msg {
                    Some(Err(f)) => break Err(f),
                    None | Some(Ok(None)) => break Ok(()),
                    Some(Ok(Some(Message::Ping(p)))) => handle.control(&Pong { nonce: p.nonce }.into()),
                    Some(Ok(Some(Message::Pong(_)))) => {}
                    Some(Ok(Some(m))) => break Err(Fault::Protocol(
                        ErrorCode::OutOfState,
                        format!("{:?} is not allowed on the control stream", m.frame_type()),
                    )),
                }
            },
            recv = accepts.next(), if accepting => match recv {
                Some(recv) => spawn_reader(recv, hub, cfg, (limits, buffers), handle, (&gate, &faults)),
                None => accepting = false,
            },
            d = datagrams.next(), if receiving => match d {
                Some(d) => datagram(&d, max_datagram, hub, handle, (&gate, &limits.stats)),
                None => receiving = false,
            },
            f = faults.wait() => break Err(f),
            _ = conn.closed() => break Ok(()),
            _ = shutdown.cancelled() => {
                handle.close_with(
                    Shutdown { reason: "server shutting down".into() }.into(),
                    ErrorCode::ShuttingDown,
                    "server shutting down",
                );
                // The client closes when it has read Shutdown; the writer closes after a bound.
                let _ = tokio::time::timeout(CLOSE_FLUSH * 2, conn.closed()).await;
                break Ok(());
            }
        }
    }
}

/// A reader task for a uni stream the client opened; its first fault ends the session.
fn spawn_reader<R: RecvStream>(
    recv: R,
    hub: &Arc<Hub>,
    cfg: &Arc<ServerConfig>,
    (limits, buffers): (&Arc<Limits>, &Arc<ConnBuffers>),
    handle: &Arc<Conn>,
    (gate, faults): (&Arc<RateGate>, &Arc<FirstFault>),
) {
    let (hub, cfg, handle, faults) = (hub.clone(), cfg.clone(), handle.clone(), faults.clone());
    let (limits, gate) = (limits.clone(), gate.clone());
    let reader = FrameReader::new(recv, cfg.max_frame, buffers.clone());
    tokio::spawn(
        async move {
            let rate = (&*gate, &limits.stats);
            if let Err(f) = read_client_stream(reader, &hub, &cfg, &handle, rate).await {
                faults.report(f);
            }
        }
        .in_current_span(),
    );
}

/// One datagram from the client. Datagrams are best effort: a bad, oversized or over-rate
/// one is dropped and counted, never fatal.
fn datagram(d: &Bytes, max: usize, hub: &Hub, handle: &Conn, (gate, stats): (&RateGate, &LimitStats)) {
    if d.len() > max {
        return LimitStats::bump(&stats.datagrams_oversized);
    }
    match Message::decode_datagram(d, max) {
        Ok(Message::Typing(t)) if gate.try_take() => hub.typing(handle, &t.room),
        Ok(Message::Typing(_)) => LimitStats::bump(&stats.datagrams_over_rate),
        _ => LimitStats::bump(&stats.datagrams_malformed),
    }
}

/// The first protocol fault any of a session's stream readers hit (later ones are moot:
/// the first ends the session). A slot and a [`Notify`](tokio::sync::Notify) rather than a
/// channel: a tokio channel allocates a 32-slot block up front, in every session.
#[derive(Default)]
struct FirstFault {
    fault: parking_lot::Mutex<Option<Fault>>,
    notify: tokio::sync::Notify,
}

impl FirstFault {
    fn report(&self, fault: Fault) {
        let mut slot = self.fault.lock();
        if slot.is_none() {
            *slot = Some(fault);
            self.notify.notify_one();
        }
    }

    /// Resolves with the first fault once one is reported.
    async fn wait(&self) -> Fault {
        loop {
            self.notify.notified().await;
            if let Some(f) = self.fault.lock().take() {
                return f;
            }
        }
    }
}

/// The next control-stream message, once the rate gate lets it through.
async fn next_admitted<R: RecvStream>(
    control: &mut FrameReader<R>,
    gate: &RateGate,
    handle: &Conn,
    stats: &LimitStats,
) -> Result<Option<Message>, Fault> {
    let msg = control.next().await?;
    if msg.is_some() {
        admit(gate, handle, stats).await?;
    }
    Ok(msg)
}

/// Take a rate token for one client frame (waiting, throttling, or closing).
async fn admit(gate: &RateGate, handle: &Conn, stats: &LimitStats) -> Result<(), Fault> {
    gate.admit(handle, stats)
        .await
        .map_err(|reason| Fault::Protocol(ErrorCode::RateLimited, reason))
}

/// One client->server uni stream: a StreamHeader, then commands, acks or upload chunks.
/// Every frame after the header takes a token from the session's rate gate first.
async fn read_client_stream<R: RecvStream>(
    mut reader: FrameReader<R>,
    hub: &Hub,
    cfg: &ServerConfig,
    handle: &Arc<Conn>,
    (gate, stats): (&RateGate, &LimitStats),
) -> Result<(), Fault> {
    let kind = match reader.next().await? {
        Some(Message::StreamHeader(h)) => h.kind,
        Some(m) => {
            return Err(Fault::Protocol(
                ErrorCode::OutOfState,
                format!("client stream began with {:?}, not StreamHeader", m.frame_type()),
            ))
        }
        None => return Ok(()),
    };
    match kind {
        StreamKind::Commands => {
            while let Some(msg) = reader.next().await? {
                admit(gate, handle, stats).await?;
                if msg.request_id().is_none() {
                    return Err(Fault::Protocol(
                        ErrorCode::OutOfState,
                        format!("{:?} is not a command", msg.frame_type()),
                    ));
                }
                // A re-sent message the room's window may have forgotten: the store decides
                // (its original ack, or publish it as new). No store read while the room's
                // window holds every message it ever had.
                if hub.may_have_forgotten(handle, &msg) {
                    if let Some(reply) = Box::pin(hub.stored_ack(handle, &msg)).await {
                        handle.control(&reply);
                        continue;
                    }
                }
                // The store-backed commands are boxed: their futures are large, and this
                // task lives as long as the session (per-connection memory).
                let reply = match msg {
                    Message::History(h) => Some(Box::pin(hub.history(handle, h, cfg.max_frame)).await),
                    Message::UploadStart(m) => Some(Box::pin(uploads::start(hub, cfg, handle.user, m)).await),
                    Message::UploadComplete(m) => {
                        Some(Box::pin(uploads::complete(hub, cfg, handle.user, m)).await)
                    }
                    // The attachment is checked (and bound to the room) before the hub sees it.
                    Message::Send(m) if m.attachment.is_some() => {
                        let id = m.attachment.as_deref().unwrap_or_default();
                        match Box::pin(uploads::attach(hub, handle.user, &m.room, id)).await {
                            Ok(()) => hub.command(handle, Message::Send(m)),
                            Err((code, message)) => Some(Error::reply(m.req, code, message)),
                        }
                    }
                    msg => hub.command(handle, msg),
                };
                if let Some(reply) = reply {
                    handle.control(&reply);
                }
            }
        }
        StreamKind::Acks => {
            while let Some(msg) = reader.next().await? {
                admit(gate, handle, stats).await?;
                match msg {
                    Message::Delivered(d) => hub.receipt(handle, &d.room, d.id, false),
                    Message::Read(r) => hub.receipt(handle, &r.room, r.id, true),
                    m => {
                        return Err(Fault::Protocol(
                            ErrorCode::OutOfState,
                            format!("{:?} on the acks stream", m.frame_type()),
                        ))
                    }
                }
            }
        }
        StreamKind::Upload => {
            // A refused chunk is answered with an Error frame; the stream goes on.
            let mut writer = uploads::ChunkWriter::new(hub, handle.user);
            let result = Box::pin(async {
                while let Some(msg) = reader.next().await? {
                    admit(gate, handle, stats).await?;
                    match msg {
                        Message::UploadChunk(c) => {
                            if let Some(error) = writer.chunk(hub, cfg, c).await {
                                handle.control(&error);
                            }
                        }
                        m => {
                            return Err(Fault::Protocol(
                                ErrorCode::OutOfState,
                                format!("{:?} on an upload stream", m.frame_type()),
                            ))
                        }
                    }
                }
                Ok(())
            })
            .await;
            Box::pin(writer.record(hub, cfg)).await;
            result?;
        }
        other => {
            return Err(Fault::Protocol(
                ErrorCode::OutOfState,
                format!("clients may not open {other:?} streams"),
            ))
        }
    }
    Ok(())
}
