//! The WebSocket fallback transport of the bench: the shared sans-IO `ClientSession` (what
//! the wasm client runs in a browser) driven over the gateway's `/ws` lanes
//! (`garou_protocol::ws`), one driver task per client.
//!
//! The driver owns the session; the [`WsClient`] handle talks to it through a bounded
//! command queue, a reader task feeds it what the socket receives through a bounded queue,
//! and room messages go out through a bounded event queue (a slow reader stalls the driver,
//! which stalls the socket: the server then sees a slow consumer, as with QUIC). Nothing
//! reconnects: a lost connection fails what is in flight and ends the event stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use garou_protocol::client::{StreamId, CONTROL};
use garou_protocol::{ws, ClientConfig, ClientSession, Event, Lane, Message, ReqId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::client::Incoming;
use super::conn::{CONNECT_WAIT, REQUEST_WAIT};

/// Bound on the queue of socket input waiting for the driver.
const INBOUND_QUEUE: usize = 256;
/// Bound on the queue of commands waiting for the driver.
const COMMAND_QUEUE: usize = 64;
/// Bound on the room messages waiting for the application (as `ClientOptions::event_buffer`).
const EVENT_QUEUE: usize = 1024;
/// Bound on handing the final `Disconnected` to an application that does not read events.
const GOODBYE_WAIT: Duration = Duration::from_secs(2);
/// Bound on the closing handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures::stream::SplitSink<Socket, WsMessage>;

/// What the reader task hands the driver.
enum Inbound {
    Data(StreamId, Bytes),
    End(StreamId),
    Datagram(Bytes),
    /// The socket is gone (or the server broke the lane framing).
    Closed(String),
}

/// What the handle asks of the driver; each answer comes back on its oneshot.
enum Command {
    Join(String, oneshot::Sender<Result<(), String>>),
    Leave(String, oneshot::Sender<Result<(), String>>),
    Send(String, String, oneshot::Sender<Result<(), String>>),
    Close(oneshot::Sender<()>),
}

/// A cloneable handle on one WebSocket client.
#[derive(Clone)]
pub struct WsClient {
    commands: mpsc::Sender<Command>,
    connected: Arc<AtomicBool>,
}

/// A reply not yet arrived: `Ok(())` or why not.
pub type Answer = oneshot::Receiver<Result<(), String>>;

impl WsClient {
    /// Open `/ws` at `url`, run the handshake as `nick`, and wait (bounded) until ready.
    pub async fn connect(url: &str, nick: String) -> Result<(WsClient, mpsc::Receiver<Incoming>), String> {
        let (socket, _) = tokio::time::timeout(CONNECT_WAIT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| "websocket connect timed out".to_string())?
            .map_err(|e| format!("websocket connect: {e}"))?;
        let (sink, stream) = socket.split();
        let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let reader = tokio::spawn(read(stream, in_tx));
        let (commands, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let connected = Arc::new(AtomicBool::new(false));
        let mut config = ClientConfig::with_nick(nick);
        config.client_name = concat!("garou-bench/", env!("CARGO_PKG_VERSION")).into();
        config.request_timeout_ms = REQUEST_WAIT.as_millis() as u64;
        config.client_id_base = rand::random();
        let driver = Driver {
            session: ClientSession::new(config, 0),
            start: Instant::now(),
            sink,
            inbound: in_rx,
            commands: cmd_rx,
            events: ev_tx,
            pending: HashMap::new(),
            ready: Some(ready_tx),
            connected: connected.clone(),
        };
        tokio::spawn(async move {
            driver.run().await;
            reader.abort();
        });
        // The driver ends (dropping `ready_tx`) if the handshake fails.
        match tokio::time::timeout(CONNECT_WAIT, ready_rx).await {
            Ok(Ok(())) => Ok((WsClient { commands, connected }, ev_rx)),
            Ok(Err(_)) => Err("websocket session ended during the handshake".into()),
            Err(_) => Err("websocket handshake timed out".into()),
        }
    }

    /// Hand a command to the driver (waiting for room in its queue) and return its answer.
    async fn ask(&self, make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Command) -> Answer {
        let (tx, rx) = oneshot::channel();
        // If the driver is gone, `tx` is dropped with the command and `rx` reports it.
        let _ = self.commands.send(make(tx)).await;
        rx
    }

    pub async fn join(&self, room: &str) -> Answer {
        self.ask(|tx| Command::Join(room.into(), tx)).await
    }

    pub async fn leave(&self, room: &str) -> Answer {
        self.ask(|tx| Command::Leave(room.into(), tx)).await
    }

    /// Submit a message; the answer is its ack.
    pub async fn send(&self, room: &str, text: String) -> Answer {
        self.ask(|tx| Command::Send(room.into(), text, tx)).await
    }

    /// Whether the session is up (false once lost or closed).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Close gracefully (bounded); harmless if already closed.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if self.commands.send(Command::Close(tx)).await.is_ok() {
                let _ = rx.await;
            }
        })
        .await;
    }
}

