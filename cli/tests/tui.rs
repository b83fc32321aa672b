//! `garou tui` without a terminal: the pure state ([`App::update`]) for command history,
//! unread counts and reconnect status, and the view rendered into ratatui's `TestBackend`
//! (rooms, messages with timestamps and history, members with online state, input line).

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use garou_cli::tui::app::{App, AppEvent, Connection, Effect, STATUS};
use garou_cli::tui::theme::Theme;
use garou_cli::tui::view::{status_text, view};
use garou_client::protocol::{
    Event, MemberInfo, MemberJoined, MemberLeft, RoomInfo, RoomKind, RoomMessage, StreamKind,
};
use garou_client::{ClientEvent, History, JoinInfo, Role, StoredMessage};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const ME: u64 = 1;

fn key(code: KeyCode) -> AppEvent {
    AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> AppEvent {
    AppEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Type `text` and press Enter; the effects of the Enter.
fn type_line(app: &mut App, text: &str) -> Vec<Effect> {
    for c in text.chars() {
        assert!(app.update(key(KeyCode::Char(c))).is_empty());
    }
    app.update(key(KeyCode::Enter))
}

fn member(user: u64, nick: &str, online: bool) -> MemberInfo {
    MemberInfo {
        user,
        nick: nick.into(),
        role: Role::Member,
        online,
    }
}

fn joined(room: &str, offset: u64, members: Vec<MemberInfo>) -> AppEvent {
    AppEvent::Joined(JoinInfo {
        room: RoomInfo {
            name: room.into(),
            kind: RoomKind::Group,
            members: members.len() as u32,
            title: String::new(),
        },
        role: Role::Member,
        offset,
        members,
        epoch: 1,
        resumed: false,
        unread: 0,
    })
}

fn live(room: &str, offset: u64, author: u64, nick: &str, text: &str) -> AppEvent {
    AppEvent::Client(ClientEvent::Session(Event::Room {
        event: RoomMessage {
            room: room.into(),
            offset,
            id: offset,
            author,
            nick: nick.into(),
            // 2026-12-07 09:41:00 UTC
            ts_ms: 1_796_636_460_000,
            text: text.into(),
            attachment: None,
        }
        .into(),
        via: StreamKind::Shard(0),
    }))
}

fn stored(offset: u64, nick: &str, text: &str) -> StoredMessage {
    StoredMessage {
        offset,
        id: offset,
        author: 2,
        nick: nick.into(),
        // 08:05 UTC
        ts_ms: 1_796_630_700_000,
        text: text.into(),
        edited: false,
        deleted: false,
        attachment: None,
        reactions: vec![],
    }
}

fn ready() -> AppEvent {
    AppEvent::Client(ClientEvent::Session(Event::Ready {
        session: 7,
        user: ME,
        nick: "me".into(),
        num_shards: 1,
    }))
}

/// An app in #general with bob (online) and carol (offline), two messages of history
/// and one live message, plus #dev with one unread message.
fn chatting() -> App {
    let mut app = App::new("me");
    app.update(ready());
    app.update(joined(
        "general",
        3,
        vec![
            member(ME, "me", true),
            member(2, "bob", true),
            member(3, "carol", false),
        ],
    ));
    // A live line can arrive before the history page: the page still goes first.
    app.update(live("general", 3, 2, "bob", "live and well"));
    app.update(AppEvent::History(History {
        room: "general".into(),
        epoch: 1,
        messages: vec![stored(1, "bob", "from history"), stored(2, "carol", "me too")],
    }));
    app.update(joined("dev", 0, vec![member(ME, "me", true)]));
    app.switch_to(1); // #general
    app.update(live("dev", 0, 2, "bob", "in dev"));
    app
}

fn render(app: &App, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view(app, &Theme::default(), f)).unwrap();
    let buf = terminal.backend().buffer();
    buf.content
        .chunks(width as usize)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect()
}

fn screen_has(screen: &[String], needle: &str) -> bool {
    screen.iter().any(|row| row.contains(needle))
}

#[test]
fn the_screen_shows_rooms_messages_members_and_the_input_line() {
    let mut app = chatting();
    for c in "hello wor".chars() {
        app.update(key(KeyCode::Char(c)));
    }
    let screen = render(&app, 100, 20);
    let text = screen.join("\n");
    println!("{text}");
    for needle in [
        "Rooms",
        STATUS,
        "#general",
        "#dev (1)",
        "08:05 <bob> from history",
        "08:05 <carol> me too",
        "09:41 <bob> live and well",
        "now talking in #general (3 members)",
        "Members 2/3",
        "● bob",
        "● me",
        "○ carol",
        "me> hello wor",
        "connected as me",
    ] {
        assert!(screen_has(&screen, needle), "{needle:?} not on screen:\n{text}");
    }
    // History before the live line, in offset order.
    let row = |needle: &str| screen.iter().position(|r| r.contains(needle)).unwrap();
    assert!(row("from history") < row("me too"));
    assert!(row("me too") < row("live and well"));
    // The members pane is right of the messages, the rooms left of them.
    let general = &screen[row("live and well")];
    assert!(general.find("live and well").unwrap() > 20);
    assert!(screen[row("○ carol")].find("○ carol").unwrap() > 70);
}

#[test]
fn a_narrow_terminal_still_renders() {
    let app = chatting();
    let screen = render(&app, 50, 8);
    assert!(screen_has(&screen, "me>"), "{}", screen.join("\n"));
}

#[test]
fn up_and_down_walk_the_command_history_and_keep_the_draft() {
    let mut app = chatting();
    assert_eq!(
        type_line(&mut app, "first"),
        vec![Effect::Send {
            room: "general".into(),
            text: "first".into()
        }]
    );
    assert_eq!(
        type_line(&mut app, "/users"),
        vec![Effect::Users("general".into())]
    );
    assert_eq!(
        type_line(&mut app, "/users"),
        vec![Effect::Users("general".into())]
    );
    assert_eq!(app.input_history, ["first", "/users"], "repeats are kept once");
    for c in "draft".chars() {
        app.update(key(KeyCode::Char(c)));
    }
    app.update(key(KeyCode::Up));
    assert_eq!(app.input, "/users");
    app.update(key(KeyCode::Up));
    assert_eq!(app.input, "first");
    app.update(key(KeyCode::Up));
    assert_eq!(app.input, "first", "the oldest line stays");
    app.update(key(KeyCode::Down));
    assert_eq!(app.input, "/users");
    app.update(key(KeyCode::Down));
    assert_eq!(app.input, "draft", "below the newest line: the draft again");
    app.update(key(KeyCode::Up));
    app.update(key(KeyCode::Up));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        vec![Effect::Send {
            room: "general".into(),
            text: "first".into()
        }],
        "a recalled line runs again"
    );
    assert_eq!(app.input, "");
}

