//! The driver's side of uploads: each upload's state across connections, the upload
//! requests on a commands stream of their own, and the tasks that stream the chunks.
//!
//! The session does not know upload requests, so their ids come from a range it never
//! reaches in practice ([`REQ_BASE`] up) and their replies are taken out of the control
//! stream before it reaches the session ([`Uploads::intercept`]).

use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::{
    Frame, FrameType, Message, ReqId, StreamHeader, StreamKind, UploadChunk, UploadComplete, UploadStart,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::link::Link;
use crate::rate::{Pacer, SharedPacer};
use crate::upload::{read_chunk, UploadJob, UploadProgress, UploadSource, Uploaded};
use crate::{ClientError, Failure};

/// First request id of upload requests (the session counts up from 1).
const REQ_BASE: ReqId = 0xF000_0000;
/// Chunk-stream results queued to the driver.
const DONE_QUEUE: usize = 16;

/// What the chunk tasks share with the driver.
#[derive(Debug)]
struct JobData {
    source: UploadSource,
    size: u64,
    progress: watch::Sender<UploadProgress>,
}

#[derive(Debug)]
enum State {
    /// Needs an `UploadStart` on the next ready session.
    Queued,
    Starting(ReqId),
    Sending {
        upload: String,
        task: JoinHandle<()>,
    },
    Completing(ReqId),
}

#[derive(Debug)]
struct Job {
    key: u64,
    /// Which chunk task is current (results of older ones are ignored).
    generation: u64,
    name: String,
    content_type: String,
    sha256: [u8; 32],
    data: Arc<JobData>,
    done: Option<oneshot::Sender<Result<Uploaded, ClientError>>>,
    state: State,
}

impl Job {
    fn waits_for(&self, req: ReqId) -> bool {
        matches!(self.state, State::Starting(r) | State::Completing(r) if r == req)
    }

    fn finish(mut self, result: Result<Uploaded, ClientError>) {
        if let State::Sending { task, .. } = &self.state {
            task.abort();
        }
        if result.is_ok() {
            let size = self.data.size;
            self.data.progress.send_modify(|p| p.sent = size);
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(result);
        }
    }
}

/// A chunk task's result: (job key, generation, outcome).
type Done = (u64, u64, Result<(), ClientError>);

/// Every upload not finished yet.
#[derive(Debug)]
pub(crate) struct Uploads {
    jobs: Vec<Job>,
    next_key: u64,
    next_req: ReqId,
    /// This connection's commands stream for upload requests.
    cmds: Option<mpsc::Sender<Bytes>>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
}

impl Default for Uploads {
    fn default() -> Self {
        let (done_tx, done_rx) = mpsc::channel(DONE_QUEUE);
        Uploads {
            jobs: Vec::new(),
            next_key: 0,
            next_req: REQ_BASE,
            cmds: None,
            done_tx,
            done_rx,
        }
    }
}

impl Uploads {
    /// A new upload; it starts on the next ready session.
    pub(crate) fn add(&mut self, job: UploadJob) {
        self.next_key += 1;
        self.jobs.push(Job {
            key: self.next_key,
            generation: 0,
            name: job.name,
            content_type: job.content_type,
            sha256: job.sha256,
            data: Arc::new(JobData {
                source: job.source,
                size: job.size,
                progress: job.progress,
            }),
            done: Some(job.done),
            state: State::Queued,
        });
    }

    /// Fail every upload with `error`.
    pub(crate) fn fail_all(&mut self, error: &ClientError) {
        for job in self.jobs.drain(..) {
            job.finish(Err(error.clone()));
        }
    }

    /// The connection is gone: stop the chunk streams; every upload starts again (from the
    /// server's offset) on the next session.
    pub(crate) fn connection_lost(&mut self) {
        self.cmds = None;
        for job in &mut self.jobs {
            if let State::Sending { task, .. } = &job.state {
                task.abort();
            }
            job.state = State::Queued;
        }
    }

    fn alloc_req(&mut self) -> ReqId {
        let r = self.next_req;
        self.next_req = self.next_req.checked_add(1).unwrap_or(REQ_BASE);
        r
    }

    fn command(&mut self, link: &mut Link, pacer: &SharedPacer, msg: Message) {
        let tx = self.cmds.get_or_insert_with(|| {
            let header = Message::from(StreamHeader {
                kind: StreamKind::Commands,
            })
            .encode();
            link.open_paced_uni(header, pacer.clone())
        });
        if tx.try_send(msg.encode()).is_err() {
            // A full queue of a handful of upload requests means the stream is stuck:
            // the connection is going away, and the upload restarts on the next one.
            debug!("upload request not queued");
        }
    }

    /// Send `UploadStart` for every upload waiting for this session.
    pub(crate) fn start_queued(&mut self, link: &mut Link, pacer: &SharedPacer) {
        for i in 0..self.jobs.len() {
            if !matches!(self.jobs[i].state, State::Queued) {
                continue;
            }
            let req = self.alloc_req();
            let job = &mut self.jobs[i];
            job.state = State::Starting(req);
            let msg = Message::from(UploadStart {
                req,
                name: job.name.clone(),
                content_type: job.content_type.clone(),
                size: job.data.size,
                sha256: job.sha256.to_vec(),
            });
            self.command(link, pacer, msg);
        }
    }

    /// The reply to one of our upload requests, decoded, if `frame` is one.
    pub(crate) fn intercept(&self, frame: &Frame) -> Option<Message> {
        if self.jobs.is_empty()
            || ![FrameType::UploadReady, FrameType::UploadDone, FrameType::Error]
                .iter()
                .any(|t| *t as u8 == frame.ty)
        {
            return None;
        }
        let msg = Message::decode(frame).ok()?;
        let req = msg.reply_to()?;
        self.jobs.iter().any(|j| j.waits_for(req)).then_some(msg)
    }

    fn take(&mut self, req: ReqId) -> Option<Job> {
        let i = self.jobs.iter().position(|j| j.waits_for(req))?;
        Some(self.jobs.swap_remove(i))
    }

    /// Act on a reply [`Uploads::intercept`] took out.
    pub(crate) fn on_reply(&mut self, msg: Message, link: &mut Link, pacer: &SharedPacer) {
        match msg {
            Message::UploadReady(r) => {
                let Some(i) = self.jobs.iter().position(|j| j.waits_for(r.req)) else {
                    return;
                };
                let job = &mut self.jobs[i];
                let (size, offset) = (job.data.size, r.offset.min(job.data.size));
                job.data.progress.send_modify(|p| {
                    p.starts += 1;
                    p.resumed_from = offset;
                    p.sent = offset;
                });
                debug!(upload = %r.upload, offset, size, "upload ready");
                job.generation += 1;
                let done = self.done_tx.clone();
                let (key, generation, data) = (job.key, job.generation, job.data.clone());
                let conn = link.conn.clone();
                let (upload, pacer) = (r.upload.clone(), pacer.clone());
                let task = tokio::spawn(async move {
                    let result = send_chunks(conn, upload, offset, data, pacer).await;
                    let _ = done.send((key, generation, result)).await;
                });
                job.state = State::Sending {
                    upload: r.upload,
                    task,
                };
            }
            Message::UploadDone(d) => {
                if let Some(job) = self.take(d.req) {
                    let size = job.data.size;
                    job.finish(Ok(Uploaded {
                        id: d.upload,
                        url: d.url,
                        size,
                    }));
                }
            }
            Message::Error(e) => {
                if let Some(job) = e.req.and_then(|r| self.take(r)) {
                    job.finish(Err(ClientError::Failure(Failure {
                        code: e.code,
                        message: e.message,
                    })));
                }
            }
            _ => {}
        }
    }

    /// The next chunk-stream result (never resolves while there is none).
    pub(crate) async fn next_done(&mut self) -> Option<Done> {
        self.done_rx.recv().await
    }

    /// A chunk stream ended: complete the upload, or fail it if its source failed.
    pub(crate) fn chunks_done(
        &mut self,
        done: Option<Done>,
        link: &mut Link,
        pacer: &SharedPacer,
    ) -> Result<(), ClientError> {
        let Some((key, generation, result)) = done else {
            return Ok(());
        };
        let Some(i) = self.jobs.iter().position(|j| {
            j.key == key && j.generation == generation && matches!(j.state, State::Sending { .. })
        }) else {
            return Ok(()); // an older connection's stream
        };
        match result {
            Ok(()) => {
                let req = self.alloc_req();
                let State::Sending { upload, .. } =
                    std::mem::replace(&mut self.jobs[i].state, State::Completing(req))
                else {
                    unreachable!("checked above")
                };
                self.command(link, pacer, Message::from(UploadComplete { req, upload }));
                Ok(())
            }
            Err(e @ ClientError::Source(_)) => {
                self.jobs.swap_remove(i).finish(Err(e.clone()));
                Err(e)
            }
            // The connection is failing: the driver notices and the upload resumes later.
            Err(e) => Err(e),
        }
    }
}

/// Stream the chunks of an upload from `offset` on a new upload stream, paced.
async fn send_chunks(
    conn: quinn::Connection,
    upload: String,
    mut offset: u64,
    data: Arc<JobData>,
    pacer: SharedPacer,
) -> Result<(), ClientError> {
    let lost = |e: &dyn std::fmt::Display| ClientError::Lost(format!("upload stream: {e}"));
    let mut stream = conn.open_uni().await.map_err(|e| lost(&e))?;
    let header = Message::from(StreamHeader {
        kind: StreamKind::Upload,
    })
    .encode();
    stream.write_all(&header).await.map_err(|e| lost(&e))?;
    while offset < data.size {
        let chunk = read_chunk(&data.source, offset, data.size).await?;
        let len = chunk.len() as u64;
        Pacer::take(&pacer).await;
        let frame = Message::from(UploadChunk {
            upload: upload.clone(),
            offset,
            data: chunk,
        })
        .encode();
        stream.write_all(&frame).await.map_err(|e| lost(&e))?;
        offset += len;
        data.progress.send_modify(|p| p.sent = offset);
    }
    stream.finish().map_err(|e| lost(&e))?;
    let _ = stream.stopped().await;
    Ok(())
}
