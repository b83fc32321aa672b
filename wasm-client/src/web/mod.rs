//! The browser side (wasm32 only): the exported `GarouClient` class and the driver that
//! moves bytes between a transport and the `ClientSession`, runs its timers, settles
//! request promises, hands events to the listeners, and recovers lost connections:
//! reconnect with backoff over the configured addresses, resume every room from where
//! delivery stopped, re-send unacknowledged messages with their original client ids,
//! queue (bounded) and pace commands, and detect a dead peer with keep-alive pings.

mod js;
mod ws;
mod wt;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use garou_protocol::client::StreamId;
use garou_protocol::{
    ClientConfig, ClientSession, Credentials, ErrorCode, Failure, Lane, Message, Ping, ReqId, ResumeState,
    ResumeToken, SessionError,
};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

use crate::model::{self, JsErrorInfo, JsEvent, Mapped, TransportKind};
use crate::recovery::{client_code, is_terminal, Pacer, Settings};
use crate::wire::{self, ConnectOptions, TransportChoice};

/// How long `"auto"` gives WebTransport (cert-hash fetch + handshake) before falling back.
const WEBTRANSPORT_BUDGET_MS: u32 = 3_000;
/// How long a WebSocket may take to open.
const WEBSOCKET_OPEN_MS: u32 = 10_000;
/// Events kept for the first listener (those emitted before any `on()`), at most.
const MAX_BACKLOG: usize = 10_000;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A member's role in a room. */
export type Role = "owner" | "admin" | "moderator" | "member" | "guest";
/** The kind of a room. */
export type RoomKind = "direct" | "group" | "channel";
/** The transport a client runs on. */
export type TransportKind = "webtransport" | "websocket";
/**
 * Where the client is: `connecting` (an attempt is under way: the first connect or a
 * reconnect), `connected` (the session is ready), `reconnecting` (waiting out the backoff
 * delay before the next attempt), `closed` (for good: `close()`, a terminal error, or a
 * loss with `reconnect: false`).
 */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/**
 * Every `code` a `GarouError` (and a `GarouErrorInfo`) carries: the protocol's error codes,
 * and `Closed` (the application closed the client), `QueueFull` (too many commands waiting
 * while disconnected), `CertificateMismatch` (the gateway's certificate is not the pinned
 * `certHash`), raised by this client only.
 */
export type GarouErrorCode =
  | "BadFrame" | "FrameTooLarge" | "BadPayload" | "UnsupportedVersion" | "OutOfState"
  | "AuthFailed" | "NickUnavailable" | "NoSuchRoom" | "RoomExists" | "NotMember" | "Forbidden"
  | "NoSuchMessage" | "NoSuchUser" | "RateLimited" | "SlowConsumer" | "LimitReached"
  | "InvalidArgument" | "Unsupported" | "Timeout" | "Disconnected" | "ShuttingDown" | "Internal"
  | "Banned" | "Muted" | "Kicked" | "Unavailable" | "SessionReplaced"
  | "Closed" | "QueueFull" | "CertificateMismatch";

/** A typed error as events carry it. */
export interface GarouErrorInfo { code: GarouErrorCode; message: string }

/**
 * What every rejected promise of this package carries. `message` is `"<code>: <reason>"`.
 * Terminal codes (the client closes instead of reconnecting): `AuthFailed`, `Banned`,
 * `Kicked`, `SessionReplaced` (a newer session of this client, e.g. a reloaded page, took
 * this one over), `UnsupportedVersion`, `InvalidArgument`, `CertificateMismatch`, `Closed`.
 */
export class GarouError extends Error {
  constructor(code: GarouErrorCode, reason: string);
  readonly name: "GarouError";
  readonly code: GarouErrorCode;
  /** The message without the code. */
  readonly reason: string;
}

