//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Built on `prometheus-client` rather than the `metrics` facade: it has no global recorder
//! to install (tests start many gateways in one process), it is small to compile, and its
//! handles are plain shared atomics. Every labelled series is resolved to its handle once,
//! at first use of [`get`], into arrays indexed by transport, frame type byte or error
//! code: the hot paths (fan-out, frame reading and writing) do an array index and an
//! atomic add, never a string format or a label hash.
//!
//! One set of metrics per process (a gateway is one process in production) for what the
//! sessions and transports count. What the hub counts (fan-outs, publish latency, store
//! commits and errors) it keeps itself ([`crate::hub::stats`]); those series, and the
//! gauges that describe the hub (sessions, rooms, members), are rendered from the hub's
//! snapshots at scrape time, so they are exact for the gateway asked and the hub never
//! names this module.
//!
//! [`SERIES`] lists every series with its type and labels; the README table is written
//! from it and the observability test checks both against a real scrape.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use garou_protocol::{ErrorCode, Frame, FrameType, Message, HEADER_LEN};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::hub::stats::{bucket_bounds, HistogramSnapshot, StatsSnapshot, STORE_ERROR_KINDS};
use crate::hub::Hub;

/// One documented series: its name as scraped, type, labels and meaning.
pub struct Series {
    pub name: &'static str,
    pub kind: &'static str,
    pub labels: &'static str,
    pub help: &'static str,
}

const fn s(name: &'static str, kind: &'static str, labels: &'static str, help: &'static str) -> Series {
    Series {
        name,
        kind,
        labels,
        help,
    }
}

/// Every series `/metrics` serves (histograms also have `_bucket`, `_sum` and `_count`).
pub const SERIES: &[Series] = &[
    s("garou_connections", "gauge", "transport", "Transport connections accepted and not yet closed (authenticated or not)."),
    s("garou_sessions", "gauge", "transport", "Authenticated sessions."),
    s("garou_handshakes_total", "counter", "result", "Session handshakes by outcome: ok, refused, failed, timeout."),
    s("garou_handshake_duration_seconds", "histogram", "", "Hello to Welcome, successful handshakes."),
    s("garou_rooms", "gauge", "", "Rooms in the hub."),
    s("garou_hot_rooms", "gauge", "", "Rooms promoted to their own stream."),
    s("garou_room_members", "gauge", "", "Memberships summed over all rooms."),
    s("garou_messages_in_total", "counter", "kind", "Frames decoded from clients, by frame type."),
    s("garou_messages_out_total", "counter", "kind", "Frames written to clients, by frame type."),
    s("garou_fanouts_total", "counter", "", "Room events delivered (one per event, whatever the audience)."),
    s("garou_fanout_deliveries_total", "counter", "", "Recipients of those events, added once per fan-out."),
    s("garou_drops_total", "counter", "reason", "Frames not delivered: slow_consumer (queue full, client closed), datagram (transport busy)."),
    s("garou_bytes_in_total", "counter", "transport", "Bytes received on streams and datagrams."),
    s("garou_bytes_out_total", "counter", "transport", "Bytes written on streams and datagrams."),
    s("garou_errors_total", "counter", "code", "Error frames sent (replies and fatal closes) and refused handshakes, by error code."),
    s("garou_throttles_total", "counter", "", "Requests refused with RateLimited."),
    s("garou_publish_delivery_seconds", "histogram", "", "A room event from its command's arrival to its frame queued to every subscriber (includes the durable commit)."),
    s("garou_store_seconds", "histogram", "op", "Store latency: commit (one group-commit batch), history (one history page)."),
    s("garou_store_errors_total", "counter", "kind", "Failed store commits by kind: unavailable (retried until it commits; publishes refused meanwhile), conflict (one change refused, the rest of its batch committed), other."),
    s("garou_uptime_seconds", "gauge", "", "Seconds since the hub started."),
];

pub use crate::conn::{transport_index, TRANSPORTS};

/// Highest error code with a pre-registered series.
const MAX_CODE: usize = 64;

/// Pre-resolved handles of every series the sessions and transports record (the hub's
/// are rendered from its [`StatsSnapshot`], see [`render`]).
pub struct Metrics {
    registry: Registry,
    pub connections: [Gauge; 3],
    sessions: [Gauge; 3],
    handshakes_ok: Counter,
    handshakes_refused: Counter,
    handshakes_failed: Counter,
    handshakes_timeout: Counter,
    handshake_seconds: Histogram,
    rooms: Gauge,
    hot_rooms: Gauge,
    room_members: Gauge,
    frames_in: Vec<Option<Counter>>,
    frames_out: Vec<Option<Counter>>,
    drop_slow: Counter,
    drop_datagram: Counter,
    bytes_in: [Counter; 3],
    bytes_out: [Counter; 3],
    errors: Vec<Option<Counter>>,
    throttles: Counter,
    uptime: Gauge,
}

type Labels = Vec<(String, String)>;

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

/// 50µs to ~13s: the buckets of the hub's histograms too ([`bucket_bounds`]).
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 19))
}

