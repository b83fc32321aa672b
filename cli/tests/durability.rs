//! The core promise: no acknowledged message is ever lost, and a reconnecting client sees
//! every message exactly once, in order, even across a `kill -9` of the real `garou serve`
//! binary mid-burst. (Recovery after being offline is in `gateway/tests/durability.rs`.)

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::serve::Serve;
use common::WAIT;
use garou_client::{connect, ClientEvent, ClientOptions, Trust};
use garou_protocol::{Event, Message, Offset};

/// The admin token of the spawned gateways: the HTTP history API reads every room with it.
const ADMIN_TOKEN: &str = "durability-admin-token";

fn spawn_server(data: &std::path::Path, quic: &str) -> Serve {
    Serve::start(
        env!("CARGO_BIN_EXE_garou"),
        data,
        quic,
        &[("GAROU_ADMIN__TOKEN", ADMIN_TOKEN)],
    )
}

/// Every message of `room` from the HTTP history API, oldest first.
async fn history(http: &str, room: &str) -> Vec<(Offset, String)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let url = format!("http://{http}/api/rooms/{room}/messages?after={after}&limit=1000");
        let body: serde_json::Value = reqwest_get(&url).await;
        let page = body["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            return out;
        }
        for m in page {
            after = m["offset"].as_u64().unwrap();
            out.push((after, m["text"].as_str().unwrap().to_owned()));
        }
    }
}

/// A tiny HTTP GET (no client crate needed for one JSON call).
async fn reqwest_get(url: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

fn options(server: &str, nick: &str) -> ClientOptions {
    let mut o = ClientOptions::with_nick(server, nick).trust(Trust::Insecure); // new cert after restart
    o.backoff_min = Duration::from_millis(50);
    o.backoff_max = Duration::from_millis(300);
    // A killed gateway sends no close: the client notices after its 10 s idle timeout.
    o.request_timeout = Duration::from_secs(40);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_acknowledged_message() {
    let data = tempfile::tempdir().unwrap();
    let mut server = spawn_server(data.path(), "127.0.0.1:0");
    let quic = server.quic.clone();

    let (reader, mut reader_events) = connect(options(&quic, "reader")).await.unwrap();
    reader.join("burst").await.unwrap();

    const PUBLISHERS: usize = 3;
    const EACH: usize = 400;
    let acks = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (client, events) = connect(options(&quic, &format!("pub{p}"))).await.unwrap();
        client.join("burst").await.unwrap();
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            let _events = events;
            let mut pending = Vec::new();
            for i in 0..EACH {
                let text = format!("p{p}-{i:04}");
                pending.push((text.clone(), client.send("burst", text).submit().await));
            }
            let mut acked = Vec::new();
            for (text, p) in pending {
                match p.await {
                    Ok(_) => {
                        acks.fetch_add(1, Ordering::Relaxed);
                        acked.push(text);
                    }
                    Err(e) => eprintln!("{text}: {e}"),
                }
            }
            (client, acked)
        }));
    }
    // Crash mid-burst: once some acks are out, not all.
    let deadline = tokio::time::Instant::now() + WAIT;
    while acks.load(Ordering::Relaxed) < 100 {
        assert!(tokio::time::Instant::now() < deadline, "no acks before the crash");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let at_crash = acks.load(Ordering::Relaxed);
    let mut server = spawn_server(data.path(), &quic); // same port, same data
    let mut acked: HashSet<String> = HashSet::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (client, a) = tokio::time::timeout(Duration::from_secs(90), t)
            .await
            .unwrap()
            .unwrap();
        acked.extend(a);
        clients.push(client);
    }
    assert!(at_crash < PUBLISHERS * EACH, "the crash came mid-burst");

    // History: every acknowledged message exactly once, each publisher's in its order.
    let hist = history(&server.http, "burst").await;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, text) in &hist {
        *seen.entry(text.as_str()).or_default() += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "a message is in history twice");
    for a in &acked {
        assert_eq!(
            seen.get(a.as_str()),
            Some(&1),
            "acknowledged {a} is not in history"
        );
    }
    for p in 0..PUBLISHERS {
        let mine: Vec<&str> = hist
            .iter()
            .map(|(_, t)| t.as_str())
            .filter(|t| t.starts_with(&format!("p{p}-")))
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "publisher {p} out of order");
    }
    // Everything was eventually accepted (the clients re-sent what had no ack).
    assert_eq!(
        acked.len(),
        PUBLISHERS * EACH,
        "only {} of the sends were acknowledged",
        acked.len()
    );
    assert_eq!(hist.len(), PUBLISHERS * EACH);

    // The reader saw every message exactly once, in offset order, across the crash.
    let want: HashSet<&str> = hist.iter().map(|(_, t)| t.as_str()).collect();
    let mut got: Vec<(Offset, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() {
        let ev = tokio::time::timeout_at(deadline, reader_events.next())
            .await
            .unwrap_or_else(|_| panic!("reader saw {} of {}", got.len(), want.len()))
            .unwrap();
        if let ClientEvent::Session(Event::Room {
            event: Message::RoomMessage(m),
            ..
        }) = ev
        {
            got.push((m.offset, m.text));
        }
    }
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "reader saw messages out of order or twice"
    );
    let got_set: HashSet<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(got_set, want, "reader missed or invented messages");
    assert_eq!(got, hist, "reader and history agree on offsets");

    for c in clients {
        c.close().await;
    }
    reader.close().await;
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
