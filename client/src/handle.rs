//! The application's side: [`Client`] requests and their [`Pending`] replies.
//!
//! Requests are split in two steps so that callers can pipeline: handing a request to the
//! driver (ordered, bounded, awaited) and waiting for the server's reply (a separate
//! future). [`Request`] implements [`IntoFuture`] for the common one-step case:
//!
//! ```no_run
//! # async fn demo(client: garou_client::Client) -> Result<(), garou_client::ClientError> {
//! // One at a time: hand off and wait for the reply.
//! let sent = client.send("general", "hello").await?;
//!
//! // Pipelined: hand off many in order, collect the acks later.
//! let mut acks = Vec::new();
//! for i in 0..100 {
//!     acks.push(client.send("general", format!("line {i}")).submit().await);
//! }
//! for ack in acks {
//!     ack.await?;
//! }
//! # let _ = sent; Ok(()) }
//! ```

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use garou_protocol::{
    ClientSession, JoinInfo, MemberInfo, ModAction, MsgId, Offset, Reply, ReqId, Role, RoomInfo, RoomKind,
    StoredMessage, UserId,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::upload::{Upload, UploadJob, UploadProgress, UploadSource};
use crate::ClientError;

/// How long [`Client::close`] waits for the driver to flush and close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What a reply channel carries.
pub(crate) type ReplyResult = Result<Reply, ClientError>;

/// A request the driver turns into a session command.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Join(String),
    CreateRoom(String, RoomKind),
    Leave(String),
    Send {
        room: String,
        text: String,
        attachment: Option<String>,
    },
    Direct {
        to: String,
        text: String,
    },
    Edit {
        room: String,
        id: MsgId,
        text: String,
    },
    Delete {
        room: String,
        id: MsgId,
    },
    React {
        room: String,
        id: MsgId,
        emoji: String,
        add: bool,
    },
    SetNick(String),
    ListRooms,
    ListUsers(String),
    SetRole {
        room: String,
        nick: String,
        role: Role,
    },
    History {
        room: String,
        before: Option<Offset>,
        after: Option<Offset>,
        limit: u32,
    },
    Moderate {
        room: String,
        nick: String,
        action: ModAction,
        secs: u32,
        reason: String,
    },
    Invite {
        room: String,
        nick: String,
    },
    RenameRoom {
        room: String,
        title: String,
    },
    DeleteRoom(String),
}

impl Op {
    /// Queue this request on the session; the reply comes back as `Event::Reply { req }`.
    pub(crate) fn issue(&self, s: &mut ClientSession, now: u64) -> ReqId {
        match self {
            Op::Join(room) => s.join(room, now),
            Op::CreateRoom(room, kind) => s.create_room(room, *kind, now),
            Op::Leave(room) => s.leave(room, now),
            Op::Send {
                room,
                text,
                attachment,
            } => s.send_with_attachment(room, text, attachment.as_deref(), now),
            Op::Direct { to, text } => s.direct(to, text, now),
            Op::Edit { room, id, text } => s.edit(room, *id, text, now),
            Op::Delete { room, id } => s.delete(room, *id, now),
            Op::React { room, id, emoji, add } => s.react(room, *id, emoji, *add, now),
            Op::SetNick(nick) => s.set_nick(nick, now),
            Op::ListRooms => s.list_rooms(now),
            Op::ListUsers(room) => s.list_users(room, now),
            Op::SetRole { room, nick, role } => s.set_role(room, nick, *role, now),
            Op::History {
                room,
                before,
                after,
                limit,
            } => s.history(room, *before, *after, *limit, now),
            Op::Moderate {
                room,
                nick,
                action,
                secs,
                reason,
            } => s.moderate(room, nick, *action, *secs, reason, now),
            Op::Invite { room, nick } => s.invite(room, nick, now),
            Op::RenameRoom { room, title } => s.rename_room(room, title, now),
            Op::DeleteRoom(room) => s.delete_room(room, now),
        }
    }
}

