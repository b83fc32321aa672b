//! Hub unit tests: real hub, real queues; the transport side is an in-memory [`Wire`] that
//! hands each opened lane's queue to the test.

use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::*;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{Hub, HubConfig};
use crate::conn::{Conn, Ctl, Wire};

#[derive(Default)]
pub(super) struct TestWire {
    lanes: Mutex<Vec<(StreamKind, mpsc::Receiver<Bytes>)>>,
    pub(super) datagrams: Mutex<Vec<Bytes>>,
    closed: Mutex<Option<ErrorCode>>,
}

impl Wire for TestWire {
    fn open_lane(&self, kind: StreamKind, rx: mpsc::Receiver<Bytes>) {
        self.lanes.lock().push((kind, rx));
    }
    fn send_datagram(&self, data: Bytes) {
        self.datagrams.lock().push(data);
    }
    fn close(&self, code: ErrorCode, _reason: &str) {
        *self.closed.lock() = Some(code);
    }
}

pub(super) struct Probe {
    pub(super) conn: Arc<Conn>,
    pub(super) wire: Arc<TestWire>,
    control: mpsc::Receiver<Ctl>,
    /// Control frames read while looking for a reply, kept for `control()`.
    seen: Vec<Message>,
}

impl Probe {
    /// Run a command and return its reply, immediate or sent once durable.
    pub(super) async fn cmd(&mut self, hub: &Hub, msg: impl Into<Message>) -> Message {
        let msg = msg.into();
        let req = msg.request_id();
        if let Some(reply) = hub.command(&self.conn, msg) {
            return reply;
        }
        hub.flush().await;
        let mut frames = self.control_raw();
        let at = frames
            .iter()
            .position(|m| m.reply_to() == req)
            .expect("a reply once the change is durable");
        let reply = frames.remove(at);
        self.seen.extend(frames);
        reply
    }

    fn control_raw(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Ok(c) = self.control.try_recv() {
            match c {
                Ctl::Frame(b) => out.push(Message::decode_datagram(&b, DEFAULT_MAX_FRAME).unwrap()),
                Ctl::Close(c) => out.push(Error::fatal(c.code, "closed")),
            }
        }
        out
    }

    /// Every frame queued so far on lanes of `kind`, decoded.
    fn lane(&self, kind: &StreamKind) -> Vec<Message> {
        let mut out = Vec::new();
        for (k, rx) in self.wire.lanes.lock().iter_mut().filter(|(k, _)| k == kind) {
            let _ = k;
            while let Ok(b) = rx.try_recv() {
                out.push(Message::decode_datagram(&b, DEFAULT_MAX_FRAME).unwrap());
            }
        }
        out
    }

    /// Every room event queued on any lane, with the lane it used.
    pub(super) fn room_events(&self) -> Vec<(StreamKind, Message)> {
        let mut out = Vec::new();
        for (k, rx) in self.wire.lanes.lock().iter_mut() {
            while let Ok(b) = rx.try_recv() {
                out.push((
                    k.clone(),
                    Message::decode_datagram(&b, DEFAULT_MAX_FRAME).unwrap(),
                ));
            }
        }
        out.sort_by_key(|(_, m)| m.room_offset().map(|(_, o)| o));
        out
    }

    pub(super) fn control(&mut self) -> Vec<Message> {
        let mut out = std::mem::take(&mut self.seen);
        out.extend(self.control_raw());
        out
    }
}

pub(super) fn cfg() -> HubConfig {
    HubConfig {
        retention: Default::default(),
        num_shards: 8,
        max_message_len: 1000,
        hot_room_threshold: 1_000_000.0,
        cool_down_threshold: 1.0,
        cool_down_period_secs: 0,
        max_hot_rooms: 2,
        rate_window_secs: 1,
        auth: crate::auth::Auth::open(),
        max_rooms_per_user: 0,
        max_members_per_room: 0,
        recent_messages: super::room::RECENT_MESSAGES,
        recent_messages_total: 1_000_000,
        resume_token_ttl: std::time::Duration::from_secs(600),
    }
}

/// A hub on a fresh SQLite store (kept alive by the returned directory).
pub(super) async fn hub_with(cfg: HubConfig) -> (Arc<Hub>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::sqlite::SqliteStore::open(dir.path()).await.unwrap();
    (Hub::open(cfg, Arc::new(store)).await.unwrap(), dir)
}

