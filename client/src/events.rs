//! The application's event stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use garou_protocol::{Event, Message, RoomMessage, UserId};
use tokio::sync::mpsc;

use crate::ClientError;

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// An event of the protocol session: room events in offset order, typing, presence,
    /// receipts, `Ready` (after every successful handshake, including reconnects),
    /// `Rejoined`, `Shutdown`, ... Never `Event::Reply`: replies resolve the
    /// [`Pending`](crate::Pending) of their request instead.
    Session(Event),
    /// The connection was lost (or could not be kept). Requests in flight failed with
    /// [`ClientError::Disconnected`](crate::ClientError::Disconnected), except sends, which
    /// wait to be re-sent by the next session (see [`Client::send`](crate::Client::send)).
    /// When the client stops for good on a terminal error, a last `Disconnected` whose
    /// reason starts with "stopped for good" says so before the stream ends
    /// ([`Update::Stopped`] carries the typed error).
    Disconnected {
        /// Why, as text ([`Update::Disconnected`] carries the typed error).
        reason: String,
    },
    /// Attempt `attempt` to reconnect starts after `delay`.
    Reconnecting {
        /// 1 for the first attempt after a disconnect.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// A new session is ready; the rooms of the old one are being rejoined from where they
    /// stopped (each reports `Event::Rejoined`; the server replays what was missed, and
    /// the session drops what was already delivered). A `Rejoined` whose
    /// [`JoinInfo::resumed`](crate::JoinInfo::resumed) is false could not be replayed
    /// (history trimmed, room reset): events may be missing, reload the room's history
    /// ([`Client::history`](crate::Client::history)). Then the unacknowledged messages
    /// are sent again.
    Reconnected {
        /// The server's id of the new session.
        session: u64,
        /// Our user id.
        user: UserId,
        /// Our nick in the new session.
        nick: String,
    },
}

impl ClientEvent {
    /// The chat message this event carries, if it is one. Handy in bots and tests.
    pub fn room_message(&self) -> Option<&RoomMessage> {
        match self {
            ClientEvent::Session(Event::Room {
                event: Message::RoomMessage(m),
                ..
            }) => Some(m),
            _ => None,
        }
    }
}

/// What the driver queues for the application: the raw events plus what only the
/// [`Update`] view carries typed.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Event(ClientEvent),
    Disconnected(ClientError),
    Reconnecting {
        attempt: u32,
        delay: Duration,
        error: Option<ClientError>,
    },
    /// A terminal error: the client stopped for good.
    Stopped(ClientError),
}

impl Item {
    fn raw(self) -> ClientEvent {
        match self {
            Item::Event(e) => e,
            Item::Disconnected(e) => ClientEvent::Disconnected {
                reason: e.to_string(),
            },
            Item::Reconnecting { attempt, delay, .. } => ClientEvent::Reconnecting { attempt, delay },
            Item::Stopped(e) => ClientEvent::Disconnected {
                reason: format!("stopped for good: {e}"),
            },
        }
    }

    fn update(self) -> Update {
        match self {
            Item::Event(ClientEvent::Session(ev)) => match ev {
                Event::Room {
                    event: Message::RoomMessage(m),
                    ..
                } => Update::Message(m),
                Event::Room {
                    event: Message::MemberJoined(j),
                    ..
                } => Update::MemberJoined {
                    room: j.room,
                    user: j.user,
                    nick: j.nick,
                },
                Event::Room {
                    event: Message::MemberLeft(l),
                    ..
                } => Update::MemberLeft {
                    room: l.room,
                    user: l.user,
                    nick: l.nick,
                },
                Event::Typing { room, user, nick } => Update::Typing { room, user, nick },
                Event::Ready {
                    session, user, nick, ..
                } => Update::Connected { session, user, nick },
                other => Update::Other(ClientEvent::Session(other)),
            },
            Item::Event(ClientEvent::Reconnected { .. }) => Update::Reconnected,
            Item::Event(other) => Update::Other(other),
            Item::Disconnected(error) => Update::Disconnected { error },
            Item::Reconnecting {
                attempt,
                delay,
                error,
            } => Update::Reconnecting {
                attempt,
                delay,
                error,
            },
            Item::Stopped(error) => Update::Stopped { error },
        }
    }
}