impl Op {
    /// A message (kept and re-sent across reconnects, queued while disconnected).
    pub(crate) fn is_message(&self) -> bool {
        matches!(self, Op::Send { .. } | Op::Direct { .. })
    }
}

/// Messages from handles to the driver task.
#[derive(Debug)]
pub(crate) enum Command {
    Request {
        op: Op,
        reply: oneshot::Sender<ReplyResult>,
    },
    Typing(String),
    Delivered(String, MsgId),
    Read(String, MsgId),
    Upload(Box<UploadJob>),
}

/// A close request; the driver answers on the channel once the connection is closed.
/// Close has its own channel so it is heard even while commands are held back by a full
/// lane.
pub(crate) type CloseRequest = oneshot::Sender<()>;

/// Who we are on the current connection; written by the driver, read by handles.
#[derive(Debug, Default, Clone)]
pub(crate) struct Identity {
    pub session: u64,
    pub user: UserId,
    pub nick: String,
    /// The session's ticket for the gateway's HTTP uploads and downloads.
    pub ticket: String,
}

/// State shared between the driver and every handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub identity: Mutex<Identity>,
    pub connected: AtomicBool,
    /// The terminal error the client stopped on.
    pub stopped: Mutex<Option<ClientError>>,
}

impl Shared {
    pub(crate) fn identity(&self) -> Identity {
        self.identity.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub(crate) fn set_identity(&self, id: Identity) {
        *self.identity.lock().unwrap_or_else(|e| e.into_inner()) = id;
    }
}

/// A message the server accepted: where it went and the id and offset it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The room it went to (for a direct message: the direct room).
    pub room: String,
    /// The server's id of the message.
    pub id: MsgId,
    /// Its offset in the room.
    pub offset: Offset,
}

/// A page of a room's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The room.
    pub room: String,
    /// The room's epoch: offsets compare only within one epoch.
    pub epoch: u64,
    /// Latest text of each message, edits and deletion applied (deleted ones are marked).
    pub messages: Vec<StoredMessage>,
}

/// Handle to a connected client. Cheap to clone; every clone talks to the same driver
/// task. Dropping every clone closes the connection (like [`Client::close`], without
/// waiting).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) close_tx: mpsc::Sender<CloseRequest>,
    pub(crate) shared: Arc<Shared>,
}

impl Client {
    fn request<T>(&self, op: Op, map: fn(Reply) -> Result<T, Reply>) -> Request<T> {
        Request {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            op,
            map,
        }
    }

    /// Join a room (a missing group room is created). Resolves to the join details.
    pub fn join(&self, room: impl Into<String>) -> Request<JoinInfo> {
        self.request(Op::Join(room.into()), |r| match r {
            Reply::Joined(info) => Ok(info),
            other => Err(other),
        })
    }

    /// Create a room of `kind` and join it as owner.
    pub fn create_room(&self, room: impl Into<String>, kind: RoomKind) -> Request<JoinInfo> {
        self.request(Op::CreateRoom(room.into(), kind), |r| match r {
            Reply::Joined(info) => Ok(info),
            other => Err(other),
        })
    }

    /// Leave a room. Its events stop, and it is no longer rejoined on reconnect.
    pub fn leave(&self, room: impl Into<String>) -> Request<()> {
        self.request(Op::Leave(room.into()), |r| match r {
            Reply::Left(_) => Ok(()),
            other => Err(other),
        })
    }

    /// Post a message to a room; resolves once the server stored it.
    ///
    /// If the connection drops before the ack, the message is kept and sent again, with
    /// the same client id so the server never stores it twice, as soon as the client has
    /// reconnected (after rejoining its rooms); the future then resolves with the
    /// original ack. It fails with [`ClientError::Disconnected`] (and is not sent again)
    /// only when reconnecting is disabled, or when no new session is up within
    /// [`ClientOptions::offline_timeout`](crate::ClientOptions::offline_timeout) if one is
    /// set. At most 10,000 unacknowledged messages are kept this way; any beyond fail at a
    /// disconnect.
    ///
    /// While no session is up (reconnecting, or the handshake still running) the message
    /// waits in a bounded queue ([`ClientOptions::offline_queue`](crate::ClientOptions::offline_queue))
    /// and is sent after the reconnect; when that queue is full the send fails at once
    /// with [`ClientError::QueueFull`]. On a terminal error (certificate, credentials,
    /// ban) every waiting message fails with that error. Messages are paced to the
    /// client's rate ([`ClientOptions::rate`](crate::ClientOptions::rate)), so sending
    /// faster than the server allows makes sends wait, never gets the client closed.
    pub fn send(&self, room: impl Into<String>, text: impl Into<String>) -> Request<Sent> {
        let op = Op::Send {
            room: room.into(),
            text: text.into(),
            attachment: None,
        };
        self.request(op, sent)
    }

