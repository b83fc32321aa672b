//! Who is in the cluster: every node says so on the bus once a second (a heartbeat), and
//! every node keeps what it heard. The hub takes a relay that fell silent (or came back
//! with a new boot id) for dead and ends its sessions; `/metrics`, `/health` and the
//! admin API list the nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Heartbeat interval.
pub const BEAT: Duration = Duration::from_secs(1);

/// One node's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Beat {
    pub node: String,
    /// Random per process: a node that restarted under the same name has a new one.
    pub boot: u64,
    /// "hub", "relay" or "starting".
    pub role: String,
    /// The hub term it serves or relays to (0: none yet).
    pub gen: u64,
    /// Its HTTP address.
    pub http: String,
    /// When it was sent (ms since the Unix epoch, the sender's clock): what it took to
    /// arrive is the bus delay (`garou_cluster_bus_delay_seconds`).
    #[serde(default)]
    pub sent_ms: u64,
}

/// A node as last heard.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    #[serde(flatten)]
    pub beat: Beat,
    /// Milliseconds since its last heartbeat.
    pub silent_ms: u64,
    /// How long its last heartbeat took to arrive, in ms (clocks of two hosts: as good
    /// as their synchronisation).
    pub delay_ms: u64,
}

/// The nodes heard from.
#[derive(Default)]
pub struct Nodes {
    seen: Mutex<HashMap<String, (Beat, Instant)>>,
}

impl Nodes {
    /// Every node heard from, by name, with how long it has been silent.
    pub fn list(&self) -> Vec<Seen> {
        let mut v: Vec<Seen> = self
            .seen
            .lock()
            .values()
            .map(|(b, at)| Seen {
                beat: b.clone(),
                silent_ms: at.elapsed().as_millis() as u64,
                delay_ms: at_ms(*at).saturating_sub(b.sent_ms),
            })
            .collect();
        v.sort_by(|a, b| a.beat.node.cmp(&b.beat.node));
        v
    }

    /// Nodes heard within `within`.
    pub fn live(&self, within: Duration) -> usize {
        self.seen
            .lock()
            .values()
            .filter(|(_, at)| at.elapsed() < within)
            .count()
    }

    /// The last heartbeat of `node`, and how long ago it came.
    pub fn get(&self, node: &str) -> Option<(Beat, Duration)> {
        self.seen
            .lock()
            .get(node)
            .map(|(b, at)| (b.clone(), at.elapsed()))
    }

    fn heard(&self, beat: Beat) {
        self.seen.lock().insert(beat.node.clone(), (beat, Instant::now()));
    }
}

/// `at` as ms since the Unix epoch.
fn at_ms(at: Instant) -> u64 {
    let ago = at.elapsed();
    std::time::SystemTime::now()
        .checked_sub(ago)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Publish this node's heartbeat (made by `me` each time) and listen to everyone's, until
/// `stop`.
pub async fn run(
    nats: async_nats::Client,
    subject: String,
    nodes: Arc<Nodes>,
    me: impl Fn() -> Beat + Send + 'static,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut sub = nats.subscribe(subject.clone()).await?;
    let listen_stop = stop.clone();
    let heard = nodes.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = sub.next() => match m { Some(m) => m, None => return },
                _ = listen_stop.cancelled() => return,
            };
            match serde_json::from_slice::<Beat>(&msg.payload) {
                Ok(beat) => heard.heard(beat),
                Err(e) => tracing::debug!(error = %e, "ignoring a malformed heartbeat"),
            }
        }
    });
    tokio::spawn(async move {
        let mut every = tokio::time::interval(BEAT);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.cancelled() => return,
            }
            let mut beat = me();
            beat.sent_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            if let Ok(payload) = serde_json::to_vec(&beat) {
                // While NATS is away the client buffers or refuses; either way the next
                // beat follows.
                let _ = nats.publish(subject.clone(), payload.into()).await;
            }
        }
    });
    Ok(())
}
