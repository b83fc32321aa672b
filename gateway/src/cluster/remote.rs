//! The hub node's side of relayed connections: each virtual connection from a relay node
//! becomes an in-memory connection ([`crate::transport::mem`]) whose server end runs the
//! same session as a direct client (handshake, limits, commands, fan-out lanes). So a
//! client on any node is a session of the one hub: every room, nick, list and direct
//! message is the cluster's by construction.
//!
//! Admission is the hub's, by the client's real address (it came with the connection), so
//! per-IP caps hold across nodes. A relay that stops heartbeating is taken for dead after
//! [`super::RELAY_TIMEOUT`]: its connections end, their users go offline, their nicks are
//! free again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use garou_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::frame::{Batch, Frame, Op, Sequence};
use super::pipe::{forward, Bus, Outbox};
use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::transport::mem::{MemConnection, MemRecv, MemSend};
use crate::transport::{Connection, SendStream, TransportError};

/// Frames from a relay queued per connection before it counts as stuck (and is closed).
const UP_QUEUE: usize = 1024;

/// A relayed client as the session sees it: the in-memory server end, with the client's
/// real transport and address (for metrics, logs and per-IP limits).
pub struct Relayed {
    inner: MemConnection,
    kind: &'static str,
    remote: SocketAddr,
}

impl Connection for Relayed {
    type Send = MemSend;
    type Recv = MemRecv;
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn remote(&self) -> SocketAddr {
        self.remote
    }
    async fn accept_bi(&self) -> Result<(MemSend, MemRecv), TransportError> {
        self.inner.accept_bi().await
    }
    async fn accept_uni(&self) -> Result<MemRecv, TransportError> {
        self.inner.accept_uni().await
    }
    async fn open_uni(&self) -> Result<MemSend, TransportError> {
        self.inner.open_uni().await
    }
    fn send_datagram(&self, data: Bytes) -> bool {
        self.inner.send_datagram(data)
    }
    async fn read_datagram(&self) -> Result<Bytes, TransportError> {
        self.inner.read_datagram().await
    }
    fn close(&self, code: u16, reason: &str) {
        self.inner.close(code, reason)
    }
    async fn closed(&self) {
        self.inner.closed().await
    }
}

fn transport_name(name: &str) -> &'static str {
    match name {
        "quic" => "quic",
        "webtransport" => "webtransport",
        _ => "websocket",
    }
}

/// The relayed connections of one hub term, by (relay node, connection id).
#[derive(Default)]
pub struct Remotes {
    conns: Mutex<HashMap<(String, u64), mpsc::Sender<Frame>>>,
}

impl Remotes {
    /// Connections relayed to this hub now.
    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }

    /// Whether no connection is relayed here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// End every connection relayed by `node` (it died, or restarted).
    pub fn drop_node(&self, node: &str) -> usize {
        let mut conns = self.conns.lock();
        let before = conns.len();
        conns.retain(|(n, _), _| n != node);
        before - conns.len()
    }
}

/// What serving relayed connections needs.
pub struct HubSide {
    pub hub: Arc<Hub>,
    pub cfg: Arc<ServerConfig>,
    pub limits: Arc<Limits>,
    pub nats: async_nats::Client,
    pub subjects: super::Subjects,
    pub shutdown: CancellationToken,
    pub status: Arc<super::Status>,
    /// Towards each relay node, by name (made on first use).
    pub buses: Mutex<HashMap<String, Bus>>,
}

impl HubSide {
    /// The bus towards relay `node`.
    fn bus(&self, node: &str) -> Bus {
        self.buses
            .lock()
            .entry(node.to_owned())
            .or_insert_with(|| Bus::start(self.nats.clone(), self.subjects.relay_of(node)))
            .clone()
    }
}

/// Serve the connections relays carry to term `gen`, until `shutdown`.
pub async fn serve(side: Arc<HubSide>, gen: u64, remotes: Arc<Remotes>) -> anyhow::Result<()> {
    let mut up = side.nats.subscribe(side.subjects.hub_all(gen)).await?;
    let shutdown = side.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = up.next() => match m { Some(m) => m, None => return },
                _ = shutdown.cancelled() => return,
                _ = side.status.bus_lost.notified() => {
                    // Frames may be lost both ways: every relayed session ends, its client
                    // reconnects and resumes.
                    remotes.conns.lock().clear();
                    continue;
                }
            };
            let Some(node) = msg.subject.rsplit('.').next().map(str::to_owned) else {
                continue;
            };
            for frame in Batch::frames(msg.payload) {
                match frame {
                    Ok(frame) => from_relay(&side, &remotes, &node, frame),
                    Err(e) => {
                        tracing::warn!(error = %e, %node, "undecodable bus frame from a relay");
                        break;
                    }
                }
            }
        }
    });
    Ok(())
}

