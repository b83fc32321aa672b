//! Admission and abuse limits shared by every transport: how many connections, how fast
//! one IP may open them, and counters of everything a limit refused or dropped.
//!
//! Per-client rates live with the session ([`crate::session::rate`]); room limits in the
//! hub's join. This module holds what the accept paths (QUIC, WebTransport, WebSocket)
//! consult before a session exists, so a refused connection costs no handshake work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::config::ServerConfig;

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            last: now,
            rate,
            burst: f64::from(burst),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Take one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Seconds until the bucket holds `n` tokens (0 if it does).
    pub fn secs_until(&mut self, n: f64, now: Instant) -> f64 {
        self.refill(now);
        ((n.min(self.burst) - self.tokens) / self.rate).max(0.0)
    }

    /// True when full again: nothing to remember about this client.
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// Why a connection attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many new connections from this address")]
    IpRate,
    #[error("server full: max_connections reached")]
    Full,
}

/// Counters of what the limits refused, dropped or closed (read by tests and metrics).
#[derive(Debug, Default)]
pub struct LimitStats {
    /// Connection attempts refused by the per-IP rate.
    pub refused_ip_rate: AtomicU64,
    /// Connection attempts refused by max_connections.
    pub refused_full: AtomicU64,
    /// Throttle frames sent.
    pub throttles: AtomicU64,
    /// Connections closed with RateLimited.
    pub rate_limited: AtomicU64,
    /// Client datagrams dropped: larger than limits.max_datagram.
    pub datagrams_oversized: AtomicU64,
    /// Client datagrams dropped: not a valid frame.
    pub datagrams_malformed: AtomicU64,
    /// Client datagrams dropped: the client was over its rate.
    pub datagrams_over_rate: AtomicU64,
    /// Server datagrams (typing, presence) dropped because the client was backed up.
    pub droppable_dropped: AtomicU64,
    /// Connections closed as slow consumers.
    pub slow_consumers: AtomicU64,
}

impl LimitStats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Gateway-wide admission: live connection count and the per-IP connection rate.
#[derive(Debug)]
pub struct Limits {
    max_connections: usize,
    ip_rate: f64,
    ip_burst: u32,
    ip_table_size: usize,
    live: AtomicUsize,
    ips: Mutex<HashMap<IpAddr, TokenBucket>>,
    pub stats: LimitStats,
}

/// One admitted connection; dropping it frees its slot.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
}

impl Permit {
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    pub fn new(cfg: &ServerConfig) -> Arc<Limits> {
        Arc::new(Limits {
            max_connections: cfg.max_connections,
            ip_rate: cfg.limits.connections_per_ip_per_sec,
            ip_burst: cfg.limits.connections_per_ip_burst,
            ip_table_size: cfg.limits.ip_table_size,
            live: AtomicUsize::new(0),
            ips: Mutex::new(HashMap::new()),
            stats: LimitStats::default(),
        })
    }

    /// Connections admitted and not yet ended (handshaking ones included).
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Admit a new connection from `ip`, or say why not. Counted as refused either way.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        if !self.ip_allows(ip) {
            LimitStats::bump(&self.stats.refused_ip_rate);
            return Err(Refusal::IpRate);
        }
        let admitted = self
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_connections).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            LimitStats::bump(&self.stats.refused_full);
            return Err(Refusal::Full);
        }
        Ok(Permit { limits: self.clone() })
    }

    /// Take a token from `ip`'s bucket. The table is bounded: when full, buckets that
    /// refilled (idle IPs) are forgotten; if it is still full, the address is let through
    /// untracked (max_connections still holds) rather than refusing every newcomer.
    fn ip_allows(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut ips = self.ips.lock();
        if !ips.contains_key(&ip) && ips.len() >= self.ip_table_size {
            ips.retain(|_, b| !b.is_full(now));
            if ips.len() >= self.ip_table_size {
                tracing::warn!("per-IP connection table full; admitting {ip} untracked");
                return true;
            }
        }
        ips.entry(ip)
            .or_insert_with(|| TokenBucket::new(self.ip_rate, self.ip_burst, now))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 2, t0);
        assert!(b.take(t0) && b.take(t0));
        assert!(!b.take(t0), "burst spent");
        assert!((b.secs_until(1.0, t0) - 0.1).abs() < 1e-9);
        assert!(b.take(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn admission_counts_and_frees_slots() {
        let cfg = ServerConfig {
            max_connections: 2,
            ..ServerConfig::default()
        };
        let limits = Limits::new(&cfg);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = limits.admit(ip).unwrap();
        let _b = limits.admit(ip).unwrap();
        assert_eq!(limits.admit(ip).unwrap_err(), Refusal::Full);
        drop(a);
        assert!(limits.admit(ip).is_ok(), "a freed slot is reused");
        assert_eq!(LimitStats::get(&limits.stats.refused_full), 1);
    }

    #[test]
    fn per_ip_rate_and_bounded_table() {
        let mut cfg = ServerConfig::default();
        cfg.limits.connections_per_ip_burst = 3;
        cfg.limits.connections_per_ip_per_sec = 0.001;
        cfg.limits.ip_table_size = 4;
        let limits = Limits::new(&cfg);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let permits: Vec<_> = (0..3).map(|_| limits.admit(ip).unwrap()).collect();
        assert_eq!(limits.admit(ip).unwrap_err(), Refusal::IpRate);
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.admit(other).is_ok(), "another IP has its own bucket");
        for i in 3..20u8 {
            let _ = limits.admit(IpAddr::from([192, 0, 2, i]));
        }
        assert!(limits.ips.lock().len() <= 4, "table stays bounded");
        drop(permits);
    }
}
