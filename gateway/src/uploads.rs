//! Uploads: resumable files sent over a session's bulk-upload stream (or, for browsers, one
//! HTTP POST), referenced by messages, downloaded over HTTP with a session ticket.
//!
//! - `UploadStart` (commands stream) validates and records the upload, or finds the same
//!   owner's unfinished one with the same name, size and hash: the reply says from which
//!   offset to continue (the length of the partial file is the truth).
//! - `UploadChunk`s on an `Upload` uni stream are appended to `<data>/uploads/<id>.part` only
//!   at its current length; anything else is answered with an Error frame (the stream and
//!   the session go on). Chunks go straight to disk: memory stays at one frame per stream.
//! - `UploadComplete` checks size and SHA-256, renames the file to `<data>/uploads/<id>` and
//!   replies `UploadDone`; a hash mismatch deletes the partial file, so a retry starts over.
//! - A message's `attachment` must name a complete upload of its sender; the upload is then
//!   bound to that room, whose members (and the owner) may download it.
//! - Every live session gets a random ticket (in `Welcome`) that authenticates its HTTP
//!   requests: `GET /api/uploads/{id}` and `POST /api/uploads?name=`, with
//!   `Authorization: Bearer <ticket>` or, for links a browser follows, `?ticket=`
//!   ([`crate::http::auth`]).
//!
//! Who may read an attachment: its owner, the members of the room it was shared in (the
//! people who may read that room's history, see [`crate::hub::Hub::history_page`]), and
//! back-ends with the admin token. Group and channel rooms are open to any signed-in user
//! who joins them, so an attachment there is exactly as private as the room's messages;
//! private exchanges belong in direct rooms, which nobody else can join. Anonymous guests
//! neither upload nor download unless `[uploads] allow_guests` says so.
//!
//! What a user may store: uploads are refused to guests (by default), beyond
//! `uploads_per_window` new uploads per `rate_window_secs` per user (RateLimited), beyond
//! `quota_bytes_per_user` bytes per user and `max_total_bytes` for everybody together
//! (LimitReached; "storage is full" for the latter). Sizes count as declared when an
//! upload starts, finished or not, so a half-sent upload reserves its space.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use garou_protocol::{
    Error, ErrorCode, Message, UploadChunk, UploadComplete, UploadDone, UploadReady, UploadStart, UserId,
};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::ServerConfig;
use crate::http::auth::Caller;
use crate::http::HttpState;
use crate::hub::Hub;
use crate::store::{UploadRecord, Uploads};

/// Largest `data` of one `UploadChunk`.
pub const MAX_CHUNK: usize = 256 * 1024;
/// Progress is written to the store after about this many bytes (and at the end of a stream).
const PROGRESS_EVERY: u64 = 1024 * 1024;
/// Longest file name, in characters.
const MAX_NAME: usize = 255;
/// `UploadComplete` may overtake the last chunks (they travel on another stream): it waits
/// for a short file to grow, until it has not grown for this long.
const COMPLETE_IDLE: Duration = Duration::from_secs(2);
/// The refusal of a file whose hash is not the declared one (it is then deleted).
const MISMATCH: &str = "sha256 mismatch";

type Refusal = (ErrorCode, String);

fn refuse<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, Refusal> {
    Err((code, message.into()))
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(error = %e, "upload failed");
    (ErrorCode::Internal, "upload failed on the server".into())
}

/// Shared upload state: session tickets and one lock per upload being written.
#[derive(Default)]
pub struct Registry {
    tickets: Mutex<HashMap<String, UserId>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Woken whenever a chunk was written.
    grew: tokio::sync::Notify,
    /// New uploads per user in the current window: (window start, count).
    started: Mutex<HashMap<UserId, (std::time::Instant, u32)>>,
}

/// Users tracked by the upload rate before windows that ended are swept out.
const RATE_TABLE: usize = 4096;

impl Registry {
    /// A new random ticket for `user`, valid until [`Registry::revoke`].
    pub fn issue(&self, user: UserId) -> String {
        let ticket = random_hex();
        self.tickets.lock().insert(ticket.clone(), user);
        ticket
    }