/// The help text of series `name` in [`SERIES`].
fn help(name: &str) -> String {
    SERIES
        .iter()
        .find(|x| x.name == name)
        .map_or("", |x| x.help)
        .to_owned()
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        // Counters are registered without `_total`, which the encoder appends.
        let counter = |r: &mut Registry, name: &str| {
            let c = Counter::default();
            r.register(name, help(&format!("{name}_total")), c.clone());
            c
        };
        let gauge = |r: &mut Registry, name: &str| {
            let g: Gauge = Gauge::default();
            r.register(name, help(name), g.clone());
            g
        };
        let histogram = |r: &mut Registry, name: &str| {
            let h = latency();
            r.register(name, help(name), h.clone());
            h
        };
        let counters = |r: &mut Registry, name: &str| {
            let f = Family::<Labels, Counter>::default();
            r.register(name, help(&format!("{name}_total")), f.clone());
            f
        };
        let by_transport_gauge = |r: &mut Registry, name: &str| {
            let f = Family::<Labels, Gauge>::default();
            r.register(name, help(name), f.clone());
            TRANSPORTS.map(|t| f.get_or_create_owned(&label("transport", t)))
        };
        let connections = by_transport_gauge(&mut r, "garou_connections");
        let sessions = by_transport_gauge(&mut r, "garou_sessions");
        let handshakes = counters(&mut r, "garou_handshakes");
        let handshake_seconds = histogram(&mut r, "garou_handshake_duration_seconds");
        let rooms = gauge(&mut r, "garou_rooms");
        let hot_rooms = gauge(&mut r, "garou_hot_rooms");
        let room_members = gauge(&mut r, "garou_room_members");
        let by_frame_type = |f: &Family<Labels, Counter>| {
            (0..=255u8)
                .map(|b| {
                    FrameType::from_u8(b).map(|t| f.get_or_create_owned(&label("kind", &format!("{t:?}"))))
                })
                .collect::<Vec<_>>()
        };
        let frames_in = by_frame_type(&counters(&mut r, "garou_messages_in"));
        let frames_out = by_frame_type(&counters(&mut r, "garou_messages_out"));
        let drops = counters(&mut r, "garou_drops");
        let by_transport =
            |f: &Family<Labels, Counter>| TRANSPORTS.map(|t| f.get_or_create_owned(&label("transport", t)));
        let bytes_in = by_transport(&counters(&mut r, "garou_bytes_in"));
        let bytes_out = by_transport(&counters(&mut r, "garou_bytes_out"));
        let error_family = counters(&mut r, "garou_errors");
        let errors = (0..MAX_CODE as u16)
            .map(|n| {
                ErrorCode::from_u16(n)
                    .map(|c| error_family.get_or_create_owned(&label("code", &format!("{c:?}"))))
            })
            .collect();
        let throttles = counter(&mut r, "garou_throttles");
        let uptime = gauge(&mut r, "garou_uptime_seconds");
        Metrics {
            connections,
            sessions,
            handshakes_ok: handshakes.get_or_create_owned(&label("result", "ok")),
            handshakes_refused: handshakes.get_or_create_owned(&label("result", "refused")),
            handshakes_failed: handshakes.get_or_create_owned(&label("result", "failed")),
            handshakes_timeout: handshakes.get_or_create_owned(&label("result", "timeout")),
            handshake_seconds,
            rooms,
            hot_rooms,
            room_members,
            frames_in,
            frames_out,
            drop_slow: drops.get_or_create_owned(&label("reason", "slow_consumer")),
            drop_datagram: drops.get_or_create_owned(&label("reason", "datagram")),
            bytes_in,
            bytes_out,
            errors,
            throttles,
            uptime,
            registry: r,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// The text exposition for `/metrics`: the process's series, then the hub's, read now.
pub fn render(hub: &Hub) -> String {
    render_node(Some(hub), "")
}

/// [`render`] for any node: the hub's series only where it runs the hub, and `extra`
/// (series already in the text format: a cluster node's) before the end.
pub fn render_node(hub: Option<&Hub>, extra: &str) -> String {
    let m = get();
    let mut hub_series = Registry::default();
    if let Some(hub) = hub {
        let snap = hub.snapshot();
        for (gauge, n) in m.sessions.iter().zip(snap.sessions) {
            gauge.set(n as i64);
        }
        m.rooms.set(snap.rooms as i64);
        m.hot_rooms.set(snap.hot_rooms as i64);
        m.room_members.set(snap.members as i64);
        m.uptime.set(snap.uptime.as_secs() as i64);
        hub_series.register_collector(Box::new(HubSeries(hub.stats().snapshot())));
    }
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = encode_registry(&mut out, &m.registry);
    let _ = encode_registry(&mut out, &hub_series);
    out.push_str(extra);
    let _ = encode_eof(&mut out);
    out
}

/// The series of one [`StatsSnapshot`] of the hub.
#[derive(Debug)]
struct HubSeries(StatsSnapshot);

/// A counter named `name` (without `_total`, which the encoder appends).
fn const_counter(enc: &mut DescriptorEncoder, name: &str, value: u64) -> std::fmt::Result {
    let c = ConstCounter::new(value);
    let help = help(&format!("{name}_total"));
    c.encode(enc.encode_descriptor(name, &help, None, c.metric_type())?)
}

/// Bucket bounds and counts as the encoder takes them (the last bound is +Inf).
fn buckets(h: &HistogramSnapshot) -> Vec<(f64, u64)> {
    bucket_bounds()
        .chain(std::iter::once(f64::INFINITY))
        .zip(h.counts)
        .collect()
}

impl Collector for HubSeries {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        const_counter(&mut enc, "garou_fanouts", s.fanouts)?;
        const_counter(&mut enc, "garou_fanout_deliveries", s.deliveries)?;
        let name = "garou_publish_delivery_seconds";
        enc.encode_descriptor(name, &help(name), None, MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(s.publish.sum, s.publish.count(), &buckets(&s.publish), None)?;
        let name = "garou_store_seconds";
        let mut store = enc.encode_descriptor(name, &help(name), None, MetricType::Histogram)?;
        for (op, h) in [("commit", &s.store_commit), ("history", &s.store_history)] {
            store
                .encode_family(&label("op", op))?
                .encode_histogram::<NoLabelSet>(h.sum, h.count(), &buckets(h), None)?;
        }
        let name = "garou_store_errors";
        let mut errors =
            enc.encode_descriptor(name, &help(&format!("{name}_total")), None, MetricType::Counter)?;
        for (kind, n) in STORE_ERROR_KINDS.iter().zip(s.store_errors) {
            ConstCounter::new(n).encode(errors.encode_family(&label("kind", kind))?)?;
        }
        Ok(())
    }
}

/// Counts a transport connection while alive.
pub struct ConnectionGauge(usize);

/// A transport connection was accepted; it counts until the guard drops.
pub fn connection(transport: &str) -> ConnectionGauge {
    let i = transport_index(transport);
    get().connections[i].inc();
    ConnectionGauge(i)
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        get().connections[self.0].dec();
    }
}

/// How a handshake ended.
#[derive(Debug, Clone, Copy)]
pub enum Handshake {
    Ok,
    Refused(ErrorCode),
    Failed,
    Timeout,
}

/// Record a handshake's outcome (and its duration when it succeeded).
pub fn handshake(result: Handshake, took: Duration) {
    let m = get();
    match result {
        Handshake::Ok => {
            m.handshakes_ok.inc();
            m.handshake_seconds.observe(took.as_secs_f64());
        }
        Handshake::Refused(code) => {
            m.handshakes_refused.inc();
            error(code);
        }
        Handshake::Failed => {
            m.handshakes_failed.inc();
        }
        Handshake::Timeout => {
            m.handshakes_timeout.inc();
        }
    }
}

/// A frame of type byte `ty` was read from a client.
#[inline]
pub fn frame_in(ty: u8) {
    if let Some(c) = &get().frames_in[ty as usize] {
        c.inc();
    }
}

/// Encoded frames about to be written to a client. Error frames (rare) are decoded for
/// their code.
pub fn frames_out(frames: &[Bytes]) {
    let m = get();
    for f in frames {
        let Some(&ty) = f.first() else { continue };
        if let Some(c) = &m.frames_out[ty as usize] {
            c.inc();
        }
        if ty == FrameType::Error as u8 && f.len() >= HEADER_LEN {
            let frame = Frame {
                ty,
                payload: f.slice(HEADER_LEN..),
            };
            if let Ok(Message::Error(e)) = Message::decode(&frame) {
                error(e.code);
            }
        }
    }
}

/// An error with `code` went to a client.
pub fn error(code: ErrorCode) {
    let m = get();
    if let Some(Some(c)) = m.errors.get(code.as_u16() as usize) {
        c.inc();
    }
    if code == ErrorCode::RateLimited {
        m.throttles.inc();
    }
}

/// A frame was dropped because the client's queue is full.
#[inline]
pub fn drop_slow_consumer() {
    get().drop_slow.inc();
}

/// A datagram was dropped because the transport was busy.
#[inline]
pub fn drop_datagram() {
    get().drop_datagram.inc();
}

/// A datagram offered to `transport`: its bytes when it went out, a drop when it did not.
/// Returns `sent`.
pub fn datagram_out(transport: usize, n: usize, sent: bool) -> bool {
    if sent {
        bytes_out(transport, n);
    } else {
        drop_datagram();
    }
    sent
}

/// Bytes received on `transport`.
#[inline]
pub fn bytes_in(transport: usize, n: usize) {
    get().bytes_in[transport].inc_by(n as u64);
}

/// Bytes written on `transport`.
#[inline]
pub fn bytes_out(transport: usize, n: usize) {
    get().bytes_out[transport].inc_by(n as u64);
}

/// Transport index constants for the adapters.
pub const QUIC: usize = 0;
pub const WEBTRANSPORT: usize = 1;
pub const WEBSOCKET: usize = 2;

/// Sum of a per-frame-type counter (for stats).
pub fn messages_in() -> u64 {
    get().frames_in.iter().flatten().map(|c| c.get()).sum()
}
