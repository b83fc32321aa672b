//! What the JavaScript side sees: the event and reply objects, and the mapping from the
//! protocol session's [`Event`]s onto them.
//!
//! Plain Rust with serde, so it compiles and is unit-tested natively; the wasm layer only
//! hands these values to `serde-wasm-bindgen`. Every `u64` (user, message, offset,
//! timestamp) becomes an `f64`: a plain JS number, exact up to 2^53.

use garou_protocol::{
    ErrorCode, Event, Failure, JoinInfo, MemberInfo, Message, ModAction, Offset, Reply, ReqId, Role,
    RoomInfo, RoomKind, StoredMessage,
};
use serde::{Deserialize, Serialize};

/// A room as listed to JS: `{ name, kind, members, title }`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsRoomInfo {
    pub name: String,
    pub kind: &'static str,
    pub members: u32,
    pub title: String,
}

/// A member as listed to JS: `{ user, nick, role, online }`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsMemberInfo {
    pub user: f64,
    pub nick: String,
    pub role: &'static str,
    pub online: bool,
}

/// The value a `join` / `createRoom` promise resolves to.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsJoinInfo {
    pub room: JsRoomInfo,
    pub role: &'static str,
    pub offset: f64,
    pub members: Vec<JsMemberInfo>,
    /// The room's epoch: offsets compare only within one epoch.
    pub epoch: f64,
    /// Whether the server replayed what was missed since a resume point (always false
    /// for a plain `join`).
    pub resumed: bool,
    /// Messages after the user's read mark.
    pub unread: f64,
}

/// A reaction count on a stored message: `{ emoji, count }`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsReaction {
    pub emoji: String,
    pub count: u32,
}

/// A message of a history page (its latest text; edits and deletion applied).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsStoredMessage {
    pub offset: f64,
    pub id: f64,
    pub author: f64,
    pub nick: String,
    pub ts: f64,
    pub text: String,
    pub edited: bool,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<String>,
    pub reactions: Vec<JsReaction>,
}

/// The value a `history` promise resolves to: `{ room, epoch, messages }`, oldest first.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsHistoryPage {
    pub room: String,
    pub epoch: f64,
    pub messages: Vec<JsStoredMessage>,
}

/// Upload replies (`{ upload, offset }` / `{ upload, url }`), for the upload API to come.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsUpload {
    pub upload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The value a `send` / `direct` promise resolves to, once the server acked the message.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct JsSent {
    pub room: String,
    pub id: f64,
    pub offset: f64,
}

/// What a request's promise resolves to. `Unit` serializes as `undefined`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum JsReply {
    Unit,
    Nick(String),
    Joined(JsJoinInfo),
    Rooms(Vec<JsRoomInfo>),
    Users(Vec<JsMemberInfo>),
    Sent(JsSent),
    History(JsHistoryPage),
    Upload(JsUpload),
}

/// Which transport a client runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    WebTransport,
    WebSocket,
}

impl TransportKind {
    /// `"webtransport"` or `"websocket"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::WebTransport => "webtransport",
            TransportKind::WebSocket => "websocket",
        }
    }
}

