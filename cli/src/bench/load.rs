//! The room-load engine behind `fanout` and `rooms`: groups of clients join a room, some
//! of them publish stamped messages, every member checks it got each message once.
//!
//! A payload is `<run> <publisher> <seq> <ns> ` padded to the message size, `ns` being
//! nanoseconds on the process's monotonic clock ([`super::stats::now_ns`]) taken just before the
//! send. Every member joins before publishing starts, so each must see every message the
//! server acknowledged exactly once; after the last ack, members get a bounded drain to
//! catch up, then whatever is missing counts as lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::client::{Ack, BenchClient, BenchEvents, Incoming};
use super::conn::Target;
use super::stats::{now_ns, Latencies, Seen, Summary};

/// A room and who is in it (indices into the client list).
#[derive(Debug, Clone)]
pub struct Group {
    pub room: String,
    pub members: Vec<usize>,
    pub publishers: Vec<usize>,
}

/// How hard and how long to publish.
#[derive(Debug, Clone)]
pub struct Plan {
    pub groups: Vec<Group>,
    /// Messages per second per publisher; 0 = as fast as the window allows.
    pub rate_per_publisher: f64,
    pub size: usize,
    pub duration: Duration,
    /// Unacknowledged messages per publisher.
    pub window: usize,
    /// Bound on the wait for deliveries after the last ack.
    pub drain: Duration,
}

/// Acknowledged sequences of each publisher of a group: what each member must see.
type Expected = Vec<(usize, Vec<u64>)>;

/// Sent to members once publishing is over.
struct Final {
    per_group: Vec<Expected>,
    deadline: Instant,
}

/// What one member saw.
struct MemberReport {
    seen: Seen,
    latencies: Latencies,
    /// With several servers: latencies by path, index `publisher's server * N + member's server`.
    by_path: Vec<Latencies>,
    last: Option<Instant>,
    lost: u64,
    disconnected: bool,
}

/// What one publisher did.
struct PublisherReport {
    group: usize,
    id: usize,
    acked: Vec<u64>,
    sent: u64,
    errors: u64,
}

impl PublisherReport {
    /// Wait for one send's ack (the [`Ack`] is bounded).
    async fn settle(&mut self, (seq, ack): (u64, Ack)) {
        match ack.await {
            Ok(()) => self.acked.push(seq),
            Err(e) => {
                tracing::debug!("bench send failed: {e}");
                self.errors += 1;
            }
        }
    }
}

