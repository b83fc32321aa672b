//! How and why the gateway closes a connection, over the transport that shows it: a
//! refusal before the handshake completes, a handshake or idle timeout, an oversized frame
//! or WebSocket message, a slow consumer, a shutdown the client ignores. Each says why
//! (an Error frame on the control stream where one exists, then the close code).

mod common;

use std::future::IntoFuture;
use std::sync::atomic::AtomicU64;

use common::raw::{self, Raw};
use common::*;
use futures::{SinkExt, StreamExt};
use garou_gateway::limits::LimitStats;
use garou_gateway::server::Gateway;
use garou_protocol::{
    ws, Auth, Credentials, Decoder, ErrorCode, Frame, Hello, Join, ListRooms, Message, Ping, StreamHeader,
    StreamKind, PROTOCOL_VERSION,
};
use tokio_tungstenite::tungstenite::Message as WsMsg;

fn stat(c: &AtomicU64) -> u64 {
    LimitStats::get(c)
}

fn hello() -> Message {
    Hello {
        version: PROTOCOL_VERSION,
        client: "closes-test".into(),
        resume: Default::default(),
    }
    .into()
}

fn auth(nick: &str) -> Message {
    Auth {
        credentials: Credentials::Nick(nick.into()),
    }
    .into()
}

fn bytes_of(msgs: &[Message]) -> Vec<u8> {
    msgs.iter().flat_map(|m| m.encode().to_vec()).collect()
}

/// The fatal Error frame among `msgs` (there must be exactly one, and nothing after it).
fn fatal_error(msgs: &[Message]) -> (ErrorCode, String) {
    match msgs.last() {
        Some(Message::Error(e)) if e.req.is_none() => (e.code, e.message.clone()),
        _ => panic!("expected an Error frame last, got {msgs:?}"),
    }
}

// ------------------------------------------------------------------ raw QUIC

/// Every message on a QUIC control stream until it ends (or the connection goes).
async fn read_control(mut recv: quinn::RecvStream) -> Vec<Message> {
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(WAIT, recv.read_chunk(usize::MAX, true)).await {
        dec.push(&chunk.bytes);
        while let Some(frame) = dec.next_frame().unwrap() {
            out.push(Message::decode(&frame).unwrap());
        }
    }
    out
}

/// Open a control stream, write `bytes`, read what comes back; the close code and reason.
async fn quic_refusal(gw: &Gateway, bytes: Vec<u8>) -> (Vec<Message>, u16, String) {
    let ep = raw::endpoint();
    let conn = raw::connect(&ep, gw, None).await.expect("QUIC handshake");
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&bytes).await.unwrap();
    let msgs = read_control(recv).await;
    let (code, reason) = raw::close_code(&conn).await;
    (msgs, code, reason)
}

