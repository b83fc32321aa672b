//! One QUIC connection and the tasks that move its bytes.
//!
//! The driver never awaits a socket directly: small tasks read each stream (and the
//! datagrams) and forward chunks over one bounded channel, and one writer task per lane
//! drains a bounded queue into its stream. So a slow stream never blocks the state
//! machine, and every buffer between the network and the session has a fixed size.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use garou_protocol::client::{StreamId, CONTROL};
use garou_protocol::Lane;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, trace};

use crate::options::{split_host_port, ClientOptions};
use crate::rate::{Pacer, SharedPacer};
use crate::ClientError;

/// Frames queued per outgoing lane before the driver stops taking new commands.
const LANE_QUEUE: usize = 256;
/// Chunks queued from reader tasks to the driver.
const INBOUND_QUEUE: usize = 64;
/// Frames written per `write_all_chunks` call (coalescing what is queued).
const WRITE_BATCH: usize = 64;

/// What reader tasks forward to the driver.
#[derive(Debug)]
pub(crate) enum Inbound {
    Data(StreamId, Bytes),
    End(StreamId),
    /// The stream failed (reset by the peer, or the connection went away).
    Failed(StreamId, String),
    Datagram(Bytes),
}

/// A live connection with its reader and writer tasks.
pub(crate) struct Link {
    pub endpoint: quinn::Endpoint,
    /// False when the endpoint is shared ([`ClientOptions::endpoint`]): closing this link
    /// must not wait for the other connections on it.
    pub owns_endpoint: bool,
    pub conn: quinn::Connection,
    /// Chunks of the control stream (replies, shard and session management).
    pub control: mpsc::Receiver<Inbound>,
    /// Chunks of server-opened streams (room events) and datagrams.
    pub inbound: mpsc::Receiver<Inbound>,
    lanes: HashMap<Lane, mpsc::Sender<Bytes>>,
    writers: Vec<JoinHandle<()>>,
    /// Set once writers were told to finish; no new lanes are opened after that.
    finishing: bool,
}

impl Link {
    /// Resolve `server`, connect (bounded by `deadline`), open the control stream and start
    /// the I/O tasks.
    pub async fn open(
        server: &str,
        opts: &ClientOptions,
        config: quinn::ClientConfig,
        deadline: Instant,
    ) -> Result<Link, ClientError> {
        let (host, port) = split_host_port(server)?;
        let sni = opts.sni_for(server)?;
        let addr = resolve(&host, port).await?;
        let bind: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let (endpoint, owns_endpoint) = match &opts.endpoint {
            Some(shared) => (shared.clone(), false),
            None => {
                let own = quinn::Endpoint::client(bind)
                    .map_err(|e| ClientError::Connect(format!("cannot bind a UDP socket: {e}")))?;
                (own, true)
            }
        };
        let connecting = endpoint
            .connect_with(config, addr, &sni)
            .map_err(|e| ClientError::Connect(format!("{server}: {e}")))?;
        let conn = match tokio::time::timeout_at(deadline, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(ClientError::Connect(format!("{server} ({addr}): {e}"))),
            Err(_) => {
                return Err(ClientError::Connect(format!(
                    "{server} ({addr}): no QUIC handshake within {:?}",
                    opts.connect_timeout
                )))
            }
        };
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| ClientError::Connect(format!("{server}: opening the control stream: {e}")))?;
        debug!(%addr, "QUIC connection up");

        // The control stream gets its own queue so the driver can keep taking replies while
        // room events wait for the application.
        let (ctl_in_tx, control) = mpsc::channel(INBOUND_QUEUE);
        let (in_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        tokio::spawn(read_stream(CONTROL, recv, ctl_in_tx));
        tokio::spawn(accept_streams(conn.clone(), in_tx.clone()));
        tokio::spawn(read_datagrams(conn.clone(), in_tx));

        let (ctl_tx, ctl_rx) = mpsc::channel(LANE_QUEUE);
        let writers = vec![tokio::spawn(write_lane(Lane::Control, send, ctl_rx))];
        let mut lanes = HashMap::new();
        lanes.insert(Lane::Control, ctl_tx);
        Ok(Link {
            endpoint,
            owns_endpoint,
            conn,
            control,
            inbound,
            lanes,
            writers,
            finishing: false,
        })
    }

