//! The native client (garou-client) against the real gateway over QUIC on loopback: what
//! only the client's driver does (handshake, request routing, pipelining, trust modes,
//! server fallback, backpressure, reconnect with rejoin, graceful close), end to end.
//! Room semantics, sharding and hot rooms are covered by quic.rs.

mod common;

use std::time::Duration;

use common::*;
use garou_client::{connect, ClientError, ClientEvent, Events, Trust};
use garou_protocol::{ErrorCode, Event};
use tokio::time::{timeout, timeout_at, Instant};

/// Wait (bounded) for `n` chat messages in `room`, ignoring every other event; their texts
/// in delivery order.
async fn messages(events: &mut Events, room: &str, n: usize) -> Vec<String> {
    let mut texts = Vec::with_capacity(n);
    while texts.len() < n {
        let text = wait_for(
            events,
            &format!("message {} of {n} in {room}", texts.len()),
            |ev| {
                ev.room_message()
                    .filter(|m| m.room == room)
                    .map(|m| m.text.clone())
            },
        )
        .await;
        texts.push(text);
    }
    texts
}

/// Wait (bounded) until the gateway counts `n` connections.
async fn connections(gw: &garou_gateway::server::Gateway, n: usize) {
    let deadline = Instant::now() + WAIT;
    while gw.hub.connection_count() != n {
        assert!(
            Instant::now() < deadline,
            "the gateway still counts {} connections, want {n}",
            gw.hub.connection_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn handshake_join_send_and_close() {
    let gw = gateway(|_| {}).await;
    let (alice, mut a_events) = client(&gw, "alice").await;
    assert_eq!(alice.nick(), "alice");
    assert_ne!(alice.user(), 0);
    assert!(alice.is_connected());
    // The first event is Ready, with what the handle reports.
    let ev = timeout(WAIT, a_events.next()).await.unwrap().unwrap();
    let ClientEvent::Session(Event::Ready {
        session,
        user,
        nick,
        num_shards,
    }) = ev
    else {
        panic!("first event is not Ready: {ev:?}");
    };
    assert_eq!(
        (session, user, nick.as_str()),
        (alice.session_id(), alice.user(), "alice")
    );
    assert_eq!(num_shards, 8, "the gateway's default shard count");

    let (bob, mut b_events) = client(&gw, "bob").await;
    let info = alice.join("general").await.unwrap();
    assert_eq!(info.room.name, "general");
    bob.join("general").await.unwrap();
    let sent = alice.send("general", "hello").await.unwrap();
    assert_eq!(sent.room, "general");
    let (nick, offset, _) = wait_message(&mut b_events, "hello").await;
    assert_eq!((nick.as_str(), offset), ("alice", sent.offset));
    assert_eq!(
        wait_message(&mut a_events, "hello").await.1,
        sent.offset,
        "own echo"
    );

    // A server error comes back as Failure with its code; other replies map to their types.
    let err = alice.send("nowhere", "x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoSuchRoom), "{err:?}");
    let rooms = alice.list_rooms().await.unwrap();
    let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["general"]);
    assert_eq!(alice.set_nick("alicia").await.unwrap(), "alicia");
    assert_eq!(alice.nick(), "alicia");
    // The gateway uses the new nick from now on.
    alice.send("general", "renamed").await.unwrap();
    assert_eq!(wait_message(&mut b_events, "renamed").await.0, "alicia");

    connections(&gw, 2).await;
    alice.close().await;
    assert!(!alice.is_connected());
    // The event stream ends after close (whatever was still queued comes first).
    let deadline = Instant::now() + WAIT;
    while timeout_at(deadline, a_events.next())
        .await
        .expect("the event stream ends after close")
        .is_some()
    {}
    assert!(matches!(
        alice.send("general", "late").await,
        Err(ClientError::Closed)
    ));
    // Closing again is harmless.
    alice.close().await;
    // The gateway saw a close, not a silent peer (that would take the 45 s idle timeout).
    connections(&gw, 1).await;
    // And bob's session is unaffected.
    bob.send("general", "still here").await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn pipelined_sends_keep_their_order() {
    const N: usize = 500;
    let gw = gateway(|_| {}).await;
    let (alice, _a) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    alice.join("r").await.unwrap();
    bob.join("r").await.unwrap();
    // Bob reads concurrently, so nothing here leans on buffering.
    let reader = tokio::spawn(async move { messages(&mut b_events, "r", N).await });

    // Hand off all N before awaiting any reply.
    let mut acks = Vec::with_capacity(N);
    for text in texts("m", N) {
        acks.push(alice.send("r", text).submit().await);
    }
    let mut offsets = Vec::with_capacity(N);
    for ack in acks {
        offsets.push(timeout(WAIT, ack).await.expect("ack in time").unwrap().offset);
    }
    // The server stored them in submission order: consecutive room offsets.
    let first = offsets[0];
    assert_eq!(offsets, (first..first + N as u64).collect::<Vec<_>>());
    // And another client receives them in that order.
    let seen = timeout(WAIT, reader).await.expect("reader in time").unwrap();
    assert_eq!(seen, texts("m", N));
    alice.close().await;
    bob.close().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn nick_in_use_is_refused() {
    let gw = gateway(|_| {}).await;
    let (_alice, _a) = client(&gw, "alice").await;
    let again = timeout(WAIT, connect(options(&gw, "alice")))
        .await
        .expect("answer in time");
    match again {
        Err(ClientError::Refused(f)) => {
            assert_eq!(f.code, ErrorCode::NickUnavailable, "{f:?}");
            assert!(f.message.contains("in use"), "{f:?}");
        }
        other => panic!("a second alice was not refused: {other:?}"),
    }
    // The refusal left the first session alone.
    assert_eq!(gw.hub.connection_count(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn certificate_trust_is_enforced_without_hanging() {
    let gw = gateway(|_| {}).await;
    // A long connect timeout: a trust failure must end the attempt by itself, well before.
    let attempt = |trust: Trust, nick: &str| {
        let mut o = options(&gw, nick).trust(trust);
        o.connect_timeout = Duration::from_secs(60);
        timeout(WAIT, connect(o))
    };
    // A pinned hash that is not the gateway's: a certificate error, not a hang or a timeout.
    match attempt(Trust::CertHash([0; 32]), "dave").await.expect("no hang") {
        Err(ClientError::Certificate(why)) => assert!(!why.contains("no QUIC handshake"), "{why}"),
        other => panic!("wrong pin accepted: {other:?}"),
    }
    // The system roots do not know the gateway's self-signed certificate.
    match attempt(Trust::System, "erin").await.expect("no hang") {
        Err(ClientError::Certificate(_)) => {}
        other => panic!("self-signed certificate accepted by the system roots: {other:?}"),
    }
    assert_eq!(gw.hub.connection_count(), 0, "no session was set up");
    // Insecure accepts it, and the right pin of course does.
    let (c, _e) = attempt(Trust::Insecure, "dave").await.unwrap().unwrap();
    c.close().await;
    let (c, _e) = attempt(Trust::CertHash(gw.cert_sha256), "erin")
        .await
        .unwrap()
        .unwrap();
    c.close().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn falls_back_to_the_next_server() {
    let gw = gateway(|_| {}).await;
    // Bound but silent: a QUIC handshake to it never completes.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut o = options(&gw, "frank");
    o.servers.insert(0, silent.local_addr().unwrap().to_string());
    o.connect_timeout = Duration::from_millis(300);
    let (c, _e) = timeout(WAIT, connect(o)).await.expect("connect in time").unwrap();
    assert_eq!(c.nick(), "frank");
    assert!(c.is_connected());
    c.join("general").await.unwrap();
    assert_eq!(gw.hub.connection_count(), 1);
    c.close().await;

    // With only silent servers the connect fails once each has had its timeout.
    let mut o = options(&gw, "gail");
    o.servers = vec![silent.local_addr().unwrap().to_string(); 2];
    o.connect_timeout = Duration::from_millis(200);
    match timeout(WAIT, connect(o)).await.expect("gives up in time") {
        Err(ClientError::Connect(why)) => assert!(why.contains("no QUIC handshake"), "{why}"),
        other => panic!("{other:?}"),
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn replies_resolve_while_the_app_does_not_read_its_events() {
    const BURST: usize = 200;
    const OWN: usize = 50;
    let gw = gateway(|_| {}).await;
    let mut o = options(&gw, "gina");
    o.event_buffer = 4;
    let (gina, mut g_events) = timeout(WAIT, connect(o)).await.unwrap().unwrap();
    let (bob, _b) = client(&gw, "bob").await;
    gina.join("r").await.unwrap();
    bob.join("r").await.unwrap();

    // Nobody reads gina's events from here on. Bob's burst piles up far beyond her buffer...
    let mut acks = Vec::new();
    for text in texts("b", BURST) {
        acks.push(bob.send("r", text).submit().await);
    }
    for ack in acks {
        timeout(WAIT, ack).await.expect("bob's ack in time").unwrap();
    }
    // ...yet her requests still get their replies, one at a time.
    for text in texts("g", OWN) {
        timeout(WAIT, gina.send("r", text))
            .await
            .expect("a reply while events back up")
            .unwrap();
    }
    assert_eq!(gina.list_users("r").await.unwrap().len(), 2);
    // The gateway did not drop her as a slow consumer.
    assert!(gina.is_connected());
    assert_eq!(gw.hub.connection_count(), 2);

    // Then every event still arrives, in order.
    let mut want = texts("b", BURST);
    want.extend(texts("g", OWN));
    assert_eq!(messages(&mut g_events, "r", BURST + OWN).await, want);
    gina.close().await;
    bob.close().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn close_flushes_what_was_handed_off() {
    const N: usize = 20;
    let gw = gateway(|_| {}).await;
    let (hank, _h) = client(&gw, "hank").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    hank.join("flush").await.unwrap();
    bob.join("flush").await.unwrap();
    let mut pending = Vec::new();
    for text in texts("m", N) {
        pending.push(hank.send("flush", text).submit().await);
    }
    // Close right away: no reply has been awaited.
    hank.close().await;
    // Replies that had not come by the close resolve as Closed; none hangs.
    for p in pending {
        let r = timeout(WAIT, p).await.expect("resolved");
        assert!(matches!(r, Ok(_) | Err(ClientError::Closed)), "{r:?}");
    }
    // Every send reached the gateway before the connection closed: bob gets them all.
    assert_eq!(messages(&mut b_events, "flush", N).await, texts("m", N));
    connections(&gw, 1).await;
    bob.close().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_kicked_client_reconnects_with_its_nick_and_rooms() {
    let gw = gateway(|_| {}).await;
    let mut o = options(&gw, "carol");
    o.backoff_min = Duration::from_millis(50);
    o.backoff_max = Duration::from_millis(200);
    let (carol, mut events) = timeout(WAIT, connect(o)).await.unwrap().unwrap();
    let (bob, mut b_events) = client(&gw, "bob").await;
    carol.join("lobby").await.unwrap();
    bob.join("lobby").await.unwrap();
    carol.set_nick("caroline").await.unwrap();
    let first = carol.session_id();

    // The gateway drops carol's connection (as it does a slow consumer).
    let user = carol.user();
    let conn = gw
        .hub
        .connections()
        .into_iter()
        .find(|c| c.user == user)
        .expect("carol's connection");
    conn.kill(ErrorCode::SlowConsumer, "kicked by the test");
    // The gateway's last word (a fatal Error frame), then the loss.
    let why = wait_for(&mut events, "the fatal error", |ev| match ev {
        ClientEvent::Session(Event::Error(f)) => Some(f.clone()),
        _ => None,
    })
    .await;
    assert_eq!(why.code, ErrorCode::SlowConsumer);
    assert_eq!(why.message, "kicked by the test");
    wait_for(&mut events, "Disconnected", |ev| {
        matches!(ev, ClientEvent::Disconnected { .. }).then_some(())
    })
    .await;
    let (session, nick) = wait_for(&mut events, "Reconnected", |ev| match ev {
        ClientEvent::Reconnected { session, nick, .. } => Some((*session, nick.clone())),
        _ => None,
    })
    .await;
    assert_ne!(session, first, "a new session");
    assert_eq!(nick, "caroline", "the reconnect keeps the changed nick");
    let rejoined = wait_for(&mut events, "Rejoined", |ev| match ev {
        ClientEvent::Session(Event::Rejoined { room, result }) => Some((room.clone(), result.clone())),
        _ => None,
    })
    .await;
    assert_eq!(rejoined.0, "lobby");
    assert!(rejoined.1.is_ok(), "{rejoined:?}");
    assert_eq!(carol.session_id(), session);
    assert_eq!(carol.nick(), "caroline");
    assert!(carol.is_connected());

    // Both directions work again in the rejoined room.
    carol.send("lobby", "back").await.unwrap();
    assert_eq!(wait_message(&mut b_events, "back").await.0, "caroline");
    bob.send("lobby", "welcome back").await.unwrap();
    wait_message(&mut events, "welcome back").await;
    carol.close().await;
    bob.close().await;
    gw.shutdown().await;
}
