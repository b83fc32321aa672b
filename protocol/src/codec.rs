//! Incremental frame decoder.
//!
//! Feed it byte slices of any size (a QUIC chunk, a WebSocket message, one byte at a
//! time) and take whole [`Frame`]s out. The declared length is checked against the cap
//! and the type byte against the known types as soon as the 5-byte header is complete,
//! before a single payload byte is buffered, so a hostile peer cannot make us allocate
//! more than `max_frame` per stream.

use bytes::{Buf, BytesMut};

use crate::frame::{Frame, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::message::FrameType;

/// Why bytes could not be turned into a frame or a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("stream ended inside a frame ({0} bytes pending)")]
    Truncated(usize),
    #[error("malformed payload for frame type 0x{ty:02x}: {reason}")]
    Payload { ty: u8, reason: String },
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
            // Reserve only what the (capped) frame still needs.
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(Frame { ty, payload }))
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
