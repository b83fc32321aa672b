//! What the store hands back: rooms and recent messages loaded at start, uploads, and the
//! retention rule it applies.

use garou_protocol::{MsgId, Offset, Role, RoomKind, UserId};

use super::SanctionKind;

/// A room as loaded at start.
#[derive(Debug, Clone)]
pub struct RoomRecord {
    pub name: String,
    pub kind: RoomKind,
    pub epoch: u64,
    pub last_offset: Offset,
    pub first_offset: Offset,
    pub members: Vec<(UserId, Role)>,
    pub title: String,
    /// Bans and mutes: (user, kind, until_ms with 0 = no end).
    pub sanctions: Vec<(UserId, SanctionKind, u64)>,
}

/// A recent message as loaded at start (for edits, reactions, receipts, idempotency).
#[derive(Debug, Clone)]
pub struct RecentRecord {
    pub id: MsgId,
    pub offset: Offset,
    pub author: UserId,
    pub client_id: u64,
    pub deleted: bool,
    pub reactions: Vec<(UserId, String)>,
}

/// An upload's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub owner: UserId,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: Vec<u8>,
    pub received: u64,
    pub complete: bool,
    /// The room of the first message that referenced it (download needs membership).
    pub room: Option<String>,
}

/// Retention rule of one room kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Keep at most this many messages (0: no limit).
    pub max_messages: u64,
    /// Drop messages older than this (0: no limit).
    pub max_age_secs: u64,
}
