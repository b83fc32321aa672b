//! The WebSocket transport: `GET /ws`, one binary message per lane-tagged chunk
//! (`garou_protocol::ws`).

use std::cell::RefCell;
use std::rc::Rc;

use garou_protocol::client::CONTROL;
use garou_protocol::Lane;
use js_sys::{ArrayBuffer, Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::js::{describe, truncate, with_timeout};
use super::{Input, Sink};
use crate::wire::{lane_tag, WsDemux, WsInput};

pub(crate) struct WsLink {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

type Opening = Rc<RefCell<Option<(Function, Function)>>>;

/// Open `url` and wait (at most `timeout_ms`) until it is open.
pub(crate) async fn connect(url: &str, inner: &Sink, timeout_ms: u32) -> Result<WsLink, String> {
    let ws = WebSocket::new(url).map_err(|e| format!("new WebSocket({url}): {}", describe(&e)))?;
    ws.set_binary_type(BinaryType::Arraybuffer);

    let opening: Opening = Rc::new(RefCell::new(None));
    let opened = Promise::new(&mut |resolve, reject| *opening.borrow_mut() = Some((resolve, reject)));

    let on_open = {
        let opening = opening.clone();
        Closure::new(move |_: web_sys::Event| {
            let waiter = opening.borrow_mut().take();
            if let Some((resolve, _)) = waiter {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        })
    };
    let on_error = {
        let opening = opening.clone();
        let url = url.to_owned();
        Closure::new(move |_: web_sys::Event| {
            let waiter = opening.borrow_mut().take();
            if let Some((_, reject)) = waiter {
                let msg = format!("WebSocket {url} could not be opened");
                let _ = reject.call1(&JsValue::UNDEFINED, &JsValue::from_str(&msg));
            }
            // After the open, an error is always followed by a close event.
        })
    };
    let on_close = {
        let opening = opening.clone();
        let inner = inner.clone();
        Closure::new(move |ev: CloseEvent| {
            let reason = if ev.reason().is_empty() {
                format!("WebSocket closed (code {})", ev.code())
            } else {
                format!("WebSocket closed (code {}: {})", ev.code(), ev.reason())
            };
            let waiter = opening.borrow_mut().take();
            match waiter {
                Some((_, reject)) => {
                    let _ = reject.call1(&JsValue::UNDEFINED, &JsValue::from_str(&reason));
                }
                None => inner.on_input(Input::Closed(reason)),
            }
        })
    };
    let on_message = {
        let inner = inner.clone();
        let demux = RefCell::new(WsDemux::default());
        Closure::new(move |ev: MessageEvent| {
            let data = ev.data();
            let Some(buf) = data.dyn_ref::<ArrayBuffer>() else {
                inner.on_input(Input::Violation("text message on the WebSocket".into()));
                return;
            };
            let bytes = Uint8Array::new(buf).to_vec();
            let msg = demux.borrow_mut().on_message(&bytes);
            match msg {
                Ok(WsInput::Control(b)) => inner.on_input(Input::Stream(CONTROL, b)),
                Ok(WsInput::ControlEnd) => {
                    inner.on_input(Input::Closed("the server finished the control stream".into()))
                }
                Ok(WsInput::Datagram(b)) => inner.on_input(Input::Datagram(b)),
                Ok(WsInput::Stream(id, b)) => inner.on_input(Input::Stream(id, b)),
                Ok(WsInput::StreamEnd(id)) => inner.on_input(Input::StreamEnd(id)),
                Ok(WsInput::Nothing) => {}
                Err(e) => inner.on_input(Input::Violation(e)),
            }
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    let link = WsLink {
        ws,
        _on_open: on_open,
        _on_error: on_error,
        _on_close: on_close,
        _on_message: on_message,
    };
    let msg = format!("WebSocket {url} did not open within {timeout_ms} ms");
    match JsFuture::from(with_timeout(&opened, timeout_ms, &msg)).await {
        Ok(_) => Ok(link),
        Err(e) => {
            link.close(4000, "connect failed");
            Err(describe(&e))
        }
    }
}

impl WsLink {
    pub(crate) fn send(&self, lane: Lane, data: &[u8]) {
        let mut msg = Vec::with_capacity(1 + data.len());
        msg.push(lane_tag(lane));
        msg.extend_from_slice(data);
        // A send on a closing socket is dropped by the browser; the close event follows.
        let _ = self.ws.send_with_u8_array(&msg);
    }

    /// Detach every handler, then close with `code` (1000, or 4000-4999).
    pub(crate) fn close(&self, code: u16, reason: &str) {
        self.ws.set_onopen(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        self.ws.set_onmessage(None);
        let _ = self.ws.close_with_code_and_reason(code, truncate(reason, 123));
    }
}
