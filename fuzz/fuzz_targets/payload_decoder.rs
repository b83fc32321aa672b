//! Payload decoding of every frame type on hostile bytes: `Message::decode` (a frame from a
//! stream) and `Message::decode_datagram` (one whole frame in a datagram).
//!
//! Input: `[type byte] [payload...]`. Checked: no panic; whatever decodes is of the type
//! byte it came with, and round-trips: its encoding decodes (as a frame and as a datagram)
//! to an equal message and re-encodes to the same bytes (encoding is canonical), never
//! longer than what it was decoded from (trailing bytes are ignored, never invented).
#![no_main]

use bytes::Bytes;
use garou_protocol::{Decoder, Frame, Message, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

/// `m`'s encoding decodes back to `m`, whichever way it is read, and is stable.
fn round_trip(m: &Message, from_len: usize) {
    let wire = m.encode();
    assert!(
        wire.len() <= from_len,
        "re-encoding grew: {} > {from_len} bytes for {m:?}",
        wire.len()
    );
    assert_eq!(wire[0], m.frame_type() as u8);
    let mut dec = Decoder::new(wire.len());
    dec.push(&wire);
    let frame = dec
        .next_frame()
        .expect("own frame decodes")
        .expect("own frame is whole");
    dec.finish().expect("nothing after own frame");
    let again = Message::decode(&frame).expect("own payload decodes");
    assert_eq!(&again, m, "stream round trip changed the message");
    assert_eq!(again.encode(), wire, "encoding is not canonical");
    let dgram = Message::decode_datagram(&wire, wire.len() - HEADER_LEN).expect("own datagram decodes");
    assert_eq!(&dgram, m, "datagram round trip changed the message");
}

fuzz_target!(|data: &[u8]| {
    let [ty, payload @ ..] = data else { return };
    let frame = Frame {
        ty: *ty,
        payload: Bytes::copy_from_slice(payload),
    };
    if let Ok(m) = Message::decode(&frame) {
        assert_eq!(m.frame_type() as u8, *ty, "decoded as another type");
        round_trip(&m, frame.wire_len());
    }
    // The same bytes as a whole datagram (header included), with a cap taken from the input.
    let max = usize::from(*ty) * 8;
    if let Ok(m) = Message::decode_datagram(data, max) {
        assert!(data.len() - HEADER_LEN <= max, "datagram over the cap accepted");
        round_trip(&m, data.len());
    }
});
