//! Idempotent publishing and the store's failures, on a real gateway (QUIC on loopback, real
//! SQLite in a tempdir): the store decides whether a client id was used; a re-send gets the
//! original ack in every state (before the commit, after it, past the in-memory window,
//! after a restart); a store that cannot commit makes the gateway refuse publishes and
//! report unready, never exit, and it recovers by itself.

mod common;

use std::path::Path;
use std::time::Duration;

use common::raw::{eventually, Raw};
use common::*;
use garou_gateway::server::Gateway;
use garou_protocol::{ErrorCode, Message, MessageAck, MsgId, Offset, Send};
use sqlx::{ConnectOptions, Connection};

/// A raw session that publishes with chosen client ids.
struct Chat {
    raw: Raw,
    /// Control messages read while looking for another reply.
    other: Vec<Message>,
}

impl Chat {
    async fn login(gw: &Gateway, nick: &str, room: &str) -> Chat {
        let mut raw = Raw::login(gw, nick, true, None).await;
        raw.join(room).await;
        Chat {
            raw,
            other: Vec::new(),
        }
    }

    /// Write a Send; returns its request id.
    async fn send(&mut self, room: &str, client_id: u64, text: &str) -> u32 {
        let req = self.raw.req();
        let send = Send {
            req,
            room: room.into(),
            client_id,
            text: text.into(),
            attachment: None,
        };
        self.raw
            .commands
            .write_all(&Message::from(send).encode())
            .await
            .unwrap();
        req
    }

    /// The reply to `req` (bounded by `WAIT`).
    async fn reply(&mut self, req: u32) -> Message {
        if let Some(i) = self.other.iter().position(|m| m.reply_to() == Some(req)) {
            return self.other.remove(i);
        }
        loop {
            let m = self.raw.next().await;
            if m.reply_to() == Some(req) {
                return m;
            }
            self.other.push(m);
        }
    }

    /// Send and expect a MessageAck: (id, offset).
    async fn publish(&mut self, room: &str, client_id: u64, text: &str) -> (MsgId, Offset) {
        let req = self.send(room, client_id, text).await;
        ack(self.reply(req).await)
    }

    /// Room messages received until (and including) the one with `text`.
    async fn until_message(&mut self, text: &str) -> Vec<String> {
        let mut texts = Vec::new();
        loop {
            let m = tokio::time::timeout(WAIT, self.raw.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {text:?}"))
                .expect("events");
            if let Message::RoomMessage(m) = m {
                texts.push(m.text.clone());
                if m.text == text {
                    return texts;
                }
            }
        }
    }

    fn close(&self) {
        self.raw.conn.close(0u32.into(), b"bye");
    }
}

fn ack(m: Message) -> (MsgId, Offset) {
    match m {
        Message::MessageAck(MessageAck { id, offset, .. }) => (id, offset),
        other => panic!("expected a MessageAck, got {other:?}"),
    }
}

/// How many stored messages of `room` have this text.
async fn rows(gw: &Gateway, room: &str, text: &str) -> usize {
    let all = gw.hub.store().messages(room, None, Some(0), 1000).await.unwrap();
    all.iter().filter(|m| m.text == text).count()
}

/// A second SQLite connection holding the database's write lock (a real failure for the
/// gateway: its commits wait, then fail with SQLITE_BUSY, until the lock goes).
struct WriteLock(sqlx::SqliteConnection);

impl WriteLock {
    async fn take(data: &Path) -> WriteLock {
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.join("garou.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut c).await.unwrap();
        WriteLock(c)
    }

    async fn release(mut self) {
        sqlx::query("COMMIT").execute(&mut self.0).await.unwrap();
        self.0.close().await.unwrap();
    }
}

/// The attack of issue 12: more messages than the in-memory window, then a second session
/// of the same user re-sends an early client id. It used to pass the hub's check, break
/// the UNIQUE index, fail the whole group commit five times and exit the process (70).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_resent_past_the_window_gets_its_original_ack_and_the_gateway_keeps_serving() {
    const WINDOW: usize = 8;
    const BASE: u64 = 1 << 40;
    let gw = gateway(|c| c.recent_messages = WINDOW).await;
    let mut alice = Chat::login(&gw, "alice", "lobby").await;
    let mut bob = Chat::login(&gw, "bob", "lobby").await;
    let n = WINDOW as u64 * 4;
    let mut reqs = Vec::new();
    for i in 1..=n {
        reqs.push(alice.send("lobby", BASE + i, &format!("m{i}")).await);
    }
    let mut acks = Vec::new();
    for req in reqs {
        acks.push(ack(alice.reply(req).await));
    }
    bob.until_message(&format!("m{n}")).await;
    let user = alice.raw.user;
    alice.close();
    eventually("alice's first session gone", WAIT, || {
        gw.hub.connection_count() == 1
    })
    .await;

