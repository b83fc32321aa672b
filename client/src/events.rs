//! The application's event stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use garou_protocol::{Event, Message, RoomMessage, UserId};
use tokio::sync::mpsc;

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
    Disconnected { reason: String },
    /// Attempt `attempt` to reconnect starts after `delay`.
    Reconnecting { attempt: u32, delay: Duration },
    /// A new session is ready; the rooms of the old one are being rejoined from where they
    /// stopped (each reports `Event::Rejoined`; the server replays what was missed, and
    /// the session drops what was already delivered). A `Rejoined` whose
    /// [`JoinInfo::resumed`](crate::JoinInfo::resumed) is false could not be replayed
    /// (history trimmed, room reset): events may be missing, reload the room's history
    /// ([`Client::history`](crate::Client::history)). Then the unacknowledged messages
    /// are sent again.
    Reconnected {
        session: u64,
        user: UserId,
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

/// The stream of [`ClientEvent`]s. Ends after [`Client::close`](crate::Client::close), or
/// when the connection is lost for good (reconnect disabled).
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
    pub(crate) rx: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// The next event; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }

    /// The next event if one is already queued.
    pub fn try_next(&mut self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.rx.poll_recv(cx)
    }
}
