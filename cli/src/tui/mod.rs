//! `garou tui`: a full-screen terminal client (ratatui + crossterm) on `garou-client`.
//!
//! - [`app`]: the state and its pure transition `App::update(event) -> effects`;
//! - [`view`](mod@view): drawing the state (rooms, messages, members, input, status);
//! - [`theme`]: colours, built in or from a TOML file of named colours.
//!
//! [`run`] is the I/O loop: it feeds keys, client events and the answers of earlier
//! effects to the app, carries out the effects it returns on the client (never blocking
//! the screen: requests run on their own tasks and answer with an event), and redraws.
//! Messages typed while the gateway is away wait in the client's offline queue and go out
//! after the reconnect, as in `garou chat`.

pub mod app;
pub mod theme;
pub mod view;

use std::path::PathBuf;

use anyhow::Context as _;
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use garou_client::{connect, Client};
use tokio::sync::mpsc;

use crate::chat::{room_label, ChatArgs};
use crate::command::Input;
use app::{App, AppEvent, Connection, Effect};
use theme::Theme;

/// Messages of history loaded on joining a room (and after a gap).
pub const HISTORY_LINES: u32 = 50;

/// Arguments of `garou tui`: those of `garou chat`, plus the theme file.
#[derive(clap::Args, Debug, Clone)]
pub struct TuiArgs {
    /// Connection and identity, as for `garou chat`.
    #[command(flatten)]
    pub chat: ChatArgs,
    /// Theme file (TOML, `[theme]` of named colours). Default:
    /// `$XDG_CONFIG_HOME/garou/tui.toml` or `~/.config/garou/tui.toml`, if it exists.
    #[arg(long, value_name = "FILE")]
    pub theme: Option<PathBuf>,
}

fn load_theme(path: Option<&PathBuf>) -> anyhow::Result<Theme> {
    Ok(match path {
        Some(p) => Theme::load(p, false)?,
        None => match Theme::default_path() {
            Some(p) => Theme::load(&p, true)?,
            None => Theme::default(),
        },
    })
}

/// Run the TUI until /quit or Ctrl-C.
pub async fn run(args: TuiArgs) -> anyhow::Result<()> {
    let theme = load_theme(args.theme.as_ref())?;
    let opts = args.chat.options()?;
    let servers = opts.servers.join(", ");
    // Connect before taking over the terminal, so a failure prints plainly.
    let (client, mut events) = connect(opts)
        .await
        .with_context(|| format!("cannot connect to {servers}"))?;
    let mut app = App::new(client.nick());
    app.user = client.user();
    app.connection = Connection::Connected;
    let (tx, mut answers) = mpsc::unbounded_channel::<AppEvent>();
    if let Some(room) = args.chat.room.clone() {
        carry_out(&client, &tx, Effect::Join(room)).await;
    }

    let mut terminal = ratatui::init();
    let mut keys = EventStream::new();
    let mut events_open = true;
    let result: anyhow::Result<()> = async {
        loop {
            // PageUp/PageDown move by the message pane's height.
            app.page = view::message_rows(terminal.size()?.height);
            terminal.draw(|f| view::view(&app, &theme, f))?;
            let event = tokio::select! {
                key = keys.next() => match key {
                    Some(Ok(TermEvent::Key(k))) => AppEvent::Key(k),
                    Some(Ok(_)) => continue, // a resize: redraw
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(()),
                },
                ev = events.next(), if events_open => match ev {
                    Some(ev) => AppEvent::Client(ev),
                    None => {
                        events_open = false;
                        continue;
                    }
                },
                Some(answer) = answers.recv() => answer,
            };
            for effect in app.update(event) {
                if effect == Effect::Quit {
                    return Ok(());
                }
                carry_out(&client, &tx, effect).await;
            }
        }
    }
    .await;
    ratatui::restore();
    client.close().await;
    result
}

fn notice(tx: &mpsc::UnboundedSender<AppEvent>, room: Option<String>, text: String, error: bool) {
    let _ = tx.send(AppEvent::Notice { room, text, error });
}