    // Same user, client ids from the same base again.
    let mut again = Chat::login(&gw, "alice", "lobby").await;
    assert_eq!(again.raw.user, user);
    assert_eq!(again.publish("lobby", BASE + 1, "m1").await, acks[0]);
    assert_eq!(again.publish("lobby", BASE + 2, "m2").await, acks[1]);
    // The gateway serves on; a bystander chats.
    let (_, offset) = bob.publish("lobby", 1, "still here").await;
    assert_eq!(
        offset,
        acks[n as usize - 1].1 + 1,
        "no offset taken by the re-sends"
    );
    assert_eq!(again.until_message("still here").await, ["still here"]);
    assert_eq!(
        bob.until_message("still here").await,
        ["still here"],
        "nothing re-delivered"
    );
    assert_eq!(rows(&gw, "lobby", "m1").await, 1);
    let all = gw
        .hub
        .store()
        .messages("lobby", None, Some(0), 1000)
        .await
        .unwrap();
    assert_eq!(all.len(), n as usize + 1);
    gw.shutdown().await;
}

/// The same client id before its commit, after it, and past the in-memory window: the
/// original id and offset each time, one history row, one delivery to a subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_client_id_is_acked_once_before_and_after_the_commit_and_past_the_window() {
    let data = tempfile::tempdir().unwrap();
    let gw = gateway(|c| {
        c.data = data.path().to_owned();
        c.recent_messages = 4;
    })
    .await;
    let mut alice = Chat::login(&gw, "alice", "lobby").await;
    let mut bob = Chat::login(&gw, "bob", "lobby").await;

    // Before the commit: the store is held so the first one cannot commit yet.
    let lock = WriteLock::take(data.path()).await;
    let first = alice.send("lobby", 7, "seven").await;
    let second = alice.send("lobby", 7, "seven").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    let original = ack(alice.reply(first).await);
    assert_eq!(
        ack(alice.reply(second).await),
        original,
        "re-sent before the commit"
    );
    // After the commit, in the window.
    assert_eq!(
        alice.publish("lobby", 7, "seven").await,
        original,
        "after the commit"
    );
    // Past the window (4 messages).
    for i in 0..6 {
        alice.publish("lobby", 100 + i, &format!("filler {i}")).await;
    }
    assert_eq!(
        alice.publish("lobby", 7, "seven").await,
        original,
        "past the window"
    );
    alice.publish("lobby", 200, "done").await;
    let seen = bob.until_message("done").await;
    assert_eq!(seen.iter().filter(|t| *t == "seven").count(), 1, "{seen:?}");
    assert_eq!(rows(&gw, "lobby", "seven").await, 1);
    gw.shutdown().await;
}

