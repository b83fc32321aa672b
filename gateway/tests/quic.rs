//! End to end over real QUIC on loopback: gateway + native clients.

mod common;

use std::time::Duration;

use common::*;
use garou_client::{ClientError, ClientEvent};
use garou_protocol::{shard_of, ErrorCode, Event, Message, Role, RoomKind, StreamKind};

#[tokio::test]
async fn two_clients_exchange_messages() {
    let gw = gateway(|_| {}).await;
    let (alice, mut a_events) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    let joined = alice.join("general").await.unwrap();
    assert_eq!(joined.role, Role::Owner);
    let joined = bob.join("general").await.unwrap();
    assert_eq!(joined.role, Role::Member);
    assert_eq!(joined.members.len(), 2);

    let sent = alice.send("general", "hello bob").await.unwrap();
    let (nick, offset, _) = wait_message(&mut b_events, "hello bob").await;
    assert_eq!((nick.as_str(), offset), ("alice", sent.offset));
    bob.send("general", "hi alice").await.unwrap();
    assert_eq!(wait_message(&mut a_events, "hi alice").await.0, "bob");

    let users = alice.list_users("general").await.unwrap();
    let nicks: Vec<&str> = users.iter().map(|u| u.nick.as_str()).collect();
    assert_eq!(nicks, ["alice", "bob"], "owner first");
    assert!(users.iter().all(|u| u.online));
    let rooms = bob.list_rooms().await.unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!((rooms[0].name.as_str(), rooms[0].members), ("general", 2));
    gw.shutdown().await;
}