    /// Post a message with an attachment: the id of a completed upload of ours
    /// ([`Uploaded::id`](crate::Uploaded::id)). Kept, queued and re-sent like
    /// [`Client::send`].
    pub fn send_with_attachment(
        &self,
        room: impl Into<String>,
        text: impl Into<String>,
        upload: impl Into<String>,
    ) -> Request<Sent> {
        let op = Op::Send {
            room: room.into(),
            text: text.into(),
            attachment: Some(upload.into()),
        };
        self.request(op, sent)
    }

    /// Upload bytes or a file (see [`UploadSource`]) with its MIME `content_type`;
    /// the returned [`Upload`] resolves once the server has it all and verified it, and
    /// reports progress meanwhile. The upload survives reconnects (it resumes where the
    /// server's copy stopped) and is paced like every other frame. Uploading the same
    /// source again (same name, size and content) after a crash resumes it too.
    pub fn upload(&self, source: UploadSource, content_type: impl Into<String>) -> Upload {
        let (progress_tx, progress) = watch::channel(UploadProgress::default());
        let (done_tx, done) = oneshot::channel();
        let tx = self.tx.clone();
        let content_type = content_type.into();
        tokio::spawn(async move {
            match UploadJob::prepare(source, content_type, progress_tx, done_tx).await {
                Ok(job) => {
                    if let Err(mpsc::error::SendError(Command::Upload(job))) =
                        tx.send(Command::Upload(Box::new(job))).await
                    {
                        let _ = job.done.send(Err(ClientError::Closed));
                    }
                }
                Err((e, done)) => {
                    let _ = done.send(Err(e));
                }
            }
        });
        Upload { progress, done }
    }

