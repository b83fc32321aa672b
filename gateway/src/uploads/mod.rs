//! Uploads: resumable files sent over a session's bulk-upload stream (or, for browsers, one
//! HTTP POST), referenced by messages, downloaded over HTTP with a session ticket.
//!
//! This module holds the upload commands of a session and the policy (who may store
//! what) and files behind them; [`registry`] the shared bookkeeping (tickets, locks,
//! rates) the hub keeps; the HTTP handlers are in [`crate::http::uploads`].
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

pub mod registry;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use garou_protocol::{
    Error, ErrorCode, Message, UploadChunk, UploadComplete, UploadDone, UploadReady, UploadStart, UserId,
};
use sha2::{Digest, Sha256};

use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::store::{UploadRecord, Uploads};
use registry::random_hex;
pub use registry::{valid_id, Registry};

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

pub(crate) type Refusal = (ErrorCode, String);

fn refuse<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, Refusal> {
    Err((code, message.into()))
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(error = %e, "upload failed");
    (ErrorCode::Internal, "upload failed on the server".into())
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

pub(crate) fn part_path(cfg: &ServerConfig, id: &str) -> PathBuf {
    dir(cfg).join(format!("{id}.part"))
}

pub(crate) fn final_path(cfg: &ServerConfig, id: &str) -> PathBuf {
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

pub(crate) async fn exists(path: &Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap_or(false)
}

fn reply(req: u32, r: Result<Message, Refusal>) -> Message {
    r.unwrap_or_else(|(code, message)| Error::reply(req, code, message))
}

// ------------------------------------------------------------------ who may store what

/// Guests upload only where `[uploads] allow_guests` says so.
pub(crate) fn check_guest(hub: &Hub, cfg: &ServerConfig, user: UserId) -> Result<(), Refusal> {
    if hub.is_guest(user) && !cfg.uploads.allow_guests {
        return refuse(
            ErrorCode::Forbidden,
            "guests cannot upload files on this gateway: sign in",
        );
    }
    Ok(())
}

/// A new upload of `user` counts against the per-user rate.
pub(crate) fn check_rate(hub: &Hub, cfg: &ServerConfig, user: UserId) -> Result<(), Refusal> {
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
pub(crate) const STORAGE_FULL: &str = "storage is full";

/// Whether `extra` more bytes of `user` fit its quota and the disk budget, given what is
/// reserved already (`usage`: the user's, everybody's).
pub(crate) fn check_space(cfg: &ServerConfig, usage: (u64, u64), extra: u64) -> Result<(), Refusal> {
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
    // Complete only once every node can serve it (a cluster's store keeps the bytes).
    hub.store().file_put(id, &done).await.map_err(internal)?;
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
