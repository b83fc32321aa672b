//! The room core on its own: plain tests, no runtime, no store, no connections. Every
//! input comes in as a value (the time, the queue place) and every effect is checked as
//! data (offsets, decoded event frames, store rows, replies).

use super::*;

const ALICE: UserId = 1;
const BOB: UserId = 2;
const CAROL: UserId = 3;

fn now() -> Now {
    Now {
        ms: 1_000_000,
        sec: 10,
    }
}

/// A place in the queue, as the driver would pass one in.
fn slot() -> Result<(), Refusal> {
    Ok(())
}

fn full() -> Result<(), Refusal> {
    Err((ErrorCode::Unavailable, "store down".into()))
}

/// A group room with Alice (owner) and Bob (member), their joins sequenced at 1 and 2.
fn room() -> RoomCore {
    let mut core = RoomCore::new("r".into(), RoomKind::Group, 10, 100, Arc::default());
    for (user, nick, role) in [(ALICE, "alice", Role::Owner), (BOB, "bob", Role::Member)] {
        core.admit(user, nick, role, Vec::new(), slot(), now()).unwrap();
    }
    core
}

fn post(author: UserId, client_id: u64, text: &str) -> Post {
    Post {
        req: 7,
        author,
        client_id,
        text: text.into(),
        attachment: None,
    }
}

/// The event a frame carries.
fn decode(frame: &Bytes) -> Message {
    Message::decode_datagram(frame, 1 << 20).expect("a whole frame")
}

/// Send `text` as `author`, expecting a new message; its id and publish.
fn send_new(core: &mut RoomCore, author: UserId, client_id: u64, text: &str, id: MsgId) -> Publish<()> {
    match core
        .send(post(author, client_id, text), slot(), || id, 1e9, now())
        .unwrap()
    {
        Sent::New { publish, id: got, .. } => {
            assert_eq!(got, id);
            publish
        }
        other => panic!("not a new message: {other:?}"),
    }
}

#[test]
fn a_member_sends_one_event_with_its_rows_and_ack() {
    let mut core = room();
    let p = send_new(&mut core, BOB, 5, "hello", 100);
    assert_eq!(p.event.offset, 3);
    assert_eq!(core.offset, 3);
    match decode(&p.event.frame) {
        Message::RoomMessage(m) => {
            assert_eq!(
                (m.offset, m.id, m.author, m.text.as_str()),
                (3, 100, BOB, "hello")
            );
            assert_eq!((m.nick.as_str(), m.ts_ms), ("bob", now().ms));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &p.event.ops[0],
        Op::Message {
            id: 100,
            offset: 3,
            client_id: 5,
            ..
        }
    ));
    assert!(
        matches!(&p.event.ops[1], Op::Event { offset: 3, ts_ms, frame, .. } if *ts_ms == now().ms && *frame == p.event.frame),
        "the event row stores the very frame subscribers get"
    );
    assert!(matches!(
        p.reply,
        Some(Message::MessageAck(MessageAck {
            req: 7,
            id: 100,
            offset: 3,
            ..
        }))
    ));
    assert_eq!(core.unread(ALICE), 1);
    assert_eq!(core.unread(BOB), 0);
}

#[test]
fn a_non_member_is_refused_and_nothing_is_sequenced() {
    let mut core = room();
    let refused = core.send(
        post(CAROL, 1, "hi"),
        slot(),
        || unreachable!("no id for a refusal"),
        1e9,
        now(),
    );
    assert_eq!(refused.unwrap_err().0, ErrorCode::NotMember);
    assert_eq!(core.offset, 2);
}

#[test]
fn without_a_queue_place_no_offset_is_taken() {
    let mut core = room();
    let refused = core.send(post(BOB, 1, "hi"), full(), || 100, 1e9, now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::Unavailable);
    assert_eq!(core.offset, 2, "no gap: the next event takes offset 3");
    assert!(core.client_ids.is_empty());
    assert_eq!(send_new(&mut core, BOB, 1, "hi", 101).event.offset, 3);
}

#[test]
fn a_resent_client_id_is_acked_when_durable_never_published_twice() {
    let mut core = room();
    send_new(&mut core, BOB, 9, "once", 100);
    let again = core
        .send(post(BOB, 9, "once"), slot(), || unreachable!(), 1e9, now())
        .unwrap();
    assert!(
        matches!(
            again,
            Sent::Pending {
                id: 100,
                offset: 3,
                ..
            }
        ),
        "{again:?}"
    );
    core.durable = 3;
    // Even without a queue place: answering needs none.
    let again = core
        .send(post(BOB, 9, "once"), full(), || unreachable!(), 1e9, now())
        .unwrap();
    assert!(
        matches!(
            again,
            Sent::Ack(Message::MessageAck(MessageAck {
                id: 100,
                offset: 3,
                ..
            }))
        ),
        "{again:?}"
    );
    assert_eq!(core.offset, 3);
}

