//! Drawing an [`App`]: rooms on the left (with unread counts), the current room's lines in
//! the middle (scrolled back by PageUp, older history loaded past the top; direct
//! rooms titled `@nick`), its members on the right (online first), the input line and a status bar
//! with the connection state below.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, ChatLine, Connection, STATUS};
use super::theme::Theme;

/// `HH:MM` (UTC) of a server timestamp.
pub fn clock(ts_ms: u64) -> String {
    let secs = (ts_ms / 1000) % 86_400;
    format!("{:02}:{:02}", secs / 3600, (secs / 60) % 60)
}

/// Rows of the message pane on a terminal `height` rows tall (what [`view`] lays out).
pub fn message_rows(height: u16) -> usize {
    height.saturating_sub(INPUT_ROWS + STATUS_ROWS + 2) as usize
}

const INPUT_ROWS: u16 = 3;
const STATUS_ROWS: u16 = 1;

/// Draw the whole screen.
pub fn view(app: &App, theme: &Theme, frame: &mut Frame) {
    let [main, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(INPUT_ROWS),
        Constraint::Length(STATUS_ROWS),
    ])
    .areas(frame.area());
    let [rooms, messages, members] = Layout::horizontal([
        Constraint::Length(20),
        Constraint::Min(20),
        Constraint::Length(20),
    ])
    .areas(main);
    draw_rooms(app, theme, frame, rooms);
    draw_messages(app, theme, frame, messages);
    draw_members(app, theme, frame, members);
    draw_input(app, theme, frame, input);
    draw_status(app, theme, frame, status);
}

fn block<'a>(title: &'a str, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(theme.border))
        .title(title)
}

fn draw_rooms(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let items: Vec<ListItem> = app
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut style = Style::default();
            if i == app.current {
                style = style.fg(theme.accent).add_modifier(Modifier::BOLD);
            }
            let mut spans = vec![Span::styled(app.label(&r.name), style)];
            if r.unread > 0 {
                spans.push(Span::styled(
                    format!(" ({})", r.unread),
                    Style::default().fg(theme.unread),
                ));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    frame.render_widget(List::new(items).block(block("Rooms", theme)), area);
}

fn chat_line<'a>(app: &App, theme: &Theme, l: &'a ChatLine) -> Line<'a> {
    let mut spans = Vec::new();
    let time = l.ts_ms.map(clock).unwrap_or_else(|| "     ".into());
    spans.push(Span::styled(format!("{time} "), Style::default().fg(theme.time)));
    match &l.nick {
        Some(nick) => {
            let colour = if *nick == app.nick {
                theme.own_nick
            } else {
                theme.nick
            };
            spans.push(Span::styled(
                format!("<{nick}> "),
                Style::default().fg(colour).add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::raw(l.text.as_str()));
        }
        None => {
            let colour = if l.error { theme.error } else { theme.notice };
            spans.push(Span::styled(format!("* {}", l.text), Style::default().fg(colour)));
        }
    }
    Line::from(spans)
}

fn draw_messages(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let room = app.current_room();
    let mut title = app.label(&room.name);
    if room.scroll > 0 {
        title.push_str(&format!(" · {} newer below (End: newest)", room.scroll));
    }
    // Above the oldest line: whether older ones are loading, or none exist.
    let top = if room.loading_older {
        Some("loading older messages…".to_owned())
    } else if room.at_start && room.name != STATUS {
        Some(format!("start of {}", app.label(&room.name)))
    } else {
        None
    };
    let mut all: Vec<Line> = Vec::with_capacity(room.lines.len() + 1);
    if let Some(top) = top {
        all.push(Line::styled(
            format!("— {top} —"),
            Style::default().fg(theme.notice),
        ));
    }
    all.extend(room.lines.iter().map(|l| chat_line(app, theme, l)));
    // The lines that fit ending `room.scroll` lines before the newest, counting the rows
    // a long line wraps onto, so that line is at the bottom (word wrapping can take a row
    // more than this estimate). Scrolled back as far as it goes, the oldest is at the top.
    let rows = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2).max(1) as usize;
    let end = all.len().saturating_sub(room.scroll);
    let mut used = 0;
    let mut start = end;
    while start > 0 && used < rows {
        start -= 1;
        used += all[start].width().div_ceil(width).max(1);
    }
    // Scrolled back as far as the app lets (see `App::page`): the oldest at the top.
    let furthest = room.scroll >= room.lines.len().saturating_sub(rows);
    let (lines, scroll) = if room.scroll > 0 && (start == 0 || furthest) {
        (all, 0)
    } else {
        let lines: Vec<Line> = all.drain(start..end).collect();
        (lines, used.saturating_sub(rows) as u16)
    };
    frame.render_widget(
        Paragraph::new(lines)
            .block(block(&title, theme))
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}

fn draw_members(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let room = app.current_room();
    let mut members: Vec<_> = room.members.values().collect();
    members.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.nick.cmp(&b.nick)));
    let online = members.iter().filter(|m| m.online).count();
    let items: Vec<ListItem> = members
        .iter()
        .map(|m| {
            let (mark, colour) = if m.online {
                ("● ", theme.online)
            } else {
                ("○ ", theme.offline)
            };
            ListItem::new(Line::from(vec![
                Span::styled(mark, Style::default().fg(colour)),
                Span::styled(m.nick.clone(), Style::default().fg(colour)),
            ]))
        })
        .collect();
    let title = format!("Members {online}/{}", members.len());
    frame.render_widget(List::new(items).block(block(&title, theme)), area);
}

fn draw_input(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let prompt = format!("{}> ", app.nick);
    // Keep the end of a long line visible.
    let width = area.width.saturating_sub(2) as usize;
    let shown: String = {
        let room = width.saturating_sub(prompt.chars().count() + 1);
        let n = app.input.chars().count();
        app.input.chars().skip(n.saturating_sub(room)).collect()
    };
    let line = Line::from(vec![
        Span::styled(prompt.clone(), Style::default().fg(theme.accent)),
        Span::raw(shown.clone()),
    ]);
    frame.render_widget(Paragraph::new(line).block(block("Input", theme)), area);
    let x = area.x + 1 + (prompt.chars().count() + shown.chars().count()) as u16;
    frame.set_cursor_position((x.min(area.right().saturating_sub(2)), area.y + 1));
}

/// The status bar's text for a connection state.
pub fn status_text(app: &App) -> String {
    match &app.connection {
        Connection::Connecting => "connecting…".into(),
        Connection::Connected => format!("connected as {}", app.nick),
        Connection::Reconnecting { attempt, delay_ms } => format!(
            "reconnecting (attempt {attempt}, in {:.1}s); messages typed now are queued",
            *delay_ms as f64 / 1000.0
        ),
        Connection::Disconnected(why) => format!("disconnected: {why}"),
        Connection::Stopped(why) => format!("stopped: {why}"),
    }
}

fn draw_status(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let colour = match app.connection {
        Connection::Connected => theme.online,
        Connection::Stopped(_) => theme.error,
        _ => theme.unread,
    };
    let line = Line::from(vec![
        Span::styled(format!(" {} ", status_text(app)), Style::default().fg(colour)),
        Span::styled(
            " · Tab: next room · ↑/↓: history · PgUp/PgDn: scroll · /help · Ctrl-C: quit",
            Style::default().fg(theme.notice),
        ),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}
