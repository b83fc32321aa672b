//! The HTTP side of uploads: `GET /api/uploads/{id}` (download) and `POST /api/uploads`
//! (browser upload). The policy (who may store what) and the files are
//! [`crate::uploads`]'; these handlers only speak HTTP around them.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use garou_protocol::ErrorCode;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::ServerConfig;
use crate::http::auth::Caller;
use crate::http::HttpState;
use crate::store::UploadRecord;
use crate::uploads::registry::{random_hex, valid_id};
use crate::uploads::{
    accepted_type, check_guest, check_rate, check_space, dir, exists, final_path, part_path, url, valid_name,
    Refusal, MAX_CHUNK, STORAGE_FULL,
};

fn http_error(status: StatusCode, message: &str) -> Response {
    let error = status.canonical_reason().unwrap_or("error");
    (
        status,
        Json(serde_json::json!({ "error": error, "message": message })),
    )
        .into_response()
}

fn http_internal(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "upload request failed");
    http_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The HTTP answer to a refusal of the upload policy.
fn http_refusal((code, message): Refusal) -> Response {
    let status = match code {
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::LimitReached if message.starts_with(STORAGE_FULL) => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::LimitReached => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    http_error(status, &message)
}

/// The query of an upload route, or a 400.
#[allow(clippy::result_large_err)] // an axum Response is the natural error here
fn ticket_query(raw: Option<&str>) -> Result<crate::http::query::TicketQuery, Response> {
    crate::http::query::ticket_query(raw.unwrap_or(""))
        .map_err(|e| http_error(StatusCode::BAD_REQUEST, &e.to_string()))
}

/// `Content-Disposition: inline` with an ASCII fallback name and the UTF-8 name (RFC 6266).
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "inline; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("inline"))
}

/// `GET /api/uploads/{id}` (Bearer ticket, or `?ticket=T` for a link): the file, streamed,
/// for the owner, a member of the room it was shared in, or the admin token. 401 without
/// credentials, 403 without access (guests unless `[uploads] allow_guests`), 404 for an
/// unknown or unfinished upload.
pub async fn download(
    State(s): State<HttpState>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let q = match ticket_query(query.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let user = match crate::http::auth::caller(&s, &headers, q.ticket.as_deref()) {
        Ok(Caller::User(u)) => Some(u),
        Ok(Caller::Backend) => None,
        Ok(Caller::Stranger) => return http_error(StatusCode::FORBIDDEN, "not shared in a room of yours"),
        Err(e) => return e.into_response(),
    };
    if user.is_some_and(|u| s.hub.is_guest(u)) && !s.cfg.uploads.allow_guests {
        return http_error(
            StatusCode::FORBIDDEN,
            "guests cannot download files on this gateway: sign in",
        );
    }
    let rec = match valid_id(&id) {
        true => s.hub.store().upload(&id).await,
        false => Ok(None),
    };
    let rec = match rec {
        Ok(Some(r)) if r.complete => r,
        Ok(_) => return http_error(StatusCode::NOT_FOUND, "no such upload"),
        Err(e) => return http_internal(e),
    };
    if let Some(user) = user {
        let member = rec.room.as_deref().is_some_and(|r| s.hub.is_member(r, user));
        if rec.owner != user && !member {
            return http_error(StatusCode::FORBIDDEN, "not shared in a room of yours");
        }
    }
    let path = final_path(&s.cfg, &id);
    if s.hub.store().keeps_files() && !exists(&path).await {
        // Uploaded through another node (or before a failover): fetch the kept copy.
        let _lock = s.hub.uploads().lock(&id).await;
        if !exists(&path).await {
            let _ = tokio::fs::create_dir_all(crate::uploads::dir(&s.cfg)).await;
            if let Err(e) = s.hub.store().file_get(&id, &path).await {
                return http_internal(e);
            }
        }
    }
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return http_error(StatusCode::NOT_FOUND, "no such upload")
        }
        Err(e) => return http_internal(e),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return http_internal(e),
    };
    let content_type = HeaderValue::from_str(&rec.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CONTENT_DISPOSITION, disposition(&rec.name));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Served from the page's origin: never let a file run script there.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (headers, body).into_response()
}

/// Removes a temporary file unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How long the body of an HTTP upload may take to bring `bytes`: a grace, then at least
/// `[http_server] upload_min_bytes_per_sec`.
fn body_allowance(cfg: &ServerConfig, bytes: u64) -> Duration {
    const GRACE: Duration = Duration::from_secs(10);
    let rate = cfg.http_server.upload_min_bytes_per_sec;
    if rate == 0 {
        return Duration::MAX;
    }
    GRACE + Duration::from_secs_f64(bytes as f64 / rate as f64)
}

