//! How the stream model travels over one WebSocket (the fallback for browsers without
//! WebTransport).
//!
//! Every WebSocket **binary** message is `lane tag (1 byte) | bytes`:
//!
//! | tag | lane | direction |
//! |---|---|---|
//! | `0x00` | the control stream: frame bytes, as on QUIC's control stream | both |
//! | `0x01` | one datagram: exactly one frame (typing, presence) | both |
//! | `0x02..=0x0F` | a client-opened uni stream (commands, acks, upload) | client -> server |
//! | `0x10..=0xFE` | a server-opened uni stream (shard, hot room) | server -> client |
//! | `0xFF` | reserved | |
//!
//! A uni-stream lane carries exactly what the QUIC stream would (starting with its
//! `StreamHeader` frame), possibly split across messages at any byte; a message with a
//! stream tag and **no bytes** finishes that stream, after which its tag may be reused.
//! Text messages are not used; a peer receiving one closes with a protocol error.

/// The control stream.
pub const CONTROL: u8 = 0x00;
/// A datagram.
pub const DATAGRAM: u8 = 0x01;
/// First tag of client-opened uni streams.
pub const CLIENT_FIRST: u8 = 0x02;
/// Last tag of client-opened uni streams.
pub const CLIENT_LAST: u8 = 0x0F;
/// First tag of server-opened uni streams.
pub const SERVER_FIRST: u8 = 0x10;
/// Last tag of server-opened uni streams.
pub const SERVER_LAST: u8 = 0xFE;

/// What a lane tag designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneTag {
    Control,
    Datagram,
    /// A client-opened uni stream.
    ClientStream(u8),
    /// A server-opened uni stream.
    ServerStream(u8),
    Reserved,
}

impl LaneTag {
    /// Classify a tag byte.
    pub fn of(tag: u8) -> LaneTag {
        match tag {
            CONTROL => LaneTag::Control,
            DATAGRAM => LaneTag::Datagram,
            CLIENT_FIRST..=CLIENT_LAST => LaneTag::ClientStream(tag),
            SERVER_FIRST..=SERVER_LAST => LaneTag::ServerStream(tag),
            _ => LaneTag::Reserved,
        }
    }
}

/// One WebSocket message: `tag` followed by every chunk.
pub fn message(tag: u8, chunks: &[bytes::Bytes]) -> Vec<u8> {
    let len = 1 + chunks.iter().map(|c| c.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(tag);
    for c in chunks {
        out.extend_from_slice(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_partition_the_byte() {
        assert_eq!(LaneTag::of(0), LaneTag::Control);
        assert_eq!(LaneTag::of(1), LaneTag::Datagram);
        assert_eq!(LaneTag::of(2), LaneTag::ClientStream(2));
        assert_eq!(LaneTag::of(0x0F), LaneTag::ClientStream(0x0F));
        assert_eq!(LaneTag::of(0x10), LaneTag::ServerStream(0x10));
        assert_eq!(LaneTag::of(0xFE), LaneTag::ServerStream(0xFE));
        assert_eq!(LaneTag::of(0xFF), LaneTag::Reserved);
        assert_eq!(
            message(
                3,
                &[bytes::Bytes::from_static(b"ab"), bytes::Bytes::from_static(b"c")]
            ),
            b"\x03abc"
        );
    }
}
