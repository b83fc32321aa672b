//! Connection settings and server-address parsing.

use std::time::Duration;

use garou_protocol::Credentials;

use crate::tls::Trust;
use crate::ClientError;

/// Port used when a server address has none.
pub const DEFAULT_PORT: u16 = 4433;

/// Everything [`connect`](crate::connect) needs.
///
/// Build it with [`ClientOptions::new`] and adjust fields directly; every field has a
/// default chosen for a long-lived interactive client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Gateways as `host:port`, tried in order on the first connect and rotated through on
    /// reconnect, so a cluster (or a primary plus fallbacks) needs no load balancer.
    pub servers: Vec<String>,
    /// TLS server name (SNI and certificate name). Default: the host part of the address,
    /// or `localhost` when that is an IP literal (certificates rarely name IPs).
    pub server_name: Option<String>,
    /// How the server certificate is checked.
    pub trust: Trust,
    /// Identity presented in Auth. With [`Credentials::Nick`], reconnects use the nick the
    /// session had last (so a `/nick` change survives a reconnect).
    pub credentials: Credentials,
    /// Reconnect after a lost connection (including after a server Shutdown). Default true.
    pub reconnect: bool,
    /// First reconnect delay. Default 1 s.
    pub backoff_min: Duration,
    /// Largest reconnect delay. Default 60 s.
    pub backoff_max: Duration,
    /// A request without a reply after this long fails with [`ClientError::Timeout`].
    /// Default 10 s. Never shorter in effect than twice `idle_timeout` plus a second
    /// ([`ClientOptions::effective_request_timeout`]): a dead connection must be noticed
    /// (and its sends carried over to the next one) before a request on it times out.
    pub request_timeout: Duration,
    /// How often QUIC probes the path when nothing else is sent. Default 1 s.
    pub keep_alive: Duration,
    /// A connection on which nothing arrives for this long is dead (a crashed gateway,
    /// a cut network) and the client reconnects. Default 3 s: with the 1 s keep-alive a
    /// dead gateway is noticed within about 3 s. (QUIC uses the smaller of this and the
    /// server's own idle timeout.)
    pub idle_timeout: Duration,
    /// Client-side pacing of every frame the server counts against its command rate
    /// (commands, acks, upload chunks, typing, pings), so the client is throttled by
    /// itself instead of by the server and never closed for its rate. Default: the
    /// gateway's default per-session limits with a margin ([`RateLimit::default`]);
    /// `None` sends as fast as the application asks (the server's Throttle is still
    /// honoured). On a server `Throttle` the client pauses as told and halves its rate,
    /// then recovers it gradually.
    pub rate: Option<RateLimit>,
    /// Retries of the first connect ([`crate::connect`]). Default: one attempt per server,
    /// no retry (a typo in an address fails fast); see [`ConnectRetry::patient`].
    pub connect_retry: ConnectRetry,
    /// Messages ([`Client::send`](crate::Client::send), [`Client::direct`](crate::Client::direct),
    /// uploads) queued while no session is up, sent in order after the reconnect. Beyond
    /// it a send fails at once with [`ClientError::QueueFull`]. Default 1,000.
    pub offline_queue: usize,
    /// How long a message waits for a new session before it fails with
    /// [`ClientError::Disconnected`]. Default `None`: it waits until the client
    /// reconnects, is closed, or stops on a terminal error.
    pub offline_timeout: Option<Duration>,
    /// Bound on one connection attempt: QUIC handshake plus Hello/Auth/ShardAssignment.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// Capacity of the [`Events`](crate::Events) channel. When the application stops
    /// reading, the driver stops reading the network (backpressure), it never buffers
    /// without bound. Default 1024.
    pub event_buffer: usize,
    /// Client name sent in Hello, for the server's logs.
    pub client_name: String,
    /// A QUIC endpoint (one UDP socket and its driver task) to open connections on,
    /// shared with other clients. Default `None`: each connection binds its own. A process
    /// holding thousands of connections (a load generator) shares a few endpoints, since
    /// a socket and a driver task per connection cost file descriptors and memory.
    pub endpoint: Option<quinn::Endpoint>,
}

impl ClientOptions {
    /// Options for one server with the defaults described on each field.
    pub fn new(server: impl Into<String>, credentials: Credentials) -> Self {
        ClientOptions {
            servers: vec![server.into()],
            server_name: None,
            trust: Trust::System,
            credentials,
            reconnect: true,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            rate: Some(RateLimit::default()),
            connect_retry: ConnectRetry::default(),
            offline_queue: 1000,
            offline_timeout: None,
            connect_timeout: Duration::from_secs(10),
            event_buffer: 1024,
            client_name: concat!("garou-client/", env!("CARGO_PKG_VERSION")).into(),
            endpoint: None,
        }
    }

    /// Shorthand for [`ClientOptions::new`] with [`Credentials::Nick`].
    pub fn with_nick(server: impl Into<String>, nick: impl Into<String>) -> Self {
        Self::new(server, Credentials::Nick(nick.into()))
    }

    /// Builder-style setter for [`ClientOptions::trust`].
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Builder-style setter for [`ClientOptions::connect_retry`].
    pub fn connect_retry(mut self, retry: ConnectRetry) -> Self {
        self.connect_retry = retry;
        self
    }

