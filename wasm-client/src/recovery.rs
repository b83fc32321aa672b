//! Reconnect policy without a browser: the settings `connect()` resolves from its options
//! (with defaults and bounds), the backoff schedule with jitter, the send pacer (a token
//! bucket plus an in-flight window) and which failures end the client for good.
//!
//! Everything here is plain Rust, unit-tested natively; the browser driver (`web`) only
//! reads the clock and the timers.

use garou_protocol::ErrorCode;

use crate::wire::ConnectOptions;

/// Error codes raised by this client only (not on the wire), next to [`ErrorCode`] names.
pub mod client_code {
    /// The application called `close()`: queued commands fail with it.
    pub const CLOSED: &str = "Closed";
    /// A command was issued while disconnected and the outgoing queue is full.
    pub const QUEUE_FULL: &str = "QueueFull";
    /// The gateway's `/cert-hash` reports a certificate other than the pinned `certHash`.
    pub const CERTIFICATE_MISMATCH: &str = "CertificateMismatch";
}

/// Timing and size settings of one client, from [`ConnectOptions`] with defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Gateway origins, tried in turn (the first one first).
    pub urls: Vec<String>,
    /// Reconnect after a lost connection (default true).
    pub reconnect: bool,
    /// First backoff delay, ms (default 1,000); doubles per failed attempt.
    pub backoff_initial_ms: u32,
    /// Largest backoff delay, ms (default 60,000).
    pub backoff_max_ms: u32,
    /// A keep-alive ping every this many ms while connected (default 1,000).
    pub ping_interval_ms: u32,
    /// No byte from the server for this long: the connection is dead (default 3,000).
    pub dead_after_ms: u32,
    /// A request without a reply after this long rejects with `Timeout` (default 10,000).
    pub request_timeout_ms: u32,
    /// The Garou handshake must complete within this (default 10,000).
    pub handshake_timeout_ms: u32,
    /// Commands waiting to be sent (while disconnected or paced), at most (default 1,000).
    pub max_queue: usize,
    /// Commands per second this client sends at most, sustained (default 50; the
    /// gateway's default per-session limit is 100).
    pub send_rate: f64,
    /// Commands sent at once before `send_rate` applies (default 50).
    pub send_burst: u32,
    /// Requests awaiting a reply, at most (default 100): bounds what a reconnect re-sends
    /// at once.
    pub max_in_flight: usize,
    /// `certHashUrl`: where to fetch the WebTransport certificate hash (default
    /// `<url>/cert-hash`), fetched again before every attempt.
    pub cert_hash_url: Option<String>,
    /// `certHash`: a pinned certificate hash (64 hex digits).
    pub cert_hash: Option<String>,
}

/// Bounds of the numeric options: (name, min, max).
const BOUNDS: &[(&str, f64, f64)] = &[
    ("backoffInitialMs", 10.0, 3_600_000.0),
    ("backoffMaxMs", 10.0, 3_600_000.0),
    ("pingIntervalMs", 100.0, 600_000.0),
    ("deadAfterMs", 200.0, 3_600_000.0),
    ("requestTimeoutMs", 100.0, 3_600_000.0),
    ("handshakeTimeoutMs", 100.0, 3_600_000.0),
    ("maxQueue", 0.0, 1_000_000.0),
    ("sendRate", 0.1, 100_000.0),
    ("sendBurst", 1.0, 100_000.0),
    ("maxInFlight", 1.0, 100_000.0),
];

fn bounded(name: &str, v: Option<f64>, default: f64) -> Result<f64, String> {
    let Some(v) = v else { return Ok(default) };
    let (_, lo, hi) = BOUNDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .copied()
        .unwrap_or((name, 0.0, f64::MAX));
    if !v.is_finite() || v < lo || v > hi {
        return Err(format!("{name} must be between {lo} and {hi}, not {v}"));
    }
    Ok(v)
}

impl Settings {
    /// The `sessionStorage` key of the resume token for these gateways: a reloaded page
    /// offers the token its previous page stored, and takes its session over at once.
    pub fn resume_key(&self) -> String {
        format!("garou.resume:{}", self.urls.join(" "))
    }

