//! Group commit: one task drains everything queued into a single store transaction, then
//! runs each item's continuation (fan-out, the sender's ack) in queue order.
//!
//! Durability therefore costs one fsync per batch, not per message: under load batches
//! grow and throughput follows; when idle a message commits alone at once. Items are queued
//! under their room's lock, so a room's events are committed and delivered in offset order.

use std::sync::Arc;
use std::time::Duration;

use garou_protocol::ErrorCode;
use tokio::sync::mpsc;

use crate::store::{Op, Store};

/// Why a request was refused: code and message for the Error frame.
pub type Refusal = (ErrorCode, String);

/// Items queued for the committer before publishers are told the server is busy.
pub const QUEUE: usize = 1 << 16;
/// Items per transaction at most.
/// Items per transaction at most: also the largest burst one commit releases into a
/// connection's queues, so it stays well under their bounds (`stream.lane_queue`, control).
const BATCH: usize = 256;

/// One unit of work: rows to write, then what to do once they are durable.
pub struct Commit {
    pub ops: Vec<Op>,
    pub then: Option<Box<dyn FnOnce() + Send>>,
}

/// The publishers' side of the queue.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Commit>,
}

impl Committer {
    /// A committer writing to `store`, and the task to spawn that runs it.
    pub fn new(store: Arc<dyn Store>) -> (Committer, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Committer { tx }, run(store, rx))
    }

    /// Room in the queue for one item (taken before an offset is, so a refusal leaves no gap).
    pub fn reserve(&self) -> Result<mpsc::Permit<'_, Commit>, Refusal> {
        self.tx
            .try_reserve()
            .map_err(|_| (ErrorCode::LimitReached, "server busy: try again".to_owned()))
    }

    /// Queue rows (and a continuation) with no room event.
    pub fn push(&self, ops: Vec<Op>, then: Option<Box<dyn FnOnce() + Send>>) -> Result<(), Refusal> {
        self.reserve()?.send(Commit { ops, then });
        Ok(())
    }

    /// Resolves once everything queued before it is durable.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let then: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = tx.send(());
        });
        if self
            .tx
            .send(Commit {
                ops: Vec::new(),
                then: Some(then),
            })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Commit>) {
    let mut batch: Vec<Commit> = Vec::with_capacity(BATCH);
    let mut ops: Vec<Op> = Vec::new();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for c in &mut batch {
            ops.append(&mut c.ops);
        }
        if !ops.is_empty() {
            let started = std::time::Instant::now();
            let mut attempt = 0;
            while let Err(e) = store.apply(&ops).await {
                attempt += 1;
                if attempt >= 5 {
                    // Acks go out only after a commit; a store that cannot commit must stop
                    // the gateway rather than let clients believe in unsaved messages.
                    tracing::error!(error = %e, "store keeps failing; stopping the gateway");
                    std::process::exit(70);
                }
                tracing::warn!(error = %e, attempt, "store commit failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            crate::metrics::store_commit(started.elapsed());
            tracing::trace!(items = batch.len(), ops = ops.len(), took = ?started.elapsed(), "group commit");
            ops.clear();
        }
        for c in batch.drain(..) {
            if let Some(then) = c.then {
                then();
            }
        }
    }
}
