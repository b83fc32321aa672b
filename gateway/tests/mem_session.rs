//! The real session and hub over the in-memory transport (the fuzz target's setup): a
//! handshake, a command, and a bad frame that closes the session with its code.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use garou_gateway::config::ServerConfig;
use garou_gateway::hub::{Hub, HubConfig};
use garou_gateway::store::sqlite::SqliteStore;
use garou_gateway::transport::mem::{MemConnection, MemRecv};
use garou_gateway::transport::{Connection, RecvStream, SendStream};
use garou_protocol::*;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

async fn hub(dir: &std::path::Path) -> (Arc<Hub>, Arc<ServerConfig>) {
    let cfg = ServerConfig {
        data: dir.to_owned(),
        ..ServerConfig::default()
    };
    let store = SqliteStore::open(dir).await.unwrap();
    let hub = Hub::open(HubConfig::from(&cfg), Arc::new(store)).await.unwrap();
    (hub, Arc::new(cfg))
}

/// Read control frames until one matches `want` (bounded).
async fn until(recv: &mut MemRecv, dec: &mut Decoder, want: impl Fn(&Message) -> bool) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            while let Some(f) = dec.next_frame().unwrap() {
                let m = Message::decode(&f).unwrap();
                if want(&m) {
                    return m;
                }
            }
            let chunk = recv.read_chunk().await.unwrap().expect("control stream open");
            dec.push(&chunk);
        }
    })
    .await
    .expect("frame in time")
}

fn frames(msgs: &[Message]) -> Vec<Bytes> {
    msgs.iter().map(Message::encode).collect()
}

#[tokio::test]
async fn session_over_memory_serves_commands_and_closes_on_a_bad_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, cfg) = hub(dir.path()).await;
    let (server, client) = MemConnection::pair();
    let session = tokio::spawn(garou_gateway::session::run(
        server,
        hub,
        cfg.clone(),
        CancellationToken::new(),
        garou_gateway::limits::Limits::new(&cfg)
            .admit(std::net::Ipv4Addr::LOCALHOST.into())
            .unwrap(),
    ));

    let (mut send, mut recv) = client.open_bi().await.unwrap();
    let mut dec = Decoder::default();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        client: "mem".into(),
        resume: Default::default(),
    };
    let auth = Auth {
        credentials: Credentials::Nick("ann".into()),
    };
    send.write_chunks(&mut frames(&[hello.into(), auth.into()]))
        .await
        .unwrap();
    until(&mut recv, &mut dec, |m| matches!(m, Message::AuthOk(_))).await;

    let mut commands = client.open_uni().await.unwrap();
    let header = StreamHeader {
        kind: StreamKind::Commands,
    };
    commands
        .write_chunks(&mut frames(&[header.into(), ListRooms { req: 9 }.into()]))
        .await
        .unwrap();
    until(&mut recv, &mut dec, |m| m.reply_to() == Some(9)).await;

    // A frame of an unknown type on the commands stream: an Error frame, then the close.
    commands
        .write_chunks(&mut [Bytes::from_static(&[0xEE, 0, 0, 0, 0])])
        .await
        .unwrap();
    let err = until(&mut recv, &mut dec, |m| matches!(m, Message::Error(_))).await;
    let Message::Error(err) = err else { unreachable!() };
    assert_eq!((err.req, err.code), (None, ErrorCode::BadFrame));
    // Reading the control stream to its end lets the server close at once.
    tokio::time::timeout(WAIT, async { while let Ok(Some(_)) = recv.read_chunk().await {} })
        .await
        .unwrap();
    tokio::time::timeout(WAIT, client.closed()).await.expect("closed");
    let info = client.close_info().unwrap();
    assert_eq!(info.code, ErrorCode::BadFrame.as_u16());
    assert!(!info.local);
    tokio::time::timeout(WAIT, session)
        .await
        .expect("session ends")
        .unwrap();
}
