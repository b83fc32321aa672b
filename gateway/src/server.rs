//! `garou serve`: bind, accept, dispatch by ALPN, shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::config::ServerConfig;
use crate::http::{self, HttpState};
use crate::hub::{Hub, HubConfig};
use crate::limits::{Limits, Permit, Refusal};
use crate::session;
use crate::tls::Identity;
use crate::transport::quic::{self, QuicConnection};
use crate::transport::webtransport::WebTransportConnection;

/// ALPN of WebTransport's HTTP/3.
pub(crate) const H3: &[u8] = b"h3";

/// What a node does with the client connections it accepts.
#[derive(Clone)]
pub enum Backend {
    /// Serve them here: this node runs the rooms (a single node, or a cluster's hub).
    Hub(Arc<Hub>),
    /// Carry them to the cluster's hub node ([`crate::cluster::relay`]).
    Relay(Arc<crate::cluster::relay::Relay>),
}

impl Backend {
    /// Serve one accepted connection until it ends.
    pub async fn serve<C: crate::transport::Connection>(
        self,
        conn: C,
        cfg: Arc<ServerConfig>,
        shutdown: CancellationToken,
        permit: Permit,
    ) {
        match self {
            Backend::Hub(hub) => session::run(conn, hub, cfg, shutdown, permit).await,
            Backend::Relay(relay) => {
                relay.serve(conn, shutdown).await;
                drop(permit);
            }
        }
    }
}

/// What [`Gateway::start_with`] may be given instead of making it from the config.
#[derive(Default)]
pub struct Parts {
    /// The TLS identity (a cluster node keeps one across its terms).
    pub identity: Option<Identity>,
    /// The store (a cluster's hub term gets its fenced store).
    pub store: Option<Arc<dyn crate::store::Store>>,
    /// The cluster this gateway is the hub of (for `/health`, `/ready`, `/metrics`).
    pub cluster: Option<Arc<crate::cluster::Status>>,
}

/// A running gateway. Dropping it does not stop it; call [`Gateway::shutdown`].
pub struct Gateway {
    /// UDP address serving raw QUIC and WebTransport.
    pub quic_addr: SocketAddr,
    /// TCP address serving HTTP and the WebSocket fallback.
    pub http_addr: SocketAddr,
    /// SHA-256 of the certificate at start (see [`Gateway::cert_sha256_now`] after a reload).
    pub cert_sha256: [u8; 32],
    pub hub: Arc<Hub>,
    cfg: Arc<ServerConfig>,
    endpoint: quinn::Endpoint,
    current_cert: Arc<parking_lot::RwLock<[u8; 32]>>,
    /// Admission state and counters of everything a limit refused or dropped.
    pub limits: Arc<Limits>,
    /// Open HTTP connections against their caps, and what the HTTP listener refused.
    pub http_conns: Arc<crate::http::listener::HttpConns>,
    shutdown: CancellationToken,
    draining: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Bind and start serving in the background.
    pub async fn start(cfg: ServerConfig) -> anyhow::Result<Gateway> {
        Gateway::start_with(cfg, Parts::default()).await
    }

    /// [`Gateway::start`] with some of its parts given.
    pub async fn start_with(cfg: ServerConfig, parts: Parts) -> anyhow::Result<Gateway> {
        let cfg = Arc::new(cfg);
        let identity = match parts.identity {
            Some(i) => i,
            None => identity(&cfg)?,
        };
        if identity.self_signed {
            info!(
                sha256 = %identity.sha256_hex(),
                "generated a self-signed certificate valid 14 days (clients: --cert-hash {})",
                identity.sha256_hex()
            );
        } else {
            info!(sha256 = %identity.sha256_hex(), "loaded the certificate from --cert/--key");
        }
        let endpoint = quic::endpoint(&cfg, &identity, &[garou_protocol::ALPN, H3])?;
        let quic_addr = endpoint.local_addr()?;
        info!(%quic_addr, "QUIC listening: native clients (ALPN garou/1) and WebTransport (h3) on one port");
        let store = match parts.store {
            Some(s) => s,
            None => {
                let location = cfg.store_location().map_err(anyhow::Error::msg)?;
                crate::store::open(&location, cfg.sqlite_synchronous).await?
            }
        };
        let auth = crate::auth::Auth::from_config(&cfg.auth)?;
        if auth.is_open() {
            warn!("OPEN DEV MODE: no auth key configured ([auth] secret or public_key): anyone can connect and a nick alone makes a full member");
        } else {
            info!(guests = cfg.auth.allow_guests, "token auth on");
        }
        let hub_cfg = HubConfig {
            auth,
            ..HubConfig::from(&*cfg)
        };
        let hub = Hub::open(hub_cfg, store).await?;
        let shutdown = CancellationToken::new();
        let draining = CancellationToken::new();
        let current_cert = Arc::new(parking_lot::RwLock::new(identity.sha256));
        let limits = Limits::new(&cfg);
        let listener = tokio::net::TcpListener::from_std(quic::bind_tcp_dual_stack(cfg.http)?)?;
        let http_addr = listener.local_addr()?;
        let app = http::router(HttpState {
            hub: hub.clone(),
            cfg: cfg.clone(),
            cert_sha256: current_cert.clone(),
            quic_port: quic_addr.port(),
            shutdown: shutdown.clone(),
            draining: draining.clone(),
            limits: limits.clone(),
            cluster: parts.cluster,
        });
        info!(%http_addr, "HTTP listening: chat page at http://{}/", display_addr(http_addr));
        // HTTP stops after the sessions drained (not when shutdown begins), so `/ready`
        // keeps answering 503 to load balancers meanwhile.
        let http_stop = CancellationToken::new();
        let http_conns = crate::http::listener::HttpConns::new(&cfg.http_server);
        let http = tokio::spawn(crate::http::listener::serve(
            listener,
            app,
            cfg.http_server.clone(),
            http_conns.clone(),
            http_stop.clone(),
        ));
        let done = tokio::spawn(accept_loop(
            endpoint.clone(),
            Backend::Hub(hub.clone()),
            cfg.clone(),
            limits.clone(),
            shutdown.clone(),
            (http, http_stop),
        ));
        Ok(Gateway {
            quic_addr,
            http_addr,
            cert_sha256: identity.sha256,
            hub,
            cfg,
            endpoint,
            current_cert,
            limits,
            http_conns,
            shutdown,
            draining,
            done,
        })
    }

