//! Per-client frame rate: one token bucket per session, shared by all its readers, and
//! the buckets every session of the same user and from the same IP share
//! ([`crate::limits::RateTables`]), so ten sessions get no more than one user (or one
//! address) may send.
//!
//! Every client frame that makes the server act (commands, acks, upload chunks, typing
//! datagrams, pings) takes a token from all three buckets; it goes only when all three
//! have one. When one is empty the client is sent one
//! `Throttle { retry_after_ms }` and every reader of the session pauses for that long: the
//! frames wait in the transport's flow-control window (QUIC) or the socket (WebSocket),
//! never in a server-side buffer. A client still over the limit after
//! `limits.max_throttles` throttles within `limits.throttle_window_secs` is closed with
//! RateLimited. Datagrams are not paused (they would only pile up): over the rate they
//! are dropped and counted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use garou_protocol::{Message, Throttle};
use parking_lot::Mutex;

use crate::config::LimitsConfig;
use crate::conn::Conn;
use crate::limits::{LimitStats, SharedBucket, TokenBucket};

/// Verdict for one frame when the bucket is empty.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it now.
    Go,
    /// Wait this long, then ask again; `throttle` says whether to tell the client.
    Wait { pause: Duration, throttle: bool },
    /// Sustained abuse: close with RateLimited.
    Close,
}

struct State {
    bucket: TokenBucket,
    /// While paused, readers wait until this instant.
    paused_until: Option<Instant>,
    /// When recent throttles were sent (within the window).
    throttles: VecDeque<Instant>,
}

/// The session's frame-rate limiter.
pub struct RateGate {
    state: Mutex<State>,
    /// The user's and the IP's buckets (locked in this order, after `state`).
    user: SharedBucket,
    ip: SharedBucket,
    /// Tokens the session's bucket refills to before a throttled client may go on.
    resume_at: f64,
    max_throttles: usize,
    window: Duration,
}

impl RateGate {
    /// A gate drawing from its own bucket and from `(user, ip)`, the buckets shared with
    /// the user's other sessions and with the sessions from the same IP.
    pub fn new(cfg: &LimitsConfig, (user, ip): (SharedBucket, SharedBucket)) -> RateGate {
        RateGate {
            user,
            ip,
            state: Mutex::new(State {
                bucket: TokenBucket::new(cfg.commands_per_sec, cfg.command_burst, Instant::now()),
                paused_until: None,
                throttles: VecDeque::new(),
            }),
            // Resume once half the burst is back: a throttled client gets a useful budget.
            resume_at: (f64::from(cfg.command_burst) / 2.0).max(1.0),
            max_throttles: cfg.max_throttles as usize,
            window: Duration::from_secs(cfg.throttle_window_secs),
        }
    }