/// `POST /api/uploads?name=N` (Bearer ticket, or `&ticket=T`) with the file as the body
/// (browsers): the same limits as `UploadStart` (guests, rate, quota, disk budget), the
/// content type from the `Content-Type` header, the SHA-256 computed here. Answers
/// `201 {"id", "url"}`; the same file again gives the same id. Each POST counts against
/// the upload rate. Refusals: 401 no credentials, 403 guest, 429 rate, 413 too large or
/// over the quota, 507 storage full, 408 a body slower than the minimum rate.
pub async fn upload_http(
    State(s): State<HttpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let q = match ticket_query(query.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let user = match crate::http::auth::caller(&s, &headers, q.ticket.as_deref()) {
        Ok(Caller::User(u)) => u,
        Ok(_) => return http_error(StatusCode::FORBIDDEN, "uploads need a user's session ticket"),
        Err(e) => return e.into_response(),
    };
    let cfg = &s.cfg;
    if let Err(refusal) = check_guest(&s.hub, cfg, user) {
        return http_refusal(refusal);
    }
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(content_type) = accepted_type(cfg, given) else {
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("content type {given:?} is not accepted"),
        );
    };
    let name = q.name.unwrap_or_else(|| "upload".into());
    if !valid_name(&name) {
        return http_error(
            StatusCode::BAD_REQUEST,
            "invalid file name (1-255 characters, no path separators)",
        );
    }
    let max = cfg.uploads.max_size;
    let too_large = || {
        http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("more than the {max} bytes allowed"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    // Quota and budget before a byte is read: the declared length must fit, and the body
    // may not outgrow what is left.
    let usage = match s.hub.store().upload_usage(user).await {
        Ok(u) => u,
        Err(e) => return http_internal(e),
    };
    if let Err(refusal) = check_space(cfg, usage, declared.unwrap_or(0)) {
        return http_refusal(refusal);
    }
    if let Err(refusal) = check_rate(&s.hub, cfg, user) {
        return http_refusal(refusal);
    }
    if let Err(e) = tokio::fs::create_dir_all(dir(cfg)).await {
        return http_internal(e);
    }
    let new_id = random_hex();
    let mut tmp = TempFile {
        path: part_path(cfg, &new_id),
        keep: false,
    };
    let mut file = match tokio::fs::File::create_new(&tmp.path).await {
        Ok(f) => f,
        Err(e) => return http_internal(e),
    };
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    let started = tokio::time::Instant::now();
    let mut stream = body.into_data_stream();
    loop {
        let deadline = started + body_allowance(cfg, size + MAX_CHUNK as u64);
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(c))) => c,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return http_error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}"))
            }
            Err(_) => {
                return http_error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the upload is slower than {} bytes/s",
                        cfg.http_server.upload_min_bytes_per_sec
                    ),
                )
            }
        };
        size += chunk.len() as u64;
        if size > max {
            return too_large();
        }
        if let Err(refusal) = check_space(cfg, usage, size) {
            return http_refusal(refusal);
        }
        hasher.update(&chunk);
        if let Err(e) = file.write_all(&chunk).await {
            return http_internal(e);
        }
    }
    if let Err(e) = file.flush().await {
        return http_internal(e);
    }
    if let Err(e) = file.sync_all().await {
        return http_internal(e);
    }
    drop(file);
    let begun = s
        .hub
        .store()
        .upload_begin(UploadRecord {
            id: new_id.clone(),
            owner: user,
            name,
            content_type,
            size,
            sha256: hasher.finalize().to_vec(),
            received: 0,
            complete: false,
            room: None,
        })
        .await;
    let rec = match begun {
        Ok(r) => r,
        Err(e) => return http_internal(e),
    };
    if rec.id == new_id {
        // Checked again with this upload recorded: concurrent uploads cannot overshoot.
        let usage = match s.hub.store().upload_usage(user).await {
            Ok(u) => u,
            Err(e) => return http_internal(e),
        };
        let without = (usage.0.saturating_sub(size), usage.1.saturating_sub(size));
        if let Err(refusal) = check_space(cfg, without, size) {
            if let Err(e) = s.hub.store().upload_delete(&rec.id).await {
                return http_internal(e);
            }
            return http_refusal(refusal);
        }
    }
    // A new upload, or the same file started before (over QUIC, or complete already).
    let _lock = s.hub.uploads().lock(&rec.id).await;
    let done = final_path(cfg, &rec.id);
    if !exists(&done).await {
        if let Err(e) = tokio::fs::rename(&tmp.path, &done).await {
            return http_internal(e);
        }
        tmp.keep = true;
        if rec.id != new_id {
            let _ = tokio::fs::remove_file(part_path(cfg, &rec.id)).await;
        }
    }
    if !rec.complete {
        // Complete only once every node can serve it (a cluster's store keeps the bytes).
        if let Err(e) = s.hub.store().file_put(&rec.id, &done).await {
            return http_internal(e);
        }
        if let Err(e) = s.hub.store().upload_progress(&rec.id, size, true).await {
            return http_internal(e);
        }
    }
    tracing::info!(upload = rec.id, size, "upload complete (HTTP)");
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": rec.id, "url": url(&rec.id) })),
    )
        .into_response()
}
