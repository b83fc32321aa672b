//! The WebSocket lane decoder (`garou_protocol::ws::ClientLanes`, what the server's
//! WebSocket adapter runs on every client message) on hostile message sequences, with a
//! frame decoder per lane as the session has.
//!
//! Input: `[max lanes (1 byte)]` then records `[len (1 byte)] [len bytes]`, each one binary
//! message; a record whose len byte has the high bit set first drops the reader of its
//! message's lane (`close`), as when the session lets a stream go. Checked against a plain
//! model (a set of open tags):
//! - no panic; the event (or error) is the model's; an error leaves the state unchanged;
//! - never more than `max` client lanes open; `open_count` is the model's;
//! - bytes routed to the control stream and to each lane decode frame by frame with a
//!   bounded buffer, and a finished lane's decoder ends cleanly or with a typed error.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use garou_protocol::ws::{self, ClientLaneEvent, ClientLanes, LaneError};
use garou_protocol::{Decoder, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

/// Frame cap of the per-lane decoders (small, so the too-large path is reachable).
const MAX_FRAME: usize = 64;

/// What the model says `msg` does, updating `open`.
fn model(open: &mut BTreeSet<u8>, max: usize, msg: &[u8]) -> Result<ClientLaneEvent, LaneError> {
    let (&tag, bytes) = msg.split_first().ok_or(LaneError::Empty)?;
    Ok(match tag {
        ws::CONTROL => ClientLaneEvent::Control,
        ws::DATAGRAM => ClientLaneEvent::Datagram,
        ws::CLIENT_FIRST..=ws::CLIENT_LAST if bytes.is_empty() => match open.remove(&tag) {
            true => ClientLaneEvent::Finish(tag),
            false => ClientLaneEvent::Ignored,
        },
        ws::CLIENT_FIRST..=ws::CLIENT_LAST if open.contains(&tag) => ClientLaneEvent::Data(tag),
        ws::CLIENT_FIRST..=ws::CLIENT_LAST if open.len() >= max => {
            return Err(LaneError::TooManyLanes { max })
        }
        ws::CLIENT_FIRST..=ws::CLIENT_LAST => {
            open.insert(tag);
            ClientLaneEvent::Open(tag)
        }
        _ => return Err(LaneError::NotFromClient(tag)),
    })
}

/// Push `bytes` and drain every frame; `false` once the decoder has refused the stream.
fn feed(dec: &mut Decoder, bytes: &[u8]) -> bool {
    dec.push(bytes);
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => assert!(f.payload.len() <= MAX_FRAME),
            Ok(None) => break,
            Err(_) => return false,
        }
    }
    assert!(dec.pending() < HEADER_LEN + MAX_FRAME, "lane decoder buffers too much");
    true
}

fuzz_target!(|data: &[u8]| {
    let [max, rest @ ..] = data else { return };
    let mut rest: &[u8] = rest;
    let max = usize::from(*max % 20);
    let mut lanes = ClientLanes::new(max);
    let mut open = BTreeSet::new();
    let mut control = Some(Decoder::new(MAX_FRAME));
    let mut streams: BTreeMap<u8, Decoder> = BTreeMap::new();
    while let [len, tail @ ..] = rest {
        let n = usize::from(len & 0x7f).min(tail.len());
        let (msg, next) = tail.split_at(n);
        rest = next;
        if len & 0x80 != 0 {
            if let Some(&tag) = msg.first() {
                let was = open.remove(&tag);
                assert_eq!(lanes.close(tag), was, "close disagrees with the model");
                streams.remove(&tag);
            }
        }
        let before = lanes.clone();
        let got = lanes.accept(msg);
        assert_eq!(got, model(&mut open, max, msg), "lane event differs from the model on {msg:?}");
        assert_eq!(lanes.open_count(), open.len());
        assert!(lanes.open_count() <= max);
        let body = msg.get(1..).unwrap_or_default();
        match got {
            Err(_) => {
                assert_eq!(format!("{before:?}"), format!("{lanes:?}"), "a refused message changed the state");
                return; // the server closes the socket
            }
            Ok(ClientLaneEvent::Control) => {
                if let Some(dec) = control.as_mut() {
                    if !feed(dec, body) {
                        control = None;
                    }
                }
            }
            Ok(ClientLaneEvent::Datagram) => {
                let mut dec = Decoder::new(MAX_FRAME);
                if feed(&mut dec, body) {
                    let _ = dec.finish();
                }
            }
            Ok(ClientLaneEvent::Open(t)) => {
                assert!(lanes.is_open(t));
                let mut dec = Decoder::new(MAX_FRAME);
                feed(&mut dec, body);
                assert!(streams.insert(t, dec).is_none(), "opened a lane that was open");
            }
            Ok(ClientLaneEvent::Data(t)) => {
                let dec = streams.get_mut(&t).expect("data on a lane never opened");
                feed(dec, body);
            }
            Ok(ClientLaneEvent::Finish(t)) => {
                assert!(!lanes.is_open(t));
                let dec = streams.remove(&t).expect("finished a lane never opened");
                let _ = dec.finish();
            }
            Ok(ClientLaneEvent::Ignored) => assert!(body.is_empty()),
        }
    }
});
