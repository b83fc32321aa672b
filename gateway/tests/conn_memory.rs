//! What one connection (or one address) can make the gateway hold, against a real gateway
//! over raw QUIC on loopback: frames before authentication are small, partial frames are
//! capped per connection across its streams and gateway-wide, and one IP holds a bounded
//! number of connections open while other addresses still get in.

mod common;

use std::time::Duration;

use common::raw::{self, Raw};
use common::*;
use garou_gateway::config::LimitsConfig;
use garou_gateway::limits::LimitStats;
use garou_protocol::{ErrorCode, Frame, FrameType, Message, StreamHeader, StreamKind, DEFAULT_MAX_FRAME};

/// The limits these tests run with (the defaults, unless a test says otherwise).
fn defaults() -> LimitsConfig {
    LimitsConfig::default()
}

/// A Hello header declaring `DEFAULT_MAX_FRAME` bytes, and a few of them.
fn partial_large_hello() -> Vec<u8> {
    let mut bytes = Frame::header(FrameType::Hello as u8, DEFAULT_MAX_FRAME).to_vec();
    bytes.extend_from_slice(b"garou-hel");
    bytes
}

#[tokio::test]
async fn a_large_frame_before_auth_is_refused_with_frame_too_large_at_once() {
    // A long handshake timeout: the refusal must come from the frame, not the clock.
    let gw = gateway(|c| c.handshake_timeout_secs = 60).await;
    let ep = raw::endpoint();
    let conn = raw::connect(&ep, &gw, None).await.expect("handshake");
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&partial_large_hello()).await.unwrap();
    let (code, reason) = raw::close_code(&conn).await;
    assert_eq!(code, ErrorCode::FrameTooLarge.as_u16(), "{reason}");
    assert!(
        reason.contains(&defaults().pre_auth_max_frame.to_string()),
        "{reason}"
    );

    // An Auth above the pre-auth cap too, after a valid Hello.
    let conn = raw::connect(&ep, &gw, None).await.expect("handshake");
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let hello = garou_protocol::Hello {
        version: garou_protocol::PROTOCOL_VERSION,
        client: "raw-test".into(),
        resume: Default::default(),
    };
    send.write_all(&Message::from(hello).encode()).await.unwrap();
    let big = defaults().pre_auth_max_frame + 1;
    send.write_all(&Frame::header(FrameType::Auth as u8, big))
        .await
        .unwrap();
    let (code, reason) = raw::close_code(&conn).await;
    assert_eq!(code, ErrorCode::FrameTooLarge.as_u16(), "{reason}");

    // After authentication the cap is max_frame again: a frame above the pre-auth cap is
    // accepted on a command stream (and answered; it is a command).
    let mut raw = Raw::login(&gw, "after", true, None).await;
    let req = raw.req();
    let text = "x".repeat(defaults().pre_auth_max_frame + 10);
    let list = Message::from(garou_protocol::Send {
        req,
        room: "nowhere".into(),
        client_id: 1,
        text,
        attachment: None,
    });
    raw.commands.write_all(&list.encode()).await.unwrap();
    loop {
        let m = raw.next().await;
        if m.reply_to() == Some(req) {
            assert!(
                !matches!(m, Message::Error(ref e) if e.code == ErrorCode::FrameTooLarge),
                "{m:?}"
            );
            break;
        }
    }
    assert!(raw.conn.close_reason().is_none(), "still connected");
    gw.shutdown().await;
}

/// Open a command stream on `raw` and write a header declaring `declared` bytes plus
/// `sent` of them; the frame never completes. Write errors (the server closed) are ignored.
async fn partial_command(raw: &Raw, declared: usize, sent: usize) -> tokio::task::JoinHandle<()> {
    let mut stream = raw.conn.open_uni().await.unwrap();
    tokio::spawn(async move {
        let header = Message::from(StreamHeader {
            kind: StreamKind::Commands,
        });
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(&Frame::header(FrameType::Send as u8, declared));
        bytes.extend(std::iter::repeat_n(b'x', sent));
        let _ = stream.write_all(&bytes).await;
        // Keep the stream open (unfinished) until the connection goes.
        let _ = stream.stopped().await;
    })
}

