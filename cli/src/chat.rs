//! `garou chat`: a line-oriented terminal client on `garou-client`.
//!
//! Built for both people and scripts: input is plain lines on stdin (a pipe works as well
//! as a terminal), output is one line per event on stdout, flushed at once. Chat messages
//! print as `[#room] <nick> text` (direct ones as `[@peer] <nick> text`); every other
//! notice starts with `* `, so a script can tell them apart; errors go to stderr.
//!
//! Joining a room prints its last [`HISTORY_LINES`] messages first, in the same format as
//! live ones, then the live ones (the history page ends just before the join's first
//! offset, and live lines wait while it loads, so nothing is printed twice or out of
//! order). After a reconnect the client resumes each room where it stopped; when the server
//! cannot replay the gap, a notice is printed and recent history fetched again (messages
//! already printed are skipped).
//!
//! Sends are pipelined: each line is handed to the client as soon as it is read, without
//! waiting for the previous acknowledgement, so piping a file in runs at network speed and
//! keeps its order. A line typed while the gateway is away (restarting, crashed) waits in
//! the client's offline queue (`* (queued: reconnecting)` says so) and is delivered after
//! the reconnect; only a full queue or a terminal error (a certificate that no longer
//! matches the pin, refused credentials) fails it. At end of input (or `/quit`) the command waits (at most
//! [`ACK_WAIT`]) until the server acknowledged every message, and exits non-zero if any
//! was refused or lost.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use garou_client::protocol::{Message, Offset};
use garou_client::{
    connect, Client, ClientError, ClientEvent, ClientOptions, ConnectRetry, Event, History, RateLimit,
    RoomKind, Sent, Trust,
};
use tokio::sync::mpsc;

use crate::command::HELP;
pub use crate::command::{parse_input, Input};

/// Longest wait for outstanding acknowledgements at exit. Long enough for a gateway
/// restart: messages typed while it is down wait in the client's offline queue.
pub const ACK_WAIT: Duration = Duration::from_secs(60);

/// Messages of history printed on joining a room (and after an unrecoverable gap).
pub const HISTORY_LINES: u32 = 20;

/// Arguments of `garou chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    /// Gateway address; repeat the flag or separate with commas to list fallbacks, tried
    /// in order and rotated through on reconnect.
    #[arg(
        long = "server",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:4433",
        value_delimiter = ','
    )]
    pub servers: Vec<String>,
    /// Nick to connect with (open dev mode, or as a guest where tokens are required).
    #[arg(long, required_unless_present = "token")]
    pub nick: Option<String>,
    /// Sign in with a token (JWT; `garou token` mints dev tokens).
    #[arg(long, conflicts_with = "nick")]
    pub token: Option<String>,
    /// Room to join at start.
    #[arg(long)]
    pub room: Option<String>,
    /// Accept only the certificate with this SHA-256 (hex, as `garou serve` logs it).
    #[arg(long, value_name = "HEX", conflicts_with = "insecure")]
    pub cert_hash: Option<String>,
    /// Accept any certificate (local development only). Without this or --cert-hash the
    /// server needs a certificate from a public CA.
    #[arg(long)]
    pub insecure: bool,
    /// TLS server name, when it differs from the address's host.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Frames per second this client sends at most (bursts of 5/3 of it); 0 = unpaced, for
    /// a gateway whose command limits are lifted. Default: 90, under the gateway's default
    /// per-session limit.
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
}

impl ChatArgs {
    /// The client options these flags describe.
    pub fn options(&self) -> anyhow::Result<ClientOptions> {
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        anyhow::ensure!(!servers.is_empty(), "no --server given");
        let trust = match (&self.cert_hash, self.insecure) {
            (Some(h), _) => Trust::cert_hash_hex(h)?,
            (None, true) => Trust::Insecure,
            (None, false) => Trust::System,
        };
        let credentials = match (&self.token, &self.nick) {
            (Some(t), _) => garou_client::Credentials::Token(t.trim().to_owned()),
            (None, Some(n)) => garou_client::Credentials::Nick(n.clone()),
            (None, None) => anyhow::bail!("give --nick or --token"),
        };
        let mut opts = ClientOptions::new(servers[0].clone(), credentials).trust(trust);
        opts.servers = servers;
        opts.server_name = self.server_name.clone();
        opts.client_name = concat!("garou-chat/", env!("CARGO_PKG_VERSION")).into();
        // A gateway that is restarting when the chat starts is waited for, as one that
        // restarts later is (terminal errors still fail at once).
        opts.connect_retry = ConnectRetry::patient();
        match self.rate {
            None => {}
            Some(0.0) => opts.rate = None,
            Some(r) if r.is_finite() && r > 0.0 => {
                opts.rate = Some(RateLimit {
                    per_sec: r,
                    burst: (r * 5.0 / 3.0).ceil().min(f64::from(u32::MAX)) as u32,
                })
            }
            Some(r) => anyhow::bail!("--rate {r}: give frames per second, 0 for unpaced"),
        }
        Ok(opts)
    }
}

