//! Uploads over the session's own connection: resumable, paced, with progress.
//!
//! [`Client::upload`](crate::Client::upload) hashes the source (SHA-256, streamed for a
//! file), then the driver runs the protocol's upload exchange on every session until it
//! completes: `UploadStart` (the server answers with the offset it already has: 0 for a new
//! upload, the length of the partial file when the same user started the same name, size
//! and hash before), the chunks from that offset on an upload stream, then
//! `UploadComplete` (size and hash checked). A connection lost mid-way is resumed from the
//! server's offset after the reconnect; so is an upload started again by a new process
//! with the same source. The result's id goes into a message with
//! [`Client::send_with_attachment`](crate::Client::send_with_attachment).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{oneshot, watch};

use crate::ClientError;

/// Largest chunk data sent (the gateway accepts up to 256 KiB, within its `max_frame`).
pub(crate) const CHUNK: usize = 64 * 1024;

/// What to upload.
#[derive(Debug, Clone)]
pub enum UploadSource {
    /// Bytes in memory, under a file name.
    Bytes {
        /// The file name the server stores (1-255 characters, no path separators).
        name: String,
        /// The content.
        data: Bytes,
    },
    /// A file, read in chunks (never whole into memory); its file name is the upload's
    /// name. It must not change while it is uploaded.
    File(PathBuf),
}

impl UploadSource {
    /// Bytes in memory named `name`.
    pub fn bytes(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UploadSource::Bytes {
            name: name.into(),
            data: data.into(),
        }
    }

    /// The file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        UploadSource::File(path.into())
    }
}

/// How far an upload got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes the server has or was sent, of `total`.
    pub sent: u64,
    /// The upload's size.
    pub total: u64,
    /// Sessions that started (or resumed) it: more than 1 after a reconnect.
    pub starts: u32,
    /// The offset the server said it already had at the last start: above 0 when it
    /// resumed a partial upload instead of starting over.
    pub resumed_from: u64,
}

/// A completed upload: reference it by `id` in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The upload's id, for [`Client::send_with_attachment`](crate::Client::send_with_attachment).
    pub id: String,
    /// Where members of the room it is sent to download it (`/api/uploads/<id>`, on the
    /// gateway's HTTP address, with the session ticket).
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An upload in progress: a future resolving to [`Uploaded`] (or the error that stopped
/// it), and its [`progress`](Upload::progress). Dropping it does not cancel the upload.
#[must_use = "an Upload resolves to the upload's id, needed to attach it"]
#[derive(Debug)]
pub struct Upload {
    pub(crate) progress: watch::Receiver<UploadProgress>,
    pub(crate) done: oneshot::Receiver<Result<Uploaded, ClientError>>,
}

impl Upload {
    /// A receiver of the upload's progress, updated as chunks go out.
    pub fn progress(&self) -> watch::Receiver<UploadProgress> {
        self.progress.clone()
    }
}

impl Future for Upload {
    type Output = Result<Uploaded, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.done).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(ClientError::Closed)),
        }
    }
}

/// An upload the driver runs: the source with its size and hash.
#[derive(Debug)]
pub(crate) struct UploadJob {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub source: UploadSource,
    pub progress: watch::Sender<UploadProgress>,
    pub done: oneshot::Sender<Result<Uploaded, ClientError>>,
}

impl UploadJob {
    /// Hash `source` and describe it.
    pub(crate) async fn prepare(
        source: UploadSource,
        content_type: String,
        progress: watch::Sender<UploadProgress>,
        done: oneshot::Sender<Result<Uploaded, ClientError>>,
    ) -> Result<UploadJob, (ClientError, oneshot::Sender<Result<Uploaded, ClientError>>)> {
        let described = match &source {
            UploadSource::Bytes { name, data } => {
                Ok((name.clone(), data.len() as u64, Sha256::digest(data).into()))
            }
            UploadSource::File(path) => hash_file(path).await,
        };
        match described {
            Ok((name, size, sha256)) => {
                progress.send_modify(|p| p.total = size);
                Ok(UploadJob {
                    name,
                    content_type,
                    size,
                    sha256,
                    source,
                    progress,
                    done,
                })
            }
            Err(e) => Err((e, done)),
        }
    }
}

async fn hash_file(path: &std::path::Path) -> Result<(String, u64, [u8; 32]), ClientError> {
    let err = |e: std::io::Error| ClientError::Source(format!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ClientError::Source(format!("{}: no usable file name", path.display())))?
        .to_owned();
    let mut file = tokio::fs::File::open(path).await.map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(err)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((name, size, hasher.finalize().into()))
}

/// The bytes of `source` at `offset`, at most `CHUNK` of them.
pub(crate) async fn read_chunk(
    source: &UploadSource,
    offset: u64,
    size: u64,
) -> Result<Vec<u8>, ClientError> {
    let len = (size.saturating_sub(offset)).min(CHUNK as u64) as usize;
    match source {
        UploadSource::Bytes { data, .. } => {
            let start = offset as usize;
            Ok(data[start..start + len].to_vec())
        }
        UploadSource::File(path) => {
            let err = |e: std::io::Error| ClientError::Source(format!("{}: {e}", path.display()));
            let mut file = tokio::fs::File::open(path).await.map_err(err)?;
            file.seek(std::io::SeekFrom::Start(offset)).await.map_err(err)?;
            let mut buf = vec![0u8; len];
            file.read_exact(&mut buf).await.map_err(err)?;
            Ok(buf)
        }
    }
}
