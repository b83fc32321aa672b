//! The hub's handle on one connection: bounded queues, one per server->client lane.
//!
//! Below the hub and the session (both use it); it names no other module of the gateway.
//! The session provides the transport side through [`Wire`].
//!
//! The hub never touches a transport. It pushes already-encoded frames ([`Bytes`], shared
//! by every recipient) into this connection's bounded queues with `try_send`; a writer task
//! per lane drains its queue in batches onto its stream. A full queue means the client does
//! not read: it is closed as a slow consumer, so one stalled client never grows server
//! memory or delays anyone else. Droppable traffic goes first: while any queue is at
//! least half full, typing and presence datagrams are dropped (and counted) instead of
//! being sent, so reliable frames keep the room they have. A close that cannot reach a
//! client which stopped reading is forced after a bound. Lanes (shard streams, hot-room streams) are opened on
//! first use, so an idle session costs no streams and no writer tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::{ErrorCode, Message, StreamKind, UserId};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Gateway-wide connection id.
pub type ConnId = u64;

/// Transports, in the order of per-transport arrays (sessions, bytes: see `crate::metrics`).
pub const TRANSPORTS: [&str; 3] = ["quic", "webtransport", "websocket"];

/// Index of a transport name in [`TRANSPORTS`] (unknown names count as the last).
pub fn transport_index(kind: &str) -> usize {
    match kind {
        "quic" => 0,
        "webtransport" => 1,
        _ => 2,
    }
}

/// What the control writer is told to do.
#[derive(Debug)]
pub enum Ctl {
    /// Write a frame.
    Frame(Bytes),
    /// Write `last` (if any), let the peer receive it (bounded wait), then close.
    /// Boxed: the queue's slots are sized for the common case, a frame.
    Close(Box<Closing>),
}

/// The last words of a connection: an Error (or Shutdown) frame, the close code and reason.
#[derive(Debug)]
pub struct Closing {
    pub last: Option<Bytes>,
    pub code: ErrorCode,
    pub reason: String,
}

/// The transport-facing side the session provides: opening lanes and datagrams.
pub trait Wire: Send + Sync {
    /// Open a server->client uni stream of `kind` and spawn its writer draining `rx`.
    fn open_lane(&self, kind: StreamKind, rx: mpsc::Receiver<Bytes>);
    /// Send one datagram (dropped when the transport is busy).
    fn send_datagram(&self, data: Bytes);
    /// Close at once.
    fn close(&self, code: ErrorCode, reason: &str);
    /// A droppable datagram was not sent (counted).
    fn dropped_datagram(&self) {}
    /// This connection is being closed as a slow consumer (counted: `garou_drops_total`).
    fn slow_consumer(&self) {}
}

/// How long a killed connection's Error frame may take to reach the client before the
/// transport is closed regardless (a client that stopped reading never takes it).
const FORCE_CLOSE: std::time::Duration = std::time::Duration::from_secs(3);

/// One connected session as the hub sees it.
pub struct Conn {
    pub id: ConnId,
    pub user: UserId,
    pub transport: &'static str,
    control: mpsc::Sender<Ctl>,
    lanes: Mutex<HashMap<StreamKind, mpsc::Sender<Bytes>>>,
    wire: Arc<dyn Wire>,
    lane_queue: usize,
    datagrams: bool,
    dead: AtomicBool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("user", &self.user)
            .finish()
    }
}

impl Conn {
    pub fn new(
        id: ConnId,
        user: UserId,
        transport: &'static str,
        control: mpsc::Sender<Ctl>,
        wire: Arc<dyn Wire>,
        lane_queue: usize,
        datagrams: bool,
    ) -> Conn {
        Conn {
            id,
            user,
            transport,
            control,
            lanes: Mutex::new(HashMap::new()),
            wire,
            lane_queue,
            datagrams,
            dead: AtomicBool::new(false),
        }
    }

    /// Queue a frame on the control stream.
    pub fn control(&self, msg: &Message) {
        self.control_bytes(msg.encode());
    }

