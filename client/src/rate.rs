//! Client-side pacing: a token bucket per client that every counted frame draws from, so
//! the client stays under the gateway's command rate on its own (see
//! [`ClientOptions::rate`](crate::ClientOptions::rate)).
//!
//! A server `Throttle { retry_after_ms }` means the client's idea of the limit is wrong (a
//! gateway configured lower, or the user's other sessions share the budget): the pacer
//! pauses for that long, empties its bucket and halves its rate, then grows the rate back
//! by a tenth of the configured rate per second (additive increase, multiplicative
//! decrease). The gateway closes a client only after several throttles in a row, which the
//! halving keeps from happening. The computation is a pure function of the times passed
//! in, so it is tested exactly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::options::RateLimit;

/// The lowest rate the halving goes down to, frames per second.
const MIN_RATE: f64 = 1.0;

/// The token bucket and its pause.
#[derive(Debug)]
pub(crate) struct Pacer {
    limit: Option<RateLimit>,
    rate: f64,
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
}

/// A pacer shared by the driver and the upload tasks.
pub(crate) type SharedPacer = Arc<Mutex<Pacer>>;

impl Pacer {
    pub(crate) fn new(limit: Option<RateLimit>, now: Instant) -> Pacer {
        Pacer {
            rate: limit.map_or(f64::INFINITY, |l| l.per_sec),
            tokens: limit.map_or(0.0, |l| f64::from(l.burst)),
            limit,
            last: now,
            paused_until: None,
        }
    }

    pub(crate) fn shared(limit: Option<RateLimit>) -> SharedPacer {
        Arc::new(Mutex::new(Pacer::new(limit, Instant::now())))
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        if let Some(l) = self.limit {
            if self.paused_until.is_none_or(|u| now >= u) {
                self.tokens = (self.tokens + dt * self.rate).min(f64::from(l.burst));
                self.rate = (self.rate + dt * l.per_sec / 10.0).min(l.per_sec);
            }
        }
    }

    /// Take a token for one frame at `now`; false: not yet (see [`Pacer::ready_at`]).
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if let Some(until) = self.paused_until {
            if now < until {
                return false;
            }
            self.paused_until = None;
            self.last = until;
        }
        if self.limit.is_none() {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When a token will be there (`now` if there is one).
    pub(crate) fn ready_at(&mut self, now: Instant) -> Instant {
        if let Some(until) = self.paused_until.filter(|u| now < *u) {
            // After the pause the bucket starts empty.
            let first = if self.limit.is_some() {
                Duration::from_secs_f64(1.0 / self.rate)
            } else {
                Duration::ZERO
            };
            return until + first;
        }
        if self.limit.is_none() {
            return now;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            return now;
        }
        now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }

    /// The server throttled us: pause `retry_after`, empty the bucket, halve the rate.
    pub(crate) fn throttled(&mut self, retry_after: Duration, now: Instant) {
        self.refill(now);
        let until = now + retry_after;
        self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
        self.tokens = 0.0;
        if self.limit.is_some() {
            self.rate = (self.rate / 2.0).max(MIN_RATE);
        }
    }

    /// The current sustained rate, frames per second (infinite without a limit).
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Wait (asynchronously) for a token of `pacer`.
    pub(crate) async fn take(pacer: &SharedPacer) {
        loop {
            let at = {
                let mut p = pacer.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if p.try_take(now) {
                    return;
                }
                p.ready_at(now)
            };
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> Option<RateLimit> {
        Some(RateLimit {
            per_sec: 10.0,
            burst: 5,
        })
    }

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(limit(), t0);
        for _ in 0..5 {
            assert!(p.try_take(t0));
        }
        assert!(!p.try_take(t0));
        assert_eq!(p.ready_at(t0), t0 + Duration::from_millis(100));
        assert!(!p.try_take(t0 + Duration::from_millis(50)));
        assert!(p.try_take(t0 + Duration::from_millis(100)));
        // A long quiet spell refills up to the burst only.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(p.try_take(later));
        }
        assert!(!p.try_take(later));
    }

    #[test]
    fn throttle_pauses_and_halves_then_recovers() {
        let t0 = Instant::now();
        let mut p = Pacer::new(limit(), t0);
        p.throttled(Duration::from_secs(1), t0);
        assert_eq!(p.rate(), 5.0);
        assert!(!p.try_take(t0 + Duration::from_millis(999)));
        // After the pause the bucket is empty: the first token comes at the halved rate.
        assert_eq!(p.ready_at(t0), t0 + Duration::from_millis(1200));
        assert!(!p.try_take(t0 + Duration::from_millis(1100)));
        assert!(p.try_take(t0 + Duration::from_millis(1250)));
        // A second throttle halves again; the rate never drops below the floor.
        for _ in 0..10 {
            p.throttled(Duration::from_millis(1), t0 + Duration::from_secs(2));
        }
        assert_eq!(p.rate(), MIN_RATE);
        // Recovery: a tenth of the configured rate per second, up to it.
        p.try_take(t0 + Duration::from_secs(100));
        assert_eq!(p.rate(), 10.0);
    }

    #[test]
    fn unlimited_only_pauses() {
        let t0 = Instant::now();
        let mut p = Pacer::new(None, t0);
        for _ in 0..10_000 {
            assert!(p.try_take(t0));
        }
        p.throttled(Duration::from_millis(300), t0);
        assert!(!p.try_take(t0 + Duration::from_millis(299)));
        assert_eq!(p.ready_at(t0), t0 + Duration::from_millis(300));
        assert!(p.try_take(t0 + Duration::from_millis(300)));
    }
}