    /// The request timeout in effect: `request_timeout`, but at least
    /// `2 × idle_timeout + 1 s`.
    pub fn effective_request_timeout(&self) -> Duration {
        self.request_timeout
            .max(self.idle_timeout.saturating_mul(2) + Duration::from_secs(1))
    }

    /// Builder-style: add a fallback server.
    pub fn fallback(mut self, server: impl Into<String>) -> Self {
        self.servers.push(server.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        if self.servers.is_empty() {
            return Err(ClientError::Config("no server address given".into()));
        }
        for s in &self.servers {
            split_host_port(s)?;
        }
        if self.event_buffer == 0 {
            return Err(ClientError::Config("event_buffer must be at least 1".into()));
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err(ClientError::Config("need 0 < backoff_min <= backoff_max".into()));
        }
        if self.keep_alive.is_zero() || self.idle_timeout <= self.keep_alive {
            return Err(ClientError::Config("need 0 < keep_alive < idle_timeout".into()));
        }
        if let Some(r) = &self.rate {
            if !(r.per_sec.is_finite() && r.per_sec > 0.0) || r.burst == 0 {
                return Err(ClientError::Config(
                    "rate: need per_sec > 0 and burst >= 1".into(),
                ));
            }
        }
        if self.connect_retry.attempts == 0 {
            return Err(ClientError::Config(
                "connect_retry.attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The TLS name to present for `server`.
    pub(crate) fn sni_for(&self, server: &str) -> Result<String, ClientError> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let (host, _) = split_host_port(server)?;
        Ok(if host.parse::<std::net::IpAddr>().is_ok() {
            "localhost".to_owned()
        } else {
            host
        })
    }
}

/// Client-side frame rate (a token bucket). See [`ClientOptions::rate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Frames per second, sustained.
    pub per_sec: f64,
    /// Frames that may go at once.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 90 frames/s with bursts of 150: under the gateway's default per-session limit
    /// (100/s, burst 200, `[limits] commands_per_sec` / `command_burst`), leaving room for
    /// jitter on the way. Raise it for a gateway configured with higher limits.
    fn default() -> Self {
        RateLimit {
            per_sec: 90.0,
            burst: 150,
        }
    }
}

/// How [`crate::connect`] retries before the first session is up.
///
/// Each attempt tries every server in turn; between attempts the client waits with the
/// same backoff as reconnects (`backoff_min` doubling to `backoff_max`, with jitter).
/// Terminal failures are never retried: a certificate that does not match
/// ([`ClientError::Certificate`]), refused credentials (`AuthFailed`), a ban. A nick in
/// use is retried (a crashed client's session keeps its nick until the gateway notices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRetry {
    /// Rounds over the server list, at least 1 (1 = no retry).
    pub attempts: u32,
    /// No new round starts after this long since `connect` was called.
    pub max_elapsed: Duration,
}

impl Default for ConnectRetry {
    /// One round, no retry.
    fn default() -> Self {
        ConnectRetry {
            attempts: 1,
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl ConnectRetry {
    /// For bots and services: up to 10 rounds within 2 minutes.
    pub fn patient() -> Self {
        ConnectRetry {
            attempts: 10,
            max_elapsed: Duration::from_secs(120),
        }
    }
}

/// Split `host:port`, `[v6]:port`, `host` (default port) into host and port.
pub(crate) fn split_host_port(server: &str) -> Result<(String, u16), ClientError> {
    let bad = || ClientError::Config(format!("bad server address {server:?} (want host:port)"));
    let server = server.trim();
    if server.is_empty() {
        return Err(bad());
    }
    if let Ok(sa) = server.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    if let Some(rest) = server.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    if server.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((server.to_owned(), DEFAULT_PORT));
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        Some(_) => Err(bad()),
        None => Ok((server.to_owned(), DEFAULT_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("127.0.0.1:4433").unwrap(),
            ("127.0.0.1".into(), 4433)
        );
        assert_eq!(
            split_host_port("example.org:1").unwrap(),
            ("example.org".into(), 1)
        );
        assert_eq!(
            split_host_port("example.org").unwrap(),
            ("example.org".into(), DEFAULT_PORT)
        );
        assert_eq!(split_host_port("[::1]:9").unwrap(), ("::1".into(), 9));
        assert_eq!(split_host_port("[::1]").unwrap(), ("::1".into(), DEFAULT_PORT));
        assert_eq!(split_host_port("::1").unwrap(), ("::1".into(), DEFAULT_PORT));
        assert!(split_host_port("").is_err());
        assert!(split_host_port("host:notaport").is_err());
        assert!(split_host_port(":4433").is_err());
    }

    #[test]
    fn sni_defaults() {
        let o = ClientOptions::with_nick("127.0.0.1:4433", "a");
        assert_eq!(o.sni_for("127.0.0.1:4433").unwrap(), "localhost");
        assert_eq!(o.sni_for("chat.example.org:4433").unwrap(), "chat.example.org");
        let mut o = o;
        o.server_name = Some("gw".into());
        assert_eq!(o.sni_for("127.0.0.1:4433").unwrap(), "gw");
    }
}
