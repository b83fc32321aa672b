//! The client session state machine, driven by hand: the test plays the server by feeding
//! encoded frames in and decoding what the session transmits.

use garou_protocol::client::{StreamId, CONTROL};
use garou_protocol::*;
use proptest::prelude::*;
use proptest::sample::Index;

const T0: u64 = 10_000;
const ME: UserId = 42;
const NICK: &str = "alice";
const SESSION: u64 = 7;
const HB: u64 = 1_000;
const TIMEOUT: u64 = 500;
const SHARDS: u16 = 4;
const SHARD_ID: StreamId = 1;
const HOT_ID: StreamId = 2;
const EPOCH: u64 = 77;

fn cfg() -> ClientConfig {
    let mut c = ClientConfig::with_nick(NICK);
    c.request_timeout_ms = TIMEOUT;
    c
}

fn feed_at(s: &mut ClientSession, id: StreamId, m: impl Into<Message>, now: u64) -> Result<(), SessionError> {
    s.on_stream_data(id, &m.into().encode(), now)
}

fn feed(s: &mut ClientSession, id: StreamId, m: impl Into<Message>) -> Result<(), SessionError> {
    feed_at(s, id, m, T0)
}

fn ctl(s: &mut ClientSession, m: impl Into<Message>) -> Result<(), SessionError> {
    feed(s, CONTROL, m)
}

/// Everything queued for sending, each transmit decoded as exactly one frame.
fn transmits(s: &mut ClientSession) -> Vec<(Lane, Message)> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|t| {
            let m = Message::decode_datagram(&t.data, DEFAULT_MAX_FRAME).expect("one whole frame");
            (t.lane, m)
        })
        .collect()
}

fn events(s: &mut ClientSession) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn hello_ack(version: u16, heartbeat_ms: u32) -> HelloAck {
    HelloAck {
        session: SESSION,
        version,
        server: "garou-test".into(),
        max_frame: 1 << 20,
        heartbeat_ms,
    }
}

fn auth_ok() -> AuthOk {
    AuthOk {
        user: ME,
        nick: NICK.into(),
    }
}

fn handshake(s: &mut ClientSession, num_shards: u16) {
    ctl(s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    ctl(s, auth_ok()).unwrap();
    ctl(s, ShardAssignment { num_shards }).unwrap();
}

fn ready_with(config: ClientConfig) -> ClientSession {
    let mut s = ClientSession::new(config, T0);
    handshake(&mut s, SHARDS);
    assert!(s.is_ready());
    assert!(matches!(events(&mut s)[..], [Event::Ready { .. }]));
    transmits(&mut s);
    s
}

fn ready() -> ClientSession {
    ready_with(cfg())
}

fn text(room: &str, offset: Offset) -> Message {
    RoomMessage {
        room: room.into(),
        offset,
        id: 1_000 + offset,
        author: 7,
        nick: "bob".into(),
        ts_ms: offset,
        text: format!("m{offset}"),
        attachment: None,
    }
    .into()
}

fn self_join(room: &str, offset: Offset) -> Message {
    MemberJoined {
        room: room.into(),
        offset,
        user: ME,
        nick: NICK.into(),
        role: Role::Member,
    }
    .into()
}

fn info(room: &str, offset: Offset) -> JoinInfo {
    JoinInfo {
        room: RoomInfo {
            name: room.into(),
            kind: RoomKind::Group,
            members: 2,
            title: String::new(),
        },
        role: Role::Member,
        offset,
        members: vec![MemberInfo {
            user: ME,
            nick: NICK.into(),
            role: Role::Member,
            online: true,
        }],
        epoch: EPOCH,
        resumed: false,
        unread: 0,
    }
}

fn joined_with(req: ReqId, i: JoinInfo) -> Message {
    Joined {
        req,
        room: i.room,
        role: i.role,
        offset: i.offset,
        members: i.members,
        epoch: i.epoch,
        resumed: i.resumed,
        unread: i.unread,
    }
    .into()
}

fn joined(req: ReqId, room: &str, offset: Offset) -> Message {
    joined_with(req, info(room, offset))
}

/// Join `room` with the reply saying our own MemberJoined is at `offset`.
fn join_room(s: &mut ClientSession, room: &str, offset: Offset) -> ReqId {
    let req = s.join(room, T0);
    transmits(s);
    ctl(s, joined(req, room, offset)).unwrap();
    assert_eq!(
        events(s),
        vec![Event::Reply {
            req,
            result: Ok(Reply::Joined(info(room, offset)))
        }]
    );
    req
}

fn open(s: &mut ClientSession, id: StreamId, kind: StreamKind) {
    feed(s, id, StreamHeader { kind }).unwrap();
    assert_eq!(events(s), vec![]);
}

fn open_shard_of(s: &mut ClientSession, room: &str) {
    let shard = s.shard_of(room);
    open(s, SHARD_ID, StreamKind::Shard(shard));
}

/// The (offset, stream) of every room event; panics on any other event.
fn delivered(evs: &[Event]) -> Vec<(Offset, StreamKind)> {
    evs.iter()
        .map(|e| match e {
            Event::Room { event, via } => (event.room_offset().expect("room event").1, via.clone()),
            other => panic!("expected a room event, got {other:?}"),
        })
        .collect()
}

fn is_protocol(r: Result<(), SessionError>) -> bool {
    matches!(r, Err(SessionError::Protocol(_)))
}

fn failure_code(e: &Event) -> Option<ErrorCode> {
    match e {
        Event::Reply { result: Err(f), .. } | Event::Rejoined { result: Err(f), .. } => Some(f.code),
        _ => None,
    }
}

// ---------------------------------------------------------------- handshake

#[test]
fn handshake_yields_ready_and_transmits_on_the_right_lanes() {
    let mut s = ClientSession::new(cfg(), T0);
    assert!(!s.is_ready());
    assert_eq!(
        transmits(&mut s),
        vec![(
            Lane::Control,
            Hello {
                version: PROTOCOL_VERSION,
                client: cfg().client_name,
                resume: Default::default(),
            }
            .into()
        )]
    );
    assert_eq!(s.poll_timeout(), None);

    ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    assert_eq!(
        transmits(&mut s),
        vec![(
            Lane::Control,
            Auth {
                credentials: Credentials::Nick(NICK.into())
            }
            .into()
        )]
    );
    assert_eq!(s.session_id(), SESSION);
    assert!(!s.is_ready());

    ctl(&mut s, auth_ok()).unwrap();
    assert_eq!(transmits(&mut s), vec![]);
    assert_eq!(events(&mut s), vec![]);
    assert_eq!((s.user(), s.nick()), (ME, NICK));
    assert!(!s.is_ready());

    ctl(&mut s, ShardAssignment { num_shards: SHARDS }).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Ready {
            session: SESSION,
            user: ME,
            nick: NICK.into(),
            num_shards: SHARDS,
        }]
    );
    assert!(s.is_ready());
    assert_eq!(s.num_shards(), SHARDS);
    assert_eq!(s.shard_of("lobby"), shard_of("lobby", SHARDS));
    assert_eq!(s.poll_timeout(), Some(T0 + HB));
    assert_eq!(transmits(&mut s), vec![]);

    // First frame on the Commands and Acks lanes is their StreamHeader, sent once.
    let j = s.join("lobby", T0);
    let m = s.send("lobby", "hi", T0);
    s.delivered("lobby", 5);
    s.read("lobby", 5);
    s.delivered("lobby", 6);
    s.typing("lobby");
    assert_ne!(j, 0);
    assert_ne!(j, m);
    assert_eq!(
        transmits(&mut s),
        vec![
            (
                Lane::Commands,
                StreamHeader {
                    kind: StreamKind::Commands
                }
                .into()
            ),
            (
                Lane::Commands,
                Join {
                    req: j,
                    room: "lobby".into(),
                    since: None,
                }
                .into()
            ),
            (
                Lane::Commands,
                Send {
                    req: m,
                    room: "lobby".into(),
                    client_id: 1,
                    text: "hi".into(),
                    attachment: None,
                }
                .into()
            ),
            (
                Lane::Acks,
                StreamHeader {
                    kind: StreamKind::Acks
                }
                .into()
            ),
            (
                Lane::Acks,
                Delivered {
                    room: "lobby".into(),
                    id: 5
                }
                .into()
            ),
            (
                Lane::Acks,
                Read {
                    room: "lobby".into(),
                    id: 5
                }
                .into()
            ),
            (
                Lane::Acks,
                Delivered {
                    room: "lobby".into(),
                    id: 6
                }
                .into()
            ),
            (
                Lane::Datagram,
                Typing {
                    room: "lobby".into(),
                    user: 0,
                    nick: String::new()
                }
                .into()
            ),
        ]
    );
    let l = s.list_rooms(T0);
    assert_eq!(
        transmits(&mut s),
        vec![(Lane::Commands, ListRooms { req: l }.into())]
    );
}

#[test]
fn handshake_from_bytes_split_one_by_one() {
    let mut s = ClientSession::new(cfg(), T0);
    transmits(&mut s);
    let frames: Vec<Message> = vec![
        hello_ack(PROTOCOL_VERSION, HB as u32).into(),
        auth_ok().into(),
        ShardAssignment { num_shards: 2 }.into(),
        Welcome {
            message: "welcome to garou".into(),
            ticket: "t".into(),
            resume_token: Default::default(),
        }
        .into(),
    ];
    let wire: Vec<u8> = frames.iter().flat_map(|m| m.encode().to_vec()).collect();
    for b in &wire {
        s.on_stream_data(CONTROL, std::slice::from_ref(b), T0).unwrap();
    }
    assert_eq!(
        events(&mut s),
        vec![
            Event::Ready {
                session: SESSION,
                user: ME,
                nick: NICK.into(),
                num_shards: 2
            },
            Event::Welcome("welcome to garou".into()),
        ]
    );
    assert_eq!(s.on_stream_end(CONTROL), Ok(()));
}

