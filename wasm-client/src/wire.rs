//! Transport plumbing that needs no browser: connect options, gateway URLs, the
//! certificate hash, and the WebSocket lane tags (see `garou_protocol::ws`).

use garou_protocol::client::StreamId;
use garou_protocol::ws::{self, LaneTag};
use garou_protocol::{Credentials, Lane};
use serde::Deserialize;

use crate::model::TransportKind;

/// `connect()` options, as given by JS (`ConnectOptions` in the TypeScript types).
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ConnectOptions {
    /// Gateway HTTP origin, e.g. `http://127.0.0.1:8080`; default `location.origin`.
    pub url: Option<String>,
    pub nick: Option<String>,
    pub token: Option<String>,
    /// `"auto"` (default), `"webtransport"` or `"websocket"`.
    pub transport: Option<String>,
    /// More gateway origins, tried in turn after `url` when reconnecting.
    pub urls: Option<Vec<String>>,
    /// Reconnect by itself after a lost connection (default true).
    pub reconnect: Option<bool>,
    /// Where to fetch the WebTransport certificate hash (default `<url>/cert-hash`).
    pub cert_hash_url: Option<String>,
    /// A pinned certificate hash: a gateway reporting another one is refused.
    pub cert_hash: Option<String>,
    pub backoff_initial_ms: Option<f64>,
    pub backoff_max_ms: Option<f64>,
    pub ping_interval_ms: Option<f64>,
    pub dead_after_ms: Option<f64>,
    pub request_timeout_ms: Option<f64>,
    pub handshake_timeout_ms: Option<f64>,
    pub max_queue: Option<f64>,
    pub send_rate: Option<f64>,
    pub send_burst: Option<f64>,
    pub max_in_flight: Option<f64>,
}

impl ConnectOptions {
    /// The credentials to authenticate with: the token if given, else the nick, else
    /// `fallback_nick` (a generated guest nick).
    pub fn credentials(&self, fallback_nick: impl FnOnce() -> String) -> Credentials {
        match (&self.token, &self.nick) {
            (Some(t), _) if !t.is_empty() => Credentials::Token(t.clone()),
            (_, Some(n)) if !n.is_empty() => Credentials::Nick(n.clone()),
            _ => Credentials::Nick(fallback_nick()),
        }
    }
}

/// Which transport(s) `connect()` may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportChoice {
    /// WebTransport if the browser has it and the handshake succeeds, else WebSocket.
    Auto,
    Only(TransportKind),
}

impl TransportChoice {
    pub fn parse(s: Option<&str>) -> Result<TransportChoice, String> {
        match s {
            None | Some("auto") | Some("") => Ok(TransportChoice::Auto),
            Some("webtransport") => Ok(TransportChoice::Only(TransportKind::WebTransport)),
            Some("websocket") => Ok(TransportChoice::Only(TransportKind::WebSocket)),
            Some(other) => Err(format!(
                "transport must be \"auto\", \"webtransport\" or \"websocket\", not {other:?}"
            )),
        }
    }
}

fn split_scheme(origin: &str) -> Result<(&str, &str), String> {
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or_else(|| format!("gateway url {origin:?} is not an http(s) URL"))?;
    if rest.is_empty() {
        return Err(format!("gateway url {origin:?} has no host"));
    }
    Ok((scheme, rest.trim_end_matches('/')))
}

/// `origin` + `path` (`path` starts with `/`), tolerating a trailing slash on the origin.
pub fn endpoint(origin: &str, path: &str) -> Result<String, String> {
    let (scheme, rest) = split_scheme(origin)?;
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(format!("{scheme}://{rest}{path}")),
        _ => Err(format!(
            "gateway url {origin:?} must start with http:// or https://"
        )),
    }
}

/// The WebSocket URL of a gateway: `ws://host/ws` for http, `wss://host/ws` for https.
pub fn ws_url(origin: &str) -> Result<String, String> {
    let (scheme, rest) = split_scheme(origin)?;
    let ws_scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => {
            return Err(format!(
                "gateway url {origin:?} must start with http:// or https://"
            ))
        }
    };
    Ok(format!("{ws_scheme}://{rest}/ws"))
}

