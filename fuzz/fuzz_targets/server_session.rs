//! The gateway's server-side session (handshake, control stream, client uni streams,
//! datagrams) and the real hub behind it, driven by hostile sequences of frames over the
//! in-memory transport.
//!
//! Input: a sequence of records `[op] [arg] [len] [len bytes]` (see [`Op`]): raw byte chunks
//! or structured messages (built by `arbitrary` from the record's bytes) on the control
//! stream or on one of a few client uni streams, opening and finishing uni streams,
//! datagrams, and yields that let the session run between writes. When the input ends every
//! stream is finished. Checked:
//! - no panic, in the session or any task it spawned (libFuzzer's hook aborts on any panic);
//! - everything the server sends decodes (control stream, lanes, datagrams);
//! - a bad frame (one the decoder or the payload decoder refuses) on the control stream, or
//!   on a uni stream once the handshake is done, closes the connection with a non-zero code;
//! - the session ends within a bound once the input has ended.
//!
//! One tokio current-thread runtime and one hub (SQLite in a temporary directory, on tmpfs
//! when there is one) serve every input of the process, so the hub's state carries over
//! between inputs like a long-running gateway's; names come from small pools so it stays small.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use garou_gateway::config::ServerConfig;
use garou_gateway::hub::{Hub, HubConfig};
use garou_gateway::store::sqlite::SqliteStore;
use garou_gateway::transport::mem::{MemConnection, MemRecv, MemSend, TryWriteError};
use garou_gateway::transport::{Connection, RecvStream};
use garou_protocol::*;
use libfuzzer_sys::fuzz_target;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Small frame cap so the too-large path is reachable (the smallest the config allows).
const MAX_FRAME: usize = 1024;
/// Client uni stream slots.
const UNI_SLOTS: usize = 4;
/// A session must end this soon after the input ended (or after a bad frame was read).
const END_BOUND: Duration = Duration::from_secs(5);
/// Times a write into a full stream queue yields to the session before giving up on the chunk.
const FULL_RETRIES: usize = 32;

struct Env {
    rt: tokio::runtime::Runtime,
    hub: Arc<Hub>,
    cfg: Arc<ServerConfig>,
    limits: Arc<garou_gateway::limits::Limits>,
    _dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let mut cfg = ServerConfig {
            data: dir.path().to_owned(),
            max_frame: MAX_FRAME,
            ..ServerConfig::default()
        };
        cfg.uploads.max_size = 64 * 1024;
        // Every input is a new connection from one address: no per-IP rate here.
        cfg.limits.connections_per_ip_per_sec = 1e9;
        cfg.limits.connections_per_ip_burst = u32::MAX;
        // Nor per-IP open connections, nor rates shared across inputs (every input signs
        // in again as one of a few nicks from one address: shared buckets would throttle
        // later inputs for what earlier ones did).
        cfg.limits.max_connections_per_ip = 0;
        cfg.limits.commands_per_sec_per_user = 1e9;
        cfg.limits.command_burst_per_user = u32::MAX;
        cfg.limits.commands_per_sec_per_ip = 1e9;
        cfg.limits.command_burst_per_ip = u32::MAX;
        cfg.validate().unwrap();
        let limits = garou_gateway::limits::Limits::new(&cfg);
        let hub = rt.block_on(async {
            let store = SqliteStore::open(dir.path()).await.unwrap();
            Hub::open(HubConfig::from(&cfg), Arc::new(store)).await.unwrap()
        });
        Env {
            rt,
            hub,
            cfg: Arc::new(cfg),
            limits,
            _dir: dir,
        }
    })
}

// ---- structured messages -------------------------------------------------------------

const NICKS: [&str; 4] = ["ann", "bob", "cy", "dee"];
const ROOMS: [&str; 4] = ["lobby", "dev", "#news", "dm:1:2"];

/// A name from a small pool (so rooms and users recur), or anything.
#[derive(Arbitrary, Debug)]
enum Name {
    Pool(u8),
    Raw(String),
}