/// After a restart on the same data: with the message in the loaded window, and with only
/// the newest messages loaded (the store answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_client_id_is_acked_once_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let start = |window: usize| {
        let data = data.path().to_owned();
        gateway(move |c| {
            c.data = data;
            c.recent_messages = window;
        })
    };
    let gw = start(1000).await;
    let mut alice = Chat::login(&gw, "alice", "lobby").await;
    let original = alice.publish("lobby", 7, "seven").await;
    for i in 0..6 {
        alice.publish("lobby", 100 + i, &format!("filler {i}")).await;
    }
    gw.shutdown().await;

    for window in [1000, 4] {
        let gw = start(window).await;
        let mut bob = Chat::login(&gw, "bob", "lobby").await;
        let mut alice = Chat::login(&gw, "alice", "lobby").await;
        let again = alice.publish("lobby", 7, "seven").await;
        assert_eq!(again, original, "after a restart, window {window}");
        alice.publish("lobby", 300 + window as u64, "done").await;
        assert_eq!(bob.until_message("done").await, ["done"], "nothing re-delivered");
        assert_eq!(rows(&gw, "lobby", "seven").await, 1);
        gw.shutdown().await;
    }
}

/// The store stops taking commits (another connection holds its write lock): the message
/// on its way is kept and retried, new publishes are refused at once with Unavailable,
/// `/ready` says 503 naming the store; when the lock goes, the kept message commits and is
/// delivered and acked, and the gateway takes publishes again. It never exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_refuses_publishes_and_recovers_by_itself() {
    // Commits wait SQLite's busy timeout (5 s) before they fail, so this test waits longer
    // than WAIT.
    const OUTAGE: Duration = Duration::from_secs(40);
    let data = tempfile::tempdir().unwrap();
    let gw = gateway(|c| c.data = data.path().to_owned()).await;
    let mut alice = Chat::login(&gw, "alice", "lobby").await;
    let mut bob = Chat::login(&gw, "bob", "lobby").await;
    assert_eq!(ready(gw.http_addr).await.0, 200);

    let lock = WriteLock::take(data.path()).await;
    let held = alice.send("lobby", 1, "held").await;
    let deadline = tokio::time::Instant::now() + OUTAGE;
    loop {
        let (status, body) = ready(gw.http_addr).await;
        if status == 503 {
            assert!(body.contains("store"), "{body}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never unready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = alice.send("lobby", 2, "refused").await;
    match alice.reply(refused).await {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    lock.release().await;

    let reply = tokio::time::timeout(OUTAGE, alice.reply(held))
        .await
        .expect("held message acked");
    let (_, offset) = ack(reply);
    assert_eq!(bob.until_message("held").await, ["held"]);
    eventually("ready again", WAIT, || gw.hub.store_healthy()).await;
    assert_eq!(ready(gw.http_addr).await.0, 200);
    let (_, next) = alice.publish("lobby", 3, "after").await;
    assert_eq!(next, offset + 1, "the refused publish took no offset");
    assert_eq!(bob.until_message("after").await, ["after"]);
    assert_eq!(rows(&gw, "lobby", "held").await, 1);
    assert_eq!(rows(&gw, "lobby", "refused").await, 0);
    gw.shutdown().await;
}

/// A member joining again (a reload, a room switch) while a message is still on its way to
/// the store: the Joined offset starts at the first event not yet stored, so history before
/// it (from the store) and live events from it (through the committer) leave no hole. The
/// old code answered with the last *published* offset: the pending message was neither in
/// history (not committed yet) nor accepted live (below the Joined offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_while_a_message_is_pending_leaves_no_hole_between_history_and_live() {
    let data = tempfile::tempdir().unwrap();
    let gw = gateway(|c| c.data = data.path().to_owned()).await;
    let mut alice = Chat::login(&gw, "alice", "lobby").await;
    let mut bob = Chat::login(&gw, "bob", "lobby").await;
    alice.publish("lobby", 1, "stored").await;

    let lock = WriteLock::take(data.path()).await;
    let pending = alice.send("lobby", 2, "pending").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let req = bob.raw.send_join("lobby").await;
    let joined = match bob.reply(req).await {
        Message::Joined(j) => j,
        other => panic!("expected Joined, got {other:?}"),
    };
    // History is what the store holds now: every offset below the Joined one must be there.
    let below = joined.offset - 1;
    let stored = gw
        .hub
        .store()
        .events("lobby", below.saturating_sub(1), below)
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        1,
        "offset {below} (below Joined's {}) is not in history yet",
        joined.offset
    );

    lock.release().await;
    let (_, offset) = ack(alice.reply(pending).await);
    assert!(
        offset >= joined.offset,
        "the pending message ({offset}) arrives live, at or after Joined ({})",
        joined.offset
    );
    assert_eq!(
        bob.until_message("pending").await.last().map(String::as_str),
        Some("pending")
    );
    gw.shutdown().await;
}

/// Log in `nick`, join `room`, and drop the session; returns once the gateway has let it go.
async fn member_gone_offline(gw: &Gateway, nick: &str, room: &str) {
    let before = gw.hub.connection_count();
    let chat = Chat::login(gw, nick, room).await;
    chat.close();
    common::raw::eventually("the session to end", WAIT, || gw.hub.connection_count() <= before).await;
}

/// Who is online in a Joined reply's member list.
fn online(joined: &garou_protocol::Joined) -> Vec<String> {
    let mut v: Vec<String> = joined
        .members
        .iter()
        .filter(|m| m.online)
        .map(|m| m.nick.clone())
        .collect();
    v.sort();
    v
}

/// A new member's Joined is sent once its join is durable; a member who came online while
/// that commit waited is online in it (the old code built the list when the join was
/// decided, and the page showed that member offline for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_members_joined_lists_who_is_online_when_it_is_sent() {
    let data = tempfile::tempdir().unwrap();
    let gw = gateway(|c| c.data = data.path().to_owned()).await;
    let _ann = Chat::login(&gw, "ann", "lobby").await;
    member_gone_offline(&gw, "bob", "lobby").await;

    let lock = WriteLock::take(data.path()).await;
    let mut carol = Chat {
        raw: Raw::login(&gw, "carol", true, None).await,
        other: Vec::new(),
    };
    let req = carol.raw.send_join("lobby").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Bob comes back while carol's join waits for the store.
    let _bob = Chat::login(&gw, "bob", "lobby").await;
    lock.release().await;
    let joined = match carol.reply(req).await {
        Message::Joined(j) => j,
        other => panic!("expected Joined, got {other:?}"),
    };
    assert_eq!(online(&joined), ["ann", "bob", "carol"]);
    gw.shutdown().await;
}