#[test]
fn commands_before_ready_are_held_then_sent_in_order() {
    let mut s = ClientSession::new(cfg(), T0);
    transmits(&mut s);
    let j = s.join("lobby", T0);
    let m = s.send("lobby", "early", T0);
    let n = s.set_nick("bob", T0);
    // Acks and datagrams before the handshake are dropped, not held.
    s.typing("lobby");
    s.delivered("lobby", 1);
    s.read("lobby", 1);
    assert_eq!(transmits(&mut s), vec![]);
    assert_eq!(s.pending_requests(), 3);
    assert_eq!(s.poll_timeout(), None);

    ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    let tx = transmits(&mut s);
    assert_eq!(tx.len(), 1);
    assert!(matches!(tx[0], (Lane::Control, Message::Auth(_))));
    ctl(&mut s, auth_ok()).unwrap();
    assert_eq!(transmits(&mut s), vec![]);

    feed_at(&mut s, CONTROL, ShardAssignment { num_shards: SHARDS }, T0 + 50).unwrap();
    assert!(matches!(events(&mut s)[..], [Event::Ready { .. }]));
    assert_eq!(
        transmits(&mut s),
        vec![
            (
                Lane::Commands,
                StreamHeader {
                    kind: StreamKind::Commands
                }
                .into()
            ),
            (
                Lane::Commands,
                Join {
                    req: j,
                    room: "lobby".into(),
                    since: None,
                }
                .into()
            ),
            (
                Lane::Commands,
                Send {
                    req: m,
                    room: "lobby".into(),
                    client_id: 1,
                    text: "early".into(),
                    attachment: None,
                }
                .into()
            ),
            (
                Lane::Commands,
                SetNick {
                    req: n,
                    nick: "bob".into()
                }
                .into()
            ),
        ]
    );
    assert_eq!(s.pending_requests(), 3);
    // Their deadlines run from the moment they were actually sent.
    assert_eq!(s.poll_timeout(), Some(T0 + 50 + TIMEOUT));
    ctl(&mut s, joined(j, "lobby", 1)).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Reply {
            req: j,
            result: Ok(Reply::Joined(info("lobby", 1)))
        }]
    );
    assert_eq!(s.pending_requests(), 2);
}

#[test]
fn auth_error_is_refused() {
    let mut s = ClientSession::new(cfg(), T0);
    ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    let r = ctl(
        &mut s,
        AuthError {
            code: ErrorCode::AuthFailed,
            reason: "bad token".into(),
        },
    );
    assert_eq!(
        r,
        Err(SessionError::Refused(Failure {
            code: ErrorCode::AuthFailed,
            message: "bad token".into()
        }))
    );
    assert!(!s.is_ready());
}

#[test]
fn fatal_error_during_handshake_is_refused() {
    let mut s = ClientSession::new(cfg(), T0);
    let r = ctl(&mut s, Error::fatal(ErrorCode::UnsupportedVersion, "speak v2"));
    assert_eq!(
        r,
        Err(SessionError::Refused(Failure {
            code: ErrorCode::UnsupportedVersion,
            message: "speak v2".into()
        }))
    );
}

#[test]
fn server_version_mismatch_is_an_error() {
    let mut s = ClientSession::new(cfg(), T0);
    transmits(&mut s);
    let r = ctl(&mut s, hello_ack(PROTOCOL_VERSION + 1, HB as u32));
    assert!(is_protocol(r.clone()), "{r:?}");
    assert_eq!(transmits(&mut s), vec![], "no Auth after a version mismatch");
    assert!(!s.is_ready());
}

#[test]
fn zero_shards_is_an_error() {
    let mut s = ClientSession::new(cfg(), T0);
    ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    ctl(&mut s, auth_ok()).unwrap();
    assert!(is_protocol(ctl(&mut s, ShardAssignment { num_shards: 0 })));
    assert!(!s.is_ready());
}

#[test]
fn frames_out_of_state_are_protocol_errors() {
    let mut s = ClientSession::new(cfg(), T0);
    assert!(is_protocol(ctl(&mut s, auth_ok())));

    let mut s = ClientSession::new(cfg(), T0);
    ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    assert!(is_protocol(ctl(&mut s, ShardAssignment { num_shards: 1 })));

    let mut s = ClientSession::new(cfg(), T0);
    let _ = s.list_rooms(T0);
    assert!(is_protocol(ctl(&mut s, Done { req: 1 })));

    let mut s = ready();
    assert!(is_protocol(ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32))));
    let mut s = ready();
    assert!(is_protocol(ctl(&mut s, text("lobby", 1))));
    let mut s = ready();
    let header = StreamHeader {
        kind: StreamKind::Shard(0),
    };
    assert!(is_protocol(ctl(&mut s, header)));
}

// ---------------------------------------------------------------- requests

#[test]
fn replies_resolve_the_right_request_ids() {
    let mut s = ready();
    let j = s.join("lobby", T0);
    let snd = s.send("lobby", "hi", T0);
    let e = s.edit("lobby", 5, "fixed", T0);
    let nick = s.set_nick("bob", T0);
    let lr = s.list_rooms(T0);
    let lu = s.list_users("lobby", T0);
    let dm = s.direct("carol", "yo", T0);
    let del = s.delete("lobby", 6, T0);
    let rc = s.react("lobby", 6, "+1", true, T0);
    let sr = s.set_role("lobby", "carol", Role::Moderator, T0);
    let cr = s.create_room("den", RoomKind::Channel, T0);
    let ids = [j, snd, e, nick, lr, lu, dm, del, rc, sr, cr];
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    assert!(!ids.contains(&0));
    assert_eq!(s.pending_requests(), ids.len());

    let tx = transmits(&mut s);
    let client_ids: Vec<(ReqId, u64)> = tx
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Send(x) => Some((x.req, x.client_id)),
            Message::DirectMessage(x) => Some((x.req, x.client_id)),
            _ => None,
        })
        .collect();
    assert_eq!(client_ids, vec![(snd, 1), (dm, 2)]);
    assert!(tx.iter().all(|(lane, _)| *lane == Lane::Commands));

    let users = vec![MemberInfo {
        user: 9,
        nick: "carol".into(),
        role: Role::Admin,
        online: false,
    }];
    let rooms = vec![RoomInfo {
        name: "lobby".into(),
        kind: RoomKind::Group,
        members: 3,
        title: String::new(),
    }];
    // Answered in an order unrelated to the order of the requests.
    let cases: Vec<(Message, ReqId, Result<Reply, Failure>)> = vec![
        (
            MessageAck {
                req: dm,
                room: "dm-carol".into(),
                id: 77,
                offset: 3,
            }
            .into(),
            dm,
            Ok(Reply::Sent {
                room: "dm-carol".into(),
                id: 77,
                offset: 3,
            }),
        ),
        (
            Error::reply(e, ErrorCode::NoSuchMessage, "gone"),
            e,
            Err(Failure {
                code: ErrorCode::NoSuchMessage,
                message: "gone".into(),
            }),
        ),
        (
            MessageAck {
                req: snd,
                room: "lobby".into(),
                id: 78,
                offset: 12,
            }
            .into(),
            snd,
            Ok(Reply::Sent {
                room: "lobby".into(),
                id: 78,
                offset: 12,
            }),
        ),
        (joined(j, "lobby", 11), j, Ok(Reply::Joined(info("lobby", 11)))),
        (
            NickOk {
                req: nick,
                nick: "bob".into(),
            }
            .into(),
            nick,
            Ok(Reply::Nick("bob".into())),
        ),
        (
            UserList {
                req: lu,
                room: "lobby".into(),
                users: users.clone(),
            }
            .into(),
            lu,
            Ok(Reply::Users {
                room: "lobby".into(),
                users,
            }),
        ),
        (
            RoomList {
                req: lr,
                rooms: rooms.clone(),
            }
            .into(),
            lr,
            Ok(Reply::Rooms(rooms)),
        ),
        (Done { req: sr }.into(), sr, Ok(Reply::Done)),
        (Done { req: del }.into(), del, Ok(Reply::Done)),
        (
            Error::reply(rc, ErrorCode::Forbidden, "muted"),
            rc,
            Err(Failure {
                code: ErrorCode::Forbidden,
                message: "muted".into(),
            }),
        ),
        (joined(cr, "den", 1), cr, Ok(Reply::Joined(info("den", 1)))),
    ];
    for (msg, req, result) in cases {
        ctl(&mut s, msg).unwrap();
        assert_eq!(events(&mut s), vec![Event::Reply { req, result }]);
    }
    assert_eq!(s.nick(), "bob");
    assert_eq!(s.pending_requests(), 0);
    assert_eq!(s.rooms(), vec!["den".to_string(), "lobby".to_string()]);

    // Replies nobody waits for (unknown id, or answered already) are ignored.
    ctl(&mut s, Done { req: 9_999 }).unwrap();
    ctl(&mut s, Done { req: del }).unwrap();
    ctl(&mut s, Error::reply(e, ErrorCode::Internal, "again")).unwrap();
    assert_eq!(events(&mut s), vec![]);
}

#[test]
fn failed_join_stops_tracking_the_room() {
    let mut s = ready();
    let j = s.join("nope", T0);
    assert_eq!(s.rooms(), vec!["nope".to_string()]);
    ctl(&mut s, Error::reply(j, ErrorCode::NoSuchRoom, "no")).unwrap();
    assert_eq!(failure_code(&events(&mut s)[0]), Some(ErrorCode::NoSuchRoom));
    assert_eq!(s.rooms(), Vec::<String>::new());
}

