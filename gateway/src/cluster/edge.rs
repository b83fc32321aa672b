//! A relay node's listeners: the same QUIC/WebTransport port and HTTP port as a hub node,
//! with every client connection carried to the hub ([`super::relay`]) and an HTTP side
//! that serves the page, `/cert-hash`, `/health`, `/ready`, `/metrics` and `/ws` itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::relay::Relay;
use super::Status;
use crate::config::ServerConfig;
use crate::http::relay::RelayHttp;
use crate::server::{accept_loop, Backend};
use crate::tls::Identity;
use crate::transport::quic;

/// A relay node's running listeners.
pub struct Edge {
    pub quic_addr: SocketAddr,
    pub http_addr: SocketAddr,
    endpoint: quinn::Endpoint,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Edge {
    /// Bind and serve, relaying to `relay`.
    pub async fn start(
        cfg: ServerConfig,
        identity: Identity,
        relay: Arc<Relay>,
        status: Arc<Status>,
    ) -> anyhow::Result<Edge> {
        let cfg = Arc::new(cfg);
        let endpoint = quic::endpoint(&cfg, &identity, &[garou_protocol::ALPN, crate::server::H3])?;
        let quic_addr = endpoint.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(quic::bind_tcp_dual_stack(cfg.http)?)?;
        let http_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let limits = crate::limits::Limits::new(&cfg);
        let app = crate::http::relay::router(RelayHttp {
            relay: relay.clone(),
            status,
            cfg: cfg.clone(),
            cert_sha256: identity.sha256,
            quic_port: quic_addr.port(),
            shutdown: shutdown.clone(),
            limits: limits.clone(),
        });
        let http_stop = CancellationToken::new();
        let http_conns = crate::http::listener::HttpConns::new(&cfg.http_server);
        let http = tokio::spawn(crate::http::listener::serve(
            listener,
            app,
            cfg.http_server.clone(),
            http_conns,
            http_stop.clone(),
        ));
        info!(%quic_addr, %http_addr, hub = %relay.hub, "relay listening");
        let done = tokio::spawn(accept_loop(
            endpoint.clone(),
            Backend::Relay(relay),
            cfg,
            limits,
            shutdown.clone(),
            (http, http_stop),
        ));
        Ok(Edge {
            quic_addr,
            http_addr,
            endpoint,
            shutdown,
            done,
        })
    }

    /// Close every relayed connection (clients reconnect) and release the ports.
    pub async fn shutdown(self) {
        let Edge {
            endpoint,
            shutdown,
            done,
            ..
        } = self;
        drop(endpoint);
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
    }
}
