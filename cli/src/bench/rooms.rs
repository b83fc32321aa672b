//! `garou bench rooms`: many rooms of a few members, every member publishing, paced.

use std::time::Duration;

use serde_json::json;

use super::conn::Target;
use super::load::{self, Group, Plan};
use super::stats::Summary;
use super::CommonArgs;

/// Arguments of `garou bench rooms`.
#[derive(clap::Args, Debug, Clone)]
pub struct RoomsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Rooms.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Members per room (each a client of its own, each publishing).
    #[arg(long, default_value_t = 4)]
    pub members: usize,
    /// Total messages per second over all members [default: 1 per member].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Unacknowledged messages per publisher.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Seconds members may take after the last ack to receive everything.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
}

pub async fn run(a: &RoomsArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        a.rooms >= 1 && a.members >= 1,
        "--rooms and --members must be at least 1"
    );
    let target = Target::new(&a.common).await?;
    let n = a.rooms * a.members;
    let rate = a.rate.unwrap_or(n as f64);
    let groups = (0..a.rooms)
        .map(|r| {
            let members: Vec<usize> = (r * a.members..(r + 1) * a.members).collect();
            Group {
                room: target.name("room", r),
                publishers: members.clone(),
                members,
            }
        })
        .collect();
    let plan = Plan {
        groups,
        rate_per_publisher: rate.max(0.0) / n as f64,
        size: a.size,
        duration: Duration::from_secs_f64(a.duration.max(0.0)),
        window: a.window,
        drain: Duration::from_secs_f64(a.drain.max(0.0)),
    };
    let mut s = load::run(&target, "rooms", n, plan).await?;
    s.extra.insert("rooms".into(), json!(a.rooms));
    s.extra.insert("members".into(), json!(a.members));
    s.extra.insert("rate".into(), json!(rate));
    Ok(s)
}