    /// Report unready (`/ready` 503), wait `unready_delay_secs`, then stop accepting, send
    /// Shutdown to every session, let them drain (bounded), return.
    pub async fn shutdown(self) {
        let delay = self.cfg.unready_delay_secs;
        self.shutdown_after(delay).await
    }

    /// [`Gateway::shutdown`] without the unready delay (a cluster node changing role).
    pub async fn shutdown_now(self) {
        self.shutdown_after(0).await
    }

    async fn shutdown_after(self, unready_delay_secs: u64) {
        self.draining.cancel();
        if unready_delay_secs > 0 {
            info!(secs = unready_delay_secs, "unready; waiting before shutting down");
            tokio::time::sleep(Duration::from_secs(unready_delay_secs)).await;
        }
        // Our endpoint handle goes first, so the accept loop's is the last one and the UDP
        // port is free once this returns (a restart may bind it at once).
        let Gateway {
            endpoint,
            shutdown,
            done,
            ..
        } = self;
        drop(endpoint);
        shutdown.cancel();
        let _ = done.await;
    }

    /// Cancelled when the gateway shuts down (sessions started elsewhere watch it too).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.cfg
    }

    /// SHA-256 of the certificate new connections get now.
    pub fn cert_sha256_now(&self) -> [u8; 32] {
        *self.current_cert.read()
    }

    /// Re-read `--cert`/`--key` and serve them to new connections (raw QUIC and
    /// WebTransport share the endpoint; open connections keep their session). On failure
    /// the current certificate stays. Called on SIGHUP, e.g. after a Let's Encrypt renewal.
    pub fn reload_tls(&self) -> anyhow::Result<[u8; 32]> {
        let result = self.try_reload_tls();
        match &result {
            Ok(sha) => info!(sha256 = %hex::encode(sha), "TLS certificate reloaded"),
            Err(e) => warn!(error = %e, "TLS reload failed; keeping the current certificate"),
        }
        result
    }

    fn try_reload_tls(&self) -> anyhow::Result<[u8; 32]> {
        let (Some(cert), Some(key)) = (&self.cfg.cert, &self.cfg.key) else {
            anyhow::bail!("no --cert/--key configured (the self-signed certificate is not reloaded)");
        };
        if self.shutdown.is_cancelled() {
            anyhow::bail!("shutting down");
        }
        let identity = Identity::from_pem_files(cert, key)?;
        let server = quic::server_config(&self.cfg, &identity, &[garou_protocol::ALPN, H3])?;
        self.endpoint.set_server_config(Some(server));
        *self.current_cert.write() = identity.sha256;
        Ok(identity.sha256)
    }
}

/// The certificate `--cert`/`--key` name, or a fresh self-signed one.
pub fn identity(cfg: &ServerConfig) -> anyhow::Result<Identity> {
    Ok(match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => Identity::from_pem_files(c, k)?,
        _ => Identity::self_signed()?,
    })
}

