//! A cluster: several `garou serve` nodes, one set of rooms, on PostgreSQL and NATS.
//!
//! **One hub, many relays.** One node at a time runs the rooms: the *hub*, chosen by a
//! lease in PostgreSQL ([`lease`]) whose generation fences every commit, so two nodes never
//! both sequence a room. Every other node is a *relay*: it terminates its clients'
//! connections (TLS, QUIC, WebTransport, WebSocket) and carries each one over NATS to the
//! hub as a virtual connection ([`relay`], [`frame`]); the hub runs the ordinary session
//! for it ([`remote`]). Every client is therefore a session of the same hub: one order and
//! one gap-free offset sequence per room, acks only after PostgreSQL committed, nicks,
//! lists, roles, direct messages and moderation are the cluster's by construction, and ids
//! continue from the store at each term.
//!
//! **Node loss.** A relay killed with `kill -9` stops heartbeating ([`nodes`]); the hub
//! ends its sessions after `relay_timeout_ms` (their users go offline, nicks free). The
//! hub killed: its lease runs out after `lease_ms`, another node takes it with the next
//! generation, loads the rooms from PostgreSQL and serves; every relay re-targets and
//! closes its connections, and clients reconnect (any node) and resume from their offsets:
//! nothing acked is lost (it is in PostgreSQL), nothing unacked was delivered (delivery
//! follows the commit). NATS or PostgreSQL away: `/ready` says which, publishes are refused
//! (not acked) while the store is away, and the node recovers by itself.
//!
//! What this does not do yet: spread the rooms over several hubs (the hub is one process:
//! relays take the connection and crypto load off it, not the room work), carry a
//! relayed room's fan-out once per node instead of once per session. Relays pass the HTTP
//! API (history, uploads, admin) through to the hub ([`crate::http::relay`]).

pub mod edge;
pub mod frame;
pub mod lease;
pub mod nodes;
mod pipe;
pub mod relay;
pub mod remote;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ServerConfig, StoreLocation};
use crate::server::{Gateway, Parts};
use crate::tls::Identity;

/// NATS subjects of one cluster (prefix `[cluster] name`), seen from one node.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
    node: String,
}

impl Subjects {
    pub fn new(prefix: &str, node: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_owned(),
            node: node.to_owned(),
        }
    }
    /// Where this relay sends its connections' frames for the hub of term `gen`.
    pub fn hub(&self, gen: u64) -> String {
        format!("{}.hub.{gen}.{}", self.prefix, self.node)
    }
    /// What the hub of term `gen` listens on (every relay).
    pub fn hub_all(&self, gen: u64) -> String {
        format!("{}.hub.{gen}.*", self.prefix)
    }
    /// Where this relay receives its connections' frames.
    pub fn relay(&self) -> String {
        self.relay_of(&self.node)
    }
    /// Where relay `node` receives its connections' frames.
    pub fn relay_of(&self, node: &str) -> String {
        format!("{}.relay.{node}", self.prefix)
    }
    /// Heartbeats.
    pub fn nodes(&self) -> String {
        format!("{}.nodes", self.prefix)
    }
}

/// A node's role now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Connecting to PostgreSQL and NATS, or waiting for a hub.
    Starting = 0,
    Hub = 1,
    Relay = 2,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Hub => "hub",
            Role::Relay => "relay",
        }
    }
}

/// What a node knows about itself and the cluster (for `/health`, `/ready`, `/metrics`).
pub struct Status {
    pub node: String,
    pub boot: u64,
    role: AtomicU8,
    gen: AtomicU64,
    hub: Mutex<String>,
    /// The hub's HTTP address (what relays name in their 503s).
    hub_http: Mutex<String>,
    nats_up: AtomicBool,
    /// Woken when the bus connection is lost: frames may have been lost with it, so every
    /// relayed connection ends (its client reconnects and resumes).
    pub bus_lost: tokio::sync::Notify,
    store_up: AtomicBool,
    /// Terms this node has held.
    pub terms: AtomicU64,
    /// Relayed connections closed because a bus frame was lost (each client resumes from
    /// its offsets: the cluster's gap fill).
    pub lost_frames: AtomicU64,
    pub nodes: Arc<nodes::Nodes>,
    /// This node's HTTP address as it advertises it.
    pub http: String,
}

