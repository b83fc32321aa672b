//! WebTransport over HTTP/3 (wtransport) for browsers: the session's first bidi stream is
//! the control stream; uni streams and datagrams as on raw QUIC.
//!
//! WebTransport streams are QUIC streams behind a small header that wtransport writes and
//! reads when a stream is opened or accepted; after that the adapter moves chunks on the
//! underlying quinn stream, exactly like the raw QUIC adapter, without copying.

use std::net::SocketAddr;

use bytes::Bytes;

use super::{Connection, RecvStream, SendStream, TransportError};
use crate::metrics;

/// A WebTransport session seen through [`Connection`].
pub struct WebTransportConnection(pub wtransport::Connection);

// After the WebTransport stream header, a stream is a plain QUIC stream: reuse the raw
// QUIC adapter's reads and writes on it.
impl SendStream for wtransport::SendStream {
    async fn write_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), TransportError> {
        super::quic::write_counted(self.quic_stream_mut(), chunks, metrics::WEBTRANSPORT).await
    }
    async fn finish_and_wait(&mut self) {
        // wtransport's finish completes once the peer acknowledged everything.
        let _ = self.finish().await;
    }
}

impl RecvStream for wtransport::RecvStream {
    async fn read_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        super::quic::read_counted(self.quic_stream_mut(), metrics::WEBTRANSPORT).await
    }
}

impl Connection for WebTransportConnection {
    type Send = wtransport::SendStream;
    type Recv = wtransport::RecvStream;

    fn kind(&self) -> &'static str {
        "webtransport"
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
        let opening = self.0.open_uni().await.map_err(TransportError::new)?;
        opening.await.map_err(TransportError::new)
    }
    fn send_datagram(&self, data: Bytes) -> bool {
        let n = data.len();
        metrics::datagram_out(metrics::WEBTRANSPORT, n, self.0.send_datagram(data).is_ok())
    }
    async fn read_datagram(&self) -> Result<Bytes, TransportError> {
        match self.0.receive_datagram().await {
            Ok(d) => {
                let d = d.payload();
                metrics::bytes_in(metrics::WEBTRANSPORT, d.len());
                Ok(d)
            }
            Err(e) => Err(TransportError::new(e)),
        }
    }
    fn close(&self, code: u16, reason: &str) {
        self.0
            .close(wtransport::VarInt::from_u32(u32::from(code)), reason.as_bytes());
    }
    async fn closed(&self) {
        self.0.closed().await;
    }
}
