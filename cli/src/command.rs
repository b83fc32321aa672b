//! The commands typed into a terminal client, shared by `garou chat` and `garou tui`:
//! one line of input parsed into an [`Input`], and the [`HELP`] text listing them.

/// One line of user input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text for the current room.
    Say(String),
    Nick(String),
    Join(String),
    Leave(Option<String>),
    Rooms,
    Users(Option<String>),
    Msg {
        to: String,
        text: String,
    },
    /// Kick, mute, unmute, ban or unban in the current room.
    Moderate {
        action: garou_client::ModAction,
        nick: String,
        secs: u32,
        reason: String,
    },
    Invite(String),
    Title(String),
    DeleteRoom,
    Quit,
    Help,
    /// A blank line.
    Nothing,
    /// A malformed command, with what to tell the user.
    Bad(String),
}

/// Parse one input line. `//text` sends `/text` literally.
pub fn parse_input(line: &str) -> Input {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Input::Nothing;
    }
    if let Some(literal) = line.strip_prefix("//") {
        return Input::Say(format!("/{literal}"));
    }
    let Some(cmd_line) = line.strip_prefix('/') else {
        return Input::Say(line.to_owned());
    };
    let (cmd, rest) = cmd_line.split_once(char::is_whitespace).unwrap_or((cmd_line, ""));
    let rest = rest.trim();
    let word = || -> Option<String> {
        let mut words = rest.split_whitespace();
        match (words.next(), words.next()) {
            (Some(w), None) => Some(w.to_owned()),
            _ => None,
        }
    };
    let optional = || -> Result<Option<String>, ()> {
        if rest.is_empty() {
            Ok(None)
        } else {
            word().map(Some).ok_or(())
        }
    };
    match cmd.to_ascii_lowercase().as_str() {
        "nick" => word().map_or_else(|| Input::Bad("usage: /nick NAME".into()), Input::Nick),
        "join" | "j" => word().map_or_else(|| Input::Bad("usage: /join ROOM".into()), Input::Join),
        "leave" | "part" => {
            optional().map_or_else(|()| Input::Bad("usage: /leave [ROOM]".into()), Input::Leave)
        }
        "rooms" | "list" => Input::Rooms,
        "users" | "who" | "names" => {
            optional().map_or_else(|()| Input::Bad("usage: /users [ROOM]".into()), Input::Users)
        }
        "msg" | "m" => match rest.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Input::Msg {
                to: to.to_owned(),
                text: text.trim_start().to_owned(),
            },
            _ => Input::Bad("usage: /msg NICK TEXT".into()),
        },
        "kick" | "ban" | "mute" | "unmute" | "unban" => {
            use garou_client::ModAction::*;
            let mut words = rest.splitn(2, char::is_whitespace);
            let Some(nick) = words.next().filter(|n| !n.is_empty()) else {
                return Input::Bad(format!("usage: /{cmd} NICK ..."));
            };
            let rest = words.next().unwrap_or("").trim();
            let (action, secs, reason) = match cmd.to_ascii_lowercase().as_str() {
                "kick" => (Kick, 0, rest),
                "ban" => (Ban, 0, rest),
                "unban" => (Unban, 0, ""),
                "unmute" => (Unmute, 0, ""),
                _ => {
                    let (secs, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    match secs {
                        "" => (Mute, 0, ""),
                        s => match s.parse() {
                            Ok(n) => (Mute, n, reason.trim()),
                            Err(_) => return Input::Bad("usage: /mute NICK [SECONDS [REASON]]".into()),
                        },
                    }
                }
            };
            Input::Moderate {
                action,
                nick: nick.to_owned(),
                secs,
                reason: reason.to_owned(),
            }
        }
        "invite" => word().map_or_else(|| Input::Bad("usage: /invite NICK".into()), Input::Invite),
        "title" if !rest.is_empty() => Input::Title(rest.to_owned()),
        "title" => Input::Bad("usage: /title TEXT".into()),
        "delete-room" => Input::DeleteRoom,
        "quit" | "exit" | "q" => Input::Quit,
        "help" | "h" | "?" => Input::Help,
        other => Input::Bad(format!("unknown command /{other} (try /help)")),
    }
}

/// The commands, one per line, each starting with `* ` (as `garou chat` prints notices).
pub const HELP: &str = "\
* commands:
*   TEXT            send TEXT to the current room (//TEXT sends a line starting with /)
*   /join ROOM      join (or create) ROOM and make it the current room
*   /leave [ROOM]   leave ROOM (default: the current room)
*   /msg NICK TEXT  send a direct message
*   /nick NAME      change your nick
*   /rooms          list rooms
*   /users [ROOM]   list the members of ROOM (default: the current room)
*   /kick NICK [REASON], /ban NICK [REASON], /unban NICK
*   /mute NICK [SECONDS [REASON]], /unmute NICK    moderation in the current room
*   /invite NICK    add NICK to the current room as a member
*   /title TEXT     set the current room's title; /delete-room deletes it
*   /quit           wait for pending messages to be acknowledged, then exit (so does end of input)
*   /help           this help";