/// Start one effect. Sends are handed to the client here, in order; every answer comes
/// back later through `tx`.
async fn carry_out(client: &Client, tx: &mpsc::UnboundedSender<AppEvent>, effect: Effect) {
    let (client, tx) = (client.clone(), tx.clone());
    match effect {
        Effect::Send { room, text } => {
            if !client.is_connected() {
                notice(&tx, Some(room.clone()), "(queued: reconnecting)".into(), false);
            }
            let pending = client.send(room.as_str(), text).submit().await;
            tokio::spawn(async move {
                if let Err(e) = pending.await {
                    let text = format!("message to {} not delivered: {e}", room_label(&room));
                    notice(&tx, Some(room), text, true);
                }
            });
        }
        Effect::Direct { to, text } => {
            if !client.is_connected() {
                notice(&tx, None, "(queued: reconnecting)".into(), false);
            }
            let pending = client.direct(to.as_str(), text).submit().await;
            tokio::spawn(async move {
                match pending.await {
                    Ok(sent) => drop(tx.send(AppEvent::DirectSent { room: sent.room, to })),
                    Err(e) => notice(&tx, None, format!("message to @{to} not delivered: {e}"), true),
                }
            });
        }
        Effect::Join(room) => {
            tokio::spawn(async move {
                match client.join(room.as_str()).await {
                    Ok(info) => {
                        let before = info.offset;
                        let _ = tx.send(AppEvent::Joined(info));
                        load_history(&client, &tx, room, before).await;
                    }
                    Err(e) => notice(&tx, None, format!("cannot join {}: {e}", room_label(&room)), true),
                }
            });
        }
        Effect::History { room, before } => {
            tokio::spawn(async move { load_history(&client, &tx, room, before).await });
        }
        Effect::Leave(room) => {
            tokio::spawn(async move {
                match client.leave(room.as_str()).await {
                    Ok(()) => drop(tx.send(AppEvent::Left(room))),
                    Err(e) => notice(
                        &tx,
                        None,
                        format!("cannot leave {}: {e}", room_label(&room)),
                        true,
                    ),
                }
            });
        }
        Effect::Nick(nick) => {
            tokio::spawn(async move {
                match client.set_nick(nick).await {
                    Ok(nick) => drop(tx.send(AppEvent::NickChanged(nick))),
                    Err(e) => notice(&tx, None, format!("cannot change nick: {e}"), true),
                }
            });
        }
        Effect::Rooms => {
            tokio::spawn(async move {
                match client.list_rooms().await {
                    Ok(rooms) => drop(tx.send(AppEvent::Rooms(rooms))),
                    Err(e) => notice(&tx, None, format!("cannot list rooms: {e}"), true),
                }
            });
        }
        Effect::Users(room) => {
            tokio::spawn(async move {
                match client.list_users(room.as_str()).await {
                    Ok(users) => drop(tx.send(AppEvent::Users { room, users })),
                    Err(e) => notice(&tx, None, format!("cannot list members: {e}"), true),
                }
            });
        }
        Effect::Command { room, input } => {
            tokio::spawn(async move {
                let done = match input {
                    Input::Moderate {
                        action,
                        nick,
                        secs,
                        reason,
                    } => client.moderate(room.as_str(), nick, action, secs, reason).await,
                    Input::Invite(nick) => client.invite(room.as_str(), nick).await,
                    Input::Title(title) => client.rename_room(room.as_str(), title).await,
                    Input::DeleteRoom => client.delete_room(room.as_str()).await,
                    _ => Ok(()),
                };
                if let Err(e) = done {
                    notice(&tx, Some(room), format!("error: {e}"), true);
                }
            });
        }
        Effect::Quit => {}
    }
}

async fn load_history(client: &Client, tx: &mpsc::UnboundedSender<AppEvent>, room: String, before: u64) {
    match client
        .history(room.as_str(), Some(before), None, HISTORY_LINES)
        .await
    {
        Ok(page) => drop(tx.send(AppEvent::History(page))),
        Err(e) => drop(tx.send(AppEvent::HistoryFailed {
            room,
            error: e.to_string(),
        })),
    }
}