/// A URL-friendly host:port; the unspecified address shows as localhost.
pub fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    backend: Backend,
    cfg: Arc<ServerConfig>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    (http_server, http_stop): (tokio::task::JoinHandle<()>, CancellationToken),
) {
    let sessions = TaskTracker::new();
    let hub = match &backend {
        Backend::Hub(hub) => Some(hub.clone()),
        Backend::Relay(_) => None,
    };
    let ticker = hub.clone().map(|hub| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            let mut ticks: u64 = 0;
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        hub.tick();
                        ticks += 1;
                        if ticks.is_multiple_of(60) {
                            hub.trim_all().await; // age-based retention, once a minute
                        }
                    }
                    _ = shutdown.cancelled() => return,
                }
            }
        })
    });
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.cancelled() => break,
        };
        let remote = incoming.remote_address();
        let permit = match limits.admit(remote.ip()) {
            Ok(p) => p,
            // An address opening connections too fast costs no handshake at all.
            Err(Refusal::IpRate) => {
                debug!(%remote, "refusing connection: per-IP connection rate");
                incoming.refuse();
                continue;
            }
            // A full server says why: the handshake completes and the connection is closed
            // with LimitReached (bounded: the per-IP rate still applies to these).
            // So does an address holding too many connections open (max_connections_per_ip).
            Err(refusal) => {
                warn!(%remote, %refusal, "refusing connection");
                tokio::spawn(refuse_full(incoming, cfg.handshake_timeout(), refusal));
                continue;
            }
        };
        let (backend, cfg, shutdown) = (backend.clone(), cfg.clone(), shutdown.clone());
        sessions.spawn(
            async move {
                if let Err(e) = dispatch(incoming, backend, cfg, shutdown, permit).await {
                    tracing::debug!(error = %e, "connection attempt failed");
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
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    // Whatever was accepted is on disk before we exit.
    if let Some(hub) = hub {
        let _ = tokio::time::timeout(Duration::from_secs(5), hub.flush()).await;
    }
    http_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), http_server).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    info!("shutdown complete");
}

/// Complete the handshake only to close with LimitReached and a reason.
async fn refuse_full(incoming: quinn::Incoming, timeout: Duration, refusal: Refusal) {
    let Ok(connecting) = incoming.accept() else { return };
    if let Ok(Ok(c)) = tokio::time::timeout(timeout, connecting).await {
        let code = garou_protocol::ErrorCode::LimitReached.as_u16();
        c.close(quinn::VarInt::from(code), refusal.to_string().as_bytes());
    }
}

/// Finish the QUIC handshake and hand the connection to the transport its ALPN names:
/// one UDP port serves native clients and browsers.
async fn dispatch(
    incoming: quinn::Incoming,
    backend: Backend,
    cfg: Arc<ServerConfig>,
    shutdown: CancellationToken,
    permit: Permit,
) -> anyhow::Result<()> {
    let mut connecting = incoming.accept()?;
    let alpn = connecting
        .handshake_data()
        .await?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()
        .and_then(|d| d.protocol);
    match alpn.as_deref() {
        Some(garou_protocol::ALPN) => {
            let connection = tokio::time::timeout(cfg.handshake_timeout(), connecting).await??;
            backend.serve(QuicConnection(connection), cfg, shutdown, permit).await;
        }
        // Boxed: the HTTP/3 handshake's state is large and every session task would carry
        // its size (per-connection memory), raw QUIC sessions included.
        Some(H3) => Box::pin(async move {
            let request = tokio::time::timeout(
                cfg.handshake_timeout(),
                wtransport::endpoint::IncomingSessionFuture::with_quic_connecting(connecting),
            )
            .await??;
            tracing::debug!(path = request.path(), origin = ?request.origin(), "WebTransport session request");
            let connection = request.accept().await?;
            backend.serve(WebTransportConnection(connection), cfg, shutdown, permit).await;
            anyhow::Ok(())
        })
        .await?,
        other => warn!(alpn = ?other.map(String::from_utf8_lossy), "unsupported ALPN"),
    }
    Ok(())
}

/// Resolve when SIGINT or SIGTERM arrives; on each SIGHUP meanwhile, reload the TLS
/// certificate (`kill -HUP <pid>` after a renewal).
pub async fn signal_or_reload(gateway: &Gateway) {
    until_stop(|| {
        info!("SIGHUP: reloading the TLS certificate");
        let _ = gateway.reload_tls();
    })
    .await
}

/// Resolve when SIGINT or SIGTERM arrives; a SIGHUP meanwhile is logged and otherwise
/// ignored (a cluster node reads its certificate when it starts: after a renewal, restart
/// the nodes one at a time). Without this, SIGHUP's default action would end the process.
pub async fn signal_ignoring_hup() {
    until_stop(|| {
        warn!("SIGHUP ignored: a cluster node loads its certificate at start; restart nodes one at a time to renew it")
    })
    .await
}

/// Resolve when SIGINT or SIGTERM arrives, calling `on_hup` for each SIGHUP meanwhile.
async fn until_stop(mut on_hup: impl FnMut()) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal as on, SignalKind};
        let mut hup = on(SignalKind::hangup()).expect("SIGHUP handler");
        let stop = signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = hup.recv() => on_hup(),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = &mut on_hup;
        signal().await
    }
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
