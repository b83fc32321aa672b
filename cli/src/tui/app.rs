//! The TUI's state and its pure transition: [`App::update`] takes one [`AppEvent`] (a key,
//! a client event, the answer to an earlier effect) and returns the [`Effect`]s the I/O
//! loop must carry out. Nothing here touches the terminal or the network, so every
//! behaviour is tested without either.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use garou_client::protocol::{Event, MemberInfo, Message, Offset, RoomInfo, RoomKind, StoredMessage};
use garou_client::{ClientEvent, History, JoinInfo};

use crate::chat::{clean, plural, room_label};
use crate::command::{parse_input, Input, HELP};

/// Lines kept per room (older ones are dropped from the screen, not from the server).
pub const MAX_LINES: usize = 2000;

/// Lines of input history kept for ↑/↓.
pub const MAX_INPUT_HISTORY: usize = 500;

/// Longest input line, in characters.
pub const MAX_INPUT: usize = 4000;

/// One line of a room's message pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// Server time in ms since the epoch (none for local notices).
    pub ts_ms: Option<u64>,
    /// The room offset of a message (none for notices).
    pub offset: Option<Offset>,
    /// Author of a chat message; `None` for a notice.
    pub nick: Option<String>,
    /// The text, control characters replaced.
    pub text: String,
    /// Whether this notice reports an error.
    pub error: bool,
}

impl ChatLine {
    fn notice(text: impl Into<String>) -> Self {
        ChatLine {
            ts_ms: None,
            offset: None,
            nick: None,
            text: text.into(),
            error: false,
        }
    }

    fn error(text: impl Into<String>) -> Self {
        ChatLine {
            error: true,
            ..ChatLine::notice(text)
        }
    }

    fn message(offset: Offset, ts_ms: u64, nick: &str, text: &str, attachment: Option<&str>) -> Self {
        let mut text = clean(text);
        if let Some(a) = attachment {
            text.push_str(&format!(" [attachment {}]", clean(a)));
        }
        ChatLine {
            ts_ms: Some(ts_ms),
            offset: Some(offset),
            nick: Some(clean(nick)),
            text,
            error: false,
        }
    }
}

/// A room member as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Their nick.
    pub nick: String,
    /// Whether they have a session.
    pub online: bool,
}

/// One joined room (or the status pane, named [`STATUS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Room {
    /// The room's name on the server.
    pub name: String,
    /// Its lines, oldest first.
    pub lines: Vec<ChatLine>,
    /// Members by user id.
    pub members: BTreeMap<u64, Member>,
    /// Messages that arrived while another room was shown.
    pub unread: usize,
    /// For a direct room: the other party's nick, once known (the room is shown as
    /// `@nick` rather than its server name, e.g. `dm:1:2`).
    pub peer: Option<String>,
    /// The server said it is a direct room (names with `:` are direct rooms too).
    pub direct: bool,
    /// Lines scrolled back from the newest (0: the newest line is at the bottom and new
    /// ones follow). Kept when lines arrive, so what is read stays in place.
    pub scroll: usize,
    /// An older history page is loading (asked for by scrolling past the top).
    pub loading_older: bool,
    /// The oldest line shown is the room's first message: there is nothing older to load.
    pub at_start: bool,
}

impl Room {
    fn new(name: &str) -> Self {
        Room {
            name: name.to_owned(),
            ..Room::default()
        }
    }

    fn push(&mut self, line: ChatLine) {
        self.lines.push(line);
        if self.scroll > 0 {
            // Scrolled back: the lines read stay where they are.
            self.scroll += 1;
        }
        if self.lines.len() > MAX_LINES {
            let extra = self.lines.len() - MAX_LINES;
            self.lines.drain(..extra);
            self.scroll = self.scroll.min(self.lines.len().saturating_sub(1));
            self.at_start = false;
        }
    }

    /// Whether this is a direct room (`:` is reserved for their names by the gateway).
    pub fn is_direct(&self) -> bool {
        self.direct || self.peer.is_some() || self.name.contains(':')
    }

    /// The oldest message offset shown.
    fn oldest_offset(&self) -> Option<Offset> {
        self.lines.iter().find_map(|l| l.offset)
    }

    /// Learn a direct room's peer from someone other than `me` in it.
    fn learn_peer(&mut self, user: u64, nick: &str, me: u64) {
        if user != me && self.is_direct() {
            self.peer = Some(clean(nick));
        }
    }

