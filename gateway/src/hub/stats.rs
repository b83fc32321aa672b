//! What the hub counts about itself: fan-outs, publish latency, store commits and errors.
//!
//! Plain atomics, one set per hub: the hub records here and never names the metrics
//! module; `/metrics` renders a [`StatsSnapshot`] (see `crate::metrics`). Recording is an
//! atomic add or three, no lock and no allocation, so it stays on the fan-out fast path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of every latency histogram: upper bounds `FIRST_BUCKET * 2^i` seconds for
/// `i < BUCKETS`, then +Inf (50µs to ~13s).
pub const BUCKETS: usize = 19;
/// Upper bound of the first bucket, in seconds.
pub const FIRST_BUCKET: f64 = 0.00005;

/// The upper bounds of the finite buckets, in seconds.
pub fn bucket_bounds() -> impl Iterator<Item = f64> {
    (0..BUCKETS).map(|i| FIRST_BUCKET * 2f64.powf(i as f64))
}

/// A latency histogram of atomics (classic buckets, `le` semantics).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: [AtomicU64; BUCKETS + 1],
    sum_nanos: AtomicU64,
}

/// A histogram read at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket (not cumulative), the finite ones of [`bucket_bounds`] then +Inf.
    pub counts: [u64; BUCKETS + 1],
    /// Sum of the observations, in seconds.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// Count one observation of `took`.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut bound = FIRST_BUCKET;
        let mut i = 0;
        while i < BUCKETS && secs > bound {
            i += 1;
            bound *= 2.0;
        }
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Kinds of failed store commits, in the order of [`Stats::store_errors`]; the names are
/// those of `crate::store::StoreError::kind`.
pub const STORE_ERROR_KINDS: [&str; 3] = ["conflict", "unavailable", "other"];

/// The hub's counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Room events delivered (one per event, whatever the audience).
    fanouts: AtomicU64,
    /// Recipients of those events.
    deliveries: AtomicU64,
    /// A room event from its command's arrival to its frame queued to every subscriber.
    publish: Histogram,
    /// One group commit.
    store_commit: Histogram,
    /// One history page read.
    store_history: Histogram,
    /// Failed store commits by [`STORE_ERROR_KINDS`].
    store_errors: [AtomicU64; 3],
}

/// [`Stats`] read at one instant.
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    pub fanouts: u64,
    pub deliveries: u64,
    pub publish: HistogramSnapshot,
    pub store_commit: HistogramSnapshot,
    pub store_history: HistogramSnapshot,
    /// By [`STORE_ERROR_KINDS`].
    pub store_errors: [u64; 3],
}

impl Stats {
    /// One room event reached `recipients` subscribers' queues, `since` its command arrived.
    #[inline]
    pub fn fanout(&self, recipients: usize, since: std::time::Instant) {
        self.fanouts.fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(recipients as u64, Ordering::Relaxed);
        self.publish.observe(since.elapsed());
    }

    /// One group commit took `took`.
    pub fn store_commit(&self, took: Duration) {
        self.store_commit.observe(took);
    }

    /// A store commit failed; `kind` is `StoreError::kind` (unknown kinds count as other).
    pub fn store_error(&self, kind: &str) {
        let i = STORE_ERROR_KINDS.iter().position(|k| *k == kind).unwrap_or(2);
        self.store_errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One history page took `took`.
    pub fn store_history(&self, took: Duration) {
        self.store_history.observe(took);
    }

    /// Everything, now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            fanouts: self.fanouts.load(Ordering::Relaxed),
            deliveries: self.deliveries.load(Ordering::Relaxed),
            publish: self.publish.snapshot(),
            store_commit: self.store_commit.snapshot(),
            store_history: self.store_history.snapshot(),
            store_errors: std::array::from_fn(|i| self.store_errors[i].load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50)); // on the first bound: le="5e-5"
        h.observe(Duration::from_micros(51)); // second bucket
        h.observe(Duration::from_secs(60)); // past the last bound: +Inf
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[BUCKETS], 1);
        assert_eq!(s.count(), 3);
        assert!((s.sum - 60.000101).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn store_errors_count_by_kind() {
        let stats = Stats::default();
        stats.store_error("unavailable");
        stats.store_error("conflict");
        stats.store_error("something new");
        assert_eq!(stats.snapshot().store_errors, [1, 1, 1]);
    }
}
