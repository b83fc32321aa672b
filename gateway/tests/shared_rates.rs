//! Command rates shared across sessions, against a real gateway over raw QUIC on loopback:
//! ten sessions of one user, or from one IP, flooding together are throttled at about the
//! user's (or the address's) budget, while a session of another user (or from another
//! address) keeps its full budget. Behaviour only: Throttle frames arrive, never rates.

mod common;

use std::collections::HashMap;

use common::raw::{self, Raw};
use common::*;
use garou_gateway::auth::{mint, now_secs, AuthConfig, Claims};
use garou_gateway::server::Gateway;
use garou_protocol::{Credentials, ErrorCode, Message, Ping};

const SESSIONS: usize = 10;
/// Pings each flooding session writes at once.
const PINGS: usize = 20;
/// The shared budget under test: well below SESSIONS * PINGS, above what one session sends.
const SHARED_BURST: u32 = 30;
const SECRET: &str = "shared-rates-secret";

async fn flood(raw: &mut Raw, n: usize) {
    let mut buf = Vec::new();
    for nonce in 0..n as u64 {
        buf.extend_from_slice(&Message::from(Ping { nonce }).encode());
    }
    raw.control.write_all(&buf).await.unwrap();
}

/// Read `raw`'s control messages until a Throttle (true), RateLimited, or all `n` Pongs
/// without one (false).
async fn throttled(raw: &mut Raw, n: usize) -> bool {
    let mut pongs = 0;
    while pongs < n {
        match raw.next().await {
            Message::Pong(_) => pongs += 1,
            Message::Throttle(_) => return true,
            Message::Error(e) if e.code == ErrorCode::RateLimited => return true,
            _ => {}
        }
    }
    false
}

/// Flood from every session at once; how many of them were throttled.
async fn flood_all(sessions: &mut [Raw]) -> usize {
    for s in sessions.iter_mut() {
        flood(s, PINGS).await;
    }
    let mut n = 0;
    for s in sessions.iter_mut() {
        if throttled(s, PINGS).await {
            n += 1;
        }
    }
    n
}

fn token(sub: &str) -> Credentials {
    let claims: Claims = serde_json::from_value(serde_json::json!({
        "sub": sub,
        "name": sub,
        "exp": now_secs() + 600,
    }))
    .unwrap();
    Credentials::Token(mint(SECRET, &claims).unwrap())
}

async fn token_login(gw: &Gateway, sub: &str) -> Raw {
    Raw::login_with(gw, token(sub), true, None, raw::endpoint()).await
}

#[tokio::test]
async fn sessions_of_one_user_share_the_users_budget() {
    let gw = gateway(|c| {
        lift_command_rates(c);
        c.limits.commands_per_sec_per_user = 2.0;
        c.limits.command_burst_per_user = SHARED_BURST;
        c.auth = AuthConfig {
            secret: Some(SECRET.into()),
            ..Default::default()
        };
        c.limits.max_throttles = 100;
    })
    .await;
    let mut ann = Vec::new();
    for _ in 0..SESSIONS {
        ann.push(token_login(&gw, "ann").await);
    }
    assert!(
        ann.iter().all(|s| s.user == ann[0].user),
        "one user, ten sessions"
    );
    // 200 pings against a budget of 30 (+2/s): most sessions must meet the limit, whatever
    // the machine's speed.
    let throttled_sessions = flood_all(&mut ann).await;
    assert!(
        throttled_sessions >= SESSIONS / 2,
        "only {throttled_sessions} of {SESSIONS} sessions of one flooding user were throttled"
    );
    // Another user, same address, keeps its full budget while ann's is spent.
    let mut bob = token_login(&gw, "bob").await;
    assert_ne!(bob.user, ann[0].user);
    flood(&mut bob, SHARED_BURST as usize - 5).await;
    assert!(
        !throttled(&mut bob, SHARED_BURST as usize - 5).await,
        "another user is not throttled for ann's flood"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn sessions_from_one_ip_share_the_addresss_budget() {
    let gw = gateway(|c| {
        lift_command_rates(c);
        c.limits.commands_per_sec_per_ip = 2.0;
        c.limits.command_burst_per_ip = SHARED_BURST;
        c.limits.max_throttles = 100;
    })
    .await;
    let mut crowd = Vec::new();
    for i in 0..SESSIONS {
        crowd.push(Raw::login(&gw, &format!("crowd{i}"), true, None).await);
    }
    let users: HashMap<_, _> = crowd.iter().map(|s| (s.user, ())).collect();
    assert_eq!(users.len(), SESSIONS, "ten users");
    let throttled_sessions = flood_all(&mut crowd).await;
    assert!(
        throttled_sessions >= SESSIONS / 2,
        "only {throttled_sessions} of {SESSIONS} sessions from one flooding address were throttled"
    );
    // A session from another address keeps its full budget.
    let mut far = Raw::login_with(
        &gw,
        Credentials::Nick("far".into()),
        true,
        None,
        raw::endpoint_at("127.0.0.2"),
    )
    .await;
    flood(&mut far, SHARED_BURST as usize - 5).await;
    assert!(
        !throttled(&mut far, SHARED_BURST as usize - 5).await,
        "another address is not throttled for this one's flood"
    );
    gw.shutdown().await;
}
