//! Admission and abuse limits shared by every transport: how many connections, how fast
//! one IP may open them and how many it may hold open, the gateway-wide budget for
//! buffered partial frames, and counters of everything a limit refused or dropped.
//!
//! Per-client rates live with the session ([`crate::session::rate`], which takes its
//! per-user and per-IP buckets from [`RateTables`]); room limits in the hub's join. This
//! module holds what the accept paths (QUIC, WebTransport, WebSocket) consult before a
//! session exists, so a refused connection costs no handshake work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::config::ServerConfig;

/// The address a per-IP limit counts: an IPv4-mapped IPv6 address as the IPv4 address it
/// is (a dual-stack listener sees both forms), and an IPv6 address as its /64, which one
/// host usually holds whole (otherwise one client would have 2^64 addresses to rotate).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

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

    /// True when at least one token is there (refilling first).
    pub fn has_token(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    /// The bucket size.
    pub fn burst(&self) -> f64 {
        self.burst
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
    #[error("too many open connections from this address (limits.max_connections_per_ip)")]
    IpConnections,
}

/// Counters of what the limits refused, dropped or closed (read by tests and metrics).
#[derive(Debug, Default)]
pub struct LimitStats {
    /// Connection attempts refused by the per-IP rate.
    pub refused_ip_rate: AtomicU64,
    /// Connection attempts refused by max_connections.
    pub refused_full: AtomicU64,
    /// Connection attempts refused by limits.max_connections_per_ip.
    pub refused_ip_connections: AtomicU64,
    /// Connections closed for buffering more partial-frame bytes than
    /// limits.max_buffered_per_connection.
    pub buffer_overflows: AtomicU64,
    /// Connections closed because the gateway-wide limits.buffer_budget was spent.
    pub budget_exhausted: AtomicU64,
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

/// What the admission table remembers about one client IP.
#[derive(Debug)]
struct IpEntry {
    /// New-connection rate.
    bucket: TokenBucket,
    /// Connections from this IP admitted and not yet ended.
    open: usize,
}

/// Gateway-wide admission: live connection count, the per-IP connection rate and cap, and
/// the memory budget for partial frames.
#[derive(Debug)]
pub struct Limits {
    max_connections: usize,
    max_per_ip: usize,
    ip_rate: f64,
    ip_burst: u32,
    ip_table_size: usize,
    live: AtomicUsize,
    ips: Mutex<HashMap<IpAddr, IpEntry>>,
    /// Partial-frame bytes buffered by every connection's readers.
    buffered: AtomicUsize,
    buffer_budget: usize,
    max_buffered_per_connection: usize,
    /// Per-user and per-IP command-rate buckets shared by sessions.
    pub rates: RateTables,
    pub stats: LimitStats,
}

/// One admitted connection; dropping it frees its slot (and its IP's).
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
    /// The IP whose open count this permit holds (`None`: admitted untracked).
    ip: Option<IpAddr>,
}

impl Permit {
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.live.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            if let Some(e) = self.limits.ips.lock().get_mut(&ip) {
                e.open = e.open.saturating_sub(1);
            }
        }
    }
}

/// Why a connection's readers may not buffer more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BufferRefusal {
    #[error("more than {0} bytes of partial frames buffered by one connection")]
    Connection(usize),
    #[error("the gateway's memory budget for partial frames ({0} bytes) is spent")]
    Budget(usize),
}

/// One connection's partial-frame bytes across all its streams, also charged to the
/// gateway-wide budget. Shared by the connection's readers; every charge is released when
/// the reader holding it drops.
#[derive(Debug)]
pub struct ConnBuffers {
    limits: Arc<Limits>,
    held: AtomicUsize,
}

impl ConnBuffers {
    pub fn new(limits: Arc<Limits>) -> Arc<ConnBuffers> {
        Arc::new(ConnBuffers {
            limits,
            held: AtomicUsize::new(0),
        })
    }

    /// Bytes this connection holds.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Charge `n` more bytes to this connection and to the gateway; nothing is charged
    /// when either cap would be passed. Two atomic adds, no lock.
    pub fn charge(&self, n: usize) -> Result<(), BufferRefusal> {
        let l = &self.limits;
        let conn = self.held.fetch_add(n, Ordering::Relaxed) + n;
        if conn > l.max_buffered_per_connection {
            self.held.fetch_sub(n, Ordering::Relaxed);
            LimitStats::bump(&l.stats.buffer_overflows);
            return Err(BufferRefusal::Connection(l.max_buffered_per_connection));
        }
        let all = l.buffered.fetch_add(n, Ordering::Relaxed) + n;
        if all > l.buffer_budget {
            l.buffered.fetch_sub(n, Ordering::Relaxed);
            self.held.fetch_sub(n, Ordering::Relaxed);
            LimitStats::bump(&l.stats.budget_exhausted);
            return Err(BufferRefusal::Budget(l.buffer_budget));
        }
        Ok(())
    }

