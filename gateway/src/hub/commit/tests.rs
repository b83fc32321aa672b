//! The committer against the real SQLite store: a refused item is refused alone.

use std::sync::Arc;

use bytes::Bytes;
use garou_protocol::RoomKind;
use parking_lot::Mutex;

use super::{Commit, Committer};
use crate::store::sqlite::SqliteStore;
use crate::store::{Changes, Messages, Op, Rooms, StoreError};

fn message(id: u64, offset: u64, client_id: u64) -> Vec<Op> {
    vec![
        Op::Message {
            id,
            room: "r".into(),
            offset,
            author: 1,
            nick: "ann".into(),
            ts_ms: offset,
            text: format!("m{id}"),
            client_id,
            attachment: None,
        },
        Op::Event {
            room: "r".into(),
            offset,
            ts_ms: offset,
            frame: Bytes::from(format!("e{offset}")),
        },
    ]
}

/// Three messages in one batch, the middle one re-using a stored client id: the other two
/// commit and run their continuations in order; the middle one's refusal runs in its place,
/// and the stand-in it returns fills its offset.
#[tokio::test]
async fn a_batch_with_one_bad_item_commits_the_others_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let mut setup = vec![
        Op::User {
            id: 1,
            nick: "ann".into(),
        },
        Op::Room {
            name: "r".into(),
            kind: RoomKind::Group,
            epoch: 1,
        },
    ];
    setup.extend(message(10, 1, 7));
    store.apply(&setup).await.unwrap();

    let (commits, run) = Committer::new(store.clone(), Default::default());
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let note = |what: &str| {
        let (log, what) = (log.clone(), what.to_owned());
        Box::new(move || log.lock().push(what)) as super::Then
    };
    // Queued before the committer runs: one batch.
    for (id, offset, client_id) in [(11, 2, 8), (12, 3, 7), (13, 4, 9)] {
        let log = log.clone();
        let refused: super::Refused = Box::new(move |e: &StoreError| {
            log.lock().push(format!("refused {id}: {}", e.kind()));
            let log = log.clone();
            Some(Commit {
                ops: vec![Op::Event {
                    room: "r".into(),
                    offset,
                    ts_ms: offset,
                    frame: Bytes::from_static(b"stand-in"),
                }],
                then: Some(Box::new(move || log.lock().push(format!("stand-in {offset}")))),
                refused: None,
            })
        });
        commits.reserve().unwrap().send(Commit {
            ops: message(id, offset, client_id),
            then: Some(note(&format!("stored {id}"))),
            refused: Some(refused),
        });
    }
    tokio::spawn(run);
    commits.flush().await;

    assert_eq!(
        *log.lock(),
        ["stored 11", "refused 12: conflict", "stand-in 3", "stored 13"]
    );
    assert!(commits.healthy(), "a refusal is not an outage");
    let rows = store.messages("r", None, Some(0), 100).await.unwrap();
    let ids: Vec<u64> = rows.iter().map(|m| m.id).collect();
    assert_eq!(ids, [10, 11, 13]);
    let events = store.events("r", 0, 10).await.unwrap();
    assert_eq!(events.len(), 4, "offsets 1-4, the refused one filled");
    assert_eq!(events[2], Bytes::from_static(b"stand-in"));
    assert_eq!(store.rooms().await.unwrap()[0].last_offset, 4);
    assert_eq!(store.client_message("r", 1, 7).await.unwrap(), Some((10, 1)));
    assert_eq!(store.client_message("r", 1, 9).await.unwrap(), Some((13, 4)));
    assert_eq!(store.client_message("r", 1, 5).await.unwrap(), None);
}

/// An item without a refusal continuation is dropped, never acked as if stored; the
/// committer goes on.
#[tokio::test]
async fn a_refused_item_without_a_handler_is_dropped_and_the_committer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    store
        .apply(&[Op::Room {
            name: "r".into(),
            kind: RoomKind::Group,
            epoch: 1,
        }])
        .await
        .unwrap();
    store.apply(&message(1, 1, 1)).await.unwrap();
    let (commits, run) = Committer::new(store.clone(), Default::default());
    tokio::spawn(run);
    let acked = Arc::new(Mutex::new(Vec::new()));
    for (id, offset) in [(1, 2), (2, 3)] {
        let acked = acked.clone();
        // id 1 exists: a primary key conflict.
        commits
            .push(
                message(id, offset, 100 + id),
                Some(Box::new(move || acked.lock().push(id))),
            )
            .unwrap();
        commits.flush().await;
    }
    assert_eq!(*acked.lock(), [2]);
    assert!(commits.healthy());
}