/// An event object handed to the `on()` handler (`GarouEvent` in the TypeScript types).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JsEvent {
    Message {
        room: String,
        offset: f64,
        id: f64,
        author: f64,
        nick: String,
        ts: f64,
        text: String,
        /// An upload id, when the message carries an attachment.
        #[serde(skip_serializing_if = "Option::is_none")]
        attachment: Option<String>,
    },
    Edit {
        room: String,
        offset: f64,
        id: f64,
        by: f64,
        ts: f64,
        text: String,
    },
    Delete {
        room: String,
        offset: f64,
        id: f64,
        by: f64,
    },
    Reaction {
        room: String,
        offset: f64,
        id: f64,
        user: f64,
        nick: String,
        emoji: String,
        added: bool,
    },
    MemberJoined {
        room: String,
        offset: f64,
        user: f64,
        nick: String,
        role: &'static str,
    },
    MemberUpdated {
        room: String,
        offset: f64,
        user: f64,
        nick: String,
        role: &'static str,
    },
    MemberLeft {
        room: String,
        offset: f64,
        user: f64,
        nick: String,
    },
    /// Kick, ban, unban, mute, unmute; `until` ends a mute (ms, 0 = until unmuted).
    MemberModerated {
        room: String,
        offset: f64,
        user: f64,
        nick: String,
        action: &'static str,
        by: f64,
        until: f64,
        reason: String,
    },
    RoomRenamed {
        room: String,
        offset: f64,
        title: String,
        by: f64,
    },
    RoomDeleted {
        room: String,
        offset: f64,
        by: f64,
    },
    Typing {
        room: String,
        user: f64,
        nick: String,
    },
    Presence {
        user: f64,
        nick: String,
        online: bool,
    },
    Receipt {
        room: String,
        id: f64,
        user: f64,
        nick: String,
        read: bool,
    },
    Promoted {
        room: String,
    },
    Demoted {
        room: String,
    },
    Transport {
        transport: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        fallback_reason: Option<String>,
    },
    Welcome {
        message: String,
    },
    Error {
        code: String,
        message: String,
    },
    Closed {
        reason: String,
    },
    /// A connection attempt starts (the first one, or a reconnect).
    Connecting {
        attempt: u32,
        url: String,
    },
    /// The session is ready (again): `reconnected` after a lost connection.
    Connected {
        transport: &'static str,
        url: String,
        attempt: u32,
        reconnected: bool,
    },
    /// The connection was lost (or closed): `willReconnect` unless it was terminal.
    Disconnected {
        reason: JsErrorInfo,
        #[serde(rename = "willReconnect")]
        will_reconnect: bool,
    },
    /// The next attempt starts after `delayMs`.
    Reconnecting {
        attempt: u32,
        #[serde(rename = "delayMs")]
        delay_ms: u32,
        #[serde(rename = "lastError")]
        last_error: JsErrorInfo,
    },
    /// A room was joined again after a reconnect. `resumed`: the server replayed what was
    /// missed (nothing lost); else reload the room's history. `error` if the rejoin failed.
    Rejoined {
        room: String,
        resumed: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<JsErrorInfo>,
    },
}

/// A typed error as events carry it (`GarouErrorInfo` in the TypeScript types).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JsErrorInfo {
    pub code: String,
    pub message: String,
}

impl JsErrorInfo {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> JsErrorInfo {
        JsErrorInfo {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What the driver does with one session [`Event`].
#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    /// The handshake completed: resolve `connect()`.
    Ready { user: u64, nick: String },
    /// Settle the promise of request `req`.
    Reply {
        req: ReqId,
        result: Result<JsReply, Failure>,
    },
    /// Hand this to the event handler.
    Event(JsEvent),
    /// Nothing for JS (events of features this client does not use).
    Ignore,
}

/// The name of an error code, as used in `error` events and rejection messages ("Forbidden").
pub fn code_name(code: ErrorCode) -> String {
    format!("{code:?}")
}

/// The message of a rejected promise's `Error`: `"<Code>: <message>"`.
pub fn failure_text(f: &Failure) -> String {
    format!("{}: {}", code_name(f.code), f.message)
}

fn n(v: u64) -> f64 {
    v as f64
}

/// Lower-case room kind name.
pub fn kind_str(kind: RoomKind) -> &'static str {
    match kind {
        RoomKind::Direct => "direct",
        RoomKind::Group => "group",
        RoomKind::Channel => "channel",
    }
}

/// Parse the `kind` argument of `createRoom` (`"group"` or `"channel"`).
pub fn parse_create_kind(s: &str) -> Result<RoomKind, Failure> {
    match s {
        "group" => Ok(RoomKind::Group),
        "channel" => Ok(RoomKind::Channel),
        other => Err(Failure {
            code: ErrorCode::InvalidArgument,
            message: format!("room kind must be \"group\" or \"channel\", not {other:?}"),
        }),
    }
}

/// A JS number used as a message id: a non-negative integer up to 2^53.
pub fn parse_id(v: f64) -> Result<u64, Failure> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_992.0 {
        Ok(v as u64)
    } else {
        Err(Failure {
            code: ErrorCode::InvalidArgument,
            message: format!("not a message id: {v}"),
        })
    }
}