impl Name {
    fn pick(self, pool: &[&str]) -> String {
        match self {
            Name::Pool(i) => pool[usize::from(i) % pool.len()].to_owned(),
            Name::Raw(s) => s,
        }
    }
    fn nick(self) -> String {
        self.pick(&NICKS)
    }
    fn room(self) -> String {
        self.pick(&ROOMS)
    }
}

fn pick<T: Copy>(i: u8, all: &[T]) -> T {
    all[usize::from(i) % all.len()]
}

fn room_kind(i: u8) -> RoomKind {
    pick(i, &[RoomKind::Group, RoomKind::Channel, RoomKind::Direct])
}

fn role(i: u8) -> Role {
    pick(
        i,
        &[
            Role::Guest,
            Role::Member,
            Role::Moderator,
            Role::Admin,
            Role::Owner,
        ],
    )
}

fn mod_action(i: u8) -> ModAction {
    pick(
        i,
        &[
            ModAction::Kick,
            ModAction::Mute,
            ModAction::Unmute,
            ModAction::Ban,
            ModAction::Unban,
        ],
    )
}

fn stream_kind(i: u8, room: Name) -> StreamKind {
    match i % 5 {
        0 => StreamKind::Commands,
        1 => StreamKind::Acks,
        2 => StreamKind::Upload,
        3 => StreamKind::Shard(u16::from(i)),
        _ => StreamKind::Hot(room.room()),
    }
}

/// Messages a client could send (and some it should not), with fields from fuzz data.
#[derive(Arbitrary, Debug)]
enum Msg {
    Hello {
        right_version: bool,
        client: String,
    },
    Auth {
        nick: Name,
        token: bool,
    },
    Ping(u64),
    Pong(u64),
    StreamHeader {
        kind: u8,
        room: Name,
    },
    SetNick {
        req: u32,
        nick: Name,
    },
    CreateRoom {
        req: u32,
        room: Name,
        kind: u8,
    },
    Join {
        req: u32,
        room: Name,
        since: Option<(u64, u64)>,
    },
    Leave {
        req: u32,
        room: Name,
    },
    Send {
        req: u32,
        room: Name,
        client_id: u64,
        text: String,
        attachment: Option<String>,
    },
    Edit {
        req: u32,
        room: Name,
        id: u64,
        text: String,
    },
    Delete {
        req: u32,
        room: Name,
        id: u64,
    },
    React {
        req: u32,
        room: Name,
        id: u64,
        emoji: String,
        add: bool,
    },
    DirectMessage {
        req: u32,
        to: Name,
        client_id: u64,
        text: String,
    },
    ListRooms {
        req: u32,
    },
    ListUsers {
        req: u32,
        room: Name,
    },
    SetRole {
        req: u32,
        room: Name,
        nick: Name,
        role: u8,
    },
    History {
        req: u32,
        room: Name,
        before: Option<u64>,
        after: Option<u64>,
        limit: u32,
    },
    Moderate {
        req: u32,
        room: Name,
        nick: Name,
        action: u8,
        secs: u32,
        reason: String,
    },
    Invite {
        req: u32,
        room: Name,
        nick: Name,
    },
    RenameRoom {
        req: u32,
        room: Name,
        title: String,
    },
    DeleteRoom {
        req: u32,
        room: Name,
    },
    Delivered {
        room: Name,
        id: u64,
    },
    Read {
        room: Name,
        id: u64,
    },
    UploadStart {
        req: u32,
        name: String,
        content_type: u8,
        size: u16,
        sha256: Vec<u8>,
    },
    UploadChunk {
        upload: String,
        offset: u16,
        data: Vec<u8>,
    },
    UploadComplete {
        req: u32,
        upload: String,
    },
    Typing {
        room: Name,
    },
    /// A frame of any type byte (server-only ones too) with an arbitrary payload.
    Other {
        ty: u8,
        payload: Vec<u8>,
    },
}