#[test]
fn commands_are_those_of_garou_chat() {
    let mut app = chatting();
    assert_eq!(
        type_line(&mut app, "/join rust"),
        vec![Effect::Join("rust".into())]
    );
    assert_eq!(
        type_line(&mut app, "/join dev"),
        Vec::<Effect>::new(),
        "a joined room is switched to"
    );
    assert_eq!(app.current_room().name, "dev");
    assert_eq!(type_line(&mut app, "/leave"), vec![Effect::Leave("dev".into())]);
    assert_eq!(type_line(&mut app, "/rooms"), vec![Effect::Rooms]);
    assert_eq!(type_line(&mut app, "/nick neo"), vec![Effect::Nick("neo".into())]);
    assert_eq!(
        type_line(&mut app, "/msg bob psst"),
        vec![Effect::Direct {
            to: "bob".into(),
            text: "psst".into()
        }]
    );
    assert!(type_line(&mut app, "/help").is_empty());
    assert!(app
        .current_room()
        .lines
        .iter()
        .any(|l| l.text.contains("/join ROOM")));
    assert!(type_line(&mut app, "/frobnicate").is_empty());
    assert!(app
        .current_room()
        .lines
        .iter()
        .any(|l| l.error && l.text.contains("/frobnicate")));
    app.update(AppEvent::Left("dev".into()));
    assert!(app.rooms.iter().all(|r| r.name != "dev"));
    assert_eq!(type_line(&mut app, "/quit"), vec![Effect::Quit]);
    assert!(app.quit);
    // In the status pane there is no room to talk to.
    let mut app = App::new("me");
    assert!(type_line(&mut app, "hello").is_empty());
    assert!(app.current_room().lines.iter().any(|l| l.error));
}