    pub fn revoke(&self, ticket: &str) {
        self.tickets.lock().remove(ticket);
    }

    /// The user a ticket belongs to.
    pub fn ticket_user(&self, ticket: &str) -> Option<UserId> {
        self.tickets.lock().get(ticket).copied()
    }

    /// Count a new upload of `user`: false if it is over `per_window` in the current
    /// `window` (0 = no limit).
    fn take_upload(&self, user: UserId, per_window: u32, window: Duration) -> bool {
        if per_window == 0 {
            return true;
        }
        let now = std::time::Instant::now();
        let mut started = self.started.lock();
        if started.len() >= RATE_TABLE {
            started.retain(|_, (since, _)| now.duration_since(*since) < window);
        }
        let (since, n) = started.entry(user).or_insert((now, 0));
        if now.duration_since(*since) >= window {
            (*since, *n) = (now, 0);
        }
        if *n >= per_window {
            return false;
        }
        *n += 1;
        true
    }

    /// Exclusive access to one upload's files (chunks, completion, HTTP upload).
    async fn lock(&self, id: &str) -> UploadLock<'_> {
        let mutex = self.locks.lock().entry(id.to_owned()).or_default().clone();
        UploadLock {
            registry: self,
            id: id.to_owned(),
            guard: Some(mutex.lock_owned().await),
        }
    }
}

/// Held while an upload's files change; the lock's map entry goes when nobody needs it.
struct UploadLock<'a> {
    registry: &'a Registry,
    id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for UploadLock<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Clones are only taken under the map lock: a count of 1 means nobody waits.
        let mut locks = self.registry.locks.lock();
        if locks.get(&self.id).is_some_and(|m| Arc::strong_count(m) == 1) {
            locks.remove(&self.id);
        }
    }
}

/// 128 random bits as 32 lowercase hex digits (upload ids and tickets).
fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `id` looks like an upload id (so it is safe in a file name).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// File names: 1-255 characters, no path separators or control characters, not `.`/`..`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// The content type without parameters, lowercased; `None` if it is not accepted.
pub fn accepted_type(cfg: &ServerConfig, content_type: &str) -> Option<String> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let plausible =
        !ct.is_empty() && ct.len() <= 127 && ct.contains('/') && ct.bytes().all(|b| b.is_ascii_graphic());
    (plausible
        && cfg
            .uploads
            .content_types
            .iter()
            .any(|p| ct.starts_with(&p.to_ascii_lowercase())))
    .then_some(ct)
}

pub fn dir(cfg: &ServerConfig) -> PathBuf {
    cfg.data.join("uploads")
}

fn part_path(cfg: &ServerConfig, id: &str) -> PathBuf {
    dir(cfg).join(format!("{id}.part"))
}

fn final_path(cfg: &ServerConfig, id: &str) -> PathBuf {
    dir(cfg).join(id)
}

/// The download path of an upload (append `?ticket=`).
pub fn url(id: &str) -> String {
    format!("/api/uploads/{id}")
}

/// Length of a file, 0 if it does not exist.
async fn file_len(path: &Path) -> std::io::Result<u64> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

async fn exists(path: &Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap_or(false)
}

fn reply(req: u32, r: Result<Message, Refusal>) -> Message {
    r.unwrap_or_else(|(code, message)| Error::reply(req, code, message))
}

// ------------------------------------------------------------------ who may store what

/// Guests upload only where `[uploads] allow_guests` says so.
fn check_guest(hub: &Hub, cfg: &ServerConfig, user: UserId) -> Result<(), Refusal> {
    if hub.is_guest(user) && !cfg.uploads.allow_guests {
        return refuse(
            ErrorCode::Forbidden,
            "guests cannot upload files on this gateway: sign in",
        );
    }
    Ok(())
}

/// A new upload of `user` counts against the per-user rate.
fn check_rate(hub: &Hub, cfg: &ServerConfig, user: UserId) -> Result<(), Refusal> {
    let u = &cfg.uploads;
    if !hub.uploads().take_upload(
        user,
        u.uploads_per_window,
        Duration::from_secs(u.rate_window_secs),
    ) {
        return refuse(
            ErrorCode::RateLimited,
            format!(
                "at most {} new uploads per {} s",
                u.uploads_per_window, u.rate_window_secs
            ),
        );
    }
    Ok(())
}