/// Print a line to stdout and flush (scripts read it through a pipe). A closed stdout is
/// ignored: the chat keeps its connection semantics either way.
fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// Print an error and go on reading.
fn err_true(line: &str) -> bool {
    err(line);
    true
}

fn err(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
    let _ = e.flush();
}

/// Other users control message text and nicks: replace control characters so they cannot
/// break the one-line-per-event format or send escape sequences to the terminal.
pub(crate) fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// `1 member`, `2 members`.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `#room` for a room name (names may already start with `#`).
pub(crate) fn room_label(room: &str) -> String {
    if room.starts_with('#') {
        clean(room)
    } else {
        format!("#{}", clean(room))
    }
}

/// What the printer knows: direct rooms (named by the server, e.g. `dm:1:2`), what was
/// printed of each room, and the rooms whose history is loading.
#[derive(Debug, Default)]
pub struct View {
    /// Direct room -> the other party's nick.
    direct: HashMap<String, String>,
    /// Room -> its epoch and the last offset printed.
    seen: HashMap<String, Seen>,
    /// Rooms whose history is loading: what had been printed when it started, and the
    /// live lines held back until the history is out.
    loading: HashMap<String, Loading>,
}

/// How far a room was printed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// The room's epoch, once a join said it.
    epoch: Option<u64>,
    /// The last offset printed (any room event).
    last: Option<Offset>,
}

#[derive(Debug, Default)]
struct Loading {
    before: Seen,
    held: Vec<Line>,
}

impl View {
    fn is_direct(&self, room: &str) -> bool {
        // `:` is reserved for direct room names by the gateway.
        self.direct.contains_key(room) || room.contains(':')
    }

    fn label(&self, room: &str) -> String {
        match self.direct.get(room) {
            Some(peer) => format!("@{}", clean(peer)),
            None if self.is_direct(room) => format!("@{}", clean(room)),
            None => room_label(room),
        }
    }

    /// Learn a direct room's peer from events about someone other than us.
    fn learn(&mut self, room: &str, user: u64, nick: &str, me: u64) {
        if user != me && self.is_direct(room) {
            self.direct.insert(room.to_owned(), nick.to_owned());
        }
    }

    /// An event at `offset` of `room` was printed (or held to be).
    fn saw(&mut self, room: &str, offset: Offset) {
        let seen = self.seen.entry(room.to_owned()).or_default();
        seen.last = Some(seen.last.map_or(offset, |l| l.max(offset)));
    }

    /// A join told the room's epoch: offsets of another epoch are not comparable.
    fn note_epoch(&mut self, room: &str, epoch: u64) {
        let seen = self.seen.entry(room.to_owned()).or_default();
        if seen.epoch.is_some_and(|e| e != epoch) {
            seen.last = None;
        }
        seen.epoch = Some(epoch);
    }

    /// History of `room` starts loading: its live lines are held back until
    /// [`View::end_load`].
    fn begin_load(&mut self, room: &str) {
        let before = self.seen.get(room).copied().unwrap_or_default();
        self.loading.entry(room.to_owned()).or_insert(Loading {
            before,
            held: Vec::new(),
        });
    }

    /// `line` of `room` to print now, or `None` when it is held back.
    fn hold(&mut self, room: &str, line: Line) -> Option<Line> {
        match self.loading.get_mut(room) {
            Some(l) => {
                l.held.push(line);
                None
            }
            None => Some(line),
        }
    }

    /// The lines of a history page of `room`, skipping deleted messages and those printed
    /// already (when the page is of the epoch they were printed in).
    fn history_lines(&mut self, room: &str, page: &History, me: u64) -> Vec<Line> {
        let before = match self.loading.get(room) {
            Some(l) => l.before,
            None => self.seen.get(room).copied().unwrap_or_default(),
        };
        let skip_upto = if before.epoch.is_none_or(|e| e == page.epoch) {
            before.last
        } else {
            None
        };
        self.note_epoch(room, page.epoch);
        let mut lines = Vec::new();
        for m in &page.messages {
            if m.deleted || skip_upto.is_some_and(|last| m.offset <= last) {
                continue;
            }
            self.learn(room, m.author, &m.nick, me);
            self.saw(room, m.offset);
            lines.push(Line::Out(self.message_line(
                room,
                &m.nick,
                &m.text,
                m.attachment.as_deref(),
            )));
        }
        lines
    }

