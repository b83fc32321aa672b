//! Server settings (seed 000's ServerConfig / StreamConfig / ShardConfig).
//!
//! Sources, weakest first: built-in defaults, the TOML file given by `--config`,
//! `GAROU_*` environment variables (nested keys joined by `__`, e.g.
//! `GAROU_SHARD__HOT_ROOM_THRESHOLD=50`), then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::store::Retention;

/// Messages remembered per room for edits, deletes, reactions, receipts and idempotent
/// publishing, by default ([`ServerConfig::recent_messages`]). Durable history is in the
/// store; this is the in-memory window.
pub const RECENT_MESSAGES: usize = 10_000;

/// Everything the gateway can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// UDP address for QUIC and WebTransport, one port for both (dual-stack `[::]` by default).
    pub quic: SocketAddr,
    /// TCP address for HTTP: the chat page, `/cert-hash`, `/health`, `/ws`.
    pub http: SocketAddr,
    /// Where uploads and the embedded store (SQLite, unless `[store] url` says otherwise)
    /// live; created on first start.
    pub data: PathBuf,
    /// Which store holds the durable state (`[store]`).
    pub store: StoreConfig,
    /// SQLite's `synchronous` in WAL mode: `full` (default) fsyncs every group commit, so an
    /// acknowledged message survives a power cut; `normal` survives a killed process but
    /// not a power cut, and takes the fsync off the publish→delivery path.
    pub sqlite_synchronous: SqliteSynchronous,
    /// Messages each room keeps in memory (edits, reactions, receipts, and the fast path of
    /// idempotent publishing: a re-sent client id the window still knows is answered without
    /// a store read; older ones are looked up in the store). At least 1.
    pub recent_messages: usize,
    /// Messages all rooms together keep in memory (each room within `recent_messages`):
    /// one budget, so memory does not grow with the number of rooms. Past it, the oldest
    /// remembered message of any room is forgotten (still in the store). About 150 bytes
    /// each. At least 1.
    pub recent_messages_total: usize,
    /// PEM certificate chain; with `key`, replaces the self-signed dev certificate.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// Connections beyond this are refused.
    pub max_connections: usize,
    /// A session that sends nothing for this long is closed (clients ping every `heartbeat_secs`).
    pub idle_timeout_secs: u64,
    /// Interval at which clients are asked to ping.
    pub heartbeat_secs: u64,
    /// Hello..ShardAssignment must complete within this.
    pub handshake_timeout_secs: u64,
    /// A lost session's resume token (from its Welcome) stays valid this long after the
    /// session ended; while the session lingers it is always valid (0: only then).
    pub resume_token_ttl_secs: u64,
    /// Typing and presence datagrams on or off.
    pub enable_datagrams: bool,
    /// Largest frame accepted, in bytes (checked before allocation).
    pub max_frame: usize,
    /// Longest message text, in bytes.
    pub max_message_len: usize,
    /// On SIGINT/SIGTERM: how long clients get to receive Shutdown and leave.
    pub shutdown_grace_secs: u64,
    /// On SIGINT/SIGTERM: how long `/ready` answers 503 before sessions are told to leave,
    /// so a load balancer stops sending new clients here first (0: at once).
    pub unready_delay_secs: u64,
    pub admin: AdminConfig,
    /// Several nodes serving one set of rooms (`[cluster]`); off unless `node` and `nats`
    /// are set.
    pub cluster: ClusterConfig,
    pub stream: StreamConfig,
    pub shard: ShardConfig,
    pub retention: RetentionConfig,
    pub uploads: UploadConfig,
    /// The HTTP listener: CORS origins, timeouts, connection caps (`[http_server]`).
    pub http_server: HttpServerConfig,
    /// Token verification and guests; no key = open dev mode.
    pub auth: crate::auth::AuthConfig,
    pub limits: LimitsConfig,
}

