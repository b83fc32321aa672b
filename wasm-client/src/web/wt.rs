//! The WebTransport transport: the client's first bidirectional stream is the control
//! stream, one client uni stream per lane (commands, acks) opened on first use, every
//! server-opened uni stream read by its own task, datagrams read by one loop.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use garou_protocol::client::{StreamId, CONTROL};
use garou_protocol::Lane;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    ReadableStream, ReadableStreamDefaultReader, Response, WebTransport, WebTransportCloseInfo,
    WebTransportHash, WebTransportOptions, WritableStreamDefaultWriter,
};

use super::js::{describe, fetch, truncate, with_timeout, Clock};
use super::{Input, Sink};
use crate::wire::{endpoint, parse_sha256_hex, CertHash};

enum Uni {
    /// `createUnidirectionalStream()` in flight: chunks wait here, in order.
    Opening(Vec<Uint8Array>),
    Open(WritableStreamDefaultWriter),
    Failed,
}

pub(crate) struct WtLink {
    wt: WebTransport,
    control: WritableStreamDefaultWriter,
    datagrams: WritableStreamDefaultWriter,
    max_datagram: usize,
    uni: Rc<RefCell<HashMap<Lane, Uni>>>,
    /// Reports from the readers and the `closed` watcher reach the session only while set.
    live: Rc<Cell<bool>>,
    inner: Sink,
}

/// Queue a write; the writer keeps writes in order. A failed write means the stream or
/// session is gone, which the readers and the `closed` watcher report.
fn write(writer: &WritableStreamDefaultWriter, chunk: &Uint8Array) {
    let p = writer.write_with_chunk(chunk);
    spawn_local(async move {
        let _ = JsFuture::from(p).await;
    });
}

/// Read `stream` to its end, handing each chunk to `on_chunk`.
async fn read_all(stream: &ReadableStream, mut on_chunk: impl FnMut(&[u8])) -> Result<(), JsValue> {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    loop {
        let r = JsFuture::from(reader.read()).await?;
        if Reflect::get(&r, &JsValue::from_str("done"))?
            .as_bool()
            .unwrap_or(true)
        {
            return Ok(());
        }
        let value = Reflect::get(&r, &JsValue::from_str("value"))?;
        let chunk: Uint8Array = value.unchecked_into();
        on_chunk(&chunk.to_vec());
    }
}

/// Why `open` failed: a message, the JS error (if any) and whether the WebTransport
/// handshake itself failed (rather than the `/cert-hash` fetch before it).
struct OpenError {
    message: String,
    raw: JsValue,
    handshake: bool,
    /// The gateway reports a certificate other than the pinned one.
    mismatch: bool,
}

/// Where the certificate hash comes from: `url` (default `<origin>/cert-hash`), fetched
/// before every attempt, and an optional pinned hash it must equal.
#[derive(Clone, Debug, Default)]
pub(crate) struct CertSource {
    pub(crate) url: Option<String>,
    pub(crate) pin: Option<String>,
}

/// Why `connect` failed; `mismatch`: the certificate is not the pinned one (terminal).
pub(crate) struct WtError {
    pub(crate) message: String,
    pub(crate) mismatch: bool,
}

impl OpenError {
    fn plain(message: String) -> OpenError {
        OpenError {
            message,
            raw: JsValue::UNDEFINED,
            handshake: false,
            mismatch: false,
        }
    }
    fn js(message: String, raw: JsValue) -> OpenError {
        OpenError {
            message,
            raw,
            handshake: false,
            mismatch: false,
        }
    }
}

/// Fetch `/cert-hash`, open the session (all within `budget_ms`), open the control stream
/// and start the readers. On failure the cause is logged with `console.warn`.
pub(crate) async fn connect(
    origin: &str,
    cert_source: &CertSource,
    inner: &Sink,
    budget_ms: u32,
) -> Result<WtLink, WtError> {
    let clock = Clock::new();
    let t0 = clock.now_ms();
    let result = open(origin, cert_source, inner, budget_ms, &clock).await;
    if let Err(e) = &result {
        let elapsed = clock.now_ms().saturating_sub(t0);
        let mut text = format!("garou: WebTransport failed after {elapsed} ms: {}", e.message);
        if e.handshake {
            text.push_str(
                ". Browsers do not tell the page why a handshake failed: the real cause \
                 (net::ERR_*, QUIC_*) is in the browser's own console/log. Usual causes: nothing \
                 listening on that UDP port or UDP blocked, a certificate that is not ECDSA P-256 \
                 or is valid for more than 14 days, or a stale hash (the server restarted after \
                 /cert-hash was read).",
            );
        }
        web_sys::console::warn_2(&JsValue::from_str(&text), &e.raw);
    }
    result.map_err(|e| WtError {
        message: e.message,
        mismatch: e.mismatch,
    })
}