#[test]
fn leave_stops_tracking_the_room() {
    let mut s = ready();
    join_room(&mut s, "lobby", 1);
    open_shard_of(&mut s, "lobby");
    feed(&mut s, SHARD_ID, self_join("lobby", 1)).unwrap();
    assert_eq!(delivered(&events(&mut s)).len(), 1);
    ctl(&mut s, RoomPromoted { room: "lobby".into() }).unwrap();
    assert!(s.is_hot("lobby"));
    events(&mut s);

    let l = s.leave("lobby", T0);
    ctl(
        &mut s,
        Left {
            req: l,
            room: "lobby".into(),
        },
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Reply {
            req: l,
            result: Ok(Reply::Left("lobby".into()))
        }]
    );
    assert_eq!(s.rooms(), Vec::<String>::new());
    assert!(!s.is_hot("lobby"));
    // Late events of the room are dropped quietly.
    feed(&mut s, SHARD_ID, text("lobby", 2)).unwrap();
    assert_eq!(events(&mut s), vec![]);
}

#[test]
fn request_timeout() {
    let mut s = ready(); // next ping at T0 + HB
    let j = s.join("slow", T0 + 100);
    let k = s.list_rooms(T0 + 200);
    transmits(&mut s);
    assert_eq!(s.poll_timeout(), Some(T0 + 100 + TIMEOUT));
    s.handle_timeout(T0 + 99 + TIMEOUT).unwrap();
    assert_eq!(events(&mut s), vec![]);

    s.handle_timeout(T0 + 100 + TIMEOUT).unwrap();
    let ev = events(&mut s);
    assert_eq!(ev.len(), 1);
    assert!(matches!(ev[0], Event::Reply { req, .. } if req == j));
    assert_eq!(failure_code(&ev[0]), Some(ErrorCode::Timeout));
    assert_eq!(s.rooms(), Vec::<String>::new(), "a timed-out join is not tracked");
    assert_eq!(s.poll_timeout(), Some(T0 + 200 + TIMEOUT));

    s.handle_timeout(T0 + 200 + TIMEOUT).unwrap();
    let ev = events(&mut s);
    assert_eq!(ev.len(), 1);
    assert!(matches!(ev[0], Event::Reply { req, .. } if req == k));
    assert_eq!(failure_code(&ev[0]), Some(ErrorCode::Timeout));
    assert_eq!(s.pending_requests(), 0);
    assert_eq!(s.poll_timeout(), Some(T0 + HB));
    assert_eq!(transmits(&mut s), vec![], "no ping before the heartbeat");

    // The late reply is ignored.
    ctl(&mut s, joined(j, "slow", 1)).unwrap();
    assert_eq!(events(&mut s), vec![]);
}

#[test]
fn abort_fails_pending_requests_with_disconnected() {
    let mut s = ready();
    let j = s.join("lobby", T0);
    let k = s.send("lobby", "hi", T0);
    s.abort("connection lost");
    let mut ev = events(&mut s);
    ev.sort_by_key(|e| match e {
        Event::Reply { req, .. } => *req,
        _ => 0,
    });
    let fail = Err(Failure {
        code: ErrorCode::Disconnected,
        message: "connection lost".into(),
    });
    assert_eq!(
        ev,
        vec![
            Event::Reply {
                req: j.min(k),
                result: fail.clone()
            },
            Event::Reply {
                req: j.max(k),
                result: fail.clone()
            },
        ]
    );
    assert_eq!(s.pending_requests(), 0);
    assert_eq!(s.rooms(), Vec::<String>::new());
    assert_eq!(s.poll_timeout(), Some(T0 + HB));

    // Held (not yet sent) commands fail too, and are not sent later.
    let mut s = ClientSession::new(cfg(), T0);
    let h = s.list_rooms(T0);
    s.abort("gone");
    assert_eq!(
        events(&mut s),
        vec![Event::Reply {
            req: h,
            result: Err(Failure {
                code: ErrorCode::Disconnected,
                message: "gone".into()
            })
        }]
    );
    assert_eq!(s.pending_requests(), 0);
    handshake(&mut s, SHARDS);
    assert!(transmits(&mut s).iter().all(|(lane, _)| *lane == Lane::Control));
}

// ---------------------------------------------------------------- keepalive

#[test]
fn ping_after_heartbeat_and_pong_to_server_ping() {
    let mut s = ready();
    assert_eq!(s.poll_timeout(), Some(T0 + HB));
    s.handle_timeout(T0 + HB - 1).unwrap();
    assert_eq!(transmits(&mut s), vec![]);
    s.handle_timeout(T0 + HB).unwrap();
    assert_eq!(transmits(&mut s), vec![(Lane::Control, Ping { nonce: 1 }.into())]);
    assert_eq!(s.poll_timeout(), Some(T0 + 2 * HB));

    // The server answering keeps the session alive well past 3 heartbeats.
    for i in 2..10 {
        feed_at(&mut s, CONTROL, Pong { nonce: i - 1 }, T0 + i * HB - 1).unwrap();
        s.handle_timeout(T0 + i * HB).unwrap();
        assert_eq!(transmits(&mut s), vec![(Lane::Control, Ping { nonce: i }.into())]);
    }
    assert_eq!(events(&mut s), vec![]);

    feed(&mut s, CONTROL, Ping { nonce: 0xABCD }).unwrap();
    assert_eq!(
        transmits(&mut s),
        vec![(Lane::Control, Pong { nonce: 0xABCD }.into())]
    );
}

#[test]
fn silent_server_times_out() {
    let mut s = ready(); // last traffic at T0
    for i in 1..=3 {
        s.handle_timeout(T0 + i * HB).unwrap();
        assert_eq!(transmits(&mut s), vec![(Lane::Control, Ping { nonce: i }.into())]);
    }
    assert_eq!(s.handle_timeout(T0 + 4 * HB), Err(SessionError::Timeout(4 * HB)));
}

#[test]
fn tiny_heartbeat_is_clamped() {
    let mut s = ClientSession::new(cfg(), T0);
    ctl(&mut s, hello_ack(PROTOCOL_VERSION, 0)).unwrap();
    ctl(&mut s, auth_ok()).unwrap();
    ctl(&mut s, ShardAssignment { num_shards: 1 }).unwrap();
    assert_eq!(s.poll_timeout(), Some(T0 + 100));
}

// ---------------------------------------------------------------- room events

#[test]
fn room_events_across_shard_and_hot_streams_are_delivered_in_offset_order() {
    let mut s = ready();
    let room = "lobby";
    let shard = StreamKind::Shard(s.shard_of(room));
    let hot = StreamKind::Hot(room.into());
    join_room(&mut s, room, 10);
    open(&mut s, SHARD_ID, shard.clone());
    ctl(&mut s, RoomPromoted { room: room.into() }).unwrap();
    assert_eq!(events(&mut s), vec![Event::Promoted { room: room.into() }]);
    assert!(s.is_hot(room));
    open(&mut s, HOT_ID, hot.clone());

    feed(&mut s, HOT_ID, text(room, 12)).unwrap();
    feed(&mut s, HOT_ID, text(room, 14)).unwrap();
    assert_eq!(events(&mut s), vec![]);
    feed(&mut s, SHARD_ID, self_join(room, 10)).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Room {
            event: self_join(room, 10),
            via: shard.clone()
        }]
    );
    feed(&mut s, SHARD_ID, text(room, 11)).unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            Event::Room {
                event: text(room, 11),
                via: shard.clone()
            },
            Event::Room {
                event: text(room, 12),
                via: hot.clone()
            },
        ]
    );
    feed(&mut s, HOT_ID, text(room, 13)).unwrap();
    assert_eq!(
        delivered(&events(&mut s)),
        vec![(13, hot.clone()), (14, hot.clone())]
    );

    // Duplicates (already delivered) are dropped.
    feed(&mut s, SHARD_ID, self_join(room, 10)).unwrap();
    feed(&mut s, SHARD_ID, text(room, 11)).unwrap();
    feed(&mut s, HOT_ID, text(room, 12)).unwrap();
    feed(&mut s, SHARD_ID, text(room, 14)).unwrap();
    assert_eq!(events(&mut s), vec![]);
    // Duplicates still waiting in the reorder buffer are delivered once.
    feed(&mut s, HOT_ID, text(room, 16)).unwrap();
    feed(&mut s, SHARD_ID, text(room, 16)).unwrap();
    feed(&mut s, HOT_ID, text(room, 15)).unwrap();
    assert_eq!(
        delivered(&events(&mut s))
            .into_iter()
            .map(|(o, _)| o)
            .collect::<Vec<_>>(),
        vec![15, 16]
    );

    let StreamKind::Shard(i) = shard else {
        unreachable!()
    };
    ctl(
        &mut s,
        RoomDemoted {
            room: room.into(),
            shard: i,
        },
    )
    .unwrap();
    assert_eq!(events(&mut s), vec![Event::Demoted { room: room.into() }]);
    assert!(!s.is_hot(room));
    feed(&mut s, SHARD_ID, text(room, 17)).unwrap();
    assert_eq!(delivered(&events(&mut s)), vec![(17, shard)]);
}

#[test]
fn events_before_the_joined_reply_are_buffered_and_delivered_after_it() {
    let mut s = ready();
    let room = "lobby";
    open_shard_of(&mut s, room);
    open(&mut s, HOT_ID, StreamKind::Hot(room.into()));
    let req = s.join(room, T0);
    transmits(&mut s);

    feed(&mut s, HOT_ID, text(room, 6)).unwrap();
    feed(&mut s, SHARD_ID, self_join(room, 5)).unwrap();
    feed(&mut s, SHARD_ID, text(room, 7)).unwrap();
    assert_eq!(events(&mut s), vec![], "nothing before the Joined reply");

    ctl(&mut s, joined(req, room, 5)).unwrap();
    let ev = events(&mut s);
    assert_eq!(
        ev[0],
        Event::Reply {
            req,
            result: Ok(Reply::Joined(info(room, 5)))
        }
    );
    let offsets: Vec<Offset> = delivered(&ev[1..]).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![5, 6, 7]);
    feed(&mut s, HOT_ID, text(room, 8)).unwrap();
    assert_eq!(delivered(&events(&mut s)).len(), 1);
}

