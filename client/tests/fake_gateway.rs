//! End-to-end tests of the driver against a tiny in-process fake gateway.
//!
//! The fake speaks just enough of the protocol over real QUIC on loopback (handshake,
//! one shard stream, join/send/list replies, per-room offsets, server-initiated close) to
//! exercise what only the driver does: stream wiring, trust modes, request routing,
//! pipelining, reconnect with rejoin, and graceful close. Protocol logic itself is tested
//! in garou-protocol; the real gateway's integration tests live with the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use garou_client::protocol::{self as p, Decoder, Message};
use garou_client::{
    cert_hash, connect, ClientError, ClientEvent, ClientOptions, Credentials, ErrorCode, Event, Trust, ALPN,
};
use tokio::sync::mpsc;

struct Fake {
    addr: SocketAddr,
    hash: [u8; 32],
    endpoint: quinn::Endpoint,
    conns: Arc<Mutex<Vec<quinn::Connection>>>,
    sessions: Arc<AtomicU64>,
    /// Rooms' next offsets, shared by all connections (survives reconnects).
    offsets: Arc<Mutex<HashMap<String, u64>>>,
    /// Close codes/reasons received from clients.
    closes: Arc<Mutex<Vec<(u64, String)>>>,
}

impl Fake {
    async fn start() -> Fake {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = ck.cert.der().clone();
        let hash = cert_hash(cert.as_ref());
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key.into())
            .unwrap();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let fake = Fake {
            addr: endpoint.local_addr().unwrap(),
            hash,
            endpoint: endpoint.clone(),
            conns: Default::default(),
            sessions: Default::default(),
            offsets: Default::default(),
            closes: Default::default(),
        };
        let (conns, sessions, offsets, closes) = (
            fake.conns.clone(),
            fake.sessions.clone(),
            fake.offsets.clone(),
            fake.closes.clone(),
        );
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let Ok(conn) = incoming.await else { continue };
                conns.lock().unwrap().push(conn.clone());
                let session = sessions.fetch_add(1, Ordering::SeqCst) + 1;
                let offsets = offsets.clone();
                let closes = closes.clone();
                tokio::spawn(async move {
                    let c2 = conn.clone();
                    tokio::spawn(async move {
                        if let quinn::ConnectionError::ApplicationClosed(a) = c2.closed().await {
                            let reason = String::from_utf8_lossy(&a.reason).into_owned();
                            closes.lock().unwrap().push((a.error_code.into_inner(), reason));
                        }
                    });
                    let _ = serve(conn, session, offsets).await;
                });
            }
        });
        fake
    }

    fn opts(&self, nick: &str) -> ClientOptions {
        let mut o = ClientOptions::new(self.addr.to_string(), Credentials::Nick(nick.into()))
            .trust(Trust::CertHash(self.hash));
        o.backoff_min = Duration::from_millis(50);
        o.backoff_max = Duration::from_millis(200);
        o.connect_timeout = Duration::from_secs(3);
        o
    }

    /// Close every connection as a restarting server would.
    fn kick(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.close(21u32.into(), b"restarting");
        }
    }
}

async fn read_frame(recv: &mut quinn::RecvStream, dec: &mut Decoder) -> Option<Message> {
    loop {
        if let Some(f) = dec.next_frame().unwrap() {
            return Some(Message::decode(&f).unwrap());
        }
        let chunk = recv.read_chunk(usize::MAX, true).await.ok()??;
        dec.push(&chunk.bytes);
    }
}

