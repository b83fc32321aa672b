//! What both ends of a relayed connection share: the bus towards one node, numbered
//! outboxes on it, and stream forwarding.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::frame::{Frame, Op, Sequence};
use crate::transport::RecvStream;

/// Frames queued towards one node before the connections writing to it wait.
const QUEUE: usize = 4096;
/// A NATS message carries frames up to this many bytes (NATS's default cap is 1 MiB).
const BATCH: usize = 256 * 1024;
/// Largest piece of a stream carried in one bus frame.
pub const MAX_PIECE: usize = 64 * 1024;

/// Every frame towards one node (one NATS subject), from all the connections relayed to
/// it, published by one task: what is queued when it publishes goes in one NATS message
/// (see [`super::frame::Batch`]). Nothing waits for a batch to fill: a lone frame leaves at
/// once, frames that arrive while a publish is under way leave together in the next one.
/// A fan-out to many relayed members of a room thus costs one NATS message per node
/// rather than one per member.
#[derive(Clone)]
pub struct Bus {
    tx: mpsc::Sender<Bytes>,
}

impl Bus {
    /// Publish on `subject` until every sender is gone or NATS is closed.
    pub fn start(nats: async_nats::Client, subject: String) -> Bus {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        tokio::spawn(async move {
            let mut batch = super::frame::Batch::default();
            while let Some(first) = rx.recv().await {
                batch.push(&first);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(frame) => batch.push(&frame),
                        Err(_) => break,
                    }
                }
                if let Err(e) = nats.publish(subject.clone(), batch.take()).await {
                    tracing::debug!(error = %e, %subject, "bus publish failed; its connections end");
                    return;
                }
            }
        });
        Bus { tx }
    }
}

/// One connection's frames towards the bus, numbered in the order they are queued.
#[derive(Clone)]
pub struct Outbox {
    conn: u64,
    bus: mpsc::Sender<Bytes>,
    /// The next number, and whether Close was sent (nothing goes after it).
    state: std::sync::Arc<tokio::sync::Mutex<(Sequence, bool)>>,
}

impl Outbox {
    /// Connection `conn`'s frames, on `bus`.
    pub fn new(bus: &Bus, conn: u64) -> Outbox {
        Outbox {
            conn,
            bus: bus.tx.clone(),
            state: Default::default(),
        }
    }

    fn encode(&self, state: &mut (Sequence, bool), stream: u32, op: Op) -> Bytes {
        state.1 |= matches!(op, Op::Close { .. });
        let frame = Frame {
            conn: self.conn,
            seq: state.0.take(),
            stream,
            op,
        };
        frame.encode()
    }

    /// Queue a frame, waiting for room: `false` once the connection is gone.
    pub async fn send(&self, stream: u32, op: Op) -> bool {
        let mut state = self.state.lock().await;
        if state.1 {
            return false;
        }
        // Room first, then the number: a frame that is numbered is sent.
        let Ok(permit) = self.bus.reserve().await else {
            return false;
        };
        permit.send(self.encode(&mut state, stream, op));
        true
    }

    /// Queue a datagram if there is room (datagrams are dropped rather than waited for).
    pub fn datagram(&self, data: Bytes) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        if state.1 {
            return;
        }
        if let Ok(permit) = self.bus.try_reserve() {
            permit.send(self.encode(&mut state, 0, Op::Datagram(data)));
        }
    }
}

/// Carry `recv` onto the bus as stream `stream`: its data in pieces, then Fin.
pub async fn forward<R: RecvStream>(mut recv: R, stream: u32, out: Outbox) {
    loop {
        match recv.read_chunk().await {
            Ok(Some(mut chunk)) => {
                while !chunk.is_empty() {
                    let piece = chunk.split_to(chunk.len().min(MAX_PIECE));
                    if !out.send(stream, Op::Data(piece)).await {
                        return;
                    }
                }
            }
            Ok(None) => {
                out.send(stream, Op::Fin).await;
                return;
            }
            // The connection went: its closing is reported by whoever watches it.
            Err(_) => return,
        }
    }
}
