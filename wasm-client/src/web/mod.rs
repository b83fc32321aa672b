//! The browser side (wasm32 only): the exported `GarouClient` class and the driver that
//! moves bytes between a transport and the `ClientSession`, runs its timer, settles
//! request promises and hands events to JS.

mod js;
mod ws;
mod wt;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use garou_protocol::client::StreamId;
use garou_protocol::{ClientConfig, ClientSession, ErrorCode, Failure, Lane, ReqId, SessionError};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::model::{self, JsEvent, Mapped, TransportKind};
use crate::wire::{self, ConnectOptions, TransportChoice};

/// How long `"auto"` gives WebTransport (cert-hash fetch + handshake) before falling back.
const WEBTRANSPORT_BUDGET_MS: u32 = 3_000;
/// How long a WebSocket may take to open.
const WEBSOCKET_OPEN_MS: u32 = 10_000;
/// How long the Garou handshake (Hello .. ShardAssignment) may take once connected.
const HANDSHAKE_MS: u32 = 10_000;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A member's role in a room. */
export type Role = "owner" | "admin" | "moderator" | "member" | "guest";
/** The kind of a room. */
export type RoomKind = "direct" | "group" | "channel";
/** The transport a client runs on. */
export type TransportKind = "webtransport" | "websocket";

/** Options of `GarouClient.connect`. */
export interface ConnectOptions {
  /** Gateway HTTP origin, e.g. "http://127.0.0.1:8080"; default `location.origin`. */
  url?: string;
  /** Nick to authenticate with (open dev mode); default a random "guest-NNNN". */
  nick?: string;
  /** Signed token; takes precedence over `nick`. */
  token?: string;
  /** Default "auto": WebTransport when available and reachable, else WebSocket. */
  transport?: "auto" | "webtransport" | "websocket";
}

export interface RoomInfo { name: string; kind: RoomKind; members: number; title: string }
export interface MemberInfo { user: number; nick: string; role: Role; online: boolean }
/**
 * What `join` and `createRoom` resolve to. `offset`: the first offset of the room's events
 * from now on; `epoch`: the room's epoch (offsets compare only within one); `resumed`: the
 * server replayed what was missed since a resume point (false for a plain join);
 * `unread`: messages after the user's read mark.
 */
export interface JoinInfo {
  room: RoomInfo; role: Role; offset: number; members: MemberInfo[];
  epoch: number; resumed: boolean; unread: number;
}
/** What `send` and `direct` resolve to once the server acked the message. */
export interface SentInfo { room: string; id: number; offset: number }
/** Options of `history`: offsets bounding the page (exclusive), and its size (default 50, at most 1000). */
export interface HistoryOptions { before?: number; after?: number; limit?: number }
/** A message as history returns it: its latest text, edits and deletion applied. */
export interface StoredMessage {
  offset: number; id: number; author: number; nick: string; ts: number; text: string;
  edited: boolean; deleted: boolean; attachment?: string; reactions: { emoji: string; count: number }[];
}
/**
 * What the gateway's `POST /api/uploads?ticket=<client.ticket>&name=<file name>` (the file
 * as the body, its type as `Content-Type`) answers with `201`: pass `id` as the third
 * argument of `send` to attach the file; `url` + `?ticket=` downloads it.
 */
export interface UploadInfo { id: string; url: string }
/** What `history` resolves to: messages oldest first. */
export interface HistoryPage { room: string; epoch: number; messages: StoredMessage[] }

