//! WebSocket fallback (axum) for browsers without WebTransport.
//!
//! One WebSocket carries the whole stream model, each binary message tagged with its lane
//! (see [`garou_protocol::ws`]): the adapter demultiplexes incoming messages into virtual
//! streams (bounded channels) and multiplexes outgoing ones through a single writer task,
//! so the session above sees the same [`Connection`] as with QUIC. Backpressure is kept:
//! a full virtual stream stalls the socket reader (TCP pushes back on the client), and
//! writers await room in the bounded outgoing queue. Memory per socket is bounded: the
//! outgoing queue holds at most [`LANE_QUEUE`] messages, datagrams are dropped rather than
//! queued when it is full, the writer gives up on a close even mid-write, and a client
//! may have at most `stream.max_concurrent_streams` lanes open (more closes with
//! LimitReached). Incoming bytes not yet read by the session hold permits of a
//! per-socket byte budget: when it is spent (the session is paused by the rate limit, or
//! slow), the socket is not read further and TCP pushes back on the client, as QUIC flow
//! control does; a datagram that does not fit is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use garou_protocol::ws;
use parking_lot::Mutex;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{Connection, RecvStream, SendStream, TransportError};

/// Messages queued per virtual stream (and on the outgoing socket).
const LANE_QUEUE: usize = 64;

/// Incoming bytes and the budget permit they hold until the session reads them.
type Chunk = (Bytes, OwnedSemaphorePermit);
/// WebSocket close codes 4000-4999 are the application's: 4000 + Garou error code.
const CLOSE_BASE: u16 = 4000;
const BAD_FRAME: garou_protocol::ErrorCode = garou_protocol::ErrorCode::BadFrame;

enum Out {
    Msg(Vec<u8>),
    /// Send a close frame with this WebSocket close code and reason, then stop.
    Close(u16, String),
}

/// The close a socket was asked for: not a queue item, so asking never depends on room in
/// a queue a stalled client keeps full. The writer sends it once the urgent queue (the
/// control lane: the Error frame saying why) is empty.
#[derive(Default)]
struct Closer {
    close: Mutex<Option<(u16, String)>>,
    asked: tokio::sync::Notify,
}

impl Closer {
    /// Ask for a close (the first one asked wins); the socket is dropped regardless after
    /// [`CLOSE_GRACE`].
    fn ask(&self, code: u16, reason: String, closed: &CancellationToken) {
        {
            let mut slot = self.close.lock();
            if slot.is_some() {
                return;
            }
            *slot = Some((code, reason));
        }
        self.asked.notify_one();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return closed.cancel();
        };
        let closed = closed.clone();
        rt.spawn(async move {
            tokio::select! {
                _ = closed.cancelled() => {}
                _ = tokio::time::sleep(CLOSE_GRACE) => closed.cancel(),
            }
        });
    }
}

/// WebSocket close code 1009: a message larger than the socket accepts (RFC 6455).
const MESSAGE_TOO_BIG: u16 = 1009;

/// Why the reader stopped reading a client.
enum ReadFault {
    /// A protocol fault: close with 4000 + code.
    Protocol(garou_protocol::ErrorCode, String),
    /// A message over the socket's size limit (tungstenite refused it): close with 1009.
    TooBig(String),
}

/// True when tungstenite refused a message (or frame) over the configured size.
fn is_too_big(e: axum::Error) -> Option<String> {
    use tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(e) if matches!(*e, WsError::Capacity(_)) => Some(e.to_string()),
        _ => None,
    }
}

/// Server-opened stream tags in use.
struct TagPool {
    used: [bool; 256],
}

impl Default for TagPool {
    fn default() -> Self {
        TagPool { used: [false; 256] }
    }
}

impl TagPool {
    fn take(&mut self) -> Option<u8> {
        (ws::SERVER_FIRST..=ws::SERVER_LAST)
            .find(|&t| !self.used[t as usize])
            .inspect(|&t| {
                self.used[t as usize] = true;
            })
    }
    fn put(&mut self, tag: u8) {
        self.used[tag as usize] = false;
    }
}