/// Read binary lane messages off the socket and hand them to the driver.
async fn read(mut stream: futures::stream::SplitStream<Socket>, tx: mpsc::Sender<Inbound>) {
    let reason = loop {
        let msg = match stream.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => break format!("websocket: {e}"),
            None => break "websocket closed".into(),
        };
        let b = match msg {
            WsMessage::Binary(b) if !b.is_empty() => b,
            WsMessage::Binary(_) | WsMessage::Text(_) => break "server broke the lane framing".into(),
            WsMessage::Close(f) => break format!("server closed: {f:?}"),
            _ => continue, // ping/pong (tungstenite answers pings itself)
        };
        let (tag, rest) = (b[0], b.slice(1..));
        let input = match ws::LaneTag::of(tag) {
            ws::LaneTag::Control => Inbound::Data(CONTROL, rest),
            ws::LaneTag::Datagram => Inbound::Datagram(rest),
            ws::LaneTag::ServerStream(t) if rest.is_empty() => Inbound::End(StreamId::from(t)),
            ws::LaneTag::ServerStream(t) => Inbound::Data(StreamId::from(t), rest),
            other => break format!("server sent on lane {other:?}"),
        };
        if tx.send(input).await.is_err() {
            return;
        }
    };
    let _ = tx.send(Inbound::Closed(reason)).await;
}

/// The lane tag a session lane travels on (client-opened streams take the first tags).
fn tag_of(lane: Lane) -> u8 {
    match lane {
        Lane::Control => ws::CONTROL,
        Lane::Datagram => ws::DATAGRAM,
        Lane::Commands => ws::CLIENT_FIRST,
        Lane::Acks => ws::CLIENT_FIRST + 1,
    }
}

/// One client's session and socket.
struct Driver {
    session: ClientSession,
    start: Instant,
    sink: Sink,
    inbound: mpsc::Receiver<Inbound>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Incoming>,
    pending: HashMap<ReqId, oneshot::Sender<Result<(), String>>>,
    ready: Option<oneshot::Sender<()>>,
    connected: Arc<AtomicBool>,
}

impl Driver {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn run(mut self) {
        let reason = self.pump().await.err();
        self.connected.store(false, Ordering::Release);
        // Whatever is still unanswered fails (its sender dropped); then the stream ends.
        self.pending.clear();
        if let Some(reason) = reason {
            tracing::debug!("bench websocket client lost: {reason}");
            let _ = tokio::time::timeout(GOODBYE_WAIT, self.events.send(Incoming::Disconnected)).await;
        }
    }

    /// Drive the session until closed (`Ok`) or lost (`Err` with why).
    async fn pump(&mut self) -> Result<(), String> {
        loop {
            self.flush().await?;
            self.dispatch().await;
            let timer = self
                .session
                .poll_timeout()
                .map(|ms| self.start + Duration::from_millis(ms));
            tokio::select! {
                input = self.inbound.recv() => {
                    let now = self.now();
                    let r = match input {
                        Some(Inbound::Data(id, b)) => self.session.on_stream_data(id, &b, now),
                        Some(Inbound::End(id)) => self.session.on_stream_end(id),
                        Some(Inbound::Datagram(b)) => self.session.on_datagram(&b, now),
                        Some(Inbound::Closed(reason)) => return Err(reason),
                        None => return Err("reader ended".into()),
                    };
                    r.map_err(|e| e.to_string())?;
                }
                cmd = self.commands.recv() => {
                    let now = self.now();
                    let (req, tx) = match cmd {
                        Some(Command::Join(room, tx)) => (self.session.join(&room, now), tx),
                        Some(Command::Leave(room, tx)) => (self.session.leave(&room, now), tx),
                        Some(Command::Send(room, text, tx)) => (self.session.send(&room, &text, now), tx),
                        Some(Command::Close(done)) => {
                            let _ = tokio::time::timeout(CLOSE_WAIT, self.sink.close()).await;
                            let _ = done.send(());
                            return Ok(());
                        }
                        // Every handle is gone: nobody can ask or close any more.
                        None => {
                            let _ = tokio::time::timeout(CLOSE_WAIT, self.sink.close()).await;
                            return Ok(());
                        }
                    };
                    self.pending.insert(req, tx);
                }
                _ = sleep_until_opt(timer) => {
                    let now = self.now();
                    self.session.handle_timeout(now).map_err(|e| e.to_string())?;
                }
            }
        }
    }

    /// Write everything the session has to send, then flush once.
    async fn flush(&mut self) -> Result<(), String> {
        let mut wrote = false;
        while let Some(t) = self.session.poll_transmit() {
            let msg = WsMessage::Binary(ws::message(tag_of(t.lane), &[t.data]).into());
            self.sink
                .feed(msg)
                .await
                .map_err(|e| format!("websocket write: {e}"))?;
            wrote = true;
        }
        if wrote {
            self.sink
                .flush()
                .await
                .map_err(|e| format!("websocket write: {e}"))?;
        }
        Ok(())
    }

    /// Hand the session's events on: replies to their askers, room messages to the reader.
    async fn dispatch(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                Event::Ready { .. } => {
                    self.connected.store(true, Ordering::Release);
                    if let Some(tx) = self.ready.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Reply { req, result } => {
                    if let Some(tx) = self.pending.remove(&req) {
                        let _ = tx.send(result.map(|_| ()).map_err(|f| f.to_string()));
                    }
                }
                Event::Room {
                    event: Message::RoomMessage(m),
                    ..
                } => {
                    // A dropped receiver (nobody listens) is fine: skip.
                    let _ = self.events.send(Incoming::Message(m.text)).await;
                }
                Event::Error(f) => tracing::debug!("bench websocket client: {f}"),
                _ => {}
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