/// A member coming back to a room (a join of an existing membership) is announced online
/// to the room's subscribers when it starts receiving the room: the connect-time
/// announcement reached only the rooms' subscribers of that moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_in_a_room_is_announced_online_to_its_subscribers() {
    let gw = gateway(|_| {}).await;
    member_gone_offline(&gw, "bob", "lobby").await;
    member_gone_offline(&gw, "ann", "lobby").await;
    // Bob connects (announced to nobody: no one receives the room), then ann joins: bob is
    // a member, offline. Then bob joins again.
    let mut bob = Chat {
        raw: Raw::login(&gw, "bob", true, None).await,
        other: Vec::new(),
    };
    let mut ann = Chat {
        raw: Raw::login(&gw, "ann", true, None).await,
        other: Vec::new(),
    };
    let req = ann.raw.send_join("lobby").await;
    match ann.reply(req).await {
        Message::Joined(j) => assert_eq!(online(&j), ["ann"]),
        other => panic!("expected Joined, got {other:?}"),
    }
    bob.raw.join("lobby").await;
    let presence = tokio::time::timeout(WAIT, async {
        loop {
            let d = ann.raw.conn.read_datagram().await.expect("datagram");
            if let Ok(Message::Presence(p)) = Message::decode_datagram(&d, 64 * 1024) {
                return p;
            }
        }
    })
    .await
    .expect("a Presence datagram for bob");
    assert_eq!((presence.nick.as_str(), presence.online), ("bob", true));
    gw.shutdown().await;
}