pub(super) fn login(hub: &Hub, nick: &str, lane_queue: usize) -> Result<Probe, ErrorCode> {
    login_with(hub, &Credentials::Nick(nick.into()), lane_queue)
}

pub(super) fn login_with(hub: &Hub, creds: &Credentials, lane_queue: usize) -> Result<Probe, ErrorCode> {
    let wire = Arc::new(TestWire::default());
    let (tx, control) = mpsc::channel(64);
    let w: Arc<dyn Wire> = wire.clone();
    let (conn, _) = hub
        .login(creds, |user| {
            Arc::new(Conn::new(hub.next_id(), user, "test", tx, w, lane_queue, true))
        })
        .map_err(|(c, _)| c)?;
    Ok(Probe {
        conn,
        wire,
        control,
        seen: Vec::new(),
    })
}

pub(super) fn join(req: ReqId, room: &str) -> Join {
    Join {
        req,
        room: room.into(),
        since: None,
    }
}

pub(super) fn send(req: ReqId, room: &str, text: &str) -> Send {
    Send {
        req,
        room: room.into(),
        client_id: req.into(),
        text: text.into(),
        attachment: None,
    }
}

pub(super) fn error_code(m: &Message) -> Option<ErrorCode> {
    match m {
        Message::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test]
async fn join_send_fan_out_in_order_on_the_rooms_shard() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut a = login(&hub, "alice", 64).unwrap();
    let mut b = login(&hub, "bob", 64).unwrap();
    let Message::Joined(j) = a.cmd(&hub, join(1, "general")).await else {
        panic!()
    };
    assert_eq!((j.role, j.offset), (Role::Owner, 1));
    let Message::Joined(j) = b.cmd(&hub, join(1, "general")).await else {
        panic!()
    };
    assert_eq!((j.role, j.offset, j.members.len()), (Role::Member, 2, 2));
    let Message::MessageAck(ack) = a.cmd(&hub, send(2, "general", "hi")).await else {
        panic!()
    };
    assert_eq!(ack.offset, 3);

    let lane = StreamKind::Shard(shard_of("general", 8));
    let seen_by_a: Vec<Offset> = a.lane(&lane).iter().map(|m| m.room_offset().unwrap().1).collect();
    let seen_by_b = b.lane(&lane);
    assert_eq!(seen_by_a, vec![1, 2, 3]);
    assert_eq!(seen_by_b.len(), 2, "bob sees his own join and the message");
    assert!(matches!(&seen_by_b[1], Message::RoomMessage(m) if m.text == "hi" && m.nick == "alice"));
}

#[tokio::test]
async fn a_message_is_encoded_once_for_all_recipients() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut probes: Vec<Probe> = (0..3)
        .map(|i| login(&hub, &format!("u{i}"), 64).unwrap())
        .collect();
    for p in &mut probes {
        p.cmd(&hub, join(1, "r")).await;
    }
    let lane = StreamKind::Shard(shard_of("r", 8));
    for p in &probes {
        p.lane(&lane);
    }
    probes[0].cmd(&hub, send(2, "r", "shared")).await;
    let ptrs: Vec<*const u8> = probes
        .iter()
        .map(|p| {
            let mut lanes = p.wire.lanes.lock();
            lanes[0].1.try_recv().unwrap().as_ptr()
        })
        .collect();
    assert!(
        ptrs.windows(2).all(|w| w[0] == w[1]),
        "every recipient got the same buffer"
    );
}

#[tokio::test]
async fn guests_cannot_post_until_promoted() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut owner = login(&hub, "owner", 64).unwrap();
    let mut guest = login(&hub, "guest", 64).unwrap();
    owner
        .cmd(
            &hub,
            CreateRoom {
                req: 1,
                room: "news".into(),
                kind: RoomKind::Channel,
            },
        )
        .await;
    let Message::Joined(j) = guest.cmd(&hub, join(1, "news")).await else {
        panic!()
    };
    assert_eq!(j.role, Role::Guest);
    assert_eq!(
        error_code(&guest.cmd(&hub, send(2, "news", "hello")).await),
        Some(ErrorCode::Forbidden)
    );
    let set = SetRole {
        req: 2,
        room: "news".into(),
        nick: "guest".into(),
        role: Role::Member,
    };
    assert_eq!(
        error_code(&guest.cmd(&hub, set.clone()).await),
        Some(ErrorCode::Forbidden),
        "no self-promotion"
    );
    assert!(matches!(owner.cmd(&hub, set).await, Message::Done(_)));
    assert!(matches!(
        guest.cmd(&hub, send(3, "news", "hello")).await,
        Message::MessageAck(_)
    ));
}

