//! A cluster in one process: nodes on PostgreSQL (`GAROU_TEST_PG`) and NATS
//! (`GAROU_TEST_NATS`), each with its own ports, sharing one certificate. Skipped with a
//! printed reason when either variable is unset (`scripts/test.sh` sets both).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::cluster::{free_port, nats};
use common::pg::{PrivateNats, PrivatePg, TestDb};
use common::{room_event, wait_for, WAIT};
use garou_client::{connect, Client, ClientOptions, Events, Trust};
use garou_gateway::cluster::{Node, Role};
use garou_gateway::config::ServerConfig;
use garou_protocol::{ErrorCode, Message};

/// What the nodes of one test share: database, NATS, subject prefix, certificate.
struct Cluster {
    db: TestDb,
    nats: String,
    name: String,
    certs: tempfile::TempDir,
    sha256: [u8; 32],
}

/// One node: its ports (kept across its terms) and the running node.
struct TestNode {
    node: Node,
    quic: SocketAddr,
    #[allow(dead_code)]
    http: SocketAddr,
}

impl Cluster {
    async fn new() -> Option<Cluster> {
        let nats = nats()?;
        let db = TestDb::create().await?;
        Some(Cluster::on(db, nats))
    }

    /// A cluster on this database and NATS server.
    fn on(db: TestDb, nats: String) -> Cluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "garoutest{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let certs = tempfile::tempdir().unwrap();
        let cert =
            garou_gateway::tls::DevCert::new(&garou_gateway::tls::DevCert::default_names(), 14).unwrap();
        cert.write(certs.path()).unwrap();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        Cluster {
            db,
            nats,
            name,
            certs,
            sha256: cert.sha256,
        }
    }

    fn config(&self, node: &str, quic: SocketAddr, http: SocketAddr) -> ServerConfig {
        let mut cfg = ServerConfig {
            quic,
            http,
            data: tempfile::tempdir().unwrap().keep(),
            cert: Some(self.certs.path().join("cert.pem")),
            key: Some(self.certs.path().join("key.pem")),
            ..ServerConfig::default()
        };
        cfg.store.url = Some(self.db.url.clone());
        cfg.cluster.node = Some(node.into());
        cfg.cluster.nats = Some(self.nats.clone());
        cfg.cluster.name = self.name.clone();
        cfg.cluster.lease_ms = 1_500;
        cfg.cluster.relay_timeout_ms = 3_000;
        cfg
    }

    async fn node(&self, name: &str) -> TestNode {
        let quic: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let node = Node::start(self.config(name, quic, http))
            .await
            .expect("node starts");
        TestNode { node, quic, http }
    }

    fn options(&self, servers: &[&TestNode], nick: &str) -> ClientOptions {
        let mut o =
            ClientOptions::with_nick(servers[0].quic.to_string(), nick).trust(Trust::CertHash(self.sha256));
        o.servers = servers.iter().map(|n| n.quic.to_string()).collect();
        o
    }

    async fn client(&self, servers: &[&TestNode], nick: &str) -> (Client, Events) {
        tokio::time::timeout(WAIT, connect(self.options(servers, nick)))
            .await
            .expect("connect in time")
            .expect("connect")
    }
}

impl TestNode {
    async fn role(&self, want: Role) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.node.status.role() != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never became {want:?} (is {:?})",
                self.node.status.node,
                self.node.status.role()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The offset of the message with this text, as `events` delivers it.
async fn offset_of(events: &mut Events, text: &str) -> u64 {
    wait_for(events, &format!("message {text:?}"), |ev| match room_event(ev) {
        Some((Message::RoomMessage(m), _)) if m.text == text => Some(m.offset),
        _ => None,
    })
    .await
}

/// Clients on two nodes share a room: each sees the other's messages at the same offsets,
/// the member list and nicks are the cluster's, and when the hub node leaves, the other
/// node takes over and both clients resume there without a hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_room_one_order_and_a_takeover() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let a = cluster.node("a").await;
    a.role(Role::Hub).await;
    let b = cluster.node("b").await;
    b.role(Role::Relay).await;

    let (alice, mut alice_ev) = cluster.client(&[&a, &b], "alice").await;
    let (bob, mut bob_ev) = cluster.client(&[&b, &a], "bob").await;
    alice.join("lobby").await.unwrap();
    bob.join("lobby").await.unwrap();
    let sa = alice.send("lobby", "from a").await.unwrap();
    let sb = bob.send("lobby", "from b").await.unwrap();
    assert_eq!(sb.offset, sa.offset + 1, "one sequence for the room");
    for events in [&mut alice_ev, &mut bob_ev] {
        assert_eq!(offset_of(events, "from a").await, sa.offset);
        assert_eq!(offset_of(events, "from b").await, sb.offset);
    }

    // The member list is the cluster's, and a nick in use on one node is taken on the other.
    let members = bob.list_users("lobby").await.unwrap();
    let online: Vec<(&str, bool)> = members.iter().map(|m| (m.nick.as_str(), m.online)).collect();
    assert!(
        online.contains(&("alice", true)) && online.contains(&("bob", true)),
        "{online:?}"
    );
    let mut o = cluster.options(&[&b], "alice");
    o.reconnect = false;
    let Err(taken) = connect(o).await else {
        panic!("alice is taken")
    };
    assert_eq!(taken.code(), Some(ErrorCode::NickUnavailable), "{taken}");