impl Msg {
    fn encode(self) -> Bytes {
        let m: Message = match self {
            Msg::Hello {
                right_version,
                client,
            } => Hello {
                version: if right_version {
                    PROTOCOL_VERSION
                } else {
                    PROTOCOL_VERSION + 1
                },
                client,
                resume: Default::default(),
            }
            .into(),
            Msg::Auth { nick, token } => {
                let nick = nick.nick();
                let credentials = if token {
                    Credentials::Token(nick)
                } else {
                    Credentials::Nick(nick)
                };
                Auth { credentials }.into()
            }
            Msg::Ping(nonce) => Ping { nonce }.into(),
            Msg::Pong(nonce) => Pong { nonce }.into(),
            Msg::StreamHeader { kind, room } => StreamHeader {
                kind: stream_kind(kind, room),
            }
            .into(),
            Msg::SetNick { req, nick } => SetNick {
                req,
                nick: nick.nick(),
            }
            .into(),
            Msg::CreateRoom { req, room, kind } => CreateRoom {
                req,
                room: room.room(),
                kind: room_kind(kind),
            }
            .into(),
            Msg::Join { req, room, since } => Join {
                req,
                room: room.room(),
                since: since.map(|(offset, epoch)| Since { offset, epoch }),
            }
            .into(),
            Msg::Leave { req, room } => Leave {
                req,
                room: room.room(),
            }
            .into(),
            Msg::Send {
                req,
                room,
                client_id,
                text,
                attachment,
            } => Send {
                req,
                room: room.room(),
                client_id,
                text,
                attachment,
            }
            .into(),
            Msg::Edit { req, room, id, text } => Edit {
                req,
                room: room.room(),
                id,
                text,
            }
            .into(),
            Msg::Delete { req, room, id } => Delete {
                req,
                room: room.room(),
                id,
            }
            .into(),
            Msg::React {
                req,
                room,
                id,
                emoji,
                add,
            } => React {
                req,
                room: room.room(),
                id,
                emoji,
                add,
            }
            .into(),
            Msg::DirectMessage {
                req,
                to,
                client_id,
                text,
            } => DirectMessage {
                req,
                to: to.nick(),
                client_id,
                text,
            }
            .into(),
            Msg::ListRooms { req } => ListRooms { req }.into(),
            Msg::ListUsers { req, room } => ListUsers {
                req,
                room: room.room(),
            }
            .into(),
            Msg::SetRole {
                req,
                room,
                nick,
                role: r,
            } => SetRole {
                req,
                room: room.room(),
                nick: nick.nick(),
                role: role(r),
            }
            .into(),
            Msg::History {
                req,
                room,
                before,
                after,
                limit,
            } => History {
                req,
                room: room.room(),
                before,
                after,
                limit,
            }
            .into(),
            Msg::Moderate {
                req,
                room,
                nick,
                action,
                secs,
                reason,
            } => Moderate {
                req,
                room: room.room(),
                nick: nick.nick(),
                action: mod_action(action),
                secs,
                reason,
            }
            .into(),
            Msg::Invite { req, room, nick } => Invite {
                req,
                room: room.room(),
                nick: nick.nick(),
            }
            .into(),
            Msg::RenameRoom { req, room, title } => RenameRoom {
                req,
                room: room.room(),
                title,
            }
            .into(),
            Msg::DeleteRoom { req, room } => DeleteRoom {
                req,
                room: room.room(),
            }
            .into(),
            Msg::Delivered { room, id } => Delivered {
                room: room.room(),
                id,
            }
            .into(),
            Msg::Read { room, id } => Read {
                room: room.room(),
                id,
            }
            .into(),
            Msg::UploadStart {
                req,
                name,
                content_type,
                size,
                sha256,
            } => UploadStart {
                req,
                name,
                content_type: pick(content_type, &["image/png", "text/plain", "application/x-evil"]).into(),
                size: u64::from(size),
                sha256,
            }
            .into(),
            Msg::UploadChunk { upload, offset, data } => UploadChunk {
                upload,
                offset: u64::from(offset),
                data,
            }
            .into(),
            Msg::UploadComplete { req, upload } => UploadComplete { req, upload }.into(),
            Msg::Typing { room } => Typing {
                room: room.room(),
                user: 0,
                nick: String::new(),
            }
            .into(),
            Msg::Other { ty, payload } => {
                let mut v = Frame::header(ty, payload.len()).to_vec();
                v.extend_from_slice(&payload);
                return v.into();
            }
        };
        m.encode()
    }

