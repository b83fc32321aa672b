//! Frame codec and message tests: one round trip per frame type, decoder edge cases, and
//! property tests (arbitrary splits, truncation, oversize headers, unknown types, garbage).

use std::collections::BTreeSet;

use bytes::Bytes;
use garou_protocol::*;
use proptest::prelude::*;
use proptest::sample::Index;

/// Every frame type. [`build`] matches on `FrameType` exhaustively (no wildcard), so a new
/// variant does not compile until it has a sample; `all_frame_types_are_covered` then checks
/// this list against every code `FrameType::from_u8` accepts.
const ALL: &[FrameType] = &[
    FrameType::Hello,
    FrameType::HelloAck,
    FrameType::Auth,
    FrameType::AuthOk,
    FrameType::AuthError,
    FrameType::Ping,
    FrameType::Pong,
    FrameType::Throttle,
    FrameType::Shutdown,
    FrameType::StreamHeader,
    FrameType::Welcome,
    FrameType::SetNick,
    FrameType::CreateRoom,
    FrameType::Join,
    FrameType::Leave,
    FrameType::Send,
    FrameType::Edit,
    FrameType::Delete,
    FrameType::React,
    FrameType::DirectMessage,
    FrameType::ListRooms,
    FrameType::ListUsers,
    FrameType::SetRole,
    FrameType::History,
    FrameType::Moderate,
    FrameType::Invite,
    FrameType::NickOk,
    FrameType::Joined,
    FrameType::Left,
    FrameType::RoomList,
    FrameType::UserList,
    FrameType::Done,
    FrameType::HistoryPage,
    FrameType::UploadReady,
    FrameType::UploadDone,
    FrameType::RoomMessage,
    FrameType::MessageEdited,
    FrameType::MessageDeleted,
    FrameType::ReactionChanged,
    FrameType::MemberJoined,
    FrameType::MemberLeft,
    FrameType::MemberUpdated,
    FrameType::MemberModerated,
    FrameType::RoomRenamed,
    FrameType::RoomDeleted,
    FrameType::ShardAssignment,
    FrameType::RoomPromoted,
    FrameType::RoomDemoted,
    FrameType::MessageAck,
    FrameType::Delivered,
    FrameType::Read,
    FrameType::Receipt,
    FrameType::UploadStart,
    FrameType::UploadChunk,
    FrameType::UploadComplete,
    FrameType::Typing,
    FrameType::Presence,
    FrameType::RenameRoom,
    FrameType::DeleteRoom,
    FrameType::Error,
];

const ROLES: [Role; 5] = [
    Role::Guest,
    Role::Member,
    Role::Moderator,
    Role::Admin,
    Role::Owner,
];
const KINDS: [RoomKind; 3] = [RoomKind::Direct, RoomKind::Group, RoomKind::Channel];
const CODES: [ErrorCode; 26] = [
    ErrorCode::BadFrame,
    ErrorCode::FrameTooLarge,
    ErrorCode::BadPayload,
    ErrorCode::UnsupportedVersion,
    ErrorCode::OutOfState,
    ErrorCode::AuthFailed,
    ErrorCode::NickUnavailable,
    ErrorCode::NoSuchRoom,
    ErrorCode::RoomExists,
    ErrorCode::NotMember,
    ErrorCode::Forbidden,
    ErrorCode::NoSuchMessage,
    ErrorCode::NoSuchUser,
    ErrorCode::RateLimited,
    ErrorCode::SlowConsumer,
    ErrorCode::LimitReached,
    ErrorCode::InvalidArgument,
    ErrorCode::Unsupported,
    ErrorCode::Timeout,
    ErrorCode::Disconnected,
    ErrorCode::ShuttingDown,
    ErrorCode::Internal,
    ErrorCode::Banned,
    ErrorCode::Muted,
    ErrorCode::Kicked,
    ErrorCode::Unavailable,
];

/// The field values a sample message is built from.
#[derive(Clone, Debug)]
struct P {
    a: String,
    b: String,
    /// Longer text (crosses the 1-byte varint length boundary).
    c: String,
    x: u64,
    y: u64,
    z: u32,
    w: u16,
    flag: bool,
    role: Role,
    kind: RoomKind,
    code: ErrorCode,
    req: Option<ReqId>,
    stream: StreamKind,
    creds: Credentials,
    members: Vec<MemberInfo>,
    rooms: Vec<RoomInfo>,
}

impl Default for P {
    fn default() -> Self {
        P {
            a: "general".into(),
            b: "alice".into(),
            c: "hello, wörld \u{1F43A} ".repeat(10),
            x: 0xDEAD_BEEF_0000_0001,
            y: 300,
            z: 70_000,
            w: 513,
            flag: true,
            role: Role::Moderator,
            kind: RoomKind::Channel,
            code: ErrorCode::NoSuchRoom,
            req: Some(9),
            stream: StreamKind::Hot("general".into()),
            creds: Credentials::Token("eyJ.x.y".into()),
            members: vec![
                MemberInfo {
                    user: 1,
                    nick: "alice".into(),
                    role: Role::Owner,
                    online: true,
                },
                MemberInfo {
                    user: u64::MAX,
                    nick: "bob".into(),
                    role: Role::Guest,
                    online: false,
                },
            ],
            rooms: vec![RoomInfo {
                name: "general".into(),
                kind: RoomKind::Group,
                members: 12,
                title: String::new(),
            }],
        }
    }
}

