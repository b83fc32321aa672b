//! The HTTP listener against hostile and curious clients: history needs the protocol's
//! identity and membership, cross-origin reads are off unless configured, half-sent
//! requests are closed, and connection caps per IP and in total refuse at accept while
//! other clients are still served.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use garou_client::{ClientError, ErrorCode};
use garou_gateway::server::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ADMIN: &str = "admin-token-0123456789";

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Response {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A TCP connection to the gateway's HTTP port from `source` (a loopback address).
async fn tcp_from(gw: &Gateway, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(WAIT, socket.connect(gw.http_addr))
        .await
        .expect("TCP connect in time")
        .expect("TCP connect")
}

/// One GET on a fresh connection from 127.0.0.1 with extra headers.
async fn get(gw: &Gateway, target: &str, headers: &[(&str, &str)]) -> Response {
    get_from(gw, "127.0.0.1", target, headers)
        .await
        .expect("an HTTP response")
}

/// One GET from `source`; `None` when the server closed the connection without answering.
async fn get_from(gw: &Gateway, source: &str, target: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let mut tcp = tcp_from(gw, source).await;
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = tcp.write_all(head.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("the server answers or closes in time");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    })
}

fn messages(r: &Response) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

// ------------------------------------------------------------------ item 2: who reads history

#[tokio::test]
async fn http_history_needs_an_identity_and_membership() {
    let gw = gateway(|c| c.admin.token = Some(ADMIN.into())).await;
    let (alice, _ae) = client(&gw, "alice").await;
    let (bob, mut be) = client(&gw, "bob").await;
    let (carol, _ce) = client(&gw, "carol").await;
    let dm = alice.direct("bob", "our secret").await.unwrap().room;
    wait_message(&mut be, "our secret").await;
    alice.join("club").await.unwrap();
    alice.send("club", "club news").await.unwrap();
    // The tickets their sessions would get in Welcome (the same registry).
    let [a_t, b_t, c_t] = [&alice, &bob, &carol].map(|c| gw.hub.uploads().issue(c.user()));
    let dm_url = format!("/api/rooms/{dm}/messages");
    let bearer = |t: &str| format!("Bearer {t}");

    let anon = get(&gw, &dm_url, &[]).await;
    assert_eq!(anon.status, 401, "no credentials: {}", anon.body);
    assert_eq!(anon.json()["error"], "unauthorized");
    let forged = get(&gw, &dm_url, &[("Authorization", &bearer(&"0".repeat(32)))]).await;
    assert_eq!(forged.status, 401, "an unknown ticket");
    let basic = get(&gw, &dm_url, &[("Authorization", "Basic YTpi")]).await;
    assert_eq!(basic.status, 401, "not a bearer credential");

    // Another user's ticket: as if the direct room did not exist.
    let other = get(&gw, &dm_url, &[("Authorization", &bearer(&c_t))]).await;
    let missing = get(
        &gw,
        "/api/rooms/dm:998:999/messages",
        &[("Authorization", &bearer(&c_t))],
    )
    .await;
    assert_eq!(
        (other.status, &other.json()["error"]),
        (404, &missing.json()["error"])
    );
    let other = get(&gw, &format!("{dm_url}?ticket={c_t}"), &[]).await;
    assert_eq!(other.status, 404, "the ticket in the query too");

    // Its members read it, by header or by query; the header wins over the query.
    assert_eq!(
        messages(&get(&gw, &dm_url, &[("Authorization", &bearer(&b_t))]).await),
        ["our secret"]
    );
    assert_eq!(
        messages(&get(&gw, &format!("{dm_url}?ticket={a_t}"), &[]).await),
        ["our secret"]
    );
    let both = get(
        &gw,
        &format!("{dm_url}?ticket={a_t}"),
        &[("Authorization", &bearer(&c_t))],
    )
    .await;
    assert_eq!(both.status, 404, "the header names the caller");

    // A group room: members only (403 otherwise); the admin token reads everything.
    let club = "/api/rooms/club/messages";
    let refused = get(&gw, club, &[("Authorization", &bearer(&b_t))]).await;
    assert_eq!(
        (refused.status, refused.json()["error"].as_str()),
        (403, Some("NotMember"))
    );
    assert_eq!(
        messages(&get(&gw, club, &[("Authorization", &bearer(&a_t))]).await),
        ["club news"]
    );
    assert_eq!(
        messages(&get(&gw, club, &[("Authorization", &bearer(ADMIN))]).await),
        ["club news"]
    );
    assert_eq!(
        messages(&get(&gw, &dm_url, &[("Authorization", &bearer(ADMIN))]).await),
        ["our secret"]
    );

    // A ticket dies with its session.
    gw.hub.uploads().revoke(&a_t);
    assert_eq!(
        get(&gw, club, &[("Authorization", &bearer(&a_t))]).await.status,
        401
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn http_history_accepts_the_protocols_tokens() {
    use garou_gateway::auth::{mint, now_secs, AuthConfig, Claims};
    const SECRET: &str = "history-secret";
    let gw = gateway(|c| {
        c.auth = AuthConfig {
            secret: Some(SECRET.into()),
            ..Default::default()
        }
    })
    .await;
    let token = |sub: &str, exp: u64| {
        mint(
            SECRET,
            &Claims {
                sub: sub.into(),
                name: None,
                exp,
                nbf: None,
                rooms: HashMap::new(),
                aud: None,
                iss: None,
            },
        )
        .unwrap()
    };
    let mut o = garou_client::ClientOptions::new(
        gw.quic_addr.to_string(),
        garou_client::Credentials::Token(token("ann", now_secs() + 60)),
    )
    .trust(garou_client::Trust::CertHash(gw.cert_sha256));
    o.reconnect = false;
    let (ann, _ae) = garou_client::connect(o).await.unwrap();
    ann.join("lobby").await.unwrap();
    ann.send("lobby", "hello").await.unwrap();
    drop(ann);

    let url = "/api/rooms/lobby/messages";
    let as_ann = get(
        &gw,
        url,
        &[(
            "Authorization",
            &format!("Bearer {}", token("ann", now_secs() + 60)),
        )],
    )
    .await;
    assert_eq!(
        messages(&as_ann),
        ["hello"],
        "a token's user, even with no session open"
    );
    let stranger = get(
        &gw,
        url,
        &[(
            "Authorization",
            &format!("Bearer {}", token("zed", now_secs() + 60)),
        )],
    )
    .await;
    assert_eq!(stranger.status, 403, "a valid token of someone who never joined");
    let expired = get(
        &gw,
        url,
        &[(
            "Authorization",
            &format!("Bearer {}", token("ann", now_secs() - 3600)),
        )],
    )
    .await;
    assert_eq!(expired.status, 401, "an expired token");
    gw.shutdown().await;
}

#[tokio::test]
async fn protocol_history_of_a_group_room_needs_membership() {
    let gw = gateway(|_| {}).await;
    let (alice, _ae) = client(&gw, "alice").await;
    let (mallory, _me) = client(&gw, "mallory").await;
    alice.join("club").await.unwrap();
    alice.send("club", "members only").await.unwrap();
    match mallory.history("club", None, None, 10).await {
        Err(ClientError::Failure(f)) => assert_eq!(f.code, ErrorCode::NotMember, "{}", f.message),
        other => panic!("a non-member read the history: {other:?}"),
    }
    let page = alice.history("club", None, None, 10).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    mallory.join("club").await.unwrap();
    assert_eq!(
        mallory
            .history("club", None, None, 10)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    gw.shutdown().await;
}

// ------------------------------------------------------------------ item 2: CORS

#[tokio::test]
async fn cross_origin_reads_are_off_unless_an_origin_is_configured() {
    let gw = gateway(|_| {}).await;
    let r = get(&gw, "/health", &[("Origin", "https://evil.example")]).await;
    assert_eq!(r.status, 200);
    assert!(
        !r.headers.contains_key("access-control-allow-origin"),
        "no CORS by default: {:?}",
        r.headers
    );
    gw.shutdown().await;

    let gw = gateway(|c| c.http_server.cors_origins = vec!["https://app.example".into()]).await;
    let r = get(&gw, "/health", &[("Origin", "https://app.example")]).await;
    assert_eq!(
        r.headers.get("access-control-allow-origin").map(String::as_str),
        Some("https://app.example")
    );
    let r = get(&gw, "/health", &[("Origin", "https://evil.example")]).await;
    assert!(
        !r.headers.contains_key("access-control-allow-origin"),
        "{:?}",
        r.headers
    );
    gw.shutdown().await;
}

// ------------------------------------------------------------------ item 3: slow and many

/// Whether the server closed `tcp` (EOF or reset) within `limit`, reading what it sends.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let gw = gateway(|c| c.http_server.header_timeout_secs = 1).await;
    let mut slow = tcp_from(&gw, "127.0.0.1").await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, WAIT).await,
        "a half-sent request is not closed"
    );
    // Idle (kept-alive) connections that never send a request go the same way.
    let mut idle = tcp_from(&gw, "127.0.0.1").await;
    assert!(
        closed_within(&mut idle, WAIT).await,
        "an idle connection is not closed"
    );
    assert_eq!(get(&gw, "/health", &[]).await.status, 200);
    gw.shutdown().await;
}