    fn from_bytes(data: &[u8]) -> Bytes {
        let mut u = Unstructured::new(data);
        match Msg::arbitrary(&mut u) {
            Ok(m) => m.encode(),
            Err(_) => Bytes::new(),
        }
    }
}

// ---- the input ----------------------------------------------------------------------

/// What one record does; `op % 8` selects it.
#[derive(Debug)]
enum Op {
    /// Raw bytes on the control stream.
    ControlRaw(Bytes),
    /// A structured message on the control stream.
    ControlMsg(Bytes),
    /// Raw bytes on uni stream slot `arg`.
    UniRaw(usize, Bytes),
    /// A structured message on uni stream slot `arg`.
    UniMsg(usize, Bytes),
    /// Open a uni stream in slot `arg` (finishing the one there, if any).
    Open(usize),
    /// Finish the uni stream in slot `arg`.
    Finish(usize),
    /// A datagram: raw bytes (even `arg`) or a structured message.
    Datagram(Bytes),
    /// Let the session run `arg % 8 + 1` times.
    Yield(u8),
}

fn parse(mut data: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    while let [op, arg, len, rest @ ..] = data {
        let len = usize::from(*len).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        data = rest;
        let slot = usize::from(*arg) % UNI_SLOTS;
        ops.push(match op % 8 {
            0 => Op::ControlRaw(Bytes::copy_from_slice(bytes)),
            1 => Op::ControlMsg(Msg::from_bytes(bytes)),
            2 => Op::UniRaw(slot, Bytes::copy_from_slice(bytes)),
            3 => Op::UniMsg(slot, Msg::from_bytes(bytes)),
            4 => Op::Open(slot),
            5 => Op::Finish(slot),
            6 if arg % 2 == 0 => Op::Datagram(Bytes::copy_from_slice(bytes)),
            6 => Op::Datagram(Msg::from_bytes(bytes)),
            _ => Op::Yield(*arg),
        });
    }
    ops
}

/// A client->server stream and every byte actually queued on it.
struct Written {
    send: MemSend,
    bytes: Vec<u8>,
}

impl Written {
    fn new(send: MemSend) -> Self {
        Written {
            send,
            bytes: Vec::new(),
        }
    }

    /// Queue `chunk`, yielding to the session while the queue is full; a chunk that still
    /// does not fit (the session is not reading this stream) is dropped.
    async fn write(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        for _ in 0..FULL_RETRIES {
            match self.send.try_write(chunk.clone()) {
                Ok(()) => return self.bytes.extend_from_slice(&chunk),
                Err(TryWriteError::Full) => tokio::task::yield_now().await,
                Err(TryWriteError::Gone) => return,
            }
        }
    }

    /// Whether the session must refuse these bytes: a frame the decoder or the payload
    /// decoder rejects, or a partial frame at the end.
    fn has_bad_frame(&self) -> bool {
        let mut dec = Decoder::new(MAX_FRAME);
        dec.push(&self.bytes);
        loop {
            match dec.next_frame() {
                Ok(Some(f)) if Message::decode(&f).is_ok() => {}
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) => return dec.finish().is_err(),
            }
        }
    }
}

/// What the client side saw from the server.
#[derive(Default)]
struct Seen {
    auth_ok: bool,
}

/// Read a server->client stream to its end, checking every frame decodes.
async fn drain(mut recv: MemRecv, seen: Option<Arc<Mutex<Seen>>>) {
    let mut dec = Decoder::new(DEFAULT_MAX_FRAME);
    while let Ok(Some(chunk)) = recv.read_chunk().await {
        dec.push(&chunk);
        while let Some(frame) = dec.next_frame().expect("server sent a bad frame") {
            let msg = Message::decode(&frame).expect("server sent a bad payload");
            if let (Message::AuthOk(_), Some(seen)) = (&msg, &seen) {
                seen.lock().auth_ok = true;
            }
        }
    }
}