    /// Give back `n` bytes charged earlier.
    pub fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
        self.limits.buffered.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Limits {
    pub fn new(cfg: &ServerConfig) -> Arc<Limits> {
        Arc::new(Limits {
            max_connections: cfg.max_connections,
            max_per_ip: match cfg.limits.max_connections_per_ip {
                0 => usize::MAX,
                n => n,
            },
            ip_rate: cfg.limits.connections_per_ip_per_sec,
            ip_burst: cfg.limits.connections_per_ip_burst,
            ip_table_size: cfg.limits.ip_table_size,
            live: AtomicUsize::new(0),
            ips: Mutex::new(HashMap::new()),
            buffered: AtomicUsize::new(0),
            buffer_budget: cfg.limits.buffer_budget,
            max_buffered_per_connection: cfg.limits.max_buffered_per_connection,
            rates: RateTables::new(&cfg.limits),
            stats: LimitStats::default(),
        })
    }

    /// Partial-frame bytes buffered by all connections now.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Connections admitted and not yet ended (handshaking ones included).
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Admit a new connection from `ip`, or say why not. Counted as refused either way.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let ip = ip_key(ip);
        let now = Instant::now();
        let mut ips = self.ips.lock();
        // The table is bounded: when full, IPs with nothing open and a refilled bucket are
        // forgotten; if it is still full, the address is let through untracked
        // (max_connections still holds) rather than refusing every newcomer.
        if !ips.contains_key(&ip) && ips.len() >= self.ip_table_size {
            ips.retain(|_, e| e.open > 0 || !e.bucket.is_full(now));
        }
        let entry = if ips.contains_key(&ip) || ips.len() < self.ip_table_size {
            let e = ips.entry(ip).or_insert_with(|| IpEntry {
                bucket: TokenBucket::new(self.ip_rate, self.ip_burst, now),
                open: 0,
            });
            if e.open >= self.max_per_ip {
                LimitStats::bump(&self.stats.refused_ip_connections);
                return Err(Refusal::IpConnections);
            }
            if !e.bucket.take(now) {
                LimitStats::bump(&self.stats.refused_ip_rate);
                return Err(Refusal::IpRate);
            }
            Some(e)
        } else {
            tracing::warn!("per-IP connection table full; admitting {ip} untracked");
            None
        };
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
        let tracked = entry.map(|e| e.open += 1).is_some();
        Ok(Permit {
            limits: self.clone(),
            ip: tracked.then_some(ip),
        })
    }
}

/// A token bucket several sessions draw from (one user's, one IP's).
pub type SharedBucket = Arc<Mutex<TokenBucket>>;

/// Command-rate buckets shared by every session of one user and of one IP, so opening
/// more sessions does not buy more throughput. Bounded tables: a bucket no session holds
/// and that has refilled is forgotten when room is needed; if none can be, the newcomer
/// gets a bucket of its own (untracked) rather than being refused.
#[derive(Debug)]
pub struct RateTables {
    users: Mutex<HashMap<u64, SharedBucket>>,
    ips: Mutex<HashMap<IpAddr, SharedBucket>>,
    user_rate: (f64, u32),
    ip_rate: (f64, u32),
    table_size: usize,
}

impl RateTables {
    fn new(cfg: &crate::config::LimitsConfig) -> RateTables {
        RateTables {
            users: Mutex::new(HashMap::new()),
            ips: Mutex::new(HashMap::new()),
            user_rate: (cfg.commands_per_sec_per_user, cfg.command_burst_per_user),
            ip_rate: (cfg.commands_per_sec_per_ip, cfg.command_burst_per_ip),
            table_size: cfg.ip_table_size,
        }
    }

    /// The bucket every session of `user` shares.
    pub fn user(&self, user: u64) -> SharedBucket {
        Self::shared(&self.users, user, self.user_rate, self.table_size)
    }

    /// The bucket every session from `ip` shares.
    pub fn ip(&self, ip: IpAddr) -> SharedBucket {
        Self::shared(&self.ips, ip_key(ip), self.ip_rate, self.table_size)
    }

    fn shared<K: std::hash::Hash + Eq + Copy + std::fmt::Debug>(
        table: &Mutex<HashMap<K, SharedBucket>>,
        key: K,
        (rate, burst): (f64, u32),
        size: usize,
    ) -> SharedBucket {
        let now = Instant::now();
        let fresh = || Arc::new(Mutex::new(TokenBucket::new(rate, burst, now)));
        let mut t = table.lock();
        if let Some(b) = t.get(&key) {
            return b.clone();
        }
        if t.len() >= size {
            t.retain(|_, b| Arc::strong_count(b) > 1 || !b.lock().is_full(now));
            if t.len() >= size {
                tracing::warn!(?key, "rate table full; this session's bucket is untracked");
                return fresh();
            }
        }
        t.entry(key).or_insert_with(fresh).clone()
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
    fn open_connections_per_ip_are_capped_and_freed() {
        let mut cfg = ServerConfig::default();
        cfg.limits.max_connections_per_ip = 2;
        let limits = Limits::new(&cfg);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = limits.admit(ip).unwrap();
        let _b = limits.admit(ip).unwrap();
        assert_eq!(limits.admit(ip).unwrap_err(), Refusal::IpConnections);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            limits.admit(mapped).unwrap_err(),
            Refusal::IpConnections,
            "the IPv4-mapped form is the same address"
        );
        assert!(limits.admit("192.0.2.2".parse().unwrap()).is_ok());
        drop(a);
        assert!(limits.admit(ip).is_ok(), "a closed connection frees its slot");
        assert_eq!(LimitStats::get(&limits.stats.refused_ip_connections), 2);
        let v6: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        assert_eq!(ip_key(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap(), "one /64");
    }

    #[test]
    fn buffered_bytes_are_capped_per_connection_and_gateway_wide() {
        let mut cfg = ServerConfig::default();
        cfg.limits.max_buffered_per_connection = 100;
        cfg.limits.buffer_budget = 150;
        let limits = Limits::new(&cfg);
        let (a, b) = (ConnBuffers::new(limits.clone()), ConnBuffers::new(limits.clone()));
        a.charge(60).unwrap();
        assert_eq!(a.charge(41), Err(BufferRefusal::Connection(100)));
        assert_eq!(a.held(), 60, "a refused charge holds nothing");
        b.charge(90).unwrap();
        assert_eq!(b.charge(1), Err(BufferRefusal::Budget(150)));
        assert_eq!((b.held(), limits.buffered()), (90, 150));
        a.release(60);
        b.charge(10).unwrap();
        assert_eq!(limits.buffered(), 100);
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
