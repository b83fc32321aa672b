//! The wire frame: `type (1 byte) | length (4 bytes, big-endian) | payload`.
//!
//! Every stream and every datagram carries frames in this one format, so a single
//! [`Decoder`](crate::Decoder) serves all of them. Frame types are grouped in ranges
//! (seed 000) so a peer can tell the category of an unknown type from its first byte.

use bytes::Bytes;

/// Bytes in a frame header: one type byte and a 4-byte big-endian payload length.
pub const HEADER_LEN: usize = 5;

/// Default cap on a frame payload. Checked before any allocation.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// The category a frame type belongs to, from its numeric range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// 0x00-0x0F: handshake, keepalive, throttle, stream headers.
    Control,
    /// 0x10-0x2F: client commands (0x10-0x1F) and their replies (0x20-0x2F); 0x90-0x9F:
    /// more commands (room administration).
    Command,
    /// 0x30-0x4F: sequenced room events on shard and hot-room streams.
    Room,
    /// 0x50-0x5F: shard assignment and hot-room promotion/demotion.
    Shard,
    /// 0x60-0x6F: publish acks and delivered/read receipts.
    Ack,
    /// 0x70-0x7F: bulk uploads.
    Upload,
    /// 0x80-0x8F: unreliable datagrams (typing, presence).
    Datagram,
    /// 0xFF: error.
    Error,
    /// Anything else: not a valid frame type.
    Reserved,
}

impl Category {
    /// The category of a raw type byte.
    pub fn of(ty: u8) -> Category {
        match ty {
            0x00..=0x0F => Category::Control,
            0x10..=0x2F => Category::Command,
            0x30..=0x4F => Category::Room,
            0x50..=0x5F => Category::Shard,
            0x60..=0x6F => Category::Ack,
            0x70..=0x7F => Category::Upload,
            0x90..=0x9F => Category::Command,
            0x80..=0x8F => Category::Datagram,
            0xFF => Category::Error,
            _ => Category::Reserved,
        }
    }
}

/// One undecoded frame: its type byte and payload bytes (shared, zero-copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Type byte; the [`Decoder`](crate::Decoder) only yields known [`FrameType`](crate::FrameType)s.
    pub ty: u8,
    /// Payload, exactly the length the header declared (a postcard-encoded message).
    pub payload: Bytes,
}

impl Frame {
    /// Bytes this frame occupies on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Header bytes for a payload of `len` bytes.
    pub fn header(ty: u8, len: usize) -> [u8; HEADER_LEN] {
        let l = (len as u32).to_be_bytes();
        [ty, l[0], l[1], l[2], l[3]]
    }

    /// The whole frame as contiguous wire bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.wire_len());
        v.extend_from_slice(&Frame::header(self.ty, self.payload.len()));
        v.extend_from_slice(&self.payload);
        v.into()
    }
}