#[tokio::test]
async fn nicks_are_unique_while_online_and_memberships_survive_reconnect() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut a = login(&hub, "alice", 64).unwrap();
    assert_eq!(login(&hub, "alice", 64).err(), Some(ErrorCode::NickUnavailable));
    assert_eq!(
        login(&hub, "bad nick!", 64).err(),
        Some(ErrorCode::NickUnavailable)
    );
    a.cmd(&hub, join(1, "general")).await;
    let user = a.conn.user;
    hub.disconnect(&a.conn);
    let mut a2 = login(&hub, "alice", 64).unwrap();
    assert_eq!(a2.conn.user, user, "same user again");
    let Message::Joined(j) = a2.cmd(&hub, join(1, "general")).await else {
        panic!()
    };
    assert_eq!(
        (j.role, j.offset),
        (Role::Owner, 2),
        "still owner; no new join event"
    );
    let mut b = login(&hub, "bob", 64).unwrap();
    assert_eq!(
        error_code(
            &b.cmd(
                &hub,
                SetNick {
                    req: 1,
                    nick: "alice".into()
                }
            )
            .await
        ),
        Some(ErrorCode::NickUnavailable)
    );
}

#[tokio::test]
async fn edit_and_delete_follow_the_matrix() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut owner = login(&hub, "owner", 64).unwrap();
    let mut bob = login(&hub, "bob", 64).unwrap();
    owner.cmd(&hub, join(1, "g")).await;
    bob.cmd(&hub, join(1, "g")).await;
    let Message::MessageAck(ack) = bob.cmd(&hub, send(2, "g", "typo")).await else {
        panic!()
    };
    let edit = |req, text: &str| Edit {
        req,
        room: "g".into(),
        id: ack.id,
        text: text.into(),
    };
    assert_eq!(
        error_code(&owner.cmd(&hub, edit(3, "mine now")).await),
        Some(ErrorCode::Forbidden)
    );
    assert!(matches!(bob.cmd(&hub, edit(3, "fixed")).await, Message::Done(_)));
    let react = React {
        req: 4,
        room: "g".into(),
        id: ack.id,
        emoji: "👍".into(),
        add: true,
    };
    assert!(matches!(owner.cmd(&hub, react).await, Message::Done(_)));
    let delete = Delete {
        req: 5,
        room: "g".into(),
        id: ack.id,
    };
    assert!(
        matches!(owner.cmd(&hub, delete.clone()).await, Message::Done(_)),
        "owners delete any"
    );
    assert_eq!(
        error_code(&bob.cmd(&hub, delete).await),
        Some(ErrorCode::NoSuchMessage)
    );
    let kinds: Vec<FrameType> = bob.room_events().iter().map(|(_, m)| m.frame_type()).collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        [
            FrameType::MessageEdited,
            FrameType::ReactionChanged,
            FrameType::MessageDeleted
        ]
    );
}

#[tokio::test]
async fn direct_messages_open_a_private_room_for_two() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut a = login(&hub, "alice", 64).unwrap();
    let mut b = login(&hub, "bob", 64).unwrap();
    let mut c = login(&hub, "carol", 64).unwrap();
    let dm = DirectMessage {
        req: 1,
        to: "bob".into(),
        client_id: 1,
        text: "psst".into(),
    };
    let Message::MessageAck(ack) = a.cmd(&hub, dm).await else {
        panic!()
    };
    assert!(ack.room.starts_with("dm:"));
    let got = b.room_events();
    assert!(
        matches!(&got.last().unwrap().1, Message::RoomMessage(m) if m.text == "psst"),
        "{got:?}"
    );
    assert_eq!(
        error_code(&c.cmd(&hub, join(1, &ack.room)).await),
        Some(ErrorCode::Forbidden)
    );
    let Message::RoomList(l) = c.cmd(&hub, ListRooms { req: 2 }).await else {
        panic!()
    };
    assert!(l.rooms.is_empty(), "direct rooms are not listed to others");
    let Message::RoomList(l) = b.cmd(&hub, ListRooms { req: 2 }).await else {
        panic!()
    };
    assert_eq!(l.rooms.len(), 1);
}