    /// The terminal error the client stopped on (certificate, credentials, ban), if it
    /// did; [`Events`](crate::Events) also reports it
    /// ([`Update::Stopped`](crate::Update::Stopped)).
    pub fn stopped(&self) -> Option<ClientError> {
        self.shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Send a direct message to a user by nick; `Sent::room` is the direct room. Kept and
    /// re-sent across a reconnect like [`Client::send`].
    pub fn direct(&self, to: impl Into<String>, text: impl Into<String>) -> Request<Sent> {
        let op = Op::Direct {
            to: to.into(),
            text: text.into(),
        };
        self.request(op, sent)
    }

    /// Replace the text of a message.
    pub fn edit(&self, room: impl Into<String>, id: MsgId, text: impl Into<String>) -> Request<()> {
        let op = Op::Edit {
            room: room.into(),
            id,
            text: text.into(),
        };
        self.request(op, done)
    }

    /// Delete a message.
    pub fn delete(&self, room: impl Into<String>, id: MsgId) -> Request<()> {
        self.request(
            Op::Delete {
                room: room.into(),
                id,
            },
            done,
        )
    }

    /// Add (`add = true`) or remove a reaction.
    pub fn react(
        &self,
        room: impl Into<String>,
        id: MsgId,
        emoji: impl Into<String>,
        add: bool,
    ) -> Request<()> {
        let op = Op::React {
            room: room.into(),
            id,
            emoji: emoji.into(),
            add,
        };
        self.request(op, done)
    }

    /// Change nick; resolves to the nick the server accepted.
    pub fn set_nick(&self, nick: impl Into<String>) -> Request<String> {
        self.request(Op::SetNick(nick.into()), |r| match r {
            Reply::Nick(n) => Ok(n),
            other => Err(other),
        })
    }

    /// Rooms visible to us.
    pub fn list_rooms(&self) -> Request<Vec<RoomInfo>> {
        self.request(Op::ListRooms, |r| match r {
            Reply::Rooms(rooms) => Ok(rooms),
            other => Err(other),
        })
    }

    /// Members of a room.
    pub fn list_users(&self, room: impl Into<String>) -> Request<Vec<MemberInfo>> {
        self.request(Op::ListUsers(room.into()), |r| match r {
            Reply::Users { users, .. } => Ok(users),
            other => Err(other),
        })
    }

    /// A page of `room`'s history, oldest first: at most `limit` messages (the server caps
    /// it at 1,000) with offsets below `before` and above `after`, both optional: without
    /// `after` the newest such messages (paging back), with `after` the oldest ones
    /// (paging forward).
    /// E.g. the 20 messages before a join: `history(room, Some(info.offset), None, 20)`.
    pub fn history(
        &self,
        room: impl Into<String>,
        before: Option<Offset>,
        after: Option<Offset>,
        limit: u32,
    ) -> Request<History> {
        let op = Op::History {
            room: room.into(),
            before,
            after,
            limit,
        };
        self.request(op, |r| match r {
            Reply::History {
                room,
                epoch,
                messages,
            } => Ok(History {
                room,
                epoch,
                messages,
            }),
            other => Err(other),
        })
    }

    /// Change a member's role.
    pub fn set_role(&self, room: impl Into<String>, nick: impl Into<String>, role: Role) -> Request<()> {
        let op = Op::SetRole {
            room: room.into(),
            nick: nick.into(),
            role,
        };
        self.request(op, done)
    }

    /// Kick, mute (for `secs`, 0 = until unmuted), unmute, ban or unban a member; the
    /// room sees a `MemberModerated` event.
    pub fn moderate(
        &self,
        room: impl Into<String>,
        nick: impl Into<String>,
        action: ModAction,
        secs: u32,
        reason: impl Into<String>,
    ) -> Request<()> {
        let op = Op::Moderate {
            room: room.into(),
            nick: nick.into(),
            action,
            secs,
            reason: reason.into(),
        };
        self.request(op, done)
    }

    /// Add a user to a room as a member.
    pub fn invite(&self, room: impl Into<String>, nick: impl Into<String>) -> Request<()> {
        let op = Op::Invite {
            room: room.into(),
            nick: nick.into(),
        };
        self.request(op, done)
    }

    /// Set a room's display title.
    pub fn rename_room(&self, room: impl Into<String>, title: impl Into<String>) -> Request<()> {
        let op = Op::RenameRoom {
            room: room.into(),
            title: title.into(),
        };
        self.request(op, done)
    }

    /// Delete a room and its history.
    pub fn delete_room(&self, room: impl Into<String>) -> Request<()> {
        self.request(Op::DeleteRoom(room.into()), done)
    }

    async fn fire(&self, cmd: Command) -> Result<(), ClientError> {
        self.tx.send(cmd).await.map_err(|_| ClientError::Closed)
    }

    /// Tell a room we are typing (a datagram: may be lost, dropped while disconnected).
    pub async fn typing(&self, room: impl Into<String>) -> Result<(), ClientError> {
        self.fire(Command::Typing(room.into())).await
    }

    /// Tell a message's author we received it (fire-and-forget, acks stream).
    pub async fn delivered(&self, room: impl Into<String>, id: MsgId) -> Result<(), ClientError> {
        self.fire(Command::Delivered(room.into(), id)).await
    }

    /// Tell a message's author we read it (fire-and-forget, acks stream).
    pub async fn read(&self, room: impl Into<String>, id: MsgId) -> Result<(), ClientError> {
        self.fire(Command::Read(room.into(), id)).await
    }

    /// Our user id on the current (or last) connection.
    pub fn user(&self) -> UserId {
        self.shared.identity().user
    }

    /// Our nick, kept current across `set_nick` and reconnects.
    pub fn nick(&self) -> String {
        self.shared.identity().nick
    }

    /// The server's id for the current (or last) session.
    pub fn session_id(&self) -> u64 {
        self.shared.identity().session
    }

    /// The current session's ticket for the gateway's HTTP side: downloads of
    /// attachments (`GET /api/uploads/{id}?ticket=`) and browser-style uploads. Empty
    /// until the server's Welcome arrived; a new session (after a reconnect) gets a new one.
    pub fn ticket(&self) -> String {
        self.shared.identity().ticket
    }

    /// Whether a session is up right now (false while reconnecting or after close).
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Close gracefully: flush what was handed off, close the connection with code 0
    /// ("bye"), stop reconnecting, end the [`Events`](crate::Events) stream. Requests still
    /// unanswered fail with [`ClientError::Closed`]. Waits at most a few seconds; calling
    /// it again (or from another clone) is harmless.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if self.close_tx.send(done).await.is_ok() {
                let _ = wait.await;
            }
        })
        .await;
    }
}