    /// History of `room` is out: the live lines held back meanwhile.
    fn end_load(&mut self, room: &str) -> Vec<Line> {
        self.loading.remove(room).map(|l| l.held).unwrap_or_default()
    }

    /// A chat message line: `[#room] <nick> text`, the same live and from history.
    fn message_line(&self, room: &str, nick: &str, text: &str, attachment: Option<&str>) -> String {
        let mut line = format!("[{}] <{}> {}", self.label(room), clean(nick), clean(text));
        if let Some(a) = attachment {
            line.push_str(&format!(" [attachment {}]", clean(a)));
        }
        line
    }
}

/// Where a formatted event goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Out(String),
    Err(String),
}

/// Format one event (`me`: our user id), updating what we know of direct rooms.
pub fn format_event(ev: &ClientEvent, view: &mut View, me: u64) -> Option<Line> {
    let line = match ev {
        ClientEvent::Session(ev) => return format_session(ev, view, me),
        ClientEvent::Disconnected { reason } if reason.starts_with("stopped for good") => {
            return Some(Line::Err(format!("error: {}", clean(reason))))
        }
        ClientEvent::Disconnected { reason } => format!("* disconnected: {}", clean(reason)),
        ClientEvent::Reconnecting { attempt, delay } => {
            format!(
                "* reconnecting in {:.1}s (attempt {attempt})",
                delay.as_secs_f64()
            )
        }
        ClientEvent::Reconnected { .. } => return None, // the session's Ready says it
    };
    Some(Line::Out(line))
}

fn format_session(ev: &Event, view: &mut View, me: u64) -> Option<Line> {
    let line = match ev {
        Event::Ready { session, nick, .. } => {
            format!("* connected as {} (session {session})", clean(nick))
        }
        Event::Welcome(m) => format!("* {}", clean(m)),
        Event::Rejoined {
            room,
            result: Ok(info),
        } if !info.resumed => format!(
            "* rejoined {}: missed messages could not be replayed, recent history follows",
            view.label(room)
        ),
        Event::Rejoined { room, result: Ok(_) } => format!("* rejoined {}", view.label(room)),
        Event::Rejoined { room, result: Err(f) } => {
            return Some(Line::Err(format!(
                "error: could not rejoin {}: {f}",
                room_label(room)
            )))
        }
        Event::Room { event, .. } => return format_room(event, view, me).map(Line::Out),
        Event::Presence { nick, online, .. } => format!(
            "* {} is {}",
            clean(nick),
            if *online { "online" } else { "offline" }
        ),
        Event::Promoted { room } => format!("* {} moved to its own stream", room_label(room)),
        Event::Demoted { room } => format!("* {} back on its shard stream", room_label(room)),
        Event::Throttled { retry_after_ms } => {
            return Some(Line::Err(format!(
                "warning: sending too fast, slow down for {retry_after_ms} ms"
            )))
        }
        Event::Shutdown { reason } => format!("* server shutting down: {}", clean(reason)),
        Event::Error(f) => return Some(Line::Err(format!("error: {f}"))),
        Event::Typing { .. } | Event::Receipt(_) | Event::Reply { .. } => return None,
    };
    Some(Line::Out(line))
}

fn format_room(event: &Message, view: &mut View, me: u64) -> Option<String> {
    if let Some((room, offset)) = event.room_offset() {
        view.saw(room, offset);
    }
    Some(match event {
        Message::RoomMessage(m) => {
            view.learn(&m.room, m.author, &m.nick, me);
            view.message_line(&m.room, &m.nick, &m.text, m.attachment.as_deref())
        }
        Message::MessageEdited(m) => format!(
            "* [{}] message {} edited: {}",
            view.label(&m.room),
            m.id,
            clean(&m.text)
        ),
        Message::MessageDeleted(m) => {
            format!("* [{}] message {} deleted", view.label(&m.room), m.id)
        }
        Message::ReactionChanged(m) => format!(
            "* [{}] {} {} {} on message {}",
            view.label(&m.room),
            clean(&m.nick),
            if m.added { "reacted" } else { "took back" },
            clean(&m.emoji),
            m.id
        ),
        Message::MemberJoined(m) => {
            view.learn(&m.room, m.user, &m.nick, me);
            if view.is_direct(&m.room) {
                return None; // opening a direct room is not news
            }
            format!("* {} joined {}", clean(&m.nick), room_label(&m.room))
        }
        Message::MemberLeft(m) => format!("* {} left {}", clean(&m.nick), view.label(&m.room)),
        Message::MemberUpdated(m) => format!(
            "* {} is now {} in {}",
            clean(&m.nick),
            m.role.as_str(),
            view.label(&m.room)
        ),
        Message::MemberModerated(m) => {
            use garou_client::ModAction::*;
            let what = match m.action {
                Kick => "was kicked from",
                Ban => "was banned from",
                Unban => "was unbanned in",
                Mute => "was muted in",
                Unmute => "was unmuted in",
            };
            let reason = if m.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", clean(&m.reason))
            };
            format!("* {} {what} {}{reason}", clean(&m.nick), view.label(&m.room))
        }
        Message::RoomRenamed(m) => format!("* {} is now titled \"{}\"", view.label(&m.room), clean(&m.title)),
        Message::RoomDeleted(m) => format!("* {} was deleted", view.label(&m.room)),
        _ => return None,
    })
}

