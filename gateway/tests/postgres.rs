//! A real gateway on PostgreSQL (`[store] url`): history and offsets survive a restart on
//! the same database, and a PostgreSQL that goes away makes the gateway refuse publishes and
//! report unready, never exit, and recover by itself once it is back. Skipped, with a
//! printed reason, when `GAROU_TEST_PG` is unset (`scripts/test.sh` sets it).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::pg::{PrivatePg, TestDb};
use common::raw::{eventually, Raw};
use common::*;
use garou_client::{ClientEvent, Trust};
use garou_gateway::config::{ServerConfig, StoreConfig};
use garou_gateway::server::Gateway;
use garou_protocol::{ErrorCode, Event, Message, MessageAck, MsgId, Offset, Send};

async fn on_postgres(url: &str, quic: Option<SocketAddr>) -> Gateway {
    let Some(addr) = quic else {
        let url = url.to_owned();
        return gateway(move |c| c.store.url = Some(url)).await;
    };
    // The previous gateway's UDP socket may linger a moment after its shutdown.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let cfg = ServerConfig {
            quic: addr,
            http: "127.0.0.1:0".parse().unwrap(),
            data: tempfile::tempdir().unwrap().keep(),
            store: StoreConfig {
                url: Some(url.to_owned()),
            },
            ..ServerConfig::default()
        };
        match Gateway::start(cfg).await {
            Ok(gw) => return gw,
            Err(e) if tokio::time::Instant::now() < deadline => {
                println!("restart on {addr}: {e}; again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("gateway restarts on {addr}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_offsets_survive_a_restart_on_the_same_database() {
    let Some(db) = TestDb::create().await else { return };
    let gw = on_postgres(&db.url, None).await;
    let addr = gw.quic_addr;
    let mut opts = options(&gw, "alice");
    opts.trust = Trust::Insecure; // the restarted gateway has a new certificate
    opts.backoff_min = Duration::from_millis(100);
    opts.backoff_max = Duration::from_millis(500);
    let (alice, mut events) = garou_client::connect(opts).await.unwrap();
    let joined = alice.join("lobby").await.unwrap();
    let (bob, _b) = client(&gw, "bob").await;
    bob.join("lobby").await.unwrap();
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        sent.push(bob.send("lobby", text).await.unwrap());
    }
    wait_message(&mut events, "three").await;
    bob.close().await;
    gw.shutdown().await;
    wait_for(&mut events, "disconnect", |ev| {
        matches!(ev, ClientEvent::Disconnected { .. }).then_some(())
    })
    .await;

    // The same database, the same port: alice's client reconnects and resumes.
    let gw = on_postgres(&db.url, Some(addr)).await;
    let rejoined = wait_for(&mut events, "rejoin", |ev| match ev {
        ClientEvent::Session(Event::Rejoined { room, result }) if room == "lobby" => Some(result.clone()),
        _ => None,
    })
    .await
    .expect("rejoined");
    assert!(
        rejoined.resumed,
        "resumed from the offset alice had: {rejoined:?}"
    );
    assert_eq!(
        rejoined.epoch, joined.epoch,
        "the room's epoch is kept in the store"
    );
    let (bob, _b) = client(&gw, "bob").await;
    bob.join("lobby").await.unwrap();
    let four = bob.send("lobby", "four").await.unwrap();
    assert!(
        four.offset > sent[2].offset,
        "offsets continue: {four:?} after {:?}",
        sent[2]
    );
    assert!(four.id > sent[2].id, "ids continue: {four:?} after {:?}", sent[2]);
    // Nothing before the restart is delivered again: "four" is the next chat message.
    let next = wait_for(&mut events, "a message", |ev| match room_event(ev) {
        Some((Message::RoomMessage(m), _)) => Some((m.text.clone(), m.offset)),
        _ => None,
    })
    .await;
    assert_eq!(next, ("four".to_string(), four.offset));

    let history = alice.history("lobby", None, Some(0), 100).await.unwrap();
    assert_eq!(history.epoch, joined.epoch);
    let got: Vec<(String, Offset, MsgId)> = history
        .messages
        .iter()
        .map(|m| (m.text.clone(), m.offset, m.id))
        .collect();
    let want: Vec<(String, Offset, MsgId)> = ["one", "two", "three", "four"]
        .iter()
        .zip(sent.iter().chain([&four]))
        .map(|(t, s)| (t.to_string(), s.offset, s.id))
        .collect();
    assert_eq!(got, want);
    gw.shutdown().await;
    db.drop().await;
}

/// Send a message and read the reply to it (bounded).
async fn publish(raw: &mut Raw, room: &str, client_id: u64, text: &str) -> Message {
    let req = raw.req();
    let send = Send {
        req,
        room: room.into(),
        client_id,
        text: text.into(),
        attachment: None,
    };
    raw.commands
        .write_all(&Message::from(send).encode())
        .await
        .unwrap();
    reply(raw, req).await
}

async fn reply(raw: &mut Raw, req: u32) -> Message {
    loop {
        let m = raw.next().await;
        if m.reply_to() == Some(req) {
            return m;
        }
    }
}

fn ack(m: Message) -> (MsgId, Offset) {
    match m {
        Message::MessageAck(MessageAck { id, offset, .. }) => (id, offset),
        other => panic!("expected a MessageAck, got {other:?}"),
    }
}

/// Room messages received until (and including) the one with `text`.
async fn until_message(raw: &mut Raw, text: &str) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        let m = tokio::time::timeout(WAIT, raw.events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {text:?}"))
            .expect("events");
        if let Message::RoomMessage(m) = m {
            texts.push(m.text.clone());
            if m.text == text {
                return texts;
            }
        }
    }
}

/// PostgreSQL stops: the message on its way is kept and retried, new publishes are refused
/// at once with Unavailable, `/ready` says 503; PostgreSQL starts again: the kept message
/// commits and is delivered and acked, and publishes are taken again. The gateway never
/// exits. Needs `GAROU_TEST_PG` (the CI signal that PostgreSQL is installed) and initdb.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_refuses_publishes_and_the_gateway_recovers_by_itself() {
    // Commits wait for a connection (5 s) before they fail, and a stopped server needs a
    // moment to come back: longer than WAIT.
    const OUTAGE: Duration = Duration::from_secs(60);
    if common::pg::server().is_none() {
        return;
    }
    let Some(pg) = PrivatePg::start() else { return };
    let gw = on_postgres(&pg.url(), None).await;
    let mut alice = Raw::login(&gw, "alice", true, None).await;
    alice.join("lobby").await;
    let mut bob = Raw::login(&gw, "bob", true, None).await;
    bob.join("lobby").await;
    ack(publish(&mut alice, "lobby", 1, "before").await);
    assert_eq!(ready(gw.http_addr).await.0, 200);

    pg.ctl_stop();
    // The message on its way when the store went: kept, retried.
    let req = alice.req();
    let held = Send {
        req,
        room: "lobby".into(),
        client_id: 2,
        text: "held".into(),
        attachment: None,
    };
    alice
        .commands
        .write_all(&Message::from(held).encode())
        .await
        .unwrap();
    eventually("the store counted as down", OUTAGE, || !gw.hub.store_healthy()).await;
    let (status, body) = ready(gw.http_addr).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store"), "{body}");
    match publish(&mut alice, "lobby", 3, "refused").await {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }

    pg.ctl_start();
    let (_, offset) = ack(tokio::time::timeout(OUTAGE, reply(&mut alice, req))
        .await
        .expect("held message acked"));
    assert_eq!(until_message(&mut bob, "held").await, ["before", "held"]);
    eventually("healthy again", WAIT, || gw.hub.store_healthy()).await;
    assert_eq!(ready(gw.http_addr).await.0, 200);
    let (_, next) = ack(publish(&mut alice, "lobby", 4, "after").await);
    assert_eq!(next, offset + 1, "the refused publish took no offset");
    assert_eq!(until_message(&mut bob, "after").await, ["after"]);
    let stored = gw
        .hub
        .store()
        .messages("lobby", None, Some(0), 100)
        .await
        .unwrap();
    let texts: Vec<&str> = stored.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before", "held", "after"]);
    gw.shutdown().await;
}

