//! The gateway's layers, checked on its source: a lower module never names an upper one.
//!
//! From the bottom: `config`, `auth`, `store`, `conn` (a connection's queues),
//! `uploads::registry` (tickets and upload locks) and the hub's own counters; then `hub`
//! (rooms, users, ordering); then
//! what drives it: `session`, `transport`, `uploads` (commands and policy), `metrics`,
//! `http`, `server`. A module "names" another when a `crate::` path in its code (comments
//! aside) starts with it, `use crate::{a, b}` included. This is what keeps a second node,
//! or another driver of the hub, addable without bolting on: nothing under the hub reaches
//! back up. Inside the hub, the room core (`hub/room/core.rs`) decides without a
//! connection, the runtime, the clock or the store: its driver carries its effects out.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The `crate::` paths `code` names, as `a::b::c` (comments dropped; each item of a
/// `crate::{..}` group is a path of its own, `self` standing for the group's prefix).
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in code.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            // Not part of a longer name (`garou_crate::`, `my_crate::`).
            let before = rest[..i].chars().next_back();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            paths.extend(expand(rest, ""));
        }
    }
    paths
}

/// The paths at the start of `rest` (after `crate::`), under `prefix`.
fn expand(rest: &str, prefix: &str) -> Vec<String> {
    let ident: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let path = ident.trim_end_matches(':');
    let full = match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}::{path}"),
    };
    let after = &rest[ident.len()..];
    let group = after.starts_with('{') && (ident.is_empty() || ident.ends_with("::"));
    if !group {
        return vec![full.trim_end_matches("::self").to_owned()];
    }
    // A group: split its items at top-level commas (single line, as rustfmt writes short ones;
    // a group spanning lines still yields its first items).
    let mut items = Vec::new();
    let (mut depth, mut start, mut closed) = (0, 1, false);
    for (i, c) in after.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                items.push(after[start..i].trim());
                start = i + 1;
                if c == '}' {
                    closed = true;
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    if !closed {
        items.push(after[start..].trim());
    }
    items
        .into_iter()
        .filter(|s| !s.is_empty())
        .flat_map(|item| expand(item, &full))
        .collect()
}

/// Whether `path` is `module` or inside it.
fn within(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

/// Every `(file, path)` where a file under `files` (relative to `src`) names one of
/// `forbidden` and none of `allowed` (finer exceptions inside a forbidden module).
fn violations(src: &Path, files: &[&str], forbidden: &[&str], allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let root = src.join(file);
        let paths = if root.is_dir() {
            rust_files(&root)
        } else {
            vec![root.clone()]
        };
        assert!(!paths.is_empty(), "{} has no sources", root.display());
        for path in paths {
            let code = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for named in crate_paths(&code) {
                let bad = forbidden.iter().any(|m| within(&named, m));
                let excepted = allowed.iter().any(|m| within(&named, m));
                if bad && !excepted {
                    let rel = path.strip_prefix(src).unwrap_or(&path).display().to_string();
                    found.push(format!("{rel} names crate::{named}"));
                }
            }
        }
    }
    found
}

/// This crate's sources (`GAROU_LAYERING_SRC` points the check at another tree, e.g. an
/// older checkout, to see it fail there).
fn src() -> PathBuf {
    match std::env::var_os("GAROU_LAYERING_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

/// Modules above the hub: they drive it, it never names them.
const ABOVE_HUB: &[&str] = &[
    "cluster",
    "session",
    "transport",
    "http",
    "metrics",
    "server",
    "uploads",
    "bench",
    "chat",
];

#[test]
fn the_hub_names_nothing_above_it() {
    let found = violations(&src(), &["hub"], ABOVE_HUB, &["uploads::registry"]);
    assert!(found.is_empty(), "the hub reaches up:\n{}", found.join("\n"));
}

#[test]
fn what_is_below_the_hub_names_neither_the_hub_nor_anything_above() {
    let mut above = ABOVE_HUB.to_vec();
    above.push("hub");
    let lower = ["conn.rs", "uploads/registry.rs", "config.rs", "auth.rs"];
    let mut found = violations(&src(), &lower, &above, &[]);
    above.push("conn");
    found.extend(violations(&src(), &["store"], &above, &[]));
    assert!(
        found.is_empty(),
        "a lower layer reaches up:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_every_way_of_naming_a_module() {
    let code = "use crate::session::Session;\n\
                use crate::{config::ServerConfig, http::{self, HttpState}};\n\
                let x = crate::metrics::get(); // crate::server::Gateway in a comment\n\
                /// [`crate::transport`] in a doc comment\n\
                let y = garou_crate::hub::Hub;\n";
    assert_eq!(
        crate_paths(code),
        [
            "session::Session",
            "config::ServerConfig",
            "http",
            "http::HttpState",
            "metrics::get"
        ]
    );
}

#[test]
fn the_checker_fails_on_an_upward_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("hub")).unwrap();
    std::fs::write(
        dir.path().join("hub/mod.rs"),
        "use crate::store::Op;\nuse crate::uploads::registry::Registry;\nfn f() { crate::metrics::fanout(1); }\n",
    )
    .unwrap();
    let found = violations(dir.path(), &["hub"], ABOVE_HUB, &["uploads::registry"]);
    assert_eq!(found, ["hub/mod.rs names crate::metrics::fanout"]);
}

/// What the room core must not touch: connections, the runtime, the clock, the store.
const IMPURE: &[&str] = &[
    "tokio",
    "spawn",
    "Instant",
    "SystemTime",
    "now_ms()",
    "Conn",
    "Store",
    "Committer",
    ".await",
];

/// Every impure word the code of `file` (comments aside) uses, and every module it names
/// beyond what the core may: the rows it builds, refusals, permissions, the rate window.
fn impurities(file: &Path) -> Vec<String> {
    let code = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code: String = code
        .lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found: Vec<String> = IMPURE
        .iter()
        .filter(|w| code.contains(*w))
        .map(|w| format!("uses {w}"))
        .collect();
    let allowed = [
        "store::Op",
        "store::SanctionKind",
        "hub::commit::Refusal",
        "hub::permissions",
        "hub::rate",
    ];
    for named in crate_paths(&code) {
        if !allowed.iter().any(|m| within(&named, m)) {
            found.push(format!("names crate::{named}"));
        }
    }
    if code.contains("super::") {
        found.push("names its driver (super::)".into());
    }
    found
}

#[test]
fn the_room_core_decides_without_connections_runtime_clock_or_store() {
    let found = impurities(&src().join("hub/room/core.rs"));
    assert!(
        found.is_empty(),
        "the room core is not pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_purity_check_fails_on_a_driver() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("core.rs");
    std::fs::write(
        &file,
        "use crate::conn::Conn; // a connection\nfn f() { tokio::spawn(async {}); let t = std::time::Instant::now(); }\n",
    )
    .unwrap();
    let found = impurities(&file);
    for word in [
        "uses tokio",
        "uses spawn",
        "uses Instant",
        "uses Conn",
        "names crate::conn::Conn",
    ] {
        assert!(found.iter().any(|f| f == word), "{word} not found in {found:?}");
    }
}
