//! Who an HTTP request comes from: the same identities as the protocol.
//!
//! A request names its caller with `Authorization: Bearer <credential>` (preferred) or, for
//! links a browser follows (downloads), `?ticket=`; a header, when present, is the only one
//! looked at. The credential is one of:
//! - the admin token (`[admin] token`): a back-end with full read access;
//! - a session ticket (sent in `Welcome`, valid while that session lives): that session's
//!   user;
//! - a JWT the hub's auth accepts (same checks as the protocol's `Auth`): the user who
//!   signed in with that subject, or a stranger who belongs to no room yet.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use garou_protocol::{Credentials, UserId};

use crate::http::HttpState;

/// The identity behind a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The admin token: full read access.
    Backend,
    /// A user, by session ticket or token.
    User(UserId),
    /// A valid token whose subject never signed in: a member of nothing.
    Stranger,
}

/// Why a request has no identity (401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unauthorized {
    #[error("credentials required: Authorization: Bearer <session ticket or token>, or ?ticket=")]
    Missing,
    #[error("the Authorization header must be `Bearer <credential>`")]
    Malformed,
    #[error("unknown or expired credentials")]
    Invalid,
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "error": "unauthorized", "message": self.to_string() })),
        )
            .into_response()
    }
}

/// The caller of a request: the bearer credential, else `query_ticket`.
pub fn caller(
    s: &HttpState,
    headers: &HeaderMap,
    query_ticket: Option<&str>,
) -> Result<Caller, Unauthorized> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let bearer = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(Unauthorized::Malformed)?;
        return resolve(s, bearer);
    }
    match query_ticket.filter(|t| !t.is_empty()) {
        Some(ticket) => s
            .hub
            .uploads()
            .ticket_user(ticket)
            .map(Caller::User)
            .ok_or(Unauthorized::Invalid),
        None => Err(Unauthorized::Missing),
    }
}

fn resolve(s: &HttpState, credential: &str) -> Result<Caller, Unauthorized> {
    if s.cfg
        .admin
        .token
        .as_deref()
        .is_some_and(|t| crate::http::admin::same_secret(credential, t))
    {
        return Ok(Caller::Backend);
    }
    if let Some(user) = s.hub.uploads().ticket_user(credential) {
        return Ok(Caller::User(user));
    }
    let auth = &s.hub.config().auth;
    if auth.is_open() || !credential.contains('.') {
        return Err(Unauthorized::Invalid);
    }
    match auth.verify(&Credentials::Token(credential.to_owned())) {
        Ok(crate::auth::Identity::Token { subject, .. }) => Ok(s
            .hub
            .user_by_subject(&subject)
            .map_or(Caller::Stranger, Caller::User)),
        Ok(_) | Err(_) => Err(Unauthorized::Invalid),
    }
}