/// One message of type `ty`, its fields taken from `p`.
fn build(ty: FrameType, p: &P) -> Message {
    let P {
        a,
        b,
        c,
        x,
        y,
        z,
        w,
        flag,
        role,
        kind,
        code,
        req,
        stream,
        creds,
        members,
        rooms,
    } = p.clone();
    match ty {
        FrameType::Hello => Hello {
            version: w,
            client: a,
            resume: ResumeToken::new(b),
        }
        .into(),
        FrameType::HelloAck => HelloAck {
            session: x,
            version: w,
            server: a,
            max_frame: z,
            heartbeat_ms: z / 3,
        }
        .into(),
        FrameType::Auth => Auth { credentials: creds }.into(),
        FrameType::AuthOk => AuthOk { user: x, nick: b }.into(),
        FrameType::AuthError => AuthError {
            code: ErrorCode::NickUnavailable,
            reason: c,
        }
        .into(),
        FrameType::Ping => Ping { nonce: x }.into(),
        FrameType::Pong => Pong { nonce: y }.into(),
        FrameType::Throttle => Throttle { retry_after_ms: z }.into(),
        FrameType::Shutdown => Shutdown { reason: c }.into(),
        FrameType::StreamHeader => StreamHeader { kind: stream }.into(),
        FrameType::Welcome => Welcome {
            message: c,
            ticket: a,
            resume_token: ResumeToken::new(b),
        }
        .into(),
        FrameType::SetNick => SetNick { req: z, nick: b }.into(),
        FrameType::CreateRoom => CreateRoom {
            req: z,
            room: a,
            kind,
        }
        .into(),
        FrameType::Join => Join {
            req: z,
            room: a,
            since: flag.then_some(Since { offset: y, epoch: x }),
        }
        .into(),
        FrameType::Leave => Leave { req: z, room: a }.into(),
        FrameType::Send => Send {
            req: z,
            room: a,
            client_id: x,
            text: c,
            attachment: flag.then_some(b),
        }
        .into(),
        FrameType::Edit => Edit {
            req: z,
            room: a,
            id: x,
            text: c,
        }
        .into(),
        FrameType::Delete => Delete {
            req: z,
            room: a,
            id: x,
        }
        .into(),
        FrameType::React => React {
            req: z,
            room: a,
            id: x,
            emoji: b,
            add: flag,
        }
        .into(),
        FrameType::DirectMessage => DirectMessage {
            req: z,
            to: b,
            client_id: y,
            text: c,
        }
        .into(),
        FrameType::ListRooms => ListRooms { req: z }.into(),
        FrameType::ListUsers => ListUsers { req: z, room: a }.into(),
        FrameType::SetRole => SetRole {
            req: z,
            room: a,
            nick: b,
            role,
        }
        .into(),
        FrameType::History => History {
            req: z,
            room: a,
            before: flag.then_some(x),
            after: Some(y),
            limit: z,
        }
        .into(),
        FrameType::Moderate => Moderate {
            req: z,
            room: a,
            nick: b,
            action: ModAction::Mute,
            secs: z,
            reason: c,
        }
        .into(),
        FrameType::Invite => Invite {
            req: z,
            room: a,
            nick: b,
        }
        .into(),
        FrameType::NickOk => NickOk { req: z, nick: b }.into(),
        FrameType::Joined => Joined {
            req: z,
            room: RoomInfo {
                name: a,
                kind,
                members: z,
                title: String::new(),
            },
            role,
            offset: y,
            members,
            epoch: x,
            resumed: flag,
            unread: u64::from(z),
        }
        .into(),
        FrameType::Left => Left { req: z, room: a }.into(),
        FrameType::RoomList => RoomList { req: z, rooms }.into(),
        FrameType::UserList => UserList {
            req: z,
            room: a,
            users: members,
        }
        .into(),
        FrameType::Done => Done { req: z }.into(),
        FrameType::HistoryPage => HistoryPage {
            req: z,
            room: a.clone(),
            epoch: x,
            messages: vec![
                StoredMessage {
                    offset: y,
                    id: x,
                    author: x ^ 1,
                    nick: b.clone(),
                    ts_ms: x.rotate_left(3),
                    text: c.clone(),
                    edited: flag,
                    deleted: !flag,
                    attachment: flag.then(|| a.clone()),
                    reactions: vec![(b.clone(), z), (String::new(), 0)],
                },
                StoredMessage {
                    offset: y.wrapping_add(1),
                    id: 0,
                    author: 0,
                    nick: String::new(),
                    ts_ms: 0,
                    text: String::new(),
                    edited: false,
                    deleted: false,
                    attachment: None,
                    reactions: Vec::new(),
                },
            ],
        }
        .into(),
        FrameType::UploadReady => UploadReady {
            req: z,
            upload: b,
            offset: x,
        }
        .into(),
        FrameType::UploadDone => UploadDone {
            req: z,
            upload: b,
            url: c,
        }
        .into(),
        FrameType::RoomMessage => RoomMessage {
            room: a,
            offset: y,
            id: x,
            author: x ^ 1,
            nick: b.clone(),
            ts_ms: x.rotate_left(7),
            text: c,
            attachment: flag.then_some(b),
        }
        .into(),
        FrameType::MessageEdited => MessageEdited {
            room: a,
            offset: y,
            id: x,
            by: 3,
            ts_ms: 1_700_000_000_000,
            text: c,
        }
        .into(),
        FrameType::MessageDeleted => MessageDeleted {
            room: a,
            offset: y,
            id: x,
            by: 4,
        }
        .into(),
        FrameType::ReactionChanged => ReactionChanged {
            room: a,
            offset: y,
            id: x,
            user: 5,
            nick: b,
            emoji: c,
            added: flag,
        }
        .into(),
        FrameType::MemberJoined => MemberJoined {
            room: a,
            offset: y,
            user: x,
            nick: b,
            role,
        }
        .into(),
        FrameType::MemberLeft => MemberLeft {
            room: a,
            offset: y,
            user: x,
            nick: b,
        }
        .into(),
        FrameType::MemberUpdated => MemberUpdated {
            room: a,
            offset: y,
            user: x,
            nick: b,
            role,
        }
        .into(),
        FrameType::MemberModerated => MemberModerated {
            room: a,
            offset: y,
            user: x,
            nick: b,
            action: ModAction::Ban,
            by: x,
            until_ms: x,
            reason: c,
        }
        .into(),
        FrameType::RoomRenamed => RoomRenamed {
            room: a,
            offset: y,
            title: c,
            by: x,
        }
        .into(),
        FrameType::RoomDeleted => RoomDeleted {
            room: a,
            offset: y,
            by: x,
        }
        .into(),
        FrameType::ShardAssignment => ShardAssignment { num_shards: w }.into(),
        FrameType::RoomPromoted => RoomPromoted { room: a }.into(),
        FrameType::RoomDemoted => RoomDemoted { room: a, shard: w }.into(),
        FrameType::MessageAck => MessageAck {
            req: z,
            room: a,
            id: x,
            offset: y,
        }
        .into(),
        FrameType::Delivered => Delivered { room: a, id: x }.into(),
        FrameType::Read => Read { room: a, id: y }.into(),
        FrameType::Receipt => Receipt {
            room: a,
            id: x,
            user: y,
            nick: b,
            read: flag,
        }
        .into(),
        FrameType::UploadStart => UploadStart {
            req: z,
            name: b,
            content_type: a,
            size: x,
            sha256: vec![flag as u8; 32],
        }
        .into(),
        FrameType::UploadChunk => UploadChunk {
            upload: b,
            offset: y,
            data: c.into_bytes(),
        }
        .into(),
        FrameType::UploadComplete => UploadComplete { req: z, upload: b }.into(),
        FrameType::Typing => Typing {
            room: a,
            user: x,
            nick: b,
        }
        .into(),
        FrameType::Presence => Presence {
            user: x,
            nick: b,
            online: flag,
        }
        .into(),
        FrameType::RenameRoom => RenameRoom {
            req: z,
            room: a,
            title: c,
        }
        .into(),
        FrameType::DeleteRoom => DeleteRoom { req: z, room: a }.into(),
        FrameType::Error => Error {
            req,
            code,
            message: c,
        }
        .into(),
    }
}