#[test]
fn a_mute_refuses_until_its_time_passed_in() {
    let mut core = room();
    let until = now().ms + 5_000;
    core.muted.insert(BOB, until);
    let refused = core.send(post(BOB, 1, "hi"), slot(), || 100, 1e9, now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::Muted);
    let later = Now { ms: until, sec: 15 };
    assert!(matches!(
        core.send(post(BOB, 1, "hi"), slot(), || 100, 1e9, later),
        Ok(Sent::New { .. })
    ));
}

#[test]
fn a_closed_room_refuses_everything() {
    let mut core = room();
    core.closed = true;
    let refused = core.send(post(BOB, 1, "hi"), slot(), || 100, 1e9, now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::NoSuchRoom);
    let refused = core.leave(BOB, 1, slot(), now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::NoSuchRoom);
    assert_eq!(core.offset, 2);
}

#[test]
fn the_rate_says_when_the_room_should_go_hot() {
    let mut core = room();
    let mut hot = false;
    for n in 0..5 {
        match core
            .send(post(BOB, n, "x"), slot(), || 100 + n, 0.2, now())
            .unwrap()
        {
            Sent::New { hot: h, .. } => hot |= h,
            other => panic!("{other:?}"),
        }
    }
    assert!(hot);
    core.hot = true;
    let Sent::New { hot, .. } = core.send(post(BOB, 9, "x"), slot(), || 200, 0.2, now()).unwrap() else {
        panic!("new")
    };
    assert!(!hot, "a hot room is not promoted again");
}

#[test]
fn edits_and_deletes_follow_the_permission_matrix() {
    let mut core = room();
    send_new(&mut core, ALICE, 1, "owner's", 100);
    let edit = |text: &str| Edit {
        req: 3,
        room: "r".into(),
        id: 100,
        text: text.into(),
    };
    let refused = core.edit(BOB, edit("mine now"), slot(), now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::Forbidden);
    let p = core.edit(ALICE, edit("fixed"), slot(), now()).unwrap();
    assert!(
        matches!(decode(&p.event.frame), Message::MessageEdited(e) if e.text == "fixed" && e.offset == 4)
    );
    let delete = Delete {
        req: 4,
        room: "r".into(),
        id: 100,
    };
    core.delete(ALICE, delete.clone(), slot(), now()).unwrap();
    assert!(core.recent[&100].deleted);
    let refused = core.delete(ALICE, delete, slot(), now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::NoSuchMessage);
}

#[test]
fn a_reaction_toggles_and_a_repeat_changes_nothing() {
    let mut core = room();
    send_new(&mut core, ALICE, 1, "hi", 100);
    let react = |add| React {
        req: 5,
        room: "r".into(),
        id: 100,
        emoji: "+1".into(),
        add,
    };
    assert!(matches!(
        core.react(BOB, react(true), slot(), now()),
        Ok(Effects::Publish(_))
    ));
    assert_eq!(core.recent[&100].reactions, [(BOB, "+1".to_owned())]);
    let offset = core.offset;
    assert!(matches!(
        core.react(BOB, react(true), slot(), now()),
        Ok(Effects::Reply(Message::Done(_)))
    ));
    assert_eq!(core.offset, offset, "nothing sequenced");
    // Refused for want of a queue place: the reaction is not taken back in memory.
    assert!(core.react(BOB, react(false), full(), now()).is_err());
    assert_eq!(core.recent[&100].reactions.len(), 1);
    assert!(matches!(
        core.react(BOB, react(false), slot(), now()),
        Ok(Effects::Publish(_))
    ));
    assert!(core.recent[&100].reactions.is_empty());
}

#[test]
fn joining_leaving_and_resuming() {
    let mut core = room();
    assert_eq!(core.joining(CAROL, None, 1, 0, 100), Ok(Joining::New));
    assert_eq!(
        core.joining(CAROL, None, 1, 2, 100).unwrap_err().0,
        ErrorCode::LimitReached
    );
    let p = core
        .admit(CAROL, "carol", Role::Member, Vec::new(), slot(), now())
        .unwrap();
    assert!(matches!(
        &p.event.ops[0],
        Op::Member {
            user: CAROL,
            role: Role::Member,
            ..
        }
    ));
    assert!(matches!(decode(&p.event.frame), Message::MemberJoined(j) if j.user == CAROL && j.offset == 3));
    assert_eq!(core.listed.members.load(Ordering::Relaxed), 3);
    let since = |offset| Some(Since { epoch: 1, offset });
    assert_eq!(
        core.joining(CAROL, since(2), 1, 0, 100),
        Ok(Joining::Again {
            role: Role::Member,
            resume: since(2).map(|s| Since { ..s })
        })
    );
    assert_eq!(
        core.joining(CAROL, since(2), 2, 0, 100),
        Ok(Joining::Again {
            role: Role::Member,
            resume: None
        }),
        "another epoch does not resume"
    );
    let p = core.leave(CAROL, 8, slot(), now()).unwrap();
    assert!(matches!(p.reply, Some(Message::Left(Left { req: 8, .. }))));
    assert!(matches!(decode(&p.event.frame), Message::MemberLeft(l) if l.user == CAROL));
    assert_eq!(core.role_of(CAROL), None);
    assert_eq!(core.listed.members.load(Ordering::Relaxed), 2);
    core.banned.insert(CAROL);
    assert_eq!(
        core.joining(CAROL, None, 1, 0, 100).unwrap_err().0,
        ErrorCode::Banned
    );
}

