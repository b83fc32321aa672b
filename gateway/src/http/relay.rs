//! HTTP on a relay node of a cluster: the page, `/cert-hash`, `/ws` (relayed to the hub
//! like any connection), and the node's own `/health`, `/ready` and `/metrics`. The HTTP
//! API (history, uploads, downloads, admin) is the hub's: requests under `/api/` are
//! passed to the hub node's HTTP address as they are (streamed both ways; the hub
//! authorizes and bounds them), or answered 503 naming the hub when it cannot be reached.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::cluster::relay::Relay;
use crate::cluster::Status;
use crate::config::ServerConfig;

/// What a relay's handlers share.
#[derive(Clone)]
pub struct RelayHttp {
    pub relay: Arc<Relay>,
    pub status: Arc<Status>,
    pub cfg: Arc<ServerConfig>,
    pub cert_sha256: [u8; 32],
    pub quic_port: u16,
    pub shutdown: CancellationToken,
    pub limits: Arc<crate::limits::Limits>,
}

/// The router of a relay node.
pub fn router(state: RelayHttp) -> Router {
    let cors = super::cors(&state.cfg.http_server.cors_origins);
    let app = Router::new()
        .route("/cert-hash", get(cert_hash))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .route("/api/{*rest}", any(to_hub))
        .fallback(get(super::static_file));
    match cors {
        Some(cors) => app.layer(cors).with_state(state),
        None => app.with_state(state),
    }
}

async fn cert_hash(State(s): State<RelayHttp>, headers: HeaderMap) -> Response {
    super::cert_hash_reply(&s.cert_sha256, s.quic_port, &headers)
}

async fn health(State(s): State<RelayHttp>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "connections": s.relay.connection_count(),
        "cluster": s.status.describe(),
    }))
    .into_response()
}

async fn ready(State(s): State<RelayHttp>) -> Response {
    let why = if s.shutdown.is_cancelled() {
        Some("shutting down")
    } else {
        s.status.unready()
    };
    match why {
        None => (StatusCode::OK, Json(serde_json::json!({ "status": "ready" }))).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": why })),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<RelayHttp>) -> Response {
    let stats = &s.relay.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let extra = format!(
        "{}# HELP garou_relay_connections Client connections relayed to the hub now.\n\
         # TYPE garou_relay_connections gauge\ngarou_relay_connections {}\n\
         # HELP garou_relay_connections_opened Client connections relayed since this term began.\n\
         # TYPE garou_relay_connections_opened counter\ngarou_relay_connections_opened_total {}\n\
         # HELP garou_relay_frames_received Bus frames received from the hub.\n\
         # TYPE garou_relay_frames_received counter\ngarou_relay_frames_received_total {}\n\
         # HELP garou_relay_dropped Relayed connections closed for a lost bus frame or a client not reading.\n\
         # TYPE garou_relay_dropped counter\ngarou_relay_dropped_total {}\n",
        s.status.metrics(),
        s.relay.connection_count(),
        load(&stats.connections),
        load(&stats.frames_down),
        load(&stats.dropped),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render_node(None, &extra),
    )
        .into_response()
}

async fn websocket(
    State(s): State<RelayHttp>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let backend = crate::server::Backend::Relay(s.relay.clone());
    super::upgrade_websocket(upgrade, remote, &s.cfg, &s.limits, &s.shutdown, backend)
}

/// How long the hub may take to accept the proxied connection.
const HUB_CONNECT: std::time::Duration = std::time::Duration::from_secs(2);

/// Pass an `/api/` request to the hub node and its answer back.
async fn to_hub(State(s): State<RelayHttp>, req: axum::extract::Request) -> Response {
    let (_, http) = s.status.hub();
    let stream = match tokio::time::timeout(HUB_CONNECT, tokio::net::TcpStream::connect(&http)).await {
        Ok(Ok(stream)) => stream,
        _ => return not_here(&s),
    };
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await {
            Ok(v) => v,
            Err(_) => return not_here(&s),
        };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "proxied HTTP connection to the hub ended");
        }
    });
    let (mut parts, body) = req.into_parts();
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) => pq.as_str().parse().unwrap_or_default(),
        None => axum::http::Uri::from_static("/"),
    };
    if let Ok(host) = axum::http::HeaderValue::from_str(&http) {
        parts.headers.insert(header::HOST, host);
    }
    match sender
        .send_request(axum::http::Request::from_parts(parts, body))
        .await
    {
        Ok(resp) => resp.map(axum::body::Body::new).into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "proxying to the hub failed");
            not_here(&s)
        }
    }
}

fn not_here(s: &RelayHttp) -> Response {
    let (hub, http) = s.status.hub();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "error": "NotHub",
            "message": format!("this node relays to the hub node {hub}; its HTTP API is at http://{http}/"),
            "hub": hub,
            "hub_http": http,
        })),
    )
        .into_response()
}
