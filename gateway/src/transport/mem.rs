//! In-memory transport: two ends of a [`Connection`] joined by bounded channels.
//!
//! Why: the session and the hub can then be driven without sockets, TLS or timers of a
//! network stack, by tests and by the `server_session` fuzz target, with the same code path
//! as QUIC. [`MemConnection::pair`] gives a server end (hand it to
//! [`session::run`](crate::session::run)) and a client end that opens the control stream
//! with [`MemConnection::open_bi`] and otherwise uses the [`Connection`] methods.
//!
//! Semantics, close to QUIC's: a stream is a bounded queue of chunks (a full queue makes
//! the writer wait: backpressure); finishing a stream ends it after what was written;
//! [`SendStream::finish_and_wait`] returns once the reader has read to the end (or dropped
//! the stream, or the connection closed); datagrams are dropped when the peer's queue is
//! full; closing either end closes both, and the first close's code and reason are kept
//! ([`MemConnection::close_info`]). One difference: chunks already queued stay readable
//! after the close, so a test can read the Error frame that preceded it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Connection, RecvStream, SendStream, TransportError};

/// Chunks queued per stream before the writer waits.
pub const STREAM_QUEUE: usize = 64;
/// Streams opened but not yet accepted before the opener waits.
pub const ACCEPT_QUEUE: usize = 16;
/// Datagrams queued towards an end before further ones are dropped.
pub const DATAGRAM_QUEUE: usize = 64;

/// How the connection was closed, seen from one end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: u16,
    pub reason: String,
    /// Closed by this end (rather than by the peer).
    pub local: bool,
}

/// State both ends share: whether, how and by which end the connection was closed.
struct Shared {
    closed: CancellationToken,
    /// (end that closed first, code, reason).
    first: Mutex<Option<(u8, u16, String)>>,
}

impl Shared {
    fn close(&self, end: u8, code: u16, reason: &str) {
        self.first
            .lock()
            .get_or_insert_with(|| (end, code, reason.to_owned()));
        self.closed.cancel();
    }
}

fn closed_error() -> TransportError {
    TransportError("connection closed".into())
}

/// The sending half of an in-memory stream.
pub struct MemSend {
    tx: Option<mpsc::Sender<Bytes>>,
    /// Resolves (with an error) once the reader has read to the end or dropped the stream.
    read_out: oneshot::Receiver<()>,
    closed: CancellationToken,
}

/// Why [`MemSend::try_write`] did not queue a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryWriteError {
    #[error("stream queue full")]
    Full,
    #[error("stream finished, stopped by the reader, or connection closed")]
    Gone,
}

impl MemSend {
    /// Queue one chunk without waiting.
    pub fn try_write(&self, chunk: Bytes) -> Result<(), TryWriteError> {
        let tx = self.tx.as_ref().ok_or(TryWriteError::Gone)?;
        if self.closed.is_cancelled() {
            return Err(TryWriteError::Gone);
        }
        tx.try_send(chunk).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TryWriteError::Full,
            mpsc::error::TrySendError::Closed(_) => TryWriteError::Gone,
        })
    }

    /// End the stream after what was written, without waiting for the reader.
    pub fn finish(&mut self) {
        self.tx = None;
    }
}

impl SendStream for MemSend {
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), TransportError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| TransportError("stream already finished".into()))?;
        for chunk in chunks.iter_mut() {
            let chunk = std::mem::take(chunk);
            tokio::select! {
                sent = tx.send(chunk) => sent.map_err(|_| TransportError("stream stopped by the reader".into()))?,
                _ = self.closed.cancelled() => return Err(closed_error()),
            }
        }
        Ok(())
    }

    async fn finish_and_wait(&mut self) {
        self.finish();
        tokio::select! {
            _ = &mut self.read_out => {}
            _ = self.closed.cancelled() => {}
        }
    }
}

/// The receiving half of an in-memory stream.
pub struct MemRecv {
    rx: mpsc::Receiver<Bytes>,
    /// Dropped when the end of the stream is read (or with the stream): wakes the writer.
    at_end: Option<oneshot::Sender<()>>,
    closed: CancellationToken,
}