/** Options of `GarouClient.connect`. Durations are milliseconds. */
export interface ConnectOptions {
  /** Gateway HTTP origin, e.g. "http://127.0.0.1:8080"; default `location.origin`. */
  url?: string;
  /** More gateway origins: every attempt takes the next address in turn (`url` first). */
  urls?: string[];
  /** Nick to authenticate with (open dev mode); default a random "guest-NNNN". */
  nick?: string;
  /** Signed token; takes precedence over `nick`. */
  token?: string;
  /** Default "auto": WebTransport when available and reachable, else WebSocket. */
  transport?: "auto" | "webtransport" | "websocket";
  /** Reconnect by itself after a lost connection (default true). */
  reconnect?: boolean;
  /** Where the WebTransport certificate hash is fetched, before every attempt (default `<url>/cert-hash`). */
  certHashUrl?: string;
  /** Pin the certificate: 64 hex digits; a gateway reporting another hash fails with `CertificateMismatch`. */
  certHash?: string;
  /** First reconnect delay (default 1000); doubles per failed attempt. */
  backoffInitialMs?: number;
  /** Largest reconnect delay (default 60000). Each delay is drawn from the upper half of the current one. */
  backoffMaxMs?: number;
  /** A keep-alive ping this often while connected (default 1000). */
  pingIntervalMs?: number;
  /** No byte from the server for this long: the connection is dead (default 3000). */
  deadAfterMs?: number;
  /** A request without a reply for this long rejects with `Timeout` (default 10000). */
  requestTimeoutMs?: number;
  /** The Garou handshake must complete within this (default 10000). */
  handshakeTimeoutMs?: number;
  /** Commands waiting to be sent (disconnected or paced), at most (default 1000); more reject with `QueueFull`. */
  maxQueue?: number;
  /** Commands per second sent at most (default 50). */
  sendRate?: number;
  /** Commands sent at once before `sendRate` applies (default 50). */
  sendBurst?: number;
  /** Requests awaiting their reply, at most (default 100). */
  maxInFlight?: number;
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

/** Everything the listeners receive. */
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
  | { type: "closed"; reason: string }
  | { type: "connecting"; attempt: number; url: string }
  | { type: "connected"; transport: TransportKind; url: string; attempt: number; reconnected: boolean }
  | { type: "disconnected"; reason: GarouErrorInfo; willReconnect: boolean }
  | { type: "reconnecting"; attempt: number; delayMs: number; lastError: GarouErrorInfo }
  | { type: "rejoined"; room: string; resumed: boolean; offset?: number; epoch?: number; error?: GarouErrorInfo };

/** The `type` of every event. */
export type GarouEventType = GarouEvent["type"];
/** The event object of type `K`. */
export type GarouEventOf<K extends GarouEventType> = GarouEvent extends infer E
  ? E extends { type: infer T } ? (K extends T ? E : never) : never
  : never;
/** A listener for every event (`on(listener)`). */
export type GarouEventHandler = (event: GarouEvent) => void;
/** A listener for events of type `K` (`on(type, listener)`). */
export type GarouEventListener<K extends GarouEventType> = (event: GarouEventOf<K>) => void;

export interface GarouClient {
  /**
   * Add a listener: for every event (`on(listener)`) or for one type (`on("message",
   * listener)`). Any number of listeners, called in the order they were added; adding the
   * same function twice for the same type calls it twice. Events emitted before the
   * first listener was added are kept and delivered, in a microtask, to the listeners
   * added by then (so several `on()` calls in a row all see them).
   */
  on(listener: GarouEventHandler): void;
  on<K extends GarouEventType>(type: K, listener: GarouEventListener<K>): void;
  /** Like `on`, but the listener is removed after its first call. */
  once(listener: GarouEventHandler): void;
  once<K extends GarouEventType>(type: K, listener: GarouEventListener<K>): void;
  /** Remove a listener added with `on` or `once` (the last one added, for duplicates). */
  off(listener: GarouEventHandler): void;
  off<K extends GarouEventType>(type: K, listener: GarouEventListener<K>): void;
}
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

/// Where a transport reports to: the driver, for one connection (`gen`). Reports of a
/// connection the driver has left (after a reconnect) are dropped.
#[derive(Clone)]
pub(crate) struct Sink {
    inner: Rc<Inner>,
    gen: u32,
}

impl Sink {
    pub(crate) fn on_input(&self, input: Input<'_>) {
        if self.inner.gen.get() == self.gen {
            self.inner.on_input(input);
        }
    }
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

fn info_js(i: &JsErrorInfo) -> JsValue {
    js::error(&i.code, &i.message)
}

/// Where the client is (`ConnectionState` in the TypeScript types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Connected,
    Reconnecting,
    Closed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Connected => "connected",
            Phase::Reconnecting => "reconnecting",
            Phase::Closed => "closed",
        }
    }
}

/// Issues one request on a session (called when the command may go out).
type Issue = Box<dyn FnOnce(&mut ClientSession, u64) -> Result<ReqId, Failure>>;

/// A command waiting to be sent (disconnected, or paced) and its promise.
struct Queued {
    issue: Issue,
    waiter: Waiter,
}

struct Listener {
    /// `None`: every event.
    ty: Option<String>,
    f: Function,
    once: bool,
}

/// The driver shared by the `GarouClient` object, the transport callbacks and the timers.
pub(crate) struct Inner {
    settings: Settings,
    choice: TransportChoice,
    /// What every new session starts from (credentials follow nick changes).
    config: RefCell<ClientConfig>,
    /// What the next session takes over (rooms, unacknowledged sends, counters).
    resume: RefCell<ResumeState>,
    session: RefCell<ClientSession>,
    /// The session belongs to the current connection (not yet suspended).
    session_live: Cell<bool>,
    link: RefCell<Option<Link>>,
    /// The connection generation: transports report under the one they were opened with.
    gen: Cell<u32>,
    phase: Cell<Phase>,
    ever_connected: Cell<bool>,
    /// The attempt number within the current (re)connect cycle, from 1.
    attempt: Cell<u32>,
    /// The index (into `settings.urls`) of the next address to try.
    next_url: Cell<usize>,
    url_index: Cell<usize>,
    last_error: RefCell<JsErrorInfo>,
    /// An error the server sent without a request (e.g. `Kicked`) just before it closed.
    server_error: RefCell<Option<JsErrorInfo>>,
    /// Why the client closed (what commands issued afterwards reject with).
    closed_reason: RefCell<Option<JsErrorInfo>>,
    transport: Cell<Option<TransportKind>>,
    fallback_reason: RefCell<Option<String>>,
    /// Identity of the last ready session (the getters' answer while reconnecting).
    last_user: Cell<u64>,
    last_nick: RefCell<String>,
    waiters: RefCell<HashMap<ReqId, Waiter>>,
    ready: RefCell<Option<Waiter>>,
    listeners: RefCell<Vec<Listener>>,
    backlog: RefCell<VecDeque<JsValue>>,
    /// The backlog is being delivered: new events queue behind it.
    flushing: Cell<bool>,
    outbox: RefCell<VecDeque<Queued>>,
    pacer: RefCell<Pacer>,
    pumping: Cell<bool>,
    /// The armed timer: (deadline, setTimeout id).
    timer: RefCell<Option<(u64, JsValue)>>,
    timer_cb: Closure<dyn FnMut()>,
    retry_timer: RefCell<Option<JsValue>>,
    retry_cb: Closure<dyn FnMut()>,
    handshake_deadline: Cell<Option<u64>>,
    last_rx: Cell<u64>,
    next_ping: Cell<u64>,
    ping_nonce: Cell<u64>,
    clock: js::Clock,
}

