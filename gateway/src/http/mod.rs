//! The HTTP side (axum): the chat page and the wasm package embedded in the binary, the
//! certificate hash browsers pin, health, `/metrics`, and `/ws`, the WebSocket fallback
//! transport. [`admin`] holds the admin API, [`uploads`] the upload and download routes.
//!
//! Cross-origin reads (CORS) are off unless `[http_server] cors_origins` names the origins
//! allowed: by default only the gateway's own page may read its answers. Every request but
//! an upload must be answered within `request_timeout_secs`; connection caps and the
//! header and idle timeouts live in [`crate::http::listener`].

pub mod admin;
pub mod auth;
pub mod listener;
pub mod query;
pub mod relay;
pub mod uploads;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_embed::RustEmbed;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::config::ServerConfig;
use crate::hub::Hub;
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
    /// What a cluster's hub node knows of the cluster (`None` on a single node).
    pub cluster: Option<Arc<crate::cluster::Status>>,
}

/// The router for the HTTP listener.
pub fn router(state: HttpState) -> Router {
    let request_timeout = std::time::Duration::from_secs(state.cfg.http_server.request_timeout_secs);
    let cors = cors(&state.cfg.http_server.cors_origins);
    let app = Router::new()
        .route("/cert-hash", get(cert_hash))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(admin::routes())
        .route("/api/rooms/{room}/messages", get(history))
        .route("/api/uploads/{id}", get(uploads::download))
        .route("/ws", get(websocket))
        .fallback(get(static_file))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        // Uploads are long: their body is bounded by a minimum rate instead.
        .route("/api/uploads", post(uploads::upload_http));
    match cors {
        Some(cors) => app.layer(cors).with_state(state),
        None => app.with_state(state),
    }
}

/// The CORS layer for `origins` (`"*"`: any origin), or none at all for an empty list
/// (same origin only). Credentials travel in the Authorization header, never a cookie.
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| match HeaderValue::from_str(o.trim_end_matches('/')) {
                Ok(v) => Some(v),
                Err(_) => {
                    tracing::warn!(origin = o, "ignoring an invalid CORS origin");
                    None
                }
            })
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
    )
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

async fn cert_hash(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    let sha = *s.cert_sha256.read();
    cert_hash_reply(&sha, s.quic_port, &headers)
}

/// `/cert-hash`: the certificate's SHA-256 and the WebTransport URL on this host.
pub(crate) fn cert_hash_reply(sha256: &[u8; 32], quic_port: u16, headers: &HeaderMap) -> Response {
    let url = format!("https://{}:{}/", request_host(headers), quic_port);
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({
            "sha256": hex::encode(sha256),
            "url": url,
        })),
    )
        .into_response()
}

async fn health(State(s): State<HttpState>) -> impl IntoResponse {
    let mut body = serde_json::json!({
        "status": "ok",
        "connections": s.hub.connection_count(),
    });
    if let Some(c) = &s.cluster {
        body["cluster"] = c.describe();
    }
    Json(body)
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
    if let Some(why) = s.cluster.as_ref().and_then(|c| c.unready()) {
        return status(StatusCode::SERVICE_UNAVAILABLE, why);
    }
    // Reads may still work while commits fail (disk full, locked): the committer knows.
    if !s.hub.store_healthy() {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable: commits failing",
        );
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
        crate::metrics::render_node(
            Some(&s.hub),
            &s.cluster.as_ref().map(|c| c.metrics()).unwrap_or_default(),
        ),
    )
        .into_response()
}

/// A JSON error body: `{"error": ..., "message": ...}`.
fn json_error(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": error, "message": message })),
    )
        .into_response()
}

/// `GET /api/rooms/{room}/messages?after=&before=&limit=`: a page of history, oldest
/// first, for back-ends and pages. The read model is the protocol's: a user reads the
/// history of the rooms it is a member of (any kind); the admin token reads every room.
/// The caller is named by `Authorization: Bearer` (admin token, session ticket or token)
/// or `?ticket=` ([`crate::http::auth`]). No identity: 401. Not a member: 403, or 404 for a
/// direct room, exactly as if it did not exist, so direct rooms cannot be enumerated.
async fn history(
    State(s): State<HttpState>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = match crate::http::query::page_query(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
    };
    let caller = match crate::http::auth::caller(&s, &headers, p.ticket.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let no_room = || json_error(StatusCode::NOT_FOUND, "NoSuchRoom", &format!("no room {room}"));
    let reader = match caller {
        crate::http::auth::Caller::Backend => None,
        crate::http::auth::Caller::User(user) => Some(user),
        // A member of no room: refused like any non-member.
        crate::http::auth::Caller::Stranger => {
            return match s.hub.room_kind(&room) {
                None | Some(garou_protocol::RoomKind::Direct) => no_room(),
                Some(_) => json_error(
                    StatusCode::FORBIDDEN,
                    "NotMember",
                    &format!("not a member of {room}"),
                ),
            }
        }
    };
    match s
        .hub
        .history_page(reader, &room, p.before, p.after, p.limit())
        .await
    {
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
        Err((garou_protocol::ErrorCode::NoSuchRoom, _)) => no_room(),
        Err((garou_protocol::ErrorCode::NotMember, message)) => {
            if s.hub.room_kind(&room) == Some(garou_protocol::RoomKind::Direct) {
                no_room()
            } else {
                json_error(StatusCode::FORBIDDEN, "NotMember", &message)
            }
        }
        Err((code, message)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{code:?}"), &message),
    }
}

async fn websocket(
    State(s): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let backend = crate::server::Backend::Hub(s.hub.clone());
    upgrade_websocket(upgrade, remote, &s.cfg, &s.limits, &s.shutdown, backend)
}

/// Admit a WebSocket client and upgrade it: its session runs on `backend`.
pub(crate) fn upgrade_websocket(
    upgrade: WebSocketUpgrade,
    remote: SocketAddr,
    cfg: &Arc<ServerConfig>,
    limits: &Arc<crate::limits::Limits>,
    shutdown: &CancellationToken,
    backend: crate::server::Backend,
) -> Response {
    // Admission before the upgrade: a refused client gets a plain HTTP status.
    let permit = match limits.admit(remote.ip()) {
        Ok(p) => p,
        Err(refusal) => {
            let status = match refusal {
                crate::limits::Refusal::IpRate | crate::limits::Refusal::IpConnections => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                crate::limits::Refusal::Full => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (status, refusal.to_string()).into_response();
        }
    };
    /// WebSocket read buffer and write coalescing threshold, per connection.
    const WS_BUFFER: usize = 16 * 1024;
    let max = cfg.max_frame + garou_protocol::HEADER_LEN + 1;
    let lanes = cfg.stream.max_concurrent_streams as usize;
    let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
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
            backend.serve(conn, cfg, shutdown, permit).await;
        })
}

pub(crate) async fn static_file(uri: Uri) -> Response {
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