    /// A direct room's peer from its member list (the member who is not `me`).
    fn peer_from_members(&mut self, me: u64) {
        if self.is_direct() {
            if let Some(m) = self.members.iter().find(|(u, _)| **u != me).map(|(_, m)| m) {
                self.peer = Some(m.nick.clone());
            }
        }
    }

    fn has_offset(&self, offset: Offset) -> bool {
        self.lines.iter().any(|l| l.offset == Some(offset))
    }
}

/// Name of the pane for notices that belong to no room.
pub const STATUS: &str = "*status*";

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Before the first session.
    Connecting,
    /// A session is up.
    Connected,
    /// Lost; reconnect attempt `attempt` starts after `delay_ms`.
    Reconnecting {
        /// 1 for the first attempt after a disconnect.
        attempt: u32,
        /// The wait before it.
        delay_ms: u64,
    },
    /// Lost, not yet retrying.
    Disconnected(String),
    /// Stopped for good (a terminal error).
    Stopped(String),
}

/// Something that happened, for [`App::update`].
#[derive(Debug, Clone)]
pub enum AppEvent {
    /// A key press.
    Key(KeyEvent),
    /// An event of the client.
    Client(ClientEvent),
    /// A join (from `/join`) succeeded.
    Joined(JoinInfo),
    /// A room's history page (after a join or a gap).
    History(History),
    /// The answer to `/rooms`.
    Rooms(Vec<RoomInfo>),
    /// The answer to `/users ROOM`.
    Users {
        /// The room asked about.
        room: String,
        /// Its members.
        users: Vec<MemberInfo>,
    },
    /// `/leave` succeeded.
    Left(String),
    /// `/nick` succeeded.
    NickChanged(String),
    /// A direct message to `to` was acked: it went to direct room `room`.
    DirectSent {
        /// The direct room.
        room: String,
        /// The nick it was sent to.
        to: String,
    },
    /// Loading a room's history failed.
    HistoryFailed {
        /// The room.
        room: String,
        /// Why.
        error: String,
    },
    /// A note for a room's pane (or [`STATUS`]).
    Notice {
        /// Where to show it.
        room: Option<String>,
        /// What to say.
        text: String,
        /// Whether it reports an error.
        error: bool,
    },
}

/// What the I/O loop must do for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send text to a room.
    Send {
        /// The room.
        room: String,
        /// The text.
        text: String,
    },
    /// Send a direct message.
    Direct {
        /// The nick.
        to: String,
        /// The text.
        text: String,
    },
    /// Join a room, then load its history (answer: [`AppEvent::Joined`], [`AppEvent::History`]).
    Join(String),
    /// Load the page of a room's history before `before` (after a gap, or scrolling back
    /// past the oldest line shown); answer: [`AppEvent::History`].
    History {
        /// The room.
        room: String,
        /// The first offset not wanted.
        before: Offset,
    },
    /// Leave a room.
    Leave(String),
    /// Change nick.
    Nick(String),
    /// List rooms.
    Rooms,
    /// List a room's members.
    Users(String),
    /// Any other command of [`Input`] that needs the current room (moderation, invite,
    /// title, delete-room).
    Command {
        /// The current room.
        room: String,
        /// The parsed command.
        input: Input,
    },
    /// Close the client and leave the terminal.
    Quit,
}

/// The whole state of the TUI.
#[derive(Debug, Clone)]
pub struct App {
    /// Our nick (as the server last said).
    pub nick: String,
    /// Our user id (0 before the first session).
    pub user: u64,
    /// The status pane first, then the joined rooms in join order.
    pub rooms: Vec<Room>,
    /// Index of the room shown.
    pub current: usize,
    /// The connection state.
    pub connection: Connection,
    /// The line being typed.
    pub input: String,
    /// Lines entered, oldest first (for ↑/↓).
    pub input_history: Vec<String>,
    /// Where ↑/↓ is in `input_history` (`None`: editing a new line).
    pub history_pos: Option<usize>,
    /// The new line put aside while browsing history.
    draft: String,
    /// Set once the user quit.
    pub quit: bool,
    /// Rows of the message pane (the I/O loop sets it from the terminal size): how far
    /// PageUp/PageDown scroll.
    pub page: usize,
}

