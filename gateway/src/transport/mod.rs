//! One small trait in front of interchangeable transports.
//!
//! A session (handshake, commands, fan-out lanes) is written once against [`Connection`];
//! each transport is a thin adapter: raw QUIC ([`quic`], quinn), and later WebTransport and
//! WebSocket. The trait is the stream model of the protocol: a bidi control stream the
//! client opens first, uni streams both ways, unreliable datagrams, close with a code.
//! Streams move [`Bytes`] chunks so QUIC can write and read without copying.

pub mod mem;
pub mod quic;
pub mod websocket;
pub mod webtransport;

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;

/// Transport failure (connection lost, stream reset, ...). Not a protocol error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

impl TransportError {
    pub fn new(e: impl std::fmt::Display) -> Self {
        TransportError(e.to_string())
    }
}

/// The sending half of a stream.
pub trait SendStream: Send + 'static {
    /// Write every chunk, in order (one call may coalesce many frames into few packets).
    fn write_chunks(
        &mut self,
        chunks: &mut [Bytes],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Finish the stream and wait until the peer has received everything written.
    fn finish_and_wait(&mut self) -> impl Future<Output = ()> + Send;
}

/// The receiving half of a stream.
pub trait RecvStream: Send + 'static {
    /// The next chunk, `None` at the end of the stream.
    fn read_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, TransportError>> + Send;
}

/// One client connection, whatever carries it.
pub trait Connection: Send + Sync + 'static {
    type Send: SendStream;
    type Recv: RecvStream;

    /// Short name for logs and metrics ("quic", "webtransport", "websocket").
    fn kind(&self) -> &'static str;
    fn remote(&self) -> SocketAddr;
    /// The client's control stream.
    fn accept_bi(&self) -> impl Future<Output = Result<(Self::Send, Self::Recv), TransportError>> + Send;
    fn accept_uni(&self) -> impl Future<Output = Result<Self::Recv, TransportError>> + Send;
    fn open_uni(&self) -> impl Future<Output = Result<Self::Send, TransportError>> + Send;
    /// Send one datagram; dropped (not queued without bound) when the transport is busy.
    /// `false` when it was dropped here (counted by the caller).
    fn send_datagram(&self, data: Bytes) -> bool;
    fn read_datagram(&self) -> impl Future<Output = Result<Bytes, TransportError>> + Send;
    /// Close the whole connection with an application code and reason.
    fn close(&self, code: u16, reason: &str);
    /// Resolves once the connection is closed, by either side.
    fn closed(&self) -> impl Future<Output = ()> + Send;
}