#[test]
fn unread_counts_grow_in_other_rooms_and_clear_when_shown() {
    let mut app = chatting();
    let dev = |app: &App| app.rooms.iter().find(|r| r.name == "dev").unwrap().unread;
    assert_eq!(dev(&app), 1);
    app.update(live("dev", 1, 2, "bob", "again"));
    app.update(live("dev", 1, 2, "bob", "again")); // a duplicate offset is not counted
    app.update(live("dev", 2, ME, "me", "mine")); // our own messages are not unread
    assert_eq!(dev(&app), 2);
    app.update(live("general", 4, 2, "bob", "here"));
    assert_eq!(app.current_room().unread, 0, "the room shown has no unread");
    app.update(key(KeyCode::Tab));
    assert_eq!(app.current_room().name, "dev");
    assert_eq!(dev(&app), 0);
    app.update(ctrl('p'));
    assert_eq!(app.current_room().name, "general");
}

#[test]
fn reconnect_status_follows_the_client() {
    let mut app = chatting();
    assert_eq!(app.connection, Connection::Connected);
    app.update(AppEvent::Client(ClientEvent::Disconnected {
        reason: "connection lost: timed out".into(),
    }));
    assert!(matches!(app.connection, Connection::Disconnected(_)));
    app.update(AppEvent::Client(ClientEvent::Reconnecting {
        attempt: 2,
        delay: Duration::from_millis(1500),
    }));
    assert_eq!(
        app.connection,
        Connection::Reconnecting {
            attempt: 2,
            delay_ms: 1500
        }
    );
    assert!(status_text(&app).contains("reconnecting (attempt 2, in 1.5s)"));
    let screen = render(&app, 120, 20);
    assert!(
        screen_has(&screen, "reconnecting (attempt 2"),
        "{}",
        screen.join("\n")
    );
    // Typing meanwhile still sends (the client queues it).
    assert_eq!(
        type_line(&mut app, "still here"),
        vec![Effect::Send {
            room: "general".into(),
            text: "still here".into()
        }]
    );
    app.update(AppEvent::Client(ClientEvent::Reconnected {
        session: 8,
        user: ME,
        nick: "me".into(),
    }));
    assert_eq!(app.connection, Connection::Connected);
    // A rejoin that could not replay the gap asks for the history again.
    let effects = app.update(AppEvent::Client(ClientEvent::Session(Event::Rejoined {
        room: "general".into(),
        result: Ok(JoinInfo {
            room: RoomInfo {
                name: "general".into(),
                kind: RoomKind::Group,
                members: 2,
                title: String::new(),
            },
            role: Role::Member,
            offset: 9,
            members: vec![member(ME, "me", true), member(2, "bob", false)],
            epoch: 1,
            resumed: false,
            unread: 0,
        }),
    })));
    assert_eq!(
        effects,
        vec![Effect::History {
            room: "general".into(),
            before: 9
        }]
    );
    // A terminal error: stopped for good.
    app.update(AppEvent::Client(ClientEvent::Disconnected {
        reason: "stopped for good: untrusted server certificate: x".into(),
    }));
    assert!(matches!(app.connection, Connection::Stopped(ref why) if why.contains("certificate")));
}

#[test]
fn members_follow_joins_leaves_and_presence() {
    let mut app = chatting();
    let general = |app: &App| app.rooms.iter().find(|r| r.name == "general").unwrap().clone();
    app.update(AppEvent::Client(ClientEvent::Session(Event::Room {
        event: MemberJoined {
            room: "general".into(),
            offset: 5,
            user: 4,
            nick: "dave".into(),
            role: Role::Member,
        }
        .into(),
        via: StreamKind::Shard(0),
    })));
    assert!(general(&app).members.get(&4).is_some_and(|m| m.online));
    app.update(AppEvent::Client(ClientEvent::Session(Event::Presence {
        user: 3,
        nick: "carol".into(),
        online: true,
    })));
    assert!(general(&app).members[&3].online);
    app.update(AppEvent::Client(ClientEvent::Session(Event::Room {
        event: MemberLeft {
            room: "general".into(),
            offset: 6,
            user: 2,
            nick: "bob".into(),
        }
        .into(),
        via: StreamKind::Shard(0),
    })));
    assert!(!general(&app).members.contains_key(&2));
    let screen = render(&app, 100, 20);
    assert!(screen_has(&screen, "Members 3/3"), "{}", screen.join("\n"));
}