/// The common events flattened, with typed errors: what [`Events::next_update`] yields.
///
/// Chat apps and bots mostly need the first few variants; everything else the session
/// reports is in [`Update::Other`], as the raw [`ClientEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A chat message in a room (our own included: compare `author` with
    /// [`Client::user`](crate::Client::user)).
    Message(RoomMessage),
    /// Someone joined a room.
    MemberJoined {
        /// The room.
        room: String,
        /// Who.
        user: UserId,
        /// Their nick.
        nick: String,
    },
    /// Someone left a room.
    MemberLeft {
        /// The room.
        room: String,
        /// Who.
        user: UserId,
        /// Their nick.
        nick: String,
    },
    /// Someone is typing in a room.
    Typing {
        /// The room.
        room: String,
        /// Who.
        user: UserId,
        /// Their nick.
        nick: String,
    },
    /// A session is up (the first one, or again after a reconnect).
    Connected {
        /// The server's id of the session.
        session: u64,
        /// Our user id.
        user: UserId,
        /// Our nick.
        nick: String,
    },
    /// After [`Update::Connected`] of a reconnect: rooms are being rejoined and queued
    /// messages re-sent.
    Reconnected,
    /// The connection was lost; the client reconnects (unless told not to).
    Disconnected {
        /// Why.
        error: ClientError,
    },
    /// Reconnect attempt `attempt` starts after `delay`; `error` is why the previous
    /// attempt failed (`None` for the first attempt after a disconnect).
    Reconnecting {
        /// 1 for the first attempt after a disconnect.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// Why the previous attempt failed.
        error: Option<ClientError>,
    },
    /// The client stopped for good on a terminal error (a certificate that does not match
    /// the pin, credentials refused, banned). Queued messages failed with `error`; the
    /// stream ends after this. (Without reconnecting, the stream simply ends after
    /// [`Update::Disconnected`].)
    Stopped {
        /// Why.
        error: ClientError,
    },
    /// Anything else, raw.
    Other(ClientEvent),
}

/// The stream of [`ClientEvent`]s. Ends after [`Client::close`](crate::Client::close), or
/// when the connection is lost for good (reconnect disabled, or a terminal error: then
/// [`Events::stopped`] says which).
///
/// The channel behind it is bounded (`ClientOptions::event_buffer`): when it is full the
/// driver stops reading room streams until the application catches up (the server then
/// sees a slow consumer). Replies keep resolving meanwhile, however many room events wait:
/// the control stream is read until `event_buffer` events of its own (rooms going hot or
/// cooling down, server notices, ...) queue up behind them. A task that only awaits replies
/// and never reads events can still stall the server's room streams until it is dropped
/// as a slow consumer: read events continuously, e.g. in their own task.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::Receiver<Item>,
    pub(crate) stopped: Option<ClientError>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Item>) -> Events {
        Events { rx, stopped: None }
    }

    fn seen(&mut self, item: &Item) {
        if let Item::Stopped(e) = item {
            self.stopped = Some(e.clone());
        }
    }

    /// The next event; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        let item = self.rx.recv().await?;
        self.seen(&item);
        Some(item.raw())
    }

    /// The next event if one is already queued.
    pub fn try_next(&mut self) -> Option<ClientEvent> {
        let item = self.rx.try_recv().ok()?;
        self.seen(&item);
        Some(item.raw())
    }

    /// The next event in the flat [`Update`] form; `None` once the client is closed.
    pub async fn next_update(&mut self) -> Option<Update> {
        let item = self.rx.recv().await?;
        self.seen(&item);
        Some(item.update())
    }

    /// The terminal error the client stopped on, once the stream delivered it.
    pub fn stopped(&self) -> Option<&ClientError> {
        self.stopped.as_ref()
    }
}

impl futures::Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(item)) => {
                self.seen(&item);
                Poll::Ready(Some(item.raw()))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl From<ClientEvent> for Item {
    fn from(ev: ClientEvent) -> Item {
        Item::Event(ev)
    }
}