#[test]
fn events_older_than_our_join_do_not_stall_the_room() {
    // Events from before our join (the server's subscription raced with it) may arrive
    // while the join is in flight: they are dropped, and the room still flows.
    let mut s = ready();
    let room = "lobby";
    open_shard_of(&mut s, room);
    let req = s.join(room, T0);
    feed(&mut s, SHARD_ID, text(room, 3)).unwrap();
    feed(&mut s, SHARD_ID, text(room, 4)).unwrap();
    feed(&mut s, SHARD_ID, self_join(room, 5)).unwrap();
    feed(&mut s, SHARD_ID, text(room, 6)).unwrap();
    ctl(&mut s, joined(req, room, 5)).unwrap();
    let ev = events(&mut s);
    assert!(matches!(ev[0], Event::Reply { req: r, result: Ok(_) } if r == req));
    let offsets: Vec<Offset> = delivered(&ev[1..]).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![5, 6]);
    feed(&mut s, SHARD_ID, text(room, 7)).unwrap();
    assert_eq!(delivered(&events(&mut s)).len(), 1);
}

#[test]
fn event_on_the_wrong_shard_stream_is_a_protocol_error() {
    let mut s = ready();
    join_room(&mut s, "lobby", 1);
    let wrong = (s.shard_of("lobby") + 1) % SHARDS;
    open(&mut s, 3, StreamKind::Shard(wrong));
    assert!(is_protocol(feed(&mut s, 3, self_join("lobby", 1))));

    let mut s = ready();
    join_room(&mut s, "lobby", 1);
    open(&mut s, HOT_ID, StreamKind::Hot("other".into()));
    assert!(is_protocol(feed(&mut s, HOT_ID, self_join("lobby", 1))));
}

#[test]
fn bad_server_streams_are_protocol_errors() {
    // Not starting with a StreamHeader.
    let mut s = ready();
    join_room(&mut s, "lobby", 1);
    assert!(is_protocol(feed(&mut s, 5, self_join("lobby", 1))));
    let mut s = ready();
    assert!(is_protocol(feed(&mut s, 5, Ping { nonce: 1 })));
    // A shard index beyond the assignment, or a client-side stream kind.
    let mut s = ready();
    let header = StreamHeader {
        kind: StreamKind::Shard(SHARDS),
    };
    assert!(is_protocol(feed(&mut s, 5, header)));
    let mut s = ready();
    let header = StreamHeader {
        kind: StreamKind::Commands,
    };
    assert!(is_protocol(feed(&mut s, 5, header)));
    // A second header, or a non-event frame, on a room stream.
    let mut s = ready();
    open(&mut s, 5, StreamKind::Shard(0));
    let header = StreamHeader {
        kind: StreamKind::Shard(0),
    };
    assert!(is_protocol(feed(&mut s, 5, header)));
    let mut s = ready();
    open(&mut s, 5, StreamKind::Shard(0));
    assert!(is_protocol(feed(
        &mut s,
        5,
        Welcome {
            message: "x".into(),
            ticket: String::new(),
            resume_token: Default::default(),
        }
    )));
}

#[test]
fn undecodable_stream_data_is_a_decode_error() {
    let mut s = ready();
    let r = s.on_stream_data(5, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF], T0);
    assert!(
        matches!(r, Err(SessionError::Decode(DecodeError::TooLarge { .. }))),
        "{r:?}"
    );
    let mut s = ready();
    let r = s.on_stream_data(5, &[0x9A, 0, 0, 0, 0], T0);
    assert_eq!(r, Err(SessionError::Decode(DecodeError::UnknownType(0x9A))));
    let mut s = ready();
    let r = s.on_stream_data(CONTROL, &[FrameType::Ping as u8, 0, 0, 0, 0], T0);
    assert!(
        matches!(r, Err(SessionError::Decode(DecodeError::Payload { .. }))),
        "{r:?}"
    );

    // A stream that ends inside a frame.
    let mut s = ready();
    let wire = StreamHeader {
        kind: StreamKind::Shard(0),
    };
    let wire = Message::from(wire).encode();
    s.on_stream_data(5, &wire[..3], T0).unwrap();
    assert_eq!(
        s.on_stream_end(5),
        Err(SessionError::Decode(DecodeError::Truncated(3)))
    );
    s.on_stream_data(6, &wire, T0).unwrap();
    assert_eq!(s.on_stream_end(6), Ok(()));
    assert_eq!(s.on_stream_end(77), Ok(()));
}

#[test]
fn reorder_limit_bounds_buffered_events() {
    let mut c = cfg();
    c.reorder_limit = 4;
    let mut s = ready_with(c.clone());
    join_room(&mut s, "lobby", 1);
    open_shard_of(&mut s, "lobby");
    for o in 3..=6 {
        feed(&mut s, SHARD_ID, text("lobby", o)).unwrap();
    }
    assert_eq!(events(&mut s), vec![]);
    feed(&mut s, SHARD_ID, self_join("lobby", 1)).unwrap();
    feed(&mut s, SHARD_ID, text("lobby", 2)).unwrap();
    let offsets: Vec<Offset> = delivered(&events(&mut s)).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![1, 2, 3, 4, 5, 6]);

    let mut s = ready_with(c);
    join_room(&mut s, "lobby", 1);
    open_shard_of(&mut s, "lobby");
    for o in 3..=6 {
        feed(&mut s, SHARD_ID, text("lobby", o)).unwrap();
    }
    assert!(is_protocol(feed(&mut s, SHARD_ID, text("lobby", 7))));
}

#[test]
fn removed_from_a_room_stops_tracking_it() {
    let mut s = ready();
    join_room(&mut s, "lobby", 1);
    open_shard_of(&mut s, "lobby");
    feed(&mut s, SHARD_ID, self_join("lobby", 1)).unwrap();
    let kicked: Message = MemberLeft {
        room: "lobby".into(),
        offset: 2,
        user: ME,
        nick: NICK.into(),
    }
    .into();
    feed(&mut s, SHARD_ID, kicked).unwrap();
    let offsets: Vec<Offset> = delivered(&events(&mut s)).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![1, 2]);
    assert_eq!(s.rooms(), Vec::<String>::new());
    feed(&mut s, SHARD_ID, text("lobby", 3)).unwrap();
    assert_eq!(events(&mut s), vec![]);
}

#[test]
fn direct_room_is_tracked_from_our_own_member_joined() {
    let mut s = ready();
    let room = "dm:alice:bob";
    open_shard_of(&mut s, room);
    // Not ours: a room we never joined.
    feed(&mut s, SHARD_ID, text(room, 1)).unwrap();
    let bob_joined: Message = MemberJoined {
        room: room.into(),
        offset: 2,
        user: 99,
        nick: "bob".into(),
        role: Role::Member,
    }
    .into();
    feed(&mut s, SHARD_ID, bob_joined).unwrap();
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.rooms(), Vec::<String>::new());
    // Typing in an untracked room is dropped.
    let typing = Message::from(Typing {
        room: room.into(),
        user: 99,
        nick: "bob".into(),
    })
    .encode();
    s.on_datagram(&typing, T0).unwrap();
    assert_eq!(events(&mut s), vec![]);

    feed(&mut s, SHARD_ID, self_join(room, 3)).unwrap();
    assert_eq!(
        delivered(&events(&mut s)),
        vec![(3, StreamKind::Shard(s.shard_of(room)))]
    );
    assert_eq!(s.rooms(), vec![room.to_string()]);
    feed(&mut s, SHARD_ID, text(room, 5)).unwrap();
    assert_eq!(events(&mut s), vec![]);
    feed(&mut s, SHARD_ID, text(room, 4)).unwrap();
    let offsets: Vec<Offset> = delivered(&events(&mut s)).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![4, 5]);

    s.on_datagram(&typing, T0).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Typing {
            room: room.into(),
            user: 99,
            nick: "bob".into()
        }]
    );
}

#[test]
fn rejoin_rooms_produce_rejoined_events() {
    let mut c = cfg();
    c.resume = ResumeState::with_rooms(["a", "b", "c"]);
    let mut s = ClientSession::new(c, T0);
    let held = s.send("a", "queued", T0);
    handshake(&mut s, SHARDS);
    assert!(matches!(events(&mut s)[..], [Event::Ready { .. }]));
    let commands: Vec<Message> = transmits(&mut s)
        .into_iter()
        .filter(|(lane, _)| *lane == Lane::Commands)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        commands[0],
        StreamHeader {
            kind: StreamKind::Commands
        }
        .into()
    );
    let joins: Vec<(ReqId, String)> = commands[1..4]
        .iter()
        .map(|m| match m {
            Message::Join(j) => (j.req, j.room.clone()),
            other => panic!("expected Join, got {other:?}"),
        })
        .collect();
    let rooms: Vec<&str> = joins.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(rooms, vec!["a", "b", "c"]);
    assert!(matches!(&commands[4], Message::Send(m) if m.req == held));
    assert_eq!(commands.len(), 5);
    assert_eq!(s.pending_requests(), 4);
    assert_eq!(s.rooms(), vec!["a".to_string(), "b".to_string(), "c".to_string()]);

    ctl(&mut s, joined(joins[0].0, "a", 3)).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Rejoined {
            room: "a".into(),
            result: Ok(info("a", 3))
        }]
    );
    ctl(&mut s, Error::reply(joins[1].0, ErrorCode::NoSuchRoom, "gone")).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Rejoined {
            room: "b".into(),
            result: Err(Failure {
                code: ErrorCode::NoSuchRoom,
                message: "gone".into()
            })
        }]
    );
    ctl(
        &mut s,
        MessageAck {
            req: held,
            room: "a".into(),
            id: 1,
            offset: 4,
        },
    )
    .unwrap();
    assert!(matches!(
        events(&mut s)[..],
        [Event::Reply {
            result: Ok(Reply::Sent { .. }),
            ..
        }]
    ));
    s.handle_timeout(T0 + TIMEOUT).unwrap();
    let ev = events(&mut s);
    assert_eq!(ev.len(), 1);
    assert!(matches!(&ev[0], Event::Rejoined { room, .. } if room == "c"));
    assert_eq!(failure_code(&ev[0]), Some(ErrorCode::Timeout));
    assert_eq!(s.rooms(), vec!["a".to_string()]);

    open_shard_of(&mut s, "a");
    feed(&mut s, SHARD_ID, self_join("a", 3)).unwrap();
    feed(&mut s, SHARD_ID, text("a", 4)).unwrap();
    let offsets: Vec<Offset> = delivered(&events(&mut s)).into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, vec![3, 4]);
}