/// One sample per frame type, with the default field values.
fn samples() -> Vec<Message> {
    let p = P::default();
    ALL.iter().map(|&ty| build(ty, &p)).collect()
}

/// encode -> Decoder -> Message::decode.
fn round_trip(m: &Message) -> Message {
    let wire = m.encode();
    let mut dec = Decoder::default();
    dec.push(&wire);
    let frame = dec.next_frame().expect("valid frame").expect("whole frame");
    assert_eq!(dec.next_frame(), Ok(None));
    assert_eq!(dec.pending(), 0);
    dec.finish().expect("nothing left over");
    assert_eq!(frame.ty, m.frame_type() as u8);
    assert_eq!(frame.wire_len(), wire.len());
    assert_eq!(frame.to_bytes(), wire);
    Message::decode(&frame).expect("payload decodes")
}

/// Push `wire` cut at `cuts`, collecting every frame as soon as it is complete.
fn decode_chunked(wire: &[u8], cuts: &[usize], max: usize) -> (Decoder, Vec<Frame>) {
    let mut dec = Decoder::new(max);
    let mut frames = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&wire.len())) {
        dec.push(&wire[start..end]);
        start = end;
        while let Some(f) = dec.next_frame().expect("valid stream") {
            frames.push(f);
        }
    }
    (dec, frames)
}

fn concat(msgs: &[Message]) -> Vec<u8> {
    msgs.iter().flat_map(|m| m.encode().to_vec()).collect()
}

fn unknown_types() -> Vec<u8> {
    (0..=255u8).filter(|b| FrameType::from_u8(*b).is_none()).collect()
}

// ---------------------------------------------------------------- example-based tests

#[test]
fn all_frame_types_are_covered() {
    let accepted: BTreeSet<u8> = (0..=255u8).filter(|b| FrameType::from_u8(*b).is_some()).collect();
    let listed: BTreeSet<u8> = ALL.iter().map(|t| *t as u8).collect();
    assert_eq!(listed.len(), ALL.len(), "duplicate frame type in ALL");
    let sampled: BTreeSet<u8> = samples().iter().map(|m| m.frame_type() as u8).collect();
    assert_eq!(sampled, accepted, "a frame type has no sample");
    assert_eq!(listed, accepted);
    for &ty in ALL {
        assert_eq!(FrameType::from_u8(ty as u8), Some(ty));
        assert_eq!(build(ty, &P::default()).frame_type(), ty);
    }
}

#[test]
fn every_message_type_round_trips() {
    for m in samples() {
        assert_eq!(round_trip(&m), m, "{:?}", m.frame_type());
    }
}

