//! `garou bench churn`: connect, handshake, join, leave, disconnect, over and over, from
//! `--concurrency` workers: cycles per second and the cycle time percentiles.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::conn::Target;
use super::stats::{Latencies, Summary};
use super::CommonArgs;

/// Arguments of `garou bench churn`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Workers cycling at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of churning.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Room every cycle joins [default: a fresh one per run].
    #[arg(long)]
    pub room: Option<String>,
}

pub async fn run(a: &ChurnArgs) -> anyhow::Result<Summary> {
    let target = Target::new(&a.common).await?;
    let room = a.room.clone().unwrap_or_else(|| target.name("churn", 0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration.max(0.0));
    let mut workers = tokio::task::JoinSet::new();
    let target = std::sync::Arc::new(target);
    for w in 0..a.concurrency.max(1) {
        let (target, room) = (target.clone(), room.clone());
        workers.spawn(async move {
            let (mut lat, mut errors, mut i) = (Latencies::default(), 0u64, 0usize);
            while Instant::now() < end {
                let t = Instant::now();
                match cycle(&target, target.name(&format!("c{w}-"), i), &room).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(e) => {
                        tracing::warn!("churn cycle failed: {e}");
                        errors += 1;
                    }
                }
                i += 1;
            }
            (lat, errors)
        });
    }
    let mut latencies = Latencies::default();
    let mut errors = 0;
    while let Some(r) = workers.join_next().await {
        match r {
            Ok((l, e)) => {
                latencies.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cycles = latencies.len();
    let mut s = Summary {
        scenario: "churn",
        transport: target.transport.name().into(),
        errors,
        elapsed_secs: elapsed,
        latency_ms: latencies.percentiles(),
        ..Summary::default()
    };
    s.extra.insert("cycles".into(), json!(cycles));
    s.extra.insert(
        "cycles_per_sec".into(),
        json!((cycles as f64 / elapsed * 10.0).round() / 10.0),
    );
    s.extra.insert("concurrency".into(), json!(a.concurrency));
    Ok(s)
}

/// One connect/join/leave/close cycle, every step bounded.
async fn cycle(target: &Target, nick: String, room: &str) -> Result<(), String> {
    let (client, _events) = target.connect(nick).await?;
    let r = async {
        client.join(room).await.map_err(|e| format!("join: {e}"))?;
        client.leave(room).await.map_err(|e| format!("leave: {e}"))
    }
    .await;
    target.close_all(vec![client]).await;
    r
}