/// The JSON of `GET /cert-hash`.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CertHash {
    /// SHA-256 of the server certificate (DER), 64 hex digits.
    pub sha256: String,
    /// The WebTransport URL, e.g. `https://127.0.0.1:4433/`.
    pub url: String,
}

/// Decode 64 hex digits (colons and spaces allowed between bytes) into a SHA-256 hash.
pub fn parse_sha256_hex(s: &str) -> Result<[u8; 32], String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    if digits.len() != 64 {
        return Err(format!(
            "certificate hash must be 64 hex digits, got {}",
            digits.len()
        ));
    }
    let val = |b: u8| -> Result<u8, String> {
        (b as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("certificate hash has a non-hex character {:?}", b as char))
    };
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = val(pair[0])? << 4 | val(pair[1])?;
    }
    Ok(out)
}

/// The WebSocket lane tag of an outgoing transmit: control 0x00, datagram 0x01, the
/// commands stream 0x02, the acks stream 0x03.
pub fn lane_tag(lane: Lane) -> u8 {
    match lane {
        Lane::Control => ws::CONTROL,
        Lane::Datagram => ws::DATAGRAM,
        Lane::Commands => ws::CLIENT_FIRST,
        Lane::Acks => ws::CLIENT_FIRST + 1,
    }
}

