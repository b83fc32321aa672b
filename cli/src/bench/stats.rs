//! What every scenario reports: latency percentiles, loss/duplicate counts, and the
//! summary printed for people and (with `--json`) as one JSON object on the last line.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// The process-wide monotonic epoch: publishers stamp payloads with nanoseconds since it
/// and subscribers (in the same process) subtract, so latencies need no wall clock.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Latency samples in microseconds (u32: 71 minutes at most, plenty for a bounded run).
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.micros.push(d.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn push_ns(&mut self, ns: u64) {
        self.micros.push((ns / 1000).min(u64::from(u32::MAX)) as u32);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Sorted percentiles (p50, p95, p99, max) in milliseconds; zeros when empty.
    pub fn percentiles(mut self) -> [f64; 4] {
        if self.micros.is_empty() {
            return [0.0; 4];
        }
        self.micros.sort_unstable();
        let n = self.micros.len();
        let at = |p: f64| {
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            f64::from(self.micros[i]) / 1000.0
        };
        [
            at(0.50),
            at(0.95),
            at(0.99),
            f64::from(self.micros[n - 1]) / 1000.0,
        ]
    }
}

/// The outcome of one scenario run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub scenario: &'static str,
    pub transport: String,
    /// Room messages received by subscribers (unique ones).
    pub deliveries: u64,
    /// Seconds from the first publish to the last delivery (or the scenario's own span).
    pub elapsed_secs: f64,
    /// Messages the server acknowledged.
    pub published: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub errors: u64,
    /// Latency percentiles in ms: p50, p95, p99, max.
    pub latency_ms: [f64; 4],
    /// Scenario-specific fields, printed after the common ones.
    pub extra: Map<String, Value>,
}

impl Summary {
    pub fn deliveries_per_sec(&self) -> f64 {
        if self.elapsed_secs > 0.0 {
            self.deliveries as f64 / self.elapsed_secs
        } else {
            0.0
        }
    }

    /// The JSON object: the common fields every scenario has, then the extras.
    pub fn to_json(&self) -> Value {
        let [p50, p95, p99, max] = self.latency_ms;
        let mut v = json!({
            "scenario": self.scenario,
            "transport": self.transport,
            "deliveries": self.deliveries,
            "deliveries_per_sec": round(self.deliveries_per_sec()),
            "published": self.published,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "errors": self.errors,
            "p50_ms": round(p50),
            "p95_ms": round(p95),
            "p99_ms": round(p99),
            "max_ms": round(max),
            "elapsed_secs": round(self.elapsed_secs),
        });
        if let Value::Object(m) = &mut v {
            m.extend(self.extra.clone());
        }
        v
    }

    /// Print the human summary, then (with `json`) the JSON object as the last line.
    pub fn print(&self, json: bool) {
        let [p50, p95, p99, max] = self.latency_ms;
        println!(
            "{} over {}: {} deliveries in {:.2} s = {:.0}/s; {} published; lost {}, duplicated {}, errors {}",
            self.scenario,
            self.transport,
            self.deliveries,
            self.elapsed_secs,
            self.deliveries_per_sec(),
            self.published,
            self.lost,
            self.duplicated,
            self.errors
        );
        println!("  latency p50 {p50:.2} ms, p95 {p95:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
        for (k, v) in &self.extra {
            println!("  {k}: {v}");
        }
        if json {
            println!("{}", self.to_json());
        }
    }
}

/// Three decimals are plenty and keep the JSON readable.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Which (publisher, sequence) pairs one subscriber has seen: a bitmap per publisher.
#[derive(Debug, Default)]
pub struct Seen {
    bits: Vec<Vec<u64>>,
    pub unique: u64,
    pub duplicated: u64,
}

impl Seen {
    /// Record a delivery; false if it was a duplicate.
    pub fn record(&mut self, publisher: usize, seq: u64) -> bool {
        if self.bits.len() <= publisher {
            self.bits.resize_with(publisher + 1, Vec::new);
        }
        let words = &mut self.bits[publisher];
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if words.len() <= w {
            words.resize(w + 1, 0);
        }
        if words[w] & (1 << b) != 0 {
            self.duplicated += 1;
            return false;
        }
        words[w] |= 1 << b;
        self.unique += 1;
        true
    }

    pub fn has(&self, publisher: usize, seq: u64) -> bool {
        self.bits
            .get(publisher)
            .and_then(|w| w.get((seq / 64) as usize))
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// How many of `expected` (acked sequences per publisher) were never seen.
    pub fn missing(&self, expected: &[(usize, Vec<u64>)]) -> u64 {
        expected
            .iter()
            .map(|(p, seqs)| seqs.iter().filter(|&&s| !self.has(*p, s)).count() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_counts_duplicates_and_missing() {
        let mut s = Seen::default();
        assert!(s.record(0, 1));
        assert!(s.record(2, 130));
        assert!(!s.record(0, 1));
        assert_eq!((s.unique, s.duplicated), (2, 1));
        let expected = vec![(0, vec![0, 1, 2]), (2, vec![130])];
        assert_eq!(s.missing(&expected), 2);
    }

    #[test]
    fn percentiles_of_a_known_set() {
        let mut l = Latencies::default();
        for ms in 1..=100u64 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.percentiles(), [50.0, 95.0, 99.0, 100.0]);
        assert_eq!(Latencies::default().percentiles(), [0.0; 4]);
    }
}