async fn open(
    origin: &str,
    cert_source: &CertSource,
    inner: &Sink,
    budget_ms: u32,
    clock: &Clock,
) -> Result<WtLink, OpenError> {
    let t0 = clock.now_ms();
    let plain = OpenError::plain;

    let cert_url = match &cert_source.url {
        Some(u) => u.clone(),
        None => endpoint(origin, "/cert-hash").map_err(plain)?,
    };
    let timeout = format!("GET {cert_url} timed out after {budget_ms} ms");
    let resp = JsFuture::from(with_timeout(&fetch(&cert_url), budget_ms, &timeout))
        .await
        .map_err(|e| OpenError::js(format!("GET {cert_url}: {}", describe(&e)), e))?;
    let resp: Response = resp.unchecked_into();
    if !resp.ok() {
        return Err(plain(format!("GET {cert_url}: HTTP {}", resp.status())));
    }
    let json = resp
        .json()
        .map_err(|e| OpenError::js(format!("GET {cert_url}: {}", describe(&e)), e))?;
    let json = JsFuture::from(json)
        .await
        .map_err(|e| OpenError::js(format!("GET {cert_url}: body is not JSON: {}", describe(&e)), e))?;
    let cert: CertHash = serde_wasm_bindgen::from_value(json)
        .map_err(|e| plain(format!("GET {cert_url}: unexpected JSON: {e}")))?;
    let hash = parse_sha256_hex(&cert.sha256).map_err(plain)?;
    if let Some(pin) = &cert_source.pin {
        if parse_sha256_hex(pin).map_err(plain)? != hash {
            return Err(OpenError {
                mismatch: true,
                ..plain(format!(
                    "GET {cert_url}: the gateway's certificate (sha-256 {}) is not the pinned one ({pin})",
                    cert.sha256
                ))
            });
        }
    }

    let h = WebTransportHash::new();
    h.set_algorithm("sha-256");
    h.set_value_u8_array(&Uint8Array::from(&hash[..]));
    let opts = WebTransportOptions::new();
    opts.set_server_certificate_hashes(&[h]);
    let url = cert.url;
    let wt = WebTransport::new_with_options(&url, &opts)
        .map_err(|e| OpenError::js(format!("new WebTransport({url}): {}", describe(&e)), e))?;

    // Watch `closed` from the start (it also rejects when the handshake fails, which
    // would otherwise be an unhandled rejection); it reports only once the link is live.
    let live = Rc::new(Cell::new(false));
    {
        let (wt, live, inner) = (wt.clone(), live.clone(), inner.clone());
        spawn_local(async move {
            let reason = match JsFuture::from(wt.closed()).await {
                Ok(info) => close_reason(&info),
                Err(e) => format!("WebTransport session failed: {}", describe(&e)),
            };
            if live.get() {
                inner.on_input(Input::Closed(reason));
            }
        });
    }

    let remaining = budget_ms
        .saturating_sub(clock.now_ms().saturating_sub(t0) as u32)
        .max(250);
    let timeout = format!("WebTransport {url} not ready within {budget_ms} ms");
    if let Err(e) = JsFuture::from(with_timeout(&wt.ready(), remaining, &timeout)).await {
        wt.close();
        let sha = &cert.sha256;
        return Err(OpenError {
            message: format!("WebTransport {url} (sha-256 {sha}): {}", describe(&e)),
            raw: e,
            handshake: true,
            mismatch: false,
        });
    }
    let bidi = match JsFuture::from(wt.create_bidirectional_stream()).await {
        Ok(b) => b,
        Err(e) => {
            wt.close();
            return Err(OpenError::js(
                format!("WebTransport {url}: control stream: {}", describe(&e)),
                e,
            ));
        }
    };
    let writers = bidi
        .writable()
        .get_writer()
        .and_then(|c| Ok((c, wt.datagrams().writable().get_writer()?)));
    let (control, datagrams) = match writers {
        Ok(w) => w,
        Err(e) => {
            wt.close();
            return Err(OpenError::js(
                format!("WebTransport {url}: writer: {}", describe(&e)),
                e,
            ));
        }
    };
    // Chromium allows 1211 bytes, Firefox 1224; the protocol keeps datagrams smaller.
    let max_datagram = match wt.datagrams().max_datagram_size() {
        0 => 1200,
        n => n as usize,
    };
    live.set(true);

    // The control stream.
    {
        let (inner, wt) = (inner.clone(), wt.clone());
        let readable: ReadableStream = bidi.readable().unchecked_into();
        spawn_local(async move {
            let r = read_all(&readable, |b| inner.on_input(Input::Stream(CONTROL, b))).await;
            // The session's close info (code, reason) says more: wait a moment for it.
            let fallback = match r {
                Ok(()) => "the server finished the control stream".to_owned(),
                Err(e) => format!("control stream failed: {}", describe(&e)),
            };
            let reason = settled_close_reason(&wt, fallback).await;
            inner.on_input(Input::Closed(reason));
        });
    }
    // Datagrams: one reader loop.
    {
        let inner = inner.clone();
        let readable = wt.datagrams().readable();
        spawn_local(async move {
            let _ = read_all(&readable, |b| inner.on_input(Input::Datagram(b))).await;
        });
    }
    // Server-opened uni streams: accept each one at once and read it in its own task.
    {
        let inner = inner.clone();
        let incoming = wt.incoming_unidirectional_streams();
        spawn_local(async move {
            let reader: ReadableStreamDefaultReader = incoming.get_reader().unchecked_into();
            let mut next_id: StreamId = CONTROL + 1;
            loop {
                let Ok(r) = JsFuture::from(reader.read()).await else {
                    break;
                };
                let done = Reflect::get(&r, &JsValue::from_str("done"))
                    .ok()
                    .and_then(|d| d.as_bool())
                    .unwrap_or(true);
                if done {
                    break;
                }
                let Ok(stream) = Reflect::get(&r, &JsValue::from_str("value")) else {
                    break;
                };
                let stream: ReadableStream = stream.unchecked_into();
                let id = next_id;
                next_id += 1;
                let inner = inner.clone();
                spawn_local(async move {
                    // A stream reset (rather than finished) is left alone: it only happens
                    // when the session goes away, which the `closed` watcher reports.
                    if read_all(&stream, |b| inner.on_input(Input::Stream(id, b)))
                        .await
                        .is_ok()
                    {
                        inner.on_input(Input::StreamEnd(id));
                    }
                });
            }
        });
    }
    Ok(WtLink {
        wt,
        control,
        datagrams,
        max_datagram,
        uni: Rc::new(RefCell::new(HashMap::new())),
        live,
        inner: inner.clone(),
    })
}