impl Inner {
    fn new(config: ClientConfig, settings: Settings, choice: TransportChoice) -> Rc<Inner> {
        let clock = js::Clock::new();
        let now = clock.now_ms();
        let session = ClientSession::new(config.clone(), now);
        let pacer = Pacer::new(settings.send_rate, settings.send_burst, now);
        Rc::new_cyclic(|weak: &std::rc::Weak<Inner>| {
            let (w1, w2) = (weak.clone(), weak.clone());
            Inner {
                settings,
                choice,
                config: RefCell::new(config),
                resume: RefCell::new(ResumeState::default()),
                session: RefCell::new(session),
                session_live: Cell::new(false),
                link: RefCell::new(None),
                gen: Cell::new(0),
                phase: Cell::new(Phase::Connecting),
                ever_connected: Cell::new(false),
                attempt: Cell::new(0),
                next_url: Cell::new(0),
                url_index: Cell::new(0),
                last_error: RefCell::new(JsErrorInfo::new("Disconnected", "not connected yet")),
                server_error: RefCell::new(None),
                closed_reason: RefCell::new(None),
                transport: Cell::new(None),
                fallback_reason: RefCell::new(None),
                last_user: Cell::new(0),
                last_nick: RefCell::new(String::new()),
                waiters: RefCell::new(HashMap::new()),
                ready: RefCell::new(None),
                listeners: RefCell::new(Vec::new()),
                backlog: RefCell::new(VecDeque::new()),
                flushing: Cell::new(false),
                outbox: RefCell::new(VecDeque::new()),
                pacer: RefCell::new(pacer),
                pumping: Cell::new(false),
                timer: RefCell::new(None),
                timer_cb: Closure::new(move || {
                    if let Some(inner) = w1.upgrade() {
                        inner.on_timer();
                    }
                }),
                retry_timer: RefCell::new(None),
                retry_cb: Closure::new(move || {
                    if let Some(inner) = w2.upgrade() {
                        inner.retry_timer.borrow_mut().take();
                        spawn_local(inner.run_attempt());
                    }
                }),
                handshake_deadline: Cell::new(None),
                last_rx: Cell::new(now),
                next_ping: Cell::new(u64::MAX),
                ping_nonce: Cell::new(0),
                clock,
            }
        })
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn url(&self) -> &str {
        &self.settings.urls[self.url_index.get() % self.settings.urls.len()]
    }

    // ------------------------------------------------------------------ connection cycle

    /// One connection attempt: open a transport to the next address, start a session
    /// that takes over from the last one, and wait for its handshake (on the timer).
    async fn run_attempt(self: Rc<Self>) {
        if self.phase.get() == Phase::Closed {
            return;
        }
        self.phase.set(Phase::Connecting);
        let attempt = self.attempt.get() + 1;
        self.attempt.set(attempt);
        let index = self.next_url.get() % self.settings.urls.len();
        self.next_url.set(index + 1);
        self.url_index.set(index);
        let url = self.url().to_owned();
        self.emit(&JsEvent::Connecting {
            attempt,
            url: url.clone(),
        });
        let gen = self.gen.get().wrapping_add(1);
        self.gen.set(gen);
        let sink = Sink {
            inner: self.clone(),
            gen,
        };
        let opened = open_link(&url, self.choice, &self.settings, &sink).await;
        if self.phase.get() == Phase::Closed || self.gen.get() != gen {
            if let Ok((link, ..)) = opened {
                link.close(None, "closed by the client");
            }
            return;
        }
        match opened {
            Err(info) => self.lost(info, None),
            Ok((link, kind, fallback)) => {
                let now = self.now();
                let mut config = self.config.borrow().clone();
                config.resume = std::mem::take(&mut *self.resume.borrow_mut());
                *self.session.borrow_mut() = ClientSession::new(config, now);
                self.session_live.set(true);
                self.server_error.borrow_mut().take();
                self.handshake_deadline
                    .set(Some(now + u64::from(self.settings.handshake_timeout_ms)));
                self.transport.set(Some(kind));
                *self.fallback_reason.borrow_mut() = fallback;
                *self.link.borrow_mut() = Some(link);
                self.pump();
            }
        }
    }

    /// The session is ready: flush the queue, tell the listeners.
    fn on_ready(self: &Rc<Self>) {
        let reconnected = self.ever_connected.replace(true);
        self.phase.set(Phase::Connected);
        self.handshake_deadline.set(None);
        let attempt = self.attempt.replace(0);
        // After a loss, the address that worked is tried first.
        self.next_url.set(self.url_index.get());
        let now = self.now();
        self.last_rx.set(now);
        self.next_ping
            .set(now + u64::from(self.settings.ping_interval_ms));
        {
            let s = self.session.borrow();
            self.last_user.set(s.user());
            *self.last_nick.borrow_mut() = s.nick().to_owned();
        }
        let kind = self.transport.get().unwrap_or(TransportKind::WebSocket);
        let fallback_reason = self.fallback_reason.borrow().clone();
        self.emit(&JsEvent::Transport {
            transport: kind.as_str(),
            fallback_reason,
        });
        self.emit(&JsEvent::Connected {
            transport: kind.as_str(),
            url: self.url().to_owned(),
            attempt,
            reconnected,
        });
        let ready = self.ready.borrow_mut().take();
        if let Some(w) = ready {
            w.resolve(&JsValue::UNDEFINED);
        }
    }

    /// Leave the current connection (if any): later reports from it are dropped.
    fn detach(&self, code: Option<ErrorCode>, reason: &str) {
        self.gen.set(self.gen.get().wrapping_add(1));
        let link = self.link.borrow_mut().take();
        if let Some(link) = link {
            link.close(code, reason);
        }
        self.handshake_deadline.set(None);
        if let Some((_, id)) = self.timer.borrow_mut().take() {
            js::clear_timeout(&id);
        }
    }

    /// Hand the live session's state to the next one, failing what cannot be carried.
    fn suspend_session(self: &Rc<Self>, reason: &str) {
        if !self.session_live.replace(false) {
            return;
        }
        let state = {
            let mut s = self.session.borrow_mut();
            let mut config = self.config.borrow_mut();
            if matches!(config.credentials, Credentials::Nick(_)) && !s.nick().is_empty() {
                config.credentials = Credentials::Nick(s.nick().to_owned());
            }
            s.suspend(reason)
        };
        *self.resume.borrow_mut() = state;
        self.pump(); // the requests that are not carried over reject now
    }

    /// The connection (or an attempt) failed: reconnect, or close for good.
    /// `wire`: the close code to send, if there is still a connection to close.
    fn lost(self: &Rc<Self>, info: JsErrorInfo, wire: Option<ErrorCode>) {
        if matches!(self.phase.get(), Phase::Closed | Phase::Reconnecting) {
            return;
        }
        // An error the server announced just before closing says more than the close.
        let info = match self.server_error.borrow_mut().take() {
            Some(e) if info.code == "Disconnected" => e,
            _ => info,
        };
        self.detach(wire.or(Some(ErrorCode::Disconnected)), &info.message);
        let was_connected = self.phase.get() == Phase::Connected;
        let first = !self.ever_connected.get();
        let retry = !is_terminal(&info.code)
            && if first {
                // The first connect tries every address once, then gives up.
                (self.attempt.get() as usize) < self.settings.urls.len()
            } else {
                self.settings.reconnect
            };
        if !retry {
            return self.shutdown(info, false);
        }
        self.suspend_session(&info.message);
        if was_connected {
            self.emit(&JsEvent::Disconnected {
                reason: info.clone(),
                will_reconnect: true,
            });
        }
        *self.last_error.borrow_mut() = info;
        if self.phase.get() == Phase::Closed {
            return;
        }
        if first {
            spawn_local(self.clone().run_attempt());
        } else {
            self.schedule_retry();
        }
    }

    fn schedule_retry(self: &Rc<Self>) {
        if self.phase.get() == Phase::Closed {
            return; // a `disconnected` listener closed the client
        }
        let next = self.attempt.get() + 1;
        let delay = self.settings.backoff_ms(next, js_sys::Math::random());
        self.phase.set(Phase::Reconnecting);
        let last_error = self.last_error.borrow().clone();
        self.emit(&JsEvent::Reconnecting {
            attempt: next,
            delay_ms: delay,
            last_error,
        });
        if self.phase.get() != Phase::Reconnecting {
            return; // a listener closed the client, or asked to reconnect now
        }
        let id = js::set_timeout(
            self.retry_cb.as_ref().unchecked_ref(),
            delay.min(i32::MAX as u32) as i32,
        );
        if let Some(old) = self.retry_timer.borrow_mut().replace(id) {
            js::clear_timeout(&old);
        }
    }

    /// Skip the backoff delay: attempt now (only while waiting for the next attempt).
    fn reconnect_now(self: &Rc<Self>) {
        if self.phase.get() != Phase::Reconnecting {
            return;
        }
        if let Some(id) = self.retry_timer.borrow_mut().take() {
            js::clear_timeout(&id);
        }
        spawn_local(self.clone().run_attempt());
    }

    /// Close for good: fail everything outstanding and queued, tell the listeners.
    /// `by_user`: `close()` was called.
    fn shutdown(self: &Rc<Self>, info: JsErrorInfo, by_user: bool) {
        let was = self.phase.replace(Phase::Closed);
        if was == Phase::Closed {
            return;
        }
        *self.closed_reason.borrow_mut() = Some(info.clone());
        self.detach(
            if by_user {
                None
            } else {
                Some(ErrorCode::Disconnected)
            },
            &info.message,
        );
        if let Some(id) = self.retry_timer.borrow_mut().take() {
            js::clear_timeout(&id);
        }
        let ready = self.ready.borrow_mut().take();
        if let Some(w) = ready {
            w.reject(&info_js(&info));
        }
        // Commands that never went out.
        let queued: Vec<Queued> = self.outbox.borrow_mut().drain(..).collect();
        let queued_error = if by_user {
            info_js(&info)
        } else {
            js::error("Disconnected", &info.message)
        };
        for q in queued {
            q.waiter.reject(&queued_error);
        }
        // Requests in flight, and the sends a next session would have re-sent.
        self.session_live.set(false);
        self.session.borrow_mut().abort(&info.message);
        self.pump();
        self.resume.borrow_mut().clone_from(&ResumeState::default());
        let left: Vec<Waiter> = self.waiters.borrow_mut().drain().map(|(_, w)| w).collect();
        for w in left {
            w.reject(&js::error("Disconnected", &info.message));
        }
        if was == Phase::Connected {
            self.emit(&JsEvent::Disconnected {
                reason: info.clone(),
                will_reconnect: false,
            });
        }
        self.emit(&JsEvent::Closed { reason: info.message });
    }

    // ------------------------------------------------------------------ input and timers

    /// Input from the transport of the current connection.
    pub(crate) fn on_input(self: &Rc<Self>, input: Input<'_>) {
        if !matches!(self.phase.get(), Phase::Connecting | Phase::Connected) || !self.session_live.get() {
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
                    return self.lost(JsErrorInfo::new("Disconnected", reason), None);
                }
                Input::Violation(reason) => {
                    drop(s);
                    return self.lost(
                        JsErrorInfo::new("BadFrame", format!("protocol violation: {reason}")),
                        Some(ErrorCode::BadFrame),
                    );
                }
            }
        };
        self.last_rx.set(now);
        match result {
            Ok(()) => self.pump(),
            Err(e) => self.fail_session(e),
        }
    }

    fn on_timer(self: &Rc<Self>) {
        self.timer.borrow_mut().take();
        if !matches!(self.phase.get(), Phase::Connecting | Phase::Connected) || !self.session_live.get() {
            return;
        }
        let now = self.now();
        if self.handshake_deadline.get().is_some_and(|d| now >= d) {
            let ms = self.settings.handshake_timeout_ms;
            return self.lost(
                JsErrorInfo::new(
                    "Timeout",
                    format!("the Garou handshake did not complete within {ms} ms"),
                ),
                Some(ErrorCode::Timeout),
            );
        }
        if self.phase.get() == Phase::Connected {
            let silent = now.saturating_sub(self.last_rx.get());
            if silent >= u64::from(self.settings.dead_after_ms) {
                return self.lost(
                    JsErrorInfo::new("Timeout", format!("no data from the server for {silent} ms")),
                    Some(ErrorCode::Timeout),
                );
            }
            if now >= self.next_ping.get() {
                let nonce = self.ping_nonce.get().wrapping_add(1);
                self.ping_nonce.set(nonce);
                if let Some(link) = self.link.borrow().as_ref() {
                    link.send(Lane::Control, &Message::from(Ping { nonce }).encode());
                }
                self.next_ping
                    .set(now + u64::from(self.settings.ping_interval_ms));
            }
        }
        let result = self.session.borrow_mut().handle_timeout(now);
        match result {
            Ok(()) => self.pump(),
            Err(e) => self.fail_session(e),
        }
    }

    fn fail_session(self: &Rc<Self>, e: SessionError) {
        let (code, message) = match &e {
            SessionError::Decode(_) => (ErrorCode::BadFrame, e.to_string()),
            SessionError::Protocol(_) => (ErrorCode::OutOfState, e.to_string()),
            SessionError::Refused(f) => (f.code, f.message.clone()),
            SessionError::Timeout(_) => (ErrorCode::Timeout, e.to_string()),
        };
        let info = JsErrorInfo::new(model::code_name(code), message);
        if matches!(e, SessionError::Refused(_)) && !self.ever_connected.get() {
            // The first connect: the server's answer (AuthFailed, NickUnavailable, ...)
            // rejects `connect()`; another address would answer the same.
            self.detach(Some(code), &info.message);
            return self.shutdown(info, false);
        }
        self.lost(info, Some(code));
    }

    // ------------------------------------------------------------------ output

    /// The page goes away: store the current resume token under `key` for the next page
    /// of this tab (nothing once the client was closed: its session is gone).
    fn leave_resume_token(&self, key: &str) {
        if self.phase.get() == Phase::Closed {
            return;
        }
        let token = match self.session.borrow().resume_token() {
            t if !t.is_empty() => t.clone(),
            _ => self.resume.borrow().token.clone(),
        };
        if !token.is_empty() {
            js::session_set(key, token.as_str());
        }
    }

    /// Write what the session has to send, deliver its events, send queued commands,
    /// re-arm the timer.
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
        self.drain_outbox();
        self.flush();
        self.pumping.set(false);
        self.arm_timer();
    }

    fn flush(&self) {
        let link = self.link.borrow();
        loop {
            let t = self.session.borrow_mut().poll_transmit();
            let Some(t) = t else { break };
            // Without a link (between connections) transmits are dropped: the session
            // state to re-send is in its ResumeState.
            if let Some(link) = link.as_ref() {
                link.send(t.lane, &t.data);
            }
        }
    }

    /// Send queued commands while connected, the pacer has a token and fewer than
    /// `maxInFlight` requests await their reply.
    fn drain_outbox(&self) {
        loop {
            if self.phase.get() != Phase::Connected || self.outbox.borrow().is_empty() {
                return;
            }
            if self.session.borrow().pending_requests() >= self.settings.max_in_flight {
                return;
            }
            let now = self.now();
            if !self.pacer.borrow_mut().try_take(now) {
                return;
            }
            let Some(q) = self.outbox.borrow_mut().pop_front() else {
                return;
            };
            let issued = (q.issue)(&mut self.session.borrow_mut(), now);
            match issued {
                Ok(req) => {
                    self.waiters.borrow_mut().insert(req, q.waiter);
                }
                Err(f) => q.waiter.reject(&failure_js(&f)),
            }
        }
    }

    fn deliver(self: &Rc<Self>, m: Mapped) {
        match m {
            Mapped::Ready { .. } => self.on_ready(),
            Mapped::Reply { req, result } => {
                let w = self.waiters.borrow_mut().remove(&req);
                if let Some(w) = w {
                    match result {
                        Ok(v) => w.resolve(&to_js(&v)),
                        Err(f) => w.reject(&failure_js(&f)),
                    }
                }
            }
            Mapped::Event(e) => {
                if let JsEvent::Error { code, message } = &e {
                    *self.server_error.borrow_mut() = Some(JsErrorInfo::new(code.clone(), message.clone()));
                }
                self.emit(&e)
            }
            Mapped::Ignore => {}
        }
    }

    fn emit(&self, e: &JsEvent) {
        let v = to_js(e);
        if self.listeners.borrow().is_empty() || self.flushing.get() {
            let mut backlog = self.backlog.borrow_mut();
            if backlog.len() < MAX_BACKLOG {
                backlog.push_back(v);
            }
            return;
        }
        self.dispatch(&v);
    }

    /// Call every listener of `v`'s type (once-listeners are removed first).
    fn dispatch(&self, v: &JsValue) {
        let ty = Reflect::get(v, &JsValue::from_str("type"))
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        let targets: Vec<Function> = {
            let mut listeners = self.listeners.borrow_mut();
            let mut out = Vec::new();
            listeners.retain(|l| {
                if l.ty.as_deref().is_some_and(|t| t != ty) {
                    return true;
                }
                out.push(l.f.clone());
                !l.once
            });
            out
        };
        for f in targets {
            call_handler(&f, v);
        }
    }

    /// Add a listener. The events kept while there was none go to the listeners added
    /// by the end of the current task (in a microtask), so that several `on()` calls in a
    /// row all see them.
    fn add_listener(self: &Rc<Self>, ty: Option<String>, f: Function, once: bool) {
        let first = self.listeners.borrow().is_empty();
        self.listeners.borrow_mut().push(Listener { ty, f, once });
        if first && !self.backlog.borrow().is_empty() && !self.flushing.replace(true) {
            let inner = self.clone();
            spawn_local(async move {
                loop {
                    let next = inner.backlog.borrow_mut().pop_front();
                    let Some(v) = next else { break };
                    inner.dispatch(&v);
                }
                inner.flushing.set(false);
            });
        }
    }

    fn remove_listener(&self, ty: Option<String>, f: &Function) {
        let mut listeners = self.listeners.borrow_mut();
        if let Some(i) = listeners
            .iter()
            .rposition(|l| l.ty == ty && AsRef::<JsValue>::as_ref(&l.f) == AsRef::<JsValue>::as_ref(f))
        {
            listeners.remove(i);
        }
    }

    fn arm_timer(&self) {
        let phase = self.phase.get();
        let live = matches!(phase, Phase::Connecting | Phase::Connected) && self.session_live.get();
        let deadline = if live {
            let now = self.now();
            let mut d = self.session.borrow().poll_timeout();
            let mut at = |t: u64| d = Some(d.map_or(t, |x| x.min(t)));
            if let Some(h) = self.handshake_deadline.get() {
                at(h);
            }
            if phase == Phase::Connected {
                at(self.next_ping.get());
                at(self.last_rx.get() + u64::from(self.settings.dead_after_ms));
                if !self.outbox.borrow().is_empty()
                    && self.session.borrow().pending_requests() < self.settings.max_in_flight
                {
                    at(self.pacer.borrow_mut().next_token_at(now));
                }
            }
            d
        } else {
            None
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

    // ------------------------------------------------------------------ commands

    /// Issue a request; the promise settles with its reply. While disconnected (or when
    /// the pacer says wait) it is queued, up to `maxQueue`.
    fn request(
        self: &Rc<Self>,
        issue: impl FnOnce(&mut ClientSession, u64) -> Result<ReqId, Failure> + 'static,
    ) -> Promise {
        if self.phase.get() == Phase::Closed {
            let info = self
                .closed_reason
                .borrow()
                .clone()
                .unwrap_or_else(|| JsErrorInfo::new("Disconnected", "the connection is closed"));
            let code = if info.code == client_code::CLOSED {
                client_code::CLOSED
            } else {
                "Disconnected"
            };
            return Promise::reject(&js::error(code, "the client is closed"));
        }
        let (p, waiter) = promise();
        self.outbox.borrow_mut().push_back(Queued {
            issue: Box::new(issue),
            waiter,
        });
        self.drain_outbox();
        if self.outbox.borrow().len() > self.settings.max_queue {
            // The command just queued is the last one: it does not fit.
            let max = self.settings.max_queue;
            let rejected = self.outbox.borrow_mut().pop_back();
            if let Some(q) = rejected {
                q.waiter.reject(&js::error(
                    client_code::QUEUE_FULL,
                    &format!("{max} commands are waiting to be sent already (maxQueue)"),
                ));
            }
        }
        self.pump();
        p
    }

    /// A fire-and-forget command (typing, receipts): dropped unless connected.
    fn notify(self: &Rc<Self>, f: impl FnOnce(&mut ClientSession)) {
        if self.phase.get() == Phase::Connected {
            f(&mut self.session.borrow_mut());
            self.pump();
        }
    }
}

fn call_handler(h: &Function, v: &JsValue) {
    if let Err(e) = h.call1(&JsValue::UNDEFINED, v) {
        web_sys::console::error_2(&JsValue::from_str("garou: an event listener threw"), &e);
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
    settings: &Settings,
    sink: &Sink,
) -> Result<(Link, TransportKind, Option<String>), JsErrorInfo> {
    let disconnected = |message: String| JsErrorInfo::new("Disconnected", message);
    let invalid = |message: String| JsErrorInfo::new("InvalidArgument", message);
    let cert = wt::CertSource {
        url: settings.cert_hash_url.clone(),
        pin: settings.cert_hash.clone(),
    };
    let wt_error = |e: wt::WtError| {
        if e.mismatch {
            JsErrorInfo::new(client_code::CERTIFICATE_MISMATCH, e.message)
        } else {
            disconnected(e.message)
        }
    };
    let websocket = |fallback: Option<String>| async move {
        let url = wire::ws_url(origin).map_err(invalid)?;
        let link = ws::connect(&url, sink, WEBSOCKET_OPEN_MS)
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
                return Err(JsErrorInfo::new("Unsupported", no_webtransport));
            }
            // Forced: no time budget beyond the browser's own handshake timeout.
            let link = wt::connect(origin, &cert, sink, 30_000).await.map_err(wt_error)?;
            Ok((Link::WebTransport(link), TransportKind::WebTransport, None))
        }
        TransportChoice::Auto => {
            let reason = if js::has_webtransport() {
                match wt::connect(origin, &cert, sink, WEBTRANSPORT_BUDGET_MS).await {
                    Ok(link) => return Ok((Link::WebTransport(link), TransportKind::WebTransport, None)),
                    // A pinned certificate that does not match is not a reason to fall back.
                    Err(e) if e.mismatch => return Err(wt_error(e)),
                    Err(e) => e.message,
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
    let settings =
        Settings::from_options(&opts, js::location_origin()).map_err(|e| js::error("InvalidArgument", &e))?;
    for url in &settings.urls {
        wire::endpoint(url, "/").map_err(|e| js::error("InvalidArgument", &e))?;
    }
    let choice =
        TransportChoice::parse(opts.transport.as_deref()).map_err(|e| js::error("InvalidArgument", &e))?;
    let mut config = ClientConfig::with_nick("");
    config.credentials = opts.credentials(random_guest_nick);
    config.client_name = concat!("garou-wasm-client/", env!("CARGO_PKG_VERSION")).into();
    config.client_id_base = random_u64();
    config.request_timeout_ms = u64::from(settings.request_timeout_ms);

    // The resume token the previous page of this tab left for these gateways when it went
    // away: offered, it takes that page's lingering session (and nick) over at once. Taken
    // out, not copied, and only stored again when this page goes away, so a tab duplicated
    // from a live one (which copies sessionStorage) never takes the live one's session.
    let key = settings.resume_key();
    let stored = js::session_get(&key).unwrap_or_default();
    js::session_remove(&key);
    let inner = Inner::new(config, settings, choice);
    inner.resume.borrow_mut().token = ResumeToken::new(stored);
    let weak = Rc::downgrade(&inner);
    js::on_pagehide(move || {
        if let Some(inner) = weak.upgrade() {
            inner.leave_resume_token(&key);
        }
    });
    let (ready, waiter) = promise();
    *inner.ready.borrow_mut() = Some(waiter);
    spawn_local(inner.clone().run_attempt());
    JsFuture::from(ready).await?;
    Ok(GarouClient { inner }.into())
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

    /// The transport in use (of the last connection while reconnecting).
    #[wasm_bindgen(getter, unchecked_return_type = "TransportKind")]
    pub fn transport(&self) -> String {
        self.inner
            .transport
            .get()
            .unwrap_or(TransportKind::WebSocket)
            .as_str()
            .to_owned()
    }

    /// Where the client is: "connecting", "connected", "reconnecting" or "closed".
    #[wasm_bindgen(getter, unchecked_return_type = "ConnectionState")]
    pub fn state(&self) -> String {
        self.inner.phase.get().as_str().to_owned()
    }

    /// The gateway origin of the current (or last) connection.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.inner.url().to_owned()
    }

    /// Commands waiting to be sent (while disconnected, or paced).
    #[wasm_bindgen(getter)]
    pub fn queued(&self) -> u32 {
        self.inner.outbox.borrow().len() as u32
    }

    /// Our current nick (the last known one while reconnecting).
    #[wasm_bindgen(getter)]
    pub fn nick(&self) -> String {
        let s = self.inner.session.borrow();
        if s.is_ready() {
            s.nick().to_owned()
        } else {
            self.inner.last_nick.borrow().clone()
        }
    }

    /// This session's ticket for the gateway's HTTP uploads and downloads
    /// (`/api/uploads?ticket=`, `/api/uploads/{id}?ticket=`), valid while the connection
    /// lives (a reconnect brings a new one); empty until the server's welcome arrived.
    #[wasm_bindgen(getter)]
    pub fn ticket(&self) -> String {
        self.inner.session.borrow().ticket().to_owned()
    }

    /// Our user id.
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> f64 {
        let s = self.inner.session.borrow();
        if s.is_ready() {
            s.user() as f64
        } else {
            self.inner.last_user.get() as f64
        }
    }

    /// Add a listener: `on(listener)` for every event, `on(type, listener)` for one type.
    /// Events emitted before the first listener was added are delivered in a microtask
    /// to the listeners added by then.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, a: JsValue, b: Option<Function>) -> Result<(), JsValue> {
        let (ty, f) = listener_args(a, b)?;
        self.inner.add_listener(ty, f, false);
        Ok(())
    }

    /// Like `on`, for one call only.
    #[wasm_bindgen(skip_typescript)]
    pub fn once(&self, a: JsValue, b: Option<Function>) -> Result<(), JsValue> {
        let (ty, f) = listener_args(a, b)?;
        self.inner.add_listener(ty, f, true);
        Ok(())
    }

    /// Remove a listener added with `on` or `once`.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, a: JsValue, b: Option<Function>) -> Result<(), JsValue> {
        let (ty, f) = listener_args(a, b)?;
        self.inner.remove_listener(ty, &f);
        Ok(())
    }

    /// While waiting out a reconnect delay: attempt now (e.g. when the browser reports
    /// that it is online again). Does nothing in any other state.
    #[wasm_bindgen(js_name = reconnectNow)]
    pub fn reconnect_now(&self) {
        self.inner.reconnect_now();
    }

    /// Join a room (a group room that does not exist yet is created).
    #[wasm_bindgen(unchecked_return_type = "Promise<JoinInfo>")]
    pub fn join(&self, room: String) -> Promise {
        self.inner.request(move |s, now| Ok(s.join(&room, now)))
    }

    /// Create a room and join it as its owner.
    #[wasm_bindgen(js_name = createRoom, unchecked_return_type = "Promise<JoinInfo>")]
    pub fn create_room(
        &self,
        room: String,
        #[wasm_bindgen(unchecked_param_type = "\"group\" | \"channel\"")] kind: String,
    ) -> Promise {
        self.inner.request(move |s, now| {
            let kind = model::parse_create_kind(&kind)?;
            Ok(s.create_room(&room, kind, now))
        })
    }

    /// Leave a room.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn leave(&self, room: String) -> Promise {
        self.inner.request(move |s, now| Ok(s.leave(&room, now)))
    }

    /// Post a message, optionally with an attachment (the id of a completed upload of
    /// ours, e.g. from `POST /api/uploads`); resolves when the server acked it.
    #[wasm_bindgen(unchecked_return_type = "Promise<SentInfo>")]
    pub fn send(&self, room: String, text: String, attachment: Option<String>) -> Promise {
        let attachment = attachment.filter(|a| !a.is_empty());
        self.inner
            .request(move |s, now| Ok(s.send_with_attachment(&room, &text, attachment.as_deref(), now)))
    }

    /// Direct message to a user by nick; resolves with the direct room once acked.
    #[wasm_bindgen(unchecked_return_type = "Promise<SentInfo>")]
    pub fn direct(&self, #[wasm_bindgen(js_name = toNick)] to_nick: String, text: String) -> Promise {
        self.inner
            .request(move |s, now| Ok(s.direct(&to_nick, &text, now)))
    }

    /// Replace the text of a message.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn edit(&self, room: String, id: f64, text: String) -> Promise {
        self.inner
            .request(move |s, now| Ok(s.edit(&room, model::parse_id(id)?, &text, now)))
    }

    /// Delete a message.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn delete(&self, room: String, id: f64) -> Promise {
        self.inner
            .request(move |s, now| Ok(s.delete(&room, model::parse_id(id)?, now)))
    }

    /// Add (`add` true) or remove a reaction.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn react(&self, room: String, id: f64, emoji: String, add: bool) -> Promise {
        self.inner
            .request(move |s, now| Ok(s.react(&room, model::parse_id(id)?, &emoji, add, now)))
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
        self.inner.request(move |s, now| Ok(s.list_rooms(now)))
    }

    /// Members of a room.
    #[wasm_bindgen(js_name = listUsers, unchecked_return_type = "Promise<MemberInfo[]>")]
    pub fn list_users(&self, room: String) -> Promise {
        self.inner.request(move |s, now| Ok(s.list_users(&room, now)))
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
        self.inner.request(move |s, now| {
            let (before, after, limit) = opts?.parse()?;
            Ok(s.history(&room, before, after, limit, now))
        })
    }

    /// Moderate a member: `action` is "kick", "mute" (for `secs`, 0 = until unmuted),
    /// "unmute", "ban" or "unban"; the room sees a `member_moderated` event.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn moderate(&self, room: String, nick: String, action: String, secs: u32, reason: String) -> Promise {
        self.inner.request(move |s, now| {
            let action = model::parse_mod_action(&action)?;
            Ok(s.moderate(&room, &nick, action, secs, &reason, now))
        })
    }

    /// Add a user to a room as a member.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn invite(&self, room: String, nick: String) -> Promise {
        self.inner.request(move |s, now| Ok(s.invite(&room, &nick, now)))
    }

    /// Set a room's display title.
    #[wasm_bindgen(js_name = renameRoom, unchecked_return_type = "Promise<void>")]
    pub fn rename_room(&self, room: String, title: String) -> Promise {
        self.inner
            .request(move |s, now| Ok(s.rename_room(&room, &title, now)))
    }

    /// Delete a room and its history.
    #[wasm_bindgen(js_name = deleteRoom, unchecked_return_type = "Promise<void>")]
    pub fn delete_room(&self, room: String) -> Promise {
        self.inner.request(move |s, now| Ok(s.delete_room(&room, now)))
    }

    /// Change our nick; resolves with the nick the server accepted.
    #[wasm_bindgen(js_name = setNick, unchecked_return_type = "Promise<string>")]
    pub fn set_nick(&self, nick: String) -> Promise {
        self.inner.request(move |s, now| Ok(s.set_nick(&nick, now)))
    }

    /// Close the client for good: no reconnect. Requests in flight reject with
    /// `Disconnected`, queued commands with `Closed`; `disconnected` (if connected) and
    /// `closed` events follow.
    pub fn close(&self) {
        self.inner.shutdown(
            JsErrorInfo::new(client_code::CLOSED, "closed by the client"),
            true,
        );
    }
}

/// `(listener)` or `(type, listener)`.
fn listener_args(a: JsValue, b: Option<Function>) -> Result<(Option<String>, Function), JsValue> {
    match (a.dyn_into::<Function>(), b) {
        (Ok(f), None) => Ok((None, f)),
        (Err(t), Some(f)) => match t.as_string() {
            Some(t) => Ok((Some(t), f)),
            None => Err(js::error("InvalidArgument", "the event type must be a string")),
        },
        _ => Err(js::error(
            "InvalidArgument",
            "expected (listener) or (type, listener) with a function listener",
        )),
    }
}