#[test]
fn rooms_include_rejoins_and_held_joins_before_ready() {
    let mut c = cfg();
    c.resume = ResumeState::with_rooms(["b", "a"]);
    let mut s = ClientSession::new(c.clone(), T0);
    let both = vec!["a".to_string(), "b".to_string()];
    // Waiting in the config: still "being joined", before and during the handshake.
    assert_eq!(s.rooms(), both);
    ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    // A join held until Ready counts too (once, even if it repeats a rejoin room).
    s.join("c", T0);
    s.join("a", T0);
    s.create_room("d", RoomKind::Channel, T0);
    s.send("b", "not a join", T0);
    let all = ["a", "b", "c", "d"].map(String::from).to_vec();
    assert_eq!(s.rooms(), all);

    // Lost before Ready: the held joins fail and go, the rooms to rejoin stay.
    let mut lost = ClientSession::new(c, T0);
    lost.join("c", T0);
    lost.abort("connection lost");
    assert_eq!(lost.rooms(), both);

    // At Ready the same rooms move to tracking: no room appears or disappears.
    ctl(&mut s, auth_ok()).unwrap();
    ctl(&mut s, ShardAssignment { num_shards: SHARDS }).unwrap();
    assert!(s.is_ready());
    assert_eq!(s.rooms(), all);
}

#[test]
fn control_stream_notifications_and_datagrams() {
    let mut s = ready();
    ctl(
        &mut s,
        Welcome {
            message: "hi".into(),
            ticket: String::new(),
            resume_token: Default::default(),
        },
    )
    .unwrap();
    ctl(&mut s, Throttle { retry_after_ms: 250 }).unwrap();
    let receipt = Receipt {
        room: "lobby".into(),
        id: 5,
        user: 9,
        nick: "bob".into(),
        read: true,
    };
    ctl(&mut s, receipt.clone()).unwrap();
    ctl(&mut s, Error::fatal(ErrorCode::SlowConsumer, "too slow")).unwrap();
    ctl(&mut s, Pong { nonce: 3 }).unwrap();
    ctl(
        &mut s,
        Shutdown {
            reason: "maintenance".into(),
        },
    )
    .unwrap();
    let presence = Message::from(Presence {
        user: 9,
        nick: "bob".into(),
        online: false,
    })
    .encode();
    s.on_datagram(&presence, T0).unwrap();
    // Bad datagrams are dropped, not fatal.
    s.on_datagram(&[0xEE, 1, 2], T0).unwrap();
    s.on_datagram(&presence[..presence.len() - 1], T0).unwrap();
    s.on_datagram(&Message::from(Ping { nonce: 1 }).encode(), T0)
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            Event::Welcome("hi".into()),
            Event::Throttled { retry_after_ms: 250 },
            Event::Receipt(receipt),
            Event::Error(Failure {
                code: ErrorCode::SlowConsumer,
                message: "too slow".into()
            }),
            Event::Shutdown {
                reason: "maintenance".into()
            },
            Event::Presence {
                user: 9,
                nick: "bob".into(),
                online: false
            },
        ]
    );
    assert_eq!(transmits(&mut s), vec![]);
}

#[test]
fn config_defaults() {
    let c = ClientConfig::with_nick("zed");
    assert_eq!(c.credentials, Credentials::Nick("zed".into()));
    assert!(c.client_name.starts_with("garou-protocol/"));
    assert_eq!(c.max_frame, DEFAULT_MAX_FRAME);
    assert!(c.request_timeout_ms > 0 && c.reorder_limit > 0);
    assert!(c.resume.is_empty());
    assert_eq!(c.resume, ResumeState::default());
    assert_eq!(c.client_id_base, 0);
    assert_eq!(c.max_unacked, 10_000);
    assert!(c.replay_limit >= 10_000 && c.replay_limit >= c.reorder_limit);
}

// ---------------------------------------------------------------- recovery

/// Offsets of the room events among `evs`, in order (other events are skipped).
fn room_offsets(evs: &[Event]) -> Vec<Offset> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Room { event, .. } => event.room_offset().map(|(_, o)| o),
            _ => None,
        })
        .collect()
}

/// The commands a session sent (without the stream header).
fn commands(s: &mut ClientSession) -> Vec<Message> {
    transmits(s)
        .into_iter()
        .filter(|(lane, m)| *lane == Lane::Commands && !matches!(m, Message::StreamHeader(_)))
        .map(|(_, m)| m)
        .collect()
}

fn since(offset: Offset, epoch: u64) -> Option<Since> {
    Some(Since { offset, epoch })
}

fn resumed_info(room: &str, offset: Offset) -> JoinInfo {
    JoinInfo {
        resumed: true,
        ..info(room, offset)
    }
}

fn ack(req: ReqId, room: &str, id: MsgId, offset: Offset) -> Message {
    MessageAck {
        req,
        room: room.into(),
        id,
        offset,
    }
    .into()
}

fn sent(room: &str, id: MsgId, offset: Offset) -> Result<Reply, Failure> {
    Ok(Reply::Sent {
        room: room.into(),
        id,
        offset,
    })
}

fn disconnected(reason: &str) -> Result<Reply, Failure> {
    Err(Failure {
        code: ErrorCode::Disconnected,
        message: reason.into(),
    })
}

/// A new session resuming from `state`, through the handshake; returns it with the
/// commands it sent at Ready.
fn resume(state: ResumeState) -> (ClientSession, Vec<Message>) {
    let mut c = cfg();
    c.resume = state;
    let mut s = ClientSession::new(c, T0);
    transmits(&mut s);
    handshake(&mut s, SHARDS);
    assert!(matches!(events(&mut s)[..], [Event::Ready { .. }]));
    let cmds = commands(&mut s);
    (s, cmds)
}

#[test]
fn resume_state_tracks_the_last_delivered_offset_and_epoch() {
    let mut s = ready();
    assert_eq!(
        s.resume_state(),
        ResumeState {
            next_req: 1,
            next_client_id: 1,
            ..ResumeState::default()
        }
    );
    join_room(&mut s, "lobby", 10);
    // Joined, nothing delivered yet: resume from just before our own MemberJoined.
    assert_eq!(s.since("lobby"), since(9, EPOCH));
    open_shard_of(&mut s, "lobby");
    feed(&mut s, SHARD_ID, self_join("lobby", 10)).unwrap();
    feed(&mut s, SHARD_ID, text("lobby", 11)).unwrap();
    // 13 waits for 12: it is not delivered, so it is not part of the resume point.
    feed(&mut s, SHARD_ID, text("lobby", 13)).unwrap();
    assert_eq!(room_offsets(&events(&mut s)), vec![10, 11]);
    assert_eq!(s.since("lobby"), since(11, EPOCH));
    // A join in flight has no resume point yet (and is not carried over: it fails at a
    // disconnect); a room we never joined has none at all.
    let j = s.join("den", T0);
    assert_eq!(s.since("den"), None);
    assert_eq!(s.since("nowhere"), None);
    let state = s.resume_state();
    assert_eq!(state.rooms, vec![("lobby".to_string(), since(11, EPOCH))]);
    assert!(state.unacked.is_empty());
    assert_eq!(state.next_req, j + 1);
    ctl(&mut s, joined(j, "den", 1)).unwrap();
    assert_eq!(s.since("den"), since(0, EPOCH));
    assert_eq!(s.resume_state().rooms.len(), 2);
}

#[test]
fn resume_across_two_sessions_replays_the_gap_exactly_once() {
    // Session 1: joined at 10, delivered 10..=12, then the connection drops.
    let mut s1 = ready();
    join_room(&mut s1, "lobby", 10);
    open_shard_of(&mut s1, "lobby");
    for o in 10..=12 {
        let m = if o == 10 {
            self_join("lobby", o)
        } else {
            text("lobby", o)
        };
        feed(&mut s1, SHARD_ID, m).unwrap();
    }
    feed(&mut s1, SHARD_ID, text("lobby", 14)).unwrap(); // early, never delivered
    assert_eq!(room_offsets(&events(&mut s1)), vec![10, 11, 12]);
    let state = s1.suspend("connection lost");
    assert_eq!(events(&mut s1), vec![]);
    assert_eq!(state.rooms, vec![("lobby".to_string(), since(12, EPOCH))]);

    // Session 2 rejoins with `since`.
    let (mut s2, cmds) = resume(state);
    let Message::Join(join) = &cmds[0] else {
        panic!("expected a Join first, got {cmds:?}")
    };
    assert_eq!(join.room, "lobby");
    assert_eq!(join.since, since(12, EPOCH));
    assert_eq!(cmds.len(), 1);
    assert_eq!(s2.rooms(), vec!["lobby".to_string()]);
    // Until the Joined reply the resume point still stands (for a drop right now).
    assert_eq!(
        s2.resume_state().rooms,
        vec![("lobby".to_string(), since(12, EPOCH))]
    );

    // The replay races the reply: some of it (with duplicates) comes first, on both the
    // shard and the hot stream.
    let shard = StreamKind::Shard(s2.shard_of("lobby"));
    open(&mut s2, SHARD_ID, shard);
    open(&mut s2, HOT_ID, StreamKind::Hot("lobby".into()));
    feed(&mut s2, SHARD_ID, text("lobby", 11)).unwrap();
    feed(&mut s2, HOT_ID, text("lobby", 14)).unwrap();
    feed(&mut s2, SHARD_ID, text("lobby", 12)).unwrap();
    assert_eq!(events(&mut s2), vec![]);
    ctl(&mut s2, joined_with(join.req, resumed_info("lobby", 13))).unwrap();
    assert_eq!(
        events(&mut s2),
        vec![Event::Rejoined {
            room: "lobby".into(),
            result: Ok(resumed_info("lobby", 13))
        }]
    );
    feed(&mut s2, SHARD_ID, text("lobby", 12)).unwrap();
    feed(&mut s2, HOT_ID, text("lobby", 13)).unwrap();
    feed(&mut s2, SHARD_ID, text("lobby", 13)).unwrap();
    feed(&mut s2, SHARD_ID, text("lobby", 15)).unwrap();
    feed(&mut s2, HOT_ID, text("lobby", 10)).unwrap();
    assert_eq!(room_offsets(&events(&mut s2)), vec![13, 14, 15]);
    assert_eq!(s2.since("lobby"), since(15, EPOCH));
}