fn close_reason(info: &WebTransportCloseInfo) -> String {
    let code = info.get_close_code().unwrap_or(0);
    match info.get_reason().filter(|r| !r.is_empty()) {
        Some(r) => format!("WebTransport closed (code {code}: {r})"),
        None => format!("WebTransport closed (code {code})"),
    }
}

/// The session's close reason if it settles within a moment, else `fallback` (a
/// stream error usually precedes the `closed` promise by a few milliseconds).
async fn settled_close_reason(wt: &WebTransport, fallback: String) -> String {
    match JsFuture::from(with_timeout(&wt.closed(), 300, "")).await {
        Ok(info) => close_reason(info.unchecked_ref()),
        Err(e)
            if e.dyn_ref::<js_sys::Error>()
                .is_some_and(|e| String::from(e.message()).is_empty()) =>
        {
            fallback
        }
        Err(e) => format!("WebTransport session failed: {}", describe(&e)),
    }
}

impl WtLink {
    pub(crate) fn send(&self, lane: Lane, data: &[u8]) {
        let chunk = Uint8Array::from(data);
        match lane {
            Lane::Control => write(&self.control, &chunk),
            Lane::Datagram => {
                if data.len() <= self.max_datagram {
                    write(&self.datagrams, &chunk);
                }
            }
            Lane::Commands | Lane::Acks => {
                let mut uni = self.uni.borrow_mut();
                match uni.get_mut(&lane) {
                    Some(Uni::Open(w)) => write(w, &chunk),
                    Some(Uni::Opening(queue)) => queue.push(chunk),
                    Some(Uni::Failed) => {}
                    None => {
                        uni.insert(lane, Uni::Opening(vec![chunk]));
                        let (wt, map, inner) = (self.wt.clone(), self.uni.clone(), self.inner.clone());
                        spawn_local(open_uni(wt, lane, map, inner));
                    }
                }
            }
        }
    }

    pub(crate) fn close(&self, code: u32, reason: &str) {
        self.live.set(false);
        let info = WebTransportCloseInfo::new();
        info.set_close_code(code);
        info.set_reason(truncate(reason, 1000));
        self.wt.close_with_close_info(&info);
    }
}

async fn open_uni(wt: WebTransport, lane: Lane, map: Rc<RefCell<HashMap<Lane, Uni>>>, inner: Sink) {
    let writer = JsFuture::from(wt.create_unidirectional_stream())
        .await
        .and_then(|s| s.get_writer());
    match writer {
        Ok(w) => {
            let prev = map.borrow_mut().insert(lane, Uni::Open(w.clone()));
            if let Some(Uni::Opening(queue)) = prev {
                for chunk in &queue {
                    write(&w, chunk);
                }
            }
        }
        Err(e) => {
            map.borrow_mut().insert(lane, Uni::Failed);
            let reason = format!("could not open the {lane:?} stream: {}", describe(&e));
            inner.on_input(Input::Closed(reason));
        }
    }
}