fn sent(r: Reply) -> Result<Sent, Reply> {
    match r {
        Reply::Sent { room, id, offset } => Ok(Sent { room, id, offset }),
        other => Err(other),
    }
}

fn done(r: Reply) -> Result<(), Reply> {
    match r {
        Reply::Done => Ok(()),
        other => Err(other),
    }
}

/// A request not yet handed to the driver.
///
/// `.await` it to hand it off and wait for the reply, or call [`Request::submit`] to only
/// hand it off (in call order) and get a [`Pending`] to await later.
#[must_use = "a Request does nothing until awaited or submitted"]
pub struct Request<T> {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    op: Op,
    map: fn(Reply) -> Result<T, Reply>,
}

impl<T> std::fmt::Debug for Request<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("op", &self.op).finish()
    }
}

impl<T> Request<T> {
    /// Hand the request to the driver, waiting only for room in its bounded queue.
    /// Requests submitted one after another from one task reach the server in that order.
    /// Never fails by itself: errors (client closed, disconnected) surface from the
    /// returned [`Pending`].
    pub async fn submit(self) -> Pending<T> {
        let (reply, rx) = oneshot::channel();
        let state = match self.tx.send(Command::Request { op: self.op, reply }).await {
            Ok(()) => PendingState::Waiting(rx),
            // The driver is gone: closed, or stopped on a terminal error.
            Err(_) => {
                let stopped = self
                    .shared
                    .stopped
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                PendingState::Failed(Some(stopped.unwrap_or(ClientError::Closed)))
            }
        };
        Pending { state, map: self.map }
    }
}

impl<T: Send + 'static> IntoFuture for Request<T> {
    type Output = Result<T, ClientError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, ClientError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.submit().await.await })
    }
}

enum PendingState {
    Waiting(oneshot::Receiver<ReplyResult>),
    Failed(Option<ClientError>),
}

/// The reply to a submitted request. Resolves to the typed result, or to
/// [`ClientError::Failure`] (the server refused), [`ClientError::Timeout`] (no reply within
/// `request_timeout`), [`ClientError::Disconnected`] (the connection dropped first; the
/// request may or may not have been applied; sends are re-sent after a reconnect instead,
/// see [`Client::send`]) or [`ClientError::Closed`]. Dropping it does not cancel the
/// request.
#[must_use = "dropping a Pending ignores the server's answer"]
pub struct Pending<T> {
    state: PendingState,
    map: fn(Reply) -> Result<T, Reply>,
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.state {
            PendingState::Waiting(_) => "waiting",
            PendingState::Failed(_) => "failed",
        };
        f.debug_struct("Pending").field("state", &s).finish()
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            PendingState::Failed(e) => Poll::Ready(Err(e.take().unwrap_or(ClientError::Closed))),
            PendingState::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => Poll::Ready(Err(ClientError::Closed)),
                Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(Ok(reply))) => Poll::Ready(
                    (this.map)(reply).map_err(|r| ClientError::Protocol(format!("unexpected reply: {r:?}"))),
                ),
            },
        }
    }
}