pub fn room_info(r: RoomInfo) -> JsRoomInfo {
    JsRoomInfo {
        name: r.name,
        kind: kind_str(r.kind),
        members: r.members,
        title: String::new(),
    }
}

pub fn member_info(m: MemberInfo) -> JsMemberInfo {
    JsMemberInfo {
        user: n(m.user),
        nick: m.nick,
        role: role_str(m.role),
        online: m.online,
    }
}

fn role_str(r: Role) -> &'static str {
    r.as_str()
}

fn mod_action_str(a: ModAction) -> &'static str {
    match a {
        ModAction::Kick => "kick",
        ModAction::Mute => "mute",
        ModAction::Unmute => "unmute",
        ModAction::Ban => "ban",
        ModAction::Unban => "unban",
    }
}

/// A moderation action named in JS ("kick", "mute", "unmute", "ban", "unban").
pub fn parse_mod_action(s: &str) -> Result<ModAction, Failure> {
    Ok(match s {
        "kick" => ModAction::Kick,
        "mute" => ModAction::Mute,
        "unmute" => ModAction::Unmute,
        "ban" => ModAction::Ban,
        "unban" => ModAction::Unban,
        _ => {
            return Err(Failure {
                code: ErrorCode::InvalidArgument,
                message: format!("unknown moderation action {s:?}"),
            })
        }
    })
}

pub fn join_info(j: JoinInfo) -> JsJoinInfo {
    JsJoinInfo {
        room: room_info(j.room),
        role: role_str(j.role),
        offset: n(j.offset),
        members: j.members.into_iter().map(member_info).collect(),
        epoch: n(j.epoch),
        resumed: j.resumed,
        unread: n(j.unread),
    }
}

pub fn stored_message(m: StoredMessage) -> JsStoredMessage {
    JsStoredMessage {
        offset: n(m.offset),
        id: n(m.id),
        author: n(m.author),
        nick: m.nick,
        ts: n(m.ts_ms),
        text: m.text,
        edited: m.edited,
        deleted: m.deleted,
        attachment: m.attachment,
        reactions: m
            .reactions
            .into_iter()
            .map(|(emoji, count)| JsReaction { emoji, count })
            .collect(),
    }
}

/// Default page size of `history()`.
pub const HISTORY_LIMIT: u32 = 50;

/// The options of `history(room, options)`: `{ before?, after?, limit? }` (offsets, and a
/// page size that defaults to [`HISTORY_LIMIT`]; the server caps it at 1,000).
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct HistoryOptions {
    pub before: Option<f64>,
    pub after: Option<f64>,
    pub limit: Option<f64>,
}

impl HistoryOptions {
    /// `(before, after, limit)` checked: offsets are non-negative integers, `limit` a
    /// positive integer.
    pub fn parse(&self) -> Result<(Option<Offset>, Option<Offset>, u32), Failure> {
        let offset = |v: Option<f64>, what: &str| -> Result<Option<Offset>, Failure> {
            v.map(|v| {
                parse_id(v).map_err(|_| Failure {
                    code: ErrorCode::InvalidArgument,
                    message: format!("history: {what} must be an offset, not {v}"),
                })
            })
            .transpose()
        };
        let limit = match self.limit {
            None => HISTORY_LIMIT,
            Some(l) if l.fract() == 0.0 && l >= 1.0 && l <= f64::from(u32::MAX) => l as u32,
            Some(l) => {
                return Err(Failure {
                    code: ErrorCode::InvalidArgument,
                    message: format!("history: limit must be a positive integer, not {l}"),
                })
            }
        };
        Ok((
            offset(self.before, "before")?,
            offset(self.after, "after")?,
            limit,
        ))
    }
}

