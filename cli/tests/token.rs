//! `garou token` (the real binary) mints what a real gateway with the same secret accepts:
//! the token's user, display name and room grant.

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use common::{gateway, WAIT};
use garou_client::{connect, Client, ClientOptions, Credentials, Events, Role, Trust};
use garou_gateway::auth::AuthConfig;
use garou_gateway::server::Gateway;

const SECRET: &str = "integration-secret";

/// `garou token ARGS --secret SECRET`: the token it prints.
fn garou_token(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_garou"))
        .arg("token")
        .args(args)
        .args(["--secret", SECRET])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A client signed in with `token`, pinned to this gateway's certificate.
async fn sign_in(gw: &Gateway, token: String) -> (Client, Events) {
    let options = ClientOptions::new(gw.quic_addr.to_string(), Credentials::Token(token))
        .trust(Trust::CertHash(gw.cert_sha256));
    tokio::time::timeout(WAIT, connect(options))
        .await
        .expect("answer in time")
        .expect("the minted token signs in")
}

#[tokio::test]
async fn garou_token_mints_what_the_gateway_accepts() {
    let gw = gateway(|c| {
        c.auth = AuthConfig {
            secret: Some(SECRET.into()),
            allow_guests: false,
            ..Default::default()
        }
    })
    .await;
    // Someone else opens the room first: zoe's role comes from her token's grant.
    let (o, _oe) = sign_in(&gw, garou_token(&["--user", "own"])).await;
    o.join("ops").await.unwrap();
    let zoe = garou_token(&[
        "--user",
        "u-42",
        "--name",
        "zoe",
        "--ttl",
        "10m",
        "--room",
        "ops=admin",
    ]);
    let (z, _ze) = sign_in(&gw, zoe).await;
    assert_eq!(z.nick(), "zoe");
    let info = z.join("ops").await.unwrap();
    assert_eq!(info.role, Role::Admin, "the token's room grant");
    gw.shutdown().await;
}
