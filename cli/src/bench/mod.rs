//! `garou bench`: load generators against a running gateway, from one process.
//!
//! Scenarios (one module each): `fanout` (one room, many subscribers), `rooms` (many small
//! rooms), `connections` (idle sessions: handshake rate, server RSS per session), `churn`
//! (connect/join/leave/disconnect cycles) and `publish` (acknowledged messages per second).
//! Each prints a human summary and, with `--json`, one JSON object as the last stdout line
//! (see [`stats::Summary`]). Every wait is bounded; failures are counted in `errors`
//! rather than aborting the run, so a script always gets its summary.
//!
//! Clients are the native QUIC client (`garou-client`) sharing a few UDP endpoints
//! (`--endpoints`), or with `--transport websocket` the shared `ClientSession` over the
//! gateway's `/ws` lanes ([`ws`]), behind one abstraction ([`client::BenchClient`]) so
//! scenarios are transport-blind; connected with bounded concurrency (`--connect-concurrency`).

pub mod churn;
pub mod client;
pub mod conn;
pub mod connections;
pub mod fanout;
pub mod load;
pub mod publish;
pub mod rooms;
pub mod stats;
pub mod ws;

/// Arguments of `garou bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Benchmark scenarios.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Scenario {
    /// C clients in one room, P publishers: deliveries/s, publish→delivery latency, loss.
    Fanout(fanout::FanoutArgs),
    /// Many rooms of a few members, everyone publishing at a paced rate.
    Rooms(rooms::RoomsArgs),
    /// Hold N idle sessions: handshake rate and server RSS per session.
    Connections(connections::ConnectionsArgs),
    /// Connect/handshake/join/leave/disconnect cycles per second.
    Churn(churn::ChurnArgs),
    /// Acknowledged (durable) messages per second over N connections.
    Publish(publish::PublishArgs),
}

/// Which transport the load uses.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Raw QUIC through the native client.
    #[default]
    Quic,
    /// The WebSocket fallback: `--server` is the gateway's HTTP `HOST:PORT` (its `/ws`).
    Websocket,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Quic => "quic",
            Transport::Websocket => "websocket",
        }
    }
}

/// Flags every scenario takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Gateway address: QUIC `HOST:PORT`, or with `--transport websocket` the HTTP
    /// `HOST:PORT` (or a `ws://` URL). Several (`--server a,b` or the flag repeated), e.g. the
    /// nodes of a cluster: client `i` connects to server `i mod N`, so publishers and
    /// subscribers are spread over all of them.
    #[arg(long, default_value = "127.0.0.1:4433", value_delimiter = ',', num_args = 1)]
    pub server: Vec<String>,
    /// Accept any certificate (the dev gateway's is self-signed).
    #[arg(long)]
    pub insecure: bool,
    /// Pin the certificate by SHA-256 (hex) instead.
    #[arg(long)]
    pub cert_hash: Option<String>,
    /// Transport of the load.
    #[arg(long, value_enum, default_value_t = Transport::Quic)]
    pub transport: Transport,
    /// UDP endpoints (sockets) shared by the QUIC clients, round-robin (QUIC only).
    #[arg(long, default_value_t = 4)]
    pub endpoints: usize,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    pub json: bool,
}

impl CommonArgs {
    /// Defaults pointing at `server`, pinned to `cert_hash` (for tests).
    pub fn pinned(server: impl Into<String>, cert_hash: &[u8; 32]) -> CommonArgs {
        CommonArgs {
            server: vec![server.into()],
            insecure: false,
            cert_hash: Some(hex::encode(cert_hash)),
            transport: Transport::Quic,
            endpoints: 2,
            connect_concurrency: 32,
            json: false,
        }
    }

    /// Defaults spreading clients over `servers` (QUIC), pinned to `cert_hash` (for tests).
    pub fn pinned_many(servers: &[String], cert_hash: &[u8; 32]) -> CommonArgs {
        CommonArgs {
            server: servers.to_vec(),
            ..CommonArgs::pinned(String::new(), cert_hash)
        }
    }

    /// Defaults for the WebSocket transport at the gateway's HTTP address (for tests).
    pub fn websocket(http: impl Into<String>) -> CommonArgs {
        CommonArgs {
            server: vec![http.into()],
            insecure: false,
            cert_hash: None,
            transport: Transport::Websocket,
            endpoints: 1,
            connect_concurrency: 32,
            json: false,
        }
    }
}

/// Run a benchmark and print its summary.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (summary, json) = match args.scenario {
        Scenario::Fanout(a) => (fanout::run(&a).await?, a.common.json),
        Scenario::Rooms(a) => (rooms::run(&a).await?, a.common.json),
        Scenario::Connections(a) => (connections::run(&a).await?, a.common.json),
        Scenario::Churn(a) => (churn::run(&a).await?, a.common.json),
        Scenario::Publish(a) => return publish::run(a).await,
    };
    summary.print(json);
    Ok(())
}
