//! Observability and operations against a real gateway: `/metrics` (every documented
//! series present, values moving with traffic), `/ready` and `/health`, the admin API
//! (token, listings, kick, close a room) and the TLS reload.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use garou_client::{connect, ClientEvent, Trust};
use garou_protocol::{ClientConfig, ErrorCode, Event, Message};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-admin-token-0123456789";

struct Response {
    status: u16,
    body: String,
}

impl Response {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
async fn http(addr: SocketAddr, method: &str, target: &str, token: Option<&str>, body: &str) -> Response {
    let mut tcp = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("HTTP connect in time")
        .expect("HTTP connect");
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "this helper reads plain bodies only"
    );
    Response {
        status,
        body: body.to_owned(),
    }
}

/// `series{labels} value` lines of a scrape, keyed by everything before the value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

#[tokio::test]
async fn metrics_serve_every_documented_series_and_move_with_traffic() {
    let gw = gateway(|_| {}).await;
    let (alice, _a_events) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    alice.join("lobby").await.unwrap();
    bob.join("lobby").await.unwrap();
    alice.send("lobby", "hello bob").await.unwrap();
    wait_message(&mut b_events, "hello bob").await;
    // A browser-style session over the WebSocket fallback.
    let (mut carol, mut out) = common::driven::websocket(&gw, ClientConfig::with_nick("carol")).await;
    carol
        .until(&mut out, "ready", |e| {
            matches!(e, Event::Ready { .. }).then_some(())
        })
        .await;
    carol.request(&mut out, |s, now| s.join("lobby", now)).await;
    // An Error reply, counted by its code.
    let refused = alice.send("nowhere", "hi").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NoSuchRoom), "{refused:?}");

    let scrape = http(gw.http_addr, "GET", "/metrics", None, "").await;
    assert_eq!(scrape.status, 200);
    let text = scrape.body;
    // Every series the docs list is served, and the docs list every series of the code.
    let docs_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let docs: String = ["README.md"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(docs_dir.join(f)).ok())
        .collect();
    for s in garou_gateway::metrics::SERIES {
        assert!(
            text.lines().any(|l| l.starts_with(s.name)),
            "{} missing from /metrics:\n{text}",
            s.name
        );
        assert!(
            docs.contains(&format!("`{}`", s.name)),
            "{} is not documented",
            s.name
        );
    }
    let v = samples(&text);
    let get = |k: &str| *v.get(k).unwrap_or_else(|| panic!("no sample {k}:\n{text}"));
    assert!(get(r#"garou_messages_in_total{kind="Send"}"#) >= 2.0);
    assert!(get(r#"garou_messages_in_total{kind="Join"}"#) >= 2.0);
    assert!(get(r#"garou_messages_out_total{kind="RoomMessage"}"#) >= 2.0);
    assert!(get("garou_fanout_deliveries_total") >= 2.0);
    assert!(get("garou_fanouts_total") >= 1.0);
    assert_eq!(
        get(r#"garou_sessions{transport="quic"}"#),
        2.0,
        "sessions are this gateway's"
    );
    assert!(get(r#"garou_connections{transport="quic"}"#) >= 2.0);
    assert_eq!(get(r#"garou_sessions{transport="websocket"}"#), 1.0);
    assert_eq!(get(r#"garou_sessions{transport="webtransport"}"#), 0.0);
    assert!(get(r#"garou_bytes_in_total{transport="websocket"}"#) > 0.0);
    assert!(get(r#"garou_bytes_out_total{transport="websocket"}"#) > 0.0);
    assert!(get(r#"garou_handshakes_total{result="ok"}"#) >= 2.0);
    assert!(get(r#"garou_bytes_in_total{transport="quic"}"#) > 0.0);
    assert!(get(r#"garou_bytes_out_total{transport="quic"}"#) > 0.0);
    assert!(get(r#"garou_errors_total{code="NoSuchRoom"}"#) >= 1.0);
    assert!(get(r#"garou_store_seconds_count{op="commit"}"#) >= 1.0);
    assert!(get("garou_publish_delivery_seconds_count") >= 1.0);
    assert_eq!(get("garou_rooms"), 1.0);
    assert_eq!(get("garou_room_members"), 3.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn ready_until_shutdown_begins_and_health_meanwhile() {
    let gw = gateway(|c| c.unready_delay_secs = 3).await;
    let ready = http(gw.http_addr, "GET", "/ready", None, "").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(http(gw.http_addr, "GET", "/health", None, "").await.status, 200);

    let addr = gw.http_addr;
    let stopping = tokio::spawn(gw.shutdown());
    // While it waits before telling sessions, the gateway still answers: unready, alive.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = http(addr, "GET", "/ready", None, "").await;
        if r.status == 503 {
            assert_eq!(r.json()["status"], "shutting down");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/ready never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(http(addr, "GET", "/health", None, "").await.status, 200);
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn admin_api_needs_its_token() {
    // No token configured: the API does not exist.
    let open = gateway(|_| {}).await;
    assert_eq!(
        http(open.http_addr, "GET", "/api/admin/stats", None, "")
            .await
            .status,
        404
    );
    assert_eq!(
        http(open.http_addr, "GET", "/api/admin/stats", Some(TOKEN), "")
            .await
            .status,
        404
    );
    open.shutdown().await;

    let gw = gateway(|c| c.admin.token = Some(TOKEN.into())).await;
    let addr = gw.http_addr;
    for (method, path) in [
        ("GET", "/api/admin/stats"),
        ("GET", "/api/admin/connections"),
        ("GET", "/api/admin/rooms"),
        ("DELETE", "/api/admin/rooms/lobby"),
        ("POST", "/api/admin/users/alice/kick"),
    ] {
        assert_eq!(
            http(addr, method, path, None, "").await.status,
            401,
            "{method} {path}"
        );
        let wrong = http(addr, method, path, Some("test-admin-token-0123456780"), "").await;
        assert_eq!(wrong.status, 401, "{method} {path}");
        let short = http(addr, method, path, Some("test"), "").await;
        assert_eq!(short.status, 401, "{method} {path}");
    }
    let stats = http(addr, "GET", "/api/admin/stats", Some(TOKEN), "").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let stats = stats.json();
    assert_eq!(stats["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(stats["sessions"], 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_lists_connections_and_rooms_and_kicks_a_user() {
    let gw = gateway(|c| c.admin.token = Some(TOKEN.into())).await;
    let addr = gw.http_addr;
    let mut o = options(&gw, "alice");
    o.reconnect = false;
    let (alice, mut events) = tokio::time::timeout(WAIT, connect(o)).await.unwrap().unwrap();
    alice.join("lobby").await.unwrap();
    alice.send("lobby", "hi").await.unwrap();

    let list = http(addr, "GET", "/api/admin/connections", Some(TOKEN), "").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    let conns = list["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{list}");
    let c = &conns[0];
    assert_eq!(c["nick"], "alice");
    assert_eq!(c["user"], alice.user());
    assert_eq!(c["transport"], "quic");
    assert!(c["remote"].as_str().unwrap().starts_with("127.0.0.1:"), "{c}");
    assert!(c["connected_since_ms"].as_u64().unwrap() > 0);
    assert_eq!(c["rooms"], serde_json::json!(["lobby"]));

    let rooms = http(addr, "GET", "/api/admin/rooms", Some(TOKEN), "")
        .await
        .json();
    let lobby = &rooms["rooms"][0];
    assert_eq!(lobby["name"], "lobby");
    assert_eq!(lobby["kind"], "group");
    assert_eq!(lobby["members"], 1);
    assert_eq!(lobby["online"], 1);
    assert_eq!(lobby["hot"], false);
    assert_eq!(lobby["last_offset"], 2, "MemberJoined, then the message");

    let missing = http(addr, "POST", "/api/admin/users/nobody/kick", Some(TOKEN), "").await;
    assert_eq!(missing.status, 404);
    let kick = http(
        addr,
        "POST",
        "/api/admin/users/alice/kick",
        Some(TOKEN),
        r#"{"reason":"spamming"}"#,
    )
    .await;
    assert_eq!(kick.status, 200, "{}", kick.body);
    assert_eq!(kick.json()["closed"], 1);
    let why = wait_for(&mut events, "the fatal error", |ev| match ev {
        ClientEvent::Session(Event::Error(f)) => Some(f.clone()),
        _ => None,
    })
    .await;
    assert_eq!(why.code, ErrorCode::Kicked);
    assert_eq!(why.message, "spamming");
    wait_for(&mut events, "Disconnected", |ev| {
        matches!(ev, ClientEvent::Disconnected { .. }).then_some(())
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.hub.connection_count() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "alice is still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = samples(&http(addr, "GET", "/metrics", None, "").await.body);
    assert!(metrics[r#"garou_errors_total{code="Kicked"}"#] >= 1.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_closes_a_room() {
    let gw = gateway(|c| c.admin.token = Some(TOKEN.into())).await;
    let addr = gw.http_addr;
    let (alice, mut a_events) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    alice.join("doomed").await.unwrap();
    bob.join("doomed").await.unwrap();
    alice.join("kept").await.unwrap();
    alice.send("doomed", "last words").await.unwrap();
    wait_message(&mut b_events, "last words").await;
    let before = http(addr, "GET", "/api/rooms/doomed/messages", Some(TOKEN), "").await;
    assert_eq!(before.json()["messages"].as_array().unwrap().len(), 1);

    let closed = http(addr, "DELETE", "/api/admin/rooms/doomed", Some(TOKEN), "").await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    let offset = closed.json()["offset"].as_u64().unwrap();
    for events in [&mut a_events, &mut b_events] {
        let (room, at, by) = wait_for(events, "RoomDeleted", |ev| match room_event(ev) {
            Some((Message::RoomDeleted(d), _)) => Some((d.room.clone(), d.offset, d.by)),
            _ => None,
        })
        .await;
        assert_eq!((room.as_str(), at, by), ("doomed", offset, 0));
    }
    let rooms = http(addr, "GET", "/api/admin/rooms", Some(TOKEN), "")
        .await
        .json();
    let names: Vec<&str> = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(
        http(addr, "GET", "/api/rooms/doomed/messages", Some(TOKEN), "")
            .await
            .status,
        404
    );
    let again = http(addr, "DELETE", "/api/admin/rooms/doomed", Some(TOKEN), "").await;
    assert_eq!(again.status, 404);
    // Gone from the store too, not only from memory.
    let store = gw.hub.store();
    assert!(store
        .messages("doomed", None, None, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store.events("doomed", 0, offset).await.unwrap().is_empty());
    let stored: Vec<String> = store.rooms().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(stored, ["kept"]);
    // The name is free again, and the new room starts afresh.
    let info = alice.join("doomed").await.unwrap();
    assert_eq!(info.offset, 1, "{info:?}");
    gw.shutdown().await;
}

/// A fresh self-signed certificate for localhost in `dir` (cert.pem, key.pem); its hash.
fn write_cert(dir: &std::path::Path) -> [u8; 32] {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.key_pair.serialize_pem()).unwrap();
    Sha256::digest(c.cert.der()).into()
}

#[tokio::test]
async fn tls_reload_serves_the_new_certificate_and_keeps_the_old_on_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let gw = gateway(|c| {
        c.cert = Some(dir.path().join("cert.pem"));
        c.key = Some(dir.path().join("key.pem"));
    })
    .await;
    assert_eq!(gw.cert_sha256, first);
    let pinned = |hash: [u8; 32], nick: &str| {
        let mut o = options(&gw, nick).trust(Trust::CertHash(hash));
        o.reconnect = false;
        tokio::time::timeout(WAIT, connect(o))
    };
    let (old, _old_events) = pinned(first, "early")
        .await
        .unwrap()
        .expect("the first certificate");

    let second = write_cert(dir.path());
    assert_eq!(gw.reload_tls().unwrap(), second);
    assert_eq!(gw.cert_sha256_now(), second);
    pinned(second, "late")
        .await
        .unwrap()
        .expect("new connections get the new certificate");
    assert!(
        pinned(first, "stale").await.unwrap().is_err(),
        "the old certificate is no longer served"
    );
    let hash = http(gw.http_addr, "GET", "/cert-hash", None, "").await.json();
    assert_eq!(hash["sha256"], hex::encode(second));
    // The connection made before the reload lives on.
    old.join("lobby").await.expect("the old connection still works");

    // Broken files: the reload fails and the current certificate stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    assert!(gw.reload_tls().is_err());
    assert_eq!(gw.cert_sha256_now(), second);
    pinned(second, "later")
        .await
        .unwrap()
        .expect("still the second certificate");
    gw.shutdown().await;
}