/// Abuse limits: connection admission, per-client rates, room sizes, datagram size.
/// (`max_connections`, `max_frame` and `stream.max_concurrent_streams` stay where they were.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// New connections accepted per client IP per second (token bucket refill rate).
    pub connections_per_ip_per_sec: f64,
    /// Connections one IP may open at once before the rate applies (bucket size).
    pub connections_per_ip_burst: u32,
    /// IPs tracked for the per-IP rate and cap (and users / IPs tracked for the per-user
    /// and per-IP command rates); bounds each table's memory.
    pub ip_table_size: usize,
    /// Connections one IP may hold open at once, all transports together (0 = no limit).
    /// Refused beyond it: QUIC/WebTransport close with LimitReached, WebSocket gets 429.
    /// Raise it for clients behind one large NAT.
    pub max_connections_per_ip: usize,
    /// Largest frame accepted on the control stream before authentication succeeds, bytes.
    /// A Hello is tens of bytes and an Auth carries at most a token (a JWT is a few
    /// hundred bytes to a few KiB), so an unauthenticated peer cannot make the gateway
    /// buffer `max_frame` per connection. Larger frames close with FrameTooLarge as soon
    /// as their header arrives. A `max_frame` below it caps it too.
    pub pre_auth_max_frame: usize,
    /// Partial-frame bytes one connection may have buffered across all its streams (a
    /// frame being received, not yet whole). Beyond it the connection is closed with
    /// LimitReached. Must hold at least one `max_frame` frame.
    pub max_buffered_per_connection: usize,
    /// Gateway-wide budget for partial-frame bytes, all connections together. A
    /// connection whose bytes would exceed it is closed with LimitReached; the others
    /// and the process go on.
    pub buffer_budget: usize,
    /// Frames per second a client may make the server act on (commands, acks, upload
    /// chunks, typing datagrams, pings), per session.
    pub commands_per_sec: f64,
    /// Frames a client may send at once before the rate applies, per session.
    pub command_burst: u32,
    /// Frames per second all sessions of one user share (a user with a few devices): more
    /// sessions do not buy more throughput.
    pub commands_per_sec_per_user: f64,
    /// Burst of the per-user rate.
    pub command_burst_per_user: u32,
    /// Frames per second all sessions from one IP share, whoever they are. Well above the
    /// per-user rate: an office or carrier NAT puts many users behind one address.
    pub commands_per_sec_per_ip: f64,
    /// Burst of the per-IP rate.
    pub command_burst_per_ip: u32,
    /// Throttles tolerated within `throttle_window_secs`; still over the limit after these
    /// and the connection is closed with RateLimited.
    pub max_throttles: u32,
    pub throttle_window_secs: u64,
    /// Rooms one user may be a member of (0 = no limit).
    pub max_rooms_per_user: usize,
    /// Members one room may have (0 = no limit).
    pub max_members_per_room: usize,
    /// Largest datagram accepted, bytes; larger ones are dropped and counted.
    pub max_datagram: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            connections_per_ip_per_sec: 10.0,
            connections_per_ip_burst: 50,
            ip_table_size: 65_536,
            max_connections_per_ip: 64,
            pre_auth_max_frame: 16 * 1024,
            max_buffered_per_connection: 2 * 1024 * 1024,
            buffer_budget: 256 * 1024 * 1024,
            commands_per_sec: 100.0,
            command_burst: 200,
            commands_per_sec_per_user: 200.0,
            command_burst_per_user: 400,
            commands_per_sec_per_ip: 2000.0,
            command_burst_per_ip: 4000,
            max_throttles: 5,
            throttle_window_secs: 30,
            max_rooms_per_user: 1000,
            max_members_per_room: 100_000,
            max_datagram: 1200,
        }
    }
}

/// History kept per room kind (0 = no limit).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub direct: Retention,
    pub group: Retention,
    pub channel: Retention,
}

/// The admin HTTP API (`/api/admin/*`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token of the admin API; without one the API does not exist (404).
    pub token: Option<String>,
}

/// The token never reaches a log.
impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A cluster: nodes sharing a PostgreSQL store and a NATS bus (see `crate::cluster`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (e.g. the host name).
    pub node: Option<String>,
    /// The NATS server(s) between nodes: `nats://host:4222` (comma-separated for several).
    pub nats: Option<String>,
    /// Subject prefix on NATS: clusters sharing one NATS server need different names.
    pub name: String,
    /// The hub lease's length in milliseconds: how long a dead hub node goes unnoticed.
    pub lease_ms: u64,
    /// A relay node silent this long (milliseconds) is taken for dead by the hub: its
    /// sessions end, its users' nicks become free.
    pub relay_timeout_ms: u64,
    /// The HTTP address other nodes and clients can reach this one at (advertised in the
    /// node list); defaults to the bound address.
    pub advertise_http: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node: None,
            nats: None,
            name: "garou".into(),
            lease_ms: 5_000,
            relay_timeout_ms: 10_000,
            advertise_http: None,
        }
    }
}