    /// Resolve `o`; `default_origin` is used when neither `url` nor `urls` is given.
    pub fn from_options(o: &ConnectOptions, default_origin: Option<String>) -> Result<Settings, String> {
        let mut urls: Vec<String> = o
            .urls
            .iter()
            .flatten()
            .filter(|u| !u.is_empty())
            .cloned()
            .collect();
        if let Some(u) = o.url.as_ref().filter(|u| !u.is_empty()) {
            if !urls.contains(u) {
                urls.insert(0, u.clone());
            }
        }
        if urls.is_empty() {
            urls.extend(default_origin);
        }
        if urls.is_empty() {
            return Err("no url given and no location.origin".into());
        }
        if urls.len() > 64 {
            return Err(format!("at most 64 urls, not {}", urls.len()));
        }
        let ms = |name: &str, v: Option<f64>, d: u32| bounded(name, v, f64::from(d)).map(|v| v as u32);
        let s = Settings {
            urls,
            reconnect: o.reconnect.unwrap_or(true),
            backoff_initial_ms: ms("backoffInitialMs", o.backoff_initial_ms, 1_000)?,
            backoff_max_ms: ms("backoffMaxMs", o.backoff_max_ms, 60_000)?,
            ping_interval_ms: ms("pingIntervalMs", o.ping_interval_ms, 1_000)?,
            dead_after_ms: ms("deadAfterMs", o.dead_after_ms, 3_000)?,
            request_timeout_ms: ms("requestTimeoutMs", o.request_timeout_ms, 10_000)?,
            handshake_timeout_ms: ms("handshakeTimeoutMs", o.handshake_timeout_ms, 10_000)?,
            max_queue: bounded("maxQueue", o.max_queue, 1_000.0)? as usize,
            send_rate: bounded("sendRate", o.send_rate, 50.0)?,
            send_burst: bounded("sendBurst", o.send_burst, 50.0)? as u32,
            max_in_flight: bounded("maxInFlight", o.max_in_flight, 100.0)? as usize,
            cert_hash_url: o.cert_hash_url.clone().filter(|u| !u.is_empty()),
            cert_hash: o.cert_hash.clone().filter(|h| !h.is_empty()),
        };
        if s.backoff_max_ms < s.backoff_initial_ms {
            return Err("backoffMaxMs must not be below backoffInitialMs".into());
        }
        if s.dead_after_ms <= s.ping_interval_ms {
            return Err("deadAfterMs must be above pingIntervalMs".into());
        }
        if let Some(h) = &s.cert_hash {
            crate::wire::parse_sha256_hex(h).map_err(|e| format!("certHash: {e}"))?;
        }
        Ok(s)
    }

    /// The delay before reconnect attempt `attempt` (1 for the first): the cap doubles
    /// from `backoff_initial_ms` up to `backoff_max_ms`, and the delay is drawn uniformly
    /// from its upper half (`random` in [0, 1)), so clients that lost the same gateway do
    /// not come back in lockstep.
    pub fn backoff_ms(&self, attempt: u32, random: f64) -> u32 {
        let doublings = attempt.saturating_sub(1).min(31);
        let cap = u64::from(self.backoff_initial_ms)
            .saturating_mul(1u64 << doublings)
            .min(u64::from(self.backoff_max_ms));
        let half = cap / 2;
        let jitter = (random.clamp(0.0, 1.0) * (cap - half) as f64) as u64;
        (half + jitter).min(cap) as u32
    }

    /// The gateway origin of attempt `n` (0-based, counting every attempt): each
    /// configured address in turn.
    pub fn url_of(&self, n: u32) -> &str {
        &self.urls[n as usize % self.urls.len()]
    }
}

/// Whether a failure ends the client instead of leading to another attempt.
pub fn is_terminal(code: &str) -> bool {
    code == client_code::CERTIFICATE_MISMATCH
        || code == client_code::CLOSED
        || [
            ErrorCode::AuthFailed,
            ErrorCode::Banned,
            ErrorCode::Kicked,
            ErrorCode::SessionReplaced,
            ErrorCode::UnsupportedVersion,
            ErrorCode::InvalidArgument,
        ]
        .iter()
        .any(|c| crate::model::code_name(*c) == code)
}

/// A token bucket: `rate` tokens per second up to `burst`, one per command.
#[derive(Clone, Debug)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: u64,
}