async fn run_one(env: &Env, ops: Vec<Op>) {
    let (server, client) = MemConnection::pair();
    let client = Arc::new(client);
    let session = tokio::spawn(garou_gateway::session::run(
        server,
        env.hub.clone(),
        env.cfg.clone(),
        CancellationToken::new(),
        env.limits
            .admit(std::net::Ipv4Addr::LOCALHOST.into())
            .expect("admitted"),
    ));
    let (send, recv) = client.open_bi().await.expect("control stream opens");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut readers = tokio::task::JoinSet::new();
    readers.spawn(drain(recv, Some(seen.clone())));
    {
        // Server lanes and datagrams, read until the connection closes.
        let client = client.clone();
        readers.spawn(async move {
            let mut lanes = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    lane = client.accept_uni() => match lane {
                        Ok(lane) => { lanes.spawn(drain(lane, None)); }
                        Err(_) => break,
                    },
                    d = client.read_datagram() => match d {
                        Ok(d) => { Message::decode_datagram(&d, DEFAULT_MAX_FRAME).expect("server sent a bad datagram"); }
                        Err(_) => break,
                    },
                }
            }
            while lanes.join_next().await.is_some() {}
        });
    }

    let mut control = Written::new(send);
    let mut slots: Vec<Option<Written>> = (0..UNI_SLOTS).map(|_| None).collect();
    let mut uni_done: Vec<Written> = Vec::new();
    for op in ops {
        match op {
            Op::ControlRaw(b) | Op::ControlMsg(b) => control.write(b).await,
            Op::UniRaw(slot, b) | Op::UniMsg(slot, b) => {
                if let Some(w) = &mut slots[slot] {
                    w.write(b).await;
                }
            }
            Op::Open(slot) => {
                if let Some(mut old) = slots[slot].take() {
                    old.send.finish();
                    uni_done.push(old);
                }
                slots[slot] = client.try_open_uni().map(Written::new);
            }
            Op::Finish(slot) => {
                if let Some(mut w) = slots[slot].take() {
                    w.send.finish();
                    uni_done.push(w);
                }
            }
            Op::Datagram(b) => {
                client.send_datagram(b);
            }
            Op::Yield(n) => {
                for _ in 0..=n % 8 {
                    tokio::task::yield_now().await;
                }
            }
        }
        tokio::task::yield_now().await;
    }

    // The input is over: finish the uni streams, then the control stream.
    for mut w in slots.into_iter().flatten() {
        w.send.finish();
        uni_done.push(w);
    }
    let bad_control = control.has_bad_frame();
    let bad_uni = uni_done.iter().any(Written::has_bad_frame);
    tokio::task::yield_now().await;
    if bad_uni && seen.lock().auth_ok {
        // Authenticated, so every uni stream gets read: the bad frame must close the
        // session, with the control stream still open.
        if tokio::time::timeout(END_BOUND, client.closed()).await.is_err() {
            panic!("a bad frame on a uni stream did not close the session");
        }
        let info = client.close_info().expect("closed");
        assert_ne!(
            info.code, 0,
            "session with a bad uni frame closed without an error: {info:?}"
        );
    }
    control.send.finish();
    match tokio::time::timeout(END_BOUND, session).await {
        Ok(joined) => joined.expect("session task"),
        Err(_) => panic!("session did not end within {END_BOUND:?} of the input's end"),
    }
    if bad_control {
        let info = client.close_info();
        assert!(
            info.as_ref().is_some_and(|i| i.code != 0 && !i.local),
            "session with a bad control frame not closed with an error: {info:?}"
        );
    }
    client.close(0, "done");
    let drained = async { while readers.join_next().await.is_some() {} };
    if tokio::time::timeout(END_BOUND, drained).await.is_err() {
        panic!("server streams did not end after the connection closed");
    }
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let ops = parse(data);
    env.rt.block_on(run_one(env, ops));
});