/// Read stdin on a plain thread: tokio's stdin cannot be cancelled, which would hold up
/// runtime shutdown after `/quit` on a terminal; a detached thread simply dies with the
/// process. Lines are decoded lossily so one bad byte does not end the session.
fn spawn_stdin() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(256);
    std::thread::Builder::new()
        .name("garou-chat-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match stdin.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        if tx.blocking_send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .expect("spawn stdin thread");
    rx
}

/// A message waiting for its acknowledgement, with where it went.
type InFlight = BoxFuture<'static, (Target, Result<Sent, ClientError>)>;

#[derive(Debug, Clone)]
enum Target {
    Room(String),
    Direct(String),
}

/// The interactive state of one chat run.
struct Chat {
    client: Client,
    view: Arc<Mutex<View>>,
    /// Rooms joined from this terminal, most recent last; the last is the current room.
    joined: Vec<String>,
    inflight: FuturesUnordered<InFlight>,
    failed: usize,
}

impl Chat {
    fn current(&self) -> Option<&str> {
        self.joined.last().map(String::as_str)
    }

    /// Hand a message off and track its ack without waiting for it. While the client is
    /// reconnecting the message waits in its offline queue (a note says so) and goes out
    /// after the reconnect; only a full queue or a terminal error fails it.
    async fn send(&mut self, target: Target, text: String) {
        if let Some(e) = self.client.stopped() {
            self.failed += 1;
            return err(&format!("error: message not sent, the client stopped: {e}"));
        }
        if !self.client.is_connected() {
            out("* (queued: reconnecting)");
        }
        let pending = match &target {
            Target::Room(room) => self.client.send(room.as_str(), text).submit().await,
            Target::Direct(to) => self.client.direct(to.as_str(), text).submit().await,
        };
        self.inflight
            .push(Box::pin(async move { (target, pending.await) }));
    }

    fn acked(&mut self, target: Target, result: Result<Sent, ClientError>) {
        match (target, result) {
            (Target::Direct(to), Ok(sent)) => {
                let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                view.direct.insert(sent.room, to);
            }
            (Target::Room(_), Ok(_)) => {}
            (Target::Room(room), Err(e)) => {
                self.failed += 1;
                err(&format!(
                    "error: message to {} not delivered: {e}",
                    room_label(&room)
                ));
            }
            (Target::Direct(to), Err(e)) => {
                self.failed += 1;
                err(&format!("error: message to @{to} not delivered: {e}"));
            }
        }
    }

    /// Join, then print the room's recent history before its live lines.
    async fn join(&mut self, room: String) {
        lock(&self.view).begin_load(&room);
        match self.client.join(room.as_str()).await {
            Ok(info) => {
                self.joined.retain(|r| *r != room);
                self.joined.push(room.clone());
                let n = info.members.len().max(info.room.members as usize);
                lock(&self.view).note_epoch(&room, info.epoch);
                let header = format!("* now talking in {} ({})", room_label(&room), plural(n, "member"));
                load_history(&self.client, &self.view, &room, info.offset, Some(header)).await;
            }
            Err(e) => {
                let held = lock(&self.view).end_load(&room);
                held.into_iter().for_each(emit);
                err(&format!("error: cannot join {}: {e}", room_label(&room)))
            }
        }
    }

    async fn leave(&mut self, room: Option<String>) {
        let Some(room) = room.or_else(|| self.current().map(str::to_owned)) else {
            return err("error: no room to leave");
        };
        match self.client.leave(room.as_str()).await {
            Ok(()) => {
                self.joined.retain(|r| *r != room);
                out(&format!("* left {}", room_label(&room)));
                match self.current() {
                    Some(cur) => out(&format!("* now talking in {}", room_label(cur))),
                    None => out("* no current room (use /join ROOM)"),
                }
            }
            Err(e) => err(&format!("error: cannot leave {}: {e}", room_label(&room))),
        }
    }

