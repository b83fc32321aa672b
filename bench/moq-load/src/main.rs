//! Load client for moq-relay, measuring what `garou bench fanout` measures.
//!
//! `moq-load fanout --url https://127.0.0.1:4443/ --clients 100 --rate 100 --size 64 --duration 10`
//! connects one publisher and `clients` subscriber sessions (one QUIC connection each, one shared
//! UDP endpoint), publishes one group of one frame per message (the chat-shaped use of MoQ: every
//! message is its own group, so none waits behind another), and prints one JSON line with
//! deliveries_per_sec, deliveries, published, lost, duplicated, p50/p95/p99/max latency in ms.
//!
//! `moq-load idle --url ... --connections 1000 --hold 20` opens that many subscribed sessions,
//! prints `READY n` once all are subscribed, and holds them so the harness can read the relay's RSS.
//!
//! The payload carries the sequence number and the send instant (microseconds since this process
//! started), so latency is measured on one clock. Runs on a current-thread runtime: the harness
//! pins the load to one core, like the Node load clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

const BROADCAST: &str = "bench";
const TRACK: &str = "room";
/// Sequence numbers at or above this mark are warm-up messages, not counted.
const WARMUP_BASE: u64 = 1 << 40;

struct Args {
    mode: String,
    url: url::Url,
    clients: usize,
    rate: u64,
    size: usize,
    duration: f64,
    window: u64,
    hold: f64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().context("usage: moq-load fanout|idle --url URL ...")?;
    let mut a = Args {
        mode,
        url: "https://127.0.0.1:4443/".parse()?,
        clients: 100,
        rate: 0,
        size: 64,
        duration: 10.0,
        window: 256,
        hold: 30.0,
    };
    while let Some(flag) = it.next() {
        let val = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => a.url = val.parse()?,
            "--clients" | "--connections" => a.clients = val.parse()?,
            "--rate" => a.rate = val.parse()?,
            "--size" => a.size = val.parse()?,
            "--duration" => a.duration = val.parse()?,
            "--window" => a.window = val.parse()?,
            "--hold" => a.hold = val.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// What one subscriber saw.
#[derive(Default)]
struct SubStats {
    seen: Vec<u8>,
    deliveries: u64,
    duplicated: u64,
    latencies_us: Vec<u32>,
}

struct Shared {
    start: Instant,
    /// Deliveries of measured messages, all subscribers: the burst publisher's window.
    deliveries: AtomicU64,
    /// Subscribers that have received a warm-up message.
    warm: AtomicUsize,
    /// Deliveries after this many microseconds are past the measured window.
    stop_us: AtomicU64,
}

fn payload(seq: u64, now_us: u64, size: usize) -> bytes::Bytes {
    let mut s = format!("{seq} {now_us} ");
    while s.len() < size {
        s.push('.');
    }
    bytes::Bytes::from(s)
}

fn parse(p: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(p).ok()?;
    let mut parts = s.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

async fn subscribe(
    client: &moq_tokio::Client,
    url: &url::Url,
) -> anyhow::Result<(moq_tokio::Connection, moq_net::track::Subscriber)> {
    let origin = moq_tokio::origin::spawn();
    let conn = client
        .clone()
        .with_subscriber(origin.clone())
        .connect(url.clone());
    let consumer = origin.consume();
    let mut announced = consumer.announced();
    loop {
        let update = announced
            .next()
            .await
            .context("origin closed before the announce")?;
        if update.kind.is_active() && update.prefix.as_str() == BROADCAST {
            break;
        }
    }
    let broadcast = consumer.request_broadcast(BROADCAST).await?;
    // Every message is wanted: a budget of a minute keeps the relay from skipping groups that a
    // newer one overtook (the default, zero, delivers only the latest group).
    let sub = moq_net::track::Subscription::default().with_max_age(Duration::from_secs(60));
    let track = broadcast.track(TRACK)?.subscribe(sub).await?;
    Ok((conn, track))
}

async fn read_sub(mut track: moq_net::track::Subscriber, shared: Arc<Shared>) -> SubStats {
    let mut st = SubStats::default();
    let mut warm = false;
    loop {
        let group = match track.recv_group().await {
            Ok(Some(g)) => g,
            _ => break,
        };
        let mut group = group;
        while let Ok(Some(frame)) = group.read_frame().await {
            let Some((seq, sent_us)) = parse(&frame.payload) else {
                continue;
            };
            if seq >= WARMUP_BASE {
                if !warm {
                    warm = true;
                    shared.warm.fetch_add(1, Ordering::SeqCst);
                }
                continue;
            }
            let now_us = shared.start.elapsed().as_micros() as u64;
            let idx = seq as usize;
            if st.seen.len() <= idx {
                st.seen.resize((idx + 1).next_power_of_two(), 0);
            }
            if st.seen[idx] != 0 {
                st.duplicated += 1;
                continue;
            }
            st.seen[idx] = 1;
            if now_us <= shared.stop_us.load(Ordering::Relaxed) {
                st.deliveries += 1;
            }
            shared.deliveries.fetch_add(1, Ordering::Relaxed);
            st.latencies_us.push(now_us.saturating_sub(sent_us) as u32);
        }
    }
    st
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut cfg = moq_tokio::connect::Config::default();
    cfg.tls.insecure = Some(true);
    cfg.once = Some(true);
    let client = cfg.init(Default::default())?;

    // The publisher: one broadcast, one track, announced before anyone subscribes.
    let pub_origin = moq_tokio::origin::spawn();
    let broadcast = pub_origin
        .create_broadcast(BROADCAST)
        .context("create broadcast")?;
    let mut track = broadcast.create_track(TRACK, None)?;
    broadcast.announce(Default::default()).context("announce")?;
    let pub_conn = client
        .clone()
        .with_publisher(&pub_origin)
        .connect(args.url.clone());
    let pub_conn = tokio::time::timeout(Duration::from_secs(10), pub_conn.established())
        .await
        .context("publisher connect timed out")??;

    let shared = Arc::new(Shared {
        start: Instant::now(),
        deliveries: AtomicU64::new(0),
        warm: AtomicUsize::new(0),
        stop_us: AtomicU64::new(u64::MAX),
    });

    // Subscribers, a few dozen handshakes at a time.
    let mut conns = Vec::with_capacity(args.clients);
    let mut tracks = Vec::with_capacity(args.clients);
    for chunk in (0..args.clients).collect::<Vec<_>>().chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for _ in chunk {
            let c = client.clone();
            let u = args.url.clone();
            set.spawn(async move { subscribe(&c, &u).await });
        }
        while let Some(r) = set.join_next().await {
            let (conn, t) = tokio::time::timeout(Duration::from_secs(20), async { r })
                .await?
                .context("join")??;
            conns.push(conn);
            tracks.push(t);
        }
    }

    if args.mode == "idle" {
        println!("READY {}", conns.len());
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
        drop(tracks);
        drop(conns);
        client.close().await;
        return Ok(());
    }

    let readers: Vec<_> = tracks
        .into_iter()
        .map(|t| tokio::spawn(read_sub(t, shared.clone())))
        .collect();

    // Warm up until every subscriber has the relay's upstream subscription in place.
    let warm_deadline = Instant::now() + Duration::from_secs(15);
    let mut w = WARMUP_BASE;
    while shared.warm.load(Ordering::SeqCst) < args.clients {
        anyhow::ensure!(
            Instant::now() < warm_deadline,
            "warm-up: not every subscriber got a message"
        );
        track.write_frame(moq_net::Timestamp::now(), payload(w, 0, args.size))?;
        w += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let subs = args.clients as u64;
    let t0 = Instant::now();
    let wall0 = unix_ms();
    let t0_us = shared.start.elapsed().as_micros() as u64;
    let dur = Duration::from_secs_f64(args.duration);
    let mut published: u64 = 0;
    let mut errors: u64 = 0;
    while t0.elapsed() < dur {
        let due = if args.rate == 0 {
            // Flat out, but with a bounded number of messages not yet delivered everywhere.
            let delivered = shared.deliveries.load(Ordering::Relaxed);
            let in_flight = (published * subs).saturating_sub(delivered) / subs.max(1);
            args.window.saturating_sub(in_flight)
        } else {
            ((t0.elapsed().as_secs_f64() * args.rate as f64) as u64 + 1).saturating_sub(published)
        };
        for _ in 0..due.min(64) {
            let now_us = shared.start.elapsed().as_micros() as u64;
            if track
                .write_frame(moq_net::Timestamp::now(), payload(published, now_us, args.size))
                .is_err()
            {
                errors += 1;
            }
            published += 1;
        }
        if args.rate == 0 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let wall1 = unix_ms();
    shared
        .stop_us
        .store(t0_us + (elapsed * 1e6) as u64, Ordering::SeqCst);

    // Drain: give the tail up to 3 s to arrive, then end the broadcast so readers finish.
    let drain_deadline = Instant::now() + Duration::from_secs(3);
    while shared.deliveries.load(Ordering::Relaxed) < published * subs && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(track);
    broadcast.close();
    drop(pub_conn);
    drop(conns);
    let mut all_lat: Vec<u32> = Vec::new();
    let (mut delivered_in_window, mut unique, mut dup) = (0u64, 0u64, 0u64);
    for r in readers {
        match tokio::time::timeout(Duration::from_secs(5), r).await {
            Ok(Ok(st)) => {
                delivered_in_window += st.deliveries;
                unique += st
                    .seen
                    .iter()
                    .take(published as usize)
                    .filter(|b| **b != 0)
                    .count() as u64;
                dup += st.duplicated;
                all_lat.extend(st.latencies_us);
            }
            _ => errors += 1,
        }
    }
    all_lat.sort_unstable();
    let out = serde_json::json!({
        "deliveries_per_sec": delivered_in_window as f64 / elapsed,
        "deliveries": unique,
        "published": published,
        "lost": (published * subs).saturating_sub(unique),
        "duplicated": dup,
        "p50_ms": pct(&all_lat, 50.0),
        "p95_ms": pct(&all_lat, 95.0),
        "p99_ms": pct(&all_lat, 99.0),
        "max_ms": all_lat.last().map(|v| *v as f64 / 1000.0).unwrap_or(0.0),
        "errors": errors,
        "duration_s": elapsed,
        // The publishing window on the wall clock: the harness reads the server's CPU over it.
        "window_start_unix_ms": wall0,
        "window_end_unix_ms": wall1,
    });
    println!("{out}");
    client.close().await;
    Ok(())
}