/// How long a close may take to reach a client before the socket is dropped regardless
/// (a client that stopped reading would otherwise hold the writer mid-write forever).
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The sending half of a virtual stream.
pub struct WsSend {
    tag: u8,
    out: mpsc::Sender<Out>,
    pool: Option<Arc<Mutex<TagPool>>>,
}

impl SendStream for WsSend {
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), TransportError> {
        if chunks.iter().all(|c| c.is_empty()) {
            return Ok(()); // an empty message would mean "finish"
        }
        self.out
            .send(Out::Msg(ws::message(self.tag, chunks)))
            .await
            .map_err(|_| TransportError("websocket closed".into()))
    }
    async fn finish_and_wait(&mut self) {
        if self.tag != ws::CONTROL {
            let _ = self.out.send(Out::Msg(vec![self.tag])).await;
        }
        if let Some(pool) = self.pool.take() {
            pool.lock().put(self.tag);
        }
    }
}

impl Drop for WsSend {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            // Dropped without finishing: tell the client the stream is over, free the tag.
            let _ = self.out.try_send(Out::Msg(vec![self.tag]));
            pool.lock().put(self.tag);
        }
    }
}

/// The receiving half of a virtual stream.
pub struct WsRecv(mpsc::Receiver<Chunk>);

impl RecvStream for WsRecv {
    async fn read_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        // The permit is released here: the bytes now belong to the session's decoder.
        Ok(self.0.recv().await.map(|(bytes, _permit)| bytes))
    }
}

/// A WebSocket seen through [`Connection`].
pub struct WsConnection {
    remote: SocketAddr,
    out: mpsc::Sender<Out>,
    /// The control lane and the close: written before anything queued on `out`, so a
    /// client whose stream lanes are backed up still gets its Error frame and close first.
    urgent: mpsc::Sender<Out>,
    closer: Arc<Closer>,
    control: tokio::sync::Mutex<Option<mpsc::Receiver<Chunk>>>,
    uni: tokio::sync::Mutex<mpsc::Receiver<WsRecv>>,
    datagrams: tokio::sync::Mutex<mpsc::Receiver<Chunk>>,
    pool: Arc<Mutex<TagPool>>,
    closed: CancellationToken,
}

impl WsConnection {
    /// Take over an upgraded socket; spawns its reader and writer tasks.
    /// `budget`: bytes received and not yet read by the session, at most (must exceed the
    /// largest message the socket accepts).
    pub fn new(
        socket: WebSocket,
        remote: SocketAddr,
        max_client_lanes: usize,
        budget: usize,
    ) -> WsConnection {
        let (sink, stream) = socket.split();
        let (out_tx, out_rx) = mpsc::channel(LANE_QUEUE);
        let (urgent_tx, urgent_rx) = mpsc::channel(LANE_QUEUE);
        let (control_tx, control_rx) = mpsc::channel(LANE_QUEUE);
        let (uni_tx, uni_rx) = mpsc::channel(16);
        let (dgram_tx, dgram_rx) = mpsc::channel(LANE_QUEUE);
        let closed = CancellationToken::new();
        let closer = Arc::new(Closer::default());
        tokio::spawn(write_socket(
            sink,
            (urgent_rx, out_rx),
            closer.clone(),
            closed.clone(),
        ));
        tokio::spawn(read_socket(
            stream,
            control_tx,
            uni_tx,
            dgram_tx,
            (urgent_tx.clone(), closer.clone()),
            closed.clone(),
            (
                max_client_lanes,
                Arc::new(Semaphore::new(budget.min(Semaphore::MAX_PERMITS))),
            ),
        ));
        WsConnection {
            remote,
            out: out_tx,
            urgent: urgent_tx,
            closer,
            control: tokio::sync::Mutex::new(Some(control_rx)),
            uni: tokio::sync::Mutex::new(uni_rx),
            datagrams: tokio::sync::Mutex::new(dgram_rx),
            pool: Arc::new(Mutex::new(TagPool::default())),
            closed,
        }
    }
}

