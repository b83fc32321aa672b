//! Group commit: one task drains everything queued into a single store transaction, then
//! runs each item's continuation (fan-out, the sender's ack) in queue order.
//!
//! Durability therefore costs one fsync per batch, not per message: under load batches
//! grow and throughput follows; when idle a message commits alone at once. Items are queued
//! under their room's lock, so a room's events are committed and delivered in offset order.
//!
//! Failures never stop the gateway, and never let a client believe in unsaved data:
//! - The store is unavailable ([`StoreError::Unavailable`]: I/O, disk full, busy, pool
//!   timeout): the batch is kept and retried with capped backoff until it commits; meanwhile
//!   the store counts as down ([`Committer::healthy`]): new publishes are refused at once
//!   with [`ErrorCode::Unavailable`] and `/ready` answers 503. The first commit that
//!   succeeds brings it back.
//! - The store is fenced ([`StoreError::Fenced`]: a cluster node that lost the hub lease):
//!   the committer stops for good. What is queued is dropped, never acked and never
//!   delivered (another node owns those offsets now); new publishes are refused.
//! - The store refuses the batch for any other reason (a constraint one row breaks): its
//!   items are applied one by one, in order, so every other item still commits and is
//!   delivered; the refused item's `refused` continuation answers its sender and may queue
//!   a stand-in in its place (a room fills the offset it had taken, see
//!   [`super::room::Room::publish_with`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use garou_protocol::ErrorCode;
use tokio::sync::mpsc;

use super::stats::Stats;
use crate::store::{Op, Store, StoreError};

/// Why a request was refused: code and message for the Error frame.
pub type Refusal = (ErrorCode, String);

/// Items queued for the committer before publishers are told the server is busy.
pub const QUEUE: usize = 1 << 16;
/// Items per transaction at most: also the largest burst one commit releases into a
/// connection's queues, so it stays well under their bounds (`stream.lane_queue`, control).
const BATCH: usize = 256;
/// First wait before retrying a batch the store could not take, doubled per attempt...
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A continuation run once an item is durable.
pub type Then = Box<dyn FnOnce() + Send>;
/// A continuation run when the store refused an item's rows on their own (never for an
/// unavailable store: that is retried). It answers whoever waits for the item and may
/// return a commit to make in its place.
pub type Refused = Box<dyn FnOnce(&StoreError) -> Option<Commit> + Send>;

/// One unit of work: rows to write, then what to do once they are durable, or refused.
pub struct Commit {
    pub ops: Vec<Op>,
    pub then: Option<Then>,
    /// `None`: a refused item is logged and dropped (its `then` never runs).
    pub refused: Option<Refused>,
}

/// The publishers' side of the queue.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Commit>,
    /// Set while the store is unavailable.
    down: Arc<AtomicBool>,
}

impl Committer {
    /// A committer writing to `store`, and the task to spawn that runs it.
    /// Commit latency and failures are counted in `stats`.
    pub fn new(
        store: Arc<dyn Store>,
        stats: Arc<Stats>,
    ) -> (Committer, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let down = Arc::new(AtomicBool::new(false));
        (
            Committer {
                tx,
                down: down.clone(),
            },
            run(store, rx, down, stats),
        )
    }

    /// Whether the store takes commits (false from a failed attempt until one succeeds).
    pub fn healthy(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    /// Room in the queue for one item (taken before an offset is, so a refusal leaves no
    /// gap). Refused at once while the store is unavailable: what is queued already waits
    /// for it, nothing new joins the wait.
    pub fn reserve(&self) -> Result<mpsc::Permit<'_, Commit>, Refusal> {
        if !self.healthy() {
            return Err((
                ErrorCode::Unavailable,
                "the message store is unavailable: try again later".to_owned(),
            ));
        }
        self.tx
            .try_reserve()
            .map_err(|_| (ErrorCode::LimitReached, "server busy: try again".to_owned()))
    }

    /// Queue rows (and a continuation) with no room event.
    pub fn push(&self, ops: Vec<Op>, then: Option<Then>) -> Result<(), Refusal> {
        self.reserve()?.send(Commit {
            ops,
            then,
            refused: None,
        });
        Ok(())
    }

