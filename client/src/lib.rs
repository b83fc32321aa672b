//! Native Garou client: a tokio + quinn driver around the sans-IO
//! [`ClientSession`](garou_protocol::ClientSession).
//!
//! All protocol logic (handshake, request ids, per-room ordering, hot-room streams) lives
//! in `garou-protocol`, shared with the wasm client; this crate only moves bytes between
//! QUIC and that state machine, keeps time, and adds what a long-lived app needs:
//! reconnection with backoff across several gateways, recovery (rooms are rejoined where
//! they stopped, the server replays what was missed, each room event is delivered once;
//! unacknowledged messages are re-sent without duplicates), typed request handles and a
//! bounded event stream.
//!
//! ```no_run
//! use garou_client::{connect, ClientEvent, ClientOptions, Trust};
//!
//! # async fn demo() -> Result<(), garou_client::ClientError> {
//! let opts = ClientOptions::with_nick("127.0.0.1:4433", "alice").trust(Trust::Insecure);
//! let (client, mut events) = connect(opts).await?;
//! client.join("general").await?;
//! client.send("general", "hello").await?;
//! while let Some(ev) = events.next().await {
//!     if let Some(m) = ev.room_message() {
//!         println!("[#{}] <{}> {}", m.room, m.nick, m.text);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! It also paces itself under the gateway's command rate (and honours its `Throttle`), so
//! it is never closed for sending too fast; queues messages while no session is up;
//! stops with a typed error where retrying cannot help (a certificate that does not match
//! its pin, credentials refused); and uploads files resumably ([`Client::upload`]).
//! [`Events::next_update`] gives the common events flat ([`Update`]).
//!
//! Modules: [`options`](ClientOptions) (settings), `tls` ([`Trust`]), `handle`
//! ([`Client`], [`Request`], [`Pending`]), `events` ([`Events`], [`Update`]), `driver`
//! (the task that owns the session), `link` (one QUIC connection and its I/O tasks),
//! `rate` (client-side pacing), `upload` / `uploads` (the upload API and its driver
//! side), `backoff`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
mod driver;
mod events;
mod handle;
mod link;
mod options;
mod rate;
mod tls;
mod upload;
mod uploads;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

pub use backoff::backoff;
pub use events::{ClientEvent, Events, Update};
pub use handle::{Client, History, Pending, Request, Sent};
pub use options::{ClientOptions, ConnectRetry, RateLimit, DEFAULT_PORT};
pub use tls::{cert_hash, quic_client_config, quic_client_config_with, Trust};
pub use upload::{Upload, UploadProgress, UploadSource, Uploaded};

/// The protocol crate, re-exported so applications need only one dependency.
pub use garou_protocol as protocol;
pub use garou_protocol::{
    Credentials, ErrorCode, Event, Failure, JoinInfo, MemberInfo, ModAction, Role, RoomInfo, RoomKind, Since,
    StoredMessage,
};

/// ALPN identifier of the Garou protocol over raw QUIC (the protocol crate's constant).
pub const ALPN: &[u8] = garou_protocol::ALPN;

/// Requests queued between handles and the driver.
const COMMAND_QUEUE: usize = 256;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The options are unusable (no server, bad address, bad certificate hash, ...).
    #[error("invalid options: {0}")]
    Config(String),
    /// No QUIC connection could be established.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The server refused the session (credentials, nick in use or invalid).
    #[error("refused by the server: {0}")]
    Refused(Failure),
    /// The server broke the protocol; the connection was closed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection broke (closed by the server, idle timeout, network error).
    #[error("connection lost: {0}")]
    Lost(String),
    /// No answer in time (a request after `request_timeout`, or a handshake after
    /// `connect_timeout`).
    #[error("timed out")]
    Timeout,
    /// The server answered a request with an error.
    #[error("server error: {0}")]
    Failure(Failure),
    /// The connection was lost before the reply came; the request may or may not have
    /// taken effect. Also returned for requests other than messages made while
    /// reconnecting (messages wait in the offline queue), and for messages that could not
    /// be re-sent (reconnecting disabled, or `offline_timeout` passed; see [`Client::send`]).
    #[error("disconnected")]
    Disconnected,
    /// The client was closed.
    #[error("client closed")]
    Closed,
    /// The server's certificate is not the one trusted (another pin after a gateway
    /// restart with a new self-signed certificate, an unknown issuer, a wrong name).
    /// Terminal: the client does not retry; the message says what the server presented.
    #[error("untrusted server certificate: {0}")]
    Certificate(String),
    /// A message could not even be queued: no session is up and
    /// [`ClientOptions::offline_queue`] messages already wait for one.
    #[error("send queue full ({0} messages wait for a connection)")]
    QueueFull(usize),
    /// An upload could not read its source (the file), or the source changed while it was
    /// sent.
    #[error("upload source: {0}")]
    Source(String),
}

