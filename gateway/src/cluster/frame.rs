//! What crosses the bus for one relayed connection: small binary frames on NATS.
//!
//! A relay node (see [`super::relay`]) carries each client connection it accepted to the
//! hub node as a *virtual connection*, identified by the relay's name and a random id.
//! Every frame names the connection, its place in that direction's sequence, and a
//! stream: stream 0 is the control stream (both halves), client-opened uni streams are
//! odd, server-opened ones even. NATS core delivers in order from one publisher but may
//! drop (a slow subscriber): the sequence number makes a drop visible, and a connection
//! that lost a frame is closed (the client resumes from its offsets on a new one).
//!
//! One NATS message carries a [`Batch`] of frames (each behind its length, a `u32`), of
//! any connections towards the same node, so a fan-out to many relayed members costs one
//! NATS message, not one per member.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// What a frame does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Relay → hub: a client connected (transport name, remote address).
    Open { transport: String, remote: String },
    /// Bytes on a stream (opened by its first frame).
    Data(Bytes),
    /// The writer finished the stream.
    Fin,
    /// One datagram.
    Datagram(Bytes),
    /// The connection is closed (code and reason as the closing side gave them).
    Close { code: u16, reason: String },
}

/// One frame of one virtual connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The connection, unique within its relay node.
    pub conn: u64,
    /// Frames in one direction of one connection are numbered from 0, without a gap.
    pub seq: u32,
    /// The stream (0: control) for Data and Fin; 0 otherwise.
    pub stream: u32,
    pub op: Op,
}

/// Why a bus frame could not be read (a peer of another version, or garbage).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("bus frame too short")]
    Short,
    #[error("unknown bus frame kind {0}")]
    Kind(u8),
    #[error("bus frame text is not UTF-8")]
    Text,
}

/// Frames gathered into one NATS payload: each behind its length (`u32`, big-endian).
#[derive(Debug, Default)]
pub struct Batch {
    buf: BytesMut,
}

impl Batch {
    /// Add one encoded frame.
    pub fn push(&mut self, frame: &[u8]) {
        self.buf.put_u32(frame.len() as u32);
        self.buf.put_slice(frame);
    }

    /// Bytes gathered so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The payload, leaving the batch empty.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// The frames of a payload, in order; an error ends the payload (what follows an
    /// unreadable frame cannot be framed).
    pub fn frames(mut payload: Bytes) -> impl Iterator<Item = Result<Frame, FrameError>> {
        std::iter::from_fn(move || {
            if payload.is_empty() {
                return None;
            }
            if payload.len() < 4 {
                payload.clear();
                return Some(Err(FrameError::Short));
            }
            let n = payload.get_u32() as usize;
            if payload.len() < n {
                payload.clear();
                return Some(Err(FrameError::Short));
            }
            Some(Frame::decode(payload.split_to(n)))
        })
    }
}

const HEADER: usize = 1 + 8 + 4 + 4;

impl Frame {
    /// The frame as one NATS payload.
    pub fn encode(&self) -> Bytes {
        let (kind, body_len) = match &self.op {
            Op::Open { transport, remote } => (0u8, 2 + transport.len() + remote.len()),
            Op::Data(b) => (1, b.len()),
            Op::Fin => (2, 0),
            Op::Datagram(b) => (3, b.len()),
            Op::Close { reason, .. } => (4, 2 + reason.len()),
        };
        let mut out = BytesMut::with_capacity(HEADER + body_len);
        out.put_u8(kind);
        out.put_u64(self.conn);
        out.put_u32(self.seq);
        out.put_u32(self.stream);
        match &self.op {
            Op::Open { transport, remote } => {
                out.put_u8(transport.len().min(255) as u8);
                out.put_slice(&transport.as_bytes()[..transport.len().min(255)]);
                out.put_u8(0);
                out.put_slice(remote.as_bytes());
            }
            Op::Data(b) | Op::Datagram(b) => out.put_slice(b),
            Op::Fin => {}
            Op::Close { code, reason } => {
                out.put_u16(*code);
                out.put_slice(reason.as_bytes());
            }
        }
        out.freeze()
    }

