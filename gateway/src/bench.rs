//! `garou bench`: load generators over the native client (raw QUIC).
//!
//! `publish`: N connections each publish M messages into their own room as fast as acks
//! allow, with up to W in flight per connection: measures durable, acknowledged messages
//! per second (the store's group commit included) and ack latency.

use std::time::{Duration, Instant};

use garou_client::{connect, ClientOptions, Trust};

/// Arguments of `garou bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Benchmark scenarios.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Scenario {
    /// Acknowledged (durable) messages per second over N connections.
    Publish(PublishArgs),
}

/// Arguments of `garou bench publish`.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishArgs {
    /// Gateway QUIC address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub server: String,
    /// Accept any certificate (the dev gateway's is self-signed).
    #[arg(long)]
    pub insecure: bool,
    /// Pin the certificate by SHA-256 (hex) instead.
    #[arg(long)]
    pub cert_hash: Option<String>,
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
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Run a benchmark and print its summary.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Publish(a) => publish(a).await,
    }
}

async fn publish(a: PublishArgs) -> anyhow::Result<()> {
    let trust = match (&a.cert_hash, a.insecure) {
        (Some(h), _) => Trust::cert_hash_hex(h)?,
        (None, true) => Trust::Insecure,
        (None, false) => Trust::System,
    };
    let run_id: u32 = rand::random();
    let mut clients = Vec::new();
    for i in 0..a.connections {
        let mut opts =
            ClientOptions::with_nick(a.server.clone(), format!("bench{run_id:x}-{i}")).trust(trust.clone());
        opts.reconnect = false;
        let (client, events) = connect(opts).await?;
        client.join(format!("bench{run_id:x}-{i}")).await?;
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
                    let (t0, p): (Instant, garou_client::Pending<_>) = inflight.pop_front().unwrap();
                    match p.await {
                        Ok(_) => latencies.push(t0.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                let pending = client.send(room.as_str(), text.as_str()).submit().await;
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
    if a.json {
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
