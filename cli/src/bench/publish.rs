//! `garou bench publish`: N connections each publish M messages into their own room as fast as acks
//! allow, with up to W in flight per connection: measures durable, acknowledged messages
//! per second (the store's group commit included) and ack latency.

use std::time::{Duration, Instant};

use super::conn::Target;
use super::CommonArgs;

/// Arguments of `garou bench publish`.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections (each publishes into its own room).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Messages per connection.
    #[arg(long, default_value_t = 2000)]
    pub messages: usize,
    /// Messages in flight per connection (awaiting their ack).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
}

/// Run the scenario and print its summary.
pub async fn run(a: PublishArgs) -> anyhow::Result<()> {
    let target = Target::new(&a.common).await?;
    let run_id = target.run_id;
    let mut clients = Vec::new();
    for i in 0..a.connections {
        let (client, events) = target
            .connect(format!("bench{run_id:x}-{i}"))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        client
            .join(&format!("bench{run_id:x}-{i}"))
            .await
            .map_err(|e| anyhow::anyhow!("join: {e}"))?;
        clients.push((client, events));
    }
    let text = "x".repeat(a.size.max(1));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (client, events)) in clients.into_iter().enumerate() {
        let (text, window, n) = (text.clone(), a.window.max(1), a.messages);
        tasks.spawn(async move {
            let _events = events; // keep the event stream alive (and drained by the driver's bound)
            let room = format!("bench{run_id:x}-{i}");
            let mut inflight = std::collections::VecDeque::new();
            let mut latencies = Vec::with_capacity(n);
            let mut errors = 0usize;
            for _ in 0..n {
                if inflight.len() >= window {
                    let (t0, p): (Instant, super::client::Ack) = inflight.pop_front().unwrap();
                    match p.await {
                        Ok(_) => latencies.push(t0.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                let pending = client.send(room.as_str(), text.clone()).await;
                inflight.push_back((Instant::now(), pending));
            }
            for (t0, p) in inflight {
                match p.await {
                    Ok(_) => latencies.push(t0.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            client.close().await;
            (latencies, errors)
        });
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        let (l, e) = r?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let acked = latencies.len();
    let rate = acked as f64 / elapsed;
    println!(
        "publish: {} connections x {} messages of {} B, window {}: {acked} acked in {elapsed:.2} s = {rate:.0} msg/s; ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {errors} errors",
        a.connections,
        a.messages,
        a.size,
        a.window,
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    if a.common.json {
        println!(
            "{}",
            serde_json::json!({
                "scenario": "publish",
                "connections": a.connections,
                "acked": acked,
                "messages_per_sec": rate,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
                "max_ms": pct(1.0),
                "errors": errors,
            })
        );
    }
    anyhow::ensure!(errors == 0, "{errors} publishes failed");
    Ok(())
}