#[tokio::test]
async fn rooms_arrive_on_their_shard_stream() {
    let gw = gateway(|c| c.shard.num_shards = 4).await;
    let (alice, _a) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    let rooms: Vec<String> = (0..8).map(|i| format!("room{i}")).collect();
    for r in &rooms {
        alice.join(r.as_str()).await.unwrap();
        bob.join(r.as_str()).await.unwrap();
    }
    for r in &rooms {
        alice.send(r.as_str(), format!("in {r}")).await.unwrap();
    }
    let mut shards = std::collections::HashSet::new();
    for r in &rooms {
        let (_, _, via) = wait_message(&mut b_events, &format!("in {r}")).await;
        assert_eq!(via, StreamKind::Shard(shard_of(r, 4)), "{r}");
        shards.insert(via);
    }
    assert!(shards.len() > 1, "eight rooms should spread over several shards");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_burst_promotes_a_room_and_it_is_demoted_later_without_reordering() {
    let gw = gateway(|c| {
        c.shard.hot_room_threshold = 20.0;
        c.shard.rate_window_secs = 1;
        c.shard.cool_down_threshold = 5.0;
        c.shard.cool_down_period_secs = 1;
    })
    .await;
    let (alice, _a) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    alice.join("busy").await.unwrap();
    bob.join("busy").await.unwrap();

    let mut acks = Vec::new();
    for i in 0..300 {
        acks.push(alice.send("busy", format!("m{i}")).submit().await);
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let mut promoted = false;
    let mut via_hot = 0;
    let mut next = 0;
    while next < 300 {
        let ev = tokio::time::timeout(WAIT, b_events.next())
            .await
            .unwrap()
            .unwrap();
        match ev {
            ClientEvent::Session(Event::Promoted { room }) if room == "busy" => promoted = true,
            ClientEvent::Session(Event::Room {
                event: Message::RoomMessage(m),
                via,
            }) => {
                assert_eq!(m.text, format!("m{next}"), "delivered in order");
                next += 1;
                if via == StreamKind::Hot("busy".into()) {
                    via_hot += 1;
                }
            }
            _ => {}
        }
    }
    assert!(promoted, "bob was told the room went hot");
    assert!(via_hot > 200, "most of the burst used the hot stream ({via_hot})");
    assert_eq!(gw.hub.hot_rooms(), 1);

    wait_for(&mut b_events, "demotion", |ev| {
        matches!(ev, ClientEvent::Session(Event::Demoted { room }) if room == "busy").then_some(())
    })
    .await;
    alice.send("busy", "calm again").await.unwrap();
    let (_, _, via) = wait_message(&mut b_events, "calm again").await;
    assert_eq!(via, StreamKind::Shard(shard_of("busy", 8)));
    assert_eq!(gw.hub.hot_rooms(), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn typing_travels_as_a_datagram() {
    let gw = gateway(|_| {}).await;
    let (alice, _a) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    alice.join("general").await.unwrap();
    bob.join("general").await.unwrap();
    // Datagrams are unreliable by design: repeat (bounded) until one arrives.
    let typist = alice.clone();
    let repeat = tokio::spawn(async move {
        for _ in 0..50 {
            let _ = typist.typing("general").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let who = wait_for(&mut b_events, "typing", |ev| match ev {
        ClientEvent::Session(Event::Typing { room, nick, .. }) if room == "general" => Some(nick.clone()),
        _ => None,
    })
    .await;
    repeat.abort();
    assert_eq!(who, "alice");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_guest_cannot_post() {
    let gw = gateway(|_| {}).await;
    let (owner, _o) = client(&gw, "owner").await;
    let (guest, _g) = client(&gw, "guest").await;
    owner.create_room("news", RoomKind::Channel).await.unwrap();
    let joined = guest.join("news").await.unwrap();
    assert_eq!(joined.role, Role::Guest);
    match guest.send("news", "can I?").await {
        Err(ClientError::Failure(f)) => assert_eq!(f.code, ErrorCode::Forbidden),
        other => panic!("guest post accepted: {other:?}"),
    }
    owner.send("news", "announcement").await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn direct_messages_reach_only_the_recipient() {
    let gw = gateway(|_| {}).await;
    let (alice, _a) = client(&gw, "alice").await;
    let (_bob, mut b_events) = client(&gw, "bob").await;
    let sent = alice.direct("bob", "just for you").await.unwrap();
    assert!(sent.room.starts_with("dm:"));
    let (nick, _, _) = wait_message(&mut b_events, "just for you").await;
    assert_eq!(nick, "alice");
    let (carol, _c) = client(&gw, "carol").await;
    assert!(carol.join(sent.room.as_str()).await.is_err());
    gw.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_delivers_shutdown() {
    let gw = gateway(|_| {}).await;
    let (alice, mut events) = client(&gw, "alice").await;
    alice.join("general").await.unwrap();
    let stop = tokio::spawn(gw.shutdown());
    let reason = wait_for(&mut events, "Shutdown", |ev| match ev {
        ClientEvent::Session(Event::Shutdown { reason }) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("shutting down"), "{reason}");
    tokio::time::timeout(WAIT, stop)
        .await
        .expect("shutdown is bounded")
        .unwrap();
    alice.close().await;
}

#[tokio::test]
async fn clients_reconnect_and_rejoin_their_rooms() {
    let gw = gateway(|_| {}).await;
    let addr = gw.quic_addr;
    let mut opts = options(&gw, "alice");
    opts.trust = garou_client::Trust::Insecure; // the restarted gateway has a new certificate
    opts.backoff_min = Duration::from_millis(100);
    opts.backoff_max = Duration::from_millis(500);
    let (alice, mut events) = garou_client::connect(opts).await.unwrap();
    alice.join("general").await.unwrap();
    gw.shutdown().await;
    wait_for(&mut events, "disconnect", |ev| {
        matches!(ev, ClientEvent::Disconnected { .. }).then_some(())
    })
    .await;

    let gw = gateway(|c| c.quic = addr).await;
    wait_for(&mut events, "reconnect", |ev| {
        matches!(ev, ClientEvent::Reconnected { .. }).then_some(())
    })
    .await;
    wait_for(&mut events, "rejoin", |ev| match ev {
        ClientEvent::Session(Event::Rejoined { room, result }) if room == "general" => Some(result.clone()),
        _ => None,
    })
    .await
    .expect("rejoined");
    let (bob, _b) = client(&gw, "bob").await;
    bob.join("general").await.unwrap();
    bob.send("general", "welcome back").await.unwrap();
    wait_message(&mut events, "welcome back").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn dead_connections_are_cleaned_up() {
    let gw = gateway(|c| c.idle_timeout_secs = 1).await;
    let (alice, _events) = client(&gw, "alice").await;
    alice.join("general").await.unwrap();
    assert_eq!(gw.hub.connection_count(), 1);
    // Vanish without a close: abort the client's tasks by dropping everything abruptly.
    drop(alice);
    drop(_events);
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.hub.connection_count() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection never cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The nick is free again.
    let (_alice, _e) = client(&gw, "alice").await;
    gw.shutdown().await;
}

/// The server asks quinn clients (QUIC ACK-frequency extension) to acknowledge fewer
/// packets, so a fan-out costs fewer inbound ACK datagrams; `ack_eliciting_threshold = 1`
/// is plain QUIC and sends no such request.
#[tokio::test]
async fn the_server_asks_quic_clients_to_ack_less_often() {
    for (threshold, asked) in [(4, true), (1, false)] {
        let gw = gateway(|c| c.stream.ack_eliciting_threshold = threshold).await;
        let mut raw = common::raw::Raw::login(&gw, "acker", true, None).await;
        raw.join("general").await;
        if asked {
            let conn = raw.conn.clone();
            common::raw::eventually("an ACK_FREQUENCY frame", WAIT, || {
                conn.stats().frame_rx.ack_frequency > 0
            })
            .await;
        } else {
            // Joined has arrived, so any request sent with or before it was counted.
            assert_eq!(
                raw.conn.stats().frame_rx.ack_frequency,
                0,
                "threshold 1 is plain QUIC"
            );
        }
        gw.shutdown().await;
    }
}