/// Every commit of a fenced store checks its term's lease, on both of its paths: a batch of
/// appends (one statement) and any other batch (a transaction). While term `gen` holds the
/// lease its commits land; a store fenced with a term that does not hold it commits nothing
/// and says `Fenced`.
#[tokio::test]
async fn a_fenced_store_commits_only_while_its_term_holds_the_lease() {
    use garou_gateway::cluster::lease::Lease;
    use garou_gateway::store::postgres::PostgresStore;
    use garou_gateway::store::{Changes, Messages, Op, StoreError};
    use garou_protocol::RoomKind;

    let Some(db) = TestDb::create().await else { return };
    let lease = Lease::connect(&db.url, "a", Duration::from_secs(60))
        .await
        .unwrap();
    let gen = lease
        .try_acquire("")
        .await
        .unwrap()
        .expect("nobody holds a new database's lease");
    let holder = PostgresStore::open(&db.url).await.unwrap().fenced(gen);
    let deposed = PostgresStore::open(&db.url).await.unwrap().fenced(gen + 1);
    let append = |offset: u64| {
        vec![
            Op::Message {
                id: offset,
                room: "r".into(),
                offset,
                author: 1,
                nick: "a".into(),
                ts_ms: offset,
                text: format!("m{offset}"),
                client_id: offset,
                attachment: None,
            },
            Op::Event {
                room: "r".into(),
                offset,
                ts_ms: offset,
                frame: bytes::Bytes::from(vec![offset as u8]),
            },
        ]
    };
    let room = Op::Room {
        name: "r".into(),
        kind: RoomKind::Group,
        epoch: 1,
    };
    holder
        .apply(&[room])
        .await
        .expect("the holder commits a transaction");
    holder
        .apply(&append(1))
        .await
        .expect("the holder commits appends");
    let title = Op::RoomTitle {
        room: "r".into(),
        title: "t".into(),
    };
    for (what, ops) in [("appends", append(2)), ("a transaction", vec![title])] {
        match deposed.apply(&ops).await {
            Err(StoreError::Fenced(_)) => {}
            other => panic!("a deposed term committed {what}: {other:?}"),
        }
    }
    let events = holder.events("r", 0, 10).await.unwrap();
    assert_eq!(
        events,
        vec![bytes::Bytes::from(vec![1u8])],
        "only the holder's event is stored"
    );
    let messages = holder.messages("r", None, None, 10).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.offset).collect::<Vec<_>>(), vec![1]);
    let rooms = garou_gateway::store::Rooms::rooms(&holder).await.unwrap();
    assert_eq!(
        rooms[0].last_offset, 1,
        "the appends moved the room's last offset"
    );
    assert_eq!(rooms[0].title, "", "the deposed term's title change did not land");
    db.drop().await;
}
