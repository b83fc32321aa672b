//! One session model, three transports: a native QUIC client, a WebTransport session and a
//! WebSocket session (both driving the same `ClientSession` a browser's wasm client drives)
//! chat in one room through the same hub.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use garou_protocol::client::CONTROL;
use garou_protocol::{ws, ClientConfig, ClientSession, Event, Lane, Message, Reply};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What reader tasks hand the driver.
enum Inbound {
    Data(u64, Bytes),
    End(u64),
    Datagram(Bytes),
}

/// Where a driver writes what the session transmits.
trait Outlet: Send {
    async fn send(&mut self, lane: Lane, data: Bytes);
}

/// A `ClientSession` driven over some transport, in the test's own task.
struct Driven {
    session: ClientSession,
    inbound: mpsc::Receiver<Inbound>,
    start: Instant,
    events: Vec<Event>,
}

impl Driven {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn flush(&mut self, out: &mut impl Outlet) {
        while let Some(t) = self.session.poll_transmit() {
            out.send(t.lane, t.data).await;
        }
    }

    /// Pump input until `pick` matches an event (bounded).
    async fn until<T>(
        &mut self,
        out: &mut impl Outlet,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.flush(out).await;
            while let Some(ev) = self.session.poll_event() {
                if let Some(t) = pick(&ev) {
                    return t;
                }
                self.events.push(ev);
            }
            let input = tokio::time::timeout_at(deadline, self.inbound.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .expect("transport closed");
            let now = self.now();
            match input {
                Inbound::Data(id, b) => self.session.on_stream_data(id, &b, now).unwrap(),
                Inbound::End(id) => self.session.on_stream_end(id).unwrap(),
                Inbound::Datagram(b) => self.session.on_datagram(&b, now).unwrap(),
            }
        }
    }

    async fn request(
        &mut self,
        out: &mut impl Outlet,
        make: impl FnOnce(&mut ClientSession, u64) -> u32,
    ) -> Reply {
        let now = self.now();
        let req = make(&mut self.session, now);
        self.until(out, "reply", |ev| match ev {
            Event::Reply { req: r, result } if *r == req => Some(result.clone()),
            _ => None,
        })
        .await
        .expect("request succeeds")
    }
}

fn driven(nick: &str, inbound: mpsc::Receiver<Inbound>) -> Driven {
    Driven {
        session: ClientSession::new(ClientConfig::with_nick(nick), 0),
        inbound,
        start: Instant::now(),
        events: Vec::new(),
    }
}

// ------------------------------------------------------------------ WebTransport

struct WtOutlet {
    conn: wtransport::Connection,
    control: wtransport::SendStream,
    uni: Vec<(Lane, wtransport::SendStream)>,
}

impl Outlet for WtOutlet {
    async fn send(&mut self, lane: Lane, data: Bytes) {
        match lane {
            Lane::Control => self.control.write_all(&data).await.unwrap(),
            Lane::Datagram => self.conn.send_datagram(data).unwrap(),
            lane => {
                if !self.uni.iter().any(|(l, _)| *l == lane) {
                    let s = self.conn.open_uni().await.unwrap().await.unwrap();
                    self.uni.push((lane, s));
                }
                let (_, s) = self.uni.iter_mut().find(|(l, _)| *l == lane).unwrap();
                s.write_all(&data).await.unwrap();
            }
        }
    }
}

async fn read_wt(mut recv: wtransport::RecvStream, id: u64, tx: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        if tx
            .send(Inbound::Data(id, Bytes::copy_from_slice(&buf[..n])))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = tx.send(Inbound::End(id)).await;
}

async fn webtransport(gw: &garou_gateway::server::Gateway, nick: &str) -> (Driven, WtOutlet) {
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(gw.cert_sha256)])
        .build();
    let url = format!("https://127.0.0.1:{}/", gw.quic_addr.port());
    let conn = wtransport::Endpoint::client(config)
        .unwrap()
        .connect(url)
        .await
        .expect("WebTransport session");
    let (control, control_recv) = conn.open_bi().await.unwrap().await.unwrap();
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(read_wt(control_recv, CONTROL, tx.clone()));
    {
        let (conn, tx) = (conn.clone(), tx.clone());
        tokio::spawn(async move {
            let mut id = 1;
            while let Ok(recv) = conn.accept_uni().await {
                tokio::spawn(read_wt(recv, id, tx.clone()));
                id += 1;
            }
        });
    }
    {
        let conn = conn.clone();
        tokio::spawn(async move {
            while let Ok(d) = conn.receive_datagram().await {
                if tx.send(Inbound::Datagram(d.payload())).await.is_err() {
                    return;
                }
            }
        });
    }
    let out = WtOutlet {
        conn,
        control,
        uni: Vec::new(),
    };
    (driven(nick, rx), out)
}

// ------------------------------------------------------------------ WebSocket

type WsSink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
>;

struct WsOutlet(WsSink);

impl Outlet for WsOutlet {
    async fn send(&mut self, lane: Lane, data: Bytes) {
        let tag = match lane {
            Lane::Control => ws::CONTROL,
            Lane::Datagram => ws::DATAGRAM,
            Lane::Commands => ws::CLIENT_FIRST,
            Lane::Acks => ws::CLIENT_FIRST + 1,
        };
        self.0
            .send(WsMessage::Binary(ws::message(tag, &[data]).into()))
            .await
            .unwrap();
    }
}

async fn websocket(gw: &garou_gateway::server::Gateway, nick: &str) -> (Driven, WsOutlet) {
    let url = format!("ws://{}/ws", gw.http_addr);
    let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket");
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let WsMessage::Binary(b) = msg else { continue };
            let (tag, rest) = (b[0], b.slice(1..));
            let input = match ws::LaneTag::of(tag) {
                ws::LaneTag::Control => Inbound::Data(CONTROL, rest),
                ws::LaneTag::Datagram => Inbound::Datagram(rest),
                ws::LaneTag::ServerStream(t) if rest.is_empty() => Inbound::End(u64::from(t)),
                ws::LaneTag::ServerStream(t) => Inbound::Data(u64::from(t), rest),
                other => panic!("server sent lane {other:?}"),
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
    });
    (driven(nick, rx), WsOutlet(sink))
}

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

    let (mut wt, mut wt_out) = webtransport(&gw, "wtuser").await;
    wt.until(&mut wt_out, "ready", |e| {
        matches!(e, Event::Ready { .. }).then_some(())
    })
    .await;
    wt.request(&mut wt_out, |s, now| s.join("general", now)).await;

    let (mut wsd, mut ws_out) = websocket(&gw, "wsuser").await;
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
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(gw.cert_sha256)])
        .build();
    let url = format!("https://127.0.0.1:{}/", gw.quic_addr.port());
    let conn = wtransport::Endpoint::client(config)
        .unwrap()
        .connect(url)
        .await
        .unwrap();
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