#[test]
fn the_newest_line_stays_visible_when_older_ones_wrap_or_overflow() {
    let mut app = chatting();
    for i in 0..40 {
        app.update(live(
            "general",
            10 + i,
            2,
            "bob",
            &format!("line {i} {}", "long words ".repeat(i as usize % 7)),
        ));
    }
    app.update(live(
        "general",
        60,
        2,
        "bob",
        &format!("{} the end", "wrapping ".repeat(12)),
    ));
    let screen = render(&app, 80, 14);
    assert!(screen_has(&screen, "the end"), "{}", screen.join("\n"));
    assert!(
        !screen_has(&screen, "from history"),
        "the oldest lines scrolled out"
    );
}

/// Stored messages `from..to` of bob, "old N".
fn old_page(room: &str, from: u64, to: u64) -> AppEvent {
    AppEvent::History(History {
        room: room.into(),
        epoch: 1,
        messages: (from..to)
            .map(|o| stored(o, "bob", &format!("old {o}")))
            .collect(),
    })
}

/// The row of the first line holding `needle`, if shown.
fn row_of(screen: &[String], needle: &str) -> Option<usize> {
    screen.iter().position(|r| r.contains(needle))
}

#[test]
fn page_up_scrolls_back_and_past_the_top_loads_older_history_until_the_start() {
    const W: u16 = 80;
    const H: u16 = 14;
    let mut app = App::new("me");
    app.update(ready());
    app.page = garou_cli::tui::view::message_rows(H);
    assert_eq!(app.page, 8);
    app.update(joined(
        "big",
        200,
        vec![member(ME, "me", true), member(2, "bob", true)],
    ));
    // A full page of history (the TUI asks for 50): there may be more before it.
    app.update(old_page("big", 150, 200));
    app.update(live("big", 200, 2, "bob", "freshest"));
    let screen = render(&app, W, H);
    assert!(screen_has(&screen, "freshest"), "{}", screen.join("\n"));
    assert!(!screen_has(&screen, "old 190"));

    // PageUp: a page back; the title says how much is below.
    assert!(app.update(key(KeyCode::PageUp)).is_empty());
    let screen = render(&app, W, H);
    let text = screen.join("\n");
    assert!(!screen_has(&screen, "freshest"), "{text}");
    assert!(screen_has(&screen, "old 192"), "{text}");
    assert!(screen_has(&screen, "8 newer below"), "{text}");
    // Shift-↓ and Ctrl-B move by a line and a page as well; PageDown back to the newest.
    app.update(AppEvent::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::SHIFT)));
    assert_eq!(app.current_room().scroll, 7);
    app.update(ctrl('b'));
    assert_eq!(app.current_room().scroll, 15);
    app.update(key(KeyCode::PageDown));
    app.update(key(KeyCode::PageDown));
    assert_eq!(app.current_room().scroll, 0);
    assert!(screen_has(&render(&app, W, H), "freshest"));

    // Paging back to the oldest line asks (once) for the page before it.
    let mut asked = Vec::new();
    for _ in 0..10 {
        asked.extend(app.update(key(KeyCode::PageUp)));
    }
    assert_eq!(
        asked,
        vec![Effect::History {
            room: "big".into(),
            before: 150
        }]
    );
    let screen = render(&app, W, H);
    let text = screen.join("\n");
    assert_eq!(row_of(&screen, "loading older messages"), Some(1), "{text}");
    assert!(screen_has(&screen, "now talking in #big"), "{text}");
    assert!(screen_has(&screen, "old 150"), "{text}");

    // The older page goes above; the lines read stay on screen (no jump to the top
    // of the new page, nor to the newest).
    app.update(old_page("big", 100, 150));
    let after = render(&app, W, H);
    let text = after.join("\n");
    for o in 150..=155 {
        assert!(screen_has(&after, &format!("old {o}")), "{text}");
    }
    assert!(!screen_has(&after, "loading older"), "{text}");
    // A live line meanwhile does not move the view either.
    app.update(live("big", 201, 2, "bob", "newer still"));
    let now = render(&app, W, H);
    assert_eq!(now[1..9], after[1..9], "{}", now.join("\n"));
    assert!(screen_has(&now, "45 newer below"), "{}", now.join("\n"));
    app.update(key(KeyCode::PageUp));
    let screen = render(&app, W, H);
    assert!(screen_has(&screen, "old 146"), "{}", screen.join("\n"));

    // Home: as far back as loaded, asking for more; a short page is the room's start.
    assert_eq!(
        app.update(key(KeyCode::Home)),
        vec![Effect::History {
            room: "big".into(),
            before: 100
        }]
    );
    app.update(old_page("big", 50, 100));
    assert_eq!(
        app.update(key(KeyCode::Home)),
        vec![Effect::History {
            room: "big".into(),
            before: 50
        }]
    );
    app.update(old_page("big", 1, 50));
    assert!(
        app.update(key(KeyCode::Home)).is_empty(),
        "nothing older to ask for"
    );
    let screen = render(&app, W, H);
    let text = screen.join("\n");
    println!("{text}");
    assert_eq!(row_of(&screen, "— start of #big —"), Some(1), "{text}");
    assert!(screen_has(&screen, "08:05 <bob> old 1"), "{text}");
    assert!(!screen_has(&screen, "freshest"), "{text}");
    // End: back to the newest, following new lines again.
    app.update(key(KeyCode::End));
    app.update(live("big", 202, 2, "bob", "the latest"));
    let screen = render(&app, W, H);
    let text = screen.join("\n");
    assert!(screen_has(&screen, "the latest"), "{text}");
    assert!(!screen_has(&screen, "newer below"), "{text}");
    let lines = &app.current_room().lines;
    let offsets: Vec<u64> = lines.iter().filter_map(|l| l.offset).collect();
    assert_eq!(
        offsets,
        (1..=202).collect::<Vec<_>>(),
        "every message once, in order"
    );
}