/// The refusal of a storage limit: the message says which.
const STORAGE_FULL: &str = "storage is full";

/// Whether `extra` more bytes of `user` fit its quota and the disk budget, given what is
/// reserved already (`usage`: the user's, everybody's).
fn check_space(cfg: &ServerConfig, usage: (u64, u64), extra: u64) -> Result<(), Refusal> {
    let u = &cfg.uploads;
    if u.max_total_bytes > 0 && usage.1.saturating_add(extra) > u.max_total_bytes {
        return refuse(
            ErrorCode::LimitReached,
            format!(
                "{STORAGE_FULL}: the gateway's {} bytes for uploads are used up",
                u.max_total_bytes
            ),
        );
    }
    if u.quota_bytes_per_user > 0 && usage.0.saturating_add(extra) > u.quota_bytes_per_user {
        return refuse(
            ErrorCode::LimitReached,
            format!(
                "upload quota reached: {} of {} bytes used",
                usage.0, u.quota_bytes_per_user
            ),
        );
    }
    Ok(())
}

/// After `rec` was recorded as a new upload: it must fit the rate, the quota and the
/// budget (its own size included), or its record goes again.
async fn admit_new(hub: &Hub, cfg: &ServerConfig, rec: &UploadRecord) -> Result<(), Refusal> {
    let usage = hub.store().upload_usage(rec.owner).await.map_err(internal)?;
    let without = (usage.0.saturating_sub(rec.size), usage.1.saturating_sub(rec.size));
    let verdict = check_space(cfg, without, rec.size).and_then(|()| check_rate(hub, cfg, rec.owner));
    if verdict.is_err() {
        hub.store().upload_delete(&rec.id).await.map_err(internal)?;
    }
    verdict
}

// ------------------------------------------------------------------ commands

/// `UploadStart`: `UploadReady` with the offset to continue from, or `UploadDone` when the
/// same file is already complete.
pub async fn start(hub: &Hub, cfg: &ServerConfig, user: UserId, m: UploadStart) -> Message {
    let req = m.req;
    reply(req, start_inner(hub, cfg, user, m).await)
}

async fn start_inner(
    hub: &Hub,
    cfg: &ServerConfig,
    user: UserId,
    m: UploadStart,
) -> Result<Message, Refusal> {
    check_guest(hub, cfg, user)?;
    if m.size > cfg.uploads.max_size {
        return refuse(
            ErrorCode::LimitReached,
            format!(
                "{} bytes is more than the {} bytes allowed",
                m.size, cfg.uploads.max_size
            ),
        );
    }
    let Some(content_type) = accepted_type(cfg, &m.content_type) else {
        return refuse(
            ErrorCode::InvalidArgument,
            format!("content type {:?} is not accepted", m.content_type),
        );
    };
    if m.sha256.len() != 32 {
        return refuse(ErrorCode::InvalidArgument, "sha256 must be 32 bytes");
    }
    if !valid_name(&m.name) {
        return refuse(
            ErrorCode::InvalidArgument,
            "invalid file name (1-255 characters, no path separators)",
        );
    }
    tokio::fs::create_dir_all(dir(cfg)).await.map_err(internal)?;
    let new_id = random_hex();
    let rec = hub
        .store()
        .upload_begin(UploadRecord {
            id: new_id.clone(),
            owner: user,
            name: m.name,
            content_type,
            size: m.size,
            sha256: m.sha256,
            received: 0,
            complete: false,
            room: None,
        })
        .await
        .map_err(internal)?;
    // Resuming (or finding complete) an upload of the same file costs nothing more.
    if rec.id == new_id {
        admit_new(hub, cfg, &rec).await?;
    }
    let _lock = hub.uploads().lock(&rec.id).await;
    if rec.complete && exists(&final_path(cfg, &rec.id)).await {
        return Ok(UploadDone {
            req: m.req,
            url: url(&rec.id),
            upload: rec.id,
        }
        .into());
    }
    let offset = file_len(&part_path(cfg, &rec.id)).await.map_err(internal)?;
    Ok(UploadReady {
        req: m.req,
        upload: rec.id,
        offset,
    }
    .into())
}

