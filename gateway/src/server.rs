//! `garou serve`: bind, accept, dispatch by ALPN, shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::config::ServerConfig;
use crate::hub::{Hub, HubConfig};
use crate::session;
use crate::tls::Identity;
use crate::transport::quic::{self, QuicConnection};

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
pub struct Gateway {
    pub quic_addr: SocketAddr,
    pub cert_sha256: [u8; 32],
    pub hub: Arc<Hub>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Bind and start serving in the background.
    pub async fn start(cfg: ServerConfig) -> anyhow::Result<Gateway> {
        let cfg = Arc::new(cfg);
        let identity = match (&cfg.cert, &cfg.key) {
            (Some(c), Some(k)) => Identity::from_pem_files(c, k)?,
            _ => Identity::self_signed()?,
        };
        if identity.self_signed {
            info!(
                sha256 = %identity.sha256_hex(),
                "generated a self-signed certificate valid 14 days (clients: --cert-hash {})",
                identity.sha256_hex()
            );
        }
        let endpoint = quic::endpoint(&cfg, &identity, &[garou_protocol::ALPN])?;
        let quic_addr = endpoint.local_addr()?;
        info!(%quic_addr, "QUIC listening (ALPN garou/1)");
        let hub = Arc::new(Hub::new(HubConfig::from(&*cfg)));
        let shutdown = CancellationToken::new();
        let done = tokio::spawn(accept_loop(endpoint, hub.clone(), cfg.clone(), shutdown.clone()));
        Ok(Gateway {
            quic_addr,
            cert_sha256: identity.sha256,
            hub,
            shutdown,
            done,
        })
    }

    /// Stop accepting, send Shutdown to every session, let them drain (bounded), return.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    hub: Arc<Hub>,
    cfg: Arc<ServerConfig>,
    shutdown: CancellationToken,
) {
    let sessions = TaskTracker::new();
    let ticker = {
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every.tick() => hub.tick(),
                    _ = shutdown.cancelled() => return,
                }
            }
        })
    };
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.cancelled() => break,
        };
        if hub.connection_count() >= cfg.max_connections {
            warn!(remote = %incoming.remote_address(), "refusing connection: max_connections reached");
            incoming.refuse();
            continue;
        }
        let (hub, cfg, shutdown) = (hub.clone(), cfg.clone(), shutdown.clone());
        sessions.spawn(
            async move {
                let connection = match incoming.await {
                    Ok(c) => c,
                    Err(e) => return tracing::debug!(error = %e, "QUIC handshake failed"),
                };
                let alpn = connection
                    .handshake_data()
                    .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                    .and_then(|d| d.protocol);
                match alpn.as_deref() {
                    Some(garou_protocol::ALPN) => {
                        session::run(QuicConnection(connection), hub, cfg, shutdown).await
                    }
                    other => {
                        warn!(alpn = ?other.map(String::from_utf8_lossy), "unsupported ALPN");
                        connection.close(0u32.into(), b"unsupported ALPN");
                    }
                }
            }
            .in_current_span(),
        );
    }
    info!(
        sessions = sessions.len(),
        "shutting down: no new connections, telling sessions"
    );
    // Refuse new connections while the existing ones drain.
    endpoint.set_server_config(None);
    sessions.close();
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        warn!("sessions still open after the grace period; closing them");
        endpoint.close(0u32.into(), b"server shutting down");
    }
    ticker.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    info!("shutdown complete");
}

/// Resolve when SIGINT or SIGTERM arrives.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