/** Everything the `on()` handler receives. */
export type GarouEvent =
  | { type: "message"; room: string; offset: number; id: number; author: number; nick: string; ts: number; text: string; attachment?: string }
  | { type: "edit"; room: string; offset: number; id: number; by: number; ts: number; text: string }
  | { type: "delete"; room: string; offset: number; id: number; by: number }
  | { type: "reaction"; room: string; offset: number; id: number; user: number; nick: string; emoji: string; added: boolean }
  | { type: "member_joined" | "member_updated"; room: string; offset: number; user: number; nick: string; role: Role }
  | { type: "member_left"; room: string; offset: number; user: number; nick: string }
  | { type: "member_moderated"; room: string; offset: number; user: number; nick: string; action: "kick" | "mute" | "unmute" | "ban" | "unban"; by: number; until: number; reason: string }
  | { type: "room_renamed"; room: string; offset: number; title: string; by: number }
  | { type: "room_deleted"; room: string; offset: number; by: number }
  | { type: "typing"; room: string; user: number; nick: string }
  | { type: "presence"; user: number; nick: string; online: boolean }
  | { type: "receipt"; room: string; id: number; user: number; nick: string; read: boolean }
  | { type: "promoted" | "demoted"; room: string }
  | { type: "transport"; transport: TransportKind; fallback_reason?: string }
  | { type: "welcome"; message: string }
  | { type: "error"; code: string; message: string }
  | { type: "closed"; reason: string };

/** Handler given to `GarouClient.on`. */
export type GarouEventHandler = (event: GarouEvent) => void;
"#;