/// A kept-alive connection from `source` that has been served one request: accepted and
/// counted by the server, now idle.
async fn held(gw: &Gateway, source: &str) -> TcpStream {
    let mut tcp = tcp_from(gw, source).await;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !(got.starts_with(b"HTTP/1.1 200") && got.ends_with(b"}")) {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    tcp
}

/// Wait (bounded) until `/health` from `source` is answered again.
async fn served_again(gw: &Gateway, source: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(r) = get_from(gw, source, "/health", &[]).await {
            assert_eq!(r.status, 200);
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{source} is not served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_per_ip_cap_refuses_at_accept_while_other_clients_are_served() {
    let gw = gateway(|c| {
        c.http_server.max_connections_per_ip = 3;
        c.http_server.header_timeout_secs = 120;
    })
    .await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(held(&gw, "127.0.0.1").await);
    }
    assert!(
        get_from(&gw, "127.0.0.1", "/health", &[]).await.is_none(),
        "connection 4 from one IP is served past the per-IP cap"
    );
    let refused = &gw.http_conns.stats().refused_per_ip;
    assert!(refused.load(std::sync::atomic::Ordering::Relaxed) >= 1, "counted");
    // Another address is served meanwhile.
    let other = get_from(&gw, "127.0.0.2", "/health", &[]).await.expect("served");
    assert_eq!(other.status, 200);
    // A slot freed is a slot again.
    conns.pop();
    served_again(&gw, "127.0.0.1").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn the_total_cap_refuses_at_accept_until_a_connection_closes() {
    let gw = gateway(|c| {
        c.http_server.max_connections = 3;
        c.http_server.header_timeout_secs = 120;
    })
    .await;
    let mut conns = vec![
        held(&gw, "127.0.0.1").await,
        held(&gw, "127.0.0.3").await,
        held(&gw, "127.0.0.4").await,
    ];
    assert!(
        get_from(&gw, "127.0.0.2", "/health", &[]).await.is_none(),
        "a fourth connection is served past the total cap"
    );
    let refused = &gw.http_conns.stats().refused_total;
    assert!(refused.load(std::sync::atomic::Ordering::Relaxed) >= 1, "counted");
    conns.pop();
    served_again(&gw, "127.0.0.2").await;
    gw.shutdown().await;
}