/// One frame from relay `node`: a new connection, or one for a connection's session.
fn from_relay(side: &Arc<HubSide>, remotes: &Arc<Remotes>, node: &str, frame: Frame) {
    let key = (node.to_owned(), frame.conn);
    if let Op::Open { transport, remote } = &frame.op {
        open(side, remotes, key, transport, remote);
        return;
    }
    let last = matches!(frame.op, Op::Close { .. });
    let known = {
        let mut conns = remotes.conns.lock();
        match conns.get(&key).map(|tx| tx.try_send(frame).is_ok()) {
            Some(true) => true,
            Some(false) => {
                conns.remove(&key);
                true
            }
            None => false,
        }
    };
    if !known && !last {
        // A connection this hub does not know (it ended here, or came from an
        // earlier term): tell the relay to close it, so its client reconnects.
        let out = Outbox::new(&side.bus(&key.0), key.1);
        tokio::spawn(async move {
            let code = ErrorCode::Unavailable.as_u16();
            let reason = "this session is gone: reconnect".to_owned();
            out.send(0, Op::Close { code, reason }).await;
        });
    }
}

/// A relay opened a connection: admit it and start its session.
fn open(side: &Arc<HubSide>, remotes: &Arc<Remotes>, key: (String, u64), transport: &str, remote: &str) {
    let out = Outbox::new(&side.bus(&key.0), key.1);
    let remote: SocketAddr = remote.parse().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let permit = match side.limits.admit(remote.ip()) {
        Ok(p) => p,
        Err(refusal) => {
            tracing::info!(%remote, %refusal, relay = %key.0, "refusing a relayed connection");
            let reason = refusal.to_string();
            tokio::spawn(async move {
                let code = ErrorCode::LimitReached.as_u16();
                out.send(0, Op::Close { code, reason }).await;
            });
            return;
        }
    };
    let (tx, rx) = mpsc::channel(UP_QUEUE);
    remotes.conns.lock().insert(key.clone(), tx);
    let (server, client) = MemConnection::pair();
    let conn = Relayed {
        inner: server,
        kind: transport_name(transport),
        remote,
    };
    let (hub, cfg, shutdown) = (side.hub.clone(), side.cfg.clone(), side.shutdown.clone());
    tokio::spawn(crate::session::run(conn, hub, cfg, shutdown, permit));
    let (remotes, status) = (remotes.clone(), side.status.clone());
    tokio::spawn(async move {
        pump(Arc::new(client), rx, out.clone(), status).await;
        remotes.conns.lock().remove(&key);
    });
}

/// Carry one relayed connection between the bus and the client end of its session.
async fn pump(
    client: Arc<MemConnection>,
    mut up: mpsc::Receiver<Frame>,
    out: Outbox,
    status: Arc<super::Status>,
) {
    {
        let (client, out) = (client.clone(), out.clone());
        tokio::spawn(async move {
            let mut stream = 2;
            while let Ok(recv) = client.accept_uni().await {
                tokio::spawn(forward(recv, stream, out.clone()));
                stream += 2;
            }
        });
    }
    {
        let (client, out) = (client.clone(), out.clone());
        tokio::spawn(async move {
            while let Ok(d) = client.read_datagram().await {
                out.datagram(d);
            }
        });
    }
    let mut control: Option<MemSend> = None;
    let mut unis: HashMap<u32, MemSend> = HashMap::new();
    // Open was frame 0.
    let mut seq = Sequence::default();
    seq.accept(0);
    let lost = |why: &str| {
        tracing::info!(why, "closing a relayed connection");
        client.close(ErrorCode::Internal.as_u16(), why);
    };
    loop {
        tokio::select! {
            frame = up.recv() => {
                let Some(f) = frame else {
                    return lost("its relay stopped carrying it");
                };
                if !seq.accept(f.seq) {
                    status.lost_frames.fetch_add(1, Ordering::Relaxed);
                    return lost("the cluster bus lost a frame");
                }
                match f.op {
                    Op::Data(bytes) if f.stream == 0 => {
                        if control.is_none() {
                            let Ok((send, recv)) = client.open_bi().await else { return };
                            tokio::spawn(forward(recv, 0, out.clone()));
                            control = Some(send);
                        }
                        if let Some(c) = control.as_mut() {
                            let _ = c.write_chunks(&mut [bytes]).await;
                        }
                    }
                    Op::Data(bytes) => {
                        let send = match unis.entry(f.stream) {
                            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::hash_map::Entry::Vacant(v) => match client.open_uni().await {
                                Ok(s) => v.insert(s),
                                Err(_) => return,
                            },
                        };
                        let _ = send.write_chunks(&mut [bytes]).await;
                    }
                    Op::Fin if f.stream == 0 => {
                        if let Some(c) = control.as_mut() {
                            c.finish();
                        }
                    }
                    Op::Fin => {
                        if let Some(mut s) = unis.remove(&f.stream) {
                            s.finish();
                        }
                    }
                    Op::Datagram(d) => {
                        client.send_datagram(d);
                    }
                    Op::Close { code, reason } => {
                        client.close(code, &reason);
                        return;
                    }
                    Op::Open { .. } => {}
                }
            }
            _ = client.closed() => {
                let (code, reason) = client
                    .close_info()
                    .map_or((0, String::new()), |i| (i.code, i.reason));
                out.send(0, Op::Close { code, reason }).await;
                return;
            }
        }
    }
}
