//! A relay node's side: each client connection it accepts, on any transport, is carried
//! over the bus to the hub node as a virtual connection (see [`super::frame`]).
//!
//! The relay terminates the transport (TLS, QUIC, WebTransport, WebSocket: the costly
//! part of a connection) and understands nothing of the protocol: bytes of each stream and
//! datagrams go up as they arrive, and what the hub's session writes comes down and is
//! written to the client. A client that does not read is closed once its frames from the
//! hub back up ([`DOWN_QUEUE`]), as the hub closes a slow consumer of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use garou_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::frame::{Batch, Frame, Op, Sequence};
use super::pipe::{forward, Bus, Outbox};
use crate::transport::{Connection, SendStream};

/// Frames from the hub queued per connection before the client counts as not reading.
pub const DOWN_QUEUE: usize = 1024;
/// How long a closing connection's last frames may take to reach the client.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Counts of what the relay carried (for `/metrics`).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Connections relayed, ever.
    pub connections: AtomicU64,
    /// Frames that came down from the hub.
    pub frames_down: AtomicU64,
    /// Connections closed because a bus frame was lost or the client did not read.
    pub dropped: AtomicU64,
}

/// The relay of one term: connections go to the hub of generation `gen`.
pub struct Relay {
    /// Towards the hub.
    up: Bus,
    conns: Mutex<HashMap<u64, mpsc::Sender<Frame>>>,
    /// Node name of the hub.
    pub hub: String,
    pub stats: RelayStats,
    handshake: Duration,
    status: Arc<super::Status>,
}