/// What a transport reports to the driver.
pub(crate) enum Input<'a> {
    /// Bytes of the control stream (`garou_protocol::client::CONTROL`) or of a server-opened uni stream.
    Stream(StreamId, &'a [u8]),
    StreamEnd(StreamId),
    Datagram(&'a [u8]),
    /// The connection went away.
    Closed(String),
    /// The server broke the transport framing.
    Violation(String),
}

pub(crate) enum Link {
    WebTransport(wt::WtLink),
    WebSocket(ws::WsLink),
}

impl Link {
    fn send(&self, lane: Lane, data: &[u8]) {
        match self {
            Link::WebTransport(l) => l.send(lane, data),
            Link::WebSocket(l) => l.send(lane, data),
        }
    }

    /// `code` `None`: a normal close by the client.
    fn close(&self, code: Option<ErrorCode>, reason: &str) {
        match self {
            Link::WebTransport(l) => l.close(code.map_or(0, |c| u32::from(c.as_u16())), reason),
            Link::WebSocket(l) => l.close(code.map_or(1000, |c| 4000 + c.as_u16().min(999)), reason),
        }
    }
}

struct Waiter {
    resolve: Function,
    reject: Function,
}

impl Waiter {
    fn resolve(&self, v: &JsValue) {
        let _ = self.resolve.call1(&JsValue::UNDEFINED, v);
    }
    fn reject(&self, v: &JsValue) {
        let _ = self.reject.call1(&JsValue::UNDEFINED, v);
    }
}

/// A promise and its resolvers.
fn promise() -> (Promise, Waiter) {
    let mut slot = None;
    let p = Promise::new(&mut |resolve, reject| slot = Some(Waiter { resolve, reject }));
    (p, slot.expect("the Promise executor runs synchronously"))
}

fn to_js<T: serde::Serialize>(v: &T) -> JsValue {
    serde_wasm_bindgen::to_value(v).unwrap_or_else(|e| js::error("Internal", &e.to_string()))
}

fn failure_js(f: &Failure) -> JsValue {
    js::error(&model::code_name(f.code), &f.message)
}

/// The driver shared by the `GarouClient` object, the transport callbacks and the timer.
pub(crate) struct Inner {
    session: RefCell<ClientSession>,
    link: RefCell<Option<Link>>,
    transport: Cell<Option<TransportKind>>,
    fallback_reason: RefCell<Option<String>>,
    waiters: RefCell<HashMap<ReqId, Waiter>>,
    ready: RefCell<Option<Waiter>>,
    handler: RefCell<Option<Function>>,
    backlog: RefCell<VecDeque<JsValue>>,
    closed: Cell<bool>,
    pumping: Cell<bool>,
    /// The armed timer: (deadline, setTimeout id).
    timer: RefCell<Option<(u64, JsValue)>>,
    timer_cb: Closure<dyn FnMut()>,
    clock: js::Clock,
}

impl Inner {
    fn new(config: ClientConfig) -> Rc<Inner> {
        let clock = js::Clock::new();
        let session = ClientSession::new(config, clock.now_ms());
        Rc::new_cyclic(|weak: &std::rc::Weak<Inner>| {
            let weak = weak.clone();
            Inner {
                session: RefCell::new(session),
                link: RefCell::new(None),
                transport: Cell::new(None),
                fallback_reason: RefCell::new(None),
                waiters: RefCell::new(HashMap::new()),
                ready: RefCell::new(None),
                handler: RefCell::new(None),
                backlog: RefCell::new(VecDeque::new()),
                closed: Cell::new(false),
                pumping: Cell::new(false),
                timer: RefCell::new(None),
                timer_cb: Closure::new(move || {
                    if let Some(inner) = weak.upgrade() {
                        inner.on_timer();
                    }
                }),
                clock,
            }
        })
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Start talking over `link`: the queued Hello goes out.
    fn attach(self: &Rc<Self>, link: Link, kind: TransportKind, fallback_reason: Option<String>) {
        self.transport.set(Some(kind));
        *self.fallback_reason.borrow_mut() = fallback_reason;
        *self.link.borrow_mut() = Some(link);
        self.pump();
    }

    /// Input from the transport.
    pub(crate) fn on_input(self: &Rc<Self>, input: Input<'_>) {
        if self.closed.get() {
            return;
        }
        let now = self.now();
        let result = {
            let mut s = self.session.borrow_mut();
            match input {
                Input::Stream(id, bytes) => s.on_stream_data(id, bytes, now),
                Input::StreamEnd(id) => s.on_stream_end(id),
                Input::Datagram(bytes) => s.on_datagram(bytes, now),
                Input::Closed(reason) => {
                    drop(s);
                    return self.fail(Some(ErrorCode::Disconnected), &reason);
                }
                Input::Violation(reason) => {
                    drop(s);
                    return self.fail(
                        Some(ErrorCode::BadFrame),
                        &format!("protocol violation: {reason}"),
                    );
                }
            }
        };
        match result {
            Ok(()) => self.pump(),
            Err(e) => self.fail_session(e),
        }
    }

    fn on_timer(self: &Rc<Self>) {
        self.timer.borrow_mut().take();
        if self.closed.get() {
            return;
        }
        let now = self.now();
        let result = self.session.borrow_mut().handle_timeout(now);
        match result {
            Ok(()) => self.pump(),
            Err(e) => self.fail_session(e),
        }
    }

    fn fail_session(self: &Rc<Self>, e: SessionError) {
        let (code, reason) = match &e {
            SessionError::Decode(_) => (ErrorCode::BadFrame, e.to_string()),
            SessionError::Protocol(_) => (ErrorCode::OutOfState, e.to_string()),
            SessionError::Refused(f) => (f.code, f.message.clone()),
            SessionError::Timeout(_) => (ErrorCode::Timeout, e.to_string()),
        };
        self.fail(Some(code), &reason);
    }

    /// End the session: close the link, fail what is outstanding, emit `closed`.
    /// `code` `None` is a normal close by the application.
    fn fail(self: &Rc<Self>, code: Option<ErrorCode>, reason: &str) {
        if self.closed.replace(true) {
            return;
        }
        let link = self.link.borrow_mut().take();
        if let Some(link) = link {
            link.close(code, reason);
        }
        if let Some((_, id)) = self.timer.borrow_mut().take() {
            js::clear_timeout(&id);
        }
        let code_name = model::code_name(code.unwrap_or(ErrorCode::Disconnected));
        let ready = self.ready.borrow_mut().take();
        if let Some(w) = ready {
            w.reject(&js::error(&code_name, reason));
        }
        self.session.borrow_mut().abort(reason);
        self.pump();
        let left: Vec<Waiter> = self.waiters.borrow_mut().drain().map(|(_, w)| w).collect();
        for w in left {
            w.reject(&js::error("Disconnected", reason));
        }
        self.emit(&JsEvent::Closed {
            reason: reason.to_owned(),
        });
    }

    /// Write what the session has to send, deliver its events, re-arm the timer.
    fn pump(self: &Rc<Self>) {
        self.flush();
        if self.pumping.replace(true) {
            return; // re-entered from a JS callback: the outer pump delivers the rest
        }
        loop {
            let ev = self.session.borrow_mut().poll_event();
            let Some(ev) = ev else { break };
            self.deliver(model::map_event(ev));
            self.flush();
        }
        self.pumping.set(false);
        self.arm_timer();
    }

    fn flush(&self) {
        let link = self.link.borrow();
        loop {
            let t = self.session.borrow_mut().poll_transmit();
            let Some(t) = t else { break };
            // Without a link (closed) transmits are dropped.
            if let Some(link) = link.as_ref() {
                link.send(t.lane, &t.data);
            }
        }
    }

    fn deliver(self: &Rc<Self>, m: Mapped) {
        match m {
            Mapped::Ready { .. } => {
                let kind = self.transport.get().unwrap_or(TransportKind::WebSocket);
                let fallback_reason = self.fallback_reason.borrow().clone();
                self.emit(&JsEvent::Transport {
                    transport: kind.as_str(),
                    fallback_reason,
                });
                let ready = self.ready.borrow_mut().take();
                if let Some(w) = ready {
                    w.resolve(&JsValue::UNDEFINED);
                }
            }
            Mapped::Reply { req, result } => {
                let w = self.waiters.borrow_mut().remove(&req);
                if let Some(w) = w {
                    match result {
                        Ok(v) => w.resolve(&to_js(&v)),
                        Err(f) => w.reject(&failure_js(&f)),
                    }
                }
            }
            Mapped::Event(e) => self.emit(&e),
            Mapped::Ignore => {}
        }
    }

    fn emit(&self, e: &JsEvent) {
        let v = to_js(e);
        let handler = self.handler.borrow().clone();
        match handler {
            Some(h) => call_handler(&h, &v),
            None => self.backlog.borrow_mut().push_back(v),
        }
    }

    fn arm_timer(&self) {
        let deadline = if self.closed.get() {
            None
        } else {
            self.session.borrow().poll_timeout()
        };
        let mut timer = self.timer.borrow_mut();
        if timer.as_ref().map(|(d, _)| *d) == deadline {
            return;
        }
        if let Some((_, id)) = timer.take() {
            js::clear_timeout(&id);
        }
        if let Some(d) = deadline {
            let delay = d
                .saturating_sub(self.now())
                .saturating_add(1)
                .min(i32::MAX as u64) as i32;
            let id = js::set_timeout(self.timer_cb.as_ref().unchecked_ref(), delay);
            *timer = Some((d, id));
        }
    }

    /// Issue a request; the promise settles with its reply.
    fn request(
        self: &Rc<Self>,
        issue: impl FnOnce(&mut ClientSession, u64) -> Result<ReqId, Failure>,
    ) -> Promise {
        if self.closed.get() {
            return Promise::reject(&js::error("Disconnected", "the connection is closed"));
        }
        let now = self.now();
        let req = issue(&mut self.session.borrow_mut(), now);
        let req = match req {
            Ok(r) => r,
            Err(f) => return Promise::reject(&failure_js(&f)),
        };
        let (p, w) = promise();
        self.waiters.borrow_mut().insert(req, w);
        self.pump();
        p
    }

    /// A fire-and-forget command (typing, receipts).
    fn notify(self: &Rc<Self>, f: impl FnOnce(&mut ClientSession)) {
        if !self.closed.get() {
            f(&mut self.session.borrow_mut());
            self.pump();
        }
    }
}

fn call_handler(h: &Function, v: &JsValue) {
    if let Err(e) = h.call1(&JsValue::UNDEFINED, v) {
        web_sys::console::error_2(&JsValue::from_str("garou: the event handler threw"), &e);
    }
}

/// 64 random bits for message client ids (uniqueness across the user's tabs and devices;
/// not a secret).
fn random_u64() -> u64 {
    let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    half() << 32 | half()
}

fn random_guest_nick() -> String {
    format!("guest-{:04}", (js_sys::Math::random() * 10_000.0) as u32)
}

async fn open_link(
    origin: &str,
    choice: TransportChoice,
    inner: &Rc<Inner>,
) -> Result<(Link, TransportKind, Option<String>), Failure> {
    let disconnected = |message: String| Failure {
        code: ErrorCode::Disconnected,
        message,
    };
    let invalid = |message: String| Failure {
        code: ErrorCode::InvalidArgument,
        message,
    };
    let websocket = |fallback: Option<String>| async move {
        let url = wire::ws_url(origin).map_err(invalid)?;
        let link = ws::connect(&url, inner, WEBSOCKET_OPEN_MS)
            .await
            .map_err(disconnected)?;
        Ok((Link::WebSocket(link), TransportKind::WebSocket, fallback))
    };
    let no_webtransport = "WebTransport is not available in this browser (it also needs a secure \
                           context: https, or http on localhost/127.0.0.1)";
    match choice {
        TransportChoice::Only(TransportKind::WebSocket) => websocket(None).await,
        TransportChoice::Only(TransportKind::WebTransport) => {
            if !js::has_webtransport() {
                return Err(Failure {
                    code: ErrorCode::Unsupported,
                    message: no_webtransport.into(),
                });
            }
            // Forced: no time budget beyond the browser's own handshake timeout.
            let link = wt::connect(origin, inner, 30_000).await.map_err(disconnected)?;
            Ok((Link::WebTransport(link), TransportKind::WebTransport, None))
        }
        TransportChoice::Auto => {
            let reason = if js::has_webtransport() {
                match wt::connect(origin, inner, WEBTRANSPORT_BUDGET_MS).await {
                    Ok(link) => return Ok((Link::WebTransport(link), TransportKind::WebTransport, None)),
                    Err(e) => e,
                }
            } else {
                no_webtransport.to_owned()
            };
            websocket(Some(reason)).await
        }
    }
}

async fn connect(options: JsValue) -> Result<JsValue, JsValue> {
    let opts: ConnectOptions = if options.is_undefined() || options.is_null() {
        ConnectOptions::default()
    } else {
        serde_wasm_bindgen::from_value(options).map_err(|e| {
            let e = e.to_string();
            let e = e.strip_prefix("Error: ").unwrap_or(&e);
            js::error("InvalidArgument", &format!("bad connect options: {e}"))
        })?
    };
    let origin = match &opts.url {
        Some(u) if !u.is_empty() => u.clone(),
        _ => js::location_origin()
            .ok_or_else(|| js::error("InvalidArgument", "no url given and no location.origin"))?,
    };
    let choice =
        TransportChoice::parse(opts.transport.as_deref()).map_err(|e| js::error("InvalidArgument", &e))?;
    let mut config = ClientConfig::with_nick("");
    config.credentials = opts.credentials(random_guest_nick);
    config.client_name = concat!("garou-wasm-client/", env!("CARGO_PKG_VERSION")).into();
    config.client_id_base = random_u64();

    let inner = Inner::new(config);
    let (ready, waiter) = promise();
    *inner.ready.borrow_mut() = Some(waiter);
    let (link, kind, fallback) = open_link(&origin, choice, &inner)
        .await
        .map_err(|f| failure_js(&f))?;
    inner.attach(link, kind, fallback);
    let msg = format!("Timeout: the Garou handshake did not complete within {HANDSHAKE_MS} ms");
    match JsFuture::from(js::with_timeout(&ready, HANDSHAKE_MS, &msg)).await {
        Ok(_) => Ok(GarouClient { inner }.into()),
        Err(e) => {
            inner.fail(Some(ErrorCode::Timeout), "handshake did not complete");
            Err(e)
        }
    }
}

/// A connection to a Garou gateway. Create it with `GarouClient.connect(options)`.
#[wasm_bindgen]
pub struct GarouClient {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl GarouClient {
    /// Connect to a gateway; resolves once the session is ready (handshake done).
    #[wasm_bindgen(unchecked_return_type = "Promise<GarouClient>")]
    pub fn connect(
        #[wasm_bindgen(unchecked_optional_param_type = "ConnectOptions")] options: JsValue,
    ) -> Promise {
        future_to_promise(connect(options))
    }

    /// The transport in use.
    #[wasm_bindgen(getter, unchecked_return_type = "TransportKind")]
    pub fn transport(&self) -> String {
        self.inner
            .transport
            .get()
            .unwrap_or(TransportKind::WebSocket)
            .as_str()
            .to_owned()
    }

    /// Our current nick.
    #[wasm_bindgen(getter)]
    pub fn nick(&self) -> String {
        self.inner.session.borrow().nick().to_owned()
    }

    /// This session's ticket for the gateway's HTTP uploads and downloads
    /// (`/api/uploads?ticket=`, `/api/uploads/{id}?ticket=`), valid while the connection
    /// lives; empty until the server's welcome arrived (right after `connect`).
    #[wasm_bindgen(getter)]
    pub fn ticket(&self) -> String {
        self.inner.session.borrow().ticket().to_owned()
    }

    /// Our user id.
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> f64 {
        self.inner.session.borrow().user() as f64
    }

    /// Set the event handler (one at a time; a second call replaces the first). Events
    /// that arrived before the first handler was set are delivered to it at once.
    pub fn on(&self, #[wasm_bindgen(unchecked_param_type = "GarouEventHandler")] handler: Function) {
        *self.inner.handler.borrow_mut() = Some(handler.clone());
        loop {
            let next = self.inner.backlog.borrow_mut().pop_front();
            let Some(v) = next else { break };
            call_handler(&handler, &v);
        }
    }

    /// Join a room (a group room that does not exist yet is created).
    #[wasm_bindgen(unchecked_return_type = "Promise<JoinInfo>")]
    pub fn join(&self, room: String) -> Promise {
        self.inner.request(|s, now| Ok(s.join(&room, now)))
    }

    /// Create a room and join it as its owner.
    #[wasm_bindgen(js_name = createRoom, unchecked_return_type = "Promise<JoinInfo>")]
    pub fn create_room(
        &self,
        room: String,
        #[wasm_bindgen(unchecked_param_type = "\"group\" | \"channel\"")] kind: String,
    ) -> Promise {
        self.inner.request(|s, now| {
            let kind = model::parse_create_kind(&kind)?;
            Ok(s.create_room(&room, kind, now))
        })
    }

    /// Leave a room.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn leave(&self, room: String) -> Promise {
        self.inner.request(|s, now| Ok(s.leave(&room, now)))
    }

    /// Post a message, optionally with an attachment (the id of a completed upload of
    /// ours, e.g. from `POST /api/uploads`); resolves when the server acked it.
    #[wasm_bindgen(unchecked_return_type = "Promise<SentInfo>")]
    pub fn send(&self, room: String, text: String, attachment: Option<String>) -> Promise {
        let attachment = attachment.filter(|a| !a.is_empty());
        self.inner
            .request(|s, now| Ok(s.send_with_attachment(&room, &text, attachment.as_deref(), now)))
    }

    /// Direct message to a user by nick; resolves with the direct room once acked.
    #[wasm_bindgen(unchecked_return_type = "Promise<SentInfo>")]
    pub fn direct(&self, #[wasm_bindgen(js_name = toNick)] to_nick: String, text: String) -> Promise {
        self.inner.request(|s, now| Ok(s.direct(&to_nick, &text, now)))
    }

    /// Replace the text of a message.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn edit(&self, room: String, id: f64, text: String) -> Promise {
        self.inner
            .request(|s, now| Ok(s.edit(&room, model::parse_id(id)?, &text, now)))
    }

    /// Delete a message.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn delete(&self, room: String, id: f64) -> Promise {
        self.inner
            .request(|s, now| Ok(s.delete(&room, model::parse_id(id)?, now)))
    }

    /// Add (`add` true) or remove a reaction.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn react(&self, room: String, id: f64, emoji: String, add: bool) -> Promise {
        self.inner
            .request(|s, now| Ok(s.react(&room, model::parse_id(id)?, &emoji, add, now)))
    }

    /// Tell the room we are typing (an unreliable datagram).
    pub fn typing(&self, room: String) {
        self.inner.notify(|s| s.typing(&room));
    }

    /// Tell a message's author we received it (they get a `receipt` event).
    #[wasm_bindgen(js_name = markDelivered)]
    pub fn mark_delivered(&self, room: String, id: f64) {
        if let Ok(id) = model::parse_id(id) {
            self.inner.notify(|s| s.delivered(&room, id));
        }
    }

    /// Tell a message's author we read it (they get a `receipt` event with `read: true`).
    #[wasm_bindgen(js_name = markRead)]
    pub fn mark_read(&self, room: String, id: f64) {
        if let Ok(id) = model::parse_id(id) {
            self.inner.notify(|s| s.read(&room, id));
        }
    }

    /// Rooms visible to us.
    #[wasm_bindgen(js_name = listRooms, unchecked_return_type = "Promise<RoomInfo[]>")]
    pub fn list_rooms(&self) -> Promise {
        self.inner.request(|s, now| Ok(s.list_rooms(now)))
    }

    /// Members of a room.
    #[wasm_bindgen(js_name = listUsers, unchecked_return_type = "Promise<MemberInfo[]>")]
    pub fn list_users(&self, room: String) -> Promise {
        self.inner.request(|s, now| Ok(s.list_users(&room, now)))
    }

    /// A page of a room's history, oldest first: at most `limit` (default 50) messages
    /// with offsets below `before` and above `after`; without `after` the newest such
    /// messages (paging back), with `after` the oldest (paging forward).
    #[wasm_bindgen(unchecked_return_type = "Promise<HistoryPage>")]
    pub fn history(
        &self,
        room: String,
        #[wasm_bindgen(unchecked_optional_param_type = "HistoryOptions")] options: JsValue,
    ) -> Promise {
        let opts: Result<model::HistoryOptions, Failure> = if options.is_undefined() || options.is_null() {
            Ok(model::HistoryOptions::default())
        } else {
            serde_wasm_bindgen::from_value(options).map_err(|e| Failure {
                code: ErrorCode::InvalidArgument,
                message: format!("bad history options: {e}"),
            })
        };
        self.inner.request(|s, now| {
            let (before, after, limit) = opts?.parse()?;
            Ok(s.history(&room, before, after, limit, now))
        })
    }

    /// Moderate a member: `action` is "kick", "mute" (for `secs`, 0 = until unmuted),
    /// "unmute", "ban" or "unban"; the room sees a `member_moderated` event.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn moderate(&self, room: String, nick: String, action: String, secs: u32, reason: String) -> Promise {
        self.inner.request(|s, now| {
            let action = model::parse_mod_action(&action)?;
            Ok(s.moderate(&room, &nick, action, secs, &reason, now))
        })
    }

    /// Add a user to a room as a member.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn invite(&self, room: String, nick: String) -> Promise {
        self.inner.request(|s, now| Ok(s.invite(&room, &nick, now)))
    }

    /// Set a room's display title.
    #[wasm_bindgen(js_name = renameRoom, unchecked_return_type = "Promise<void>")]
    pub fn rename_room(&self, room: String, title: String) -> Promise {
        self.inner.request(|s, now| Ok(s.rename_room(&room, &title, now)))
    }

    /// Delete a room and its history.
    #[wasm_bindgen(js_name = deleteRoom, unchecked_return_type = "Promise<void>")]
    pub fn delete_room(&self, room: String) -> Promise {
        self.inner.request(|s, now| Ok(s.delete_room(&room, now)))
    }

    /// Change our nick; resolves with the nick the server accepted.
    #[wasm_bindgen(js_name = setNick, unchecked_return_type = "Promise<string>")]
    pub fn set_nick(&self, nick: String) -> Promise {
        self.inner.request(|s, now| Ok(s.set_nick(&nick, now)))
    }

    /// Close the connection. Outstanding requests reject with `Disconnected`, and a
    /// `closed` event follows.
    pub fn close(&self) {
        self.inner.fail(None, "closed by the client");
    }
}