#[test]
fn the_status_pane_and_a_short_room_never_ask_for_older_history() {
    let mut app = chatting(); // #general's history page was short: its start
    assert!(app.update(key(KeyCode::PageUp)).is_empty());
    assert!(screen_has(&render(&app, 100, 20), "— start of #general —"));
    app.switch_to(0);
    assert!(app.update(key(KeyCode::Home)).is_empty());
}

#[test]
fn direct_rooms_are_labelled_with_the_other_persons_nick() {
    let mut app = chatting();
    // Bob writes to us first: his message names the room.
    app.update(live("dm:1:2", 0, 2, "bob", "psst"));
    // We write to zoe: the ack names the room.
    app.update(AppEvent::DirectSent {
        room: "dm:1:5".into(),
        to: "zoe".into(),
    });
    // A direct room joined (or rejoined) is named by its other member.
    app.update(AppEvent::Joined(JoinInfo {
        room: RoomInfo {
            name: "dm:1:3".into(),
            kind: RoomKind::Direct,
            members: 2,
            title: String::new(),
        },
        role: Role::Member,
        offset: 0,
        members: vec![member(ME, "me", true), member(3, "carol", false)],
        epoch: 1,
        resumed: false,
        unread: 0,
    }));
    let screen = render(&app, 100, 20);
    let text = screen.join("\n");
    println!("{text}");
    for needle in ["@bob (1)", "@zoe", "@carol", "now talking in @carol"] {
        assert!(screen_has(&screen, needle), "{needle:?} not on screen:\n{text}");
    }
    assert!(!screen_has(&screen, "dm:"), "no raw direct room name:\n{text}");
    assert_eq!(app.label("dm:1:2"), "@bob");
    // Shown, its pane is titled by the nick too, and our own lines do not rename it.
    let i = app.rooms.iter().position(|r| r.name == "dm:1:2").unwrap();
    app.switch_to(i);
    app.update(live("dm:1:2", 1, ME, "me", "yes?"));
    let screen = render(&app, 100, 20);
    let text = screen.join("\n");
    assert!(screen_has(&screen, "┌@bob"), "{text}");
    assert!(screen_has(&screen, "<me> yes?"), "{text}");
    assert!(!screen_has(&screen, "dm:"), "{text}");
    // Before anything names the peer, the raw name is all there is.
    assert_eq!(App::new("me").label("dm:7:8"), "@dm:7:8");
}
