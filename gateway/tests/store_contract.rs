//! The store contract: what every store does, checked against SQLite always and against
//! PostgreSQL when `GAROU_TEST_PG` names a server (each test on a fresh database of its own).
//! A gateway must behave the same on either, so both run exactly the same cases.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::pg::TestDb;
use garou_gateway::config::{SqliteSynchronous, StoreLocation};
use garou_gateway::store::{self, Op, Retention, SanctionKind, Store, UploadRecord};
use garou_protocol::{Role, RoomKind};

/// Where a case's store lives; [`Backend::open`] may be called again to "restart".
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

impl Backend {
    fn location(&self) -> StoreLocation {
        match self {
            Backend::Sqlite(dir) => StoreLocation::Sqlite(dir.path().to_owned()),
            Backend::Postgres(db) => StoreLocation::Postgres(db.url.clone()),
        }
    }

    /// Open the store the way the gateway does.
    async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.location(), SqliteSynchronous::Full)
            .await
            .expect("store opens")
    }

    async fn finish(self) {
        if let Backend::Postgres(db) = self {
            db.drop().await;
        }
    }
}

/// Each case as two tests: `sqlite::case` and `postgres::case`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let b = super::Backend::Sqlite(tempfile::tempdir().unwrap());
                    super::$case(&b).await;
                    b.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = super::TestDb::create().await else { return };
                    let b = super::Backend::Postgres(db);
                    super::$case(&b).await;
                    b.finish().await;
                }
            )*
        }
    };
}

contract!(
    every_op_kind_is_loaded_back_after_a_restart,
    a_duplicate_client_id_is_a_conflict_that_spares_the_rest,
    history_pages_and_event_ranges,
    retention_trims_by_count_and_by_age,
    uploads_begin_resume_progress_attach_and_count,
    delete_room_removes_only_that_room,
    client_text_is_kept_as_sent,
);

fn message(id: u64, room: &str, offset: u64, author: u64, client_id: u64) -> Op {
    Op::Message {
        id,
        room: room.into(),
        offset,
        author,
        nick: format!("u{author}"),
        ts_ms: offset * 1000,
        text: format!("{room}{offset}"),
        client_id,
        attachment: None,
    }
}

fn event(room: &str, offset: u64, ts_ms: u64) -> Op {
    Op::Event {
        room: room.into(),
        offset,
        ts_ms,
        frame: Bytes::from(format!("{room}/{offset}")),
    }
}

fn room(name: &str, epoch: u64) -> Op {
    Op::Room {
        name: name.into(),
        kind: RoomKind::Group,
        epoch,
    }
}

/// `n` messages with their events in `room`, ids from `first_id`, author 1.
fn messages(room: &str, first_id: u64, n: u64) -> Vec<Op> {
    (1..=n)
        .flat_map(|o| [message(first_id + o - 1, room, o, 1, o), event(room, o, o * 1000)])
        .collect()
}