#[test]
fn a_rejoin_in_flight_at_a_disconnect_is_carried_quietly() {
    let state = ResumeState {
        rooms: vec![("lobby".into(), since(12, EPOCH))],
        next_req: 5,
        ..ResumeState::default()
    };
    let (mut s, cmds) = resume(state.clone());
    assert_eq!(cmds.len(), 1);
    let again = s.suspend("lost before Joined");
    assert_eq!(events(&mut s), vec![], "no Rejoined error for a carried room");
    assert_eq!(again.rooms, state.rooms);
    assert_eq!(again.next_req, 6);
    // Whereas `abort` reports it.
    let (mut s, _) = resume(state);
    s.abort("closed");
    assert_eq!(failure_code(&events(&mut s)[0]), Some(ErrorCode::Disconnected));
}

#[test]
fn a_direct_room_we_were_added_to_learns_its_epoch_quietly() {
    let mut s = ready();
    let room = "dm:7:42";
    open_shard_of(&mut s, room);
    feed(&mut s, SHARD_ID, self_join(room, 3)).unwrap();
    feed(&mut s, SHARD_ID, text(room, 4)).unwrap();
    assert_eq!(room_offsets(&events(&mut s)), vec![3, 4]);
    // Tracked, but its epoch is unknown until the quiet join answers.
    assert_eq!(s.since(room), None);
    assert_eq!(s.resume_state().rooms, vec![(room.to_string(), None)]);
    let cmds = commands(&mut s);
    let [Message::Join(probe)] = &cmds[..] else {
        panic!("expected one quiet Join, got {cmds:?}")
    };
    assert_eq!((probe.room.as_str(), probe.since), (room, None));
    assert_eq!(s.pending_requests(), 0, "internal requests are not counted");
    // Its answer (the room moved on meanwhile) only sets the epoch: no event, no reorder.
    feed(&mut s, SHARD_ID, text(room, 5)).unwrap();
    ctl(&mut s, joined(probe.req, room, 9)).unwrap();
    assert_eq!(room_offsets(&events(&mut s)), vec![5]);
    assert_eq!(s.since(room), since(5, EPOCH));
    feed(&mut s, SHARD_ID, text(room, 6)).unwrap();
    assert_eq!(room_offsets(&events(&mut s)), vec![6]);

    // A refused (or lost) probe is silent too; the room then resumes without a point.
    let mut s = ready();
    open_shard_of(&mut s, room);
    feed(&mut s, SHARD_ID, self_join(room, 1)).unwrap();
    events(&mut s);
    let cmds = commands(&mut s);
    let [Message::Join(probe)] = &cmds[..] else {
        panic!("{cmds:?}")
    };
    ctl(&mut s, Error::reply(probe.req, ErrorCode::Forbidden, "no")).unwrap();
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(s.since(room), None);
    let state = s.suspend("lost");
    assert_eq!(events(&mut s), vec![]);
    assert_eq!(state.rooms, vec![(room.to_string(), None)]);
}

#[test]
fn a_replay_may_overtake_the_joined_reply_up_to_the_replay_limit() {
    let mut c = cfg();
    c.reorder_limit = 2;
    c.replay_limit = 5;
    c.resume.rooms = vec![("lobby".into(), since(10, EPOCH))];
    let mut s = ClientSession::new(c.clone(), T0);
    handshake(&mut s, SHARDS);
    events(&mut s);
    let cmds = commands(&mut s);
    let Message::Join(j) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    open_shard_of(&mut s, "lobby");
    for o in 11..=15 {
        feed(&mut s, SHARD_ID, text("lobby", o)).unwrap();
    }
    ctl(&mut s, joined_with(j.req, resumed_info("lobby", 11))).unwrap();
    assert_eq!(room_offsets(&events(&mut s)), (11..=15).collect::<Vec<_>>());
    // Once started, the (smaller) reorder limit applies again.
    feed(&mut s, SHARD_ID, text("lobby", 17)).unwrap();
    feed(&mut s, SHARD_ID, text("lobby", 18)).unwrap();
    assert!(is_protocol(feed(&mut s, SHARD_ID, text("lobby", 19))));

    // Beyond the replay limit before the reply: a protocol error.
    let mut s = ClientSession::new(c, T0);
    handshake(&mut s, SHARDS);
    events(&mut s);
    open_shard_of(&mut s, "lobby");
    for o in 11..=15 {
        feed(&mut s, SHARD_ID, text("lobby", o)).unwrap();
    }
    assert!(is_protocol(feed(&mut s, SHARD_ID, text("lobby", 16))));
}

#[test]
fn a_resumed_join_that_starts_early_never_repeats_an_offset() {
    // The server resumes from further back than asked: what was delivered is skipped.
    let state = ResumeState::with_rooms(["lobby"]);
    let state = ResumeState {
        rooms: vec![("lobby".into(), since(20, EPOCH))],
        ..state
    };
    let (mut s, cmds) = resume(state);
    let Message::Join(join) = &cmds[0] else {
        panic!("{cmds:?}")
    };
    ctl(&mut s, joined_with(join.req, resumed_info("lobby", 18))).unwrap();
    assert!(matches!(&events(&mut s)[..], [Event::Rejoined { result: Ok(i), .. }] if i.offset == 18));
    open_shard_of(&mut s, "lobby");
    for o in 18..=22 {
        feed(&mut s, SHARD_ID, text("lobby", o)).unwrap();
    }
    assert_eq!(room_offsets(&events(&mut s)), vec![21, 22]);
}

#[test]
fn rejoin_that_cannot_resume_reports_resumed_false() {
    let state = ResumeState {
        rooms: vec![
            ("lobby".into(), since(40, EPOCH)),
            ("den".into(), since(3, EPOCH)),
        ],
        ..ResumeState::default()
    };
    let (mut s, cmds) = resume(state);
    let reqs: Vec<(String, ReqId, Option<Since>)> = cmds
        .iter()
        .map(|m| match m {
            Message::Join(j) => (j.room.clone(), j.req, j.since),
            other => panic!("expected Join, got {other:?}"),
        })
        .collect();
    // In the order given.
    let (lobby, den) = (reqs[0].1, reqs[1].1);
    assert_eq!(reqs[0].0, "lobby");
    assert_eq!(reqs[0].2, since(40, EPOCH));
    assert_eq!(reqs[1].0, "den");

    // Another epoch (the room was reset): offsets start again, and the app is told.
    let reset = JoinInfo {
        epoch: EPOCH + 1,
        unread: 4,
        ..info("lobby", 3)
    };
    ctl(&mut s, joined_with(lobby, reset.clone())).unwrap();
    let ev = events(&mut s);
    assert_eq!(
        ev,
        vec![Event::Rejoined {
            room: "lobby".into(),
            result: Ok(reset)
        }]
    );
    let Event::Rejoined { result: Ok(i), .. } = &ev[0] else {
        unreachable!()
    };
    assert!(!i.resumed);
    open_shard_of(&mut s, "lobby");
    feed(&mut s, SHARD_ID, text("lobby", 3)).unwrap();
    feed(&mut s, SHARD_ID, text("lobby", 4)).unwrap();
    assert_eq!(room_offsets(&events(&mut s)), vec![3, 4]);
    assert_eq!(s.since("lobby"), since(4, EPOCH + 1));

    // Same epoch but history trimmed: delivery starts where the server says.
    ctl(&mut s, joined_with(den, info("den", 50))).unwrap();
    assert!(
        matches!(&events(&mut s)[..], [Event::Rejoined { result: Ok(i), .. }] if !i.resumed && i.offset == 50)
    );
    assert_eq!(s.since("den"), since(49, EPOCH));
}

