//! The admin HTTP API under `/api/admin/`, behind `Authorization: Bearer <admin.token>`.
//!
//! Without a configured token every admin route answers 404, exactly like a path that does
//! not exist: an open gateway neither offers nor advertises an unauthenticated admin surface
//! (a 403 would tell a scanner there is something to attack). With one, a missing or wrong
//! token gets 401. Tokens are compared as SHA-256 digests in constant time, so neither the
//! content nor the length of the real token leaks through timing.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use crate::http::HttpState;

/// The admin routes (merged into the main router).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/api/admin/connections", get(connections))
        .route("/api/admin/rooms", get(rooms))
        .route("/api/admin/rooms/{room}", delete(close_room))
        .route("/api/admin/users/{nick}/kick", post(kick))
        .route("/api/admin/stats", get(stats))
        .route("/api/admin/nodes", get(nodes))
}

/// The cluster's nodes as this node heard them (heartbeats), with this node's role and
/// term; a single node answers with itself alone.
async fn nodes(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    match &s.cluster {
        Some(c) => Json(c.describe()).into_response(),
        None => Json(serde_json::json!({ "role": "single", "nodes": [] })).into_response(),
    }
}

/// Equal inputs, in time independent of where they differ.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Err(response)` unless the request carries the admin token.
#[allow(clippy::result_large_err)] // an axum Response is the natural error here
fn authorize(s: &HttpState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = s.cfg.admin.token.as_deref() else {
        return Err((StatusCode::NOT_FOUND, "not found").into_response());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !given.is_empty() && same_secret(given, expected) {
        return Ok(());
    }
    tracing::warn!("admin API: refused a request without the right token");
    Err((
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({ "error": "unauthorized" })),
    )
        .into_response())
}

fn failure(status: StatusCode, code: garou_protocol::ErrorCode, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": format!("{code:?}"), "message": message })),
    )
        .into_response()
}

async fn connections(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    Json(serde_json::json!({ "connections": s.hub.connection_infos() })).into_response()
}

async fn rooms(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    Json(serde_json::json!({ "rooms": s.hub.room_summaries() })).into_response()
}

/// Body of a kick: why (shown to the user).
#[derive(serde::Deserialize, Default)]
struct KickBody {
    reason: Option<String>,
}

async fn kick(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Path(nick): Path<String>,
    body: Option<Json<KickBody>>,
) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    let reason = body
        .and_then(|Json(b)| b.reason)
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "kicked by an administrator".to_owned());
    match s.hub.kick(&nick, &reason) {
        Some(n) => Json(serde_json::json!({ "nick": nick, "closed": n })).into_response(),
        None => failure(
            StatusCode::NOT_FOUND,
            garou_protocol::ErrorCode::NoSuchUser,
            format!("no user {nick}"),
        ),
    }
}

/// Close a room: members get RoomDeleted (by 0, the server); answered once that is durable.
async fn close_room(State(s): State<HttpState>, headers: HeaderMap, Path(room): Path<String>) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    match s.hub.close_room(&room, 0) {
        Ok(offset) => {
            s.hub.flush().await;
            Json(serde_json::json!({ "room": room, "offset": offset })).into_response()
        }
        Err((code, message)) => {
            let status = if code == garou_protocol::ErrorCode::NoSuchRoom {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            failure(status, code, message)
        }
    }
}

async fn stats(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return r;
    }
    let snap = s.hub.snapshot();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": snap.uptime.as_secs(),
        "connections": crate::metrics::get().connections.iter().map(|g| g.get()).sum::<i64>(),
        "sessions": snap.sessions.iter().sum::<usize>(),
        "rooms": snap.rooms,
        "hot_rooms": snap.hot_rooms,
        "messages_in": crate::metrics::messages_in(),
        "deliveries": s.hub.stats().snapshot().deliveries,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare() {
        assert!(same_secret("a-long-admin-token", "a-long-admin-token"));
        assert!(!same_secret("a-long-admin-token", "a-long-admin-tokem"));
        assert!(!same_secret("", "a-long-admin-token"));
    }
}