impl ClusterConfig {
    /// Whether this node is part of a cluster.
    pub fn enabled(&self) -> bool {
        self.node.as_deref().is_some_and(|n| !n.is_empty())
            && self.nats.as_deref().is_some_and(|n| !n.is_empty())
    }
}

/// Upload limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Largest upload, bytes.
    pub max_size: u64,
    /// Content types accepted (prefix match, e.g. "image/").
    pub content_types: Vec<String>,
    /// Let anonymous guests upload and download attachments (default: no; they still read
    /// the messages of the rooms they joined).
    pub allow_guests: bool,
    /// Bytes one user may have stored (declared sizes of every upload of theirs, finished
    /// or not); 0 = no limit.
    pub quota_bytes_per_user: u64,
    /// New uploads one user may start per `rate_window_secs` (resuming one does not
    /// count); 0 = no limit.
    pub uploads_per_window: u32,
    pub rate_window_secs: u64,
    /// Disk budget of all uploads together, bytes (declared sizes, finished or not); a new
    /// upload beyond it is refused with LimitReached ("storage is full"); 0 = no limit.
    pub max_total_bytes: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_size: 25 * 1024 * 1024,
            content_types: vec![
                "image/".into(),
                "text/plain".into(),
                "application/pdf".into(),
                "application/octet-stream".into(),
            ],
            allow_guests: false,
            quota_bytes_per_user: 1024 * 1024 * 1024,
            uploads_per_window: 20,
            rate_window_secs: 60,
            max_total_bytes: 20 * 1024 * 1024 * 1024,
        }
    }
}

/// The HTTP listener (chat page, APIs, `/ws`, uploads): who may read it cross-origin, how
/// long a client may take, and how many connections it may hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Origins whose pages may read the HTTP API's answers (CORS), e.g.
    /// `["https://chat.example.com"]`; `"*"` allows any. Empty (default): same origin only,
    /// no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// A request head must arrive whole within this; it also bounds how long a kept-alive
    /// connection may wait idle for its next request (the keep-alive idle timeout).
    pub header_timeout_secs: u64,
    /// A connection on which no byte moves either way for this long while a request is
    /// read or answered is closed (a stalled body, a client that stopped reading). Not
    /// applied after a WebSocket upgrade (the session has its own idle timeout).
    pub idle_timeout_secs: u64,
    /// A request other than an upload must be answered within this (408 otherwise).
    pub request_timeout_secs: u64,
    /// An upload body (`POST /api/uploads`) must average at least this many bytes per
    /// second after a 10 s grace, or it is cut off with 408: a 25 MiB file at the default
    /// (16 KiB/s) may take 26 minutes; a trickling client cannot hold a connection forever.
    pub upload_min_bytes_per_sec: u64,
    /// HTTP connections open at once; beyond, new ones are closed at accept (counted).
    /// A WebSocket stops counting here once upgraded (sessions have their own limits).
    pub max_connections: usize,
    /// HTTP connections one client IP may hold open at once; beyond, closed at accept.
    pub max_connections_per_ip: usize,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            cors_origins: Vec::new(),
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            request_timeout_secs: 30,
            upload_min_bytes_per_sec: 16 * 1024,
            max_connections: 2048,
            max_connections_per_ip: 256,
        }
    }
}

/// Per-connection stream settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Uni streams a client may have open towards the server.
    pub max_concurrent_streams: u32,
    /// QUIC send window per connection, bytes.
    pub send_buffer_size: u64,
    /// QUIC receive window per stream, bytes.
    pub recv_buffer_size: u64,
    /// Frames queued per server->client stream before the client counts as a slow consumer.
    pub lane_queue: usize,
    /// QUIC ACK-frequency extension: peers that support it (quinn clients; browsers do not
    /// yet) are asked to acknowledge only after more than this many ack-eliciting packets
    /// (or `max_ack_delay_ms`). 1 is plain QUIC (every other packet); higher means fewer
    /// inbound ACK datagrams for the server to receive, decrypt and process per delivery.
    /// Default 4: paced fan-out CPU 1.84 vs 2.27 CPU-s per 100k deliveries with plain QUIC
    /// (`bench/README.md`, *Where Garou stands*).
    pub ack_eliciting_threshold: u32,
    /// The longest a peer may delay an ACK under the extension (quinn caps it at
    /// max(RTT, 25 ms)).
    pub max_ack_delay_ms: u64,
}