    /// Read a frame from a NATS payload (`Data` and `Datagram` share its bytes).
    pub fn decode(mut b: Bytes) -> Result<Frame, FrameError> {
        if b.len() < HEADER {
            return Err(FrameError::Short);
        }
        let kind = b.get_u8();
        let conn = b.get_u64();
        let seq = b.get_u32();
        let stream = b.get_u32();
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| FrameError::Text);
        let op = match kind {
            0 => {
                let n = *b.first().ok_or(FrameError::Short)? as usize;
                if b.len() < 2 + n {
                    return Err(FrameError::Short);
                }
                Op::Open {
                    transport: text(&b[1..1 + n])?,
                    remote: text(&b[2 + n..])?,
                }
            }
            1 => Op::Data(b),
            2 => Op::Fin,
            3 => Op::Datagram(b),
            4 => {
                if b.len() < 2 {
                    return Err(FrameError::Short);
                }
                let code = b.get_u16();
                Op::Close {
                    code,
                    reason: text(&b)?,
                }
            }
            k => return Err(FrameError::Kind(k)),
        };
        Ok(Frame {
            conn,
            seq,
            stream,
            op,
        })
    }
}

/// Numbers one direction's frames and checks the other's (see the module docs).
#[derive(Debug, Default)]
pub struct Sequence {
    next: u32,
}

impl Sequence {
    /// The number of the next frame sent.
    pub fn take(&mut self) -> u32 {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        n
    }

    /// Whether `seq` is the next frame expected (and count it).
    pub fn accept(&mut self, seq: u32) -> bool {
        let ok = seq == self.next;
        self.next = self.next.wrapping_add(1);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(op: Op) {
        let f = Frame {
            conn: 0xdead_beef_0102_0304,
            seq: 7,
            stream: 3,
            op,
        };
        assert_eq!(Frame::decode(f.encode()).unwrap(), f);
    }

    #[test]
    fn every_kind_round_trips() {
        round(Op::Open {
            transport: "webtransport".into(),
            remote: "[::1]:4433".into(),
        });
        round(Op::Data(Bytes::from_static(b"hello")));
        round(Op::Data(Bytes::new()));
        round(Op::Fin);
        round(Op::Datagram(Bytes::from_static(b"\x01\x02")));
        round(Op::Close {
            code: 27,
            reason: "replaced".into(),
        });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(
            Frame::decode(Bytes::from_static(b"\x01\x02")),
            Err(FrameError::Short)
        );
        let mut bad = Frame {
            conn: 1,
            seq: 0,
            stream: 0,
            op: Op::Fin,
        }
        .encode()
        .to_vec();
        bad[0] = 9;
        assert_eq!(Frame::decode(bad.into()), Err(FrameError::Kind(9)));
        let open = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 200]);
        assert_eq!(Frame::decode(open), Err(FrameError::Short));
    }

    #[test]
    fn a_batch_carries_frames_in_order_and_a_torn_one_is_an_error() {
        let frames: Vec<Frame> = (0..3)
            .map(|seq| Frame {
                conn: 5 + seq as u64,
                seq,
                stream: 0,
                op: Op::Data(Bytes::from(vec![seq as u8; 10 * seq as usize])),
            })
            .collect();
        let mut batch = Batch::default();
        for f in &frames {
            batch.push(&f.encode());
        }
        let payload = batch.take();
        assert!(batch.is_empty());
        let back: Vec<Frame> = Batch::frames(payload.clone()).map(Result::unwrap).collect();
        assert_eq!(back, frames);
        let torn = payload.slice(..payload.len() - 1);
        let read: Vec<_> = Batch::frames(torn).collect();
        assert_eq!(read.len(), 3);
        assert_eq!(read[2], Err(FrameError::Short));
    }

    #[test]
    fn a_lost_frame_is_seen() {
        let (mut tx, mut rx) = (Sequence::default(), Sequence::default());
        assert!(rx.accept(tx.take()));
        let _lost = tx.take();
        assert!(!rx.accept(tx.take()));
    }
}
