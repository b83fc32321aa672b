//! The HTTP side (axum): the chat page and the wasm package embedded in the binary, the
//! certificate hash browsers pin, health, and `/ws`, the WebSocket fallback transport.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_embed::RustEmbed;
use tokio_util::sync::CancellationToken;
use tower_http::cors::CorsLayer;

use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::session;
use crate::transport::websocket::WsConnection;

/// The static chat page (`web/`).
#[derive(RustEmbed)]
#[folder = "../web/"]
struct Page;

/// The built wasm client package (`wasm-client/pkg/`), served under `/pkg/`.
#[derive(RustEmbed)]
#[folder = "../wasm-client/pkg/"]
struct Pkg;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub hub: Arc<Hub>,
    pub cfg: Arc<ServerConfig>,
    /// SHA-256 of the certificate served now (a TLS reload changes it).
    pub cert_sha256: Arc<parking_lot::RwLock<[u8; 32]>>,
    pub quic_port: u16,
    pub shutdown: CancellationToken,
    /// Cancelled when shutdown begins: `/ready` answers 503 from then on.
    pub draining: CancellationToken,
    /// Connection admission, shared with the QUIC accept loop.
    pub limits: Arc<crate::limits::Limits>,
}

/// The router for the HTTP listener.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/cert-hash", get(cert_hash))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(crate::admin_api::routes())
        .route("/api/rooms/{room}/messages", get(history))
        .route("/api/uploads", post(crate::uploads::upload_http))
        .route("/api/uploads/{id}", get(crate::uploads::download))
        .route("/ws", get(websocket))
        .fallback(get(static_file))
        // The page may live on another origin (a front-end app): these are public GETs, and
        // uploads authenticate with a session ticket, never a cookie.
        .layer(CorsLayer::permissive())
        .with_state(state)
}

/// The host part of the Host header, IPv6 in brackets, without the port.
fn request_host(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        return host[..end + 2].to_owned();
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h).to_owned()
}

async fn cert_hash(State(s): State<HttpState>, headers: HeaderMap) -> impl IntoResponse {
    let url = format!("https://{}:{}/", request_host(&headers), s.quic_port);
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "sha256": hex::encode(*s.cert_sha256.read()),
            "url": url,
        })),
    )
}

async fn health(State(s): State<HttpState>) -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "ok",
        "connections": s.hub.connection_count(),
    }))
}

/// Readiness (for load balancers), unlike `/health` (liveness): 200 while the store answers
/// and the gateway is not shutting down, 503 otherwise. The listeners are bound before this
/// router serves anything.
async fn ready(State(s): State<HttpState>) -> Response {
    let status =
        |code: StatusCode, why: &str| (code, Json(serde_json::json!({ "status": why }))).into_response();
    if s.draining.is_cancelled() || s.shutdown.is_cancelled() {
        return status(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), s.hub.store().max_id()).await {
        Ok(Ok(_)) => status(StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            status(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
        Err(_) => status(StatusCode::SERVICE_UNAVAILABLE, "store too slow"),
    }
}

/// Prometheus text exposition (OpenMetrics flavour) of [`crate::metrics`].
async fn metrics(State(s): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(&s.hub),
    )
        .into_response()
}

/// `GET /api/rooms/{room}/messages`: a page of history, oldest first, for back-ends and
/// tests. Open in dev mode (no auth configured yet).
async fn history(
    State(s): State<HttpState>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    // `?after=&before=&limit=`, parsed by a plain function (fuzzed: fuzz/fuzz_targets/http_query.rs).
    let p = match crate::http_query::parse_page_query(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": "BadRequest", "message": e.to_string() })),
            )
                .into_response()
        }
    };
    match s.hub.history_page(None, &room, p.before, p.after, p.limit).await {
        Ok((epoch, messages)) => {
            let messages: Vec<serde_json::Value> = messages
                .into_iter()
                .map(|m| {
                    serde_json::json!({
                        "offset": m.offset,
                        "id": m.id,
                        "author": m.nick,
                        "author_id": m.author,
                        "text": m.text,
                        "ts": m.ts_ms,
                        "edited": m.edited,
                        "deleted": m.deleted,
                        "attachment": m.attachment,
                        "reactions": m.reactions,
                    })
                })
                .collect();
            Json(serde_json::json!({ "messages": messages, "epoch": epoch })).into_response()
        }
        Err((code, message)) => {
            let status = if code == garou_protocol::ErrorCode::NoSuchRoom {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                status,
                Json(serde_json::json!({ "error": format!("{code:?}"), "message": message })),
            )
                .into_response()
        }
    }
}

async fn websocket(
    State(s): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Admission before the upgrade: a refused client gets a plain HTTP status.
    let permit = match s.limits.admit(remote.ip()) {
        Ok(p) => p,
        Err(refusal) => {
            let status = match refusal {
                crate::limits::Refusal::IpRate => StatusCode::TOO_MANY_REQUESTS,
                crate::limits::Refusal::Full => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (status, refusal.to_string()).into_response();
        }
    };
    /// WebSocket read buffer and write coalescing threshold, per connection.
    const WS_BUFFER: usize = 16 * 1024;
    let max = s.cfg.max_frame + garou_protocol::HEADER_LEN + 1;
    let lanes = s.cfg.stream.max_concurrent_streams as usize;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        // tungstenite's defaults (128 KiB each) made an idle WebSocket session cost ~150 KiB
        // of RSS; chat frames are small, and a large upload frame only takes more reads.
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .on_upgrade(move |socket| async move {
            // Room for two whole messages not yet read by the session.
            let conn = WsConnection::new(socket, remote, lanes, 2 * max);
            session::run(conn, s.hub, s.cfg, s.shutdown, permit).await;
        })
}

async fn static_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let file = match path.strip_prefix("pkg/") {
        Some(rest) => Pkg::get(rest),
        None if path.is_empty() => Page::get("index.html"),
        None => Page::get(path),
    };
    match file {
        Some(f) => {
            let mime = f.metadata.mimetype().to_owned();
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "no-cache".into()),
                ],
                f.data,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port() {
        let mut h = HeaderMap::new();
        for (given, want) in [
            ("127.0.0.1:8080", "127.0.0.1"),
            ("localhost", "localhost"),
            ("[::1]:8080", "[::1]"),
            ("example.com:443", "example.com"),
        ] {
            h.insert(header::HOST, given.parse().unwrap());
            assert_eq!(request_host(&h), want);
        }
    }
}
