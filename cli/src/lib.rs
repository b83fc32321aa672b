//! The client side of the `garou` command, kept out of the server library
//! (`garou-gateway` does not depend on `garou-client`):
//!
//! - [`chat`]: `garou chat`, the line-oriented terminal client (on `garou-client`);
//! - [`command`]: the commands typed into both terminal clients;
//! - [`tui`]: `garou tui`, the full-screen terminal client (ratatui);
//! - [`bench`](mod@bench): `garou bench`, the load generators (native QUIC or WebSocket clients).
//!
//! The binary (`src/main.rs`) adds `garou serve` and `garou token`, which call into
//! `garou-gateway`.
#![forbid(unsafe_code)]

pub mod bench;
pub mod chat;
pub mod command;
pub mod tui;
