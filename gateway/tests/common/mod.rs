//! Shared harness for integration tests: a real gateway on a loopback UDP port and real
//! native clients over QUIC. Every wait is bounded.
#![allow(dead_code)]

pub mod cluster;
pub mod driven;
pub mod lines;
pub mod pg;
pub mod raw;
pub mod serve;

use std::net::SocketAddr;
use std::time::Duration;

use garou_client::{connect, Client, ClientEvent, ClientOptions, Events, Trust};
use garou_gateway::config::ServerConfig;
use garou_gateway::server::Gateway;
use garou_protocol::{Event, Message, StreamKind};

/// Where a gateway listens and which certificate it presents: an in-process [`Gateway`]
/// or a `garou serve` child process.
pub trait Target {
    /// The gateway's UDP address.
    fn quic_addr(&self) -> SocketAddr;
    /// SHA-256 of its certificate (DER).
    fn cert_sha256(&self) -> [u8; 32];
}

impl Target for Gateway {
    fn quic_addr(&self) -> SocketAddr {
        self.quic_addr
    }
    fn cert_sha256(&self) -> [u8; 32] {
        self.cert_sha256
    }
}

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// A gateway on 127.0.0.1 (ephemeral port) with `tweak` applied to the defaults.
pub async fn gateway(tweak: impl FnOnce(&mut ServerConfig)) -> Gateway {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut cfg = ServerConfig {
        quic: "127.0.0.1:0".parse().unwrap(),
        http: "127.0.0.1:0".parse().unwrap(),
        data: tempfile::tempdir().unwrap().keep(),
        ..ServerConfig::default()
    };
    tweak(&mut cfg);
    Gateway::start(cfg).await.expect("gateway starts")
}

/// Lift every command rate (per session, per user, per IP): for tests that flood on
/// purpose to reach another limit (a full queue, a slow consumer, a bench run).
pub fn lift_command_rates(c: &mut ServerConfig) {
    c.limits.commands_per_sec = 1_000_000.0;
    c.limits.command_burst = 1_000_000;
    c.limits.commands_per_sec_per_user = 1_000_000.0;
    c.limits.command_burst_per_user = 1_000_000;
    c.limits.commands_per_sec_per_ip = 1_000_000.0;
    c.limits.command_burst_per_ip = 1_000_000;
}

/// Options for `nick` pinned to this gateway's certificate.
pub fn options(gw: &Gateway, nick: &str) -> ClientOptions {
    ClientOptions::with_nick(gw.quic_addr.to_string(), nick).trust(Trust::CertHash(gw.cert_sha256))
}

/// A connected client.
pub async fn client(gw: &Gateway, nick: &str) -> (Client, Events) {
    tokio::time::timeout(WAIT, connect(options(gw, nick)))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Wait (bounded) for the first event `pick` maps to `Some`.
pub async fn wait_for<T>(
    events: &mut Events,
    what: &str,
    mut pick: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("events ended while waiting for {what}"));
        if let Some(t) = pick(&ev) {
            return t;
        }
    }
}

/// A room event from a client event.
pub fn room_event(ev: &ClientEvent) -> Option<(&Message, &StreamKind)> {
    match ev {
        ClientEvent::Session(Event::Room { event, via }) => Some((event, via)),
        _ => None,
    }
}

/// Wait for a chat message with this text; returns (author nick, offset, stream).
pub async fn wait_message(events: &mut Events, text: &str) -> (String, u64, StreamKind) {
    wait_for(events, &format!("message {text:?}"), |ev| match room_event(ev) {
        Some((Message::RoomMessage(m), via)) if m.text == text => {
            Some((m.nick.clone(), m.offset, via.clone()))
        }
        _ => None,
    })
    .await
}

/// `GET /ready` on the gateway's HTTP address: (status, body).
pub async fn ready(addr: SocketAddr) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let req = "GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_owned())
}

/// Every message of `room`'s history through `client`, oldest first (pages of 1,000).
pub async fn whole_history(client: &Client, room: &str) -> Vec<garou_client::StoredMessage> {
    let mut out = Vec::new();
    let mut after = Some(0); // oldest first
    loop {
        let page = tokio::time::timeout(WAIT, client.history(room, None, after, 1000))
            .await
            .expect("history in time")
            .expect("history");
        let Some(last) = page.messages.last() else {
            return out;
        };
        after = Some(last.offset);
        out.extend(page.messages);
    }
}