    /// The queue of a stream lane, opening its uni stream on first use (the session has
    /// put the StreamHeader first). `None` once the link is finishing.
    pub fn lane(&mut self, lane: Lane) -> Option<mpsc::Sender<Bytes>> {
        debug_assert!(lane != Lane::Datagram);
        if let Some(tx) = self.lanes.get(&lane) {
            return Some(tx.clone());
        }
        if self.finishing {
            return None;
        }
        let (tx, rx) = mpsc::channel(LANE_QUEUE);
        let conn = self.conn.clone();
        self.writers.push(tokio::spawn(async move {
            match conn.open_uni().await {
                Ok(stream) => write_lane(lane, stream, rx).await,
                Err(e) => debug!(?lane, "cannot open stream: {e}"),
            }
        }));
        self.lanes.insert(lane, tx.clone());
        Some(tx)
    }

    /// Open a client uni stream that starts with `header` and carries the frames sent to
    /// the returned queue, each after a token of `pacer`.
    pub fn open_paced_uni(&mut self, header: Bytes, pacer: SharedPacer) -> mpsc::Sender<Bytes> {
        let (tx, mut rx) = mpsc::channel::<Bytes>(LANE_QUEUE);
        let conn = self.conn.clone();
        self.writers.push(tokio::spawn(async move {
            let mut stream = match conn.open_uni().await {
                Ok(s) => s,
                Err(e) => return debug!("cannot open stream: {e}"),
            };
            if stream.write_all(&header).await.is_err() {
                return;
            }
            while let Some(frame) = rx.recv().await {
                Pacer::take(&pacer).await;
                if let Err(e) = stream.write_all(&frame).await {
                    return debug!("write failed: {e}");
                }
            }
            if stream.finish().is_ok() {
                let _ = stream.stopped().await;
            }
        }));
        tx
    }

    /// Send one datagram; too large or unsupported ones are dropped (they are lossy anyway).
    pub fn send_datagram(&self, data: Bytes) {
        if let Err(e) = self.conn.send_datagram(data) {
            debug!("datagram dropped: {e}");
        }
    }

    /// Let every writer drain its queue, finish its stream and see it acknowledged.
    pub async fn finish_writers(&mut self) {
        self.finishing = true;
        self.lanes.clear();
        for w in self.writers.drain(..) {
            let _ = w.await;
        }
    }

    /// Close the connection now (idempotent).
    pub fn close(&self, code: u16, reason: &str) {
        self.conn.close(u32::from(code).into(), reason.as_bytes());
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Stops the acceptor and reader tasks, which hold clones of the connection.
        self.conn.close(0u32.into(), b"bye");
        for w in &self.writers {
            w.abort();
        }
    }
}

/// First address of `host`, IPv4 preferred (local gateways usually listen on IPv4 only,
/// and an unanswered QUIC attempt costs the whole connect timeout).
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ClientError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ClientError::Connect(format!("cannot resolve {host}: {e}")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| ClientError::Connect(format!("{host} has no address")))
}

async fn write_lane(lane: Lane, mut stream: quinn::SendStream, mut rx: mpsc::Receiver<Bytes>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        trace!(?lane, frames = batch.len(), "write");
        if let Err(e) = stream.write_all_chunks(&mut batch).await {
            debug!(?lane, "write failed: {e}");
            return;
        }
        batch.clear();
    }
    // The driver is closing: end the stream cleanly and wait until the server has it all,
    // so closing the connection right after cannot discard queued data.
    if stream.finish().is_ok() {
        let _ = stream.stopped().await;
    }
}

async fn read_stream(id: StreamId, mut recv: quinn::RecvStream, tx: mpsc::Sender<Inbound>) {
    loop {
        let msg = match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => Inbound::Data(id, chunk.bytes),
            Ok(None) => {
                let _ = tx.send(Inbound::End(id)).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Inbound::Failed(id, e.to_string())).await;
                return;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

/// Accept server-opened uni streams concurrently, numbering them from 1 (0 is the control
/// stream), each with its own reader so one busy room stream cannot hold up the others.
async fn accept_streams(conn: quinn::Connection, tx: mpsc::Sender<Inbound>) {
    let mut next: StreamId = CONTROL + 1;
    while let Ok(recv) = conn.accept_uni().await {
        trace!(id = next, "server opened a stream");
        tokio::spawn(read_stream(next, recv, tx.clone()));
        next += 1;
    }
}

async fn read_datagrams(conn: quinn::Connection, tx: mpsc::Sender<Inbound>) {
    while let Ok(d) = conn.read_datagram().await {
        // Lossy by nature: when the driver is behind, drop rather than queue.
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Inbound::Datagram(d)) {
            return;
        }
    }
}