/// Connect `n` clients, run `plan`, close them; `errors` starts with connect failures.
pub async fn run(target: &Target, scenario: &'static str, n: usize, plan: Plan) -> anyhow::Result<Summary> {
    let t0 = Instant::now();
    let nicks = (0..n).map(|i| target.name("b", i)).collect();
    let clients = target.connect_all(nicks).await;
    let connect_secs = t0.elapsed().as_secs_f64();
    let mut errors = clients.iter().filter(|c| c.is_none()).count() as u64;
    anyhow::ensure!(clients.iter().any(Option::is_some), "no client could connect");
    let servers = target.servers.len();
    let mut per_server = vec![0u64; servers];
    for (i, c) in clients.iter().enumerate() {
        per_server[target.server_of(i)] += u64::from(c.is_some());
    }
    let (handles, events): (Vec<Option<BenchClient>>, Vec<Option<BenchEvents>>) = clients
        .into_iter()
        .map(|c| match c {
            Some((h, e)) => (Some(h), Some(e)),
            None => (None, None),
        })
        .unzip();
    let mut events = events;

    // Everyone joins before anyone publishes.
    let joins: Vec<(usize, usize, BenchClient, String)> = plan
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, grp)| {
            let handles = &handles;
            grp.members
                .iter()
                .filter_map(move |&m| handles[m].clone().map(|h| (g, m, h, grp.room.clone())))
        })
        .collect();
    let joined: Vec<(usize, usize, bool)> = futures::stream::iter(joins)
        .map(|(g, m, h, room)| async move {
            let ok = h.join(&room).await.is_ok();
            (g, m, ok)
        })
        .buffer_unordered(target.concurrency)
        .collect()
        .await;
    errors += joined.iter().filter(|j| !j.2).count() as u64;

    let is_member = |m: usize| joined.iter().any(|&(_, j, ok)| j == m && ok);
    // Publishers (their position here is the id in their payloads) and their clients.
    let ready: Vec<(usize, usize, BenchClient, String)> = plan
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, grp)| {
            let handles = &handles;
            grp.publishers.iter().filter_map(move |&p| {
                let h = handles[p].clone().filter(|_| is_member(p))?;
                Some((g, p, h, grp.room.clone()))
            })
        })
        .collect();
    let paths = Arc::new(Paths {
        servers,
        of_publisher: ready.iter().map(|r| target.server_of(r.1)).collect(),
    });

    let (final_tx, final_rx) = watch::channel::<Option<Arc<Final>>>(None);
    let run_id = target.run_id;
    let mut members = tokio::task::JoinSet::new();
    for &(g, m, ok) in &joined {
        if let (true, Some(ev)) = (ok, events[m].take()) {
            let home = target.server_of(m);
            members.spawn(member(run_id, g, ev, final_rx.clone(), paths.clone(), home));
        }
    }

    // Publish.
    let start = Instant::now();
    let window_start = unix_ms();
    let end = start + plan.duration;
    let mut publishers = tokio::task::JoinSet::new();
    let count = ready.len();
    for (id, (g, _, h, room)) in ready.into_iter().enumerate() {
        let pace = Pace::new(plan.rate_per_publisher, id, count, start);
        publishers.spawn(publisher(h, run_id, g, id, room, plan.clone(), pace, end));
    }
    let mut per_group: Vec<Expected> = vec![Vec::new(); plan.groups.len()];
    let (mut published, mut sent) = (0u64, 0u64);
    while let Some(r) = publishers.join_next().await {
        match r {
            Ok(p) => {
                errors += p.errors;
                published += p.acked.len() as u64;
                sent += p.sent;
                per_group[p.group].push((p.id, p.acked));
            }
            Err(_) => errors += 1,
        }
    }
    let window_end = unix_ms();
    let deadline = Instant::now() + plan.drain;
    let _ = final_tx.send(Some(Arc::new(Final { per_group, deadline })));

    // Collect what members saw (each is bounded by the drain deadline).
    let mut summary = Summary {
        scenario,
        transport: target.transport.name().into(),
        published,
        errors,
        ..Summary::default()
    };
    let mut latencies = Latencies::default();
    let mut by_path = vec![Latencies::default(); paths.slots()];
    let mut last = start;
    let collect = async {
        while let Some(r) = members.join_next().await {
            match r {
                Ok(m) => {
                    summary.deliveries += m.seen.unique;
                    summary.duplicated += m.seen.duplicated;
                    summary.lost += m.lost;
                    summary.errors += u64::from(m.disconnected);
                    last = last.max(m.last.unwrap_or(start));
                    latencies.extend(m.latencies);
                    for (all, one) in by_path.iter_mut().zip(m.by_path) {
                        all.extend(one);
                    }
                }
                Err(_) => summary.errors += 1,
            }
        }
    };
    if tokio::time::timeout_at(deadline + Duration::from_secs(5), collect)
        .await
        .is_err()
    {
        summary.errors += members.len() as u64;
        members.abort_all();
    }
    summary.elapsed_secs = (last - start).as_secs_f64();
    summary.latency_ms = latencies.percentiles();
    summary.extra.insert("sent".into(), json!(sent));
    // Acknowledged messages per second of the schedule: with `--rate`, the total asked for.
    let secs = plan.duration.as_secs_f64();
    let per_sec = if secs > 0.0 { published as f64 / secs } else { 0.0 };
    summary.extra.insert(
        "published_per_sec".into(),
        json!((per_sec * 100.0).round() / 100.0),
    );
    summary.extra.insert("clients".into(), json!(n));
    summary.extra.insert("connect_secs".into(), json!(connect_secs));
    summary.extra.insert("size".into(), json!(plan.size));
    summary
        .extra
        .insert("duration_secs".into(), json!(plan.duration.as_secs_f64()));
    summary
        .extra
        .insert("window_start_unix_ms".into(), json!(window_start));
    summary
        .extra
        .insert("window_end_unix_ms".into(), json!(window_end));
    if servers > 1 {
        let names: Vec<&str> = target.servers.iter().map(|s| s.addr.as_str()).collect();
        summary.extra.insert("servers".into(), json!(names));
        summary
            .extra
            .insert("clients_per_server".into(), json!(per_server));
        summary
            .extra
            .insert("latency_by_path".into(), path_report(servers, by_path));
    }
    target.close_all(handles.into_iter().flatten().collect()).await;
    Ok(summary)
}

