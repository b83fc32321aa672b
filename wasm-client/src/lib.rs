//! Garou's browser client: wasm-bindgen bindings around the sans-IO
//! [`garou_protocol::ClientSession`], over WebTransport (with a certificate hash from the
//! gateway's `/cert-hash`) or, as a fallback, one WebSocket carrying the stream model with
//! lane tags ([`garou_protocol::ws`]).
//!
//! The protocol itself is only implemented once, in `garou-protocol`: this crate moves
//! bytes between browser transports and the session, runs its timers, and turns its
//! events and replies into JS objects and promises. The JS API (`GarouClient`) is
//! documented in `README.md` next to this crate.
//!
//! Layout: [`model`] (events and replies as JS sees them) and [`wire`] (options, URLs,
//! certificate hash, WebSocket lane demux) are plain Rust, unit-tested natively; the
//! browser glue lives in `web`, compiled for `wasm32` only, so `cargo build --workspace`
//! on a native target builds this crate too.
#![forbid(unsafe_code)]

pub mod model;
pub mod recovery;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(test)]
mod tests {
    //! The WebSocket path end to end without a browser: a scripted server's lane-tagged
    //! messages go through [`wire::WsDemux`] into a real `ClientSession`, and its events
    //! through [`model::map_event`].

    use garou_protocol::client::CONTROL;
    use garou_protocol::*;

    use crate::model::{map_event, JsEvent, JsReply, Mapped};
    use crate::wire::{lane_tag, WsDemux, WsInput};

    fn tagged(tag: u8, m: Message) -> Vec<u8> {
        ws::message(tag, &[m.encode()])
    }

    fn feed(s: &mut ClientSession, d: &mut WsDemux, msg: &[u8]) {
        match d.on_message(msg).unwrap() {
            WsInput::Control(b) => s.on_stream_data(CONTROL, b, 0).unwrap(),
            WsInput::Datagram(b) => s.on_datagram(b, 0).unwrap(),
            WsInput::Stream(id, b) => s.on_stream_data(id, b, 0).unwrap(),
            WsInput::StreamEnd(id) => s.on_stream_end(id).unwrap(),
            WsInput::ControlEnd | WsInput::Nothing => {}
        }
    }

    fn events(s: &mut ClientSession) -> Vec<Mapped> {
        std::iter::from_fn(|| s.poll_event()).map(map_event).collect()
    }

    #[test]
    fn websocket_lanes_drive_a_session() {
        let mut s = ClientSession::new(ClientConfig::with_nick("ann"), 0);
        let mut d = WsDemux::default();
        let hello = s.poll_transmit().unwrap();
        assert_eq!(hello.lane, Lane::Control);
        assert_eq!(lane_tag(hello.lane), 0);

        feed(
            &mut s,
            &mut d,
            &tagged(
                0,
                HelloAck {
                    session: 1,
                    version: PROTOCOL_VERSION,
                    server: "t".into(),
                    max_frame: 65536,
                    heartbeat_ms: 5000,
                }
                .into(),
            ),
        );
        feed(
            &mut s,
            &mut d,
            &tagged(
                0,
                AuthOk {
                    user: 7,
                    nick: "ann".into(),
                }
                .into(),
            ),
        );
        feed(
            &mut s,
            &mut d,
            &tagged(0, ShardAssignment { num_shards: 1 }.into()),
        );
        assert_eq!(
            events(&mut s),
            vec![Mapped::Ready {
                user: 7,
                nick: "ann".into()
            }]
        );

        let req = s.join("general", 0);
        let lanes: Vec<u8> = std::iter::from_fn(|| s.poll_transmit())
            .map(|t| lane_tag(t.lane))
            .collect();
        assert!(lanes.iter().all(|&t| t == 0 || t == 2), "{lanes:?}");
        assert!(lanes.contains(&2));

        // Shard stream 0 on lane 0x10, split at an odd byte: header, then our own join.
        let mut stream = Message::from(StreamHeader {
            kind: StreamKind::Shard(0),
        })
        .encode()
        .to_vec();
        stream.extend_from_slice(
            &Message::from(MemberJoined {
                room: "general".into(),
                offset: 4,
                user: 7,
                nick: "ann".into(),
                role: Role::Member,
            })
            .encode(),
        );
        let (a, b) = stream.split_at(7);
        feed(&mut s, &mut d, &[&[0x10][..], a].concat());
        feed(&mut s, &mut d, &[&[0x10][..], b].concat());
        feed(
            &mut s,
            &mut d,
            &tagged(
                0,
                Joined {
                    req,
                    room: RoomInfo {
                        name: "general".into(),
                        kind: RoomKind::Group,
                        members: 1,
                        title: String::new(),
                    },
                    role: Role::Member,
                    offset: 4,
                    members: vec![],
                    epoch: 1,
                    resumed: false,
                    unread: 0,
                }
                .into(),
            ),
        );
        let got = events(&mut s);
        assert!(matches!(&got[0], Mapped::Reply { req: r, result: Ok(JsReply::Joined(_)) } if *r == req));
        assert!(matches!(&got[1], Mapped::Event(JsEvent::MemberJoined { offset, .. }) if *offset == 4.0));

        // A datagram (presence) on lane 0x01.
        feed(
            &mut s,
            &mut d,
            &tagged(
                1,
                Presence {
                    user: 8,
                    nick: "bob".into(),
                    online: true,
                }
                .into(),
            ),
        );
        assert!(matches!(
            &events(&mut s)[..],
            [Mapped::Event(JsEvent::Presence { online: true, .. })]
        ));
        // Finishing the shard stream cleanly is not an error.
        feed(&mut s, &mut d, &[0x10]);
    }
}