#[tokio::test]
async fn a_refused_handshake_says_why_in_an_error_frame_before_the_close() {
    let gw = gateway(|_| {}).await;
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "Auth before Hello",
            bytes_of(&[auth("early")]),
            ErrorCode::OutOfState,
        ),
        (
            "an unknown frame type",
            Frame::header(0xA5, 1).into_iter().chain([0]).collect(),
            ErrorCode::BadFrame,
        ),
        (
            "a Hello that does not decode",
            Frame::header(0x01, 3).into_iter().chain([0xFF; 3]).collect(),
            ErrorCode::BadPayload,
        ),
        (
            "a Hello longer than max_frame",
            Frame::header(0x01, garou_protocol::DEFAULT_MAX_FRAME + 1).to_vec(),
            ErrorCode::FrameTooLarge,
        ),
        (
            "a Ping where Auth belongs",
            bytes_of(&[hello(), Ping { nonce: 7 }.into()]),
            ErrorCode::OutOfState,
        ),
    ];
    for (what, bytes, want) in cases {
        let (msgs, code, reason) = quic_refusal(&gw, bytes).await;
        let (got, message) = fatal_error(&msgs);
        assert_eq!(got, want, "{what}: {message}");
        assert_eq!(code, want.as_u16(), "{what}: close {reason}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_handshake_that_stalls_times_out_with_an_error_frame() {
    let gw = gateway(|c| c.handshake_timeout_secs = 1).await;
    // Hello, then never Auth.
    let (msgs, code, _) = quic_refusal(&gw, bytes_of(&[hello()])).await;
    assert!(matches!(msgs.first(), Some(Message::HelloAck(_))), "{msgs:?}");
    let (got, message) = fatal_error(&msgs);
    assert_eq!(got, ErrorCode::OutOfState);
    assert!(message.contains("handshake timed out"), "{message}");
    assert_eq!(code, ErrorCode::OutOfState.as_u16());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_idle_timeout_with_the_documented_error() {
    let gw = gateway(|c| c.idle_timeout_secs = 1).await;
    // Logged in, then silent: never pings, never closes.
    let mut raw = Raw::login(&gw, "silent", true, None).await;
    let started = std::time::Instant::now();
    let error = loop {
        if let Message::Error(e) = raw.next().await {
            break e;
        }
    };
    assert_eq!(
        (error.req, error.code),
        (None, ErrorCode::OutOfState),
        "{error:?}"
    );
    assert!(error.message.contains("idle timeout"), "{}", error.message);
    let (code, reason) = raw::close_code(&raw.conn).await;
    assert_eq!(code, ErrorCode::OutOfState.as_u16(), "{reason}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "not before the timeout"
    );
    raw::eventually("the silent session is gone", WAIT, || {
        gw.hub.connection_count() == 0
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_its_control_stream_still_gets_its_slow_consumer_error() {
    let gw = gateway(|c| {
        lift_command_rates(c);
    })
    .await;
    // Small windows: the unread control stream backs up after a few hundred replies, then
    // the control queue fills.
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(8192u32.into())
        .receive_window(16384u32.into());
    let mut raw = Raw::login(&gw, "deaf", false, Some(t)).await;
    let mut buf = Vec::new();
    for _ in 0..6000 {
        let req = raw.req();
        buf.extend_from_slice(&Message::from(ListRooms { req }).encode());
    }
    let mut commands = std::mem::replace(&mut raw.commands, raw.conn.open_uni().await.unwrap());
    let writer = tokio::spawn(async move { commands.write_all(&buf).await.is_ok() });
    raw::eventually("the deaf client counts as a slow consumer", WAIT, || {
        stat(&gw.limits.stats.slow_consumers) == 1
    })
    .await;
    // It reads again (within the forced-close bound): what was queued, then why.
    let msgs = read_control(raw.control_recv.take().unwrap()).await;
    let (code, message) = fatal_error(&msgs);
    assert_eq!(code, ErrorCode::SlowConsumer, "{message}");
    assert!(msgs.len() > 1000, "the replies queued before it came first");
    let (code, reason) = raw::close_code(&raw.conn).await;
    assert_eq!(code, ErrorCode::SlowConsumer.as_u16(), "{reason}");
    writer.abort();
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_completes_within_its_grace_bound_when_clients_ignore_shutdown() {
    let gw = gateway(|c| c.shutdown_grace_secs = 1).await;
    let (quic_addr, http_addr) = (gw.quic_addr, gw.http_addr);
    // One reads (and so sees Shutdown) but never closes; one never reads at all.
    let mut ignorer = Raw::login(&gw, "ignorer", true, None).await;
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(4096u32.into())
        .receive_window(8192u32.into());
    let deaf = Raw::login(&gw, "deaf", false, Some(t)).await;
    let mut ws = ws_login(&gw, "wsdeaf", None).await;
    tokio::time::timeout(2 * WAIT, gw.shutdown())
        .await
        .expect("the gateway shuts down although its clients ignore Shutdown");
    // The one that read was told.
    let told = loop {
        match tokio::time::timeout(WAIT, ignorer.inbox.recv()).await {
            Ok(Some(Message::Shutdown(s))) => break Some(s),
            Ok(Some(_)) => continue,
            _ => break None,
        }
    };
    assert!(told.is_some(), "Shutdown reached the client that reads");
    for conn in [&ignorer.conn, &deaf.conn] {
        assert!(
            tokio::time::timeout(WAIT, conn.closed()).await.is_ok(),
            "every QUIC connection is closed"
        );
    }
    let (_, close) = ws_until_close(&mut ws).await;
    if let Some((code, _)) = close {
        assert_eq!(code, 4000 + ErrorCode::ShuttingDown.as_u16());
    }
    // The ports are free for a restart.
    std::net::UdpSocket::bind(quic_addr).expect("the QUIC port is free");
    std::net::TcpListener::bind(http_addr).expect("the HTTP port is free");
}

// ------------------------------------------------------------------ raw WebSocket

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket to the gateway; `rcvbuf` shrinks the client's TCP receive buffer.
async fn ws_open(gw: &Gateway, rcvbuf: Option<u32>) -> Ws {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = rcvbuf {
        sock.set_recv_buffer_size(size).unwrap();
    }
    let tcp = sock.connect(gw.http_addr).await.unwrap();
    let url = format!("ws://{}/ws", gw.http_addr);
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    ws
}

/// One lane message carrying `msgs`.
fn lane(tag: u8, msgs: &[Message]) -> WsMsg {
    let chunks: Vec<_> = msgs.iter().map(|m| m.encode()).collect();
    WsMsg::Binary(ws::message(tag, &chunks).into())
}

/// Control-lane messages until the socket closes; the close code and reason, if a close
/// frame came.
async fn ws_until_close(ws: &mut Ws) -> (Vec<Message>, Option<(u16, String)>) {
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(WsMsg::Binary(b))) if b.first() == Some(&ws::CONTROL) => {
                dec.push(&b[1..]);
                while let Some(f) = dec.next_frame().unwrap() {
                    out.push(Message::decode(&f).unwrap());
                }
            }
            Some(Ok(WsMsg::Close(c))) => {
                return (out, c.map(|c| (u16::from(c.code), c.reason.to_string())));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (out, None),
        }
    }
}

/// Control-lane messages until `until` matches one (bounded); the socket stays open.
async fn ws_control_until(ws: &mut Ws, dec: &mut Decoder, until: impl Fn(&Message) -> bool) {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("no error");
        let WsMsg::Binary(b) = m else { continue };
        if b.first() != Some(&ws::CONTROL) {
            continue;
        }
        dec.push(&b[1..]);
        while let Some(f) = dec.next_frame().unwrap() {
            let m = Message::decode(&f).unwrap();
            assert!(!matches!(m, Message::Error(_)), "{m:?}");
            if until(&m) {
                return;
            }
        }
    }
}

/// A WebSocket session logged in as `nick` (read up to Welcome).
async fn ws_login(gw: &Gateway, nick: &str, rcvbuf: Option<u32>) -> Ws {
    let mut ws = ws_open(gw, rcvbuf).await;
    ws.send(lane(ws::CONTROL, &[hello(), auth(nick)])).await.unwrap();
    let mut dec = Decoder::default();
    ws_control_until(&mut ws, &mut dec, |m| matches!(m, Message::Welcome(_))).await;
    ws
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_with_1009_after_an_error_frame() {
    let gw = gateway(|c| c.max_frame = 4096).await;
    let mut ws = ws_open(&gw, None).await;
    let mut big = vec![ws::CONTROL];
    big.extend(std::iter::repeat_n(0u8, 3 * 4096));
    ws.send(WsMsg::Binary(big.into())).await.unwrap();
    let (msgs, close) = ws_until_close(&mut ws).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 1009, "Message Too Big: {reason}");
    let (error, message) = fatal_error(&msgs);
    assert_eq!(error, ErrorCode::FrameTooLarge, "{message}");
    // The gateway is unharmed.
    let (c, _e) = client(&gw, "after").await;
    c.join("general").await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn a_frame_larger_than_max_frame_over_websocket_closes_with_frame_too_large() {
    let gw = gateway(|_| {}).await;
    let mut ws = ws_login(&gw, "big", None).await;
    let header = Message::from(StreamHeader {
        kind: StreamKind::Commands,
    })
    .encode();
    // A Send announcing one byte more than max_frame; the payload never follows.
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&Frame::header(0x14, garou_protocol::DEFAULT_MAX_FRAME + 1));
    ws.send(WsMsg::Binary(
        ws::message(ws::CLIENT_FIRST, &[bytes.into()]).into(),
    ))
    .await
    .unwrap();
    let (msgs, close) = ws_until_close(&mut ws).await;
    let (error, message) = fatal_error(&msgs);
    assert_eq!(error, ErrorCode::FrameTooLarge, "{message}");
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 4000 + ErrorCode::FrameTooLarge.as_u16(), "{reason}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_slow_consumer_over_websocket_gets_its_error_frame_before_the_close() {
    let gw = gateway(|c| {
        c.stream.lane_queue = 16;
        lift_command_rates(c);
        // However slow the machine, the stalled client is dropped for not reading, not
        // for not pinging.
        c.idle_timeout_secs = 600;
    })
    .await;
    let (alice, mut a_events) = client(&gw, "alice").await;
    alice.join("busy").await.unwrap();
    let drain = tokio::spawn(async move { while a_events.next().await.is_some() {} });
    // A WebSocket client with a small receive buffer joins, then stops reading.
    let mut ws = ws_login(&gw, "stalled", Some(4096)).await;
    let join = Join {
        req: 1,
        room: "busy".into(),
        since: None,
    };
    let header = StreamHeader {
        kind: StreamKind::Commands,
    };
    ws.send(lane(ws::CLIENT_FIRST, &[header.into(), join.into()]))
        .await
        .unwrap();
    let mut dec = Decoder::default();
    ws_control_until(&mut ws, &mut dec, |m| matches!(m, Message::Joined(_))).await;
    let text = "x".repeat(1000);
    for batch in 0..5000 {
        if stat(&gw.limits.stats.slow_consumers) > 0 {
            break;
        }
        // Pipelined, so the stalled socket fills fast; fewer in flight than a lane queue
        // holds, so alice (who reads) is never the slow one.
        let sends = (0..8).map(|i| alice.send("busy", format!("{batch}-{i} {text}")).into_future());
        for sent in futures::future::join_all(sends).await {
            sent.unwrap();
        }
    }
    assert_eq!(
        stat(&gw.limits.stats.slow_consumers),
        1,
        "the stalled client was dropped"
    );
    // It reads again (within the forced-close bound): what was queued, then why, then the close.
    let (msgs, close) = ws_until_close(&mut ws).await;
    let (error, message) = fatal_error(&msgs);
    assert_eq!(error, ErrorCode::SlowConsumer, "{message}");
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 4000 + ErrorCode::SlowConsumer.as_u16(), "{reason}");
    drain.abort();
    gw.shutdown().await;
}

#[tokio::test]
async fn a_websocket_client_that_stops_reading_its_replies_still_gets_its_slow_consumer_error() {
    let gw = gateway(|c| {
        lift_command_rates(c);
        c.idle_timeout_secs = 600;
    })
    .await;
    let mut ws = ws_login(&gw, "deaf", Some(4096)).await;
    let header = StreamHeader {
        kind: StreamKind::Commands,
    };
    let mut req = 0;
    let mut flood = |n: u32| {
        let mut msgs = Vec::new();
        for _ in 0..n {
            req += 1;
            msgs.push(Message::from(ListRooms { req }));
        }
        lane(ws::CLIENT_FIRST, &msgs)
    };
    ws.send(lane(ws::CLIENT_FIRST, &[header.into()])).await.unwrap();
    // Commands whose replies it never reads, until the control queue is full.
    let mut sent = 0;
    while stat(&gw.limits.stats.slow_consumers) == 0 && sent < 200_000 {
        let _ = tokio::time::timeout(WAIT, ws.send(flood(500))).await;
        sent += 500;
    }
    assert_eq!(
        stat(&gw.limits.stats.slow_consumers),
        1,
        "the deaf client was dropped"
    );
    // It reads again (within the forced-close bound): the replies, then why, then the close.
    let (msgs, close) = ws_until_close(&mut ws).await;
    let (error, message) = fatal_error(&msgs);
    assert_eq!(error, ErrorCode::SlowConsumer, "{message}");
    let (code, reason) = close.expect("a close frame");
    assert_eq!(code, 4000 + ErrorCode::SlowConsumer.as_u16(), "{reason}");
    gw.shutdown().await;
}
