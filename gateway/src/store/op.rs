//! [`Op`]: one durable change, applied in batches by [`super::Changes::apply`].

use bytes::Bytes;
use garou_protocol::{MsgId, Offset, Role, RoomKind, UserId};

/// One change, applied with others of its batch in a single transaction.
#[derive(Debug, Clone)]
pub enum Op {
    User {
        id: UserId,
        nick: String,
    },
    Room {
        name: String,
        kind: RoomKind,
        epoch: u64,
    },
    Member {
        room: String,
        user: UserId,
        role: Role,
    },
    RemoveMember {
        room: String,
        user: UserId,
    },
    /// A sequenced room event, stored as the frame clients receive.
    Event {
        room: String,
        offset: Offset,
        ts_ms: u64,
        frame: Bytes,
    },
    Message {
        id: MsgId,
        room: String,
        offset: Offset,
        author: UserId,
        nick: String,
        ts_ms: u64,
        text: String,
        client_id: u64,
        attachment: Option<String>,
    },
    Edit {
        id: MsgId,
        text: String,
    },
    Delete {
        id: MsgId,
    },
    React {
        id: MsgId,
        user: UserId,
        emoji: String,
        add: bool,
    },
    Receipt {
        room: String,
        user: UserId,
        offset: Offset,
        read: bool,
    },
    /// Forget a room and everything in it (see [`super::Rooms::delete_room`]); as an op it is
    /// ordered with the room's other changes by the committer.
    DeleteRoom {
        room: String,
    },
    /// A token user's subject (`sub` claim).
    Subject {
        subject: String,
        user: UserId,
    },
    RoomTitle {
        room: String,
        title: String,
    },
    /// Set (`until_ms`: end, 0 = none) or lift (`None`) a ban or mute.
    Sanction {
        room: String,
        user: UserId,
        kind: SanctionKind,
        until_ms: Option<u64>,
    },
}

/// What a moderator imposed on a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanctionKind {
    Ban,
    Mute,
}