async fn write_socket(
    mut sink: futures::stream::SplitSink<WebSocket, WsMessage>,
    (mut urgent, mut rx): (mpsc::Receiver<Out>, mpsc::Receiver<Out>),
    closer: Arc<Closer>,
    closed: CancellationToken,
) {
    loop {
        // Urgent first (the control lane); an asked-for close once nothing urgent is
        // queued (so after the Error frame saying why); then the stream lanes.
        let item = tokio::select! {
            biased;
            _ = closed.cancelled() => None,
            Some(item) = urgent.recv() => Some(item),
            _ = closer.asked.notified() => match closer.close.lock().take() {
                Some((code, reason)) => Some(Out::Close(code, reason)),
                None => continue,
            },
            item = rx.recv() => item,
        };
        match item {
            Some(Out::Msg(m)) => {
                crate::metrics::bytes_out(crate::metrics::WEBSOCKET, m.len());
                // A client that stopped reading must not hold the writer (and its queue)
                // forever: a close (forced after a bound by the session) interrupts it.
                let sent = tokio::select! {
                    r = sink.send(WsMessage::Binary(m.into())) => r.is_ok(),
                    _ = closed.cancelled() => false,
                };
                if !sent {
                    break;
                }
            }
            Some(Out::Close(code, reason)) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                tokio::select! {
                    _ = sink.send(WsMessage::Close(Some(frame))) => {},
                    _ = closed.cancelled() => {},
                }
                break;
            }
            None => break,
        }
    }
    closed.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sink.close()).await;
}

async fn read_socket(
    mut stream: futures::stream::SplitStream<WebSocket>,
    control: mpsc::Sender<Chunk>,
    uni: mpsc::Sender<WsRecv>,
    datagrams: mpsc::Sender<Chunk>,
    (urgent, closer): (mpsc::Sender<Out>, Arc<Closer>),
    closed: CancellationToken,
    (max_lanes, budget): (usize, Arc<Semaphore>),
) {
    // Which client lanes are open (sans-IO, fuzzed: fuzz/fuzz_targets/ws_lanes.rs), and
    // the virtual stream each one feeds.
    let mut lanes = ws::ClientLanes::new(max_lanes);
    let mut streams: HashMap<u8, mpsc::Sender<Chunk>> = HashMap::new();
    let protocol = |code, reason: &str| Some(ReadFault::Protocol(code, reason.to_owned()));
    let fault: Option<ReadFault> = loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = closed.cancelled() => break None,
        };
        let data = match msg {
            Some(Ok(WsMessage::Binary(b))) => {
                crate::metrics::bytes_in(crate::metrics::WEBSOCKET, b.len());
                b
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Some(Ok(WsMessage::Text(_))) => {
                break protocol(BAD_FRAME, "text messages are not part of the protocol")
            }
            Some(Err(e)) => break is_too_big(e).map(ReadFault::TooBig),
            Some(Ok(WsMessage::Close(_))) | None => break None,
        };
        let event = match lanes.accept(&data) {
            Ok(event) => event,
            Err(e @ ws::LaneError::TooManyLanes { .. }) => {
                break Some(ReadFault::Protocol(
                    garou_protocol::ErrorCode::LimitReached,
                    e.to_string(),
                ))
            }
            Err(e) => break Some(ReadFault::Protocol(BAD_FRAME, e.to_string())),
        };
        let rest = data.slice(1..);
        let cost = u32::try_from(rest.len().max(1)).unwrap_or(u32::MAX);
        match event {
            ws::ClientLaneEvent::Datagram => {
                // Datagrams are unreliable: dropped when the session is behind.
                if let Ok(permit) = budget.clone().try_acquire_many_owned(cost) {
                    let _ = datagrams.try_send((rest, permit));
                }
                continue;
            }
            ws::ClientLaneEvent::Finish(t) => {
                streams.remove(&t);
                continue;
            }
            ws::ClientLaneEvent::Ignored => continue,
            ws::ClientLaneEvent::Control | ws::ClientLaneEvent::Open(_) | ws::ClientLaneEvent::Data(_) => {}
        }
        // Wait for room in the budget: meanwhile the socket is not read.
        let permit = tokio::select! {
            p = budget.clone().acquire_many_owned(cost) => match p {
                Ok(p) => p,
                Err(_) => break None,
            },
            _ = closed.cancelled() => break None,
        };
        let (t, tx) = match event {
            ws::ClientLaneEvent::Open(t) => {
                let (tx, rx) = mpsc::channel(LANE_QUEUE);
                if uni.send(WsRecv(rx)).await.is_err() {
                    break None;
                }
                streams.insert(t, tx.clone());
                (t, tx)
            }
            ws::ClientLaneEvent::Data(t) => match streams.get(&t) {
                Some(tx) => (t, tx.clone()),
                None => continue, // its reader went away: the bytes have nowhere to go
            },
            _ => {
                if control.send((rest, permit)).await.is_err() {
                    break None;
                }
                continue;
            }
        };
        if tx.send((rest, permit)).await.is_err() {
            // The session dropped this stream's reader: free the tag.
            streams.remove(&t);
            lanes.close(t);
        }
    };
    // The session sees its streams end.
    drop((control, uni, datagrams, streams));
    // Never wait on a full queue here: a stuck writer would keep this task alive.
    let (code, reason) = match fault {
        Some(ReadFault::Protocol(code, reason)) => (CLOSE_BASE.saturating_add(code.as_u16()), reason),
        Some(ReadFault::TooBig(reason)) => {
            // The Error frame the protocol promises for an oversized frame, on the control
            // lane (the session writes whole frames per message, so this one stays whole),
            // then the WebSocket's own close code.
            let code = garou_protocol::ErrorCode::FrameTooLarge;
            let error = garou_protocol::Error::fatal(code, &reason).encode();
            let _ = urgent.try_send(Out::Msg(ws::message(ws::CONTROL, &[error])));
            (MESSAGE_TOO_BIG, reason)
        }
        None => {
            closed.cancel();
            return linger(stream).await;
        }
    };
    closer.ask(code, reason, &closed);
    linger(stream).await;
}

