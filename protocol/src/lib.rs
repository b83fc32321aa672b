//! Sans-IO core of the Garou chat protocol.
//!
//! Everything both ends must agree on lives here, with no sockets, no clock and no async
//! runtime, so the same code runs in the gateway, the native client and the browser
//! (wasm32): the [frame](frame) format, the incremental capped [`Decoder`], the typed
//! [messages](message), the room-to-[shard] hash, and the [`ClientSession`] state machine
//! that both clients drive (callers move bytes in and out and pass the time in, like
//! `quinn-proto` and `rustls`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod codec;
pub mod frame;
pub mod message;
pub mod shard;
pub mod types;
pub mod ws;

pub use client::{
    ClientConfig, ClientSession, Event, Failure, JoinInfo, Lane, Reply, ResumeState, SessionError, Transmit,
    Unacked,
};
pub use codec::{DecodeError, Decoder};
pub use frame::{Category, Frame, DEFAULT_MAX_FRAME, HEADER_LEN};
pub use message::*;
pub use shard::shard_of;
pub use types::*;
