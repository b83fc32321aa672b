//! Per-client frame rate: one token bucket per session, shared by all its readers.
//!
//! Every client frame that makes the server act (commands, acks, upload chunks, typing
//! datagrams, pings) takes a token. When the bucket is empty the client is sent one
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
use crate::limits::{LimitStats, TokenBucket};
use crate::session::outbound::Conn;

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
    /// Tokens the bucket refills to before a throttled client may go on.
    resume_at: f64,
    max_throttles: usize,
    window: Duration,
}

impl RateGate {
    pub fn new(cfg: &LimitsConfig) -> RateGate {
        RateGate {
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
        if st.bucket.take(now) {
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
        let pause =
            Duration::from_secs_f64(st.bucket.secs_until(self.resume_at, now)).max(Duration::from_millis(1));
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
        st.bucket.take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(rate: f64, burst: u32, max_throttles: u32) -> RateGate {
        RateGate::new(&LimitsConfig {
            commands_per_sec: rate,
            command_burst: burst,
            max_throttles,
            throttle_window_secs: 10,
            ..LimitsConfig::default()
        })
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
