//! The Garou gateway: a realtime chat hub behind thin transport adapters.
//!
//! - [`transport`]: one trait for a client connection, and one adapter per transport;
//! - [`session`]: drives any connection through the handshake and the stream model;
//! - [`auth`]: tokens (JWT), guests and the open dev mode;
//! - [`hub`]: users, rooms, roles, ordering, hot rooms and fan-out;
//! - [`server`]: binding, accepting, graceful shutdown; [`config`] and [`tls`] feed it;
//! - [`uploads`]: resumable uploads, attachments, ticket-checked downloads;
//! - [`cluster`]: several nodes, one hub (PostgreSQL lease) and relays (NATS).
//!
//! The server side only: the `garou` command (and its client-side `chat` and `bench`) is the
//! `garou-cli` crate, so this library depends on no client.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod transport;
pub mod uploads;