#[test]
fn every_message_type_round_trips_with_extreme_values() {
    let p = P {
        a: String::new(),
        b: String::new(),
        c: "x".repeat(70_000),
        x: u64::MAX,
        y: 0,
        z: u32::MAX,
        w: u16::MAX,
        flag: false,
        role: Role::Guest,
        kind: RoomKind::Direct,
        code: ErrorCode::Internal,
        req: None,
        stream: StreamKind::Shard(u16::MAX),
        creds: Credentials::Nick(String::new()),
        members: Vec::new(),
        rooms: Vec::new(),
    };
    for &ty in ALL {
        let m = build(ty, &p);
        assert_eq!(round_trip(&m), m, "{ty:?}");
    }
}

#[test]
fn enum_fields_round_trip_every_variant() {
    for (i, code) in CODES.iter().enumerate() {
        let m = Error::reply(i as ReqId, *code, format!("e{i}"));
        assert_eq!(round_trip(&m), m);
    }
    for role in ROLES {
        for kind in KINDS {
            let p = P {
                role,
                kind,
                ..P::default()
            };
            for ty in [FrameType::Joined, FrameType::CreateRoom, FrameType::SetRole] {
                let m = build(ty, &p);
                assert_eq!(round_trip(&m), m);
            }
        }
    }
    let kinds = [
        StreamKind::Commands,
        StreamKind::Acks,
        StreamKind::Upload,
        StreamKind::Shard(0),
        StreamKind::Shard(7),
        StreamKind::Hot(String::new()),
        StreamKind::Hot("lobby".into()),
    ];
    for kind in kinds {
        let m: Message = StreamHeader { kind }.into();
        assert_eq!(round_trip(&m), m);
    }
    for credentials in [Credentials::Nick("n".into()), Credentials::Token("t".into())] {
        let m: Message = Auth { credentials }.into();
        assert_eq!(round_trip(&m), m);
    }
}

#[test]
fn encode_writes_type_and_big_endian_length() {
    for m in samples() {
        let wire = m.encode();
        assert_eq!(wire[0], m.frame_type() as u8);
        let len = u32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as usize;
        assert_eq!(len, wire.len() - HEADER_LEN);
    }
    let wire = Message::Ping(Ping { nonce: 5 }).encode();
    assert_eq!(&wire[..], &[0x06, 0, 0, 0, 1, 5]);
    assert_eq!(Frame::header(0x30, 0x0102_0304), [0x30, 1, 2, 3, 4]);
}

#[test]
fn many_frames_in_one_push_come_out_in_order() {
    let msgs = samples();
    let wire = concat(&msgs);
    let (dec, frames) = decode_chunked(&wire, &[], DEFAULT_MAX_FRAME);
    let got: Vec<Message> = frames.iter().map(|f| Message::decode(f).unwrap()).collect();
    assert_eq!(got, msgs);
    assert_eq!(dec.pending(), 0);
    assert_eq!(dec.finish(), Ok(()));
}

#[test]
fn samples_decode_byte_by_byte() {
    let msgs = samples();
    let wire = concat(&msgs);
    let cuts: Vec<usize> = (1..wire.len()).collect();
    let (dec, frames) = decode_chunked(&wire, &cuts, DEFAULT_MAX_FRAME);
    let got: Vec<Message> = frames.iter().map(|f| Message::decode(f).unwrap()).collect();
    assert_eq!(got, msgs);
    assert_eq!(dec.finish(), Ok(()));
}

#[test]
fn decoder_waits_for_header_and_payload() {
    let wire = Message::Join(Join {
        req: 1,
        room: "lobby".into(),
        since: None,
    })
    .encode();
    let mut dec = Decoder::default();
    for (i, b) in wire.iter().enumerate().take(wire.len() - 1) {
        dec.push(&[*b]);
        assert_eq!(dec.next_frame(), Ok(None), "after {} bytes", i + 1);
        assert_eq!(dec.pending(), i + 1);
        assert_eq!(dec.finish(), Err(DecodeError::Truncated(i + 1)));
    }
    dec.push(&wire[wire.len() - 1..]);
    let f = dec.next_frame().unwrap().unwrap();
    assert_eq!(f.ty, 0x12);
    assert_eq!(dec.finish(), Ok(()));
}

#[test]
fn empty_payload_frame_and_payload_errors() {
    // The decoder yields a zero-length frame; decoding it as a typed message fails cleanly.
    let mut dec = Decoder::new(0);
    dec.push(&Frame::header(0x06, 0));
    let f = dec.next_frame().unwrap().expect("empty frame is whole");
    assert_eq!(f.payload.len(), 0);
    assert_eq!(dec.finish(), Ok(()));
    match Message::decode(&f) {
        Err(DecodeError::Payload { ty: 0x06, .. }) => {}
        other => panic!("expected a payload error, got {other:?}"),
    }
    // A RoomMessage payload cut short.
    let full = build(FrameType::RoomMessage, &P::default()).encode();
    let cut = Frame {
        ty: 0x30,
        payload: full.slice(HEADER_LEN..full.len() - 3),
    };
    assert!(matches!(
        Message::decode(&cut),
        Err(DecodeError::Payload { ty: 0x30, .. })
    ));
    // A bool that is neither 0 nor 1.
    let bad_bool = Frame {
        ty: FrameType::Presence as u8,
        payload: Bytes::from_static(&[1, 0, 2]),
    };
    assert!(matches!(
        Message::decode(&bad_bool),
        Err(DecodeError::Payload { .. })
    ));
}

#[test]
fn trailing_payload_bytes_are_ignored() {
    // Fields are only ever appended: an older decoder reads a newer payload's prefix.
    let m = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        client: "cli".into(),
        resume: Default::default(),
    });
    let wire = m.encode();
    let mut payload = wire[HEADER_LEN..].to_vec();
    payload.extend_from_slice(&[7, 7, 7, 0xFF]);
    let f = Frame {
        ty: 0x01,
        payload: payload.into(),
    };
    assert_eq!(Message::decode(&f), Ok(m));
}

