//! Limits against a real gateway on loopback: per-client rate (Throttle, then RateLimited),
//! connection admission (per-IP rate, max_connections) on QUIC and WebSocket, room limits,
//! and a slow consumer dropped while the others in its room keep their latency.

mod common;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use common::raw::{self, Raw};
use common::*;
use garou_client::ClientEvent;
use garou_gateway::limits::LimitStats;
use garou_protocol::{ErrorCode, ListRooms, Message};

fn stat(c: &AtomicU64) -> u64 {
    LimitStats::get(c)
}

/// Write `n` ListRooms commands as fast as the transport takes them.
fn flood(mut commands: quinn::SendStream, first_req: u32, n: u32) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut written = 0;
        for req in first_req..first_req + n {
            if commands
                .write_all(&Message::from(ListRooms { req }).encode())
                .await
                .is_err()
            {
                break;
            }
            written += 1;
        }
        written
    })
}

#[tokio::test]
async fn a_flooding_client_is_throttled_then_closed_with_rate_limited() {
    let gw = gateway(|c| c.limits.max_throttles = 3).await;
    let mut raw = Raw::login(&gw, "flooder", true, None).await;
    let commands = std::mem::replace(&mut raw.commands, raw.conn.open_uni().await.unwrap());
    let writer = flood(commands, 1000, 5000);
    let (mut replies, mut throttles, mut fatal) = (0, 0, None);
    while let Ok(Some(m)) = tokio::time::timeout(WAIT, raw.inbox.recv()).await {
        match m {
            Message::RoomList(_) => replies += 1,
            Message::Throttle(t) => {
                assert!(t.retry_after_ms > 0 && t.retry_after_ms <= 2000, "{t:?}");
                assert!(
                    replies >= 100,
                    "a Throttle only once the bucket is spent ({replies} served)"
                );
                throttles += 1;
            }
            Message::Error(e) => {
                fatal = Some(e.code);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(fatal, Some(ErrorCode::RateLimited), "an Error frame says why");
    assert_eq!(throttles, 3, "max_throttles Throttle frames first");
    let (code, reason) = raw::close_code(&raw.conn).await;
    assert_eq!(code, ErrorCode::RateLimited.as_u16(), "{reason}");
    let written = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    // The burst at least, then the rest is never served (how much refilled in between
    // depends on the machine's speed: not asserted).
    assert!(
        replies >= 200 && replies < written,
        "{replies} of {written} commands served"
    );
    assert_eq!(stat(&gw.limits.stats.throttles), 3);
    assert_eq!(stat(&gw.limits.stats.rate_limited), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_that_obeys_throttle_keeps_its_session() {
    let gw = gateway(|c| c.limits.max_throttles = 2).await;
    let mut raw = Raw::login(&gw, "polite", true, None).await;
    // 250 at once: the burst (200) is served, then a Throttle.
    let mut sent = 0u32;
    let mut buf = Vec::new();
    for _ in 0..250 {
        let req = raw.req();
        buf.extend_from_slice(&Message::from(ListRooms { req }).encode());
        sent += 1;
    }
    raw.commands.write_all(&buf).await.unwrap();
    let mut replies = 0u32;
    let retry = loop {
        match raw.next().await {
            Message::RoomList(_) => replies += 1,
            Message::Throttle(t) => break Duration::from_millis(t.retry_after_ms.into()),
            other => panic!("unexpected {other:?}"),
        }
    };
    // The burst, plus what refilled (100/s) while it was served.
    assert!(
        (200..250).contains(&replies),
        "the burst is served before the Throttle: {replies}"
    );
    // Obey: wait as told, then go on at half the allowed rate.
    tokio::time::sleep(retry).await;
    for _ in 0..100 {
        let req = raw.req();
        raw.commands
            .write_all(&Message::from(ListRooms { req }).encode())
            .await
            .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while replies < sent {
        match raw.next().await {
            Message::RoomList(_) => replies += 1,
            Message::Throttle(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(replies, sent, "every command answered");
    assert!(raw.conn.close_reason().is_none(), "still connected");
    assert_eq!(stat(&gw.limits.stats.rate_limited), 0);
    assert!(stat(&gw.limits.stats.throttles) >= 1);
    gw.shutdown().await;
}

/// Whether the gateway answers a Hello on `conn` with a HelloAck (bounded).
async fn answers_hello(conn: &quinn::Connection) -> bool {
    let Ok((mut send, mut recv)) = conn.open_bi().await else {
        return false;
    };
    let hello = garou_protocol::Hello {
        version: garou_protocol::PROTOCOL_VERSION,
        client: "limits-test".into(),
        resume: Default::default(),
    };
    if send.write_all(&Message::from(hello).encode()).await.is_err() {
        return false;
    }
    let mut dec = garou_protocol::Decoder::default();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(frame)) = dec.next_frame() {
            return matches!(Message::decode(&frame), Ok(Message::HelloAck(_)));
        }
        match tokio::time::timeout_at(deadline, recv.read_chunk(usize::MAX, true)).await {
            Ok(Ok(Some(chunk))) => dec.push(&chunk.bytes),
            _ => return false,
        }
    }
}

#[tokio::test]
async fn connections_beyond_the_per_ip_rate_are_refused_on_quic_and_websocket() {
    let gw = gateway(|c| {
        c.limits.connections_per_ip_burst = 3;
        c.limits.connections_per_ip_per_sec = 0.01;
    })
    .await;
    let ep = raw::endpoint();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(raw::connect(&ep, &gw, None).await.expect("within the burst"));
    }
    // Admitted means served: each of them gets its HelloAck.
    for conn in &open {
        assert!(answers_hello(conn).await, "an admitted connection is served");
    }
    let refused = raw::connect(&ep, &gw, None).await;
    assert!(
        matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(_))),
        "refused without a handshake: {refused:?}"
    );
    let url = format!("ws://{}/ws", gw.http_addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
    assert_eq!(stat(&gw.limits.stats.refused_ip_rate), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn max_connections_closes_with_limit_reached_and_answers_503() {
    let gw = gateway(|c| c.max_connections = 2).await;
    let (_alice, _a) = client(&gw, "alice").await;
    let (_bob, _b) = client(&gw, "bob").await;
    let ep = raw::endpoint();
    let conn = raw::connect(&ep, &gw, None).await.expect("handshake completes");
    assert!(
        !answers_hello(&conn).await,
        "a connection over the limit is not served"
    );
    let (code, reason) = raw::close_code(&conn).await;
    assert_eq!(code, ErrorCode::LimitReached.as_u16());
    assert!(reason.contains("max_connections"), "{reason}");
    let url = format!("ws://{}/ws", gw.http_addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
    }
    assert_eq!(stat(&gw.limits.stats.refused_full), 2);
    assert_eq!(gw.limits.live(), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn rooms_per_user_and_members_per_room_are_limited() {
    let gw = gateway(|c| {
        c.limits.max_rooms_per_user = 2;
        c.limits.max_members_per_room = 2;
    })
    .await;
    let (alice, _a) = client(&gw, "alice").await;
    let (bob, _b) = client(&gw, "bob").await;
    let (carol, _c) = client(&gw, "carol").await;
    alice.join("one").await.unwrap();
    alice.join("two").await.unwrap();
    let err = alice.join("three").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::LimitReached), "{err}");
    alice
        .join("one")
        .await
        .expect("rejoining a room of one's own is not a new room");
    let rooms = carol.list_rooms().await.unwrap();
    assert!(
        rooms.iter().all(|r| r.name != "three"),
        "a refused join creates no room"
    );
    bob.join("one").await.unwrap();
    let err = carol.join("one").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::LimitReached), "{err}");
    gw.shutdown().await;
}

/// Send `n` messages from `from`'s client while `to` receives them; latencies in order.
async fn exchange(
    from: &garou_client::Client,
    to: &mut garou_client::Events,
    tag: &str,
    n: usize,
    pad: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    let mut last_offset = 0;
    for i in 0..n {
        let text = format!("{tag}-{i:04}-{}", "x".repeat(pad));
        let t0 = Instant::now();
        from.send("busy", text.clone()).await.unwrap();
        let (_, offset, _) = wait_for(to, &text, |ev| match ev {
            ClientEvent::Disconnected { reason } => panic!("an honest client was disconnected: {reason}"),
            _ => match room_event(ev) {
                Some((Message::RoomMessage(m), via)) if m.text.starts_with(tag) => {
                    assert_eq!(m.text, text, "in order, nothing lost or repeated");
                    Some((m.nick.clone(), m.offset, via.clone()))
                }
                _ => None,
            },
        })
        .await;
        assert!(offset > last_offset);
        last_offset = offset;
        latencies.push(t0.elapsed());
    }
    latencies
}

fn summary(l: &[Duration]) -> (Duration, Duration) {
    let mut s = l.to_vec();
    s.sort();
    (s[s.len() / 2], s[s.len() - 1])
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_the_room_keeps_its_latency() {
    let gw = gateway(|c| {
        c.stream.lane_queue = 64;
        // This test is about queues, not rates: the honest clients send fast.
        c.limits.commands_per_sec = 10_000.0;
        c.limits.command_burst = 10_000;
    })
    .await;
    let (alice, mut a_events) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    alice.join("busy").await.unwrap();
    bob.join("busy").await.unwrap();
    let before = exchange(&alice, &mut b_events, "warm", 30, 1000).await;

    // Small receive windows: the stalled client's transport fills after a few frames.
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(8192u32.into())
        .receive_window(16384u32.into());
    let mut stalled = Raw::login(&gw, "stalled", false, Some(t)).await;
    stalled.send_join("busy").await;
    let deadline = Instant::now() + WAIT;
    while bob.list_users("busy").await.unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the stalled client joins in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Both honest clients talk (and type) while the stalled one never reads.
    let (a_to_b, b_to_a) = {
        // Typing all along, until the stalled client is gone: while it is backed up, its
        // copies are dropped.
        let typing = async {
            let deadline = Instant::now() + WAIT;
            while stalled.conn.close_reason().is_none() && Instant::now() < deadline {
                let _ = alice.typing("busy").await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let ab = exchange(&alice, &mut b_events, "a2b", 150, 1000);
        let ba = exchange(&bob, &mut a_events, "b2a", 150, 1000);
        let (ab, ba, ()) = tokio::join!(ab, ba, typing);
        (ab, ba)
    };
    let (code, reason) = raw::close_code(&stalled.conn).await;
    assert_eq!(code, ErrorCode::SlowConsumer.as_u16(), "{reason}");
    assert_eq!(stat(&gw.limits.stats.slow_consumers), 1);
    raw::eventually("the stalled session is gone", WAIT, || {
        gw.hub.connection_count() == 2
    })
    .await;
    let during: Vec<Duration> = a_to_b.iter().chain(&b_to_a).copied().collect();
    let ((b50, bmax), (d50, dmax)) = (summary(&before), summary(&during));
    println!("latency before: p50 {b50:?} max {bmax:?}; while a client stalls: p50 {d50:?} max {dmax:?}");
    println!(
        "droppable datagrams dropped: {}",
        stat(&gw.limits.stats.droppable_dropped)
    );
    assert!(
        dmax < Duration::from_secs(2),
        "honest clients keep their latency: max {dmax:?}"
    );
    assert!(
        stat(&gw.limits.stats.droppable_dropped) >= 1,
        "typing to the backed-up client was dropped, not queued"
    );
    drop(stalled.control_recv.take());
    gw.shutdown().await;
}

#[tokio::test]
async fn websocket_client_lanes_are_capped_by_max_concurrent_streams() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let gw = gateway(|c| c.stream.max_concurrent_streams = 3).await;
    let url = format!("ws://{}/ws", gw.http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    for tag in garou_protocol::ws::CLIENT_FIRST..garou_protocol::ws::CLIENT_FIRST + 4 {
        // A lane opened with a few bytes of a frame header that never completes.
        let _ = ws.send(Ws::Binary(vec![tag, 0x10, 0, 0].into())).await;
    }
    let close = tokio::time::timeout(WAIT, async {
        while let Some(m) = ws.next().await {
            if let Ok(Ws::Close(c)) = m {
                return c;
            }
        }
        None
    })
    .await
    .expect("closed in time")
    .expect("a close frame");
    assert_eq!(
        u16::from(close.code),
        4000 + ErrorCode::LimitReached.as_u16(),
        "{close:?}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_frame_too_large_on_every_client_stream_kind() {
    use garou_protocol::{Frame, StreamHeader, StreamKind};
    let gw = gateway(|_| {}).await;
    for (i, kind) in [StreamKind::Commands, StreamKind::Acks, StreamKind::Upload]
        .into_iter()
        .enumerate()
    {
        let raw = Raw::login(&gw, &format!("big{i}"), true, None).await;
        let mut s = raw.conn.open_uni().await.unwrap();
        let mut bytes = Message::from(StreamHeader { kind: kind.clone() })
            .encode()
            .to_vec();
        // A header announcing one byte more than max_frame; the payload never follows.
        bytes.extend_from_slice(&Frame::header(0x14, garou_protocol::DEFAULT_MAX_FRAME + 1));
        s.write_all(&bytes).await.unwrap();
        let (code, reason) = raw::close_code(&raw.conn).await;
        assert_eq!(code, ErrorCode::FrameTooLarge.as_u16(), "{kind:?}: {reason}");
    }
    gw.shutdown().await;
}