    async fn rooms(&mut self) {
        match self.client.list_rooms().await {
            Ok(rooms) => {
                out(&format!("* {}:", plural(rooms.len(), "room")));
                let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                for r in rooms {
                    let (label, kind) = match r.kind {
                        RoomKind::Direct => (view.label(&r.name), "direct"),
                        RoomKind::Group => (room_label(&r.name), "group"),
                        RoomKind::Channel => (room_label(&r.name), "channel"),
                    };
                    let members = plural(r.members as usize, "member");
                    out(&format!("*   {label} ({kind}, {members})"));
                }
            }
            Err(e) => err(&format!("error: cannot list rooms: {e}")),
        }
    }

    async fn users(&mut self, room: Option<String>) {
        let Some(room) = room.or_else(|| self.current().map(str::to_owned)) else {
            return err("error: no room given and no current room");
        };
        match self.client.list_users(room.as_str()).await {
            Ok(users) => {
                let label = self.view.lock().unwrap_or_else(|e| e.into_inner()).label(&room);
                out(&format!("* {} in {label}:", plural(users.len(), "member")));
                for u in users {
                    let away = if u.online { "" } else { ", offline" };
                    out(&format!("*   {} ({}{away})", clean(&u.nick), u.role.as_str()));
                }
            }
            Err(e) => err(&format!(
                "error: cannot list members of {}: {e}",
                room_label(&room)
            )),
        }
    }

    /// Handle one line; false to stop reading.
    async fn line(&mut self, line: &str) -> bool {
        match parse_input(line) {
            Input::Nothing => {}
            Input::Say(text) => match self.current() {
                Some(room) => {
                    let room = room.to_owned();
                    self.send(Target::Room(room), text).await;
                }
                None => {
                    self.failed += 1;
                    err("error: not in a room; /join ROOM first (message dropped)");
                }
            },
            Input::Msg { to, text } => self.send(Target::Direct(to), text).await,
            Input::Join(room) => self.join(room).await,
            Input::Leave(room) => self.leave(room).await,
            Input::Rooms => self.rooms().await,
            Input::Users(room) => self.users(room).await,
            Input::Nick(nick) => match self.client.set_nick(nick).await {
                Ok(nick) => out(&format!("* you are now {}", clean(&nick))),
                Err(e) => err(&format!("error: cannot change nick: {e}")),
            },
            Input::Moderate {
                action,
                nick,
                secs,
                reason,
            } => {
                let Some(room) = self.current().map(str::to_owned) else {
                    return err_true("error: not in a room");
                };
                if let Err(e) = self.client.moderate(room, nick, action, secs, reason).await {
                    err(&format!("error: {e}"));
                }
            }
            Input::Invite(nick) => {
                let Some(room) = self.current().map(str::to_owned) else {
                    return err_true("error: not in a room");
                };
                if let Err(e) = self.client.invite(room, nick).await {
                    err(&format!("error: cannot invite: {e}"));
                }
            }
            Input::Title(title) => {
                let Some(room) = self.current().map(str::to_owned) else {
                    return err_true("error: not in a room");
                };
                if let Err(e) = self.client.rename_room(room, title).await {
                    err(&format!("error: cannot set the title: {e}"));
                }
            }
            Input::DeleteRoom => {
                let Some(room) = self.current().map(str::to_owned) else {
                    return err_true("error: not in a room");
                };
                if let Err(e) = self.client.delete_room(room).await {
                    err(&format!("error: cannot delete the room: {e}"));
                }
            }
            Input::Help => out(HELP),
            Input::Bad(usage) => err(&format!("error: {usage}")),
            Input::Quit => return false,
        }
        true
    }

    /// Wait (bounded) for every outstanding acknowledgement.
    async fn drain(&mut self) {
        let wait = tokio::time::timeout(ACK_WAIT, async {
            while let Some((target, result)) = self.inflight.next().await {
                self.acked(target, result);
            }
        });
        if wait.await.is_err() {
            let n = self.inflight.len();
            self.failed += n;
            err(&format!(
                "error: {n} message(s) not acknowledged within {}s",
                ACK_WAIT.as_secs()
            ));
        }
    }
}

fn lock(view: &Mutex<View>) -> std::sync::MutexGuard<'_, View> {
    view.lock().unwrap_or_else(|e| e.into_inner())
}

fn emit(line: Line) {
    match line {
        Line::Out(l) => out(&l),
        Line::Err(l) => err(&l),
    }
}