#[test]
fn roles_change_within_the_matrix_and_guests_stay_read_only() {
    let mut core = room();
    let set = |nick: &str, role| SetRole {
        req: 2,
        room: "r".into(),
        nick: nick.into(),
        role,
    };
    let refused = core.set_role(BOB, set("alice", Role::Member), |_| false, slot(), now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::Forbidden);
    let refused = core.set_role(ALICE, set("bob", Role::Moderator), |u| u == BOB, slot(), now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::Forbidden, "a guest");
    let p = core
        .set_role(ALICE, set("bob", Role::Moderator), |_| false, slot(), now())
        .unwrap();
    assert!(
        matches!(decode(&p.event.frame), Message::MemberUpdated(u) if u.user == BOB && u.role == Role::Moderator)
    );
    assert_eq!(core.role_of(BOB), Some(Role::Moderator));
}

#[test]
fn the_window_forgets_the_oldest_and_says_so() {
    let mut core = RoomCore::new("r".into(), RoomKind::Group, 10, 2, Arc::default());
    core.admit(BOB, "bob", Role::Member, Vec::new(), slot(), now())
        .unwrap();
    for n in 0..2 {
        send_new(&mut core, BOB, n, "x", 100 + n);
    }
    assert!(!core.listed.forgotten.load(Ordering::Acquire));
    let Sent::New { forgot, .. } = core.send(post(BOB, 2, "x"), slot(), || 102, 1e9, now()).unwrap() else {
        panic!("new")
    };
    assert!(forgot);
    assert!(core.listed.forgotten.load(Ordering::Acquire));
    assert!(
        !core.client_ids.contains_key(&(BOB, 0)),
        "its client id went with it"
    );
}

#[test]
fn a_ban_removes_the_member_and_keeps_it_out_once_sequenced() {
    let mut core = room();
    let ban = |action| Moderate {
        req: 6,
        room: "r".into(),
        nick: "bob".into(),
        action,
        secs: 0,
        reason: "spam".into(),
    };
    let refused = core.moderate(BOB, (ALICE, "alice"), ban(ModAction::Ban), slot(), now());
    assert_eq!(
        refused.unwrap_err().0,
        ErrorCode::Forbidden,
        "a member may not ban"
    );
    // Without a queue place nothing changes: the ban is not half-applied.
    assert!(core
        .moderate(ALICE, (BOB, "bob"), ban(ModAction::Ban), full(), now())
        .is_err());
    assert!(!core.banned.contains(&BOB) && core.role_of(BOB).is_some());
    let (p, removed) = core
        .moderate(ALICE, (BOB, "bob"), ban(ModAction::Ban), slot(), now())
        .unwrap();
    assert!(removed);
    assert!(matches!(
        &p.event.ops[0],
        Op::Sanction {
            user: BOB,
            kind: SanctionKind::Ban,
            ..
        }
    ));
    assert!(matches!(&p.event.ops[1], Op::RemoveMember { user: BOB, .. }));
    assert!(
        matches!(decode(&p.event.frame), Message::MemberModerated(e) if e.user == BOB && e.by == ALICE && e.reason == "spam")
    );
    assert!(core.banned.contains(&BOB) && core.role_of(BOB).is_none());
    assert_eq!(
        core.joining(BOB, None, 1, 0, 100).unwrap_err().0,
        ErrorCode::Banned
    );
    let refused = core.invite(ALICE, (BOB, "bob"), 9, slot(), now());
    assert_eq!(refused.unwrap_err().0, ErrorCode::Banned);
}

#[test]
fn a_timed_mute_ends_at_the_time_passed_in() {
    let mut core = room();
    let mute = Moderate {
        req: 6,
        room: "r".into(),
        nick: "bob".into(),
        action: ModAction::Mute,
        secs: 30,
        reason: String::new(),
    };
    let (_, removed) = core.moderate(ALICE, (BOB, "bob"), mute, slot(), now()).unwrap();
    assert!(!removed);
    assert_eq!(core.muted[&BOB], now().ms + 30_000);
    assert_eq!(
        core.check_muted(BOB, now().ms + 29_999).unwrap_err().0,
        ErrorCode::Muted
    );
    assert!(core.check_muted(BOB, now().ms + 30_000).is_ok());
}

#[test]
fn an_invitation_admits_once() {
    let mut core = room();
    let (effects, new) = core.invite(ALICE, (CAROL, "carol"), 9, slot(), now()).unwrap();
    assert!(new);
    let Effects::Publish(p) = effects else {
        panic!("published")
    };
    assert!(
        matches!(decode(&p.event.frame), Message::MemberJoined(j) if j.user == CAROL && j.role == Role::Member)
    );
    assert!(matches!(p.reply, Some(Message::Done(Done { req: 9 }))));
    let (effects, new) = core.invite(ALICE, (CAROL, "carol"), 10, slot(), now()).unwrap();
    assert!(!new && matches!(effects, Effects::Reply(Message::Done(Done { req: 10 }))));
}
