//! Property test: idempotent publishing across the in-memory window. Random sequences of
//! new messages, re-sends (of any earlier client id, committed or not, in the window or
//! forgotten), flushes and restarts, with random window sizes, through the path a session
//! takes ([`Hub::stored_ack`], then [`Hub::command`]) on the real SQLite store.
//!
//! Every client id maps to exactly one stored message, every send of it is answered with
//! that message's ack, a subscriber receives it exactly once, and the room's offsets stay
//! gap-free.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use garou_protocol::*;
use proptest::prelude::*;
use proptest::sample::Index;

use super::tests::{cfg, join, login, Probe};
use super::{Hub, HubConfig};
use crate::store::sqlite::SqliteStore;

#[derive(Debug, Clone)]
enum Step {
    /// A message with a new client id.
    New,
    /// A message with the client id of an earlier one.
    Resend(Index),
    /// Wait until everything queued is durable.
    Flush,
    /// Stop the hub and open a new one on the same store.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::New),
        4 => any::<Index>().prop_map(Step::Resend),
        1 => Just(Step::Flush),
        1 => Just(Step::Restart),
    ]
}

struct World {
    hub: Arc<Hub>,
    alice: Probe,
    bob: Probe,
}

async fn open(dir: &Path, window: usize) -> World {
    let store = SqliteStore::open(dir).await.unwrap();
    let cfg = HubConfig {
        recent_messages: window,
        ..cfg()
    };
    let hub = Hub::open(cfg, Arc::new(store)).await.unwrap();
    let mut alice = login(&hub, "alice", 4096).unwrap();
    let mut bob = login(&hub, "bob", 4096).unwrap();
    for p in [&mut alice, &mut bob] {
        let joined = p.cmd(&hub, join(1, "r")).await;
        assert!(matches!(joined, Message::Joined(_)), "{joined:?}");
    }
    World { hub, alice, bob }
}

/// What a session does with a Send.
async fn submit(hub: &Hub, p: &Probe, msg: Message) -> Option<Message> {
    if hub.may_have_forgotten(&p.conn, &msg) {
        if let Some(reply) = hub.stored_ack(&p.conn, &msg).await {
            return Some(reply);
        }
    }
    hub.command(&p.conn, msg)
}

/// Everything queued is durable and every request answered (store lookups of refused
/// re-sends run in tasks of their own): collect alice's replies and bob's room events.
async fn settle(
    w: &mut World,
    asked: &HashMap<ReqId, u64>,
    replies: &mut Vec<Message>,
    seen: &mut Vec<Message>,
) {
    w.hub.flush().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        replies.extend(w.alice.control());
        let answered = replies
            .iter()
            .filter_map(Message::reply_to)
            .filter(|r| asked.contains_key(r));
        if answered.count() >= asked.len() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "unanswered sends");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    seen.extend(w.bob.room_events().into_iter().map(|(_, m)| m));
}