impl RecvStream for MemRecv {
    async fn read_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        tokio::select! {
            // Queued chunks first: they stay readable after a close.
            biased;
            chunk = self.rx.recv() => {
                if chunk.is_none() {
                    self.at_end = None;
                }
                Ok(chunk)
            }
            _ = self.closed.cancelled() => Err(closed_error()),
        }
    }
}

fn pipe(closed: &CancellationToken) -> (MemSend, MemRecv) {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let (at_end, read_out) = oneshot::channel();
    let send = MemSend {
        tx: Some(tx),
        read_out,
        closed: closed.clone(),
    };
    let recv = MemRecv {
        rx,
        at_end: Some(at_end),
        closed: closed.clone(),
    };
    (send, recv)
}

/// One end of an in-memory connection. See the module docs.
pub struct MemConnection {
    end: u8,
    shared: Arc<Shared>,
    /// Bidi streams the peer opened (the control stream).
    bi_in: tokio::sync::Mutex<mpsc::Receiver<(MemSend, MemRecv)>>,
    bi_out: mpsc::Sender<(MemSend, MemRecv)>,
    uni_in: tokio::sync::Mutex<mpsc::Receiver<MemRecv>>,
    uni_out: mpsc::Sender<MemRecv>,
    dgram_in: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    dgram_out: mpsc::Sender<Bytes>,
}

impl MemConnection {
    /// A connected (server, client) pair.
    pub fn pair() -> (MemConnection, MemConnection) {
        let shared = Arc::new(Shared {
            closed: CancellationToken::new(),
            first: Mutex::new(None),
        });
        let (bi_to_server, bi_at_server) = mpsc::channel(ACCEPT_QUEUE);
        let (bi_to_client, bi_at_client) = mpsc::channel(ACCEPT_QUEUE);
        let (uni_to_server, uni_at_server) = mpsc::channel(ACCEPT_QUEUE);
        let (uni_to_client, uni_at_client) = mpsc::channel(ACCEPT_QUEUE);
        let (dgram_to_server, dgram_at_server) = mpsc::channel(DATAGRAM_QUEUE);
        let (dgram_to_client, dgram_at_client) = mpsc::channel(DATAGRAM_QUEUE);
        let server = MemConnection {
            end: 0,
            shared: shared.clone(),
            bi_in: tokio::sync::Mutex::new(bi_at_server),
            bi_out: bi_to_client,
            uni_in: tokio::sync::Mutex::new(uni_at_server),
            uni_out: uni_to_client,
            dgram_in: tokio::sync::Mutex::new(dgram_at_server),
            dgram_out: dgram_to_client,
        };
        let client = MemConnection {
            end: 1,
            shared,
            bi_in: tokio::sync::Mutex::new(bi_at_client),
            bi_out: bi_to_server,
            uni_in: tokio::sync::Mutex::new(uni_at_client),
            uni_out: uni_to_server,
            dgram_in: tokio::sync::Mutex::new(dgram_at_client),
            dgram_out: dgram_to_server,
        };
        (server, client)
    }

    /// Open a bidi stream (the client's control stream); waits while the peer's accept
    /// queue is full.
    pub async fn open_bi(&self) -> Result<(MemSend, MemRecv), TransportError> {
        let (send, peer_recv) = pipe(&self.shared.closed);
        let (peer_send, recv) = pipe(&self.shared.closed);
        self.offer(&self.bi_out, (peer_send, peer_recv)).await?;
        Ok((send, recv))
    }

    /// Open a uni stream without waiting: `None` when the peer's accept queue is full or
    /// the connection is closed.
    pub fn try_open_uni(&self) -> Option<MemSend> {
        if self.shared.closed.is_cancelled() {
            return None;
        }
        let (send, recv) = pipe(&self.shared.closed);
        self.uni_out.try_send(recv).ok().map(|()| send)
    }

    /// How the connection was closed, `None` while it is open.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared
            .first
            .lock()
            .as_ref()
            .map(|(end, code, reason)| CloseInfo {
                code: *code,
                reason: reason.clone(),
                local: *end == self.end,
            })
    }

    async fn offer<T>(&self, queue: &mpsc::Sender<T>, item: T) -> Result<(), TransportError> {
        tokio::select! {
            sent = queue.send(item) => sent.map_err(|_| closed_error()),
            _ = self.shared.closed.cancelled() => Err(closed_error()),
        }
    }

    async fn take<T>(&self, queue: &tokio::sync::Mutex<mpsc::Receiver<T>>) -> Result<T, TransportError> {
        let mut queue = queue.lock().await;
        tokio::select! {
            item = queue.recv() => item.ok_or_else(closed_error),
            _ = self.shared.closed.cancelled() => Err(closed_error()),
        }
    }
}

