//! The hub's fan-out: one message published into a room of 1,000 subscribers, through the
//! real hub and committer on a real SQLite store, delivered to every subscriber's lane
//! queue. Connections are in-memory (a [`Wire`] that keeps each lane's receiver), so the
//! figure is the server's per-message work minus the transport writes.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use garou_gateway::conn::{Conn, Ctl, Wire};
use garou_gateway::hub::{Hub, HubConfig};
use garou_gateway::store::sqlite::SqliteStore;
use garou_protocol::{Credentials, ErrorCode, Join, Message, Send as SendMsg, StreamKind};
use parking_lot::Mutex;
use tokio::sync::mpsc;

const SUBSCRIBERS: usize = 1000;

/// Keeps every lane's receiver so the bench can drain what the hub queued.
#[derive(Default)]
struct MemWire {
    lanes: Mutex<Vec<mpsc::Receiver<Bytes>>>,
}

impl Wire for MemWire {
    fn open_lane(&self, _kind: StreamKind, rx: mpsc::Receiver<Bytes>) {
        self.lanes.lock().push(rx);
    }
    fn send_datagram(&self, _data: Bytes) {}
    fn close(&self, _code: ErrorCode, _reason: &str) {}
}

struct Sub {
    conn: Arc<Conn>,
    wire: Arc<MemWire>,
    /// Kept open (a closed control queue would not matter, but keep it realistic).
    _control: mpsc::Receiver<Ctl>,
}

fn config() -> HubConfig {
    HubConfig {
        retention: Default::default(),
        num_shards: 8,
        max_message_len: 4096,
        // Never promote: the shard lane is the common case.
        hot_room_threshold: 1e12,
        cool_down_threshold: 1.0,
        cool_down_period_secs: 0,
        max_hot_rooms: 0,
        rate_window_secs: 1,
        auth: garou_gateway::auth::Auth::open(),
        max_rooms_per_user: 0,
        max_members_per_room: 0,
        recent_messages: garou_gateway::hub::room::RECENT_MESSAGES,
        recent_messages_total: 1_000_000,
        resume_token_ttl: std::time::Duration::from_secs(600),
    }
}

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (hub, subs) = rt.block_on(async {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let hub = Hub::open(config(), Arc::new(store)).await.unwrap();
        let mut subs = Vec::with_capacity(SUBSCRIBERS);
        for i in 0..SUBSCRIBERS {
            let wire = Arc::new(MemWire::default());
            let (tx, control) = mpsc::channel(1024);
            let w: Arc<dyn Wire> = wire.clone();
            let (conn, _) = hub
                .login(&Credentials::Nick(format!("u{i}")), |user| {
                    // A lane queue deep enough for every iteration between drains.
                    Arc::new(Conn::new(hub.next_id(), user, "bench", tx, w, 4096, false))
                })
                .unwrap();
            let join = Join {
                req: 1,
                room: "general".into(),
                since: None,
            };
            if hub.command(&conn, join.into()).is_none() {
                hub.flush().await;
            }
            subs.push(Sub {
                conn,
                wire,
                _control: control,
            });
        }
        (hub, subs)
    });
    let drain = |subs: &[Sub]| {
        let mut n = 0usize;
        for s in subs {
            for rx in s.wire.lanes.lock().iter_mut() {
                while rx.try_recv().is_ok() {
                    n += 1;
                }
            }
            // Replies and presence on the control queue are not part of the fan-out.
        }
        n
    };
    drain(&subs);
    let publisher = subs[0].conn.clone();
    let mut req: u32 = 10;
    let mut g = c.benchmark_group("hub_fanout");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.sample_size(20);
    g.bench_function("1000_subscribers_64B", |b| {
        b.iter(|| {
            req += 1;
            let send = SendMsg {
                req,
                room: "general".into(),
                client_id: req.into(),
                text: "x".repeat(64),
                attachment: None,
            };
            let msg: Message = send.into();
            rt.block_on(async {
                assert!(
                    hub.command(&publisher, msg).is_none(),
                    "a send is acked once durable"
                );
                hub.flush().await;
            });
            assert_eq!(drain(&subs), SUBSCRIBERS);
        })
    });
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