/// Print `header`, then the history of `room` before offset `before` (the first live
/// one), then the live lines held back meanwhile (see [`View::begin_load`]).
async fn load_history(
    client: &Client,
    view: &Mutex<View>,
    room: &str,
    before: Offset,
    header: Option<String>,
) {
    let page = client.history(room, Some(before), None, HISTORY_LINES).await;
    let me = client.user();
    let mut view = lock(view);
    if let Some(h) = header {
        out(&h);
    }
    match page {
        Ok(page) => view.history_lines(room, &page, me).into_iter().for_each(emit),
        Err(e) => err(&format!(
            "error: cannot load the history of {}: {e}",
            view.label(room)
        )),
    }
    view.end_load(room).into_iter().for_each(emit);
}

/// Print events until the stream ends. Printing happens under the view's lock, so history
/// printed by another task never interleaves with a room's live lines.
async fn print_events(mut events: garou_client::Events, client: Client, view: Arc<Mutex<View>>) {
    while let Some(ev) = events.next().await {
        let me = client.user();
        let mut v = lock(&view);
        if let ClientEvent::Session(Event::Rejoined {
            room,
            result: Ok(info),
        }) = &ev
        {
            if !info.resumed {
                // A gap the server could not replay: show what is recent instead.
                v.begin_load(room);
                let (client, view, room, before) = (client.clone(), view.clone(), room.clone(), info.offset);
                tokio::spawn(async move { load_history(&client, &view, &room, before, None).await });
            }
            v.note_epoch(room, info.epoch);
        }
        let Some(line) = format_event(&ev, &mut v, me) else {
            continue;
        };
        let line = match &ev {
            ClientEvent::Session(Event::Room { event, .. }) => match event.room_offset() {
                Some((room, _)) => v.hold(room, line),
                None => Some(line),
            },
            _ => Some(line),
        };
        if let Some(line) = line {
            emit(line);
        }
    }
}

