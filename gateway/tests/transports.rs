//! One session model, three transports: a native QUIC client, a WebTransport session and a
//! WebSocket session (both driving the same `ClientSession` a browser's wasm client drives)
//! chat in one room through the same hub.

mod common;

use common::driven::{websocket, webtransport};
use common::*;
use garou_protocol::{ClientConfig, Event, Message, Reply};

// ------------------------------------------------------------------ the test

fn text_of(ev: &Event) -> Option<String> {
    match ev {
        Event::Room {
            event: Message::RoomMessage(m),
            ..
        } => Some(format!("<{}> {}", m.nick, m.text)),
        _ => None,
    }
}

#[tokio::test]
async fn quic_webtransport_and_websocket_share_one_room() {
    let gw = gateway(|_| {}).await;
    let (native, mut native_events) = client(&gw, "quinn").await;
    native.join("general").await.unwrap();

    let (mut wt, mut wt_out) = webtransport(&gw, ClientConfig::with_nick("wtuser")).await;
    wt.until(&mut wt_out, "ready", |e| {
        matches!(e, Event::Ready { .. }).then_some(())
    })
    .await;
    wt.request(&mut wt_out, |s, now| s.join("general", now)).await;

    let (mut wsd, mut ws_out) = websocket(&gw, ClientConfig::with_nick("wsuser")).await;
    wsd.until(&mut ws_out, "ready", |e| {
        matches!(e, Event::Ready { .. }).then_some(())
    })
    .await;
    let Reply::Joined(joined) = wsd.request(&mut ws_out, |s, now| s.join("general", now)).await else {
        panic!("not joined")
    };
    let mut nicks: Vec<_> = joined.members.iter().map(|m| m.nick.clone()).collect();
    nicks.sort();
    assert_eq!(nicks, ["quinn", "wsuser", "wtuser"]);

    // Each sends; each of the others receives.
    native.send("general", "from quic").await.unwrap();
    wt.request(&mut wt_out, |s, now| s.send("general", "from webtransport", now))
        .await;
    wsd.request(&mut ws_out, |s, now| s.send("general", "from websocket", now))
        .await;
    wait_message(&mut native_events, "from webtransport").await;
    wait_message(&mut native_events, "from websocket").await;
    for want in ["<quinn> from quic", "<wsuser> from websocket"] {
        let seen = wt.events.iter().filter_map(text_of).any(|t| t == want);
        if !seen {
            wt.until(&mut wt_out, want, |e| {
                (text_of(e).as_deref() == Some(want)).then_some(())
            })
            .await;
        }
    }
    for want in ["<quinn> from quic", "<wtuser> from webtransport"] {
        let seen = wsd.events.iter().filter_map(text_of).any(|t| t == want);
        if !seen {
            wsd.until(&mut ws_out, want, |e| {
                (text_of(e).as_deref() == Some(want)).then_some(())
            })
            .await;
        }
    }

    // Typing over WebSocket reaches the WebTransport session as a datagram.
    wsd.session.typing("general");
    wsd.flush(&mut ws_out).await;
    let who = wt
        .until(&mut wt_out, "typing", |e| match e {
            Event::Typing { nick, .. } => Some(nick.clone()),
            _ => None,
        })
        .await;
    assert_eq!(who, "wsuser");
    gw.shutdown().await;
}

/// A raw WebTransport control stream, for speaking out of turn.
async fn raw_control(
    gw: &garou_gateway::server::Gateway,
) -> (
    wtransport::Connection,
    wtransport::SendStream,
    wtransport::RecvStream,
) {
    let conn = common::driven::wt_connect(gw).await;
    let (send, recv) = conn.open_bi().await.unwrap().await.unwrap();
    (conn, send, recv)
}

/// Read frames until one decodes to a message (bounded).
async fn read_message(recv: &mut wtransport::RecvStream) -> Option<Message> {
    let mut dec = garou_protocol::Decoder::default();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = dec.next_frame().unwrap() {
            return Some(Message::decode(&f).unwrap());
        }
        let n = tokio::time::timeout(WAIT, recv.read(&mut buf))
            .await
            .expect("bounded")
            .ok()??;
        dec.push(&buf[..n]);
    }
}

#[tokio::test]
async fn an_unsupported_version_is_refused_with_a_clear_error() {
    let gw = gateway(|_| {}).await;
    let (conn, mut send, mut recv) = raw_control(&gw).await;
    let hello = garou_protocol::Hello {
        version: 99,
        client: "from the future".into(),
        resume: Default::default(),
    };
    send.write_all(&Message::from(hello).encode()).await.unwrap();
    match read_message(&mut recv).await {
        Some(Message::Error(e)) => {
            assert_eq!(e.code, garou_protocol::ErrorCode::UnsupportedVersion);
            assert!(e.message.contains("99"), "{}", e.message);
        }
        other => panic!("expected an Error frame, got {other:?}"),
    }
    let closed = tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("closed in time");
    assert!(closed.to_string().contains("not supported"), "{closed}");
    gw.shutdown().await;
}

#[tokio::test]
async fn garbage_on_the_control_stream_closes_with_bad_frame() {
    let gw = gateway(|_| {}).await;
    let (conn, mut send, _recv) = raw_control(&gw).await;
    send.write_all(&[0x7E, 0, 0, 0, 1, 0]).await.unwrap(); // frame type 0x7E does not exist
    let closed = tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("closed in time");
    let text = closed.to_string();
    assert!(text.contains("unknown frame type 0x7e"), "{text}");
    // The gateway is unharmed: a proper client still gets in.
    let (c, _e) = client(&gw, "after").await;
    c.join("general").await.unwrap();
    gw.shutdown().await;
}