impl ClientError {
    /// The error for a failed request reply: local codes become their own variants.
    pub(crate) fn from_failure(f: Failure) -> ClientError {
        match f.code {
            ErrorCode::Disconnected => ClientError::Disconnected,
            ErrorCode::Timeout => ClientError::Timeout,
            _ => ClientError::Failure(f),
        }
    }

    /// Whether retrying cannot help: a certificate that does not match, credentials
    /// refused, banned, bad options, or the client is closed. The client stops on these
    /// instead of reconnecting.
    pub fn is_terminal(&self) -> bool {
        match self {
            ClientError::Certificate(_) | ClientError::Config(_) | ClientError::Closed => true,
            ClientError::Refused(f) => f.code != ErrorCode::NickUnavailable,
            _ => false,
        }
    }

    /// The server's error code, for [`ClientError::Failure`] and [`ClientError::Refused`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Failure(f) | ClientError::Refused(f) => Some(f.code),
            _ => None,
        }
    }
}

/// Connect to the first reachable server in `opts.servers` and complete the handshake.
///
/// Resolves once the session is ready, with the handle and its event stream; the
/// connection is then kept up in a background task (reconnecting as configured) until
/// [`Client::close`] or until every `Client` clone is dropped. Each round tries every
/// server in turn; with [`ClientOptions::connect_retry`] more rounds follow, with backoff
/// and jitter (by default there is one round: a typo in an address fails fast). Fails
/// with [`ClientError::Refused`] if the server rejects the credentials or nick,
/// [`ClientError::Certificate`] if its certificate is not trusted (never retried),
/// [`ClientError::Connect`] / [`ClientError::Lost`] / [`ClientError::Timeout`] if no
/// server could be reached.
///
/// Must be called inside a tokio runtime.
pub async fn connect(opts: ClientOptions) -> Result<(Client, Events), ClientError> {
    opts.validate()?;
    let (quic, certs) = tls::build(&opts.trust, opts.keep_alive, opts.idle_timeout)?;
    let (tx, cmds) = mpsc::channel(COMMAND_QUEUE);
    let (close_tx, close_rx) = mpsc::channel(4);
    let (ev_tx, rx) = mpsc::channel(opts.event_buffer);
    let shared = Arc::new(handle::Shared::default());
    let (ready_tx, ready_rx) = oneshot::channel();
    let span = tracing::info_span!("garou_client", first = %opts.servers[0]);
    let driver = driver::Driver::new(opts, quic, certs, cmds, close_rx, ev_tx, shared.clone());
    tokio::spawn(driver.run(ready_tx).instrument(span));
    match ready_rx.await {
        Ok(Ok(())) => Ok((Client { tx, close_tx, shared }, Events::new(rx))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ClientError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_failures_map_to_variants() {
        let f = |code| Failure {
            code,
            message: "x".into(),
        };
        assert_eq!(
            ClientError::from_failure(f(ErrorCode::Disconnected)),
            ClientError::Disconnected
        );
        assert_eq!(
            ClientError::from_failure(f(ErrorCode::Timeout)),
            ClientError::Timeout
        );
        let e = ClientError::from_failure(f(ErrorCode::NoSuchRoom));
        assert_eq!(e.code(), Some(ErrorCode::NoSuchRoom));
    }

    #[test]
    fn terminal_errors_are_those_a_retry_cannot_fix() {
        let refused = |code| {
            ClientError::Refused(Failure {
                code,
                message: "x".into(),
            })
        };
        for e in [
            ClientError::Certificate("pin".into()),
            refused(ErrorCode::AuthFailed),
            refused(ErrorCode::Banned),
            refused(ErrorCode::SessionReplaced),
            ClientError::Config("x".into()),
        ] {
            assert!(e.is_terminal(), "{e:?}");
        }
        for e in [
            refused(ErrorCode::NickUnavailable),
            ClientError::Connect("x".into()),
            ClientError::Lost("x".into()),
            ClientError::Timeout,
            ClientError::QueueFull(1),
        ] {
            assert!(!e.is_terminal(), "{e:?}");
        }
    }

    #[tokio::test]
    async fn bad_options_fail_fast() {
        let mut o = ClientOptions::with_nick("127.0.0.1:1", "a");
        o.servers.clear();
        assert!(matches!(connect(o).await, Err(ClientError::Config(_))));
    }

    #[tokio::test]
    async fn unreachable_server_times_out() {
        // Nothing listens on this port: the QUIC handshake never completes.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap().to_string();
        let mut o = ClientOptions::with_nick(addr, "a").trust(Trust::Insecure);
        o.connect_timeout = std::time::Duration::from_millis(300);
        match connect(o).await {
            Err(ClientError::Connect(msg)) => assert!(msg.contains("no QUIC handshake")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
