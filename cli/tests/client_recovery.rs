//! The native client recovers by itself: it paces itself under the gateway's command rate
//! (never closed for its own sends or re-sends), rides out a gateway crash and restart
//! without losing or duplicating a message, stops with a typed error when the gateway's
//! certificate no longer matches its pin, uploads (resumably) and attaches files, and,
//! cut off abruptly, takes its own stale session (and nick) over at once with its resume
//! token.
//!
//! Timing is reported (printed), never asserted (except as a premise: the resume test
//! checks the client came back before the stale session could have expired by itself).

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::serve::Serve;
use common::*;
use garou_client::{
    connect, ClientError, ClientOptions, ConnectRetry, RateLimit, Trust, Update, UploadSource,
};
use garou_gateway::server::Gateway;
use garou_protocol::Message;
use tokio::time::{timeout, Instant};

/// Every text of `room`'s history, oldest first, read through the client.
async fn all_texts(client: &garou_client::Client, room: &str) -> Vec<String> {
    common::whole_history(client, room)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_sending_300_per_second_one_at_a_time_is_never_kicked() {
    // The gateway's default limits: 100 frames/s per session, bursts of 200.
    let gw = gateway(|_| {}).await;
    let (bot, mut events) = client(&gw, "bot").await;
    bot.join("flood").await.unwrap();
    const N: usize = 1200;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(3333));
    for i in 0..N {
        tick.tick().await;
        let sent = timeout(WAIT, bot.send("flood", format!("m{i}")))
            .await
            .unwrap_or_else(|_| panic!("send {i} answered in time"));
        sent.unwrap_or_else(|e| panic!("send {i} failed: {e}"));
    }
    let took = started.elapsed();
    println!(
        "{N} sends one at a time (asked at 300/s): {:.1} msg/s achieved, {} server throttles",
        N as f64 / took.as_secs_f64(),
        gw.limits.stats.throttles.load(Ordering::Relaxed)
    );
    assert!(bot.is_connected());
    assert_eq!(
        gw.limits.stats.rate_limited.load(Ordering::Relaxed),
        0,
        "closed for its rate"
    );
    while let Some(ev) = events.try_next() {
        assert!(
            !matches!(ev, garou_client::ClientEvent::Disconnected { .. }),
            "the bot lost its connection: {ev:?}"
        );
    }
    assert_eq!(all_texts(&bot, "flood").await.len(), N);
    bot.close().await;
    gw.shutdown().await;
}

// ------------------------------------------------------------------ crash and restart

