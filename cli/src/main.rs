//! The `garou` binary: `garou serve` runs the gateway (`garou-gateway`), `garou chat` and
//! `garou tui` are terminal clients, `garou bench` a load generator (all in this crate's library) and
//! `garou token` mints a dev token.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use garou_cli::{bench, chat, tui};
use garou_gateway::{config::ServerConfig, server};
use tracing_subscriber::EnvFilter;

/// jemalloc rather than glibc's malloc: after a spike (5,000 sessions closing) it hands the
/// freed pages back to the system (219 MB -> 49 MB ten seconds later), where glibc's arenas kept
/// them (207 MB for good); paced fan-out costs ~4 % less CPU and an idle session ~1 KiB more.
/// mimalloc returned memory too but cost 17 KiB more per idle session (bench/README.md,
/// "Memory and the allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "garou",
    version,
    about = "Realtime chat gateway over QUIC, WebTransport and WebSocket"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Terminal chat client over raw QUIC (reads lines from stdin).
    Chat(chat::ChatArgs),
    /// Full-screen terminal chat: rooms, messages, members, input with history.
    Tui(tui::TuiArgs),
    /// Load generator over the native client.
    Bench(bench::BenchArgs),
    /// Mint a dev token (HS256) with the configured secret ([auth] secret / GAROU_AUTH__SECRET).
    Token(TokenArgs),
    /// Write a self-signed development certificate and key (see certs/README.md).
    Cert(CertArgs),
}

#[derive(clap::Args)]
struct CertArgs {
    /// Directory to write cert.pem and key.pem into.
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// Validity in days: at most 14 for browsers (pinned by hash), longer for native clients.
    #[arg(long, default_value_t = garou_gateway::tls::BROWSER_MAX_DAYS)]
    days: u32,
    /// A DNS name or IP address to cover (repeatable); default localhost, 127.0.0.1, ::1.
    #[arg(long = "name")]
    names: Vec<String>,
}