    /// Resolves once everything queued before it is durable (or refused).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let then: Then = Box::new(move || {
            let _ = tx.send(());
        });
        let flush = Commit {
            ops: Vec::new(),
            then: Some(then),
            refused: None,
        };
        if self.tx.send(flush).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Commit>,
    down: Arc<AtomicBool>,
    stats: Arc<Stats>,
) {
    let shared = Shared {
        down: &down,
        stats: &stats,
    };
    let mut batch: Vec<Commit> = Vec::with_capacity(BATCH);
    let mut ops: Vec<Op> = Vec::new();
    // Where each item's ops end in `ops`, to apply them alone if the batch is refused.
    let mut ends: Vec<usize> = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for c in &mut batch {
            ops.append(&mut c.ops);
            ends.push(ops.len());
        }
        let whole = match ops.is_empty() {
            true => Ok(()),
            false => commit(&*store, &ops, &shared).await,
        };
        if let Err(StoreError::Fenced(why)) = &whole {
            down.store(true, Ordering::Release);
            tracing::error!(%why, dropped = batch.len(), "store fenced: this node no longer commits; queued changes dropped (never acked)");
            return;
        }
        match whole {
            Ok(()) => {
                tracing::trace!(items = batch.len(), ops = ops.len(), "group commit");
                for c in batch.drain(..) {
                    if let Some(then) = c.then {
                        then();
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, items = batch.len(), "store refused a batch; committing its items one by one");
                let mut start = 0;
                for (c, &end) in batch.drain(..).zip(&ends) {
                    let item = &ops[start..end];
                    start = end;
                    let result = match item.is_empty() {
                        true => Ok(()),
                        false => commit(&*store, item, &shared).await,
                    };
                    match result {
                        Ok(()) => {
                            if let Some(then) = c.then {
                                then();
                            }
                        }
                        Err(StoreError::Fenced(why)) => {
                            down.store(true, Ordering::Release);
                            tracing::error!(%why, "store fenced: this node no longer commits");
                            return;
                        }
                        Err(e) => refuse(&*store, c.refused, e, &shared).await,
                    }
                }
            }
        }
        ops.clear();
        ends.clear();
    }
}

/// What the committer's steps share: the health flag and the hub's counters.
struct Shared<'a> {
    /// Set while the store is unavailable.
    down: &'a AtomicBool,
    stats: &'a Stats,
}

/// Apply `ops`, waiting out an unavailable store (capped backoff, for as long as it takes):
/// returns once they are durable, or refused for a reason retrying cannot fix.
async fn commit(store: &dyn Store, ops: &[Op], shared: &Shared<'_>) -> Result<(), StoreError> {
    let mut delay = BACKOFF_MIN;
    let mut attempt = 0u32;
    loop {
        let started = std::time::Instant::now();
        let result = store.apply(ops).await;
        if !matches!(result, Err(StoreError::Unavailable(_))) && shared.down.swap(false, Ordering::AcqRel) {
            // The store answers again (a refusal is an answer too).
            tracing::info!(attempts = attempt, "store available again; publishes accepted");
        }
        match result {
            Ok(()) => {
                shared.stats.store_commit(started.elapsed());
                return Ok(());
            }
            Err(e) if e.is_unavailable() => {
                shared.stats.store_error(e.kind());
                attempt += 1;
                if !shared.down.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "store unavailable: refusing new publishes and retrying until it commits");
                } else {
                    tracing::warn!(error = %e, attempt, "store still unavailable");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_MAX);
            }
            Err(e) => {
                shared.stats.store_error(e.kind());
                return Err(e);
            }
        }
    }
}

/// One item the store refused on its own: tell its owner, commit its stand-in if any.
async fn refuse(store: &dyn Store, refused: Option<Refused>, e: StoreError, shared: &Shared<'_>) {
    let Some(refused) = refused else {
        return tracing::error!(error = %e, "store refused a change; dropped");
    };
    tracing::warn!(error = %e, "store refused a change; its sender is told");
    let Some(instead) = refused(&e) else { return };
    if !instead.ops.is_empty() {
        if let Err(e) = commit(store, &instead.ops, shared).await {
            // Delivered all the same: a stand-in carries nothing to lose, and live
            // subscribers must not wait for its offset.
            tracing::error!(error = %e, "store refused the stand-in of a refused change");
        }
    }
    if let Some(then) = instead.then {
        then();
    }
}

#[cfg(test)]
mod tests;