/// One WebSocket message, demultiplexed.
#[derive(Debug, PartialEq, Eq)]
pub enum WsInput<'a> {
    /// Bytes of the control stream.
    Control(&'a [u8]),
    /// The server finished the control stream (the session is over).
    ControlEnd,
    /// One datagram.
    Datagram(&'a [u8]),
    /// Bytes of the server-opened uni stream the session knows as `id`.
    Stream(StreamId, &'a [u8]),
    /// That stream finished.
    StreamEnd(StreamId),
    /// Nothing to do (an empty message for a stream that was never opened).
    Nothing,
}

/// Maps the server's uni-stream lane tags (0x10..=0xFE, reusable after a stream
/// finishes) onto distinct session stream ids, counting from 1.
#[derive(Debug)]
pub struct WsDemux {
    open: [Option<StreamId>; 256],
    next_id: StreamId,
}

impl Default for WsDemux {
    fn default() -> Self {
        WsDemux {
            open: [None; 256],
            next_id: 1,
        }
    }
}

impl WsDemux {
    /// Classify one binary message. Errors are protocol violations: close the connection.
    pub fn on_message<'a>(&mut self, msg: &'a [u8]) -> Result<WsInput<'a>, String> {
        let Some((&tag, bytes)) = msg.split_first() else {
            return Err("empty WebSocket message (no lane tag)".into());
        };
        Ok(match LaneTag::of(tag) {
            LaneTag::Control if bytes.is_empty() => WsInput::ControlEnd,
            LaneTag::Control => WsInput::Control(bytes),
            LaneTag::Datagram => WsInput::Datagram(bytes),
            LaneTag::ServerStream(t) if bytes.is_empty() => match self.open[t as usize].take() {
                Some(id) => WsInput::StreamEnd(id),
                None => WsInput::Nothing,
            },
            LaneTag::ServerStream(t) => {
                let id = *self.open[t as usize].get_or_insert_with(|| {
                    let id = self.next_id;
                    self.next_id += 1;
                    id
                });
                WsInput::Stream(id, bytes)
            }
            LaneTag::ClientStream(t) => return Err(format!("server sent on client stream lane 0x{t:02x}")),
            LaneTag::Reserved => return Err(format!("server sent on reserved lane 0x{tag:02x}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_from_camel_case_json_with_defaults() {
        let o: ConnectOptions =
            serde_json::from_str(r#"{"url":"http://127.0.0.1:8080","nick":"ann","extra":1}"#).unwrap();
        assert_eq!(o.url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(o.transport, None);
        assert_eq!(o.credentials(|| "guest".into()), Credentials::Nick("ann".into()));
        let o: ConnectOptions = serde_json::from_str(r#"{"token":"t","nick":"ann"}"#).unwrap();
        assert_eq!(o.credentials(|| "guest".into()), Credentials::Token("t".into()));
        let o = ConnectOptions::default();
        assert_eq!(
            o.credentials(|| "guest-1".into()),
            Credentials::Nick("guest-1".into())
        );
    }

    #[test]
    fn transport_choice() {
        assert_eq!(TransportChoice::parse(None).unwrap(), TransportChoice::Auto);
        assert_eq!(
            TransportChoice::parse(Some("auto")).unwrap(),
            TransportChoice::Auto
        );
        assert_eq!(
            TransportChoice::parse(Some("websocket")).unwrap(),
            TransportChoice::Only(TransportKind::WebSocket)
        );
        assert_eq!(
            TransportChoice::parse(Some("webtransport")).unwrap(),
            TransportChoice::Only(TransportKind::WebTransport)
        );
        assert!(TransportChoice::parse(Some("quic")).is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(ws_url("http://127.0.0.1:8080").unwrap(), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("https://chat.example/").unwrap(), "wss://chat.example/ws");
        assert_eq!(ws_url("https://h/garou/").unwrap(), "wss://h/garou/ws");
        assert!(ws_url("ftp://h").is_err());
        assert!(ws_url("127.0.0.1:8080").is_err());
        assert_eq!(
            endpoint("http://127.0.0.1:8080/", "/cert-hash").unwrap(),
            "http://127.0.0.1:8080/cert-hash"
        );
        assert!(endpoint("ws://h", "/cert-hash").is_err());
    }

    #[test]
    fn cert_hash() {
        let hex = "00112233445566778899aabbccddeeffFFEEDDCCBBAA99887766554433221100";
        let h = parse_sha256_hex(hex).unwrap();
        assert_eq!(h[0], 0x00);
        assert_eq!(h[1], 0x11);
        assert_eq!(h[15], 0xff);
        assert_eq!(h[16], 0xff);
        assert_eq!(h[31], 0x00);
        let colons =
            "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:ff:ee:dd:cc:bb:aa:99:88:77:66:55:44:33:22:11:00";
        assert_eq!(parse_sha256_hex(colons).unwrap(), h);
        assert!(parse_sha256_hex("abcd").is_err());
        assert!(parse_sha256_hex(&"zz".repeat(32)).is_err());
        let j: CertHash = serde_json::from_str(r#"{"sha256":"ab","url":"https://127.0.0.1:4433/"}"#).unwrap();
        assert_eq!(j.url, "https://127.0.0.1:4433/");
    }

    #[test]
    fn lane_tags_match_the_ws_module() {
        assert_eq!(lane_tag(Lane::Control), 0x00);
        assert_eq!(lane_tag(Lane::Datagram), 0x01);
        assert_eq!(lane_tag(Lane::Commands), 0x02);
        assert_eq!(lane_tag(Lane::Acks), 0x03);
        for lane in [Lane::Control, Lane::Datagram, Lane::Commands, Lane::Acks] {
            assert!(!matches!(
                LaneTag::of(lane_tag(lane)),
                LaneTag::ServerStream(_) | LaneTag::Reserved
            ));
        }
    }

    #[test]
    fn demux_assigns_fresh_ids_and_reuses_tags() {
        let mut d = WsDemux::default();
        assert_eq!(d.on_message(b"\x00ab").unwrap(), WsInput::Control(b"ab"));
        assert_eq!(d.on_message(b"\x01x").unwrap(), WsInput::Datagram(b"x"));
        assert_eq!(d.on_message(b"\x10h").unwrap(), WsInput::Stream(1, b"h"));
        assert_eq!(d.on_message(b"\x11i").unwrap(), WsInput::Stream(2, b"i"));
        assert_eq!(d.on_message(b"\x10j").unwrap(), WsInput::Stream(1, b"j"));
        assert_eq!(d.on_message(b"\x10").unwrap(), WsInput::StreamEnd(1));
        // The tag is free again: a new stream, a new id.
        assert_eq!(d.on_message(b"\x10k").unwrap(), WsInput::Stream(3, b"k"));
        assert_eq!(d.on_message(b"\xfel").unwrap(), WsInput::Stream(4, b"l"));
        assert_eq!(d.on_message(b"\x20").unwrap(), WsInput::Nothing);
        assert_eq!(d.on_message(b"\x00").unwrap(), WsInput::ControlEnd);
        assert!(d.on_message(b"").is_err());
        assert!(d.on_message(b"\x02x").is_err());
        assert!(d.on_message(b"\xffx").is_err());
    }
}