async fn serve(
    conn: quinn::Connection,
    session: u64,
    offsets: Arc<Mutex<HashMap<String, u64>>>,
) -> Option<()> {
    let (mut ctl_tx, mut ctl_rx) = conn.accept_bi().await.ok()?;
    let mut dec = Decoder::default();
    let Message::Hello(_) = read_frame(&mut ctl_rx, &mut dec).await? else {
        return None;
    };
    let ack = p::HelloAck {
        session,
        version: p::PROTOCOL_VERSION,
        server: "fake".into(),
        max_frame: 1 << 20,
        heartbeat_ms: 15_000,
    };
    ctl_tx.write_all(&Message::from(ack).encode()).await.ok()?;
    let Message::Auth(auth) = read_frame(&mut ctl_rx, &mut dec).await? else {
        return None;
    };
    let Credentials::Nick(nick) = auth.credentials else {
        return None;
    };
    if nick == "taken" {
        let e = p::AuthError {
            reason: "nick in use".into(),
        };
        ctl_tx.write_all(&Message::from(e).encode()).await.ok()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.close(ErrorCode::NickUnavailable.as_u16().into(), b"nick in use");
        return None;
    }
    let user = 100 + session;
    let mut out = Vec::new();
    out.extend_from_slice(
        &Message::from(p::AuthOk {
            user,
            nick: nick.clone(),
        })
        .encode(),
    );
    out.extend_from_slice(&Message::from(p::ShardAssignment { num_shards: 1 }).encode());
    ctl_tx.write_all(&out).await.ok()?;
    let mut shard = conn.open_uni().await.ok()?;
    let header = p::StreamHeader {
        kind: p::StreamKind::Shard(0),
    };
    shard.write_all(&Message::from(header).encode()).await.ok()?;

    // Control-stream reader: answer pings; everything else is ignored.
    let (ctl_out, mut ctl_q) = mpsc::channel::<Bytes>(1024);
    let pong_out = ctl_out.clone();
    tokio::spawn(async move {
        while let Some(m) = read_frame(&mut ctl_rx, &mut dec).await {
            if let Message::Ping(ping) = m {
                let _ = pong_out
                    .send(Message::from(p::Pong { nonce: ping.nonce }).encode())
                    .await;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(b) = ctl_q.recv().await {
            if ctl_tx.write_all(&b).await.is_err() {
                return;
            }
        }
    });

    let mut nick = nick;
    let mut cmds = conn.accept_uni().await.ok()?;
    let mut dec = Decoder::default();
    let Message::StreamHeader(_) = read_frame(&mut cmds, &mut dec).await? else {
        return None;
    };
    let next = |room: &str| {
        let mut o = offsets.lock().unwrap();
        let n = o.entry(room.to_owned()).or_insert(0);
        let v = *n;
        *n += 1;
        v
    };
    let mut msg_id = 0;
    while let Some(m) = read_frame(&mut cmds, &mut dec).await {
        let (reply, event): (Message, Option<Message>) = match m {
            Message::Join(j) => {
                let offset = next(&j.room);
                let info = p::RoomInfo {
                    name: j.room.clone(),
                    kind: p::RoomKind::Group,
                    members: 1,
                };
                let joined = p::Joined {
                    req: j.req,
                    room: info,
                    role: p::Role::Member,
                    offset,
                    members: vec![],
                };
                let ev = p::MemberJoined {
                    room: j.room,
                    offset,
                    user,
                    nick: nick.clone(),
                    role: p::Role::Member,
                };
                (joined.into(), Some(ev.into()))
            }
            Message::Send(s) if s.text == "fail" => {
                (p::Error::reply(s.req, ErrorCode::Forbidden, "no"), None)
            }
            Message::Send(s) => {
                let offset = next(&s.room);
                msg_id += 1;
                let ack = p::MessageAck {
                    req: s.req,
                    room: s.room.clone(),
                    id: msg_id,
                    offset,
                };
                let ev = p::RoomMessage {
                    room: s.room,
                    offset,
                    id: msg_id,
                    author: user,
                    nick: nick.clone(),
                    ts_ms: 0,
                    text: s.text,
                };
                (ack.into(), Some(ev.into()))
            }
            Message::SetNick(n) => {
                nick = n.nick.clone();
                (
                    p::NickOk {
                        req: n.req,
                        nick: n.nick,
                    }
                    .into(),
                    None,
                )
            }
            Message::ListRooms(l) => {
                let rooms = offsets
                    .lock()
                    .unwrap()
                    .keys()
                    .map(|name| p::RoomInfo {
                        name: name.clone(),
                        kind: p::RoomKind::Group,
                        members: 1,
                    })
                    .collect();
                (p::RoomList { req: l.req, rooms }.into(), None)
            }
            Message::ListUsers(l) => (p::Error::reply(l.req, ErrorCode::NoSuchRoom, "no room"), None),
            other => match other.request_id() {
                Some(req) => (p::Error::reply(req, ErrorCode::Unsupported, "fake"), None),
                None => continue,
            },
        };
        // Room event first, like the real hub (publish, then ack).
        if let Some(ev) = event {
            shard.write_all(&ev.encode()).await.ok()?;
        }
        ctl_out.send(reply.encode()).await.ok()?;
    }
    Some(())
}

async fn next_event(events: &mut garou_client::Events) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("event in time")
        .expect("stream open")
}

async fn wait_for(events: &mut garou_client::Events, mut f: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
    loop {
        let ev = next_event(events).await;
        if f(&ev) {
            return ev;
        }
    }
}

#[tokio::test]
async fn handshake_join_send_and_close() {
    let fake = Fake::start().await;
    let (client, mut events) = connect(fake.opts("alice")).await.unwrap();
    assert_eq!(client.nick(), "alice");
    assert_eq!(client.user(), 101);
    assert!(client.is_connected());
    let ev = next_event(&mut events).await;
    assert!(matches!(ev, ClientEvent::Session(Event::Ready { .. })), "{ev:?}");

    let info = client.join("general").await.unwrap();
    assert_eq!(info.room.name, "general");
    let sent = client.send("general", "hello").await.unwrap();
    assert_eq!((sent.room.as_str(), sent.offset), ("general", 1));
    let ev = wait_for(&mut events, |e| e.room_message().is_some()).await;
    let m = ev.room_message().unwrap();
    assert_eq!((m.nick.as_str(), m.text.as_str()), ("alice", "hello"));

    // Server errors come back as Failure; other replies map to their types.
    let err = client.send("general", "fail").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let rooms = client.list_rooms().await.unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(client.set_nick("alicia").await.unwrap(), "alicia");
    assert_eq!(client.nick(), "alicia");

    client.close().await;
    assert!(!client.is_connected());
    // The event stream ends after close.
    while let Some(_ev) = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
    {}
    assert!(matches!(
        client.send("general", "late").await,
        Err(ClientError::Closed)
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.closes.lock().unwrap().as_slice(), &[(0, "bye".to_owned())]);
}

#[tokio::test]
async fn pipelined_sends_keep_order() {
    let fake = Fake::start().await;
    let (client, mut events) = connect(fake.opts("bob")).await.unwrap();
    client.join("r").await.unwrap();
    let reader = tokio::spawn(async move {
        let mut texts = Vec::new();
        while texts.len() < 500 {
            if let Some(m) = next_event(&mut events).await.room_message() {
                texts.push(m.text.clone());
            }
        }
        texts
    });
    let mut acks = Vec::new();
    for i in 0..500 {
        acks.push(client.send("r", format!("m{i}")).submit().await);
    }
    let mut offsets = Vec::new();
    for a in acks {
        offsets.push(a.await.unwrap().offset);
    }
    assert_eq!(offsets, (1..=500).collect::<Vec<u64>>());
    let texts = reader.await.unwrap();
    assert_eq!(texts, (0..500).map(|i| format!("m{i}")).collect::<Vec<_>>());
    client.close().await;
}

#[tokio::test]
async fn reconnects_and_rejoins() {
    let fake = Fake::start().await;
    let (client, mut events) = connect(fake.opts("carol")).await.unwrap();
    client.join("lobby").await.unwrap();
    client.set_nick("caroline").await.unwrap();
    fake.kick();
    let ev = wait_for(&mut events, |e| matches!(e, ClientEvent::Disconnected { .. })).await;
    let ClientEvent::Disconnected { reason } = ev else {
        unreachable!()
    };
    assert!(reason.contains("restarting"), "{reason}");
    let ev = wait_for(&mut events, |e| matches!(e, ClientEvent::Reconnected { .. })).await;
    let ClientEvent::Reconnected { session, nick, .. } = ev else {
        unreachable!()
    };
    assert_eq!(session, 2);
    assert_eq!(nick, "caroline", "reconnect keeps the changed nick");
    let ev = wait_for(&mut events, |e| {
        matches!(e, ClientEvent::Session(Event::Rejoined { .. }))
    })
    .await;
    let ClientEvent::Session(Event::Rejoined { room, result }) = ev else {
        unreachable!()
    };
    assert_eq!(room, "lobby");
    assert!(result.is_ok());
    assert_eq!(client.session_id(), 2);
    let sent = client.send("lobby", "back").await.unwrap();
    assert_eq!(sent.room, "lobby");
    client.close().await;
}

#[tokio::test]
async fn refused_and_bad_trust() {
    let fake = Fake::start().await;
    match connect(fake.opts("taken")).await {
        Err(ClientError::Refused(f)) => assert_eq!(f.message, "nick in use"),
        other => panic!("{other:?}"),
    }
    let wrong = fake.opts("dave").trust(Trust::CertHash([0; 32]));
    assert!(matches!(connect(wrong).await, Err(ClientError::Connect(_))));
    // Insecure accepts the self-signed certificate; System does not.
    let (c, _ev) = connect(fake.opts("dave").trust(Trust::Insecure)).await.unwrap();
    c.close().await;
    let system = fake.opts("erin").trust(Trust::System);
    assert!(matches!(connect(system).await, Err(ClientError::Connect(_))));
    drop(fake.endpoint);
}

#[tokio::test]
async fn falls_back_to_next_server() {
    let fake = Fake::start().await;
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut o = fake.opts("frank");
    o.servers.insert(0, dead.local_addr().unwrap().to_string());
    o.connect_timeout = Duration::from_millis(300);
    let (c, _ev) = connect(o).await.unwrap();
    assert_eq!(c.nick(), "frank");
    c.close().await;
}

#[tokio::test]
async fn replies_flow_while_events_back_up() {
    let fake = Fake::start().await;
    let mut o = fake.opts("gina");
    o.event_buffer = 4;
    let (client, mut events) = connect(o).await.unwrap();
    client.join("r").await.unwrap();
    // Nobody reads events while 50 acks are awaited: room events pile up beyond the
    // buffer, yet replies on the control stream keep resolving.
    for i in 0..50 {
        client.send("r", format!("m{i}")).await.unwrap();
    }
    // Then every event still arrives, in order.
    let mut texts = Vec::new();
    while texts.len() < 50 {
        if let Some(m) = next_event(&mut events).await.room_message() {
            texts.push(m.text.clone());
        }
    }
    assert_eq!(texts, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
    client.close().await;
}

#[tokio::test]
async fn close_flushes_what_was_handed_off() {
    let fake = Fake::start().await;
    let (client, _events) = connect(fake.opts("hank")).await.unwrap();
    client.join("flush").await.unwrap();
    let mut pending = Vec::new();
    for i in 0..20 {
        pending.push(client.send("flush", format!("m{i}")).submit().await);
    }
    client.close().await;
    // Replies that had not arrived by the close resolve as Closed, never hang.
    for p in pending {
        assert!(matches!(p.await, Ok(_) | Err(ClientError::Closed)));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The join took offset 0; every send reached the server before the close.
    assert_eq!(fake.offsets.lock().unwrap()["flush"], 21);
}
