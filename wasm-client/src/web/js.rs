//! Small bindings and helpers over the JS global scope (window or worker alike).

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(handler: &Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout_with_arg(handler: &Function, ms: i32, arg: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub(crate) fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with(url: &str, init: &JsValue) -> Promise;
}

// The error class every rejected promise carries. It lives in JS (a Rust type cannot
// extend `Error`); scripts/build-wasm.sh re-exports it from the package entry point.
#[wasm_bindgen(inline_js = "export class GarouError extends Error {
  constructor(code, reason) {
    super(code + ': ' + reason);
    this.name = 'GarouError';
    this.code = code;
    this.reason = reason;
  }
}
export function garouError(code, reason) {
  return new GarouError(code, reason);
}
")]
extern "C" {
    #[wasm_bindgen(js_name = garouError)]
    fn garou_error(code: &str, reason: &str) -> JsValue;
}

/// `fetch(url, {cache: "no-store"})`: a certificate hash must never come from a cache.
pub(crate) fn fetch(url: &str) -> Promise {
    let init = js_sys::Object::new();
    let _ = Reflect::set(&init, &JsValue::from_str("cache"), &JsValue::from_str("no-store"));
    fetch_with(url, &init)
}

fn global_get(name: &str) -> JsValue {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// `sessionStorage`, if this scope has one and may use it (a worker has none; a sandboxed
/// page throws on access).
fn session_storage() -> Option<JsValue> {
    let s = Reflect::get(&js_sys::global(), &JsValue::from_str("sessionStorage")).ok()?;
    (!s.is_undefined() && !s.is_null()).then_some(s)
}

/// `sessionStorage.getItem(key)`; `None` without one, or on any error.
pub(crate) fn session_get(key: &str) -> Option<String> {
    let s = session_storage()?;
    let get: Function = Reflect::get(&s, &JsValue::from_str("getItem"))
        .ok()?
        .dyn_into()
        .ok()?;
    get.call1(&s, &JsValue::from_str(key)).ok()?.as_string()
}

/// `sessionStorage.setItem(key, value)`, best effort (a full or missing storage is ignored).
pub(crate) fn session_set(key: &str, value: &str) {
    let Some(s) = session_storage() else { return };
    let Some(set) = Reflect::get(&s, &JsValue::from_str("setItem"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
    else {
        return;
    };
    let _ = set.call2(&s, &JsValue::from_str(key), &JsValue::from_str(value));
}

/// `sessionStorage.removeItem(key)`, best effort.
pub(crate) fn session_remove(key: &str) {
    let Some(s) = session_storage() else { return };
    if let Some(remove) = Reflect::get(&s, &JsValue::from_str("removeItem"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
    {
        let _ = remove.call1(&s, &JsValue::from_str(key));
    }
}

/// Run `f` at every `pagehide` (the page reloads or navigates away). The listener stays
/// for the life of the page (one per client created). In a worker it never fires.
pub(crate) fn on_pagehide(f: impl FnMut() + 'static) {
    let Ok(add) = global_get("addEventListener").dyn_into::<Function>() else {
        return;
    };
    let cb = Closure::<dyn FnMut()>::new(f);
    let _ = add.call2(
        &js_sys::global(),
        &JsValue::from_str("pagehide"),
        cb.as_ref().unchecked_ref(),
    );
    cb.forget();
}

/// `typeof WebTransport !== 'undefined'`.
pub(crate) fn has_webtransport() -> bool {
    !global_get("WebTransport").is_undefined()
}

/// `location.origin`, if there is a location.
pub(crate) fn location_origin() -> Option<String> {
    let loc = global_get("location");
    if loc.is_undefined() || loc.is_null() {
        return None;
    }
    Reflect::get(&loc, &JsValue::from_str("origin"))
        .ok()?
        .as_string()
        .filter(|o| o != "null")
}

/// Milliseconds from `performance.now()` (monotonic), or `Date.now()` without it.
pub(crate) struct Clock {
    perf: Option<web_sys::Performance>,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            perf: global_get("performance").dyn_into::<web_sys::Performance>().ok(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        match &self.perf {
            Some(p) => p.now() as u64,
            None => js_sys::Date::now() as u64,
        }
    }
}

/// `Promise.race([p, <rejects with Error(message) after ms>])`.
pub(crate) fn with_timeout(p: &JsValue, ms: u32, message: &str) -> Promise {
    let err: JsValue = js_sys::Error::new(message).into();
    let timer = Promise::new(&mut |_resolve, reject| {
        set_timeout_with_arg(&reject, ms.min(i32::MAX as u32) as i32, &err);
    });
    Promise::race(&Array::of2(p, &timer))
}

/// A readable description of a thrown or rejected JS value.
pub(crate) fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        let mut s = format!("{}: {}", String::from(err.name()), String::from(err.message()));
        // WebTransportError's extra fields.
        if let Some(src) = Reflect::get(e, &JsValue::from_str("source"))
            .ok()
            .and_then(|v| v.as_string())
        {
            s.push_str(&format!(" (source: {src}"));
            if let Some(code) = Reflect::get(e, &JsValue::from_str("streamErrorCode"))
                .ok()
                .and_then(|v| v.as_f64())
            {
                s.push_str(&format!(", streamErrorCode: {code}"));
            }
            s.push(')');
        }
        return s;
    }
    if let Some(s) = e.as_string() {
        return s;
    }
    js_sys::JSON::stringify(e)
        .ok()
        .map(String::from)
        .unwrap_or_else(|| format!("{e:?}"))
}

/// The `GarouError` a rejected promise carries: message `"<Code>: <message>"`, `code`
/// the code name, `reason` the message alone.
pub(crate) fn error(code: &str, message: &str) -> JsValue {
    garou_error(code, message)
}

/// Truncate `s` to at most `max` bytes at a char boundary (close reasons are capped).
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
