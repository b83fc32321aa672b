//! The HTTP API's query strings go through `garou_gateway::http::query` (the parsers the fuzz
//! target `http_query` drives): a malformed or oversized query gets a JSON 400 naming the
//! problem, on the history API and on both upload endpoints; a well-formed one is served.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET`/`POST` `target` on a fresh connection: the status and the body.
async fn request(gw: &garou_gateway::server::Gateway, method: &str, target: &str) -> (u16, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(gw.http_addr).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let status = String::from_utf8_lossy(&raw[..split])
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (status, raw[split + 4..].to_vec())
}

/// The `message` of a JSON 400, which must mention `needle`.
fn bad_request(reply: (u16, Vec<u8>), needle: &str) {
    let (status, body) = reply;
    assert_eq!(status, 400, "body {:?}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&body)));
    let message = json["message"].as_str().expect("a message");
    assert!(
        message.contains(needle),
        "{message:?} does not mention {needle:?}"
    );
}

#[tokio::test]
async fn malformed_and_oversized_queries_get_a_json_400() {
    let gw = gateway(|_| {}).await;
    let history = "/api/rooms/lobby/messages";
    bad_request(
        request(&gw, "GET", &format!("{history}?limit=1&limit=2")).await,
        "duplicate",
    );
    bad_request(
        request(&gw, "GET", &format!("{history}?after=-1")).await,
        "bad query",
    );
    let long = format!("{history}?x={}", "a".repeat(5000));
    bad_request(request(&gw, "GET", &long).await, "2048");

    let upload = "/api/uploads/0123456789abcdef0123456789abcdef";
    bad_request(
        request(&gw, "GET", &format!("{upload}?ticket=a&ticket=b")).await,
        "duplicate",
    );
    bad_request(
        request(&gw, "POST", "/api/uploads?ticket=a&name=x&name=y").await,
        "duplicate",
    );
    let long = format!("/api/uploads?ticket={}", "t".repeat(5000));
    bad_request(request(&gw, "POST", &long).await, "2048");

    // Well-formed queries still reach the handlers: unknown parameters are ignored.
    let (status, _) = request(&gw, "GET", &format!("{history}?after=0&limit=5&utm=1")).await;
    assert_ne!(status, 400);
    let (status, _) = request(&gw, "GET", &format!("{upload}?ticket=nope")).await;
    assert_eq!(status, 401, "an unknown ticket names nobody");
}