#[test]
fn length_cap_is_inclusive() {
    let mut dec = Decoder::new(4);
    dec.push(&Frame::header(0x06, 4));
    dec.push(&[1, 2, 3, 4]);
    assert_eq!(dec.next_frame().unwrap().unwrap().payload.len(), 4);
    dec.push(&Frame::header(0x06, 5));
    assert_eq!(dec.next_frame(), Err(DecodeError::TooLarge { len: 5, max: 4 }));
}

#[test]
fn four_gib_header_is_refused_before_buffering() {
    let mut dec = Decoder::new(1024);
    dec.push(&[FrameType::RoomMessage as u8, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        dec.next_frame(),
        Err(DecodeError::TooLarge {
            len: u32::MAX as usize,
            max: 1024
        })
    );
    assert_eq!(dec.pending(), HEADER_LEN);
    // Also with the default cap, and as a datagram.
    let mut dec = Decoder::default();
    dec.push(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(matches!(dec.next_frame(), Err(DecodeError::TooLarge { .. })));
    assert_eq!(dec.pending(), HEADER_LEN);
    assert!(matches!(
        Message::decode_datagram(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2], 1200),
        Err(DecodeError::TooLarge { max: 1200, .. })
    ));
}

#[test]
fn unknown_types_are_refused() {
    let unknown = unknown_types();
    assert_eq!(unknown.len(), 256 - ALL.len());
    for ty in unknown {
        let mut dec = Decoder::default();
        dec.push(&Frame::header(ty, 1));
        dec.push(&[0]);
        assert_eq!(dec.next_frame(), Err(DecodeError::UnknownType(ty)));
        let f = Frame {
            ty,
            payload: Bytes::from_static(&[0]),
        };
        assert_eq!(Message::decode(&f), Err(DecodeError::UnknownType(ty)));
        assert_eq!(
            Message::decode_datagram(&[ty, 0, 0, 0, 1, 0], 1200),
            Err(DecodeError::UnknownType(ty))
        );
    }
}

#[test]
fn decode_datagram_needs_exactly_one_frame() {
    let m = Message::Typing(Typing {
        room: "r".into(),
        user: 0,
        nick: String::new(),
    });
    let wire = m.encode();
    assert_eq!(Message::decode_datagram(&wire, 1200), Ok(m.clone()));
    assert_eq!(
        Message::decode_datagram(&wire[..wire.len() - 1], 1200),
        Err(DecodeError::Truncated(wire.len() - 1))
    );
    assert_eq!(
        Message::decode_datagram(&[], 1200),
        Err(DecodeError::Truncated(0))
    );
    assert_eq!(
        Message::decode_datagram(&wire[..3], 1200),
        Err(DecodeError::Truncated(3))
    );
    let mut two = wire.to_vec();
    two.extend_from_slice(&wire);
    assert_eq!(
        Message::decode_datagram(&two, 1200),
        Err(DecodeError::Truncated(wire.len()))
    );
    assert!(matches!(
        Message::decode_datagram(&wire, 2),
        Err(DecodeError::TooLarge { max: 2, .. })
    ));
}

#[test]
fn frame_types_sit_in_their_category() {
    for m in samples() {
        let code = m.frame_type() as u8;
        let cat = Category::of(code);
        assert_ne!(cat, Category::Reserved, "{:?}", m.frame_type());
        assert_eq!(
            m.room_offset().is_some(),
            cat == Category::Room,
            "{:?}",
            m.frame_type()
        );
        // Commands, and the upload commands that get a reply (start, complete).
        let is_request =
            (0x10..=0x1F).contains(&code) || (0x90..=0x9F).contains(&code) || code == 0x70 || code == 0x72;
        assert_eq!(m.request_id().is_some(), is_request, "{:?}", m.frame_type());
        let is_reply = (0x20..=0x2F).contains(&code) || code == 0x60 || code == 0xFF;
        assert_eq!(m.reply_to().is_some(), is_reply, "{:?}", m.frame_type());
        let datagram = matches!(m, Message::Typing(_) | Message::Presence(_));
        assert_eq!(cat == Category::Datagram, datagram);
    }
    assert_eq!(Category::of(0x00), Category::Control);
    assert_eq!(Category::of(0x0F), Category::Control);
    assert_eq!(Category::of(0x10), Category::Command);
    assert_eq!(Category::of(0x2F), Category::Command);
    assert_eq!(Category::of(0x30), Category::Room);
    assert_eq!(Category::of(0x4F), Category::Room);
    assert_eq!(Category::of(0x50), Category::Shard);
    assert_eq!(Category::of(0x60), Category::Ack);
    assert_eq!(Category::of(0x70), Category::Upload);
    assert_eq!(Category::of(0x8F), Category::Datagram);
    assert_eq!(Category::of(0x90), Category::Command);
    assert_eq!(Category::of(0xA0), Category::Reserved);
    assert_eq!(Category::of(0xFE), Category::Reserved);
    assert_eq!(Category::of(0xFF), Category::Error);
}

#[test]
fn message_accessors() {
    let p = P::default();
    let ev = build(FrameType::ReactionChanged, &p);
    assert_eq!(ev.room_offset(), Some(("general", 300)));
    assert_eq!(build(FrameType::Send, &p).request_id(), Some(70_000));
    assert_eq!(build(FrameType::MessageAck, &p).reply_to(), Some(70_000));
    assert_eq!(Error::reply(3, ErrorCode::Forbidden, "no").reply_to(), Some(3));
    assert_eq!(Error::fatal(ErrorCode::Internal, "x").reply_to(), None);
    assert_eq!(
        Error::fatal(ErrorCode::ShuttingDown, "bye"),
        Message::Error(Error {
            req: None,
            code: ErrorCode::ShuttingDown,
            message: "bye".into()
        })
    );
}

#[test]
fn types_helpers() {
    for role in ROLES {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("mod"), Some(Role::Moderator));
    assert_eq!(Role::parse("Owner"), None);
    assert!(ROLES.windows(2).all(|w| w[0] < w[1]));
    let nums: Vec<u16> = CODES.iter().map(|c| c.as_u16()).collect();
    assert_eq!(nums, (1..=26).collect::<Vec<u16>>());
}

#[test]
fn shard_hash_is_fnv1a_64() {
    // Published FNV-1a 64-bit test vectors.
    let vectors: [(&str, u64); 3] = [
        ("", 0xcbf2_9ce4_8422_2325),
        ("a", 0xaf63_dc4c_8601_ec8c),
        ("foobar", 0x8594_4171_f739_67e8),
    ];
    for (s, h) in vectors {
        for n in [1u16, 2, 3, 7, 8, 1000, u16::MAX] {
            assert_eq!(shard_of(s, n), (h % u64::from(n)) as u16, "{s:?} % {n}");
        }
        assert_eq!(shard_of(s, 0), 0);
    }
}

// ---------------------------------------------------------------- property tests

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap()
}