impl Pacer {
    /// A full bucket at `now` (ms).
    pub fn new(rate: f64, burst: u32, now: u64) -> Pacer {
        Pacer {
            rate,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, now: u64) {
        if now > self.at {
            self.tokens = (self.tokens + (now - self.at) as f64 * self.rate / 1000.0).min(self.burst);
            self.at = now;
        }
    }

    /// Take a token if there is one.
    pub fn try_take(&mut self, now: u64) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there (`now` if it is).
    pub fn next_token_at(&mut self, now: u64) -> u64 {
        self.refill(now);
        if self.tokens >= 1.0 {
            return now;
        }
        now + ((1.0 - self.tokens) * 1000.0 / self.rate).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: &str) -> ConnectOptions {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_and_url_order() {
        let s = Settings::from_options(&opts(r#"{"url":"http://a"}"#), None).unwrap();
        assert_eq!(s.urls, vec!["http://a"]);
        assert!(s.reconnect);
        assert_eq!((s.backoff_initial_ms, s.backoff_max_ms), (1_000, 60_000));
        assert_eq!((s.ping_interval_ms, s.dead_after_ms), (1_000, 3_000));
        assert_eq!(s.max_queue, 1_000);

        let s = Settings::from_options(
            &opts(r#"{"url":"http://a","urls":["http://b","http://a","http://c"]}"#),
            None,
        )
        .unwrap();
        assert_eq!(s.urls, vec!["http://b", "http://a", "http://c"]);
        assert_eq!(
            [s.url_of(0), s.url_of(1), s.url_of(2), s.url_of(3)],
            ["http://b", "http://a", "http://c", "http://b"]
        );

        let s = Settings::from_options(&opts(r#"{"urls":["http://b"]}"#), Some("http://o".into())).unwrap();
        assert_eq!(s.urls, vec!["http://b"]);
        let s = Settings::from_options(&opts("{}"), Some("http://o".into())).unwrap();
        assert_eq!(s.urls, vec!["http://o"]);
        assert!(Settings::from_options(&opts("{}"), None).is_err());
    }

    #[test]
    fn bad_numbers_are_refused() {
        for bad in [
            r#"{"url":"http://a","deadAfterMs":5}"#,
            r#"{"url":"http://a","pingIntervalMs":3000,"deadAfterMs":3000}"#,
            r#"{"url":"http://a","backoffInitialMs":5000,"backoffMaxMs":1000}"#,
            r#"{"url":"http://a","sendRate":0}"#,
            r#"{"url":"http://a","certHash":"zz"}"#,
        ] {
            assert!(Settings::from_options(&opts(bad), None).is_err(), "{bad}");
        }
        let s = Settings::from_options(
            &opts(r#"{"url":"http://a","reconnect":false,"maxQueue":0,"pingIntervalMs":500,"deadAfterMs":1500}"#),
            None,
        )
        .unwrap();
        assert!(!s.reconnect);
        assert_eq!(
            (s.max_queue, s.ping_interval_ms, s.dead_after_ms),
            (0, 500, 1_500)
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute_with_jitter_in_the_upper_half() {
        let s = Settings::from_options(&opts(r#"{"url":"http://a"}"#), None).unwrap();
        let caps = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000];
        for (i, cap) in caps.iter().enumerate() {
            let a = i as u32 + 1;
            assert_eq!(s.backoff_ms(a, 0.0), cap / 2, "attempt {a}");
            assert_eq!(s.backoff_ms(a, 0.999_999), cap - 1, "attempt {a}");
            let mid = s.backoff_ms(a, 0.5);
            assert!(mid > cap / 2 && mid < *cap, "attempt {a}: {mid}");
        }
        assert_eq!(s.backoff_ms(u32::MAX, 1.0), 60_000);
    }

    #[test]
    fn terminal_codes() {
        for c in [
            "AuthFailed",
            "Banned",
            "Kicked",
            "SessionReplaced",
            "CertificateMismatch",
            "Closed",
        ] {
            assert!(is_terminal(c), "{c}");
        }
        for c in [
            "Disconnected",
            "Timeout",
            "ShuttingDown",
            "RateLimited",
            "NickUnavailable",
            "Unavailable",
        ] {
            assert!(!is_terminal(c), "{c}");
        }
    }

    #[test]
    fn pacer_allows_a_burst_then_the_rate() {
        let mut p = Pacer::new(10.0, 3, 0);
        assert!((0..3).all(|_| p.try_take(0)));
        assert!(!p.try_take(0));
        assert_eq!(p.next_token_at(0), 100);
        assert!(!p.try_take(99));
        assert!(p.try_take(100));
        // Idle time refills up to the burst only.
        assert!((0..3).all(|_| p.try_take(10_000)));
        assert!(!p.try_take(10_000));
    }
}
