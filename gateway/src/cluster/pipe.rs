//! What both ends of a relayed connection share: the numbered outbox and stream forwarding.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::frame::{Frame, Op, Sequence};
use crate::transport::RecvStream;

/// Frames queued towards the bus per connection before a stream reader waits.
const OUTBOX: usize = 256;
/// Largest piece of a stream carried in one bus frame (NATS's default payload cap is 1 MiB).
pub const MAX_PIECE: usize = 64 * 1024;

/// One connection's frames towards the bus, numbered and published in order by one task.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<(u32, Op)>,
}

impl Outbox {
    /// Publish connection `conn`'s frames on `subject`.
    pub fn start(nats: async_nats::Client, subject: String, conn: u64) -> Outbox {
        let (tx, mut rx) = mpsc::channel::<(u32, Op)>(OUTBOX);
        tokio::spawn(async move {
            let mut seq = Sequence::default();
            while let Some((stream, op)) = rx.recv().await {
                let last = matches!(op, Op::Close { .. });
                let frame = Frame {
                    conn,
                    seq: seq.take(),
                    stream,
                    op,
                };
                if let Err(e) = nats.publish(subject.clone(), frame.encode()).await {
                    tracing::debug!(error = %e, "bus publish failed; connection dropped");
                    return;
                }
                if last {
                    return;
                }
            }
        });
        Outbox { tx }
    }

    /// Queue a frame, waiting for room: `false` once the connection is gone.
    pub async fn send(&self, stream: u32, op: Op) -> bool {
        self.tx.send((stream, op)).await.is_ok()
    }

    /// Queue a datagram if there is room (datagrams are dropped rather than waited for).
    pub fn datagram(&self, data: Bytes) {
        let _ = self.tx.try_send((0, Op::Datagram(data)));
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