impl App {
    /// A fresh app for `nick`, showing the status pane.
    pub fn new(nick: impl Into<String>) -> Self {
        App {
            nick: nick.into(),
            user: 0,
            rooms: vec![Room::new(STATUS)],
            current: 0,
            connection: Connection::Connecting,
            input: String::new(),
            input_history: Vec::new(),
            history_pos: None,
            draft: String::new(),
            quit: false,
            page: 10,
        }
    }

    /// The room shown.
    pub fn current_room(&self) -> &Room {
        &self.rooms[self.current]
    }

    /// How a room is shown: `#name`, `@peer` for a direct room (its server name until the
    /// peer is known), or the status pane's name.
    pub fn label(&self, name: &str) -> String {
        match self.room_index(name).map(|i| &self.rooms[i]) {
            _ if name == STATUS => STATUS.to_owned(),
            Some(Room { peer: Some(peer), .. }) => format!("@{peer}"),
            _ if name.contains(':') => format!("@{}", clean(name)),
            _ => room_label(name),
        }
    }

    /// The current chat room's name (not the status pane).
    fn current_name(&self) -> Option<String> {
        (self.current != 0).then(|| self.rooms[self.current].name.clone())
    }

    fn room_index(&self, name: &str) -> Option<usize> {
        self.rooms.iter().position(|r| r.name == name)
    }

    fn room_mut(&mut self, name: &str) -> &mut Room {
        let i = match self.room_index(name) {
            Some(i) => i,
            None => {
                self.rooms.push(Room::new(name));
                self.rooms.len() - 1
            }
        };
        &mut self.rooms[i]
    }

    /// Show room `i` and clear its unread count.
    pub fn switch_to(&mut self, i: usize) {
        if i < self.rooms.len() {
            self.current = i;
            self.rooms[i].unread = 0;
        }
    }

    fn note(&mut self, room: Option<&str>, line: ChatLine) {
        let i = room.and_then(|r| self.room_index(r)).unwrap_or(self.current);
        self.rooms[i].push(line);
    }

    fn note_here(&mut self, text: impl Into<String>) {
        let line = ChatLine::notice(text);
        self.rooms[self.current].push(line);
    }

    fn error_here(&mut self, text: impl Into<String>) {
        let line = ChatLine::error(text);
        self.rooms[self.current].push(line);
    }

