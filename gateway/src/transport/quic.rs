//! Raw QUIC adapter (quinn) for native clients, ALPN [`ALPN`](garou_protocol::ALPN).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Connection, RecvStream, SendStream, TransportError};
use crate::config::ServerConfig;
use crate::metrics;
use crate::tls::Identity;

/// A quinn connection seen through [`Connection`].
pub struct QuicConnection(pub quinn::Connection);

/// Write chunks on a quinn stream, counting the bytes for `transport` (raw QUIC and
/// WebTransport share the stream code).
pub(super) async fn write_counted(
    stream: &mut quinn::SendStream,
    chunks: &mut [Bytes],
    transport: usize,
) -> Result<(), TransportError> {
    let n = chunks.iter().map(Bytes::len).sum();
    stream
        .write_all_chunks(chunks)
        .await
        .map_err(TransportError::new)?;
    metrics::bytes_out(transport, n);
    Ok(())
}

/// Read a chunk from a quinn stream, counting the bytes for `transport`.
pub(super) async fn read_counted(
    stream: &mut quinn::RecvStream,
    transport: usize,
) -> Result<Option<Bytes>, TransportError> {
    match stream.read_chunk(64 * 1024, true).await {
        Ok(c) => {
            let c = c.map(|c| c.bytes);
            metrics::bytes_in(transport, c.as_ref().map_or(0, Bytes::len));
            Ok(c)
        }
        Err(e) => Err(TransportError::new(e)),
    }
}

impl SendStream for quinn::SendStream {
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), TransportError> {
        write_counted(self, chunks, metrics::QUIC).await
    }
    async fn finish_and_wait(&mut self) {
        if quinn::SendStream::finish(self).is_ok() {
            let _ = self.stopped().await;
        }
    }
}

impl RecvStream for quinn::RecvStream {
    async fn read_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        read_counted(self, metrics::QUIC).await
    }
}

impl Connection for QuicConnection {
    type Send = quinn::SendStream;
    type Recv = quinn::RecvStream;

    fn kind(&self) -> &'static str {
        "quic"
    }
    fn remote(&self) -> SocketAddr {
        self.0.remote_address()
    }
    async fn accept_bi(&self) -> Result<(Self::Send, Self::Recv), TransportError> {
        self.0.accept_bi().await.map_err(TransportError::new)
    }
    async fn accept_uni(&self) -> Result<Self::Recv, TransportError> {
        self.0.accept_uni().await.map_err(TransportError::new)
    }
    async fn open_uni(&self) -> Result<Self::Send, TransportError> {
        self.0.open_uni().await.map_err(TransportError::new)
    }
    fn send_datagram(&self, data: Bytes) -> bool {
        // quinn drops the oldest queued datagram when its buffer is full: bounded.
        let n = data.len();
        metrics::datagram_out(metrics::QUIC, n, self.0.send_datagram(data).is_ok())
    }
    async fn read_datagram(&self) -> Result<Bytes, TransportError> {
        let d = self.0.read_datagram().await.map_err(TransportError::new)?;
        metrics::bytes_in(metrics::QUIC, d.len());
        Ok(d)
    }
    fn close(&self, code: u16, reason: &str) {
        self.0.close(quinn::VarInt::from(code), reason.as_bytes());
    }
    async fn closed(&self) {
        self.0.closed().await;
    }
}

/// A quinn server endpoint on `cfg.quic` offering `alpn`.
pub fn endpoint(cfg: &ServerConfig, identity: &Identity, alpn: &[&[u8]]) -> anyhow::Result<quinn::Endpoint> {
    let server = server_config(cfg, identity, alpn)?;
    let socket = bind_dual_stack(cfg.quic)?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    Ok(endpoint)
}

/// The QUIC server settings for `identity` (also what a TLS reload swaps in).
pub fn server_config(
    cfg: &ServerConfig,
    identity: &Identity,
    alpn: &[&[u8]],
) -> anyhow::Result<quinn::ServerConfig> {
    let tls = identity.server_config(alpn)?;
    let quic_tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_tls));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(cfg.idle_timeout().try_into()?))
        .max_concurrent_uni_streams(cfg.stream.max_concurrent_streams.into())
        .max_concurrent_bidi_streams(8u32.into())
        .stream_receive_window(quinn::VarInt::from_u64(cfg.stream.recv_buffer_size)?)
        .send_window(cfg.stream.send_buffer_size)
        .datagram_receive_buffer_size(cfg.enable_datagrams.then_some(64 * 1024))
        .datagram_send_buffer_size(64 * 1024)
        .enable_segmentation_offload(true);
    if cfg.stream.ack_eliciting_threshold != 1 || cfg.stream.max_ack_delay_ms != 25 {
        let mut ack = quinn::AckFrequencyConfig::default();
        ack.ack_eliciting_threshold(cfg.stream.ack_eliciting_threshold.into())
            .max_ack_delay(Some(Duration::from_millis(cfg.stream.max_ack_delay_ms)));
        transport.ack_frequency_config(Some(ack));
    }
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// Bind TCP for HTTP, dual stack like the UDP socket.
pub fn bind_tcp_dual_stack(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Bind UDP; an IPv6 wildcard also accepts IPv4 (browsers resolve localhost to ::1 first).
fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