/// The store (`[store]`, `GAROU_STORE__URL`, `garou serve --store`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/db` (or `postgresql://`) for PostgreSQL, the
    /// shared store of a cluster; `sqlite://DIR` or a plain `DIR` for SQLite in `DIR/garou.db`.
    /// Unset: SQLite in `data`.
    pub url: Option<String>,
}

/// Where the store is, from [`StoreConfig::url`] (see [`ServerConfig::store_location`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// SQLite in this directory (`garou.db`).
    Sqlite(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(String),
}

/// SQLite `synchronous` setting (see [`ServerConfig::sqlite_synchronous`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

/// Room sharding and hot-room promotion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShardConfig {
    /// Shard streams per connection; rooms hash onto them.
    pub num_shards: u16,
    /// A room above this many messages/s (averaged over `rate_window_secs`) is promoted.
    pub hot_room_threshold: f64,
    /// A hot room below this rate for `cool_down_period_secs` is demoted.
    pub cool_down_threshold: f64,
    pub cool_down_period_secs: u64,
    /// Hot rooms at once (so also per connection).
    pub max_hot_rooms: usize,
    pub rate_window_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            quic: "[::]:4433".parse().expect("valid default address"),
            http: "[::]:8080".parse().expect("valid default address"),
            data: PathBuf::from("data"),
            store: StoreConfig::default(),
            sqlite_synchronous: SqliteSynchronous::Full,
            recent_messages: RECENT_MESSAGES,
            recent_messages_total: 500_000,
            cert: None,
            key: None,
            max_connections: 10_000,
            idle_timeout_secs: 45,
            heartbeat_secs: 15,
            handshake_timeout_secs: 10,
            resume_token_ttl_secs: 600,
            enable_datagrams: true,
            max_frame: garou_protocol::DEFAULT_MAX_FRAME,
            max_message_len: 16 * 1024,
            shutdown_grace_secs: 5,
            unready_delay_secs: 0,
            admin: AdminConfig::default(),
            cluster: ClusterConfig::default(),
            stream: StreamConfig::default(),
            shard: ShardConfig::default(),
            retention: RetentionConfig::default(),
            uploads: UploadConfig::default(),
            http_server: HttpServerConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_concurrent_streams: 16,
            send_buffer_size: 65536 * 16,
            recv_buffer_size: 65536,
            lane_queue: 1024,
            ack_eliciting_threshold: 4,
            max_ack_delay_ms: 25,
        }
    }
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            num_shards: 8,
            hot_room_threshold: 100.0,
            cool_down_threshold: 20.0,
            cool_down_period_secs: 60,
            max_hot_rooms: 10,
            rate_window_secs: 10,
        }
    }
}