impl Drop for MemConnection {
    /// Like a QUIC connection handle: dropping an end closes the connection.
    fn drop(&mut self) {
        self.shared.close(self.end, 0, "dropped");
    }
}

impl Connection for MemConnection {
    type Send = MemSend;
    type Recv = MemRecv;

    fn kind(&self) -> &'static str {
        "mem"
    }
    fn remote(&self) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, 0).into()
    }
    async fn accept_bi(&self) -> Result<(MemSend, MemRecv), TransportError> {
        self.take(&self.bi_in).await
    }
    async fn accept_uni(&self) -> Result<MemRecv, TransportError> {
        self.take(&self.uni_in).await
    }
    async fn open_uni(&self) -> Result<MemSend, TransportError> {
        let (send, recv) = pipe(&self.shared.closed);
        self.offer(&self.uni_out, recv).await?;
        Ok(send)
    }
    fn send_datagram(&self, data: Bytes) -> bool {
        // Unreliable: dropped when the peer's queue is full.
        self.dgram_out.try_send(data).is_ok()
    }
    async fn read_datagram(&self) -> Result<Bytes, TransportError> {
        self.take(&self.dgram_in).await
    }
    fn close(&self, code: u16, reason: &str) {
        self.shared.close(self.end, code, reason);
    }
    async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const BOUND: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn streams_carry_chunks_and_finish_waits_for_the_reader() {
        let (server, client) = MemConnection::pair();
        let (mut send, _client_recv) = client.open_bi().await.unwrap();
        let (_server_send, mut recv) = tokio::time::timeout(BOUND, server.accept_bi())
            .await
            .unwrap()
            .unwrap();
        send.write_chunks(&mut [Bytes::from_static(b"ab"), Bytes::from_static(b"c")])
            .await
            .unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = recv.read_chunk().await.unwrap() {
                got.extend_from_slice(&c);
            }
            got
        });
        // Returns only once the reader has seen the end.
        tokio::time::timeout(BOUND, send.finish_and_wait()).await.unwrap();
        let got = tokio::time::timeout(BOUND, reader).await.unwrap().unwrap();
        assert_eq!(got, b"abc");
    }

    #[tokio::test]
    async fn close_is_seen_by_both_ends_and_keeps_the_first_reason() {
        let (server, client) = MemConnection::pair();
        let uni = client.try_open_uni().unwrap();
        uni.try_write(Bytes::from_static(b"queued")).unwrap();
        let mut recv = server.accept_uni().await.unwrap();
        server.close(7, "bad frame");
        client.close(0, "bye");
        tokio::time::timeout(BOUND, client.closed()).await.unwrap();
        let info = client.close_info().unwrap();
        assert_eq!(
            (info.code, info.reason.as_str(), info.local),
            (7, "bad frame", false)
        );
        assert!(server.close_info().unwrap().local);
        // Queued data stays readable, then the closed connection shows.
        assert_eq!(recv.read_chunk().await.unwrap().unwrap(), "queued");
        assert!(recv.read_chunk().await.is_err());
        assert!(server.accept_uni().await.is_err());
        assert_eq!(
            uni.try_write(Bytes::from_static(b"late")),
            Err(TryWriteError::Gone)
        );
        assert!(client.try_open_uni().is_none());
    }

    #[tokio::test]
    async fn full_queues_push_back() {
        let (_server, client) = MemConnection::pair();
        let uni = client.try_open_uni().unwrap();
        for _ in 0..STREAM_QUEUE {
            uni.try_write(Bytes::from_static(b"x")).unwrap();
        }
        assert_eq!(uni.try_write(Bytes::from_static(b"x")), Err(TryWriteError::Full));
        let opened: Vec<_> = std::iter::from_fn(|| client.try_open_uni())
            .take(ACCEPT_QUEUE + 1)
            .collect();
        assert_eq!(
            opened.len(),
            ACCEPT_QUEUE - 1,
            "one slot was taken by the first stream"
        );
    }
}