    /// Decide about one frame at `now` (sans-IO core of [`RateGate::admit`]).
    pub fn check(&self, now: Instant) -> Verdict {
        let mut st = self.state.lock();
        if let Some(until) = st.paused_until {
            if now < until {
                return Verdict::Wait {
                    pause: until - now,
                    throttle: false,
                };
            }
            st.paused_until = None;
        }
        let (mut user, mut ip) = (self.user.lock(), self.ip.lock());
        if st.bucket.has_token(now) && user.has_token(now) && ip.has_token(now) {
            st.bucket.take(now);
            user.take(now);
            ip.take(now);
            return Verdict::Go;
        }
        while st
            .throttles
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            st.throttles.pop_front();
        }
        if st.throttles.len() >= self.max_throttles {
            return Verdict::Close;
        }
        st.throttles.push_back(now);
        // Until every bucket holds a useful budget again: half its burst (a shared bucket
        // is refilled for all its sessions at once).
        let half = |b: &TokenBucket| (b.burst() / 2.0).max(1.0);
        let (user_at, ip_at) = (half(&user), half(&ip));
        let wait = st
            .bucket
            .secs_until(self.resume_at, now)
            .max(user.secs_until(user_at, now))
            .max(ip.secs_until(ip_at, now));
        let pause = Duration::from_secs_f64(wait).max(Duration::from_millis(1));
        st.paused_until = Some(now + pause);
        Verdict::Wait {
            pause,
            throttle: true,
        }
    }

    /// Take a token for a frame from a stream, waiting (and throttling) as needed.
    /// `Err` means: close the session with RateLimited.
    pub async fn admit(&self, handle: &Conn, stats: &LimitStats) -> Result<(), String> {
        loop {
            match self.check(Instant::now()) {
                Verdict::Go => return Ok(()),
                Verdict::Wait { pause, throttle } => {
                    if throttle {
                        LimitStats::bump(&stats.throttles);
                        let retry_after_ms = pause.as_millis().clamp(1, u128::from(u32::MAX)) as u32;
                        handle.control(&Message::from(Throttle { retry_after_ms }));
                    }
                    tokio::time::sleep(pause).await;
                }
                Verdict::Close => {
                    LimitStats::bump(&stats.rate_limited);
                    return Err(format!(
                        "rate limited: still over the limit after {} throttles",
                        self.max_throttles
                    ));
                }
            }
        }
    }

    /// Take a token for a datagram without waiting; `false` = drop it.
    pub fn try_take(&self) -> bool {
        let now = Instant::now();
        let mut st = self.state.lock();
        if st.paused_until.is_some_and(|u| now < u) {
            return false;
        }
        let (mut user, mut ip) = (self.user.lock(), self.ip.lock());
        if st.bucket.has_token(now) && user.has_token(now) && ip.has_token(now) {
            st.bucket.take(now);
            user.take(now);
            ip.take(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(rate: f64, burst: u32) -> SharedBucket {
        std::sync::Arc::new(Mutex::new(TokenBucket::new(rate, burst, Instant::now())))
    }

    fn gate(rate: f64, burst: u32, max_throttles: u32) -> RateGate {
        let roomy = (shared(1e9, u32::MAX), shared(1e9, u32::MAX));
        gate_with(rate, burst, max_throttles, roomy)
    }

    fn gate_with(
        rate: f64,
        burst: u32,
        max_throttles: u32,
        buckets: (SharedBucket, SharedBucket),
    ) -> RateGate {
        RateGate::new(
            &LimitsConfig {
                commands_per_sec: rate,
                command_burst: burst,
                max_throttles,
                throttle_window_secs: 10,
                ..LimitsConfig::default()
            },
            buckets,
        )
    }

    #[test]
    fn sessions_sharing_a_user_bucket_share_its_budget() {
        let user = shared(1.0, 6);
        let t0 = Instant::now();
        let a = gate_with(100.0, 100, 5, (user.clone(), shared(1e9, u32::MAX)));
        let b = gate_with(100.0, 100, 5, (user.clone(), shared(1e9, u32::MAX)));
        let other = gate_with(100.0, 100, 5, (shared(1.0, 6), shared(1e9, u32::MAX)));
        for _ in 0..3 {
            assert_eq!(a.check(t0), Verdict::Go);
            assert_eq!(b.check(t0), Verdict::Go);
        }
        assert!(matches!(a.check(t0), Verdict::Wait { throttle: true, .. }));
        let Verdict::Wait {
            pause,
            throttle: true,
        } = b.check(t0)
        else {
            panic!("the user's bucket is empty for every session")
        };
        assert_eq!(
            pause,
            Duration::from_secs(3),
            "until half the user's burst is back"
        );
        assert!(!b.try_take(), "datagrams are dropped too");
        for _ in 0..6 {
            assert_eq!(other.check(t0), Verdict::Go, "another user keeps its budget");
        }
    }

    #[test]
    fn nothing_is_taken_when_one_bucket_is_empty() {
        let (user, ip) = (shared(1.0, 2), shared(1.0, 1));
        let t0 = Instant::now();
        let g = gate_with(100.0, 100, 5, (user.clone(), ip.clone()));
        assert_eq!(g.check(t0), Verdict::Go);
        assert!(matches!(g.check(t0), Verdict::Wait { throttle: true, .. }));
        assert!(
            user.lock().has_token(t0),
            "the user's token was not spent by a refused frame"
        );
    }

    #[test]
    fn burst_then_throttle_then_close() {
        let g = gate(100.0, 4, 2);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(g.check(t0), Verdict::Go);
        }
        let Verdict::Wait {
            pause,
            throttle: true,
        } = g.check(t0)
        else {
            panic!("first empty bucket throttles")
        };
        assert_eq!(pause, Duration::from_millis(20), "until half the burst is back");
        assert!(
            matches!(g.check(t0), Verdict::Wait { throttle: false, .. }),
            "one Throttle per pause"
        );
        let t1 = t0 + pause;
        assert_eq!(g.check(t1), Verdict::Go);
        assert_eq!(g.check(t1), Verdict::Go);
        assert!(matches!(g.check(t1), Verdict::Wait { throttle: true, .. }));
        let t2 = t1 + Duration::from_millis(20);
        assert_eq!(g.check(t2), Verdict::Go);
        assert_eq!(g.check(t2), Verdict::Go);
        assert_eq!(g.check(t2), Verdict::Close, "over the limit after 2 throttles");
    }

    #[test]
    fn obeying_clients_are_never_closed() {
        let g = gate(100.0, 4, 1);
        let mut now = Instant::now();
        for _ in 0..50 {
            for _ in 0..4 {
                assert_eq!(g.check(now), Verdict::Go);
            }
            // Waiting out the window's worth of throttles, then a full bucket again.
            now += Duration::from_secs(11);
        }
    }
}