#[test]
fn unacked_sends_are_resent_with_the_same_ids() {
    let mut c = cfg();
    c.client_id_base = 0xABCD_0000_0000_0000;
    let mut s = ready_with(c.clone());
    join_room(&mut s, "lobby", 1);
    let a = s.send("lobby", "one", T0);
    let b = s.send("lobby", "two", T0);
    let d = s.direct("bob", "psst", T0);
    let l = s.list_rooms(T0);
    let tx = commands(&mut s);
    let ids: Vec<u64> = tx
        .iter()
        .filter_map(|m| match m {
            Message::Send(m) => Some(m.client_id),
            Message::DirectMessage(m) => Some(m.client_id),
            _ => None,
        })
        .collect();
    let base = c.client_id_base;
    assert_eq!(ids, vec![base + 1, base + 2, base + 3]);
    ctl(&mut s, ack(a, "lobby", 100, 2)).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Reply {
            req: a,
            result: sent("lobby", 100, 2)
        }]
    );
    assert_eq!(s.resume_state().unacked.len(), 2);

    // Lost: only the list request fails; the two sends are carried over.
    let state = s.suspend("lost");
    assert_eq!(
        events(&mut s),
        vec![Event::Reply {
            req: l,
            result: disconnected("lost")
        }]
    );
    assert_eq!(s.pending_requests(), 0);
    assert_eq!(
        state.unacked,
        vec![
            Unacked::Send(Send {
                req: b,
                room: "lobby".into(),
                client_id: base + 2,
                text: "two".into(),
                attachment: None,
            }),
            Unacked::Direct(DirectMessage {
                req: d,
                to: "bob".into(),
                client_id: base + 3,
                text: "psst".into(),
            }),
        ]
    );
    assert_eq!(state.unacked[0].req(), b);
    assert_eq!(state.unacked[1].client_id(), base + 3);
    assert_eq!(state.next_client_id, 4);
    assert!(state.next_req > l);

    // The next session: rejoin first, then the re-sends (same req and client id), then
    // what the app issued during the handshake (fresh ids).
    c.resume = state;
    let mut s2 = ClientSession::new(c, T0);
    let e = s2.send("lobby", "three", T0);
    assert!(![a, b, d, l].contains(&e));
    assert_eq!(s2.pending_requests(), 3);
    handshake(&mut s2, SHARDS);
    events(&mut s2);
    let tx = commands(&mut s2);
    assert_eq!(tx.len(), 4, "{tx:?}");
    let Message::Join(j) = &tx[0] else {
        panic!("{tx:?}")
    };
    assert_eq!(j.since, since(0, EPOCH)); // joined at 1, nothing delivered
    assert!(matches!(&tx[1], Message::Send(m) if m.req == b && m.client_id == base + 2 && m.text == "two"));
    assert!(matches!(&tx[2], Message::DirectMessage(m) if m.req == d && m.client_id == base + 3));
    assert!(matches!(&tx[3], Message::Send(m) if m.req == e && m.client_id == base + 4));

    // The server answers the duplicate with the original ack; it resolves request `b`.
    ctl(&mut s2, ack(b, "lobby", 101, 3)).unwrap();
    assert_eq!(
        events(&mut s2),
        vec![Event::Reply {
            req: b,
            result: sent("lobby", 101, 3)
        }]
    );
    // Lost again before the others were acked: both are still carried, same ids.
    let state = s2.suspend("lost again");
    let carried: Vec<(ReqId, u64)> = state.unacked.iter().map(|u| (u.req(), u.client_id())).collect();
    assert_eq!(carried, vec![(d, base + 3), (e, base + 4)]);
    assert_eq!(state.next_client_id, 5);
}