/// The JS value of a successful reply.
pub fn reply(r: Reply) -> JsReply {
    match r {
        Reply::Nick(nick) => JsReply::Nick(nick),
        Reply::Joined(j) => JsReply::Joined(join_info(j)),
        Reply::Left(_) | Reply::Done => JsReply::Unit,
        Reply::Rooms(rooms) => JsReply::Rooms(rooms.into_iter().map(room_info).collect()),
        Reply::Users { users, .. } => JsReply::Users(users.into_iter().map(member_info).collect()),
        Reply::Sent { room, id, offset } => JsReply::Sent(JsSent {
            room,
            id: n(id),
            offset: n(offset),
        }),
        Reply::History {
            room,
            epoch,
            messages,
        } => JsReply::History(JsHistoryPage {
            room,
            epoch: n(epoch),
            messages: messages.into_iter().map(stored_message).collect(),
        }),
        Reply::UploadReady { upload, offset } => JsReply::Upload(JsUpload {
            upload,
            offset: Some(n(offset)),
            url: None,
        }),
        Reply::UploadDone { upload, url } => JsReply::Upload(JsUpload {
            upload,
            offset: None,
            url: Some(url),
        }),
    }
}

/// The event object of a sequenced room event, `None` for other messages.
pub fn room_event(m: Message) -> Option<JsEvent> {
    Some(match m {
        Message::RoomMessage(m) => JsEvent::Message {
            room: m.room,
            offset: n(m.offset),
            id: n(m.id),
            author: n(m.author),
            nick: m.nick,
            ts: n(m.ts_ms),
            text: m.text,
            attachment: m.attachment,
        },
        Message::MessageEdited(m) => JsEvent::Edit {
            room: m.room,
            offset: n(m.offset),
            id: n(m.id),
            by: n(m.by),
            ts: n(m.ts_ms),
            text: m.text,
        },
        Message::MessageDeleted(m) => JsEvent::Delete {
            room: m.room,
            offset: n(m.offset),
            id: n(m.id),
            by: n(m.by),
        },
        Message::ReactionChanged(m) => JsEvent::Reaction {
            room: m.room,
            offset: n(m.offset),
            id: n(m.id),
            user: n(m.user),
            nick: m.nick,
            emoji: m.emoji,
            added: m.added,
        },
        Message::MemberJoined(m) => JsEvent::MemberJoined {
            room: m.room,
            offset: n(m.offset),
            user: n(m.user),
            nick: m.nick,
            role: role_str(m.role),
        },
        Message::MemberUpdated(m) => JsEvent::MemberUpdated {
            room: m.room,
            offset: n(m.offset),
            user: n(m.user),
            nick: m.nick,
            role: role_str(m.role),
        },
        Message::MemberLeft(m) => JsEvent::MemberLeft {
            room: m.room,
            offset: n(m.offset),
            user: n(m.user),
            nick: m.nick,
        },
        Message::MemberModerated(m) => JsEvent::MemberModerated {
            room: m.room,
            offset: n(m.offset),
            user: n(m.user),
            nick: m.nick,
            action: mod_action_str(m.action),
            by: n(m.by),
            until: n(m.until_ms),
            reason: m.reason,
        },
        Message::RoomRenamed(m) => JsEvent::RoomRenamed {
            room: m.room,
            offset: n(m.offset),
            title: m.title,
            by: n(m.by),
        },
        Message::RoomDeleted(m) => JsEvent::RoomDeleted {
            room: m.room,
            offset: n(m.offset),
            by: n(m.by),
        },
        _ => return None,
    })
}

