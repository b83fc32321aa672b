//! `garou bench` scenarios run in-process against a real gateway on loopback: the load
//! generator's own bookkeeping must find every message delivered exactly once.

mod common;

use std::time::Duration;

use common::gateway;
use garou_gateway::bench::{churn, connections, fanout, rooms, CommonArgs};

fn common_args(gw: &garou_gateway::server::Gateway) -> CommonArgs {
    CommonArgs::pinned(gw.quic_addr.to_string(), &gw.cert_sha256)
}

/// Bound on a whole scenario run in these tests.
const RUN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_everything_exactly_once() {
    let gw = gateway(|_| {}).await;
    let args = fanout::FanoutArgs {
        common: common_args(&gw),
        clients: 20,
        room: None,
        publishers: 2,
        rate: 0.0,
        size: 64,
        duration: 1.0,
        window: 16,
        drain: 10.0,
    };
    let s = tokio::time::timeout(RUN, fanout::run(&args))
        .await
        .unwrap()
        .unwrap();
    let j = s.to_json();
    assert!(s.published > 0, "{j}");
    assert_eq!((s.lost, s.duplicated, s.errors), (0, 0, 0), "{j}");
    assert_eq!(s.deliveries, s.published * 20, "{j}");
    for k in [
        "deliveries_per_sec",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "published",
    ] {
        assert!(j.get(k).is_some(), "{k} missing from {j}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_rooms_deliver_everything() {
    let gw = gateway(|_| {}).await;
    let args = rooms::RoomsArgs {
        common: common_args(&gw),
        rooms: 5,
        members: 3,
        rate: Some(150.0),
        size: 100,
        duration: 1.0,
        window: 8,
        drain: 10.0,
    };
    let s = tokio::time::timeout(RUN, rooms::run(&args))
        .await
        .unwrap()
        .unwrap();
    let j = s.to_json();
    assert!(s.published >= 100, "paced at 150/s for 1 s: {j}");
    assert_eq!((s.lost, s.duplicated, s.errors), (0, 0, 0), "{j}");
    assert_eq!(s.deliveries, s.published * 3, "{j}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_churn_report_without_errors() {
    let gw = gateway(|_| {}).await;
    let args = connections::ConnectionsArgs {
        common: common_args(&gw),
        connections: 50,
        hold: 0.2,
        server_pid: Some(std::process::id()),
    };
    let s = tokio::time::timeout(RUN, connections::run(&args))
        .await
        .unwrap()
        .unwrap();
    let j = s.to_json();
    assert_eq!(s.errors, 0, "{j}");
    assert_eq!(j["connections"], 50, "{j}");
    assert!(j.get("rss_per_session_kb").is_some(), "{j}");

    let args = churn::ChurnArgs {
        common: common_args(&gw),
        concurrency: 4,
        duration: 1.0,
        room: None,
    };
    let s = tokio::time::timeout(RUN, churn::run(&args))
        .await
        .unwrap()
        .unwrap();
    let j = s.to_json();
    assert_eq!(s.errors, 0, "{j}");
    assert!(j["cycles"].as_u64().unwrap() > 0, "{j}");
    gw.shutdown().await;
}