#[test]
fn welcome_ticket_is_kept() {
    let mut s = ready();
    assert_eq!(s.ticket(), "");
    ctl(
        &mut s,
        Welcome {
            message: "hi".into(),
            ticket: "0123abcd".into(),
            resume_token: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(events(&mut s), vec![Event::Welcome("hi".into())]);
    assert_eq!(s.ticket(), "0123abcd");
}

#[test]
fn a_send_with_an_attachment_keeps_it_across_a_reconnect() {
    let mut c = cfg();
    let mut s = ready_with(c.clone());
    join_room(&mut s, "lobby", 1);
    let a = s.send_with_attachment("lobby", "look", Some("up-7"), T0);
    let b = s.send("lobby", "plain", T0);
    let tx = commands(&mut s);
    assert!(
        matches!(&tx[..], [Message::Send(x), Message::Send(y)]
        if x.req == a && x.attachment.as_deref() == Some("up-7") && x.text == "look"
            && y.req == b && y.attachment.is_none()),
        "{tx:?}"
    );

    let state = s.suspend("lost");
    assert!(matches!(&state.unacked[..], [Unacked::Send(x), Unacked::Send(y)]
        if x.req == a && x.attachment.as_deref() == Some("up-7") && y.attachment.is_none()));

    // The next session re-sends it, attachment included, with the same ids.
    c.resume = state;
    let mut s2 = ClientSession::new(c, T0);
    handshake(&mut s2, SHARDS);
    events(&mut s2);
    let tx = commands(&mut s2);
    let resent: Vec<(ReqId, Option<String>)> = tx
        .iter()
        .filter_map(|m| match m {
            Message::Send(m) => Some((m.req, m.attachment.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(resent, vec![(a, Some("up-7".into())), (b, None)]);
    ctl(&mut s2, ack(a, "lobby", 100, 2)).unwrap();
    assert_eq!(
        events(&mut s2),
        vec![Event::Reply {
            req: a,
            result: sent("lobby", 100, 2)
        }]
    );
}

#[test]
fn a_connection_lost_during_the_handshake_carries_everything_again() {
    let state = ResumeState {
        rooms: vec![("lobby".into(), since(5, EPOCH))],
        unacked: vec![Unacked::Send(Send {
            req: 40,
            room: "lobby".into(),
            client_id: 9,
            text: "again".into(),
            attachment: Some("up-1".into()),
        })],
        next_req: 41,
        next_client_id: 10,
        token: ResumeToken::new("carried"),
    };
    let mut c = cfg();
    c.resume = state.clone();
    let mut s = ClientSession::new(c, T0);
    let j = s.join("den", T0);
    let m = s.send("den", "new", T0);
    let l = s.list_rooms(T0);
    assert_eq!((j, m, l), (41, 42, 43));
    assert_eq!(s.pending_requests(), 4);
    // The held join is the app's: it is not carried (it fails at a disconnect).
    assert_eq!(s.rooms(), vec!["den".to_string(), "lobby".to_string()]);
    assert_eq!(s.resume_state().rooms, state.rooms);
    ctl(&mut s, hello_ack(PROTOCOL_VERSION, HB as u32)).unwrap();
    let again = s.suspend("lost in the handshake");
    // The held join and list fail; the sends (carried and new) are carried on.
    let mut failed: Vec<ReqId> = events(&mut s)
        .iter()
        .map(|e| match e {
            Event::Reply { req, result } => {
                assert_eq!(result, &disconnected("lost in the handshake"));
                *req
            }
            other => panic!("{other:?}"),
        })
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, vec![j, l]);
    assert_eq!(again.rooms, state.rooms);
    assert_eq!(again.unacked[0], state.unacked[0]);
    assert!(matches!(&again.unacked[1], Unacked::Send(x) if x.req == m && x.client_id == 10));
    assert_eq!((again.next_req, again.next_client_id), (44, 11));
}

#[test]
fn unacked_sends_kept_for_resending_are_bounded() {
    let mut c = cfg();
    c.max_unacked = 2;
    let mut s = ready_with(c);
    let r: Vec<ReqId> = (0..3).map(|i| s.send("lobby", &format!("m{i}"), T0)).collect();
    transmits(&mut s);
    let kept: Vec<ReqId> = s.resume_state().unacked.iter().map(Unacked::req).collect();
    assert_eq!(kept, vec![r[0], r[1]]);
    // An ack frees a slot for the next send.
    ctl(&mut s, ack(r[0], "lobby", 1, 1)).unwrap();
    let r3 = s.send("lobby", "m3", T0);
    let kept: Vec<ReqId> = s.resume_state().unacked.iter().map(Unacked::req).collect();
    assert_eq!(kept, vec![r[1], r3]);
    events(&mut s);
    // The one not kept fails at the disconnect.
    let state = s.suspend("gone");
    assert_eq!(state.unacked.len(), 2);
    assert_eq!(
        events(&mut s),
        vec![Event::Reply {
            req: r[2],
            result: disconnected("gone")
        }]
    );
}

#[test]
fn timed_out_and_refused_sends_are_not_carried() {
    let mut s = ready();
    let a = s.send("lobby", "slow", T0);
    let b = s.send("lobby", "refused", T0 + 100);
    transmits(&mut s);
    ctl(&mut s, Error::reply(b, ErrorCode::Forbidden, "muted")).unwrap();
    s.handle_timeout(T0 + TIMEOUT).unwrap();
    let ev = events(&mut s);
    assert_eq!(ev.len(), 2);
    assert!(matches!(ev[1], Event::Reply { req, .. } if req == a));
    assert_eq!(failure_code(&ev[1]), Some(ErrorCode::Timeout));
    assert!(s.resume_state().unacked.is_empty());
    assert!(s.suspend("x").unacked.is_empty());
}

#[test]
fn abort_fails_the_unacked_sends_too() {
    let mut c = cfg();
    c.resume = ResumeState {
        unacked: vec![Unacked::Direct(DirectMessage {
            req: 7,
            to: "bob".into(),
            client_id: 3,
            text: "x".into(),
        })],
        next_req: 8,
        ..ResumeState::default()
    };
    let mut s = ClientSession::new(c, T0);
    s.abort("closed");
    assert_eq!(
        events(&mut s),
        vec![Event::Reply {
            req: 7,
            result: disconnected("closed")
        }]
    );
    assert!(s.resume_state().unacked.is_empty());
}

#[test]
fn client_ids_wrap_around_the_base() {
    let mut c = cfg();
    c.client_id_base = u64::MAX;
    c.resume.next_client_id = 1;
    let mut s = ready_with(c);
    s.send("r", "a", T0);
    s.direct("bob", "b", T0);
    let ids: Vec<u64> = commands(&mut s)
        .iter()
        .filter_map(|m| match m {
            Message::Send(m) => Some(m.client_id),
            Message::DirectMessage(m) => Some(m.client_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![0, 1]);
}

#[test]
fn history_requests_and_replies() {
    let mut s = ready();
    let h = s.history("lobby", Some(120), None, 20, T0);
    let f = s.history("lobby", None, Some(7), 1000, T0);
    assert_eq!(
        commands(&mut s),
        vec![
            History {
                req: h,
                room: "lobby".into(),
                before: Some(120),
                after: None,
                limit: 20,
            }
            .into(),
            History {
                req: f,
                room: "lobby".into(),
                before: None,
                after: Some(7),
                limit: 1000,
            }
            .into(),
        ]
    );
    let messages = vec![StoredMessage {
        offset: 118,
        id: 9,
        author: 7,
        nick: "bob".into(),
        ts_ms: 5,
        text: "old".into(),
        edited: true,
        deleted: false,
        attachment: Some("up-9".into()),
        reactions: vec![("+1".into(), 2)],
    }];
    ctl(
        &mut s,
        HistoryPage {
            req: h,
            room: "lobby".into(),
            epoch: EPOCH,
            messages: messages.clone(),
        },
    )
    .unwrap();
    ctl(&mut s, Error::reply(f, ErrorCode::NotMember, "join first")).unwrap();
    let ev = events(&mut s);
    assert_eq!(
        ev[0],
        Event::Reply {
            req: h,
            result: Ok(Reply::History {
                room: "lobby".into(),
                epoch: EPOCH,
                messages
            })
        }
    );
    assert_eq!(failure_code(&ev[1]), Some(ErrorCode::NotMember));
    // History is not a join: nothing is tracked.
    assert_eq!(s.rooms(), Vec::<String>::new());
}

#[test]
fn upload_replies_map_to_their_replies() {
    let mut s = ready();
    let a = s.list_rooms(T0);
    let b = s.list_rooms(T0);
    ctl(
        &mut s,
        UploadReady {
            req: a,
            upload: "u1".into(),
            offset: 64,
        },
    )
    .unwrap();
    ctl(
        &mut s,
        UploadDone {
            req: b,
            upload: "u1".into(),
            url: "/u/u1".into(),
        },
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            Event::Reply {
                req: a,
                result: Ok(Reply::UploadReady {
                    upload: "u1".into(),
                    offset: 64
                })
            },
            Event::Reply {
                req: b,
                result: Ok(Reply::UploadDone {
                    upload: "u1".into(),
                    url: "/u/u1".into()
                })
            },
        ]
    );
}

// ---------------------------------------------------------------- property

#[derive(Clone, Debug)]
enum Arrival {
    Event { offset: Offset, hot: bool },
    JoinedReply,
}

fn arrivals() -> impl Strategy<Value = (Offset, usize, Vec<Arrival>)> {
    (1usize..40, 3u64..1_000).prop_flat_map(|(n, base)| {
        (
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            prop::collection::vec(any::<bool>(), n),
            prop::collection::vec((any::<Index>(), any::<Index>(), any::<bool>()), 0..10),
            prop::collection::vec((1u64..=2, any::<Index>(), any::<bool>()), 0..3),
            any::<Index>(),
        )
            .prop_map(move |(perm, hot, dups, old, joined_at)| {
                let mut v: Vec<Arrival> = perm
                    .iter()
                    .map(|&i| Arrival::Event {
                        offset: base + i as u64,
                        hot: hot[i],
                    })
                    .collect();
                for (which, at, on_hot) in dups {
                    let offset = base + which.index(n) as u64;
                    v.insert(at.index(v.len() + 1), Arrival::Event { offset, hot: on_hot });
                }
                for (back, at, on_hot) in old {
                    let offset = base - back;
                    v.insert(at.index(v.len() + 1), Arrival::Event { offset, hot: on_hot });
                }
                v.insert(joined_at.index(v.len() + 1), Arrival::JoinedReply);
                (base, n, v)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the arrival order across a shard and a hot stream, with duplicates, stale
    /// events and the Joined reply anywhere among them: the reply comes first, then each
    /// event of the room exactly once, in offset order.
    #[test]
    fn room_events_come_out_in_offset_order((base, n, arrivals) in arrivals()) {
        let room = "lobby";
        let mut s = ready();
        open_shard_of(&mut s, room);
        open(&mut s, HOT_ID, StreamKind::Hot(room.into()));
        let req = s.join(room, T0);
        let mut out = Vec::new();
        for a in &arrivals {
            match *a {
                Arrival::JoinedReply => ctl(&mut s, joined(req, room, base)).unwrap(),
                Arrival::Event { offset, hot } => {
                    let m = if offset == base { self_join(room, offset) } else { text(room, offset) };
                    feed(&mut s, if hot { HOT_ID } else { SHARD_ID }, m).unwrap();
                }
            }
            out.extend(events(&mut s));
        }
        prop_assert!(!out.is_empty());
        prop_assert_eq!(
            &out[0],
            &Event::Reply { req, result: Ok(Reply::Joined(info(room, base))) }
        );
        let got: Vec<Message> = out[1..]
            .iter()
            .map(|e| match e {
                Event::Room { event, .. } => event.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let want: Vec<Message> = (0..n as u64)
            .map(|i| if i == 0 { self_join(room, base) } else { text(room, base + i) })
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(s.pending_requests(), 0);
    }

    /// A room's events over two sessions: the first delivers a prefix (with early events
    /// buffered and lost at the disconnect), the second resumes and gets a replay that
    /// overlaps what was delivered, in any order across two streams, duplicates and the
    /// Joined reply anywhere. Together they deliver every offset exactly once, in order.
    #[test]
    fn resumed_sessions_deliver_every_offset_once(
        (base, n, arrivals) in arrivals(),
        cut in any::<Index>(),
        early in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        let room = "lobby";
        let mut s1 = ready();
        join_room(&mut s1, room, base);
        open_shard_of(&mut s1, room);
        let upto = cut.index(n + 1) as u64; // delivered offsets base..base+upto
        for i in 0..upto {
            let m = if i == 0 { self_join(room, base) } else { text(room, base + i) };
            feed(&mut s1, SHARD_ID, m).unwrap();
        }
        for e in &early {
            let o = base + upto + 1 + e.index(n) as u64; // beyond the gap at base+upto
            feed(&mut s1, SHARD_ID, text(room, o)).unwrap();
        }
        let mut got = room_offsets(&events(&mut s1));
        let state = s1.suspend("lost");
        let last = base + upto - 1; // base - 1 when nothing was delivered
        prop_assert_eq!(&state.rooms, &vec![(room.to_string(), since(last, EPOCH))]);

        let (mut s2, cmds) = resume(state);
        let req = match &cmds[0] {
            Message::Join(j) => j.req,
            other => panic!("{other:?}"),
        };
        open_shard_of(&mut s2, room);
        open(&mut s2, HOT_ID, StreamKind::Hot(room.into()));
        for a in &arrivals {
            match *a {
                Arrival::JoinedReply => {
                    ctl(&mut s2, joined_with(req, resumed_info(room, last + 1))).unwrap()
                }
                Arrival::Event { offset, hot } => {
                    let m = if offset == base { self_join(room, offset) } else { text(room, offset) };
                    feed(&mut s2, if hot { HOT_ID } else { SHARD_ID }, m).unwrap();
                }
            }
        }
        got.extend(room_offsets(&events(&mut s2)));
        let want: Vec<Offset> = (base..base + n as u64).collect();
        prop_assert_eq!(got, want);
    }
}

fn hello_of(s: &mut ClientSession) -> Hello {
    match transmits(s).into_iter().next() {
        Some((Lane::Control, Message::Hello(h))) => h,
        other => panic!("expected Hello, got {other:?}"),
    }
}

#[test]
fn the_resume_token_of_a_welcome_is_offered_in_the_next_hello() {
    // A first session offers no token.
    let mut s1 = ClientSession::new(cfg(), T0);
    assert!(hello_of(&mut s1).resume.is_empty());
    handshake(&mut s1, SHARDS);
    assert!(s1.resume_token().is_empty());
    // No Welcome yet: nothing to carry.
    assert!(s1.resume_state().token.is_empty());
    ctl(
        &mut s1,
        Welcome {
            message: "hi".into(),
            ticket: String::new(),
            resume_token: ResumeToken::new("tok-1"),
        },
    )
    .unwrap();
    assert_eq!(s1.resume_token().as_str(), "tok-1");
    let state = s1.suspend("connection lost");
    assert_eq!(state.token.as_str(), "tok-1");
    // The next session offers it, and carries it until its own Welcome replaces it.
    let mut c = cfg();
    c.resume = state;
    let mut s2 = ClientSession::new(c, T0);
    assert_eq!(hello_of(&mut s2).resume.as_str(), "tok-1");
    handshake(&mut s2, SHARDS);
    assert_eq!(s2.resume_state().token.as_str(), "tok-1");
    ctl(
        &mut s2,
        Welcome {
            message: "hi".into(),
            ticket: String::new(),
            resume_token: ResumeToken::new("tok-2"),
        },
    )
    .unwrap();
    assert_eq!(s2.resume_state().token.as_str(), "tok-2");
}

#[test]
fn a_welcome_of_an_older_server_without_a_token_still_decodes() {
    // The Welcome payload as a server without resume tokens encodes it: two strings.
    let mut payload = postcard::to_allocvec(&("hi", "ticket")).unwrap();
    let mut frame = vec![FrameType::Welcome as u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.append(&mut payload);
    let mut s = ClientSession::new(cfg(), T0);
    handshake(&mut s, SHARDS);
    s.on_stream_data(CONTROL, &frame, T0).unwrap();
    assert_eq!(s.ticket(), "ticket");
    assert!(s.resume_token().is_empty());
    // And an older client reads a newer Hello's prefix (trailing bytes are ignored).
    let hello = Message::from(Hello {
        version: PROTOCOL_VERSION,
        client: "new".into(),
        resume: ResumeToken::new("tok"),
    })
    .encode();
    let (version, client): (u16, String) = postcard::from_bytes(&hello[HEADER_LEN..]).unwrap();
    assert_eq!((version, client.as_str()), (PROTOCOL_VERSION, "new"));
}
