//! Token auth over a real gateway: a signed token signs in (several devices, one user),
//! expired and forged tokens and missing tokens are refused with AuthError + a close.
//! (`garou token` minting what the gateway accepts is in `cli/tests/token.rs`.)

mod common;

use std::collections::HashMap;

use common::*;
use garou_client::{connect, ClientError, ClientOptions, Credentials, ErrorCode, Trust};
use garou_gateway::auth::{mint, now_secs, AuthConfig, Claims};
use garou_gateway::server::Gateway;

const SECRET: &str = "integration-secret";

async fn token_gateway(allow_guests: bool) -> Gateway {
    gateway(|c| {
        c.auth = AuthConfig {
            secret: Some(SECRET.into()),
            allow_guests,
            ..Default::default()
        }
    })
    .await
}

fn claims(sub: &str, exp: u64) -> Claims {
    Claims {
        sub: sub.into(),
        name: Some(format!("{sub}-name")),
        exp,
        nbf: None,
        rooms: HashMap::new(),
        aud: None,
        iss: None,
    }
}

fn opts(gw: &Gateway, credentials: Credentials) -> ClientOptions {
    let mut o =
        ClientOptions::new(gw.quic_addr.to_string(), credentials).trust(Trust::CertHash(gw.cert_sha256));
    o.reconnect = false;
    o
}

async fn refused(gw: &Gateway, credentials: Credentials) -> (ErrorCode, String) {
    let result = tokio::time::timeout(WAIT, connect(opts(gw, credentials)))
        .await
        .expect("answer in time");
    match result {
        Err(ClientError::Refused(f)) => (f.code, f.message),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a session"),
    }
}

#[tokio::test]
async fn valid_token_signs_in_and_bad_ones_are_refused() {
    let gw = token_gateway(false).await;
    let good = mint(SECRET, &claims("ann", now_secs() + 60)).unwrap();
    let (a1, _e1) = tokio::time::timeout(WAIT, connect(opts(&gw, Credentials::Token(good.clone()))))
        .await
        .unwrap()
        .expect("a valid token signs in");
    assert_eq!(a1.nick(), "ann-name");
    let (a2, _e2) = tokio::time::timeout(WAIT, connect(opts(&gw, Credentials::Token(good))))
        .await
        .unwrap()
        .expect("a second device of the same user");
    assert_eq!(a1.user(), a2.user());

    let expired = mint(SECRET, &claims("ann", now_secs() - 3600)).unwrap();
    let (code, msg) = refused(&gw, Credentials::Token(expired)).await;
    assert_eq!((code, msg.as_str()), (ErrorCode::AuthFailed, "token expired"));

    let forged = mint("not-the-secret", &claims("ann", now_secs() + 60)).unwrap();
    let (code, msg) = refused(&gw, Credentials::Token(forged)).await;
    assert_eq!(
        (code, msg.as_str()),
        (ErrorCode::AuthFailed, "bad token signature")
    );

    let (code, msg) = refused(&gw, Credentials::Nick("anon".into())).await;
    assert_eq!(code, ErrorCode::AuthFailed);
    assert!(msg.contains("requires a token"), "{msg}");
    gw.shutdown().await;
}

#[tokio::test]
async fn guests_are_read_only() {
    let gw = token_gateway(true).await;
    let owner = mint(SECRET, &claims("own", now_secs() + 60)).unwrap();
    let (o, _oe) = connect(opts(&gw, Credentials::Token(owner))).await.unwrap();
    o.join("lobby").await.unwrap();
    o.send("lobby", "hello guests").await.unwrap();
    let (g, mut ge) = connect(opts(&gw, Credentials::Nick("visitor".into())))
        .await
        .unwrap();
    let info = g.join("lobby").await.unwrap();
    assert_eq!(info.role, garou_client::Role::Guest);
    o.send("lobby", "second").await.unwrap();
    wait_message(&mut ge, "second").await;
    match g.send("lobby", "may I?").await {
        Err(ClientError::Failure(f)) => assert_eq!(f.code, ErrorCode::Forbidden),
        other => panic!("a guest posted: {other:?}"),
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_token_presented_before_its_nbf_is_refused() {
    let gw = token_gateway(false).await;
    let early = Claims {
        nbf: Some(now_secs() + 3600),
        ..claims("ann", now_secs() + 7200)
    };
    let (code, msg) = refused(&gw, Credentials::Token(mint(SECRET, &early).unwrap())).await;
    assert_eq!(
        (code, msg.as_str()),
        (ErrorCode::AuthFailed, "token not yet valid")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_guest_holding_a_registered_users_name_gives_it_up_and_is_told() {
    let gw = token_gateway(true).await;
    let (guest, mut guest_events) = connect(opts(&gw, Credentials::Nick("zoe".into()))).await.unwrap();
    assert_eq!(guest.nick(), "zoe");
    let zoe = Claims {
        name: Some("zoe".into()),
        ..claims("u-zoe", now_secs() + 60)
    };
    let (z, _ze) = connect(opts(&gw, Credentials::Token(mint(SECRET, &zoe).unwrap())))
        .await
        .unwrap();
    assert_eq!(
        z.nick(),
        "zoe",
        "the registered user gets its own name, not zoe-2"
    );
    let notice = wait_for(&mut guest_events, "the guest's notice", |ev| match ev {
        garou_client::ClientEvent::Session(garou_protocol::Event::Error(f)) => Some(f.clone()),
        garou_client::ClientEvent::Disconnected { reason } => panic!("the guest was dropped: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(notice.code, ErrorCode::NickUnavailable);
    assert!(notice.message.contains("zoe-guest"), "{}", notice.message);
    // The guest keeps its session under the new nick.
    z.join("lobby").await.unwrap();
    guest.join("lobby").await.unwrap();
    let users = z.list_users("lobby").await.unwrap();
    let mut nicks: Vec<_> = users.iter().map(|u| u.nick.as_str()).collect();
    nicks.sort();
    assert_eq!(nicks, ["zoe", "zoe-guest"]);
    gw.shutdown().await;
}