/// Run the terminal chat until end of input or /quit.
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let servers = opts.servers.join(", ");
    let (client, events) = connect(opts)
        .await
        .with_context(|| format!("cannot connect to {servers}"))?;
    let view = Arc::new(Mutex::new(View::default()));
    let printer = tokio::spawn(print_events(events, client.clone(), view.clone()));
    let mut chat = Chat {
        client: client.clone(),
        view,
        joined: Vec::new(),
        inflight: FuturesUnordered::new(),
        failed: 0,
    };
    if let Some(room) = args.room.clone() {
        chat.join(room).await;
    }
    let mut lines = spawn_stdin();
    loop {
        tokio::select! {
            Some((target, result)) = chat.inflight.next(), if !chat.inflight.is_empty() => {
                chat.acked(target, result);
            }
            line = lines.recv() => match line {
                Some(line) => {
                    if !chat.line(&line).await {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    chat.drain().await;
    client.close().await;
    // Let the printer show what arrived before the close.
    let _ = tokio::time::timeout(Duration::from_secs(1), printer).await;
    anyhow::ensure!(chat.failed == 0, "{} message(s) were not delivered", chat.failed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use garou_client::protocol::{MemberJoined, RoomMessage};
    use garou_client::{JoinInfo, Role, StoredMessage};

    #[test]
    fn parses_commands() {
        assert_eq!(parse_input("hello there\n"), Input::Say("hello there".into()));
        assert_eq!(parse_input("  \r\n"), Input::Nothing);
        assert_eq!(parse_input("//me waves"), Input::Say("/me waves".into()));
        assert_eq!(
            parse_input("/msg bob hi there"),
            Input::Msg {
                to: "bob".into(),
                text: "hi there".into()
            }
        );
        assert_eq!(
            parse_input("/msg  bob   spaced  text\r\n"),
            Input::Msg {
                to: "bob".into(),
                text: "spaced  text".into()
            }
        );
        assert!(matches!(parse_input("/msg bob"), Input::Bad(_)));
        assert!(matches!(parse_input("/msg"), Input::Bad(_)));
        assert_eq!(parse_input("/join general"), Input::Join("general".into()));
        assert!(matches!(parse_input("/join"), Input::Bad(_)));
        assert!(matches!(parse_input("/join a b"), Input::Bad(_)));
        assert_eq!(parse_input("/leave"), Input::Leave(None));
        assert_eq!(parse_input("/leave x"), Input::Leave(Some("x".into())));
        assert_eq!(parse_input("/nick carol"), Input::Nick("carol".into()));
        assert!(matches!(parse_input("/nick"), Input::Bad(_)));
        assert_eq!(parse_input("/rooms"), Input::Rooms);
        assert_eq!(parse_input("/users"), Input::Users(None));
        assert_eq!(parse_input("/users #dev"), Input::Users(Some("#dev".into())));
        assert_eq!(parse_input("/QUIT"), Input::Quit);
        assert_eq!(parse_input("/help"), Input::Help);
        assert!(matches!(parse_input("/frobnicate"), Input::Bad(m) if m.contains("/frobnicate")));
    }

    fn room_msg(room: &str, author: u64, nick: &str, text: &str) -> ClientEvent {
        message(room, 1, author, nick, text)
    }

    fn msg_at(room: &str, offset: u64, nick: &str, text: &str) -> ClientEvent {
        message(room, offset, 2, nick, text)
    }

    fn message(room: &str, offset: u64, author: u64, nick: &str, text: &str) -> ClientEvent {
        ClientEvent::Session(Event::Room {
            event: RoomMessage {
                room: room.into(),
                offset,
                id: offset,
                author,
                nick: nick.into(),
                ts_ms: 0,
                text: text.into(),
                attachment: None,
            }
            .into(),
            via: garou_client::protocol::StreamKind::Shard(0),
        })
    }

    fn stored(offset: u64, nick: &str, text: &str, deleted: bool) -> StoredMessage {
        StoredMessage {
            offset,
            id: offset,
            author: 2,
            nick: nick.into(),
            ts_ms: 0,
            text: text.into(),
            edited: false,
            deleted,
            attachment: None,
            reactions: vec![],
        }
    }

    fn page(room: &str, epoch: u64, messages: Vec<StoredMessage>) -> History {
        History {
            room: room.into(),
            epoch,
            messages,
        }
    }

    fn outs(lines: Vec<Line>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| match l {
                Line::Out(l) => l,
                Line::Err(l) => panic!("stderr line {l}"),
            })
            .collect()
    }

    #[test]
    fn history_on_join_comes_before_the_live_lines() {
        let mut view = View::default();
        view.begin_load("general");
        // Live lines that arrive while the history loads are held back.
        let live = format_event(&msg_at("general", 10, "bob", "live"), &mut view, 1).unwrap();
        assert_eq!(view.hold("general", live), None);
        let other = format_event(&msg_at("dev", 3, "bob", "elsewhere"), &mut view, 1).unwrap();
        assert!(view.hold("dev", other).is_some(), "other rooms are not held");
        view.note_epoch("general", 4);
        let mut with_file = stored(9, "alice", "old two", false);
        with_file.attachment = Some("up-1".into());
        let p = page(
            "general",
            4,
            vec![
                stored(7, "alice", "old one", false),
                stored(8, "bob", "gone", true),
                with_file,
            ],
        );
        // Same format as live messages; deleted ones are skipped.
        assert_eq!(
            outs(view.history_lines("general", &p, 1)),
            vec![
                "[#general] <alice> old one",
                "[#general] <alice> old two [attachment up-1]"
            ]
        );
        assert_eq!(outs(view.end_load("general")), vec!["[#general] <bob> live"]);
        assert!(view.end_load("general").is_empty());
        // Not loading any more: lines go straight out.
        let line = format_event(&msg_at("general", 11, "bob", "next"), &mut view, 1).unwrap();
        assert!(view.hold("general", line).is_some());
    }

    #[test]
    fn history_after_a_gap_skips_what_was_printed() {
        let mut view = View::default();
        view.note_epoch("general", 4);
        for o in 5..=8 {
            format_event(&msg_at("general", o, "bob", "seen"), &mut view, 1);
        }
        view.begin_load("general");
        let p = page(
            "general",
            4,
            (6..=12)
                .map(|o| stored(o, "bob", &format!("m{o}"), false))
                .collect(),
        );
        let got = outs(view.history_lines("general", &p, 1));
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], "[#general] <bob> m9");
        view.end_load("general");

        // The room was reset (another epoch): its offsets start again, nothing is skipped.
        view.begin_load("general");
        view.note_epoch("general", 5);
        let p = page("general", 5, vec![stored(1, "bob", "new", false)]);
        assert_eq!(
            outs(view.history_lines("general", &p, 1)),
            vec!["[#general] <bob> new"]
        );
        view.end_load("general");
    }

    #[test]
    fn rejoined_says_whether_the_gap_was_replayed() {
        let mut view = View::default();
        let info = |resumed| JoinInfo {
            room: garou_client::RoomInfo {
                name: "general".into(),
                kind: RoomKind::Group,
                members: 2,
                title: String::new(),
            },
            role: Role::Member,
            offset: 5,
            members: vec![],
            epoch: 1,
            resumed,
            unread: 0,
        };
        let ev = |resumed| {
            ClientEvent::Session(Event::Rejoined {
                room: "general".into(),
                result: Ok(info(resumed)),
            })
        };
        assert_eq!(
            format_event(&ev(true), &mut view, 1),
            Some(Line::Out("* rejoined #general".into()))
        );
        let Some(Line::Out(l)) = format_event(&ev(false), &mut view, 1) else {
            panic!()
        };
        assert!(l.starts_with("* rejoined #general: missed messages"), "{l}");
    }

    #[test]
    fn formats_room_and_direct_messages() {
        let mut view = View::default();
        let me = 1;
        assert_eq!(
            format_event(&room_msg("general", 2, "alice", "hi"), &mut view, me),
            Some(Line::Out("[#general] <alice> hi".into()))
        );
        assert_eq!(
            format_event(&room_msg("#dev", 2, "alice", "a\nb\x1b[2J"), &mut view, me),
            Some(Line::Out("[#dev] <alice> a b [2J".into()))
        );
        // A direct room is labelled by the other party, learned from their messages...
        assert_eq!(
            format_event(&room_msg("dm:1:2", 2, "alice", "psst"), &mut view, me),
            Some(Line::Out("[@alice] <alice> psst".into()))
        );
        assert_eq!(
            format_event(&room_msg("dm:1:2", 1, "me", "yes?"), &mut view, me),
            Some(Line::Out("[@alice] <me> yes?".into()))
        );
        // ... or from their join, which itself is not printed.
        let joined = ClientEvent::Session(Event::Room {
            event: MemberJoined {
                room: "dm:1:3".into(),
                offset: 0,
                user: 3,
                nick: "bob".into(),
                role: Role::Member,
            }
            .into(),
            via: garou_client::protocol::StreamKind::Shard(0),
        });
        assert_eq!(format_event(&joined, &mut view, me), None);
        assert_eq!(
            format_event(&room_msg("dm:1:3", 1, "me", "hey bob"), &mut view, me),
            Some(Line::Out("[@bob] <me> hey bob".into()))
        );
    }

    #[test]
    fn formats_other_events_distinctly() {
        let mut view = View::default();
        let joined = ClientEvent::Session(Event::Room {
            event: MemberJoined {
                room: "general".into(),
                offset: 0,
                user: 2,
                nick: "alice".into(),
                role: Role::Member,
            }
            .into(),
            via: garou_client::protocol::StreamKind::Shard(0),
        });
        assert_eq!(
            format_event(&joined, &mut view, 1),
            Some(Line::Out("* alice joined #general".into()))
        );
        let lost = ClientEvent::Disconnected {
            reason: "gone".into(),
        };
        assert_eq!(
            format_event(&lost, &mut view, 1),
            Some(Line::Out("* disconnected: gone".into()))
        );
        let e = ClientEvent::Session(Event::Error(garou_client::Failure {
            code: garou_client::ErrorCode::Internal,
            message: "oops".into(),
        }));
        assert!(matches!(format_event(&e, &mut view, 1), Some(Line::Err(_))));
    }

    #[test]
    fn options_from_flags() {
        let args = ChatArgs {
            servers: vec!["a:1".into(), " b:2 ".into(), "".into()],
            nick: Some("n".into()),
            token: None,
            room: None,
            cert_hash: None,
            insecure: true,
            server_name: None,
            rate: None,
        };
        let o = args.options().unwrap();
        assert_eq!(o.servers, vec!["a:1".to_owned(), "b:2".to_owned()]);
        assert_eq!(o.trust, Trust::Insecure);
        assert_eq!(o.rate, Some(RateLimit::default()));
        let unpaced = ChatArgs {
            rate: Some(0.0),
            ..args.clone()
        };
        assert_eq!(unpaced.options().unwrap().rate, None);
        let paced = ChatArgs {
            rate: Some(30.0),
            ..args.clone()
        };
        assert_eq!(
            paced.options().unwrap().rate,
            Some(RateLimit {
                per_sec: 30.0,
                burst: 50
            })
        );
        assert!(ChatArgs {
            rate: Some(-1.0),
            ..args.clone()
        }
        .options()
        .is_err());
        let bad = ChatArgs {
            cert_hash: Some("xyz".into()),
            insecure: false,
            ..args
        };
        assert!(bad.options().is_err());
    }

    #[test]
    fn clap_accepts_repeated_and_comma_separated_servers() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            chat: ChatArgs,
        }
        let cli = Cli::parse_from(["chat", "--nick", "n", "--server", "a:1,b:2", "--server", "c:3"]);
        assert_eq!(cli.chat.servers, ["a:1", "b:2", "c:3"]);
        let cli = Cli::parse_from(["chat", "--nick", "n"]);
        assert_eq!(cli.chat.servers, ["127.0.0.1:4433"]);
        assert!(Cli::try_parse_from(["chat", "--nick", "n", "--insecure", "--cert-hash", "00"]).is_err());
    }
}
