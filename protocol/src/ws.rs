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
    /// [`CONTROL`]: bytes of the control stream.
    Control,
    /// [`DATAGRAM`]: exactly one whole frame.
    Datagram,
    /// A client-opened uni stream.
    ClientStream(u8),
    /// A server-opened uni stream.
    ServerStream(u8),
    /// `0xFF`: reserved, never sent.
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

/// What one client message means to the server, once its lane tag is read; the bytes are
/// always the message after its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLaneEvent {
    /// Bytes of the control stream (possibly none).
    Control,
    /// One datagram.
    Datagram,
    /// The first bytes of a new client uni stream on this tag.
    Open(u8),
    /// More bytes of the client uni stream open on this tag.
    Data(u8),
    /// The stream on this tag is finished (an empty message); its tag is free again.
    Finish(u8),
    /// An empty message on a tag with no open stream: nothing to do.
    Ignored,
}

/// Why a client message is a protocol violation (the server closes the socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// A message without even a lane tag.
    #[error("empty message")]
    Empty,
    /// A server-stream or reserved tag, which clients may not send on.
    #[error("lane tag 0x{0:02x} not allowed from a client")]
    NotFromClient(u8),
    /// A new stream while `max` client lanes are open already.
    #[error("too many client lanes open (at most {max})")]
    TooManyLanes {
        /// The limit.
        max: usize,
    },
}

/// The server's side of the lane framing: classifies each binary message a client sends
/// and tracks which client uni-stream tags are open, at most `max` at a time. Sans-IO: the
/// WebSocket adapter feeds it every message and routes the bytes (`&msg[1..]`) by the
/// event; the fuzz target `ws_lanes` drives it with hostile messages.
#[derive(Debug, Clone)]
pub struct ClientLanes {
    open: [bool; (CLIENT_LAST - CLIENT_FIRST + 1) as usize],
    count: usize,
    max: usize,
}

impl ClientLanes {
    /// No lane open; at most `max` client streams open at once.
    pub fn new(max: usize) -> ClientLanes {
        ClientLanes {
            open: [false; (CLIENT_LAST - CLIENT_FIRST + 1) as usize],
            count: 0,
            max,
        }
    }

    /// Client uni streams open now.
    pub fn open_count(&self) -> usize {
        self.count
    }

    /// Whether a stream is open on `tag`.
    pub fn is_open(&self, tag: u8) -> bool {
        Self::slot(tag).is_some_and(|i| self.open[i])
    }

    fn slot(tag: u8) -> Option<usize> {
        (CLIENT_FIRST..=CLIENT_LAST)
            .contains(&tag)
            .then(|| usize::from(tag - CLIENT_FIRST))
    }

    /// Classify one binary message from the client.
    pub fn accept(&mut self, msg: &[u8]) -> Result<ClientLaneEvent, LaneError> {
        let (&tag, bytes) = msg.split_first().ok_or(LaneError::Empty)?;
        Ok(match LaneTag::of(tag) {
            LaneTag::Control => ClientLaneEvent::Control,
            LaneTag::Datagram => ClientLaneEvent::Datagram,
            LaneTag::ClientStream(t) if bytes.is_empty() => {
                if self.close(t) {
                    ClientLaneEvent::Finish(t)
                } else {
                    ClientLaneEvent::Ignored
                }
            }
            LaneTag::ClientStream(t) if self.is_open(t) => ClientLaneEvent::Data(t),
            LaneTag::ClientStream(t) => {
                if self.count >= self.max {
                    return Err(LaneError::TooManyLanes { max: self.max });
                }
                if let Some(i) = Self::slot(t) {
                    self.open[i] = true;
                    self.count += 1;
                }
                ClientLaneEvent::Open(t)
            }
            LaneTag::ServerStream(_) | LaneTag::Reserved => return Err(LaneError::NotFromClient(tag)),
        })
    }

    /// Forget the stream on `tag` (finished, or its reader went away); returns whether it
    /// was open. A later message on the tag opens a new stream.
    pub fn close(&mut self, tag: u8) -> bool {
        match Self::slot(tag) {
            Some(i) if self.open[i] => {
                self.open[i] = false;
                self.count -= 1;
                true
            }
            _ => false,
        }
    }
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

    #[test]
    fn client_lanes_open_finish_and_refuse() {
        use ClientLaneEvent::*;
        let mut l = ClientLanes::new(2);
        assert_eq!(l.accept(b""), Err(LaneError::Empty));
        assert_eq!(l.accept(b"\x00"), Ok(Control));
        assert_eq!(l.accept(b"\x00ab"), Ok(Control));
        assert_eq!(l.accept(b"\x01x"), Ok(Datagram));
        assert_eq!(l.accept(b"\x02"), Ok(Ignored));
        assert_eq!(l.accept(b"\x02a"), Ok(Open(2)));
        assert_eq!(l.accept(b"\x02b"), Ok(Data(2)));
        assert_eq!(l.accept(b"\x0fc"), Ok(Open(0x0f)));
        assert_eq!(l.open_count(), 2);
        assert_eq!(l.accept(b"\x03d"), Err(LaneError::TooManyLanes { max: 2 }));
        assert_eq!(l.accept(b"\x02"), Ok(Finish(2)));
        assert!(!l.is_open(2));
        assert_eq!(l.accept(b"\x03d"), Ok(Open(3)));
        assert!(l.close(3));
        assert!(!l.close(3));
        assert_eq!(l.accept(b"\x03e"), Ok(Open(3)));
        assert_eq!(l.accept(b"\x10"), Err(LaneError::NotFromClient(0x10)));
        assert_eq!(l.accept(b"\xffz"), Err(LaneError::NotFromClient(0xff)));
        assert_eq!(l.open_count(), 2);
    }
}
