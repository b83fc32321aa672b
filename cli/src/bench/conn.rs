//! Connecting many bench clients: shared QUIC endpoints (or WebSockets to `/ws`), bounded
//! concurrency, bounded waits.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use garou_client::{connect, ClientOptions, Trust};

use super::client::{BenchClient, BenchEvents};
use super::ws::WsClient;
use super::{CommonArgs, Transport};

/// Bound on one connect (QUIC handshake plus the protocol handshake).
pub const CONNECT_WAIT: Duration = Duration::from_secs(15);
/// Bound on one request (join, leave, an ack).
pub const REQUEST_WAIT: Duration = Duration::from_secs(15);
/// Bound on closing one client.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A connected client and its events.
pub type Connected = (BenchClient, BenchEvents);

/// One gateway the clients are spread over.
#[derive(Debug, Clone)]
pub struct Server {
    /// `--server` as given: QUIC `HOST:PORT`, or the HTTP `HOST:PORT` / `ws://` URL.
    pub addr: String,
    /// `ws://HOST:PORT/ws` for the WebSocket transport.
    ws_url: String,
}

/// Where and how bench clients connect.
pub struct Target {
    /// The gateways, in `--server` order (one for a single gateway).
    pub servers: Vec<Server>,
    trust: Trust,
    endpoints: Vec<quinn::Endpoint>,
    next: AtomicUsize,
    /// Round-robin over `servers` for [`Target::connect`].
    next_server: AtomicUsize,
    pub concurrency: usize,
    /// Random per run: tags nicks, rooms and payloads so runs against one gateway (or
    /// several bench processes) never mix.
    pub run_id: u32,
    pub transport: Transport,
}

impl Target {
    /// Resolve the servers and bind the shared endpoints.
    pub async fn new(c: &CommonArgs) -> anyhow::Result<Target> {
        anyhow::ensure!(!c.server.is_empty(), "--server names no gateway");
        let trust = match (&c.cert_hash, c.insecure) {
            (Some(h), _) => Trust::cert_hash_hex(h)?,
            (None, true) => Trust::Insecure,
            (None, false) => Trust::System,
        };
        let mut servers = Vec::new();
        let mut ipv4 = None;
        for addr in &c.server {
            let (host, ws_url) = match c.transport {
                Transport::Quic => (addr.clone(), String::new()),
                Transport::Websocket => ws_target(addr)?,
            };
            let resolved = tokio::net::lookup_host(&host)
                .await?
                .next()
                .ok_or_else(|| anyhow::anyhow!("{host} resolves to nothing"))?;
            // The shared endpoints are bound once, for one address family.
            anyhow::ensure!(
                *ipv4.get_or_insert(resolved.is_ipv4()) == resolved.is_ipv4(),
                "--server mixes IPv4 and IPv6 addresses"
            );
            servers.push(Server {
                addr: addr.clone(),
                ws_url,
            });
        }
        let bind: SocketAddr = if ipv4 == Some(false) {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoints = match c.transport {
            Transport::Quic => (0..c.endpoints.max(1))
                .map(|_| quinn::Endpoint::client(bind))
                .collect::<Result<Vec<_>, _>>()?,
            Transport::Websocket => Vec::new(),
        };
        Ok(Target {
            servers,
            trust,
            endpoints,
            next: AtomicUsize::new(0),
            next_server: AtomicUsize::new(0),
            concurrency: c.connect_concurrency.max(1),
            run_id: rand::random(),
            transport: c.transport,
        })
    }

    /// The server client `i` of a run connects to (round-robin).
    pub fn server_of(&self, i: usize) -> usize {
        i % self.servers.len()
    }

    /// A name unique to this run.
    pub fn name(&self, prefix: &str, i: usize) -> String {
        format!("{prefix}{:08x}-{i}", self.run_id)
    }

    /// Connect one client to the next server in turn (no reconnect: a lost connection is
    /// an error of the run).
    pub async fn connect(&self, nick: String) -> Result<Connected, String> {
        let server = self.next_server.fetch_add(1, Ordering::Relaxed) % self.servers.len();
        self.connect_to(server, nick).await
    }

    /// Connect one client to `servers[server]`.
    pub async fn connect_to(&self, server: usize, nick: String) -> Result<Connected, String> {
        let server = &self.servers[server];
        if self.transport == Transport::Websocket {
            let (c, ev) = WsClient::connect(&server.ws_url, nick).await?;
            return Ok((BenchClient::Ws(c), BenchEvents::Ws(ev)));
        }
        let mut opts = ClientOptions::with_nick(server.addr.clone(), nick).trust(self.trust.clone());
        opts.reconnect = false;
        opts.connect_timeout = CONNECT_WAIT;
        opts.request_timeout = REQUEST_WAIT;
        // The bench measures the gateway (whose limits a run lifts): no client-side pacing,
        // and the idle timeout of a loaded machine rather than a fast dead-peer check.
        opts.rate = None;
        opts.idle_timeout = Duration::from_secs(10);
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        opts.endpoint = Some(self.endpoints[i].clone());
        match tokio::time::timeout(CONNECT_WAIT + Duration::from_secs(1), connect(opts)).await {
            Ok(Ok((c, ev))) => Ok((BenchClient::Quic(c), BenchEvents::Quic(ev))),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connect timed out".into()),
        }
    }

    /// Connect `nicks` with bounded concurrency, in order, nick `i` to server
    /// [`Target::server_of`]`(i)`; failures are `None`.
    pub async fn connect_all(&self, nicks: Vec<String>) -> Vec<Option<Connected>> {
        futures::stream::iter(nicks.into_iter().enumerate())
            .map(|(i, n)| async move {
                match self.connect_to(self.server_of(i), n).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!("bench connect failed: {e}");
                        None
                    }
                }
            })
            .buffered(self.concurrency)
            .collect()
            .await
    }

    /// Close clients with bounded concurrency and a bound on each.
    pub async fn close_all(&self, clients: Vec<BenchClient>) {
        futures::stream::iter(clients)
            .for_each_concurrent(self.concurrency, |c| async move {
                let _ = tokio::time::timeout(CLOSE_WAIT, c.close()).await;
            })
            .await;
    }
}

/// The address to resolve and the `/ws` URL for `--server` with the WebSocket transport:
/// `HOST:PORT` (the gateway's HTTP port) or a full `ws://HOST:PORT/PATH` URL.
fn ws_target(server: &str) -> anyhow::Result<(String, String)> {
    anyhow::ensure!(
        !server.starts_with("wss://"),
        "wss:// is not supported by the bench (the gateway serves /ws on its plain HTTP port)"
    );
    match server.strip_prefix("ws://") {
        Some(rest) => {
            let host = rest.split('/').next().unwrap_or(rest);
            Ok((host.to_string(), server.to_string()))
        }
        None => Ok((server.to_string(), format!("ws://{server}/ws"))),
    }
}

#[cfg(test)]
mod tests {
    use super::ws_target;

    #[test]
    fn websocket_server_forms() {
        let (host, url) = ws_target("127.0.0.1:8080").unwrap();
        assert_eq!(
            (host.as_str(), url.as_str()),
            ("127.0.0.1:8080", "ws://127.0.0.1:8080/ws")
        );
        let (host, url) = ws_target("ws://localhost:80/ws").unwrap();
        assert_eq!(
            (host.as_str(), url.as_str()),
            ("localhost:80", "ws://localhost:80/ws")
        );
        assert!(ws_target("wss://x:1/ws").is_err());
    }
}
