//! A hostile client against a real gateway while two honest clients chat in one room.
//!
//! The hostile side is raw QUIC (ALPN garou/1) speaking frames by hand. Each kind sends at
//! least 1,000 frames: malformed (datagrams on one connection, dropped and counted; bad
//! stream frames, one per connection, closed with BadFrame / BadPayload), oversized
//! (datagrams above limits.max_datagram, dropped and counted; stream frames above
//! max_frame, closed with FrameTooLarge), out of state (commands for rooms it is not in,
//! answered with Error frames; Auth before Hello, closed with OutOfState), and a flood
//! (Throttle, then closed with RateLimited). The honest clients lose nothing: every message
//! either sends is received by the other exactly once, in order.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{self, Raw};
use common::*;
use futures::StreamExt;
use garou_client::{Client, ClientEvent, Events};
use garou_gateway::limits::LimitStats;
use garou_gateway::server::Gateway;
use garou_protocol::{Auth, Credentials, ErrorCode, Frame, Leave, ListRooms, Message};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Frames of each kind, at least.
const FRAMES: usize = 1000;
/// Connections per fatal kind (each carries one fatal frame).
const FATAL_CONNS: usize = 250;
const MAX_DATAGRAM: usize = 200;

/// Keep sending `tag-N` into the lobby until `stop`; returns how many were sent.
async fn chat(client: Arc<Client>, tag: &'static str, stop: CancellationToken) -> usize {
    let mut n = 0;
    while !stop.is_cancelled() {
        client
            .send("lobby", format!("{tag}-{n}"))
            .await
            .expect("honest send");
        n += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    n
}

/// Collect the lobby messages tagged `tag` in arrival order (runs until aborted).
async fn collect(mut events: Events, tag: &'static str, into: Arc<Mutex<Vec<String>>>) {
    let prefix = format!("{tag}-");
    while let Some(ev) = events.next().await {
        if let ClientEvent::Disconnected { reason } = &ev {
            panic!("an honest client was disconnected: {reason}");
        }
        if let Some((Message::RoomMessage(m), _)) = room_event(&ev) {
            if m.text.starts_with(&prefix) {
                into.lock().push(m.text.clone());
            }
        }
    }
}

/// Connect, write `bytes` on the control stream, return the close code.
async fn one_fatal(ep: &quinn::Endpoint, gw: &Gateway, bytes: Vec<u8>) -> u16 {
    let conn = raw::connect(ep, gw, None).await.expect("handshake");
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let _ = send.write_all(&bytes).await;
    raw::close_code(&conn).await.0
}

/// `FATAL_CONNS` connections, 16 at a time, each sending `make(i)`; every close code.
async fn fatal_loop(gw: &Gateway, make: impl Fn(usize) -> Vec<u8>) -> Vec<u16> {
    let ep = raw::endpoint();
    futures::stream::iter((0..FATAL_CONNS).map(|i| one_fatal(&ep, gw, make(i))))
        .buffer_unordered(16)
        .collect()
        .await
}

fn count(codes: &[u16], code: ErrorCode) -> usize {
    codes.iter().filter(|&&c| c == code.as_u16()).count()
}

/// Datagrams on a logged-in connection; it must survive them.
async fn datagrams(gw: &Gateway, nick: &str, make: impl Fn(usize) -> Vec<u8>) -> Raw {
    let mut raw = Raw::login(gw, nick, true, None).await;
    for i in 0..FRAMES {
        raw.conn
            .send_datagram(Bytes::from(make(i)))
            .expect("datagram sent");
        if i % 50 == 49 {
            // Let the server read: UDP on loopback drops what overflows socket buffers.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let req = raw.req();
    raw.commands
        .write_all(&Message::from(ListRooms { req }).encode())
        .await
        .unwrap();
    loop {
        if let Message::RoomList(l) = raw.next().await {
            assert_eq!(l.req, req);
            break;
        }
    }
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_client_is_closed_with_the_right_codes_and_honest_clients_lose_nothing() {
    let gw = gateway(|c| {
        // Every connection comes from 127.0.0.1: the per-IP rate is tested in limits.rs.
        c.limits.connections_per_ip_burst = 1_000_000;
        c.limits.connections_per_ip_per_sec = 1_000_000.0;
        c.limits.max_connections_per_ip = 0;
        // The flooder must meet its own session's limit, not the one it shares with the
        // honest clients on 127.0.0.1 (per-IP rates are tested in shared_rates.rs).
        c.limits.commands_per_sec_per_ip = 1_000_000.0;
        c.limits.command_burst_per_ip = 1_000_000;
        c.limits.max_datagram = MAX_DATAGRAM;
        c.limits.max_throttles = 2;
    })
    .await;
    let (alice, a_events) = client(&gw, "alice").await;
    let (bob, b_events) = client(&gw, "bob").await;
    alice.join("lobby").await.unwrap();
    bob.join("lobby").await.unwrap();
    let (alice, bob) = (Arc::new(alice), Arc::new(bob));
    let (to_bob, to_alice) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let collectors = [
        tokio::spawn(collect(b_events, "a", to_bob.clone())),
        tokio::spawn(collect(a_events, "b", to_alice.clone())),
    ];
    let stop = CancellationToken::new();
    let chats = [
        tokio::spawn(chat(alice.clone(), "a", stop.clone())),
        tokio::spawn(chat(bob.clone(), "b", stop.clone())),
    ];
    let started = Instant::now();
    let stats = &gw.limits.stats;

    // Malformed: datagrams (dropped, counted, connection kept) ...
    let junk = |i: usize| match i % 3 {
        0 => vec![0xA5, 0, 0, 0, 1, 0],                // reserved frame type
        1 => vec![0x80, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF], // Typing with a truncated payload
        _ => vec![0x80, 0, 0],                         // truncated header
    };
    let _kept = datagrams(&gw, "junk", junk).await;
    // UDP may lose some on a loaded machine: every one that arrived is counted as
    // malformed (not acted on, not mistaken for oversized), and the connection survived.
    raw::eventually("malformed datagrams counted", WAIT, || {
        LimitStats::get(&stats.datagrams_malformed) > 0
    })
    .await;
    assert!(LimitStats::get(&stats.datagrams_malformed) <= FRAMES as u64);
    assert_eq!(LimitStats::get(&stats.datagrams_oversized), 0);
    // ... and stream frames (one per connection, fatal).
    let codes = fatal_loop(&gw, |i| {
        if i % 2 == 0 {
            Frame::header(0xA5, 1).into_iter().chain([0]).collect() // reserved type
        } else {
            Frame::header(0x01, 3).into_iter().chain([0xFF; 3]).collect() // Hello, bad payload
        }
    })
    .await;
    assert_eq!(count(&codes, ErrorCode::BadFrame), FATAL_CONNS / 2, "{codes:?}");
    assert_eq!(count(&codes, ErrorCode::BadPayload), FATAL_CONNS / 2, "{codes:?}");

    // Oversized: datagrams above max_datagram (dropped, counted) and frames above max_frame.
    let malformed = LimitStats::get(&stats.datagrams_malformed);
    let _kept_too = datagrams(&gw, "bloat", |_| vec![0x80; MAX_DATAGRAM + 100]).await;
    raw::eventually("oversized datagrams counted", WAIT, || {
        LimitStats::get(&stats.datagrams_oversized) > 0
    })
    .await;
    assert!(LimitStats::get(&stats.datagrams_oversized) <= FRAMES as u64);
    assert_eq!(
        LimitStats::get(&stats.datagrams_malformed),
        malformed,
        "oversized datagrams are counted as such"
    );
    let codes = fatal_loop(&gw, |_| Frame::header(0x01, usize::MAX >> 33).to_vec()).await;
    assert_eq!(count(&codes, ErrorCode::FrameTooLarge), FATAL_CONNS, "{codes:?}");

    // Out of state: commands for a room it is not in, each answered with an Error frame,
    // spread over connections so the rate limit stays out of it ...
    let mut answered = 0;
    for k in 0..FRAMES.div_ceil(150) {
        let mut raw = Raw::login(&gw, &format!("stray{k}"), true, None).await;
        let mut buf = Vec::new();
        let reqs: Vec<u32> = (0..150).map(|_| raw.req()).collect();
        for &req in &reqs {
            buf.extend_from_slice(
                &Message::from(Leave {
                    req,
                    room: "lobby".into(),
                })
                .encode(),
            );
        }
        raw.commands.write_all(&buf).await.unwrap();
        for &req in &reqs {
            match raw.next().await {
                Message::Error(e) if e.req == Some(req) => {
                    assert_eq!(e.code, ErrorCode::NotMember, "{e:?}");
                    answered += 1;
                }
                other => panic!("expected the Error reply to {req}, got {other:?}"),
            }
        }
        assert!(raw.conn.close_reason().is_none(), "an Error reply is not fatal");
    }
    assert!(answered >= FRAMES, "{answered}");
    // ... and Auth before Hello (fatal).
    let auth = Message::from(Auth {
        credentials: Credentials::Nick("early".into()),
    })
    .encode()
    .to_vec();
    let codes = fatal_loop(&gw, |_| auth.clone()).await;
    assert_eq!(count(&codes, ErrorCode::OutOfState), FATAL_CONNS, "{codes:?}");

    // Flood: commands far above the rate: Throttle first, then RateLimited.
    let mut flooder = Raw::login(&gw, "flooder", true, None).await;
    let mut buf = Vec::new();
    for _ in 0..5 * FRAMES {
        let req = flooder.req();
        buf.extend_from_slice(&Message::from(ListRooms { req }).encode());
    }
    let mut commands = std::mem::replace(&mut flooder.commands, flooder.conn.open_uni().await.unwrap());
    let writer = tokio::spawn(async move { commands.write_all(&buf).await.is_ok() });
    let (mut throttled, mut fatal) = (0, None);
    while let Ok(Some(m)) = tokio::time::timeout(WAIT, flooder.inbox.recv()).await {
        match m {
            Message::Throttle(_) => throttled += 1,
            Message::Error(e) => {
                fatal = Some(e.code);
                break;
            }
            _ => {}
        }
    }
    assert_eq!((throttled, fatal), (2, Some(ErrorCode::RateLimited)));
    let (code, reason) = raw::close_code(&flooder.conn).await;
    assert_eq!(code, ErrorCode::RateLimited.as_u16(), "{reason}");
    let _ = tokio::time::timeout(WAIT, writer).await;
    assert_eq!(LimitStats::get(&stats.rate_limited), 1);

    // The honest clients kept chatting through all of it and lost nothing.
    stop.cancel();
    let [ca, cb] = chats;
    let sent_a = tokio::time::timeout(WAIT, ca).await.unwrap().unwrap();
    let sent_b = tokio::time::timeout(WAIT, cb).await.unwrap().unwrap();
    raw::eventually("every honest message delivered", WAIT, || {
        to_bob.lock().len() >= sent_a && to_alice.lock().len() >= sent_b
    })
    .await;
    let expect = |tag: &str, n: usize| (0..n).map(|i| format!("{tag}-{i}")).collect::<Vec<_>>();
    assert_eq!(
        *to_bob.lock(),
        expect("a", sent_a),
        "alice -> bob: exactly once, in order"
    );
    assert_eq!(
        *to_alice.lock(),
        expect("b", sent_b),
        "bob -> alice: exactly once, in order"
    );
    for c in &collectors {
        assert!(!c.is_finished(), "the honest clients stayed connected");
    }
    println!(
        "hostile run: {:?}; honest messages {sent_a} + {sent_b}; malformed datagrams {}, oversized {}, \
         throttles {}, rate-limited {}",
        started.elapsed(),
        LimitStats::get(&stats.datagrams_malformed),
        LimitStats::get(&stats.datagrams_oversized),
        LimitStats::get(&stats.throttles),
        LimitStats::get(&stats.rate_limited),
    );
    assert!(
        sent_a > 10 && sent_b > 10,
        "the honest clients chatted during the attack"
    );
    for c in collectors {
        c.abort();
    }
    gw.shutdown().await;
}