fn spawn_server(data: &std::path::Path, quic: &str) -> Serve {
    Serve::start(env!("CARGO_BIN_EXE_garou"), data, quic, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_crash_and_restart_under_a_50_per_second_bot_loses_and_duplicates_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut server = spawn_server(data.path(), "127.0.0.1:0");
    let quic = server.quic.clone();
    // A restarted gateway has a new self-signed certificate: trust any for this test.
    let opts = ClientOptions::with_nick(&quic, "bot").trust(Trust::Insecure);
    let (bot, mut events) = connect(opts).await.unwrap();
    bot.join("steady").await.unwrap();

    // The app's event loop: every disconnect must be a crash, never a rate-limit close.
    let watcher = tokio::spawn(async move {
        let mut disconnects = Vec::new();
        while let Some(u) = events.next_update().await {
            match u {
                Update::Disconnected { error } => disconnects.push(error),
                Update::Stopped { error } => panic!("stopped: {error}"),
                _ => {}
            }
        }
        disconnects
    });

    // 50 msg/s, each send handed off at once and its ack collected by a task.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
    let sender = {
        let bot = bot.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for i in 0..500usize {
                tick.tick().await;
                let pending = bot.send("steady", format!("m{i}")).submit().await;
                let ack_tx = ack_tx.clone();
                tokio::spawn(async move {
                    let r = pending.await;
                    let _ = ack_tx.send((i, r, Instant::now()));
                });
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.child.kill().unwrap(); // kill -9: no close, no Shutdown
    let _ = server.child.wait();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _server = spawn_server(data.path(), &quic);
    let back = Instant::now();
    sender.await.unwrap();

    let mut acked = Vec::new();
    let mut first_ack_after_restart: Option<Instant> = None;
    for _ in 0..500 {
        let (i, r, at) = timeout(Duration::from_secs(60), ack_rx.recv())
            .await
            .expect("every send is answered")
            .unwrap();
        match r {
            Ok(_) => {
                acked.push(i);
                if at > back {
                    first_ack_after_restart = Some(first_ack_after_restart.map_or(at, |f| f.min(at)));
                }
            }
            Err(ClientError::QueueFull(_)) => {}
            Err(e) => panic!("send {i} failed: {e}"),
        }
    }
    if let Some(first) = first_ack_after_restart {
        println!(
            "recovery: gateway back {:.2}s after the kill; first ack {:.2}s after it was back",
            (back - killed).as_secs_f64(),
            (first - back).as_secs_f64()
        );
    }
    let texts = all_texts(&bot, "steady").await;
    let mut seen = std::collections::HashSet::new();
    for t in &texts {
        assert!(seen.insert(t.clone()), "{t} stored twice");
    }
    for i in &acked {
        assert!(seen.contains(&format!("m{i}")), "acked m{i} lost");
    }
    println!("{} of 500 acked, {} stored", acked.len(), texts.len());
    bot.close().await;
    let disconnects = watcher.await.unwrap();
    assert!(!disconnects.is_empty(), "the crash was noticed");
    for e in &disconnects {
        assert!(!e.to_string().contains("RateLimited"), "closed for its rate: {e}");
    }
}

// ------------------------------------------------------------------ certificate pin

/// A gateway on `addr` (the port a stopped one used) with data in `data`, once the port
/// is free again.
async fn restart_on(addr: std::net::SocketAddr, data: Option<std::path::PathBuf>) -> Gateway {
    let deadline = Instant::now() + WAIT;
    loop {
        let cfg = garou_gateway::config::ServerConfig {
            quic: addr,
            http: "127.0.0.1:0".parse().unwrap(),
            data: data
                .clone()
                .unwrap_or_else(|| tempfile::tempdir().unwrap().keep()),
            ..Default::default()
        };
        match Gateway::start(cfg).await {
            Ok(gw) => return gw,
            Err(e) if Instant::now() < deadline => {
                println!("restart: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("gateway restarts: {e}"),
        }
    }
}

#[tokio::test]
async fn a_certificate_pin_mismatch_is_a_typed_terminal_error() {
    let gw = gateway(|_| {}).await;
    // Even with a patient retry policy, a wrong pin is not retried.
    let o = options(&gw, "pinned")
        .trust(Trust::CertHash([7; 32]))
        .connect_retry(ConnectRetry::patient());
    match timeout(WAIT, connect(o)).await.expect("no retrying") {
        Err(ClientError::Certificate(why)) => {
            assert!(why.contains(&hex_of(gw.cert_sha256)), "{why}")
        }
        other => panic!("{other:?}"),
    }

    // Connected with the right pin; the gateway comes back with another certificate.
    let (c, mut events) = client(&gw, "pinned").await;
    c.join("r").await.unwrap();
    let (addr, pin) = (gw.quic_addr, gw.cert_sha256);
    gw.shutdown().await;
    let gw2 = restart_on(addr, None).await;
    assert_ne!(gw2.cert_sha256, pin, "a new self-signed certificate");
    let error = wait_update(&mut events, |u| match u {
        Update::Stopped { error } => Some(error),
        _ => None,
    })
    .await;
    assert!(matches!(error, ClientError::Certificate(_)), "{error:?}");
    assert!(events.next().await.is_none(), "the stream ends after Stopped");
    assert!(matches!(c.stopped(), Some(ClientError::Certificate(_))));
    match c.send("r", "after").await {
        Err(ClientError::Certificate(_)) => {}
        other => panic!("{other:?}"),
    }
    gw2.shutdown().await;
}

fn hex_of(b: [u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn wait_update<T>(events: &mut garou_client::Events, mut pick: impl FnMut(Update) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let u = tokio::time::timeout_at(deadline, events.next_update())
            .await
            .expect("update in time")
            .expect("events still open");
        if let Some(t) = pick(u) {
            return t;
        }
    }
}

// ------------------------------------------------------------------ uploads

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// GET `path` from the gateway's HTTP side; the body.
async fn http_get(gw: &Gateway, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.http_addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    timeout(WAIT, s.read_to_end(&mut buf)).await.unwrap().unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = &buf[split + 4..];
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

#[tokio::test]
async fn upload_and_attachment_round_trip() {
    let gw = gateway(|_| {}).await;
    let (alice, _a) = client(&gw, "alice").await;
    let (bob, mut b_events) = client(&gw, "bob").await;
    alice.join("files").await.unwrap();
    bob.join("files").await.unwrap();

    // From memory.
    let data = bytes(300_000, 1);
    let up = alice.upload(UploadSource::bytes("notes.txt", data.clone()), "text/plain");
    let progress = up.progress();
    let done = timeout(WAIT, up).await.expect("upload in time").expect("upload");
    assert_eq!(done.size, data.len() as u64);
    let p = *progress.borrow();
    assert_eq!(
        (p.sent, p.total, p.starts, p.resumed_from),
        (300_000, 300_000, 1, 0)
    );
    alice
        .send_with_attachment("files", "see attached", done.id.clone())
        .await
        .unwrap();
    let attachment = wait_for(&mut b_events, "the attachment", |ev| match room_event(ev) {
        Some((Message::RoomMessage(m), _)) if m.text == "see attached" => m.attachment.clone(),
        _ => None,
    })
    .await;
    assert_eq!(attachment, done.id);
    let got = http_get(&gw, &format!("{}?ticket={}", done.url, bob.ticket())).await;
    assert_eq!(got, data, "bob downloads what alice uploaded");

    // From a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    let file = bytes(70_000, 9);
    std::fs::write(&path, &file).unwrap();
    let up = timeout(WAIT, alice.upload(UploadSource::file(&path), "image/png"))
        .await
        .unwrap()
        .unwrap();
    alice
        .send_with_attachment("files", "a photo", up.id.clone())
        .await
        .unwrap();
    let got = http_get(&gw, &format!("{}?ticket={}", up.url, bob.ticket())).await;
    assert_eq!(got, file);

    // A refusal is typed: a content type the gateway does not accept.
    match alice
        .upload(UploadSource::bytes("x.bin", vec![1, 2, 3]), "application/x-nope")
        .await
    {
        Err(ClientError::Failure(f)) => assert_eq!(f.code, garou_protocol::ErrorCode::InvalidArgument),
        other => panic!("{other:?}"),
    }
    // And a missing file.
    match alice
        .upload(UploadSource::file(dir.path().join("nope")), "image/png")
        .await
    {
        Err(ClientError::Source(_)) => {}
        other => panic!("{other:?}"),
    }
    alice.close().await;
    bob.close().await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_interrupted_by_a_gateway_restart_resumes_where_it_stopped() {
    let data_dir = tempfile::tempdir().unwrap().keep();
    let dir = data_dir.clone();
    let gw = gateway(move |c| c.data = dir).await;
    let addr = gw.quic_addr;
    let mut o = ClientOptions::with_nick(addr.to_string(), "uploader").trust(Trust::Insecure);
    // Slow on purpose (20 chunks of 64 KiB per second), so the restart lands mid-way.
    o.rate = Some(RateLimit {
        per_sec: 20.0,
        burst: 5,
    });
    o.backoff_min = Duration::from_millis(100);
    o.backoff_max = Duration::from_millis(500);
    let (c, _events) = connect(o).await.unwrap();
    let data = bytes(4 * 1024 * 1024, 5);
    let up = c.upload(UploadSource::bytes("big.txt", data.clone()), "text/plain");
    let mut progress = up.progress();
    timeout(WAIT, progress.wait_for(|p| p.sent >= 1024 * 1024))
        .await
        .expect("a MiB goes out")
        .unwrap();
    gw.shutdown().await;
    let gw = restart_on(addr, Some(data_dir.clone())).await;
    let done = timeout(Duration::from_secs(60), up)
        .await
        .expect("upload in time")
        .expect("upload");
    let p = *progress.borrow();
    println!(
        "upload resumed at {} of {} bytes after {} starts",
        p.resumed_from, p.total, p.starts
    );
    assert_eq!(p.starts, 2, "{p:?}");
    assert!(p.resumed_from > 0, "started over instead of resuming: {p:?}");
    assert_eq!(done.size, data.len() as u64);
    c.join("r").await.unwrap();
    c.send_with_attachment("r", "big", done.id.clone()).await.unwrap();
    let got = http_get(&gw, &format!("{}?ticket={}", done.url, c.ticket())).await;
    assert!(got == data, "the resumed file is the original");
    c.close().await;
    gw.shutdown().await;
}

// ------------------------------------------------------------------ offline queue, connect retry

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_disconnected_wait_in_a_bounded_queue_and_go_out_after_the_reconnect() {
    let gw = gateway(|_| {}).await;
    let addr = gw.quic_addr;
    let mut o = ClientOptions::with_nick(addr.to_string(), "q").trust(Trust::Insecure);
    o.offline_queue = 5;
    o.backoff_min = Duration::from_millis(200);
    o.backoff_max = Duration::from_millis(500);
    let (c, mut events) = connect(o).await.unwrap();
    c.join("later").await.unwrap();
    gw.shutdown().await;
    wait_update(&mut events, |u| {
        matches!(u, Update::Disconnected { .. }).then_some(())
    })
    .await;
    let mut queued = Vec::new();
    for i in 0..5 {
        queued.push(c.send("later", format!("q{i}")).submit().await);
    }
    match c.send("later", "one too many").await {
        Err(ClientError::QueueFull(5)) => {}
        other => panic!("{other:?}"),
    }
    // Other requests are not queued: they say the client is disconnected.
    assert_eq!(c.list_rooms().await.unwrap_err(), ClientError::Disconnected);
    let gw = restart_on(addr, None).await;
    for p in queued {
        timeout(WAIT * 2, p)
            .await
            .expect("sent after the reconnect")
            .unwrap();
    }
    let texts = all_texts(&c, "later").await;
    assert_eq!(texts, ["q0", "q1", "q2", "q3", "q4"]);
    c.close().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn connect_retries_while_the_nick_is_still_taken() {
    let gw = gateway(|_| {}).await;
    let (old, _e) = client(&gw, "phoenix").await;
    let retry = ConnectRetry {
        attempts: 10,
        max_elapsed: Duration::from_secs(30),
    };
    let mut o = options(&gw, "phoenix").connect_retry(retry);
    o.backoff_min = Duration::from_millis(100);
    o.backoff_max = Duration::from_millis(400);
    let new = tokio::spawn(connect(o));
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.close().await;
    let (c, _events) = timeout(WAIT, new)
        .await
        .expect("connected in time")
        .unwrap()
        .unwrap();
    assert_eq!(c.nick(), "phoenix");
    c.close().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_are_terminal_even_with_a_patient_retry() {
    let gw = gateway(|c| c.auth.secret = Some("recovery-secret".into())).await;
    let mut o = options(&gw, "x").connect_retry(ConnectRetry::patient());
    o.credentials = garou_protocol::Credentials::Token("not-a-jwt".into());
    match timeout(WAIT, connect(o)).await.expect("no retrying") {
        Err(e @ ClientError::Refused(_)) => {
            assert_eq!(e.code(), Some(garou_protocol::ErrorCode::AuthFailed));
            assert!(e.is_terminal());
        }
        other => panic!("{other:?}"),
    }
    gw.shutdown().await;
}

// ------------------------------------------------------------------ resume token

/// A UDP relay in front of the gateway, one upstream socket per client address (as a
/// NAT would). [`CutRelay::cut`] drops every packet the gateway sends on the flows seen so
/// far: the client hears nothing more and declares the connection dead, with no close
/// either way, while the gateway (still hearing the client's keep-alives until then, then
/// silence) keeps the session as a client that vanished leaves it. Connections from new
/// addresses (each native connection binds its own socket) go through.
struct CutRelay {
    addr: std::net::SocketAddr,
    flows: std::sync::Arc<parking_lot::Mutex<Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CutRelay {
    async fn start(to: std::net::SocketAddr) -> CutRelay {
        use std::collections::HashMap;
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        use tokio::net::UdpSocket;
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let flows: Arc<parking_lot::Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let all = flows.clone();
        let task = tokio::spawn(async move {
            let mut by_client: HashMap<std::net::SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = [0u8; 2048];
            let mut downstream = tokio::task::JoinSet::new();
            loop {
                let Ok((n, from)) = front.recv_from(&mut buf).await else {
                    continue;
                };
                let up = match by_client.get(&from) {
                    Some(up) => up.clone(),
                    None => {
                        let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                        up.connect(to).await.unwrap();
                        let dead = Arc::new(AtomicBool::new(false));
                        all.lock().push(dead.clone());
                        let (up2, dead2, front2) = (up.clone(), dead.clone(), front.clone());
                        downstream.spawn(async move {
                            let mut buf = [0u8; 2048];
                            while let Ok(n) = up2.recv(&mut buf).await {
                                if !dead2.load(Ordering::Relaxed) {
                                    let _ = front2.send_to(&buf[..n], from).await;
                                }
                            }
                        });
                        by_client.insert(from, up.clone());
                        up
                    }
                };
                let _ = up.send(&buf[..n]).await;
            }
        });
        CutRelay { addr, flows, task }
    }

    /// Every connection through the relay so far hears nothing more from the gateway.
    fn cut(&self) {
        for dead in self.flows.lock().iter() {
            dead.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for CutRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sum of a Prometheus series' samples (every label set) whose line starts with
/// `prefix` (e.g. `garou_sessions{` or `garou_errors_total{code="SessionReplaced"`).
async fn metric(gw: &Gateway, prefix: &str) -> f64 {
    let body = String::from_utf8(http_get(gw, "/metrics").await).unwrap();
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_abruptly_takes_its_stale_session_over_at_once_with_its_resume_token() {
    // The gateway would keep a vanished client's session (and nick) for ten minutes.
    let gw = gateway(|c| c.idle_timeout_secs = 600).await;
    let relay = CutRelay::start(gw.quic_addr).await;
    let mut o = garou_client::ClientOptions::with_nick(relay.addr.to_string(), "phoenix")
        .trust(Trust::CertHash(gw.cert_sha256));
    // Dead after 3 s of silence. QUIC applies the smaller idle timeout on both sides, so
    // the gateway gives the stale session up by itself no sooner than 3 s after the last
    // keep-alive of the client, which sends them until it gives up: 6 s after the cut.
    o.keep_alive = Duration::from_millis(500);
    o.idle_timeout = Duration::from_secs(3);
    o.backoff_min = Duration::from_millis(100);
    o.backoff_max = Duration::from_millis(400);
    let (c, mut events) = timeout(WAIT, connect(o)).await.unwrap().unwrap();
    let me = c.user();
    c.join("lobby").await.unwrap();
    let (bob, mut b_events) = client(&gw, "bob").await;
    bob.join("lobby").await.unwrap();
    c.send("lobby", "before the cut").await.unwrap();
    assert_eq!(metric(&gw, "garou_sessions").await, 2.0);

    // Phoenix's network half fails: nothing comes back from the gateway, no close.
    relay.cut();
    let cut = Instant::now();
    // Written into the dead connection: re-sent (same id) by the next session.
    let during = tokio::spawn({
        let c = c.clone();
        async move { c.send("lobby", "during the cut").await }
    });
    // Without the token the nick is refused while the stale session lingers.
    match connect(options(&gw, "phoenix")).await {
        Err(e) => assert_eq!(e.code(), Some(garou_protocol::ErrorCode::NickUnavailable), "{e}"),
        Ok((other, _)) => panic!("a second phoenix got in: {}", other.nick()),
    }

    // The client notices the dead path, reconnects with the token of its Welcome and
    // takes its own stale session over: its first attempt gets its nick and user back.
    let mut attempts = Vec::new();
    let mut noticed = None;
    let (user, nick) = loop {
        let ev = timeout(WAIT, events.next())
            .await
            .expect("reconnected in time")
            .expect("events go on");
        match ev {
            garou_client::ClientEvent::Disconnected { reason } => {
                assert!(!reason.contains("stopped for good"), "{reason}");
                noticed.get_or_insert(cut.elapsed());
            }
            garou_client::ClientEvent::Reconnecting { attempt, .. } => attempts.push(attempt),
            garou_client::ClientEvent::Reconnected { user, nick, .. } => break (user, nick),
            _ => {}
        }
    };
    let back = cut.elapsed();
    println!(
        "cut noticed after {:?}, back as {nick} after {back:?} (attempts {attempts:?})",
        noticed.expect("a Disconnected before the Reconnected"),
    );
    assert!(
        back < Duration::from_secs(6),
        "the premise: back while the stale session still held the nick ({back:?})"
    );
    assert_eq!(nick, "phoenix", "the same nick");
    assert_eq!(user, me, "the same user");
    assert_eq!(attempts, [1], "the first attempt took the stale session over");
    assert_eq!(c.nick(), "phoenix");
    // The stale session was closed (with SessionReplaced, which the cut path never
    // delivers), not left to linger: the gateway holds bob's session and phoenix's new
    // one only, not three.
    let deadline = Instant::now() + WAIT;
    loop {
        let sessions = metric(&gw, "garou_sessions").await;
        if sessions == 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sessions} sessions, the stale one lingers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its rooms and its unacked send came along: bob sees each message once, from
    // phoenix, and phoenix once among the members, online.
    timeout(WAIT, during)
        .await
        .expect("the send made during the cut is acked")
        .unwrap()
        .expect("acked");
    c.send("lobby", "after the cut").await.unwrap();
    wait_message(&mut b_events, "after the cut").await;
    assert_eq!(
        all_texts(&bob, "lobby").await,
        ["before the cut", "during the cut", "after the cut"]
    );
    let users = timeout(WAIT, bob.list_users("lobby")).await.unwrap().unwrap();
    let phoenixes: Vec<_> = users.iter().filter(|u| u.nick == "phoenix").collect();
    assert_eq!(phoenixes.len(), 1, "{users:?}");
    assert!(phoenixes[0].online, "{users:?}");
    c.close().await;
    bob.close().await;
    gw.shutdown().await;
}