fn member() -> impl Strategy<Value = MemberInfo> {
    (
        any::<u64>(),
        text(12),
        prop::sample::select(ROLES.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(user, nick, role, online)| MemberInfo {
            user,
            nick,
            role,
            online,
        })
}

fn room_info() -> impl Strategy<Value = RoomInfo> {
    (text(12), prop::sample::select(KINDS.to_vec()), any::<u32>()).prop_map(|(name, kind, members)| {
        RoomInfo {
            name,
            kind,
            members,
            title: String::new(),
        }
    })
}

fn stream_kind() -> impl Strategy<Value = StreamKind> {
    prop_oneof![
        Just(StreamKind::Commands),
        Just(StreamKind::Acks),
        Just(StreamKind::Upload),
        any::<u16>().prop_map(StreamKind::Shard),
        text(16).prop_map(StreamKind::Hot),
    ]
}

fn params() -> impl Strategy<Value = P> {
    let strings = (text(16), text(16), text(300));
    let numbers = (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u16>(),
        any::<bool>(),
    );
    let enums = (
        prop::sample::select(ROLES.to_vec()),
        prop::sample::select(KINDS.to_vec()),
        prop::sample::select(CODES.to_vec()),
        any::<Option<ReqId>>(),
        stream_kind(),
        prop_oneof![
            text(20).prop_map(Credentials::Nick),
            text(20).prop_map(Credentials::Token)
        ],
    );
    let lists = (
        prop::collection::vec(member(), 0..4),
        prop::collection::vec(room_info(), 0..4),
    );
    (strings, numbers, enums, lists).prop_map(
        |((a, b, c), (x, y, z, w, flag), (role, kind, code, req, stream, creds), (members, rooms))| P {
            a,
            b,
            c,
            x,
            y,
            z,
            w,
            flag,
            role,
            kind,
            code,
            req,
            stream,
            creds,
            members,
            rooms,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    (prop::sample::select(ALL), params()).prop_map(|(ty, p)| build(ty, &p))
}

fn cut_points(len: usize, idx: &[Index]) -> Vec<usize> {
    let mut cuts: Vec<usize> = idx.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_message_round_trips(m in message()) {
        prop_assert_eq!(round_trip(&m), m.clone());
        let wire = m.encode();
        prop_assert_eq!(Message::decode_datagram(&wire, DEFAULT_MAX_FRAME), Ok(m));
    }

    #[test]
    fn arbitrary_splits_give_the_same_frames(
        msgs in prop::collection::vec(message(), 1..8),
        idx in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let wire = concat(&msgs);
        let expected: Vec<Frame> = msgs
            .iter()
            .map(|m| {
                let w = m.encode();
                Frame { ty: w[0], payload: w.slice(HEADER_LEN..) }
            })
            .collect();
        let (dec, frames) = decode_chunked(&wire, &cut_points(wire.len(), &idx), DEFAULT_MAX_FRAME);
        prop_assert_eq!(&frames, &expected);
        let decoded: Vec<Message> = frames.iter().map(|f| Message::decode(f).unwrap()).collect();
        prop_assert_eq!(decoded, msgs);
        prop_assert_eq!(dec.pending(), 0);
        prop_assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn byte_by_byte_gives_the_same_frames(msgs in prop::collection::vec(message(), 1..5)) {
        let wire = concat(&msgs);
        let cuts: Vec<usize> = (1..wire.len()).collect();
        let (dec, frames) = decode_chunked(&wire, &cuts, DEFAULT_MAX_FRAME);
        let decoded: Vec<Message> = frames.iter().map(|f| Message::decode(f).unwrap()).collect();
        prop_assert_eq!(decoded, msgs);
        prop_assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn truncated_stream_is_an_error(
        msgs in prop::collection::vec(message(), 1..5),
        short in any::<Index>(),
        idx in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let wire = concat(&msgs);
        let last = msgs.last().unwrap().encode().len();
        // Drop 1..last bytes: the stream ends inside the last frame (at least one byte of it sent).
        let drop = 1 + short.index(last - 1);
        let cut = &wire[..wire.len() - drop];
        let (dec, frames) = decode_chunked(cut, &cut_points(cut.len(), &idx), DEFAULT_MAX_FRAME);
        prop_assert_eq!(frames.len(), msgs.len() - 1);
        let decoded: Vec<Message> = frames.iter().map(|f| Message::decode(f).unwrap()).collect();
        prop_assert_eq!(&decoded[..], &msgs[..msgs.len() - 1]);
        let partial = last - drop;
        prop_assert_eq!(dec.pending(), partial);
        prop_assert_eq!(dec.finish(), Err(DecodeError::Truncated(partial)));
    }

    #[test]
    fn oversize_header_fails_before_payload(
        ty in prop::sample::select(ALL),
        max in 0usize..100_000,
        extra in any::<Index>(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let over = max as u64 + 1;
        let len = (over + extra.index((u64::from(u32::MAX) - over + 1) as usize) as u64) as usize;
        let mut dec = Decoder::new(max);
        dec.push(&Frame::header(ty as u8, len));
        prop_assert_eq!(dec.next_frame(), Err(DecodeError::TooLarge { len, max }));
        prop_assert_eq!(dec.pending(), HEADER_LEN);
        // Preceded by a valid frame in the same push: that one still comes out first.
        let ok = Message::Pong(Pong { nonce: 1 }).encode();
        let mut dec = Decoder::new(max.max(ok.len()));
        let mut wire = ok.to_vec();
        wire.extend_from_slice(&Frame::header(ty as u8, len.max(ok.len() + 1)));
        wire.extend_from_slice(&body);
        dec.push(&wire);
        prop_assert!(dec.next_frame().unwrap().is_some());
        let refused = matches!(dec.next_frame(), Err(DecodeError::TooLarge { .. }));
        prop_assert!(refused);
        prop_assert_eq!(dec.pending(), HEADER_LEN + body.len());
    }

    #[test]
    fn partial_frames_hold_memory_for_the_bytes_received_not_the_declared_length(
        ty in prop::sample::select(ALL),
        declared in 1usize..=DEFAULT_MAX_FRAME,
        received in 0usize..4096,
        idx in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let received = received.min(declared - 1);
        let mut wire = Frame::header(ty as u8, declared).to_vec();
        wire.extend(std::iter::repeat_n(0xA5, received));
        let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
        let mut start = 0;
        for end in cut_points(wire.len(), &idx).into_iter().chain(std::iter::once(wire.len())) {
            dec.push(&wire[start..end]);
            start = end;
            prop_assert_eq!(dec.next_frame(), Ok(None));
            // Amortized growth may double what was received, never approach the declared size.
            prop_assert!(
                dec.capacity() <= 2 * dec.pending() + 64,
                "capacity {} for {} bytes pending ({} declared)", dec.capacity(), dec.pending(), declared
            );
        }
        prop_assert_eq!(dec.pending(), wire.len());
    }

    #[test]
    fn unknown_type_byte_is_refused(
        ty in prop::sample::select(unknown_types()),
        len in any::<u32>(),
        body in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut dec = Decoder::new(16);
        dec.push(&Frame::header(ty, len as usize));
        dec.push(&body);
        prop_assert_eq!(dec.next_frame(), Err(DecodeError::UnknownType(ty)));
        let f = Frame { ty, payload: body.into() };
        prop_assert_eq!(Message::decode(&f), Err(DecodeError::UnknownType(ty)));
    }

    #[test]
    fn garbage_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..600),
        idx in prop::collection::vec(any::<Index>(), 0..8),
        max in 0usize..2048,
    ) {
        let _ = Message::decode_datagram(&data, max);
        let mut dec = Decoder::new(max);
        let mut start = 0;
        'outer: for end in cut_points(data.len(), &idx).into_iter().chain(std::iter::once(data.len())) {
            dec.push(&data[start..end]);
            start = end;
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => {
                        prop_assert!(f.payload.len() <= max);
                        if let Ok(m) = Message::decode(&f) {
                            prop_assert_eq!(m.frame_type() as u8, f.ty);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
        let _ = dec.finish();
    }

    /// Well-framed random payloads under every valid type: never a panic, and anything
    /// that decodes re-encodes to a message that decodes to itself.
    #[test]
    fn garbage_payloads_never_panic(
        ty in prop::sample::select(ALL),
        payload in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let f = Frame { ty: ty as u8, payload: payload.clone().into() };
        if let Ok(m) = Message::decode(&f) {
            prop_assert_eq!(m.frame_type(), ty);
            prop_assert_eq!(round_trip(&m), m.clone());
        }
        let mut wire = Frame::header(ty as u8, payload.len()).to_vec();
        wire.extend_from_slice(&payload);
        if let Ok(m) = Message::decode_datagram(&wire, 1200) {
            prop_assert_eq!(round_trip(&m), m);
        }
    }

    /// Valid messages with a few bytes overwritten.
    #[test]
    fn corrupted_messages_never_panic(
        m in message(),
        flips in prop::collection::vec((any::<Index>(), any::<u8>()), 1..6),
    ) {
        let mut wire = m.encode().to_vec();
        for (i, b) in flips {
            let at = i.index(wire.len());
            wire[at] = b;
        }
        if let Ok(m2) = Message::decode_datagram(&wire, DEFAULT_MAX_FRAME) {
            prop_assert_eq!(round_trip(&m2), m2);
        }
        let mut dec = Decoder::default();
        dec.push(&wire);
        while let Ok(Some(f)) = dec.next_frame() {
            let _ = Message::decode(&f);
        }
    }
}

/// Seed corpora for the cargo-fuzz targets (fuzz/). Not a check: run by hand when the
/// protocol changes, `cargo test -p garou-protocol --test codec -- --ignored write_fuzz_seeds`,
/// and commit what it writes under fuzz/corpus/<target>/seed-*.
#[test]
#[ignore = "writes the fuzz seed corpora into the source tree"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };
    let hello: Message = Hello {
        version: PROTOCOL_VERSION,
        client: "seed".into(),
        resume: Default::default(),
    }
    .into();
    let auth: Message = Auth {
        credentials: Credentials::Nick("ann".into()),
    }
    .into();
    let ping: Message = Ping { nonce: 7 }.into();

    // payload_decoder: `[type] [payload]`, one per frame type.
    for m in samples() {
        let wire = m.encode();
        let mut input = vec![wire[0]];
        input.extend_from_slice(&wire[HEADER_LEN..]);
        write("payload_decoder", &format!("{:02x}", wire[0]), &input);
    }

    // frame_decoder: `[max_frame] [cuts] [cut lengths] [stream]`.
    let stream = concat(&[hello.clone(), auth.clone(), ping.clone()]);
    let mut input = vec![255, 0];
    input.extend_from_slice(&stream);
    write("frame_decoder", "whole", &input);
    let mut input = vec![64, 3, 1, 4, 9];
    input.extend_from_slice(&stream);
    write("frame_decoder", "cut", &input);
    let mut input = vec![16, 0];
    input.extend_from_slice(&stream[..stream.len() - 2]);
    write("frame_decoder", "truncated", &input);

    // server_session: records `[op] [arg] [len] [bytes]` (fuzz/fuzz_targets/server_session.rs).
    fn rec(out: &mut Vec<u8>, op: u8, arg: u8, bytes: &[u8]) {
        out.extend_from_slice(&[
            op,
            arg,
            u8::try_from(bytes.len()).expect("seed record under 256 bytes"),
        ]);
        out.extend_from_slice(bytes);
    }
    const CONTROL: u8 = 0;
    const UNI: u8 = 2;
    const OPEN: u8 = 4;
    const FINISH: u8 = 5;
    const DATAGRAM: u8 = 6;
    let handshake = |out: &mut Vec<u8>| {
        rec(out, CONTROL, 0, &hello.encode());
        rec(out, CONTROL, 0, &auth.encode());
    };
    let header = |kind: StreamKind| Message::from(StreamHeader { kind }).encode();
    let room = || "lobby".to_string();

    let mut chat = Vec::new();
    handshake(&mut chat);
    rec(&mut chat, OPEN, 0, &[]);
    rec(&mut chat, UNI, 0, &header(StreamKind::Commands));
    let commands: Vec<Message> = vec![
        Join {
            req: 1,
            room: room(),
            since: None,
        }
        .into(),
        Send {
            req: 2,
            room: room(),
            client_id: 1,
            text: "hi".into(),
            attachment: None,
        }
        .into(),
        History {
            req: 3,
            room: room(),
            before: None,
            after: None,
            limit: 10,
        }
        .into(),
        ListRooms { req: 4 }.into(),
        ListUsers { req: 5, room: room() }.into(),
    ];
    for c in &commands {
        rec(&mut chat, UNI, 0, &c.encode());
    }
    rec(&mut chat, OPEN, 1, &[]);
    rec(&mut chat, UNI, 1, &header(StreamKind::Acks));
    rec(
        &mut chat,
        UNI,
        1,
        &Message::from(Read { room: room(), id: 1 }).encode(),
    );
    rec(&mut chat, FINISH, 1, &[]);
    let typing = Typing {
        room: room(),
        user: 0,
        nick: String::new(),
    };
    rec(&mut chat, DATAGRAM, 0, &Message::from(typing).encode());
    rec(&mut chat, CONTROL, 0, &ping.encode());
    write("server_session", "chat", &chat);

    let mut upload = Vec::new();
    handshake(&mut upload);
    rec(&mut upload, OPEN, 0, &[]);
    rec(&mut upload, UNI, 0, &header(StreamKind::Commands));
    let start = UploadStart {
        req: 1,
        name: "a.txt".into(),
        content_type: "text/plain".into(),
        size: 3,
        sha256: vec![0; 32],
    };
    rec(&mut upload, UNI, 0, &Message::from(start).encode());
    rec(&mut upload, OPEN, 1, &[]);
    rec(&mut upload, UNI, 1, &header(StreamKind::Upload));
    let chunk = UploadChunk {
        upload: "u".into(),
        offset: 0,
        data: b"abc".to_vec(),
    };
    rec(&mut upload, UNI, 1, &Message::from(chunk).encode());
    write("server_session", "upload", &upload);

    // A handshake, then a frame of an unknown type: the session must close with an error.
    let mut bad = Vec::new();
    handshake(&mut bad);
    rec(&mut bad, CONTROL, 0, &[0xEE, 0, 0, 0, 0]);
    write("server_session", "bad-control", &bad);

    let mut bad = Vec::new();
    handshake(&mut bad);
    rec(&mut bad, OPEN, 2, &[]);
    rec(&mut bad, UNI, 2, &header(StreamKind::Commands));
    rec(&mut bad, UNI, 2, &[0x14, 0, 0, 0, 1, 0xFF]);
    write("server_session", "bad-uni", &bad);
}