    /// Apply one event; return what the I/O loop must do.
    pub fn update(&mut self, event: AppEvent) -> Vec<Effect> {
        match event {
            AppEvent::Key(key) => return self.key(key),
            AppEvent::Client(ev) => return self.client_event(ev),
            AppEvent::Joined(info) => self.joined(info),
            AppEvent::History(page) => self.history(page),
            AppEvent::Rooms(rooms) => {
                self.note_here(format!("{}:", plural(rooms.len(), "room")));
                for r in rooms {
                    let label = self.label(&r.name);
                    self.note_here(format!("  {label} ({})", plural(r.members as usize, "member")));
                }
            }
            AppEvent::Users { room, users } => {
                let i = self.room_index(&room);
                let label = self.label(&room);
                self.note_here(format!("{} in {label}:", plural(users.len(), "member")));
                for u in &users {
                    let away = if u.online { "" } else { ", offline" };
                    self.note_here(format!("  {} ({}{away})", clean(&u.nick), u.role.as_str()));
                }
                if let Some(i) = i {
                    self.rooms[i].members = users.into_iter().map(member).collect();
                    self.rooms[i].peer_from_members(self.user);
                }
            }
            AppEvent::Left(room) => {
                let label = self.label(&room);
                if let Some(i) = self.room_index(&room) {
                    self.rooms.remove(i);
                    if self.current >= i {
                        self.current = self.current.saturating_sub(1).min(self.rooms.len() - 1);
                    }
                }
                self.note_here(format!("left {label}"));
            }
            AppEvent::NickChanged(nick) => {
                self.nick = nick.clone();
                self.note_here(format!("you are now {}", clean(&nick)));
            }
            AppEvent::DirectSent { room, to } => {
                let r = self.room_mut(&room);
                r.direct = true;
                r.peer = Some(clean(&to));
                let label = self.label(&room);
                self.note(
                    Some(&room),
                    ChatLine::notice(format!("(direct message to {label})")),
                );
            }
            AppEvent::HistoryFailed { room, error } => {
                if let Some(i) = self.room_index(&room) {
                    self.rooms[i].loading_older = false;
                }
                let line = ChatLine::error(format!("cannot load history: {}", clean(&error)));
                self.note(Some(&room), line);
            }
            AppEvent::Notice { room, text, error } => {
                let line = if error {
                    ChatLine::error(text)
                } else {
                    ChatLine::notice(text)
                };
                self.note(room.as_deref(), line);
            }
        }
        Vec::new()
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') if ctrl => {
                self.quit = true;
                return vec![Effect::Quit];
            }
            KeyCode::Char('n') if ctrl => self.switch_to((self.current + 1) % self.rooms.len()),
            KeyCode::Char('p') if ctrl => {
                self.switch_to((self.current + self.rooms.len() - 1) % self.rooms.len())
            }
            KeyCode::Char('u') if ctrl => self.input.clear(),
            KeyCode::Tab => self.switch_to((self.current + 1) % self.rooms.len()),
            KeyCode::BackTab => self.switch_to((self.current + self.rooms.len() - 1) % self.rooms.len()),
            KeyCode::Char(c) if !ctrl && self.input.chars().count() < MAX_INPUT => self.input.push(c),
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::PageUp => return self.scroll_back(self.page.max(1)),
            KeyCode::PageDown => self.scroll_forward(self.page.max(1)),
            KeyCode::Up if key.modifiers.contains(KeyModifiers::SHIFT) => return self.scroll_back(1),
            KeyCode::Down if key.modifiers.contains(KeyModifiers::SHIFT) => self.scroll_forward(1),
            KeyCode::Char('b') if ctrl => return self.scroll_back(self.page.max(1)),
            KeyCode::Char('f') if ctrl => self.scroll_forward(self.page.max(1)),
            KeyCode::Home => return self.scroll_back(usize::MAX / 2),
            KeyCode::End => self.rooms[self.current].scroll = 0,
            KeyCode::Up => self.history_up(),
            KeyCode::Down => self.history_down(),
            KeyCode::Enter => return self.submit(),
            _ => {}
        }
        Vec::new()
    }

    /// Scroll the current room `n` lines back. Reaching its oldest line asks for the
    /// page of history before it (once at a time, until the room's start).
    fn scroll_back(&mut self, n: usize) -> Vec<Effect> {
        let page = self.page.max(1);
        let i = self.current;
        let room = &mut self.rooms[i];
        // The furthest back: the oldest line at the top of the pane.
        let max = room.lines.len().saturating_sub(page);
        let wanted = room.scroll.saturating_add(n);
        room.scroll = wanted.min(max);
        if i == 0 || wanted < max || room.at_start || room.loading_older {
            return Vec::new();
        }
        match room.oldest_offset() {
            Some(before) => {
                room.loading_older = true;
                vec![Effect::History {
                    room: room.name.clone(),
                    before,
                }]
            }
            None => Vec::new(),
        }
    }

    /// Scroll the current room `n` lines towards the newest.
    fn scroll_forward(&mut self, n: usize) {
        let room = &mut self.rooms[self.current];
        room.scroll = room.scroll.saturating_sub(n);
    }

    fn history_up(&mut self) {
        if self.input_history.is_empty() {
            return;
        }
        let pos = match self.history_pos {
            None => {
                self.draft = std::mem::take(&mut self.input);
                self.input_history.len() - 1
            }
            Some(p) => p.saturating_sub(1),
        };
        self.history_pos = Some(pos);
        self.input = self.input_history[pos].clone();
    }

    fn history_down(&mut self) {
        let Some(p) = self.history_pos else { return };
        if p + 1 < self.input_history.len() {
            self.history_pos = Some(p + 1);
            self.input = self.input_history[p + 1].clone();
        } else {
            self.history_pos = None;
            self.input = std::mem::take(&mut self.draft);
        }
    }

    /// Enter: run the line as `garou chat` would.
    fn submit(&mut self) -> Vec<Effect> {
        let line = std::mem::take(&mut self.input);
        self.history_pos = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.input_history.last() != Some(&line) {
            self.input_history.push(line.clone());
            if self.input_history.len() > MAX_INPUT_HISTORY {
                self.input_history.remove(0);
            }
        }
        let input = parse_input(&line);
        let here = self.current_name();
        let need_room = |app: &mut App| -> Option<String> {
            if here.is_none() {
                app.error_here("not in a room: /join ROOM first");
            }
            here.clone()
        };
        match input {
            Input::Nothing => vec![],
            Input::Say(text) => match need_room(self) {
                Some(room) => vec![Effect::Send { room, text }],
                None => vec![],
            },
            Input::Msg { to, text } => vec![Effect::Direct { to, text }],
            Input::Join(room) => match self.room_index(&room) {
                Some(i) => {
                    self.switch_to(i);
                    vec![]
                }
                None => vec![Effect::Join(room)],
            },
            Input::Leave(room) => match room.or_else(|| here.clone()) {
                Some(room) => vec![Effect::Leave(room)],
                None => {
                    self.error_here("no room to leave");
                    vec![]
                }
            },
            Input::Rooms => vec![Effect::Rooms],
            Input::Users(room) => match room.or_else(|| here.clone()) {
                Some(room) => vec![Effect::Users(room)],
                None => {
                    self.error_here("no room given and no current room");
                    vec![]
                }
            },
            Input::Nick(nick) => vec![Effect::Nick(nick)],
            Input::Help => {
                for l in HELP.lines() {
                    self.note_here(l.trim_start_matches("* "));
                }
                self.note_here("keys: Tab / Ctrl-N next room, Shift-Tab / Ctrl-P previous, ↑/↓ input history, PageUp/PageDown (Ctrl-B/Ctrl-F) scroll a page, Shift-↑/↓ a line, Home oldest (loads older history), End newest, Ctrl-C quit");
                vec![]
            }
            Input::Bad(usage) => {
                self.error_here(usage);
                vec![]
            }
            Input::Quit => {
                self.quit = true;
                vec![Effect::Quit]
            }
            other @ (Input::Moderate { .. } | Input::Invite(_) | Input::Title(_) | Input::DeleteRoom) => {
                match need_room(self) {
                    Some(room) => vec![Effect::Command { room, input: other }],
                    None => vec![],
                }
            }
        }
    }

    fn joined(&mut self, info: JoinInfo) {
        let name = info.room.name.clone();
        let me = self.user;
        let room = self.room_mut(&name);
        room.members = info.members.into_iter().map(member).collect();
        room.direct |= info.room.kind == RoomKind::Direct;
        room.peer_from_members(me);
        let n = room.members.len().max(info.room.members as usize);
        let label = self.label(&name);
        self.room_mut(&name).push(ChatLine::notice(format!(
            "now talking in {label} ({})",
            plural(n, "member")
        )));
        let i = self.room_index(&name).unwrap_or(0);
        self.switch_to(i);
    }

    /// A history page: messages not shown yet go before the live ones. A page shorter
    /// than asked for reaches the room's start.
    fn history(&mut self, page: History) {
        let me = self.user;
        let room = self.room_mut(&page.room);
        room.loading_older = false;
        if page.messages.len() < super::HISTORY_LINES as usize {
            room.at_start = true;
        }
        for m in &page.messages {
            room.learn_peer(m.author, &m.nick, me);
        }
        let older: Vec<ChatLine> = page
            .messages
            .iter()
            .filter(|m| !m.deleted && !room.has_offset(m.offset))
            .map(stored_line)
            .collect();
        // Keep offset order: the page goes before the first message newer than it.
        let last = older.last().and_then(|l| l.offset);
        let at = room
            .lines
            .iter()
            .position(|l| matches!((l.offset, last), (Some(o), Some(last)) if o > last))
            .unwrap_or(room.lines.len());
        room.lines.splice(at..at, older);
    }

    fn client_event(&mut self, ev: ClientEvent) -> Vec<Effect> {
        match ev {
            ClientEvent::Disconnected { reason } => {
                if let Some(r) = reason.strip_prefix("stopped for good: ") {
                    self.connection = Connection::Stopped(clean(r));
                    self.note(Some(STATUS), ChatLine::error(format!("stopped: {}", clean(r))));
                } else {
                    self.connection = Connection::Disconnected(clean(&reason));
                    self.note(
                        Some(STATUS),
                        ChatLine::notice(format!("disconnected: {}", clean(&reason))),
                    );
                }
            }
            ClientEvent::Reconnecting { attempt, delay } => {
                self.connection = Connection::Reconnecting {
                    attempt,
                    delay_ms: delay.as_millis() as u64,
                };
            }
            ClientEvent::Reconnected { nick, .. } => {
                self.nick = nick;
                self.connection = Connection::Connected;
                self.note(Some(STATUS), ChatLine::notice("reconnected"));
            }
            ClientEvent::Session(ev) => return self.session_event(ev),
        }
        Vec::new()
    }

    fn session_event(&mut self, ev: Event) -> Vec<Effect> {
        match ev {
            Event::Ready { user, nick, .. } => {
                self.user = user;
                self.nick = nick.clone();
                self.connection = Connection::Connected;
                self.note(
                    Some(STATUS),
                    ChatLine::notice(format!("connected as {}", clean(&nick))),
                );
            }
            Event::Welcome(m) => self.note(Some(STATUS), ChatLine::notice(clean(&m))),
            Event::Rejoined { room, result } => match result {
                Ok(info) => {
                    let me = self.user;
                    let r = self.room_mut(&room);
                    r.members = info.members.into_iter().map(member).collect();
                    r.direct |= info.room.kind == RoomKind::Direct;
                    r.peer_from_members(me);
                    let label = self.label(&room);
                    let r = self.room_mut(&room);
                    if info.resumed {
                        r.push(ChatLine::notice(format!("rejoined {label}")));
                    } else {
                        r.push(ChatLine::notice(format!(
                            "rejoined {label}: missed messages could not be replayed, recent history follows"
                        )));
                        return vec![Effect::History {
                            room,
                            before: info.offset,
                        }];
                    }
                }
                Err(f) => {
                    let line = ChatLine::error(format!("could not rejoin {}: {f}", self.label(&room)));
                    self.note(Some(&room), line);
                }
            },
            Event::Room { event, .. } => self.room_event(event),
            Event::Presence { user, online, .. } => {
                for r in &mut self.rooms {
                    if let Some(m) = r.members.get_mut(&user) {
                        m.online = online;
                    }
                }
            }
            Event::Shutdown { reason } => self.note(
                Some(STATUS),
                ChatLine::notice(format!("server shutting down: {}", clean(&reason))),
            ),
            Event::Throttled { retry_after_ms } => self.note(
                None,
                ChatLine::error(format!("sending too fast, slow down for {retry_after_ms} ms")),
            ),
            Event::Error(f) => self.note(None, ChatLine::error(format!("error: {f}"))),
            _ => {}
        }
        Vec::new()
    }

    fn room_event(&mut self, event: Message) {
        let shown = self.current;
        let (room, line, counts) = match event {
            Message::RoomMessage(m) => {
                if self
                    .room_index(&m.room)
                    .is_some_and(|i| self.rooms[i].has_offset(m.offset))
                {
                    return;
                }
                let line = ChatLine::message(m.offset, m.ts_ms, &m.nick, &m.text, m.attachment.as_deref());
                let me = self.user;
                self.room_mut(&m.room).learn_peer(m.author, &m.nick, me);
                (m.room, line, m.author != self.user)
            }
            Message::MemberJoined(j) => {
                let me = self.user;
                let r = self.room_mut(&j.room);
                r.learn_peer(j.user, &j.nick, me);
                r.members.insert(
                    j.user,
                    Member {
                        nick: clean(&j.nick),
                        online: true,
                    },
                );
                let text = format!("{} joined", clean(&j.nick));
                (j.room, ChatLine::notice(text), false)
            }
            Message::MemberLeft(l) => {
                self.room_mut(&l.room).members.remove(&l.user);
                let text = format!("{} left", clean(&l.nick));
                (l.room, ChatLine::notice(text), false)
            }
            Message::RoomRenamed(m) => {
                let text = format!("now titled \"{}\"", clean(&m.title));
                (m.room, ChatLine::notice(text), false)
            }
            Message::RoomDeleted(m) => (m.room, ChatLine::notice("the room was deleted"), false),
            _ => return,
        };
        let i = match self.room_index(&room) {
            Some(i) => i,
            None => {
                self.rooms.push(Room::new(&room));
                self.rooms.len() - 1
            }
        };
        let r = &mut self.rooms[i];
        r.push(line);
        if counts && i != shown {
            r.unread += 1;
        }
    }
}

fn member(m: MemberInfo) -> (u64, Member) {
    (
        m.user,
        Member {
            nick: clean(&m.nick),
            online: m.online,
        },
    )
}

fn stored_line(m: &StoredMessage) -> ChatLine {
    ChatLine::message(m.offset, m.ts_ms, &m.nick, &m.text, m.attachment.as_deref())
}
