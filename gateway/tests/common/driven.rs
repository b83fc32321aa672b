//! Drives the shared `ClientSession` (what the wasm client runs in a browser) over
//! WebTransport or the WebSocket lanes, in the test's own task.

use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use garou_protocol::client::CONTROL;
use garou_protocol::{ws, ClientConfig, ClientSession, Event, Lane, Reply};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::WAIT;

/// What reader tasks hand the driver.
pub enum Inbound {
    Data(u64, Bytes),
    End(u64),
    Datagram(Bytes),
}

/// Where a driver writes what the session transmits.
pub trait Outlet: Send {
    async fn send(&mut self, lane: Lane, data: Bytes);
}

/// A `ClientSession` driven over some transport, in the test's own task.
pub struct Driven {
    pub session: ClientSession,
    inbound: mpsc::Receiver<Inbound>,
    start: Instant,
    pub events: Vec<Event>,
}

impl Driven {
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub async fn flush(&mut self, out: &mut impl Outlet) {
        while let Some(t) = self.session.poll_transmit() {
            out.send(t.lane, t.data).await;
        }
    }

    /// Pump input until `pick` matches an event (bounded).
    pub async fn until<T>(
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

    pub async fn request(
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

fn driven(config: ClientConfig, inbound: mpsc::Receiver<Inbound>) -> Driven {
    Driven {
        session: ClientSession::new(config, 0),
        inbound,
        start: Instant::now(),
        events: Vec::new(),
    }
}

// ------------------------------------------------------------------ WebTransport

pub struct WtOutlet {
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

/// A WebTransport session to `gw`, trusting its certificate by hash as a browser does.
pub async fn wt_connect(gw: &garou_gateway::server::Gateway) -> wtransport::Connection {
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(gw.cert_sha256)])
        .build();
    let url = format!("https://127.0.0.1:{}/", gw.quic_addr.port());
    wtransport::Endpoint::client(config)
        .unwrap()
        .connect(url)
        .await
        .expect("WebTransport session")
}

pub async fn webtransport(gw: &garou_gateway::server::Gateway, config: ClientConfig) -> (Driven, WtOutlet) {
    let conn = wt_connect(gw).await;
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
    (driven(config, rx), out)
}

// ------------------------------------------------------------------ WebSocket

type WsSink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
>;

pub struct WsOutlet(WsSink);

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

pub async fn websocket(gw: &garou_gateway::server::Gateway, config: ClientConfig) -> (Driven, WsOutlet) {
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
    (driven(config, rx), WsOutlet(sink))
}
