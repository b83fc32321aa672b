//! The core promise: no acknowledged message is ever lost, and a reconnecting client sees
//! every message exactly once, in order. Here: a client offline while messages arrive
//! resumes without a hole (or is told the gap was trimmed). The crash half (`kill -9` of
//! the real `garou serve` mid-burst) is in `cli/tests/durability.rs`, next to the binary.

mod common;

use common::driven::webtransport;
use common::*;
use garou_protocol::{ClientConfig, Event, Message, Offset};

/// A session that was offline while `n` messages arrived, resumed from its old state.
async fn offline_then_resume(retention: u64, n: usize) -> (bool, Vec<Offset>) {
    let gw = gateway(|c| c.retention.group.max_messages = retention).await;
    let (alice, _a) = client(&gw, "alice").await;
    alice.join("room").await.unwrap();

    let (mut bob, mut bob_out) = webtransport(&gw, ClientConfig::with_nick("bob")).await;
    let now = bob.now();
    bob.session.join("room", now);
    bob.until(&mut bob_out, "joined", |e| {
        matches!(e, Event::Reply { .. }).then_some(())
    })
    .await;
    alice.send("room", "before").await.unwrap();
    bob.until(&mut bob_out, "before", |e| {
        matches!(e, Event::Room { event: Message::RoomMessage(m), .. } if m.text == "before").then_some(())
    })
    .await;
    let resume = bob.session.resume_state();
    drop((bob, bob_out)); // offline

    let mut acks = Vec::new();
    for i in 0..n {
        acks.push(alice.send("room", format!("missed {i}")).submit().await);
    }
    for a in acks {
        a.await.unwrap();
    }
    gw.hub.flush().await;
    gw.hub.trim_all().await;

    let mut cfg = ClientConfig::with_nick("bob");
    cfg.resume = resume;
    let (mut bob, mut bob_out) = webtransport(&gw, cfg).await;
    let resumed = bob
        .until(&mut bob_out, "rejoined", |e| match e {
            Event::Rejoined { result, .. } => Some(result.clone().unwrap().resumed),
            _ => None,
        })
        .await;
    let mut offsets = Vec::new();
    if resumed {
        while offsets.len() < n {
            let m = bob
                .until(&mut bob_out, "replayed message", |e| match e {
                    Event::Room {
                        event: Message::RoomMessage(m),
                        ..
                    } => Some((m.offset, m.text.clone())),
                    _ => None,
                })
                .await;
            assert_eq!(
                m.1,
                format!("missed {}", offsets.len()),
                "replayed in order, once each"
            );
            offsets.push(m.0);
        }
    }
    gw.shutdown().await;
    (resumed, offsets)
}

#[tokio::test]
async fn an_offline_client_recovers_every_missed_message() {
    let (resumed, offsets) = offline_then_resume(0, 500).await;
    assert!(resumed);
    assert_eq!(offsets.len(), 500);
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "no holes");
}

#[tokio::test]
async fn after_retention_trimmed_the_gap_recovery_says_resumed_false() {
    let (resumed, _) = offline_then_resume(100, 500).await;
    assert!(
        !resumed,
        "history was trimmed to 100 messages: the gap cannot be replayed"
    );
}
