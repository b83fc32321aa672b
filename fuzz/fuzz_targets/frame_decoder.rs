//! The incremental frame decoder on hostile bytes, cut into arbitrary chunks.
//!
//! Input: `[max_frame (1 byte)] [number of cuts (1 byte)] [cut lengths (1 byte each)] [stream...]`.
//! The stream is pushed chunk by chunk into a `Decoder` with a small cap, draining frames
//! after every push, then `finish` is called. Checked:
//! - no panic;
//! - whenever the decoder wants more bytes, it holds less than one capped frame
//!   (`HEADER_LEN + max_frame`), and a complete header it holds declares a length within the cap;
//! - every frame re-encodes to exactly the bytes it was cut from (frames tile the stream);
//! - the outcome (frames, then the error or clean end) does not depend on how the stream was
//!   cut: it equals decoding the whole stream in one push.
#![no_main]

use garou_protocol::{DecodeError, Decoder, Frame, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

/// Frames, then how decoding stopped.
type Outcome = (Vec<Frame>, Result<(), DecodeError>);

/// Decode `stream` pushed in `chunks`, checking the buffering bound after every step.
fn decode(stream: &[u8], chunks: impl Iterator<Item = usize>, max_frame: usize) -> Outcome {
    let mut dec = Decoder::new(max_frame);
    let mut frames = Vec::new();
    let mut at = 0;
    let mut lens = chunks.chain(std::iter::once(usize::MAX));
    while at < stream.len() {
        let len = lens.next().unwrap_or(usize::MAX).min(stream.len() - at);
        dec.push(&stream[at..at + len]);
        at += len;
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= max_frame, "frame over the cap returned");
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
        // Waiting for more bytes: less than one whole capped frame may be held.
        let pending = dec.pending();
        assert!(
            pending < HEADER_LEN + max_frame,
            "decoder holds {pending} bytes waiting for more (cap {max_frame})"
        );
    }
    (frames, dec.finish())
}

fuzz_target!(|data: &[u8]| {
    let [max, cuts, rest @ ..] = data else { return };
    let max_frame = usize::from(*max);
    let cuts = usize::from(*cuts).min(rest.len());
    let (cut_lens, stream) = rest.split_at(cuts);
    // Zero-length chunks are allowed: pushing nothing must be harmless.
    let split = decode(stream, cut_lens.iter().map(|&c| usize::from(c)), max_frame);
    let whole = decode(stream, std::iter::empty(), max_frame);
    assert_eq!(split, whole, "the outcome depends on how the stream was cut");

    // Frames re-encode to the exact bytes they came from, in order, from the start.
    let mut at = 0;
    for f in &split.0 {
        let wire = f.to_bytes();
        assert_eq!(
            &stream[at..at + wire.len()],
            &wire[..],
            "frame does not re-encode to its bytes"
        );
        assert_eq!(wire.len(), f.wire_len());
        at += wire.len();
    }
    match &split.1 {
        Ok(()) => assert_eq!(at, stream.len(), "clean end with bytes left over"),
        Err(DecodeError::Truncated(n)) => assert_eq!(at + n, stream.len(), "truncation miscounted"),
        Err(DecodeError::TooLarge { len, max }) => {
            assert!(*len > *max && *max == max_frame);
            let l = &stream[at + 1..at + HEADER_LEN];
            assert_eq!(u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize, *len);
        }
        Err(DecodeError::UnknownType(ty)) => {
            assert_eq!(stream[at], *ty);
            assert!(garou_protocol::FrameType::from_u8(*ty).is_none());
        }
        Err(e @ DecodeError::Payload { .. }) => panic!("the frame decoder never judges payloads: {e}"),
    }
});