/// Map one session event.
///
/// Two session events have no variant of their own in the JS API and become `error`
/// events: `Throttled` (code `RateLimited`) and `Shutdown` (code `ShuttingDown`; a
/// `closed` event follows when the server closes the connection).
pub fn map_event(ev: Event) -> Mapped {
    match ev {
        Event::Ready { user, nick, .. } => Mapped::Ready { user, nick },
        Event::Welcome(message) => Mapped::Event(JsEvent::Welcome { message }),
        Event::Reply { req, result } => Mapped::Reply {
            req,
            result: result.map(reply),
        },
        Event::Rejoined { room, result } => Mapped::Event(match result {
            Ok(info) => JsEvent::Rejoined {
                room,
                resumed: info.resumed,
                offset: Some(n(info.offset)),
                epoch: Some(n(info.epoch)),
                error: None,
            },
            Err(f) => JsEvent::Rejoined {
                room,
                resumed: false,
                offset: None,
                epoch: None,
                error: Some(JsErrorInfo::new(code_name(f.code), f.message)),
            },
        }),
        Event::Room { event, .. } => room_event(event).map_or(Mapped::Ignore, Mapped::Event),
        Event::Typing { room, user, nick } => Mapped::Event(JsEvent::Typing {
            room,
            user: n(user),
            nick,
        }),
        Event::Presence { user, nick, online } => Mapped::Event(JsEvent::Presence {
            user: n(user),
            nick,
            online,
        }),
        Event::Receipt(r) => Mapped::Event(JsEvent::Receipt {
            room: r.room,
            id: n(r.id),
            user: n(r.user),
            nick: r.nick,
            read: r.read,
        }),
        Event::Promoted { room } => Mapped::Event(JsEvent::Promoted { room }),
        Event::Demoted { room } => Mapped::Event(JsEvent::Demoted { room }),
        Event::Throttled { retry_after_ms } => Mapped::Event(JsEvent::Error {
            code: code_name(ErrorCode::RateLimited),
            message: format!("throttled by the server: retry after {retry_after_ms} ms"),
        }),
        Event::Shutdown { reason } => Mapped::Event(JsEvent::Error {
            code: code_name(ErrorCode::ShuttingDown),
            message: reason,
        }),
        Event::Error(f) => Mapped::Event(JsEvent::Error {
            code: code_name(f.code),
            message: f.message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garou_protocol::{
        MemberJoined, MessageEdited, Receipt, RoomMessage, StoredMessage, StreamKind, Typing,
    };
    use serde_json::json;

    fn js(v: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }

    fn ev(e: Event) -> serde_json::Value {
        match map_event(e) {
            Mapped::Event(e) => js(&e),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn room_message_maps_to_message_event() {
        let m = RoomMessage {
            room: "general".into(),
            offset: 7,
            id: 42,
            author: 3,
            nick: "ann".into(),
            ts_ms: 1_700_000_000_123,
            text: "hi".into(),
            attachment: None,
        };
        let got = ev(Event::Room {
            event: Message::RoomMessage(m),
            via: StreamKind::Shard(0),
        });
        assert_eq!(
            got,
            json!({"type": "message", "room": "general", "offset": 7.0, "id": 42.0, "author": 3.0,
                   "nick": "ann", "ts": 1_700_000_000_123.0, "text": "hi"})
        );
        // With an attachment, its upload id.
        let m = RoomMessage {
            room: "general".into(),
            offset: 8,
            id: 43,
            author: 3,
            nick: "ann".into(),
            ts_ms: 1,
            text: "see".into(),
            attachment: Some("up-1".into()),
        };
        let got = ev(Event::Room {
            event: Message::RoomMessage(m),
            via: StreamKind::Shard(0),
        });
        assert_eq!(got["attachment"], "up-1");
    }

    #[test]
    fn history_and_upload_replies() {
        let page = Reply::History {
            room: "g".into(),
            epoch: 2,
            messages: vec![
                StoredMessage {
                    offset: 4,
                    id: 10,
                    author: 1,
                    nick: "ann".into(),
                    ts_ms: 99,
                    text: "hi".into(),
                    edited: true,
                    deleted: false,
                    attachment: None,
                    reactions: vec![("+1".into(), 2)],
                },
                StoredMessage {
                    offset: 6,
                    id: 11,
                    author: 2,
                    nick: "bob".into(),
                    ts_ms: 100,
                    text: String::new(),
                    edited: false,
                    deleted: true,
                    attachment: Some("up-2".into()),
                    reactions: vec![],
                },
            ],
        };
        assert_eq!(
            js(&reply(page)),
            json!({"room": "g", "epoch": 2.0, "messages": [
                {"offset": 4.0, "id": 10.0, "author": 1.0, "nick": "ann", "ts": 99.0, "text": "hi",
                 "edited": true, "deleted": false, "reactions": [{"emoji": "+1", "count": 2}]},
                {"offset": 6.0, "id": 11.0, "author": 2.0, "nick": "bob", "ts": 100.0, "text": "",
                 "edited": false, "deleted": true, "attachment": "up-2", "reactions": []}
            ]})
        );
        assert_eq!(
            js(&reply(Reply::UploadReady {
                upload: "u".into(),
                offset: 5
            })),
            json!({"upload": "u", "offset": 5.0})
        );
        assert_eq!(
            js(&reply(Reply::UploadDone {
                upload: "u".into(),
                url: "/u".into()
            })),
            json!({"upload": "u", "url": "/u"})
        );
    }

    #[test]
    fn history_options() {
        let o: HistoryOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o.parse().unwrap(), (None, None, HISTORY_LIMIT));
        let o: HistoryOptions = serde_json::from_str(r#"{"before": 120, "limit": 20}"#).unwrap();
        assert_eq!(o.parse().unwrap(), (Some(120), None, 20));
        let o: HistoryOptions = serde_json::from_str(r#"{"after": 0, "before": null}"#).unwrap();
        assert_eq!(o.parse().unwrap(), (None, Some(0), HISTORY_LIMIT));
        for bad in [
            r#"{"limit": 0}"#,
            r#"{"limit": 2.5}"#,
            r#"{"before": -1}"#,
            r#"{"after": 1.5}"#,
        ] {
            let o: HistoryOptions = serde_json::from_str(bad).unwrap();
            assert_eq!(o.parse().unwrap_err().code, ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn member_and_edit_events_use_snake_case_tags_and_role_names() {
        let got = ev(Event::Room {
            event: Message::MemberJoined(MemberJoined {
                room: "r".into(),
                offset: 1,
                user: 9,
                nick: "bob".into(),
                role: Role::Moderator,
            }),
            via: StreamKind::Hot("r".into()),
        });
        assert_eq!(
            got,
            json!({"type": "member_joined", "room": "r", "offset": 1.0, "user": 9.0, "nick": "bob",
                   "role": "moderator"})
        );
        let got = ev(Event::Room {
            event: Message::MessageEdited(MessageEdited {
                room: "r".into(),
                offset: 2,
                id: 5,
                by: 9,
                ts_ms: 10,
                text: "x".into(),
            }),
            via: StreamKind::Shard(1),
        });
        assert_eq!(got["type"], "edit");
        assert_eq!(got["by"], 9.0);
        // A non-event message on a room stream is ignored, not mapped.
        assert_eq!(
            map_event(Event::Room {
                event: Message::Typing(Typing {
                    room: "r".into(),
                    user: 1,
                    nick: "a".into()
                }),
                via: StreamKind::Shard(0),
            }),
            Mapped::Ignore
        );
    }

    #[test]
    fn datagram_and_control_events() {
        assert_eq!(
            ev(Event::Typing {
                room: "r".into(),
                user: 2,
                nick: "c".into()
            }),
            json!({"type": "typing", "room": "r", "user": 2.0, "nick": "c"})
        );
        assert_eq!(
            ev(Event::Presence {
                user: 2,
                nick: "c".into(),
                online: false
            }),
            json!({"type": "presence", "user": 2.0, "nick": "c", "online": false})
        );
        assert_eq!(
            ev(Event::Receipt(Receipt {
                room: "r".into(),
                id: 4,
                user: 2,
                nick: "c".into(),
                read: true
            })),
            json!({"type": "receipt", "room": "r", "id": 4.0, "user": 2.0, "nick": "c", "read": true})
        );
        assert_eq!(
            ev(Event::Promoted { room: "r".into() }),
            json!({"type": "promoted", "room": "r"})
        );
        assert_eq!(
            ev(Event::Welcome("hello".into())),
            json!({"type": "welcome", "message": "hello"})
        );
        assert_eq!(
            ev(Event::Error(Failure {
                code: ErrorCode::Forbidden,
                message: "no".into()
            })),
            json!({"type": "error", "code": "Forbidden", "message": "no"})
        );
        assert_eq!(
            ev(Event::Throttled { retry_after_ms: 250 })["code"],
            "RateLimited"
        );
        assert_eq!(
            ev(Event::Shutdown { reason: "bye".into() }),
            json!({"type": "error", "code": "ShuttingDown", "message": "bye"})
        );
    }

    #[test]
    fn transport_event_omits_missing_reason() {
        let e = JsEvent::Transport {
            transport: TransportKind::WebTransport.as_str(),
            fallback_reason: None,
        };
        assert_eq!(js(&e), json!({"type": "transport", "transport": "webtransport"}));
        let e = JsEvent::Transport {
            transport: TransportKind::WebSocket.as_str(),
            fallback_reason: Some("no WebTransport".into()),
        };
        assert_eq!(
            js(&e),
            json!({"type": "transport", "transport": "websocket", "fallback_reason": "no WebTransport"})
        );
        assert_eq!(
            js(&JsEvent::Closed { reason: "x".into() }),
            json!({"type": "closed", "reason": "x"})
        );
    }

    #[test]
    fn replies_map_to_promise_values() {
        let joined = Reply::Joined(JoinInfo {
            room: RoomInfo {
                name: "g".into(),
                kind: RoomKind::Channel,
                members: 2,
                title: String::new(),
            },
            role: Role::Guest,
            offset: 11,
            members: vec![MemberInfo {
                user: 1,
                nick: "ann".into(),
                role: Role::Owner,
                online: true,
            }],
            epoch: 3,
            resumed: true,
            unread: 5,
        });
        let got = map_event(Event::Reply {
            req: 3,
            result: Ok(joined),
        });
        let Mapped::Reply {
            req: 3,
            result: Ok(v),
        } = got
        else {
            panic!("{got:?}")
        };
        assert_eq!(
            js(&v),
            json!({"room": {"name": "g", "kind": "channel", "members": 2, "title": ""}, "role": "guest", "offset": 11.0,
                   "members": [{"user": 1.0, "nick": "ann", "role": "owner", "online": true}],
                   "epoch": 3.0, "resumed": true, "unread": 5.0})
        );
        assert_eq!(
            js(&reply(Reply::Sent {
                room: "g".into(),
                id: 5,
                offset: 12
            })),
            json!({"room": "g", "id": 5.0, "offset": 12.0})
        );
        assert_eq!(js(&reply(Reply::Nick("zed".into()))), json!("zed"));
        assert_eq!(reply(Reply::Done), JsReply::Unit);
        assert_eq!(reply(Reply::Left("g".into())), JsReply::Unit);
        assert_eq!(js(&reply(Reply::Rooms(vec![]))), json!([]));
        let f = Failure {
            code: ErrorCode::NoSuchRoom,
            message: "nope".into(),
        };
        assert_eq!(failure_text(&f), "NoSuchRoom: nope");
        assert_eq!(failure_text(&f), f.to_string());
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(parse_create_kind("group").unwrap(), RoomKind::Group);
        assert_eq!(parse_create_kind("channel").unwrap(), RoomKind::Channel);
        assert_eq!(
            parse_create_kind("direct").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(parse_id(12.0).unwrap(), 12);
        assert!(parse_id(-1.0).is_err());
        assert!(parse_id(1.5).is_err());
        assert!(parse_id(f64::NAN).is_err());
        assert!(parse_id(1e300).is_err());
    }
}
