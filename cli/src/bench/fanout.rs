//! `garou bench fanout`: C clients in one room, P of them publishing at a total rate R.

use std::time::Duration;

use serde_json::json;

use super::conn::Target;
use super::load::{self, Group, Plan};
use super::stats::Summary;
use super::CommonArgs;

/// Arguments of `garou bench fanout`.
#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Clients in the room (publishers included).
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Room name [default: a fresh one per run].
    #[arg(long)]
    pub room: Option<String>,
    /// Publishing clients (the first P of the room).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Total messages per second over all publishers; 0 = flat out (bounded by --window).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Message size in bytes (the stamp is never cut: tiny sizes give ~30 B).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Unacknowledged messages per publisher.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Seconds members may take after the last ack to receive everything.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
}

/// Run the scenario and return its summary (printing is the caller's).
pub async fn run(a: &FanoutArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(a.clients >= 1, "--clients must be at least 1");
    let target = Target::new(&a.common).await?;
    let publishers = a.publishers.clamp(1, a.clients);
    let room = a.room.clone().unwrap_or_else(|| target.name("fanout", 0));
    let plan = Plan {
        groups: vec![Group {
            room: room.clone(),
            members: (0..a.clients).collect(),
            publishers: (0..publishers).collect(),
        }],
        rate_per_publisher: a.rate.max(0.0) / publishers as f64,
        size: a.size,
        duration: Duration::from_secs_f64(a.duration.max(0.0)),
        window: a.window,
        drain: Duration::from_secs_f64(a.drain.max(0.0)),
    };
    let mut s = load::run(&target, "fanout", a.clients, plan).await?;
    s.extra.insert("room".into(), json!(room));
    s.extra.insert("publishers".into(), json!(publishers));
    s.extra.insert("rate".into(), json!(a.rate));
    Ok(s)
}
