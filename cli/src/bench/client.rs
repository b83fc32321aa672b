//! One client abstraction over the bench's transports, so scenarios are written once: join,
//! leave, send with an ack to await later, a stream of room messages, close.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use tokio::sync::mpsc;

use super::conn::REQUEST_WAIT;
use super::ws::WsClient;

/// What a scenario sees of a client's inbound traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// The text of a room message.
    Message(String),
    /// The connection was lost (the stream ends after it).
    Disconnected,
    /// Anything else (presence, typing, receipts, ...).
    Other,
}

/// The ack of a submitted send: `Ok(())` once the server accepted it, else why not.
pub type Ack = Pin<Box<dyn Future<Output = Result<(), String>> + std::marker::Send>>;

/// A connected bench client (cheap to clone: a handle on its driver).
#[derive(Clone)]
pub enum BenchClient {
    /// The native QUIC client.
    Quic(garou_client::Client),
    /// The shared `ClientSession` over the WebSocket lanes.
    Ws(WsClient),
}

/// The room messages (and loss) of one client.
pub enum BenchEvents {
    Quic(garou_client::Events),
    Ws(mpsc::Receiver<Incoming>),
}

impl BenchEvents {
    /// The next event; `None` once the client is closed or lost.
    pub async fn next(&mut self) -> Option<Incoming> {
        match self {
            BenchEvents::Quic(ev) => {
                let ev = ev.next().await?;
                Some(match ev.room_message() {
                    Some(m) => Incoming::Message(m.text.clone()),
                    None if matches!(ev, garou_client::ClientEvent::Disconnected { .. }) => {
                        Incoming::Disconnected
                    }
                    None => Incoming::Other,
                })
            }
            BenchEvents::Ws(rx) => rx.recv().await,
        }
    }
}

/// Await a WebSocket answer, bounded.
async fn answer(rx: super::ws::Answer) -> Result<(), String> {
    match tokio::time::timeout(REQUEST_WAIT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("disconnected".into()),
        Err(_) => Err("timed out".into()),
    }
}

/// Await a QUIC request, bounded.
async fn bounded<T>(f: impl IntoFuture<Output = Result<T, garou_client::ClientError>>) -> Result<(), String> {
    match tokio::time::timeout(REQUEST_WAIT, f).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

impl BenchClient {
    /// Join `room` (bounded).
    pub async fn join(&self, room: &str) -> Result<(), String> {
        match self {
            BenchClient::Quic(c) => bounded(c.join(room)).await,
            BenchClient::Ws(c) => answer(c.join(room).await).await,
        }
    }

    /// Leave `room` (bounded).
    pub async fn leave(&self, room: &str) -> Result<(), String> {
        match self {
            BenchClient::Quic(c) => bounded(c.leave(room)).await,
            BenchClient::Ws(c) => answer(c.leave(room).await).await,
        }
    }

    /// Hand a message to the transport (waiting only for room in its bounded queue; sends
    /// from one task go out in order) and return its ack, bounded when awaited.
    pub async fn send(&self, room: &str, text: String) -> Ack {
        match self {
            BenchClient::Quic(c) => {
                let pending = c.send(room, text).submit().await;
                Box::pin(bounded(pending))
            }
            BenchClient::Ws(c) => Box::pin(answer(c.send(room, text).await)),
        }
    }

    /// Whether the session is up right now.
    pub fn is_connected(&self) -> bool {
        match self {
            BenchClient::Quic(c) => c.is_connected(),
            BenchClient::Ws(c) => c.is_connected(),
        }
    }

    /// Close gracefully (each transport bounds this itself).
    pub async fn close(&self) {
        match self {
            BenchClient::Quic(c) => c.close().await,
            BenchClient::Ws(c) => c.close().await,
        }
    }
}
