//! Incremental frame decoder.
//!
//! Feed it byte slices of any size (a QUIC chunk, a WebSocket message, one byte at a
//! time) and take whole [`Frame`]s out. The declared length is checked against the cap
//! and the type byte against the known types as soon as the 5-byte header is complete,
//! before a single payload byte is buffered. The buffer grows with the bytes actually
//! received, never by the length a header declares: a peer that announces a 1 MiB frame
//! and sends ten bytes costs about ten bytes, and can never make us hold more than one
//! frame's worth (`max_frame`) per stream. What a connection may buffer across all its
//! streams is the caller's business ([`Decoder::pending`] says what one stream holds).

use bytes::{Buf, BytesMut};

use crate::frame::{Frame, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::message::FrameType;

/// Spare capacity an empty buffer may keep for the next frames; above this it is freed.
const RETAIN_IDLE: usize = 16 * 1024;

/// Why bytes could not be turned into a frame or a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type byte is no known [`FrameType`] (the byte is given).
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A header declared a payload longer than the cap; refused before buffering it.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Payload length the header declared, in bytes.
        len: usize,
        /// The decoder's cap, in bytes.
        max: usize,
    },
    /// The stream (or datagram) ended inside a frame; the value is the bytes left over.
    #[error("stream ended inside a frame ({0} bytes pending)")]
    Truncated(usize),
    /// A whole frame whose payload does not decode as its type's message.
    #[error("malformed payload for frame type 0x{ty:02x}: {reason}")]
    Payload {
        /// Type byte of the frame.
        ty: u8,
        /// What the payload decoder found wrong.
        reason: String,
    },
}

/// Incremental, capped frame decoder. One per stream (frames never span streams).
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_frame: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder refusing payloads longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Decoder {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Append received bytes. Nothing is validated until [`Decoder::next_frame`].
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    ///
    /// After an error the stream is unusable: the caller should close it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let ty = self.buf[0];
        if FrameType::from_u8(ty).is_none() {
            return Err(DecodeError::UnknownType(ty));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.max_frame {
            return Err(DecodeError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if self.buf.len() < HEADER_LEN + len {
            // Wait for the bytes themselves: nothing is reserved for the declared length,
            // so memory follows what the peer really sent.
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len).freeze();
        if self.buf.is_empty() && self.buf.capacity() > RETAIN_IDLE {
            // A large frame went through: an idle stream keeps no large buffer.
            self.buf = BytesMut::new();
        }
        Ok(Some(Frame { ty, payload }))
    }

    /// The largest payload accepted from now on. Lowering it applies to the next header
    /// checked; a frame already accepted is not re-checked. Used to keep frames small until
    /// a peer has authenticated, then lift the cap.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The payload cap in force.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes of memory the buffer holds (at least [`Decoder::pending`]).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Call when the stream ends: an error if a partial frame is left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Truncated(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    #[test]
    fn a_declared_large_frame_holds_only_the_bytes_received() {
        let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
        dec.push(&Frame::header(FrameType::Hello as u8, DEFAULT_MAX_FRAME));
        dec.push(&[7; 10]);
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.pending(), HEADER_LEN + 10);
        assert!(
            dec.buf.capacity() < 64,
            "capacity {} for {} bytes received",
            dec.buf.capacity(),
            dec.pending()
        );
    }

    #[test]
    fn a_large_frame_leaves_no_large_buffer_behind() {
        let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
        dec.push(&Frame::header(FrameType::Hello as u8, 100_000));
        for _ in 0..100 {
            dec.push(&[0; 1000]);
        }
        assert_eq!(dec.next_frame().unwrap().unwrap().payload.len(), 100_000);
        assert_eq!(dec.pending(), 0);
        assert!(dec.capacity() <= RETAIN_IDLE, "capacity {}", dec.capacity());
    }

    #[test]
    fn the_cap_can_be_lowered_and_lifted() {
        let mut dec = Decoder::new(16);
        dec.push(&Frame::header(FrameType::Auth as u8, 17));
        assert_eq!(dec.next_frame(), Err(DecodeError::TooLarge { len: 17, max: 16 }));
        let mut dec = Decoder::new(16);
        dec.set_max_frame(1024);
        assert_eq!(dec.max_frame(), 1024);
        dec.push(&Frame::header(FrameType::Auth as u8, 17));
        assert_eq!(dec.next_frame(), Ok(None));
    }
}