async fn run(window: usize, steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), window).await;
    let mut sent: Vec<u64> = Vec::new();
    let mut asked: HashMap<ReqId, u64> = HashMap::new();
    let (mut replies, mut seen) = (Vec::new(), Vec::new());
    let mut req: ReqId = 100;
    for step in steps {
        let client_id = match step {
            Step::New => {
                sent.push(1000 + sent.len() as u64);
                sent.last().copied()
            }
            Step::Resend(i) if !sent.is_empty() => Some(sent[i.index(sent.len())]),
            Step::Resend(_) => None,
            Step::Flush => {
                w.hub.flush().await;
                None
            }
            Step::Restart => {
                settle(&mut w, &asked, &mut replies, &mut seen).await;
                drop(w);
                w = open(dir.path(), window).await;
                None
            }
        };
        if let Some(client_id) = client_id {
            req += 1;
            asked.insert(req, client_id);
            let send = Send {
                req,
                room: "r".into(),
                client_id,
                text: format!("c{client_id}"),
                attachment: None,
            };
            if let Some(reply) = submit(&w.hub, &w.alice, send.into()).await {
                replies.push(reply);
            }
        }
        replies.extend(w.alice.control());
    }
    settle(&mut w, &asked, &mut replies, &mut seen).await;

    // Every send answered once, with the same ack for the same client id.
    let mut acks: HashMap<ReqId, (MsgId, Offset)> = HashMap::new();
    for r in &replies {
        match r {
            Message::MessageAck(a) => assert!(
                acks.insert(a.req, (a.id, a.offset)).is_none(),
                "two replies to {}",
                a.req
            ),
            Message::Error(e) => panic!("a send was refused: {e:?}"),
            _ => {}
        }
    }
    let mut by_client_id: BTreeMap<u64, (MsgId, Offset)> = BTreeMap::new();
    for (req, client_id) in &asked {
        let ack = *acks.get(req).unwrap_or_else(|| panic!("no ack for {req}"));
        let first = *by_client_id.entry(*client_id).or_insert(ack);
        assert_eq!(first, ack, "client id {client_id} acked as two messages");
    }
    // Exactly one stored message per client id: the acked one.
    let rows = w.hub.store().messages("r", None, Some(0), 1000).await.unwrap();
    let stored: BTreeMap<u64, (MsgId, Offset)> = rows
        .iter()
        .map(|m| (m.text[1..].parse().unwrap(), (m.id, m.offset)))
        .collect();
    assert_eq!(rows.len(), stored.len(), "a client id stored twice");
    assert_eq!(stored, by_client_id);
    // One delivery per message; the subscriber's offsets have no gap (a refused
    // duplicate's offset was filled by its stand-in).
    let mut delivered: BTreeMap<u64, (MsgId, Offset)> = BTreeMap::new();
    let mut offsets = Vec::new();
    for m in &seen {
        if let Some((_, offset)) = m.room_offset() {
            offsets.push(offset);
        }
        if let Message::RoomMessage(m) = m {
            let client_id = m.text[1..].parse().unwrap();
            assert!(
                delivered.insert(client_id, (m.id, m.offset)).is_none(),
                "{} delivered twice",
                m.text
            );
        }
    }
    assert_eq!(delivered, by_client_id);
    let expected: Vec<Offset> = (2..2 + offsets.len() as Offset).collect();
    assert_eq!(offsets, expected, "bob's offsets (he joined at 2)");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_client_id_maps_to_one_stored_message(window in 1usize..6, steps in prop::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(window, steps));
    }
}

/// Direct messages take the same path: a re-sent client id past a direct room's window
/// gets the original ack from the store, and nothing new is stored.
#[tokio::test]
async fn a_direct_message_resent_past_the_window_gets_its_original_ack() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), 1).await;
    let dm = |req: ReqId, client_id: u64| -> Message {
        DirectMessage {
            req,
            to: "bob".into(),
            client_id,
            text: format!("c{client_id}"),
        }
        .into()
    };
    let mut acks = Vec::new();
    for (req, client_id) in [(1, 5), (2, 6), (3, 7)] {
        assert!(submit(&w.hub, &w.alice, dm(req, client_id)).await.is_none());
        w.hub.flush().await;
        acks.extend(
            w.alice
                .control()
                .into_iter()
                .filter(|m| matches!(m, Message::MessageAck(_))),
        );
    }
    assert_eq!(acks.len(), 3, "{acks:?}");
    let Message::MessageAck(first) = &acks[0] else {
        panic!("{acks:?}")
    };
    assert!(w.hub.may_have_forgotten(&w.alice.conn, &dm(4, 5)));
    let Some(Message::MessageAck(again)) = submit(&w.hub, &w.alice, dm(4, 5)).await else {
        panic!("answered from the store at once")
    };
    assert_eq!(
        (again.req, &again.room, again.id, again.offset),
        (4, &first.room, first.id, first.offset)
    );
    let rows = w
        .hub
        .store()
        .messages(&first.room, None, Some(0), 100)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
}