    // The HTTP API is the hub's, reachable through the relay too.
    let (status, body) = get(
        b.http,
        &format!("/api/rooms/lobby/messages?ticket={}", bob.ticket()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("from a") && body.contains("from b"), "{body}");

    // A file uploaded through the relay downloads through the hub node, and the other way.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let up = tokio::time::timeout(
        WAIT,
        bob.upload(
            garou_client::UploadSource::bytes("a.bin", data.clone()),
            "application/octet-stream",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let last = bob
        .send_with_attachment("lobby", "a file", up.id.clone())
        .await
        .unwrap();
    let path = format!("/api/uploads/{}?ticket={}", up.id, alice.ticket());
    assert_eq!(get_bytes(a.http, &path).await, data, "through the hub node");
    let path = format!("/api/uploads/{}?ticket={}", up.id, bob.ticket());
    assert_eq!(get_bytes(b.http, &path).await, data, "through the relay node");

    // The hub leaves (cleanly: it hands the lease back); b takes over and both resume.
    a.node.shutdown().await;
    b.role(Role::Hub).await;
    let after = tokio::time::timeout(2 * WAIT, async {
        loop {
            match alice.send("lobby", "after the takeover").await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await
    .expect("alice publishes again");
    assert_eq!(
        after.offset,
        last.offset + 1,
        "no hole, no duplicate across the takeover"
    );
    assert_eq!(offset_of(&mut bob_ev, "after the takeover").await, after.offset);
    // The file's bytes were on the old hub's disk only: the new hub serves them from the store.
    let path = format!("/api/uploads/{}?ticket={}", up.id, bob.ticket());
    assert_eq!(get_bytes(b.http, &path).await, data, "after the takeover");
    b.node.shutdown().await;
    cluster.db.drop().await;
}

/// `GET path` on `addr`: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut tcp)) = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr)).await else {
        return (0, String::new()); // between two terms
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

/// Wait (bounded) until `/ready` on `addr` answers `status` with `why` in its body.
async fn ready_becomes(addr: SocketAddr, status: u16, why: &str) {
    let deadline = tokio::time::Instant::now() + 2 * WAIT;
    loop {
        let (s, body) = get(addr, "/ready").await;
        if s == status && body.contains(why) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready stayed {s} {body}, not {status} {why:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Faults on private instances: NATS killed and restarted, then PostgreSQL restarted. The
/// node that lost a dependency says which on `/ready`; nothing is acked while its path to
/// the store is down; both recover by themselves, and every acked message is in history
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_and_postgres_outages_refuse_then_recover_by_themselves() {
    if nats().is_none() || common::pg::server().is_none() {
        return;
    }
    let Some(pg) = PrivatePg::start() else { return };
    let Some(mut bus) = PrivateNats::start() else {
        return;
    };
    let db = TestDb::create_on(&pg.url()).await;
    let cluster = Cluster::on(db, bus.url());
    let a = cluster.node("a").await;
    a.role(Role::Hub).await;
    let b = cluster.node("b").await;
    b.role(Role::Relay).await;
    let (alice, _alice_ev) = cluster.client(&[&a], "alice").await;
    let mut o = cluster.options(&[&b], "bob");
    o.request_timeout = Duration::from_secs(30);
    let (bob, _bob_ev) = tokio::time::timeout(WAIT, connect(o)).await.unwrap().unwrap();
    alice.join("r").await.unwrap();
    bob.join("r").await.unwrap();
    let mut acked = vec![bob.send("r", "before").await.unwrap()];

    // NATS goes away: the relay says so, and bob's publish is not acked meanwhile.
    bus.stop();
    ready_becomes(b.http, 503, "NATS").await;
    let pending = {
        let bob = bob.clone();
        tokio::spawn(async move {
            (
                bob.send("r", "during the bus outage").await,
                tokio::time::Instant::now(),
            )
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!pending.is_finished(), "acked while the bus was down");
    let back = tokio::time::Instant::now();
    assert!(bus.resume());
    ready_becomes(b.http, 200, "ready").await;
    let (sent, at) = tokio::time::timeout(2 * WAIT, pending)
        .await
        .expect("answered once the bus is back")
        .unwrap();
    assert!(at >= back);
    acked.push(sent.expect("acked once the bus is back"));
    println!(
        "bus back: relay ready and the held publish acked after {:?}",
        at - back
    );

    // PostgreSQL restarts: the hub refuses publishes meanwhile and recovers by itself.
    pg.ctl_stop();
    ready_becomes(a.http, 503, "store").await;
    let during = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.send("r", "during the store outage").await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !during.is_finished() || during.await.unwrap().is_err(),
        "acked while the store was down"
    );
    pg.ctl_start();
    ready_becomes(a.http, 200, "ready").await;
    let deadline = tokio::time::Instant::now() + 2 * WAIT;
    let after = loop {
        match alice.send("r", "after the store outage").await {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no publish after the store came back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    acked.push(after);
    let history = alice.history("r", None, Some(0), 100).await.unwrap();
    let texts: Vec<&str> = history.messages.iter().map(|m| m.text.as_str()).collect();
    for text in ["before", "during the bus outage", "after the store outage"] {
        assert_eq!(
            texts.iter().filter(|t| **t == text).count(),
            1,
            "{text:?} in {texts:?}"
        );
    }
    // Not acked during the outage; held by the hub, it may have been stored once it was back.
    assert!(
        texts.iter().filter(|t| **t == "during the store outage").count() <= 1,
        "{texts:?}"
    );
    for s in &acked {
        assert!(history.messages.iter().any(|m| m.offset == s.offset));
    }
    a.node.shutdown().await;
    b.node.shutdown().await;
    drop(bus);
}

/// The body of `GET path` on `addr` (which must answer 200).
async fn get_bytes(addr: SocketAddr, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    raw[end..].to_vec()
}