#[tokio::test]
async fn hot_rooms_move_to_their_own_stream_and_back_without_reordering() {
    let (hub, _dir) = hub_with(HubConfig {
        hot_room_threshold: 5.0,
        ..cfg()
    })
    .await;
    let mut a = login(&hub, "alice", 1024).unwrap();
    let mut b = login(&hub, "bob", 1024).unwrap();
    a.cmd(&hub, join(1, "busy")).await;
    b.cmd(&hub, join(1, "busy")).await;
    for i in 0..20 {
        a.cmd(&hub, send(10 + i, "busy", &format!("m{i}"))).await;
    }
    assert_eq!(hub.hot_rooms(), 1);
    for p in [&mut a, &mut b] {
        assert!(p
            .control()
            .iter()
            .any(|m| matches!(m, Message::RoomPromoted(r) if r.room == "busy")));
    }
    let events = b.room_events();
    let offsets: Vec<Offset> = events.iter().map(|(_, m)| m.room_offset().unwrap().1).collect();
    assert_eq!(offsets, (2..=22).collect::<Vec<_>>(), "every event exactly once");
    assert!(events.iter().any(|(k, _)| *k == StreamKind::Hot("busy".into())));
    assert!(events.iter().any(|(k, _)| matches!(k, StreamKind::Shard(_))));
    // Cooled down (rate window 1 s, period 0 s): the next tick demotes it.
    hub.advance_clock(2);
    hub.tick();
    assert_eq!(hub.hot_rooms(), 0);
    assert!(b.control().iter().any(|m| matches!(m, Message::RoomDemoted(_))));
    b.cmd(&hub, send(99, "busy", "calm")).await;
    let after = b.room_events();
    assert!(matches!(&after[..], [(StreamKind::Shard(_), Message::RoomMessage(m))] if m.text == "calm"));
}

#[tokio::test]
async fn a_slow_consumer_is_dropped_and_the_others_keep_everything() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut a = login(&hub, "alice", 1024).unwrap();
    let mut slow = login(&hub, "slow", 4).unwrap();
    a.cmd(&hub, join(1, "r")).await;
    slow.cmd(&hub, join(1, "r")).await;
    for i in 0..50 {
        assert!(matches!(
            a.cmd(&hub, send(10 + i, "r", "x")).await,
            Message::MessageAck(_)
        ));
    }
    assert!(slow.conn.is_dead());
    assert!(slow
        .control()
        .iter()
        .any(|m| error_code(m) == Some(ErrorCode::SlowConsumer)));
    assert_eq!(a.room_events().len(), 52, "2 joins + 50 messages");
}

#[tokio::test]
async fn typing_reaches_others_and_receipts_reach_the_author() {
    let (hub, _dir) = hub_with(cfg()).await;
    let mut a = login(&hub, "alice", 64).unwrap();
    let mut b = login(&hub, "bob", 64).unwrap();
    a.cmd(&hub, join(1, "r")).await;
    b.cmd(&hub, join(1, "r")).await;
    a.wire.datagrams.lock().clear();
    hub.typing(&b.conn, "r");
    let d = a.wire.datagrams.lock().clone();
    assert_eq!(d.len(), 1);
    assert!(matches!(Message::decode_datagram(&d[0], 2048).unwrap(), Message::Typing(t) if t.nick == "bob"));
    assert!(b.wire.datagrams.lock().is_empty(), "not echoed to the typist");
    let Message::MessageAck(ack) = a.cmd(&hub, send(2, "r", "read me")).await else {
        panic!()
    };
    a.control();
    hub.receipt(&b.conn, "r", ack.id, true);
    assert!(a
        .control()
        .iter()
        .any(|m| matches!(m, Message::Receipt(r) if r.read && r.nick == "bob" && r.id == ack.id)));
}