/// Which server each publisher and member is on, to split latencies by path.
struct Paths {
    servers: usize,
    /// The server of publisher `id` (the id in its payloads).
    of_publisher: Vec<usize>,
}

impl Paths {
    /// Paths there are (none with one server: its run reports no split).
    fn slots(&self) -> usize {
        if self.servers > 1 {
            self.servers * self.servers
        } else {
            0
        }
    }

    /// The index into `by_path` of a delivery from `publisher` to a member on `home`.
    fn index(&self, publisher: usize, home: usize) -> Option<usize> {
        let from = *self.of_publisher.get(publisher)?;
        (self.servers > 1).then_some(from * self.servers + home)
    }
}

/// `{"0->1": {"deliveries", "p50_ms", "p99_ms"}, ...}`: latency from publishers on server 0
/// to members on server 1 (server numbers in `--server` order), for every path that had any.
fn path_report(servers: usize, by_path: Vec<Latencies>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (i, l) in by_path.into_iter().enumerate() {
        if l.is_empty() {
            continue;
        }
        let n = l.len();
        let [p50, _, p99, _] = l.percentiles();
        out.insert(
            format!("{}->{}", i / servers, i % servers),
            json!({
                "deliveries": n,
                "p50_ms": (p50 * 1000.0).round() / 1000.0,
                "p99_ms": (p99 * 1000.0).round() / 1000.0,
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// The stamped payload of message `seq` of publisher `id`, padded to `size` bytes.
fn payload(run: u32, id: usize, seq: u64, size: usize) -> String {
    let mut s = format!("{run:08x} {id} {seq} {} ", now_ns());
    if s.len() < size {
        s.extend(std::iter::repeat_n('.', size - s.len()));
    }
    s
}

/// Parse a payload of this run: (publisher, seq, send ns).
fn parse(run: u32, text: &str) -> Option<(usize, u64, u64)> {
    let mut it = text.split(' ');
    if u32::from_str_radix(it.next()?, 16).ok()? != run {
        return None;
    }
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// Wall-clock milliseconds since the Unix epoch (for the publishing window in the JSON,
/// which outside tools line up with their own samples of the server).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When one publisher sends its messages. Publishers share the rate but not the phase:
/// publisher `id` of `count` starts `id / count` of a period late, so together they send
/// evenly spaced messages at `count * rate` per second. With one shared schedule every
/// publisher sent at the same instants, and 1,000 clients at 0.5 msg/s each made a burst of
/// 1,000 messages every 2 s instead of one message every 2 ms (the load generator, not the
/// server, made latency grow with the number of clients); below one message per publisher
/// in the run, the shared schedule also made each publisher send exactly one message at
/// once, so the total rate was wrong at low `--rate`.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Messages per second of this publisher; 0 = as fast as the window allows.
    rate: f64,
    /// Fraction of a period this publisher is offset by, in [0, 1).
    phase: f64,
    start: Instant,
}

impl Pace {
    fn new(rate: f64, id: usize, count: usize, start: Instant) -> Pace {
        Pace {
            rate,
            phase: id as f64 / count.max(1) as f64,
            start,
        }
    }

    /// When message `seq` goes out (`None`: unpaced).
    fn at(&self, seq: u64) -> Option<Instant> {
        (self.rate > 0.0).then(|| self.start + Duration::from_secs_f64((seq as f64 + self.phase) / self.rate))
    }
}

#[allow(clippy::too_many_arguments)]
async fn publisher(
    client: BenchClient,
    run: u32,
    group: usize,
    id: usize,
    room: String,
    plan: Plan,
    pace: Pace,
    end: Instant,
) -> PublisherReport {
    let mut report = PublisherReport {
        group,
        id,
        acked: Vec::new(),
        sent: 0,
        errors: 0,
    };
    let mut inflight = VecDeque::new();
    let window = plan.window.max(1);
    let mut seq = 0u64;
    loop {
        match pace.at(seq) {
            Some(at) if at >= end => break,
            Some(at) => tokio::time::sleep_until(at).await,
            None if Instant::now() >= end => break,
            None => {}
        }
        if inflight.len() >= window {
            let front = inflight.pop_front().expect("window is not empty");
            report.settle(front).await;
        }
        let text = payload(run, id, seq, plan.size);
        let ack = client.send(room.as_str(), text).await;
        inflight.push_back((seq, ack));
        report.sent += 1;
        seq += 1;
    }
    for p in inflight {
        report.settle(p).await;
    }
    report
}

async fn member(
    run: u32,
    group: usize,
    mut events: BenchEvents,
    mut fin: watch::Receiver<Option<Arc<Final>>>,
    paths: Arc<Paths>,
    home: usize,
) -> MemberReport {
    let mut r = MemberReport {
        seen: Seen::default(),
        latencies: Latencies::default(),
        by_path: vec![Latencies::default(); paths.slots()],
        last: None,
        lost: 0,
        disconnected: false,
    };
    let mut target: Option<(Arc<Final>, u64)> = None;
    loop {
        if let Some((f, total)) = &target {
            if r.seen.unique >= *total || Instant::now() >= f.deadline {
                break;
            }
        }
        let deadline = target.as_ref().map(|(f, _)| f.deadline);
        let ev = tokio::select! {
            ev = events.next() => ev,
            changed = fin.changed(), if target.is_none() => {
                if changed.is_err() {
                    break;
                }
                if let Some(f) = fin.borrow().clone() {
                    let total = f.per_group[group].iter().map(|(_, s)| s.len() as u64).sum();
                    target = Some((f, total));
                }
                continue;
            }
            _ = sleep_until_opt(deadline) => break,
        };
        match ev {
            Some(Incoming::Message(text)) => {
                if let Some((p, seq, ns)) = parse(run, &text) {
                    if r.seen.record(p, seq) {
                        let ns = now_ns().saturating_sub(ns);
                        r.latencies.push_ns(ns);
                        if let Some(i) = paths.index(p, home) {
                            r.by_path[i].push_ns(ns);
                        }
                        r.last = Some(Instant::now());
                    }
                }
            }
            Some(Incoming::Disconnected) => r.disconnected = true,
            Some(Incoming::Other) => {}
            None => {
                // Clients close only after members report: an ended stream is a lost
                // connection. Wait for the final tally to count what is missing.
                r.disconnected = true;
                // The stream ended: wait for the final tally to count what is missing.
                if target.is_none() {
                    let _ = fin.changed().await;
                    if let Some(f) = fin.borrow().clone() {
                        target = Some((f, 0));
                    }
                }
                break;
            }
        }
    }
    if let Some((f, _)) = target {
        r.lost = r.seen.missing(&f.per_group[group]);
    }
    r
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_pads() {
        let p = payload(0xabc, 3, 42, 64);
        assert_eq!(p.len(), 64);
        let (id, seq, _) = parse(0xabc, &p).unwrap();
        assert_eq!((id, seq), (3, 42));
        assert!(parse(0xabd, &p).is_none());
        assert!(payload(1, 1, 1, 4).len() > 4, "never truncated below the stamp");
    }

    /// The schedules of all publishers, merged: what the server sees arrive.
    fn merged(rate: f64, count: usize, secs: f64) -> Vec<f64> {
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut all: Vec<f64> = (0..count)
            .flat_map(|id| {
                let pace = Pace::new(rate, id, count, start);
                (0..)
                    .map_while(move |seq| pace.at(seq).filter(|&at| at < end))
                    .map(move |at| (at - start).as_secs_f64())
            })
            .collect();
        all.sort_by(f64::total_cmp);
        all
    }

    #[test]
    fn publishers_spread_out_instead_of_bursting() {
        // 1,000 publishers at 0.5 msg/s each: one message every 2 ms, never 1,000 at once.
        let all = merged(0.5, 1000, 15.0);
        assert!((7400..=7600).contains(&all.len()), "total {}", all.len());
        let most_at_once = all
            .chunk_by(|a, b| (b - a).abs() < 1e-4)
            .map(<[f64]>::len)
            .max()
            .unwrap();
        assert_eq!(most_at_once, 1, "publishers send at distinct instants");
    }

    #[test]
    fn the_total_rate_holds_below_one_message_per_publisher() {
        // `--rate 50` over 1,000 clients for 15 s: 750 messages, not 1,000 at once.
        let all = merged(50.0 / 1000.0, 1000, 15.0);
        assert!((740..=760).contains(&all.len()), "total {}", all.len());
        let per_sec = all.iter().filter(|&&t| t < 1.0).count();
        assert!((45..=55).contains(&per_sec), "first second {per_sec}");
    }
}