/// After a close: read and discard what the client still sends (data in flight, its
/// close reply) for a bounded time. A socket dropped with unread bytes is reset by the
/// kernel, which discards what was not yet sent: the Error frame saying why and the close.
async fn linger(mut stream: futures::stream::SplitStream<WebSocket>) {
    let drain = async { while let Some(Ok(_)) = stream.next().await {} };
    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
}

impl Connection for WsConnection {
    type Send = WsSend;
    type Recv = WsRecv;

    fn kind(&self) -> &'static str {
        "websocket"
    }
    fn remote(&self) -> SocketAddr {
        self.remote
    }
    async fn accept_bi(&self) -> Result<(WsSend, WsRecv), TransportError> {
        let rx = self
            .control
            .lock()
            .await
            .take()
            .ok_or_else(|| TransportError("the control stream was already accepted".into()))?;
        let send = WsSend {
            tag: ws::CONTROL,
            out: self.urgent.clone(),
            pool: None,
        };
        Ok((send, WsRecv(rx)))
    }
    async fn accept_uni(&self) -> Result<WsRecv, TransportError> {
        self.uni
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| TransportError("websocket closed".into()))
    }
    async fn open_uni(&self) -> Result<WsSend, TransportError> {
        let tag = self
            .pool
            .lock()
            .take()
            .ok_or_else(|| TransportError("no free websocket lane tag".into()))?;
        Ok(WsSend {
            tag,
            out: self.out.clone(),
            pool: Some(self.pool.clone()),
        })
    }
    fn send_datagram(&self, data: Bytes) -> bool {
        let sent = self
            .out
            .try_send(Out::Msg(ws::message(ws::DATAGRAM, &[data])))
            .is_ok();
        if !sent {
            crate::metrics::drop_datagram();
        }
        sent
    }
    async fn read_datagram(&self) -> Result<Bytes, TransportError> {
        self.datagrams
            .lock()
            .await
            .recv()
            .await
            .map(|(bytes, _permit)| bytes)
            .ok_or_else(|| TransportError("websocket closed".into()))
    }
    fn close(&self, code: u16, reason: &str) {
        self.closer
            .ask(CLOSE_BASE.saturating_add(code), reason.to_owned(), &self.closed);
    }
    async fn closed(&self) {
        self.closed.cancelled().await;
    }
}