impl ServerConfig {
    /// Merge defaults, `file`, `GAROU_*` env vars and `overrides` (CLI flags, already
    /// shaped like this struct with only the given keys present).
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> Result<ServerConfig, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        // Only variables naming a setting: GAROU_* is a common prefix for other tools too
        // (scripts, test harnesses), and an unknown one must not stop the gateway.
        let known = ServerConfig::top_level_keys();
        let env = Env::prefixed("GAROU_").split("__").filter(move |key| {
            let key = key.as_str().to_ascii_lowercase();
            known.iter().any(|k| {
                key.strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("__") || rest.starts_with('.'))
            })
        });
        fig = fig.merge(env).merge(Serialized::defaults(overrides));
        let cfg: ServerConfig = fig.extract().map_err(Box::new)?;
        cfg.validate().map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(cfg)
    }

    /// Names of the top-level settings (for filtering environment variables).
    fn top_level_keys() -> Vec<String> {
        match serde_json::to_value(ServerConfig::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Where the store is: `[store] url` parsed, or SQLite in `data` when unset.
    pub fn store_location(&self) -> Result<StoreLocation, String> {
        let Some(url) = self.store.url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(StoreLocation::Sqlite(self.data.clone()));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(url.to_owned()));
        }
        if let Some(dir) = url.strip_prefix("sqlite://") {
            return Ok(StoreLocation::Sqlite(PathBuf::from(dir)));
        }
        match url.split_once("://") {
            Some((scheme, _)) => Err(format!(
                "store.url: unknown scheme {scheme:?}: postgres://..., sqlite://DIR or a directory"
            )),
            None => Ok(StoreLocation::Sqlite(PathBuf::from(url))),
        }
    }

    /// Reject settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        self.store_location()?;
        if self.cluster.node.is_some() != self.cluster.nats.is_some() {
            return Err("cluster: set both node and nats (--node and --nats), or neither".into());
        }
        if self.cluster.enabled() {
            if !matches!(self.store_location()?, StoreLocation::Postgres(_)) {
                return Err("cluster: the nodes share their store: --store postgres://...".into());
            }
            let node = self.cluster.node.as_deref().unwrap_or_default();
            if !node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!("cluster.node {node:?}: letters, digits, - and _ only"));
            }
            if self.cluster.lease_ms < 500 {
                return Err("cluster.lease_ms: at least 500".into());
            }
        }
        if self.shard.num_shards == 0 {
            return Err("shard.num_shards must be at least 1".into());
        }
        if self.shard.rate_window_secs == 0 {
            return Err("shard.rate_window_secs must be at least 1".into());
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err("cert and key must be given together".into());
        }
        if self.max_frame < 1024 {
            return Err("max_frame must be at least 1024".into());
        }
        if self.recent_messages == 0 {
            return Err("recent_messages must be at least 1".into());
        }
        if self.recent_messages_total == 0 {
            return Err("recent_messages_total must be at least 1".into());
        }
        if self.admin.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err("admin.token must be at least 16 characters".into());
        }
        let l = &self.limits;
        // Written so NaN fails too.
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(l.commands_per_sec) || l.command_burst == 0 {
            return Err("limits.commands_per_sec and limits.command_burst must be above 0".into());
        }
        if !positive(l.connections_per_ip_per_sec) || l.connections_per_ip_burst == 0 || l.ip_table_size == 0
        {
            return Err("limits.connections_per_ip_* and limits.ip_table_size must be above 0".into());
        }
        if !positive(l.commands_per_sec_per_user)
            || l.command_burst_per_user == 0
            || !positive(l.commands_per_sec_per_ip)
            || l.command_burst_per_ip == 0
        {
            return Err(
                "limits.commands_per_sec_per_* and limits.command_burst_per_* must be above 0".into(),
            );
        }
        if l.pre_auth_max_frame < 256 {
            return Err("limits.pre_auth_max_frame must be at least 256".into());
        }
        if l.max_buffered_per_connection < self.max_frame + garou_protocol::HEADER_LEN {
            return Err(
                "limits.max_buffered_per_connection must hold one max_frame frame (max_frame + 5)".into(),
            );
        }
        if l.buffer_budget < l.max_buffered_per_connection {
            return Err("limits.buffer_budget must be at least limits.max_buffered_per_connection".into());
        }
        if l.throttle_window_secs == 0 {
            return Err("limits.throttle_window_secs must be at least 1".into());
        }
        if l.max_datagram < 64 {
            return Err("limits.max_datagram must be at least 64".into());
        }
        if self.stream.ack_eliciting_threshold > 1000 || self.stream.max_ack_delay_ms > 1000 {
            return Err(
                "stream.ack_eliciting_threshold and stream.max_ack_delay_ms must be at most 1000".into(),
            );
        }
        let h = &self.http_server;
        if h.header_timeout_secs == 0
            || h.idle_timeout_secs == 0
            || h.request_timeout_secs == 0
            || h.max_connections == 0
            || h.max_connections_per_ip == 0
        {
            return Err(
                "http_server timeouts, max_connections and max_connections_per_ip must be above 0".into(),
            );
        }
        if self.uploads.rate_window_secs == 0 {
            return Err("uploads.rate_window_secs must be at least 1".into());
        }
        if self.stream.lane_queue == 0 {
            return Err("stream.lane_queue must be at least 1".into());
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
    fn precedence_file_env_cli() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garou.toml");
        std::fs::write(
            &path,
            "max_connections = 7\nheartbeat_secs = 3\n[shard]\nnum_shards = 4\nhot_room_threshold = 5.0\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("GAROU_HEARTBEAT_SECS", "9");
            jail.set_env("GAROU_SHARD__NUM_SHARDS", "16");
            jail.set_env("GAROU_BIN", "/not/a/setting");
            let cli = serde_json::json!({ "shard": { "num_shards": 2 } });
            let cfg = ServerConfig::load(Some(&path), cli).unwrap();
            assert_eq!(cfg.max_connections, 7, "file beats default");
            assert_eq!(cfg.heartbeat_secs, 9, "env beats file");
            assert_eq!(cfg.shard.num_shards, 2, "cli beats env");
            assert_eq!(cfg.shard.hot_room_threshold, 5.0, "nested file key kept");
            assert_eq!(cfg.shard.max_hot_rooms, 10, "nested default kept");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
    fn store_url_from_file_env_and_flag() {
        let default = ServerConfig::load(None, serde_json::json!({})).unwrap();
        assert_eq!(
            default.store_location(),
            Ok(StoreLocation::Sqlite(PathBuf::from("data")))
        );
        figment::Jail::expect_with(|jail| {
            jail.create_file("garou.toml", "[store]\nurl = \"sqlite:///var/lib/garou\"\n")?;
            let path = jail.directory().join("garou.toml");
            let cfg = ServerConfig::load(Some(&path), serde_json::json!({})).unwrap();
            assert_eq!(
                cfg.store_location(),
                Ok(StoreLocation::Sqlite("/var/lib/garou".into()))
            );
            jail.set_env("GAROU_STORE__URL", "postgres://garou@db:5432/chat");
            let cfg = ServerConfig::load(Some(&path), serde_json::json!({})).unwrap();
            assert_eq!(
                cfg.store_location(),
                Ok(StoreLocation::Postgres("postgres://garou@db:5432/chat".into()))
            );
            let cli = serde_json::json!({ "store": { "url": "some/dir" } });
            let cfg = ServerConfig::load(Some(&path), cli).unwrap();
            assert_eq!(cfg.store_location(), Ok(StoreLocation::Sqlite("some/dir".into())));
            Ok(())
        });
        let err =
            ServerConfig::load(None, serde_json::json!({ "store": { "url": "mysql://x" } })).unwrap_err();
        assert!(err.to_string().contains("mysql"), "{err}");
    }

    #[test]
    fn rejects_bad_values() {
        let err = ServerConfig::load(None, serde_json::json!({ "shard": { "num_shards": 0 } })).unwrap_err();
        assert!(err.to_string().contains("num_shards"), "{err}");
        let err = ServerConfig::load(None, serde_json::json!({ "nope": 1 })).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = ServerConfig::load(None, serde_json::json!({ "sqlite_synchronous": "off" })).unwrap_err();
        assert!(err.to_string().contains("off"), "{err}");
        let err = ServerConfig::load(
            None,
            serde_json::json!({ "stream": { "max_ack_delay_ms": 5000 } }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_ack_delay_ms"), "{err}");
        let err = ServerConfig::load(
            None,
            serde_json::json!({ "limits": { "max_buffered_per_connection": 4096 } }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_buffered_per_connection"), "{err}");
        let err = ServerConfig::load(
            None,
            serde_json::json!({ "limits": { "pre_auth_max_frame": 10 } }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("pre_auth_max_frame"), "{err}");
        let err = ServerConfig::load(
            None,
            serde_json::json!({ "limits": { "commands_per_sec_per_user": 0.0 } }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("commands_per_sec_per_"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn durability_and_ack_frequency_from_env() {
        figment::Jail::expect_with(|jail| {
            let cfg = ServerConfig::load(None, serde_json::json!({})).unwrap();
            assert_eq!(
                cfg.sqlite_synchronous,
                SqliteSynchronous::Full,
                "durable by default"
            );
            jail.set_env("GAROU_SQLITE_SYNCHRONOUS", "normal");
            jail.set_env("GAROU_STREAM__ACK_ELICITING_THRESHOLD", "1");
            let cfg = ServerConfig::load(None, serde_json::json!({})).unwrap();
            assert_eq!(cfg.sqlite_synchronous, SqliteSynchronous::Normal);
            assert_eq!(cfg.stream.ack_eliciting_threshold, 1);
            Ok(())
        });
    }
}