impl Status {
    fn new(node: &str, http: String) -> Status {
        Status {
            node: node.to_owned(),
            boot: rand::random(),
            role: AtomicU8::new(Role::Starting as u8),
            gen: AtomicU64::new(0),
            hub: Mutex::new(String::new()),
            hub_http: Mutex::new(String::new()),
            nats_up: AtomicBool::new(false),
            bus_lost: tokio::sync::Notify::new(),
            store_up: AtomicBool::new(false),
            terms: AtomicU64::new(0),
            lost_frames: AtomicU64::new(0),
            nodes: Arc::default(),
            http,
        }
    }

    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Relaxed) {
            1 => Role::Hub,
            2 => Role::Relay,
            _ => Role::Starting,
        }
    }
    /// The hub term served or relayed to.
    pub fn gen(&self) -> u64 {
        self.gen.load(Ordering::Relaxed)
    }
    /// The hub node's name and HTTP address.
    pub fn hub(&self) -> (String, String) {
        (self.hub.lock().clone(), self.hub_http.lock().clone())
    }
    pub fn nats_up(&self) -> bool {
        self.nats_up.load(Ordering::Relaxed)
    }
    pub fn store_up(&self) -> bool {
        self.store_up.load(Ordering::Relaxed)
    }
    fn set(&self, role: Role, gen: u64, hub: &str, hub_http: &str) {
        self.role.store(role as u8, Ordering::Relaxed);
        self.gen.store(gen, Ordering::Relaxed);
        *self.hub.lock() = hub.to_owned();
        *self.hub_http.lock() = hub_http.to_owned();
    }

    /// Why this node cannot serve now (`None`: it can).
    pub fn unready(&self) -> Option<&'static str> {
        if !self.nats_up() {
            Some("cluster bus (NATS) unavailable")
        } else if !self.store_up() {
            Some("store (PostgreSQL) unavailable")
        } else if self.role() == Role::Starting {
            Some("no hub yet")
        } else if self.role() == Role::Relay && !self.hub_heard() {
            // The lease row can name a hub that died a moment ago (until its lease runs
            // out); its silence on the bus tells sooner.
            Some("hub not heard from")
        } else {
            None
        }
    }

    /// Whether the hub this node relays to sent a heartbeat within three beats.
    fn hub_heard(&self) -> bool {
        let hub = self.hub.lock().clone();
        self.nodes.get(&hub).is_some_and(|(_, ago)| ago < 3 * nodes::BEAT)
    }

    /// The cluster's series for `/metrics`, in the text format.
    pub fn metrics(&self) -> String {
        let live = self.nodes.live(3 * nodes::BEAT);
        let role = self.role() as u8;
        format!(
            "# HELP garou_cluster_nodes Nodes heard from within 3 s (this one included).\n\
             # TYPE garou_cluster_nodes gauge\ngarou_cluster_nodes {live}\n\
             # HELP garou_cluster_role This node's role: 0 starting, 1 hub, 2 relay.\n\
             # TYPE garou_cluster_role gauge\ngarou_cluster_role {role}\n\
             # HELP garou_cluster_term The hub term (lease generation) served or relayed to.\n\
             # TYPE garou_cluster_term gauge\ngarou_cluster_term {}\n\
             # HELP garou_cluster_terms Hub terms this node has held.\n\
             # TYPE garou_cluster_terms counter\ngarou_cluster_terms_total {}\n\
             # HELP garou_cluster_up Whether a dependency answers (1) or not (0).\n\
             # TYPE garou_cluster_up gauge\ngarou_cluster_up{{dependency=\"nats\"}} {}\n\
             garou_cluster_up{{dependency=\"postgres\"}} {}\n\
             # HELP garou_cluster_lost_frames Relayed connections closed for a frame the bus lost (their clients resume).\n\
             # TYPE garou_cluster_lost_frames counter\ngarou_cluster_lost_frames_total {}\n\
             # HELP garou_cluster_bus_delay_seconds How long each node's last heartbeat took over the bus.\n\
             # TYPE garou_cluster_bus_delay_seconds gauge\n{}",
            self.gen(),
            self.terms.load(Ordering::Relaxed),
            u8::from(self.nats_up()),
            u8::from(self.store_up()),
            self.lost_frames.load(Ordering::Relaxed),
            self.nodes
                .list()
                .iter()
                .map(|n| format!(
                    "garou_cluster_bus_delay_seconds{{node=\"{}\"}} {}\n",
                    n.beat.node,
                    n.delay_ms as f64 / 1000.0
                ))
                .collect::<String>(),
        )
    }

    /// The cluster part of `/health` and the admin API's node list.
    pub fn describe(&self) -> serde_json::Value {
        let (hub, hub_http) = self.hub();
        serde_json::json!({
            "node": self.node,
            "role": self.role().as_str(),
            "term": self.gen(),
            "hub": hub,
            "hub_http": hub_http,
            "nats": if self.nats_up() { "up" } else { "down" },
            "store": if self.store_up() { "up" } else { "down" },
            "nodes": self.nodes.list(),
        })
    }
}