#[tokio::test]
async fn partial_frames_over_several_streams_are_capped_per_connection() {
    let gw = gateway(|_| {}).await;
    let cap = defaults().max_buffered_per_connection;
    let stats = &gw.limits.stats;
    let raw = Raw::login(&gw, "hoarder", true, None).await;
    // Each stream stays under max_frame; together they pass the connection's cap.
    let per_stream = DEFAULT_MAX_FRAME * 3 / 4;
    let streams = cap / per_stream + 1;
    assert!(streams <= garou_gateway::config::StreamConfig::default().max_concurrent_streams as usize);
    let mut writers = Vec::new();
    for _ in 0..streams {
        writers.push(partial_command(&raw, DEFAULT_MAX_FRAME, per_stream).await);
    }
    let (code, reason) = raw::close_code(&raw.conn).await;
    assert_eq!(code, ErrorCode::LimitReached.as_u16(), "{reason}");
    assert!(reason.contains(&cap.to_string()), "{reason}");
    assert_eq!(LimitStats::get(&stats.buffer_overflows), 1);
    raw::eventually("every buffered byte released", WAIT, || gw.limits.buffered() == 0).await;
    for w in writers {
        let _ = tokio::time::timeout(WAIT, w).await;
    }
    // The gateway serves on.
    let (bob, _events) = client(&gw, "bob").await;
    bob.join("lobby").await.expect("a newcomer is served");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_gateway_wide_budget_closes_the_offender_and_nothing_else() {
    let gw = gateway(|c| {
        c.limits.buffer_budget = 3 * 1024 * 1024;
    })
    .await;
    let stats = &gw.limits.stats;
    let per_stream = DEFAULT_MAX_FRAME * 7 / 8;
    let first = Raw::login(&gw, "first", true, None).await;
    let mut writers = Vec::new();
    for _ in 0..2 {
        writers.push(partial_command(&first, DEFAULT_MAX_FRAME, per_stream).await);
    }
    raw::eventually("the first connection's partial frames are buffered", WAIT, || {
        gw.limits.buffered() >= 2 * per_stream
    })
    .await;
    let second = Raw::login(&gw, "second", true, None).await;
    for _ in 0..2 {
        writers.push(partial_command(&second, DEFAULT_MAX_FRAME, per_stream).await);
    }
    let (code, reason) = raw::close_code(&second.conn).await;
    assert_eq!(code, ErrorCode::LimitReached.as_u16(), "{reason}");
    assert!(reason.contains("budget"), "{reason}");
    assert_eq!(LimitStats::get(&stats.budget_exhausted), 1);
    assert!(first.conn.close_reason().is_none(), "within its own cap: kept");
    first.conn.close(0u32.into(), b"done");
    raw::eventually("every buffered byte released", WAIT, || gw.limits.buffered() == 0).await;
    for w in writers {
        let _ = tokio::time::timeout(WAIT, w).await;
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn open_connections_per_ip_are_capped_and_other_addresses_still_get_in() {
    const CAP: usize = 3;
    let gw = gateway(|c| {
        c.limits.max_connections_per_ip = CAP;
        // The connections below just sit there: no handshake timeout during the test.
        c.handshake_timeout_secs = 60;
    })
    .await;
    let ep = raw::endpoint();
    let mut open = Vec::new();
    for _ in 0..CAP {
        open.push(raw::connect(&ep, &gw, None).await.expect("within the cap"));
    }
    raw::eventually("the connections are admitted", WAIT, || gw.limits.live() == CAP).await;
    let refused = raw::connect(&ep, &gw, None).await.expect("handshake completes");
    let (code, reason) = raw::close_code(&refused).await;
    assert_eq!(code, ErrorCode::LimitReached.as_u16(), "{reason}");
    assert!(reason.contains("max_connections_per_ip"), "{reason}");
    // The WebSocket lane counts the same connections.
    let url = format!("ws://{}/ws", gw.http_addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
    }
    assert_eq!(LimitStats::get(&gw.limits.stats.refused_ip_connections), 2);

    // Another address is not affected: it logs in and is served.
    let mut other = Raw::login_with(
        &gw,
        garou_protocol::Credentials::Nick("elsewhere".into()),
        true,
        None,
        raw::endpoint_at("127.0.0.2"),
    )
    .await;
    other.join("lobby").await;

    // A connection that ends frees its address's slot.
    open.pop().unwrap().close(0u32.into(), b"bye");
    raw::eventually("the slot is freed", WAIT, || gw.limits.live() == CAP).await;
    let again = raw::connect(&ep, &gw, None).await.expect("handshake");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        again.close_reason().is_none(),
        "admitted again once a slot is free"
    );
    gw.shutdown().await;
}
