//! `garou bench connections`: hold N idle sessions; handshake rate and the server's RSS
//! per session (read from `/proc/PID/status` when `--server-pid` is given, so only for a
//! gateway on this machine).

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::conn::Target;
use super::stats::{Latencies, Summary};
use super::CommonArgs;

/// Arguments of `garou bench connections`.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Sessions to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Seconds to hold them once all are up.
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// The gateway's process id, to read its VmRSS before and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// VmRSS of `pid` in KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub async fn run(a: &ConnectionsArgs) -> anyhow::Result<Summary> {
    let target = Target::new(&a.common).await?;
    let before = a.server_pid.and_then(rss_kb);
    let start = Instant::now();
    // Handshake time of each session (the latency figures of this scenario).
    let results: Vec<(Result<_, String>, Duration)> = {
        use futures::StreamExt;
        futures::stream::iter(0..a.connections)
            .map(|i| {
                let target = &target;
                async move {
                    let t = Instant::now();
                    (target.connect(target.name("idle", i)).await, t.elapsed())
                }
            })
            .buffer_unordered(target.concurrency)
            .collect()
            .await
    };
    let up_secs = start.elapsed().as_secs_f64();
    let after = a.server_pid.and_then(rss_kb);
    let mut latencies = Latencies::default();
    let mut clients = Vec::new();
    let mut errors = 0u64;
    let mut keep_events = Vec::new();
    for (r, d) in results {
        match r {
            Ok((c, ev)) => {
                latencies.push(d);
                clients.push(c);
                keep_events.push(ev);
            }
            Err(e) => {
                tracing::warn!("bench connect failed: {e}");
                errors += 1;
            }
        }
    }
    let up = clients.len();
    tokio::time::sleep(Duration::from_secs_f64(a.hold.max(0.0))).await;
    // Still up after the hold? (A lost connection ends its client's `is_connected`.)
    let dropped = clients.iter().filter(|c| !c.is_connected()).count() as u64;
    errors += dropped;
    target.close_all(clients).await;
    drop(keep_events);

    let mut s = Summary {
        scenario: "connections",
        transport: target.transport.name().into(),
        errors,
        latency_ms: latencies.percentiles(),
        elapsed_secs: up_secs,
        ..Summary::default()
    };
    let rate = if up_secs > 0.0 { up as f64 / up_secs } else { 0.0 };
    s.extra.insert("connections".into(), json!(up));
    s.extra
        .insert("sessions_per_sec".into(), json!((rate * 10.0).round() / 10.0));
    s.extra.insert("dropped_while_held".into(), json!(dropped));
    if let (Some(b), Some(af)) = (before, after) {
        let per = if up > 0 {
            (af.saturating_sub(b)) as f64 / up as f64
        } else {
            0.0
        };
        s.extra.insert("server_rss_before_kb".into(), json!(b));
        s.extra.insert("server_rss_after_kb".into(), json!(af));
        s.extra
            .insert("rss_per_session_kb".into(), json!((per * 100.0).round() / 100.0));
    }
    Ok(s)
}