fn cert(args: CertArgs) -> anyhow::Result<()> {
    use garou_gateway::tls::{DevCert, BROWSER_MAX_DAYS};
    anyhow::ensure!(args.days >= 1, "--days must be at least 1");
    let names = if args.names.is_empty() {
        DevCert::default_names()
    } else {
        args.names
    };
    let dev = DevCert::new(&names, args.days)?;
    let (cert, key) = dev.write(&args.out)?;
    println!(
        "wrote {} and {} ({})",
        cert.display(),
        key.display(),
        names.join(", ")
    );
    println!("sha256 {}", hex::encode(dev.sha256));
    println!("valid until {}", dev.not_after);
    if args.days > BROWSER_MAX_DAYS {
        println!("longer than {BROWSER_MAX_DAYS} days: browsers will not pin it (WebTransport falls back to WebSocket); native clients can (--cert-hash)");
    }
    println!(
        "serve with: garou serve --cert {} --key {}",
        cert.display(),
        key.display()
    );
    Ok(())
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The user's id (the token's `sub`).
    #[arg(long)]
    user: String,
    /// Display name (the nick), default: the user id.
    #[arg(long)]
    name: Option<String>,
    /// Lifetime: 90s, 15m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Room grant ROOM=ROLE (repeatable), e.g. --room general=admin.
    #[arg(long = "room")]
    rooms: Vec<String>,
    /// TOML config file to read the secret from (else GAROU_AUTH__SECRET).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The secret itself (beats config and env).
    #[arg(long)]
    secret: Option<String>,
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    use garou_gateway::auth;
    let secret = match args.secret {
        Some(s) => s,
        None => ServerConfig::load(args.config.as_deref(), serde_json::json!({}))?
            .auth
            .secret
            .ok_or(auth::KeyError::NoSecret)?,
    };
    let ttl = auth::parse_ttl(&args.ttl).map_err(anyhow::Error::msg)?;
    let mut rooms = std::collections::HashMap::new();
    for grant in args.rooms {
        let (room, role) = grant
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--room takes ROOM=ROLE, got {grant:?}"))?;
        if garou_protocol::Role::parse(role).is_none() {
            anyhow::bail!("unknown role {role:?}: guest, member, moderator, admin or owner");
        }
        rooms.insert(room.to_owned(), role.to_owned());
    }
    let claims = auth::Claims {
        sub: args.user,
        name: args.name,
        exp: auth::now_secs() + ttl,
        nbf: None,
        rooms,
        aud: None,
        iss: None,
    };
    println!("{}", auth::mint(&secret, &claims)?);
    Ok(())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (flags beat GAROU_* env vars, which beat the file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// UDP address for QUIC and WebTransport [default: [::]:4433]
    #[arg(long)]
    quic: Option<SocketAddr>,
    /// TCP address for HTTP: chat page, /cert-hash, /health, /ws [default: [::]:8080]
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Directory of the SQLite store and uploads, created if missing [default: ./data]
    #[arg(long)]
    data: Option<PathBuf>,
    /// The store: postgres://user@host:port/db, sqlite://DIR or DIR [default: SQLite in --data]
    #[arg(long)]
    store: Option<String>,
    /// PEM certificate chain (default: a fresh self-signed one, valid 14 days)
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key for --cert
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Join a cluster as this node (with --nats and a postgres:// --store)
    #[arg(long, requires = "nats")]
    node: Option<String>,
    /// The cluster's NATS server, nats://host:4222 (with --node)
    #[arg(long, requires = "node")]
    nats: Option<String>,
}

impl ServeArgs {
    /// Only the flags actually given, shaped like [`ServerConfig`].
    fn overrides(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        if let Some(q) = self.quic {
            o.insert("quic".into(), q.to_string().into());
        }
        if let Some(h) = self.http {
            o.insert("http".into(), h.to_string().into());
        }
        if let Some(d) = &self.data {
            o.insert("data".into(), d.display().to_string().into());
        }
        if let Some(s) = &self.store {
            o.insert("store".into(), serde_json::json!({ "url": s }));
        }
        if let Some(c) = &self.cert {
            o.insert("cert".into(), c.display().to_string().into());
        }
        if let Some(k) = &self.key {
            o.insert("key".into(), k.display().to_string().into());
        }
        if let (Some(node), Some(nats)) = (&self.node, &self.nats) {
            o.insert(
                "cluster".into(),
                serde_json::json!({ "node": node, "nats": nats }),
            );
        }
        o.into()
    }
}

fn init_logging(json: bool, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(args) => {
            init_logging(cli.log_json, "info");
            let cfg = ServerConfig::load(args.config.as_deref(), args.overrides())?;
            if cfg.cluster.enabled() {
                let http = server::display_addr(cfg.http);
                let node = garou_gateway::cluster::Node::start(cfg).await?;
                println!(
                    "garou: cluster node {} (chat page at http://{http}/)",
                    node.status.node
                );
                server::signal_ignoring_hup().await;
                tracing::info!("signal received");
                node.shutdown().await;
                return Ok(());
            }
            let gateway = server::Gateway::start(cfg).await?;
            println!(
                "garou: chat page at http://{}/",
                server::display_addr(gateway.http_addr)
            );
            server::signal_or_reload(&gateway).await;
            tracing::info!("signal received");
            gateway.shutdown().await;
            Ok(())
        }
        Cmd::Chat(args) => {
            init_logging(cli.log_json, "warn");
            chat::run(args).await
        }
        Cmd::Tui(args) => {
            // The screen is the terminal: logs only where RUST_LOG asks for them.
            init_logging(cli.log_json, "off");
            tui::run(args).await
        }
        Cmd::Token(args) => token(args),
        Cmd::Cert(args) => cert(args),
        Cmd::Bench(args) => {
            init_logging(cli.log_json, "warn");
            bench::run(args).await
        }
    }
}