    /// Queue encoded bytes on the control stream; a full queue closes the connection.
    /// The queue's last slot is kept for the close, so a client closed as a slow consumer
    /// still gets the Error frame saying why, after what it has not read yet.
    pub fn control_bytes(&self, frame: Bytes) {
        if self.control.capacity() <= 1 {
            return self.slow_consumer("control queue full: client is not reading");
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.control.try_send(Ctl::Frame(frame)) {
            self.slow_consumer("control queue full: client is not reading");
        }
    }

    /// The queue feeding lane `kind`, opening the stream on first use.
    pub fn lane(&self, kind: &StreamKind) -> mpsc::Sender<Bytes> {
        let mut lanes = self.lanes.lock();
        if let Some(tx) = lanes.get(kind) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(self.lane_queue);
        self.wire.open_lane(kind.clone(), rx);
        lanes.insert(kind.clone(), tx.clone());
        tx
    }

    /// Forget lane `kind`; its stream finishes once every holder dropped its sender.
    pub fn drop_lane(&self, kind: &StreamKind) {
        self.lanes.lock().remove(kind);
    }

    /// Push a shared frame into one of this connection's lanes.
    pub fn deliver(&self, tx: &mpsc::Sender<Bytes>, frame: &Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(frame.clone()) {
            self.slow_consumer("send queue full: client is not reading");
        }
    }

    /// Send a datagram if datagrams are on and the connection is not backed up.
    pub fn datagram(&self, frame: Bytes) {
        if !self.datagrams || self.is_dead() {
            return;
        }
        if self.backed_up() {
            self.wire.dropped_datagram();
        } else {
            self.wire.send_datagram(frame);
        }
    }

    /// True while the control queue or any lane queue is at least half full: the client
    /// reads slower than it is sent to.
    pub fn backed_up(&self) -> bool {
        let half = |tx_cap: usize, max: usize| tx_cap * 2 <= max;
        if half(self.control.capacity(), self.control.max_capacity()) {
            return true;
        }
        self.lanes
            .lock()
            .values()
            .any(|tx| half(tx.capacity(), tx.max_capacity()))
    }

    fn slow_consumer(&self, reason: &str) {
        if !self.is_dead() {
            self.wire.slow_consumer();
        }
        self.kill(ErrorCode::SlowConsumer, reason);
    }

    /// True once the connection was told to close.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    /// Close with an Error frame if the control stream can still take it (at most once).
    pub fn kill(&self, code: ErrorCode, reason: &str) {
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(conn = self.id, ?code, reason, "closing connection");
        let last = garou_protocol::Error::fatal(code, reason).encode();
        let ctl = Ctl::Close(Box::new(Closing {
            last: Some(last),
            code,
            reason: reason.to_owned(),
        }));
        if self.control.try_send(ctl).is_err() {
            return self.wire.close(code, reason);
        }
        // The control writer may be stuck behind a client that stopped reading.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (wire, reason) = (self.wire.clone(), reason.to_owned());
            rt.spawn(async move {
                tokio::time::sleep(FORCE_CLOSE).await;
                wire.close(code, &reason);
            });
        }
    }

    /// Send `last` and close gracefully (shutdown), at most once.
    pub fn close_with(&self, last: Message, code: ErrorCode, reason: &str) {
        if self.dead.swap(true, Ordering::AcqRel) {
            return;
        }
        let ctl = Ctl::Close(Box::new(Closing {
            last: Some(last.encode()),
            code,
            reason: reason.to_owned(),
        }));
        if self.control.try_send(ctl).is_err() {
            self.wire.close(code, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Closed(Mutex<Option<ErrorCode>>);

    impl Wire for Closed {
        fn open_lane(&self, _: StreamKind, _: mpsc::Receiver<Bytes>) {}
        fn send_datagram(&self, _: Bytes) {}
        fn close(&self, code: ErrorCode, _: &str) {
            *self.0.lock() = Some(code);
        }
    }

    /// The last control frame queued, decoded, and whether a close follows it.
    fn drain(rx: &mut mpsc::Receiver<Ctl>) -> (usize, Option<Closing>) {
        let mut frames = 0;
        while let Ok(c) = rx.try_recv() {
            match c {
                Ctl::Frame(_) => frames += 1,
                Ctl::Close(c) => return (frames, Some(*c)),
            }
        }
        (frames, None)
    }

    #[tokio::test]
    async fn a_full_control_queue_still_queues_the_slow_consumer_error_frame() {
        let (tx, mut rx) = mpsc::channel(8);
        let wire = Arc::new(Closed::default());
        let conn = Conn::new(1, 1, "test", tx, wire.clone(), 8, false);
        let ping = Message::from(garou_protocol::Pong { nonce: 1 });
        for _ in 0..20 {
            conn.control(&ping);
        }
        assert!(conn.is_dead());
        let (frames, close) = drain(&mut rx);
        let close = close.expect("the close is queued after the unread frames, not dropped");
        assert_eq!(frames, 7, "the frames the client has not read yet stay before it");
        assert_eq!(close.code, ErrorCode::SlowConsumer);
        let last = Message::decode_datagram(&close.last.unwrap(), 1024).unwrap();
        assert!(
            matches!(&last, Message::Error(e) if e.code == ErrorCode::SlowConsumer && e.req.is_none()),
            "{last:?}"
        );
        assert_eq!(
            *wire.0.lock(),
            None,
            "no close before the Error frame had its chance"
        );
    }
}
