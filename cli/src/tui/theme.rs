//! Colours of the TUI: built-in defaults, overridden by a small TOML file of named colours
//! (`red`, `lightblue`, `dark gray`, `#ff8800`, an ANSI index `208`, ...).
//!
//! ```toml
//! [theme]
//! accent = "cyan"       # borders of the focused pane, the current room
//! nick = "yellow"       # other people's nicks
//! own_nick = "green"    # your nick
//! time = "darkgray"     # timestamps
//! notice = "gray"       # notices (joins, reconnects, command output)
//! error = "red"
//! unread = "magenta"    # unread counts
//! online = "green"
//! offline = "darkgray"
//! border = "blue"
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::Color;
use serde::Deserialize;

/// The colours the view uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// The current room and the input prompt.
    pub accent: Color,
    /// Other people's nicks.
    pub nick: Color,
    /// Our own nick.
    pub own_nick: Color,
    /// Timestamps.
    pub time: Color,
    /// Notices.
    pub notice: Color,
    /// Errors, and a stopped connection.
    pub error: Color,
    /// Unread counts.
    pub unread: Color,
    /// Online members, a connected status.
    pub online: Color,
    /// Offline members.
    pub offline: Color,
    /// Pane borders.
    pub border: Color,
}

impl Default for Theme {
    fn default() -> Self {
        Theme {
            accent: Color::Cyan,
            nick: Color::Yellow,
            own_nick: Color::Green,
            time: Color::DarkGray,
            notice: Color::Gray,
            error: Color::Red,
            unread: Color::Magenta,
            online: Color::Green,
            offline: Color::DarkGray,
            border: Color::Blue,
        }
    }
}

/// A theme file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML of the expected shape (unknown keys are refused, to catch typos).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A colour name not understood.
    #[error("{path}: theme.{key}: unknown colour {value:?}")]
    Colour {
        /// The file.
        path: PathBuf,
        /// The setting.
        key: &'static str,
        /// What it said.
        value: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    theme: Names,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Names {
    accent: Option<String>,
    nick: Option<String>,
    own_nick: Option<String>,
    time: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    unread: Option<String>,
    online: Option<String>,
    offline: Option<String>,
    border: Option<String>,
}

/// Largest theme file read.
const MAX_FILE: u64 = 64 * 1024;

impl Theme {
    /// The theme of TOML `text` (from `path`, for messages): defaults for what it omits.
    pub fn parse(text: &str, path: &Path) -> Result<Theme, ThemeError> {
        let file: File = toml::from_str(text).map_err(|source| ThemeError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut theme = Theme::default();
        let n = file.theme;
        let slots: [(&'static str, Option<String>, &mut Color); 10] = [
            ("accent", n.accent, &mut theme.accent),
            ("nick", n.nick, &mut theme.nick),
            ("own_nick", n.own_nick, &mut theme.own_nick),
            ("time", n.time, &mut theme.time),
            ("notice", n.notice, &mut theme.notice),
            ("error", n.error, &mut theme.error),
            ("unread", n.unread, &mut theme.unread),
            ("online", n.online, &mut theme.online),
            ("offline", n.offline, &mut theme.offline),
            ("border", n.border, &mut theme.border),
        ];
        for (key, value, slot) in slots {
            if let Some(value) = value {
                *slot = Color::from_str(value.trim()).map_err(|_| ThemeError::Colour {
                    path: path.to_owned(),
                    key,
                    value,
                })?;
            }
        }
        Ok(theme)
    }

    /// Load `path`; a missing file gives the defaults when `optional` (the default path),
    /// an error otherwise (a path the user named).
    pub fn load(path: &Path, optional: bool) -> Result<Theme, ThemeError> {
        use std::io::Read;
        let read_err = |source| ThemeError::Read {
            path: path.to_owned(),
            source,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(Theme::default()),
            Err(e) => return Err(read_err(e)),
        };
        let mut text = String::new();
        file.take(MAX_FILE).read_to_string(&mut text).map_err(read_err)?;
        Theme::parse(&text, path)
    }

    /// The default config file: `$XDG_CONFIG_HOME/garou/tui.toml`, else
    /// `~/.config/garou/tui.toml`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("garou").join("tui.toml"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_colours_override_the_defaults() {
        let p = Path::new("t.toml");
        let t = Theme::parse("[theme]\naccent = \"light red\"\nnick = \"#ff8800\"\n", p).unwrap();
        assert_eq!(t.accent, Color::LightRed);
        assert_eq!(t.nick, Color::Rgb(0xff, 0x88, 0x00));
        assert_eq!(t.border, Theme::default().border);
        assert_eq!(Theme::parse("", p).unwrap(), Theme::default());
        assert!(matches!(
            Theme::parse("[theme]\naccent = \"blurple\"\n", p),
            Err(ThemeError::Colour { key: "accent", .. })
        ));
        assert!(matches!(
            Theme::parse("[theme]\naccnet = \"red\"\n", p),
            Err(ThemeError::Parse { .. })
        ));
    }

    #[test]
    fn the_readme_example_is_the_defaults() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("[theme]   # named colours").expect("README example");
        let end = start + readme[start..].find("```").unwrap();
        let t = Theme::parse(&readme[start..end], Path::new("README.md")).unwrap();
        assert_eq!(t, Theme::default());
        let t = Theme::parse("[theme]\nunread = \"208\"\n", Path::new("t")).unwrap();
        assert_eq!(t.unread, Color::Indexed(208));
    }

    #[test]
    fn a_missing_default_file_is_the_defaults_a_missing_named_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        assert_eq!(Theme::load(&missing, true).unwrap(), Theme::default());
        assert!(Theme::load(&missing, false).is_err());
        let f = dir.path().join("t.toml");
        std::fs::write(&f, "[theme]\nerror = \"yellow\"\n").unwrap();
        assert_eq!(Theme::load(&f, false).unwrap().error, Color::Yellow);
    }
}