/// A running cluster node (see the module docs). Dropping it does not stop it.
pub struct Node {
    pub status: Arc<Status>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Connect to NATS and PostgreSQL and start taking part: as the hub if the lease is
    /// free, as a relay otherwise. Returns at once; the node works in the background and
    /// retries what is unavailable.
    pub async fn start(cfg: ServerConfig) -> anyhow::Result<Node> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        let (Some(node), Some(nats_url)) = (cfg.cluster.node.clone(), cfg.cluster.nats.clone()) else {
            anyhow::bail!("not a cluster node: set [cluster] node and nats");
        };
        let StoreLocation::Postgres(url) = cfg.store_location().map_err(anyhow::Error::msg)? else {
            anyhow::bail!("a cluster node needs a postgres:// store");
        };
        let identity = crate::server::identity(&cfg)?;
        let http = cfg
            .cluster
            .advertise_http
            .clone()
            .unwrap_or_else(|| crate::server::display_addr(cfg.http));
        let status = Arc::new(Status::new(&node, http));
        let up = status.clone();
        let down = status.clone();
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .subscription_capacity(1 << 16)
            .event_callback(move |event| {
                let (up, down) = (up.clone(), down.clone());
                async move {
                    match event {
                        async_nats::Event::Connected => up.nats_up.store(true, Ordering::Relaxed),
                        async_nats::Event::Disconnected => {
                            warn!("cluster bus (NATS) lost; relayed connections end; reconnecting");
                            down.nats_up.store(false, Ordering::Relaxed);
                            down.bus_lost.notify_waiters();
                        }
                        other => tracing::debug!(event = %other, "NATS"),
                    }
                }
            })
            .connect(nats_url.split(',').map(str::trim).collect::<Vec<_>>().as_slice())
            .await?;
        let stop = CancellationToken::new();
        let subjects = Subjects::new(&cfg.cluster.name, &node);
        let beat_status = status.clone();
        nodes::run(
            nats.clone(),
            subjects.nodes(),
            status.nodes.clone(),
            move || nodes::Beat {
                node: beat_status.node.clone(),
                boot: beat_status.boot,
                role: beat_status.role().as_str().into(),
                gen: beat_status.gen(),
                http: beat_status.http.clone(),
                sent_ms: 0,
            },
            stop.clone(),
        )
        .await?;
        let run = Run {
            cfg,
            identity,
            url,
            nats,
            subjects,
            status: status.clone(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(run.run());
        Ok(Node { status, stop, task })
    }

    /// Leave the cluster: a hub shuts its sessions down and hands its lease back at once
    /// (another node takes over without waiting for it to run out).
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The node's loop of terms.
struct Run {
    cfg: ServerConfig,
    identity: Identity,
    url: String,
    nats: async_nats::Client,
    subjects: Subjects,
    status: Arc<Status>,
    stop: CancellationToken,
}

impl Run {
    fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.cfg.cluster.lease_ms)
    }

    /// Renew (hub) or look (relay) this often: a fifth of the lease.
    fn period(&self) -> Duration {
        self.lease_ttl() / 5
    }

    async fn run(self) {
        let node = self.status.node.clone();
        let lease = loop {
            match lease::Lease::connect(&self.url, &node, self.lease_ttl()).await {
                Ok(l) => break l,
                Err(e) => {
                    self.status.store_up.store(false, Ordering::Relaxed);
                    warn!(error = %e, "cluster: PostgreSQL unavailable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = self.stop.cancelled() => return,
                    }
                }
            }
        };
        self.status.store_up.store(true, Ordering::Relaxed);
        let mut next: Option<u64> = None;
        while !self.stop.is_cancelled() {
            let gen = match next.take() {
                Some(g) => Some(g),
                None => match lease.try_acquire(&self.status.http).await {
                    Ok(g) => {
                        self.status.store_up.store(true, Ordering::Relaxed);
                        g
                    }
                    Err(e) => {
                        self.status.store_up.store(false, Ordering::Relaxed);
                        warn!(error = %e, "cluster: cannot reach the lease");
                        None
                    }
                },
            };
            if let Some(gen) = gen {
                if let Err(e) = self.hub_term(&lease, gen).await {
                    warn!(error = %e, gen, "cluster: hub term failed");
                }
                continue;
            }
            match lease.holder().await {
                Ok(Some(h)) if h.live => match self.relay_term(&lease, &h).await {
                    Ok(n) => next = n,
                    Err(e) => warn!(error = %e, "cluster: relay term failed"),
                },
                Ok(_) => self.status.set(Role::Starting, 0, "", ""),
                Err(e) => {
                    self.status.store_up.store(false, Ordering::Relaxed);
                    warn!(error = %e, "cluster: cannot read the lease");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.period()) => {}
                _ = self.stop.cancelled() => {}
            }
        }
    }