impl Relay {
    /// Start relaying to the hub of term `gen` (node `hub`), receiving on this node's subject.
    pub async fn start(
        nats: async_nats::Client,
        subjects: &super::Subjects,
        (gen, hub): (u64, &str),
        handshake: Duration,
        status: Arc<super::Status>,
    ) -> anyhow::Result<Arc<Relay>> {
        let mut down = nats.subscribe(subjects.relay()).await?;
        let relay = Arc::new(Relay {
            up: Bus::start(nats, subjects.hub(gen)),
            conns: Mutex::new(HashMap::new()),
            hub: hub.to_owned(),
            stats: RelayStats::default(),
            handshake,
            status,
        });
        let weak = Arc::downgrade(&relay);
        tokio::spawn(async move {
            while let Some(msg) = down.next().await {
                let Some(relay) = weak.upgrade() else { return };
                for frame in Batch::frames(msg.payload) {
                    let frame = match frame {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "undecodable bus frame from the hub");
                            break;
                        }
                    };
                    relay.stats.frames_down.fetch_add(1, Ordering::Relaxed);
                    let id = frame.conn;
                    let mut conns = relay.conns.lock();
                    let refused = conns.get(&id).is_some_and(|tx| tx.try_send(frame).is_err());
                    if refused {
                        // Not reading (or gone): dropping its queue ends its relay.
                        conns.remove(&id);
                    }
                }
            }
        });
        Ok(relay)
    }

    /// Connections relayed now.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Carry `conn` to the hub until either side closes it.
    pub async fn serve<C: Connection>(self: Arc<Self>, conn: C, shutdown: CancellationToken) {
        if !self.status.nats_up() {
            // Another node may serve it: the client tries the next address it knows.
            let code = ErrorCode::Unavailable.as_u16();
            return conn.close(code, "this node cannot reach the cluster bus: try another");
        }
        let id: u64 = rand::random();
        let (down_tx, down) = mpsc::channel(DOWN_QUEUE);
        self.conns.lock().insert(id, down_tx);
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(conn);
        let out = Outbox::new(&self.up, id);
        let ended = self.run(&conn, id, out.clone(), down, &shutdown).await;
        self.conns.lock().remove(&id);
        if let Some((code, reason)) = ended {
            conn.close(code.as_u16(), &reason);
            out.send(
                0,
                Op::Close {
                    code: code.as_u16(),
                    reason,
                },
            )
            .await;
        }
    }

    /// The relay proper; returns how to close the client when the relay ended it (`None`
    /// when the hub or the client closed).
    async fn run<C: Connection>(
        &self,
        conn: &Arc<C>,
        id: u64,
        out: Outbox,
        mut down: mpsc::Receiver<Frame>,
        shutdown: &CancellationToken,
    ) -> Option<(ErrorCode, String)> {
        // The client opens its control stream first; nothing is sent up before it.
        let (control, control_recv) = match tokio::time::timeout(self.handshake, conn.accept_bi()).await {
            Ok(Ok(v)) => v,
            _ => return Some((ErrorCode::OutOfState, "no control stream".into())),
        };
        let open = Op::Open {
            transport: conn.kind().into(),
            remote: conn.remote().to_string(),
        };
        if !out.send(0, open).await {
            return Some((ErrorCode::Unavailable, "the cluster bus is unavailable".into()));
        }
        tracing::debug!(conn = id, hub = %self.hub, "relaying a connection");
        let mut tasks = JoinSet::new();
        tasks.spawn(forward(control_recv, 0, out.clone()));
        {
            let (conn, out) = (conn.clone(), out.clone());
            tasks.spawn(async move {
                let mut stream = 1;
                while let Ok(recv) = conn.accept_uni().await {
                    tokio::spawn(forward(recv, stream, out.clone()));
                    stream += 2;
                }
            });
        }
        {
            let (conn, out) = (conn.clone(), out.clone());
            tasks.spawn(async move {
                while let Ok(d) = conn.read_datagram().await {
                    out.datagram(d);
                }
            });
        }
        let mut control = Some(control);
        let mut finishing = None;
        let mut lanes: HashMap<u32, C::Send> = HashMap::new();
        let mut seq = Sequence::default();
        loop {
            tokio::select! {
                frame = down.recv() => {
                    let Some(f) = frame else {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        return Some((ErrorCode::SlowConsumer, "not reading fast enough".into()));
                    };
                    if !seq.accept(f.seq) {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        self.status.lost_frames.fetch_add(1, Ordering::Relaxed);
                        return Some((ErrorCode::Internal, "the cluster bus lost a frame: reconnect".into()));
                    }
                    match f.op {
                        Op::Data(bytes) if f.stream == 0 => {
                            if let Some(c) = control.as_mut() {
                                let _ = c.write_chunks(&mut [bytes]).await;
                            }
                        }
                        Op::Data(bytes) => {
                            let lane = match lanes.entry(f.stream) {
                                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                                std::collections::hash_map::Entry::Vacant(v) => match conn.open_uni().await {
                                    Ok(s) => v.insert(s),
                                    Err(_) => return None,
                                },
                            };
                            let _ = lane.write_chunks(&mut [bytes]).await;
                        }
                        Op::Fin if f.stream == 0 => {
                            if let Some(mut c) = control.take() {
                                finishing = Some(tokio::spawn(async move { c.finish_and_wait().await }));
                            }
                        }
                        Op::Fin => {
                            if let Some(mut lane) = lanes.remove(&f.stream) {
                                tokio::spawn(async move { lane.finish_and_wait().await });
                            }
                        }
                        Op::Datagram(d) => {
                            conn.send_datagram(d);
                        }
                        Op::Close { code, reason } => {
                            // The hub's last frames (an Error saying why) reach the client first.
                            if let Some(f) = finishing.take() {
                                let _ = tokio::time::timeout(CLOSE_FLUSH, f).await;
                            }
                            conn.close(code, &reason);
                            return None;
                        }
                        Op::Open { .. } => {}
                    }
                }
                _ = conn.closed() => {
                    out.send(0, Op::Close { code: 0, reason: "client gone".into() }).await;
                    return None;
                }
                _ = shutdown.cancelled() => {
                    return Some((ErrorCode::ShuttingDown, "this node is leaving: reconnect".into()));
                }
                _ = self.status.bus_lost.notified() => {
                    return Some((ErrorCode::Unavailable, "the cluster bus was lost: reconnect".into()));
                }
            }
        }
    }
}