/// `UploadComplete`: verify length and hash, then make the file downloadable.
pub async fn complete(hub: &Hub, cfg: &ServerConfig, user: UserId, m: UploadComplete) -> Message {
    reply(
        m.req,
        complete_inner(hub, cfg, user, &m.upload).await.map(|url| {
            UploadDone {
                req: m.req,
                upload: m.upload.clone(),
                url,
            }
            .into()
        }),
    )
}

async fn complete_inner(hub: &Hub, cfg: &ServerConfig, user: UserId, id: &str) -> Result<String, Refusal> {
    let rec = owned(hub, user, id).await?;
    let (part, done) = (part_path(cfg, id), final_path(cfg, id));
    // Let chunks still in flight on the upload stream land first.
    let (mut len, mut since) = (0, tokio::time::Instant::now());
    loop {
        let grew = hub.uploads().grew.notified();
        tokio::pin!(grew);
        grew.as_mut().enable();
        let now = file_len(&part).await.map_err(internal)?;
        if now > len {
            (len, since) = (now, tokio::time::Instant::now());
        }
        if rec.complete
            || len >= rec.size
            || tokio::time::timeout_at(since + COMPLETE_IDLE, grew)
                .await
                .is_err()
        {
            break;
        }
    }
    let _lock = hub.uploads().lock(id).await;
    if rec.complete && exists(&done).await {
        return Ok(url(id));
    }
    let (size, sha256) = (rec.size, rec.sha256.clone());
    let part2 = part.clone();
    let verdict = tokio::task::spawn_blocking(move || -> std::io::Result<Result<(), Refusal>> {
        let mut file = match std::fs::File::open(&part2) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if size > 0 {
                    return Ok(refuse(
                        ErrorCode::InvalidArgument,
                        format!("0 of {size} bytes received"),
                    ));
                }
                std::fs::File::create_new(&part2)?
            }
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len != size {
            return Ok(refuse(
                ErrorCode::InvalidArgument,
                format!("{len} of {size} bytes received"),
            ));
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if hasher.finalize().as_slice() != sha256.as_slice() {
            std::fs::remove_file(&part2)?;
            return Ok(refuse(ErrorCode::InvalidArgument, MISMATCH));
        }
        file.sync_all()?;
        Ok(Ok(()))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    if let Err(refusal) = verdict {
        if refusal.1 == MISMATCH {
            hub.store()
                .upload_progress(id, 0, false)
                .await
                .map_err(internal)?;
        }
        return Err(refusal);
    }
    tokio::fs::rename(&part, &done).await.map_err(internal)?;
    hub.store()
        .upload_progress(id, size, true)
        .await
        .map_err(internal)?;
    tracing::info!(upload = id, size, "upload complete");
    Ok(url(id))
}

/// The upload `id` if `user` owns it.
async fn owned(hub: &Hub, user: UserId, id: &str) -> Result<UploadRecord, Refusal> {
    let rec = match valid_id(id) {
        true => hub.store().upload(id).await.map_err(internal)?,
        false => None,
    };
    match rec {
        None => refuse(ErrorCode::InvalidArgument, format!("no such upload {id:?}")),
        Some(r) if r.owner != user => refuse(ErrorCode::Forbidden, format!("upload {id} is not yours")),
        Some(r) => Ok(r),
    }
}

/// Before a message with `attachment` is handed to the hub: the upload must be the
/// sender's and complete, and not bound to another room; it is then bound to `room`
/// (unless the sender is no member, which the hub refuses anyway).
pub async fn attach(hub: &Hub, user: UserId, room: &str, id: &str) -> Result<(), Refusal> {
    let rec = owned(hub, user, id).await?;
    if !rec.complete {
        return refuse(ErrorCode::InvalidArgument, format!("upload {id} is not complete"));
    }
    match &rec.room {
        Some(r) if r != room => refuse(
            ErrorCode::InvalidArgument,
            format!("upload {id} is shared in another room; upload it again for this one"),
        ),
        Some(_) => Ok(()),
        None if !hub.is_member(room, user) => Ok(()),
        None => hub.store().upload_attach(id, room).await.map_err(internal),
    }
}

// ------------------------------------------------------------------ upload stream

/// One upload stream's state: the upload it last wrote to and its unrecorded progress.
pub struct ChunkWriter {
    user: UserId,
    store: Arc<dyn Uploads>,
    current: Option<UploadRecord>,
    /// The current upload's length after the last chunk written.
    len: u64,
    /// Bytes written since progress was last recorded.
    unrecorded: u64,
}

impl ChunkWriter {
    pub fn new(hub: &Hub, user: UserId) -> Self {
        ChunkWriter {
            user,
            store: hub.store().clone(),
            current: None,
            len: 0,
            unrecorded: 0,
        }
    }

    /// Append one chunk; `Some(error)` to send back when it was refused.
    pub async fn chunk(&mut self, hub: &Hub, cfg: &ServerConfig, c: UploadChunk) -> Option<Message> {
        match self.write(hub, cfg, c).await {
            Ok(()) => None,
            Err((code, message)) => Some(Error::fatal(code, message)),
        }
    }

    async fn write(&mut self, hub: &Hub, cfg: &ServerConfig, c: UploadChunk) -> Result<(), Refusal> {
        if c.data.len() > MAX_CHUNK {
            return refuse(
                ErrorCode::InvalidArgument,
                format!("upload {}: chunks carry at most {MAX_CHUNK} bytes", c.upload),
            );
        }
        if self.current.as_ref().is_none_or(|r| r.id != c.upload) {
            self.record(hub, cfg).await;
            self.current = Some(owned(hub, self.user, &c.upload).await?);
        }
        let rec = self.current.as_ref().expect("set above");
        let lock = hub.uploads().lock(&rec.id).await;
        if exists(&final_path(cfg, &rec.id)).await {
            return refuse(
                ErrorCode::InvalidArgument,
                format!("upload {} is complete", rec.id),
            );
        }
        let (path, size, offset, id) = (part_path(cfg, &rec.id), rec.size, c.offset, rec.id.clone());
        let n = c.data.len() as u64;
        let len = tokio::task::spawn_blocking(move || -> std::io::Result<Result<u64, Refusal>> {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)?;
            let len = file.metadata()?.len();
            if offset != len {
                return Ok(refuse(
                    ErrorCode::InvalidArgument,
                    format!("upload {id}: chunk at offset {offset}, expected offset {len}"),
                ));
            }
            if len + n > size {
                return Ok(refuse(
                    ErrorCode::InvalidArgument,
                    format!("upload {id}: chunk goes beyond the declared size of {size} bytes"),
                ));
            }
            file.write_all(&c.data)?;
            Ok(Ok(len + n))
        })
        .await
        .map_err(internal)?
        .map_err(internal)??;
        self.len = len;
        self.unrecorded += n;
        drop(lock);
        hub.uploads().grew.notify_waiters();
        if self.unrecorded >= PROGRESS_EVERY {
            self.record(hub, cfg).await;
        }
        Ok(())
    }

    /// Write the current upload's progress to the store (call it at the end of the stream).
    pub async fn record(&mut self, hub: &Hub, cfg: &ServerConfig) {
        if let (Some(rec), true) = (&self.current, self.unrecorded > 0) {
            // Never after completion: that would mark the upload incomplete again.
            let _lock = hub.uploads().lock(&rec.id).await;
            if !exists(&final_path(cfg, &rec.id)).await {
                if let Err(e) = self.store.upload_progress(&rec.id, self.len, false).await {
                    tracing::warn!(error = %e, upload = rec.id, "upload progress not recorded");
                }
            }
        }
        self.unrecorded = 0;
    }
}

// ------------------------------------------------------------------ HTTP

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
    let file = match tokio::fs::File::open(final_path(&s.cfg, &id)).await {
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