    /// Start a gateway, retrying while the previous term's ports are still being released.
    async fn bind<T, F: std::future::Future<Output = anyhow::Result<T>>>(
        &self,
        mut start: impl FnMut() -> F,
    ) -> anyhow::Result<T> {
        let mut tries = 0;
        loop {
            match start().await {
                Ok(v) => return Ok(v),
                Err(e) if tries < 20 && !self.stop.is_cancelled() => {
                    tries += 1;
                    tracing::debug!(error = %e, "cluster: binding again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Run the rooms for term `gen` until the lease is lost or the node stops.
    async fn hub_term(&self, lease: &lease::Lease, gen: u64) -> anyhow::Result<()> {
        info!(gen, "cluster: this node is the hub");
        self.status.terms.fetch_add(1, Ordering::Relaxed);
        self.status
            .set(Role::Hub, gen, &self.status.node, &self.status.http);
        let store = crate::store::postgres::PostgresStore::open(&self.url)
            .await?
            .fenced(gen);
        let store: Arc<dyn crate::store::Store> = Arc::new(store);
        let gw = self
            .bind(|| {
                let parts = Parts {
                    identity: Some(self.identity.clone()),
                    store: Some(store.clone()),
                    cluster: Some(self.status.clone()),
                };
                Gateway::start_with(self.cfg.clone(), parts)
            })
            .await;
        let gw = match gw {
            Ok(gw) => gw,
            Err(e) => {
                let _ = lease.release(gen).await;
                return Err(e);
            }
        };
        let remotes = Arc::new(remote::Remotes::default());
        let side = Arc::new(remote::HubSide {
            hub: gw.hub.clone(),
            cfg: gw.config().clone(),
            limits: gw.limits.clone(),
            nats: self.nats.clone(),
            subjects: self.subjects.clone(),
            shutdown: gw.shutdown_token(),
            status: self.status.clone(),
            buses: Default::default(),
        });
        remote::serve(side, gen, remotes.clone()).await?;
        let timeout = Duration::from_millis(self.cfg.cluster.relay_timeout_ms);
        let mut boots: std::collections::HashMap<String, u64> = Default::default();
        let mut every = tokio::time::interval(self.period());
        let lost = loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = self.stop.cancelled() => break false,
            }
            match lease.renew(gen).await {
                Ok(true) => self.status.store_up.store(true, Ordering::Relaxed),
                Ok(false) => break true,
                Err(e) => {
                    self.status.store_up.store(false, Ordering::Relaxed);
                    warn!(error = %e, gen, "cluster: cannot renew the hub lease (still serving; commits wait for the store)");
                }
            }
            // Relays that died or restarted: their sessions end.
            for seen in self.status.nodes.list() {
                let b = &seen.beat;
                if b.node == self.status.node {
                    continue;
                }
                let restarted = boots
                    .insert(b.node.clone(), b.boot)
                    .is_some_and(|old| old != b.boot);
                if restarted || seen.silent_ms > timeout.as_millis() as u64 {
                    let n = remotes.drop_node(&b.node);
                    if n > 0 {
                        warn!(relay = %b.node, sessions = n, restarted, "cluster: relay gone; its sessions end");
                    }
                }
            }
        };
        if lost {
            warn!(gen, "cluster: the hub lease was taken over; stepping down");
        }
        self.status.set(Role::Starting, 0, "", "");
        gw.shutdown_now().await;
        if !lost {
            let _ = lease.release(gen).await;
        }
        Ok(())
    }

    /// Relay to the hub `holder` until another term begins (returned if it is this node's)
    /// or the node stops.
    async fn relay_term(&self, lease: &lease::Lease, holder: &lease::Holder) -> anyhow::Result<Option<u64>> {
        info!(hub = %holder.node, gen = holder.gen, "cluster: this node relays to the hub");
        self.status
            .set(Role::Relay, holder.gen, &holder.node, &holder.http);
        let handshake = self.cfg.handshake_timeout();
        let relay = relay::Relay::start(
            self.nats.clone(),
            &self.subjects,
            (holder.gen, &holder.node),
            handshake,
            self.status.clone(),
        )
        .await?;
        let server = self
            .bind(|| {
                edge::Edge::start(
                    self.cfg.clone(),
                    self.identity.clone(),
                    relay.clone(),
                    self.status.clone(),
                )
            })
            .await?;
        let mut every = tokio::time::interval(self.period());
        let next = loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = self.stop.cancelled() => break None,
            }
            match lease.try_acquire(&self.status.http).await {
                Ok(Some(gen)) => break Some(gen),
                Ok(None) => self.status.store_up.store(true, Ordering::Relaxed),
                Err(_) => {
                    self.status.store_up.store(false, Ordering::Relaxed);
                    continue;
                }
            }
            match lease.holder().await {
                Ok(Some(h)) if h.gen != holder.gen => break None,
                _ => {}
            }
        };
        self.status.set(Role::Starting, 0, "", "");
        server.shutdown().await;
        Ok(next)
    }
}