async fn every_op_kind_is_loaded_back_after_a_restart(b: &Backend) {
    {
        let s = b.open().await;
        s.apply(&[
            Op::User {
                id: 1,
                nick: "ann".into(),
            },
            Op::User {
                id: 2,
                nick: "bob".into(),
            },
            Op::User {
                id: 3,
                nick: "cy".into(),
            },
            // A rename keeps the id.
            Op::User {
                id: 2,
                nick: "bobby".into(),
            },
            Op::Subject {
                subject: "sub-ann".into(),
                user: 1,
            },
            Op::Subject {
                subject: "sub-bob".into(),
                user: 2,
            },
            // A user's new subject replaces the old one.
            Op::Subject {
                subject: "sub-bob2".into(),
                user: 2,
            },
            Op::Room {
                name: "r".into(),
                kind: RoomKind::Channel,
                epoch: 77,
            },
            // A room that exists keeps its epoch.
            Op::Room {
                name: "r".into(),
                kind: RoomKind::Group,
                epoch: 99,
            },
            Op::Room {
                name: "d".into(),
                kind: RoomKind::Direct,
                epoch: 5,
            },
            Op::Member {
                room: "r".into(),
                user: 1,
                role: Role::Owner,
            },
            Op::Member {
                room: "r".into(),
                user: 2,
                role: Role::Member,
            },
            Op::Member {
                room: "r".into(),
                user: 3,
                role: Role::Member,
            },
            Op::Member {
                room: "r".into(),
                user: 2,
                role: Role::Moderator,
            },
            Op::RemoveMember {
                room: "r".into(),
                user: 3,
            },
            Op::RoomTitle {
                room: "r".into(),
                title: "The room".into(),
            },
            Op::Sanction {
                room: "r".into(),
                user: 3,
                kind: SanctionKind::Ban,
                until_ms: Some(0),
            },
            Op::Sanction {
                room: "r".into(),
                user: 2,
                kind: SanctionKind::Mute,
                until_ms: Some(5),
            },
            Op::Sanction {
                room: "r".into(),
                user: 2,
                kind: SanctionKind::Mute,
                until_ms: Some(9),
            },
            Op::Sanction {
                room: "r".into(),
                user: 1,
                kind: SanctionKind::Mute,
                until_ms: Some(1),
            },
            Op::Sanction {
                room: "r".into(),
                user: 1,
                kind: SanctionKind::Mute,
                until_ms: None,
            },
        ])
        .await
        .unwrap();
        let mut ops = messages("r", 100, 4);
        ops.extend([
            Op::Message {
                id: 200,
                room: "r".into(),
                offset: 5,
                author: 2,
                nick: "bobby".into(),
                ts_ms: 5000,
                text: "with a file".into(),
                client_id: 1,
                attachment: Some("up1".into()),
            },
            event("r", 5, 5000),
            Op::Edit {
                id: 100,
                text: "edited".into(),
            },
            Op::Delete { id: 101 },
            Op::React {
                id: 100,
                user: 2,
                emoji: "👍".into(),
                add: true,
            },
            Op::React {
                id: 100,
                user: 1,
                emoji: "👍".into(),
                add: true,
            },
            Op::React {
                id: 100,
                user: 2,
                emoji: "🎉".into(),
                add: true,
            },
            Op::React {
                id: 100,
                user: 2,
                emoji: "🎉".into(),
                add: true,
            },
            Op::React {
                id: 100,
                user: 1,
                emoji: "👍".into(),
                add: false,
            },
            Op::Receipt {
                room: "r".into(),
                user: 2,
                offset: 2,
                read: true,
            },
            Op::Receipt {
                room: "r".into(),
                user: 2,
                offset: 1,
                read: true,
            },
            Op::Receipt {
                room: "r".into(),
                user: 3,
                offset: 4,
                read: false,
            },
        ]);
        s.apply(&ops).await.unwrap();
    }
    // Restart: everything comes back from the store alone.
    let s = b.open().await;
    let mut users = s.users().await.unwrap();
    users.sort();
    assert_eq!(users, [(1, "ann".into()), (2, "bobby".into()), (3, "cy".into())]);
    let mut subjects = s.subjects().await.unwrap();
    subjects.sort();
    assert_eq!(subjects, [("sub-ann".into(), 1), ("sub-bob2".into(), 2)]);
    assert_eq!(s.max_id().await.unwrap(), 200);

    let mut rooms = s.rooms().await.unwrap();
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    let (d, r) = (&rooms[0], &mut rooms[1].clone());
    assert_eq!(
        (d.name.as_str(), d.kind, d.epoch, d.last_offset),
        ("d", RoomKind::Direct, 5, 0)
    );
    assert_eq!(
        (r.kind, r.epoch, r.last_offset, r.first_offset),
        (RoomKind::Channel, 77, 5, 1)
    );
    assert_eq!(r.title, "The room");
    r.members.sort();
    assert_eq!(r.members, [(1, Role::Owner), (2, Role::Moderator)]);
    r.sanctions.sort_by_key(|(u, _, _)| *u);
    assert_eq!(
        r.sanctions,
        [(2, SanctionKind::Mute, 9), (3, SanctionKind::Ban, 0)]
    );

    assert_eq!(s.read_marks().await.unwrap(), [("r".into(), 2, 2)]);
    // Unread for bob: messages after offset 2 by others, not deleted: 3 and 4 (5 is his).
    assert_eq!(s.unread("r", 2).await.unwrap(), 2);
    // Ann has no read mark: everything not hers and not deleted.
    assert_eq!(s.unread("r", 1).await.unwrap(), 1);

    let recent = s.recent("r", 3).await.unwrap();
    assert_eq!(recent.iter().map(|m| m.offset).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!((recent[2].id, recent[2].author, recent[2].client_id), (200, 2, 1));
    let all = s.recent("r", 100).await.unwrap();
    assert!(all[1].deleted && !all[0].deleted);
    let mut reactions = all[0].reactions.clone();
    reactions.sort();
    assert_eq!(reactions, [(2, "🎉".into()), (2, "👍".into())]);

    let page = s.messages("r", None, None, 100).await.unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(
        (page[0].text.as_str(), page[0].edited, page[0].deleted),
        ("edited", true, false)
    );
    assert_eq!(page[0].reactions, [("🎉".into(), 1), ("👍".into(), 1)]);
    assert_eq!((page[1].text.as_str(), page[1].deleted), ("", true));
    assert_eq!(page[4].attachment.as_deref(), Some("up1"));
    assert_eq!((page[4].nick.as_str(), page[4].ts_ms), ("bobby", 5000));
    assert_eq!(s.client_message("r", 2, 1).await.unwrap(), Some((200, 5)));
    assert_eq!(s.client_message("r", 1, 1).await.unwrap(), Some((100, 1)));
    assert_eq!(s.client_message("r", 3, 1).await.unwrap(), None);
    assert_eq!(s.events("r", 4, 5).await.unwrap(), [Bytes::from("r/5")]);
}

async fn a_duplicate_client_id_is_a_conflict_that_spares_the_rest(b: &Backend) {
    let s = b.open().await;
    s.apply(&[room("r", 1), message(1, "r", 1, 1, 7), event("r", 1, 1)])
        .await
        .unwrap();
    // The same author and client id again, in a batch with changes that are fine.
    let batch = [
        message(2, "r", 2, 2, 7),
        event("r", 2, 2),
        message(3, "r", 3, 1, 7),
        event("r", 3, 3),
        message(4, "r", 4, 1, 8),
        event("r", 4, 4),
    ];
    let e = s.apply(&batch).await.unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
    // Nothing of a refused batch is applied.
    assert_eq!(s.rooms().await.unwrap()[0].last_offset, 1);
    assert_eq!(s.messages("r", None, None, 10).await.unwrap().len(), 1);
    // Item by item (what the committer does next), only the duplicate is refused.
    let mut refused = Vec::new();
    for pair in batch.chunks(2) {
        if let Err(e) = s.apply(pair).await {
            assert!(e.is_conflict(), "{e:?}");
            refused.push(pair[0].clone());
        }
    }
    assert!(
        matches!(refused.as_slice(), [Op::Message { id: 3, .. }]),
        "{refused:?}"
    );
    let ids: Vec<u64> = s
        .messages("r", None, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [1, 2, 4]);
    assert_eq!(s.client_message("r", 1, 7).await.unwrap(), Some((1, 1)));
    assert_eq!(s.client_message("r", 2, 7).await.unwrap(), Some((2, 2)));
    assert_eq!(s.client_message("r", 1, 8).await.unwrap(), Some((4, 4)));
    // A taken id or offset is a conflict too.
    assert!(s
        .apply(&[message(4, "r", 9, 1, 99)])
        .await
        .unwrap_err()
        .is_conflict());
    assert!(s
        .apply(&[message(9, "r", 4, 1, 99)])
        .await
        .unwrap_err()
        .is_conflict());
    assert!(s.apply(&[event("r", 4, 4)]).await.unwrap_err().is_conflict());
    // A nick another user has.
    s.apply(&[Op::User {
        id: 1,
        nick: "ann".into(),
    }])
    .await
    .unwrap();
    let e = s
        .apply(&[Op::User {
            id: 2,
            nick: "ann".into(),
        }])
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
}

async fn history_pages_and_event_ranges(b: &Backend) {
    let s = b.open().await;
    let mut ops = vec![room("r", 1), room("other", 1)];
    ops.extend(messages("r", 1, 30));
    ops.extend(messages("other", 1000, 3));
    // A batch larger than one multi-row INSERT.
    ops.extend((31..=300).flat_map(|o| [message(o, "r", o, 1, o), event("r", o, o * 1000)]));
    s.apply(&ops).await.unwrap();
    let offsets =
        |page: Vec<garou_protocol::StoredMessage>| page.iter().map(|m| m.offset).collect::<Vec<_>>();
    // The newest page, oldest first.
    assert_eq!(
        offsets(s.messages("r", None, None, 3).await.unwrap()),
        [298, 299, 300]
    );
    // Before an offset: the newest ones below it.
    assert_eq!(
        offsets(s.messages("r", Some(10), None, 3).await.unwrap()),
        [7, 8, 9]
    );
    // After an offset: the oldest ones above it.
    assert_eq!(
        offsets(s.messages("r", None, Some(10), 3).await.unwrap()),
        [11, 12, 13]
    );
    assert_eq!(offsets(s.messages("r", None, Some(0), 2).await.unwrap()), [1, 2]);
    // Both: between them, from the oldest.
    assert_eq!(
        offsets(s.messages("r", Some(14), Some(10), 100).await.unwrap()),
        [11, 12, 13]
    );
    assert!(s.messages("r", Some(1), None, 10).await.unwrap().is_empty());
    assert!(s.messages("r", None, Some(300), 10).await.unwrap().is_empty());
    assert!(s.messages("nowhere", None, None, 10).await.unwrap().is_empty());
    // The limit is capped at 1000 and at least 1.
    assert_eq!(s.messages("r", None, Some(0), 0).await.unwrap().len(), 1);
    assert_eq!(s.messages("r", None, Some(0), 5000).await.unwrap().len(), 300);
    let page = s.messages("r", None, Some(0), 1000).await.unwrap();
    assert!(page.windows(2).all(|w| w[0].offset + 1 == w[1].offset));
    assert_eq!(page[299].text, "r300");
    // Events: after < offset <= upto, in order.
    let events = s.events("r", 10, 13).await.unwrap();
    assert_eq!(
        events,
        [Bytes::from("r/11"), Bytes::from("r/12"), Bytes::from("r/13")]
    );
    assert_eq!(s.events("r", 0, 1000).await.unwrap().len(), 300);
    assert!(s.events("r", 300, 400).await.unwrap().is_empty());
    assert_eq!(s.events("other", 0, 10).await.unwrap().len(), 3);
    let rooms = s.rooms().await.unwrap();
    let last = |n: &str| rooms.iter().find(|r| r.name == n).unwrap().last_offset;
    assert_eq!((last("r"), last("other")), (300, 3));
    assert_eq!(s.max_id().await.unwrap(), 1002);
}

async fn retention_trims_by_count_and_by_age(b: &Backend) {
    let s = b.open().await;
    let mut ops = vec![room("r", 1), room("old", 1)];
    ops.extend(messages("r", 1, 30));
    ops.extend(messages("old", 100, 10));
    ops.push(Op::React {
        id: 1,
        user: 1,
        emoji: "x".into(),
        add: true,
    });
    ops.push(Op::React {
        id: 25,
        user: 1,
        emoji: "x".into(),
        add: true,
    });
    s.apply(&ops).await.unwrap();
    let count = Retention {
        max_messages: 10,
        max_age_secs: 0,
    };
    assert_eq!(s.trim("r", count, 0).await.unwrap(), 21);
    assert!(s.events("r", 0, 20).await.unwrap().is_empty());
    assert_eq!(s.events("r", 0, 30).await.unwrap().len(), 10);
    let left = s.messages("r", None, Some(0), 100).await.unwrap();
    assert_eq!((left.len(), left[0].offset), (10, 21));
    assert_eq!(left[4].reactions, [("x".into(), 1)]);
    // Again: nothing more to do, the first offset stays.
    assert_eq!(s.trim("r", count, 0).await.unwrap(), 21);
    // No rule: nothing goes.
    assert_eq!(s.trim("r", Retention::default(), 0).await.unwrap(), 21);
    // By age: events are 1 s apart (ts = offset * 1000); older than 3 s at t = 10 s.
    let age = Retention {
        max_messages: 0,
        max_age_secs: 3,
    };
    assert_eq!(s.trim("old", age, 10_000).await.unwrap(), 7);
    assert_eq!(s.messages("old", None, Some(0), 100).await.unwrap()[0].offset, 7);
    // The first offset is kept with the room.
    let rooms = s.rooms().await.unwrap();
    let first = |n: &str| rooms.iter().find(|r| r.name == n).unwrap().first_offset;
    assert_eq!((first("r"), first("old")), (21, 7));
    // An unknown room has nothing to trim.
    assert_eq!(s.trim("nowhere", count, 0).await.unwrap(), 1);
}

async fn uploads_begin_resume_progress_attach_and_count(b: &Backend) {
    let s = b.open().await;
    let new = |id: &str, owner: u64, name: &str, size: u64, sha: u8| UploadRecord {
        id: id.into(),
        owner,
        name: name.into(),
        content_type: "text/plain".into(),
        size,
        sha256: vec![sha; 32],
        received: 99,
        complete: true,
        room: Some("ignored".into()),
    };
    let a = s.upload_begin(new("a", 1, "f.txt", 100, 1)).await.unwrap();
    assert_eq!((a.received, a.complete, a.room.clone()), (0, false, None));
    assert_eq!(s.upload("a").await.unwrap(), Some(a.clone()));
    s.upload_progress("a", 40, false).await.unwrap();
    // The same file again (owner, hash, size, name): the upload to resume.
    let again = s.upload_begin(new("a2", 1, "f.txt", 100, 1)).await.unwrap();
    assert_eq!((again.id.as_str(), again.received), ("a", 40));
    assert_eq!(s.upload("a2").await.unwrap(), None);
    // Another owner, name or hash: a new upload.
    assert_eq!(
        s.upload_begin(new("b", 2, "f.txt", 100, 1)).await.unwrap().id,
        "b"
    );
    assert_eq!(
        s.upload_begin(new("c", 1, "g.txt", 100, 1)).await.unwrap().id,
        "c"
    );
    assert_eq!(
        s.upload_begin(new("d", 1, "f.txt", 100, 2)).await.unwrap().id,
        "d"
    );
    assert_eq!(s.upload_usage(1).await.unwrap(), (300, 400));
    assert_eq!(s.upload_usage(3).await.unwrap(), (0, 400));
    s.upload_progress("a", 100, true).await.unwrap();
    // The first room that references it stays.
    s.upload_attach("a", "r1").await.unwrap();
    s.upload_attach("a", "r2").await.unwrap();
    let a = s.upload("a").await.unwrap().unwrap();
    assert_eq!(
        (a.received, a.complete, a.room.as_deref()),
        (100, true, Some("r1"))
    );
    assert_eq!(a.sha256, vec![1u8; 32]);
    s.upload_delete("d").await.unwrap();
    assert_eq!(s.upload("d").await.unwrap(), None);
    assert_eq!(s.upload_usage(1).await.unwrap(), (200, 300));
    // A taken id is a conflict.
    assert!(s
        .upload_begin(new("b", 5, "h", 1, 9))
        .await
        .unwrap_err()
        .is_conflict());
    // Kept across a restart.
    drop(s);
    let s = b.open().await;
    assert_eq!(s.upload("a").await.unwrap(), Some(a));
}

async fn delete_room_removes_only_that_room(b: &Backend) {
    let s = b.open().await;
    let mut ops = vec![Op::User {
        id: 1,
        nick: "ann".into(),
    }];
    for (n, name) in ["gone", "kept", "op"].into_iter().enumerate() {
        let id = 10 + n as u64;
        ops.extend([
            room(name, 1),
            Op::Member {
                room: name.into(),
                user: 1,
                role: Role::Owner,
            },
            Op::Sanction {
                room: name.into(),
                user: 2,
                kind: SanctionKind::Ban,
                until_ms: Some(0),
            },
            event(name, 1, 1),
            message(id, name, 1, 1, 1),
            Op::React {
                id,
                user: 1,
                emoji: "x".into(),
                add: true,
            },
            Op::Receipt {
                room: name.into(),
                user: 1,
                offset: 1,
                read: true,
            },
        ]);
    }
    s.apply(&ops).await.unwrap();
    s.delete_room("gone").await.unwrap();
    // As an op, ordered with other changes of its batch: the room goes, then comes back empty.
    s.apply(&[Op::DeleteRoom { room: "op".into() }, room("op", 2)])
        .await
        .unwrap();
    let mut rooms = s.rooms().await.unwrap();
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        rooms.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["kept", "op"]
    );
    assert_eq!((rooms[1].epoch, rooms[1].last_offset), (2, 0));
    assert!(rooms[1].members.is_empty() && rooms[1].sanctions.is_empty());
    assert_eq!((rooms[0].members.len(), rooms[0].sanctions.len()), (1, 1));
    for gone in ["gone", "op"] {
        assert!(s.messages(gone, None, None, 10).await.unwrap().is_empty());
        assert!(s.events(gone, 0, 10).await.unwrap().is_empty());
        assert_eq!(s.client_message(gone, 1, 1).await.unwrap(), None);
    }
    assert_eq!(
        s.messages("kept", None, None, 10).await.unwrap()[0]
            .reactions
            .len(),
        1
    );
    assert_eq!(s.events("kept", 0, 10).await.unwrap().len(), 1);
    assert_eq!(s.read_marks().await.unwrap(), [("kept".to_owned(), 1, 1)]);
    // The highest id still stored.
    assert_eq!(s.max_id().await.unwrap(), 11);
}

/// Message texts and emoji come from clients: whatever valid UTF-8 they send is stored and
/// read back unchanged, a NUL character included (PostgreSQL's TEXT cannot hold one), and
/// reactions are listed in code point order on every store.
async fn client_text_is_kept_as_sent(b: &Backend) {
    let s = b.open().await;
    let texts = ["a\0b", "\0", "é ☃ 🎉 \u{10FFFF}", "'; DROP TABLE messages; --"];
    let mut ops = vec![room("r", 1)];
    for (n, text) in texts.iter().enumerate() {
        let o = n as u64 + 1;
        ops.push(Op::Message {
            id: o,
            room: "r".into(),
            offset: o,
            author: 1,
            nick: "ann".into(),
            ts_ms: o,
            text: text.to_string(),
            client_id: o,
            attachment: None,
        });
    }
    for (user, emoji) in [(1, "\0"), (2, "z"), (3, "é"), (4, "A"), (5, "🎉"), (6, "☃")] {
        ops.push(Op::React {
            id: 1,
            user,
            emoji: emoji.into(),
            add: true,
        });
    }
    ops.push(Op::Edit {
        id: 2,
        text: "edited\0".into(),
    });
    s.apply(&ops).await.unwrap();
    let page = s.messages("r", None, None, 10).await.unwrap();
    let got: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(got, [texts[0], "edited\0", texts[2], texts[3]]);
    let emoji: Vec<&str> = page[0].reactions.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(emoji, ["\0", "A", "z", "é", "☃", "🎉"]);
    let mut recent = s.recent("r", 10).await.unwrap()[0].reactions.clone();
    recent.sort();
    assert_eq!(recent[0], (1, "\0".to_string()));
    // Removing a reaction finds it by the same bytes.
    s.apply(&[Op::React {
        id: 1,
        user: 1,
        emoji: "\0".into(),
        add: false,
    }])
    .await
    .unwrap();
    assert_eq!(
        s.messages("r", None, None, 10).await.unwrap()[0].reactions.len(),
        5
    );
}
