//! Uploads end to end against a real gateway: the bulk-upload stream over raw QUIC
//! (interrupted and resumed), limits, attachments carried to another client, and
//! ticket-checked downloads and browser uploads over HTTP.
//!
//! The uploading side speaks the protocol itself over a raw QUIC connection (`Raw` below):
//! the native client's `ClientSession` has no upload requests yet.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use garou_gateway::server::Gateway;
use garou_protocol::{
    Auth, Credentials, Decoder, ErrorCode, Hello, Join, Message, Send, StreamHeader, StreamKind, UploadChunk,
    UploadComplete, UploadStart, UserId, PROTOCOL_VERSION,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const CHUNK: usize = 256 * 1024;

// ------------------------------------------------------------------ a raw QUIC session

/// One session spoken by hand: control stream, commands stream, upload streams.
struct Raw {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    _control: quinn::SendStream,
    commands: quinn::SendStream,
    /// Decoded control stream messages.
    inbox: mpsc::Receiver<Message>,
    /// Error frames not tied to a request (refused chunks), in arrival order.
    stray: Vec<garou_protocol::Error>,
    user: UserId,
    ticket: String,
    next_req: u32,
}

async fn read_control(mut recv: quinn::RecvStream, tx: mpsc::Sender<Message>) {
    let mut dec = Decoder::default();
    while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await {
        dec.push(&chunk.bytes);
        while let Ok(Some(frame)) = dec.next_frame() {
            let msg = Message::decode(&frame).expect("the gateway sends valid frames");
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}

/// Read and discard what the server sends on its own streams (room events).
async fn drain_server_streams(conn: quinn::Connection) {
    while let Ok(mut recv) = conn.accept_uni().await {
        tokio::spawn(async move { while let Ok(Some(_)) = recv.read_chunk(usize::MAX, true).await {} });
    }
}

impl Raw {
    async fn connect(gw: &Gateway, nick: &str) -> Raw {
        Raw::connect_with(gw, nick, Credentials::Nick(nick.into())).await
    }

    async fn connect_with(gw: &Gateway, nick: &str, credentials: Credentials) -> Raw {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = tokio::time::timeout(
            WAIT,
            endpoint
                .connect_with(raw::quic_config(gw, None), gw.quic_addr, "localhost")
                .unwrap(),
        )
        .await
        .expect("QUIC handshake in time")
        .expect("QUIC handshake");
        let (mut control, recv) = conn.open_bi().await.unwrap();
        let (tx, inbox) = mpsc::channel(256);
        tokio::spawn(read_control(recv, tx));
        tokio::spawn(drain_server_streams(conn.clone()));
        let hello = Hello {
            version: PROTOCOL_VERSION,
            client: "uploads-test".into(),
            resume: Default::default(),
        };
        control.write_all(&Message::from(hello).encode()).await.unwrap();
        let mut raw = Raw {
            endpoint,
            conn: conn.clone(),
            _control: control,
            commands: conn.open_uni().await.unwrap(),
            inbox,
            stray: Vec::new(),
            user: 0,
            ticket: String::new(),
            next_req: 1,
        };
        assert!(matches!(raw.next().await, Message::HelloAck(_)));
        let auth = Auth { credentials };
        raw._control
            .write_all(&Message::from(auth).encode())
            .await
            .unwrap();
        loop {
            match raw.next().await {
                Message::AuthOk(ok) => raw.user = ok.user,
                Message::Welcome(w) => {
                    raw.ticket = w.ticket;
                    break;
                }
                Message::ShardAssignment(_) => {}
                other => panic!("{nick}: unexpected {other:?} during the handshake"),
            }
        }
        assert_eq!(raw.ticket.len(), 32, "a 128-bit ticket in hex");
        let header = Message::from(StreamHeader {
            kind: StreamKind::Commands,
        });
        raw.commands.write_all(&header.encode()).await.unwrap();
        raw
    }

    /// The next control stream message (bounded).
    async fn next(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("a control message in time")
            .expect("control stream open")
    }

    /// Send a command built for a fresh request id; its reply (or error reply).
    async fn request(&mut self, make: impl FnOnce(u32) -> Message) -> Message {
        let req = self.next_req;
        self.next_req += 1;
        self.commands.write_all(&make(req).encode()).await.unwrap();
        loop {
            match self.next().await {
                m if m.reply_to() == Some(req) => return m,
                Message::Error(e) if e.req.is_none() => self.stray.push(e),
                _ => {}
            }
        }
    }

    /// The next Error frame not tied to a request.
    async fn stray_error(&mut self) -> garou_protocol::Error {
        if !self.stray.is_empty() {
            return self.stray.remove(0);
        }
        loop {
            if let Message::Error(e) = self.next().await {
                if e.req.is_none() {
                    return e;
                }
            }
        }
    }

    async fn join(&mut self, room: &str) {
        let reply = self
            .request(|req| {
                Join {
                    req,
                    room: room.into(),
                    since: None,
                }
                .into()
            })
            .await;
        assert!(matches!(reply, Message::Joined(_)), "join {room}: {reply:?}");
    }

    async fn start(&mut self, name: &str, content_type: &str, data: &[u8]) -> Message {
        let (name, content_type) = (name.to_owned(), content_type.to_owned());
        let (size, sha256) = (data.len() as u64, Sha256::digest(data).to_vec());
        self.request(|req| {
            UploadStart {
                req,
                name,
                content_type,
                size,
                sha256,
            }
            .into()
        })
        .await
    }

    /// UploadStart that must be accepted: (upload id, offset to continue from).
    async fn start_ok(&mut self, name: &str, content_type: &str, data: &[u8]) -> (String, u64) {
        match self.start(name, content_type, data).await {
            Message::UploadReady(r) => (r.upload, r.offset),
            other => panic!("UploadStart refused: {other:?}"),
        }
    }

    async fn complete(&mut self, upload: &str) -> Message {
        let upload = upload.to_owned();
        self.request(|req| UploadComplete { req, upload }.into()).await
    }

    /// A new upload stream, its header written.
    async fn upload_stream(&self) -> quinn::SendStream {
        let mut s = self.conn.open_uni().await.unwrap();
        let header = Message::from(StreamHeader {
            kind: StreamKind::Upload,
        });
        s.write_all(&header.encode()).await.unwrap();
        s
    }

    async fn send(&mut self, room: &str, text: &str, attachment: Option<&str>) -> Message {
        let (room, text, attachment) = (room.to_owned(), text.to_owned(), attachment.map(str::to_owned));
        let client_id = u64::from(self.next_req);
        self.request(|req| {
            Send {
                req,
                room,
                client_id,
                text,
                attachment,
            }
            .into()
        })
        .await
    }

    /// Upload `data` in one go; its id.
    async fn upload(&mut self, name: &str, content_type: &str, data: &[u8]) -> String {
        let (id, offset) = self.start_ok(name, content_type, data).await;
        let mut stream = self.upload_stream().await;
        send_chunks(&mut stream, &id, data, offset as usize).await;
        match self.complete(&id).await {
            Message::UploadDone(d) => assert_eq!(d.url, format!("/api/uploads/{id}")),
            other => panic!("UploadComplete refused: {other:?}"),
        }
        id
    }

    /// Vanish: close the connection now, whatever is in flight.
    fn drop_connection(self) {
        self.conn.close(0u32.into(), b"gone");
        drop(self.endpoint);
    }
}

async fn chunk(stream: &mut quinn::SendStream, upload: &str, offset: usize, data: &[u8]) {
    let c = UploadChunk {
        upload: upload.into(),
        offset: offset as u64,
        data: data.to_vec(),
    };
    stream.write_all(&Message::from(c).encode()).await.unwrap();
}

/// Send `data[from..]` in chunks of at most `CHUNK` bytes.
async fn send_chunks(stream: &mut quinn::SendStream, upload: &str, data: &[u8], from: usize) {
    let mut offset = from;
    while offset < data.len() {
        let end = (offset + CHUNK).min(data.len());
        chunk(stream, upload, offset, &data[offset..end]).await;
        offset = end;
    }
}

/// Deterministic bytes that do not compress or repeat.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn refused(reply: Message) -> (ErrorCode, String) {
    match reply {
        Message::Error(e) => (e.code, e.message),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// Wait (bounded) until the gateway counts `n` connections: a dropped session must be gone
/// before its nick can log in again.
async fn connections(gw: &Gateway, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.hub.connection_count() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway still counts {} connections, want {n}",
            gw.hub.connection_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ------------------------------------------------------------------ HTTP/1.1 by hand

struct HttpResponse {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// One request on a fresh connection (`Connection: close`); `chunked` sends the body with
/// chunked transfer encoding instead of a Content-Length.
async fn http(
    gw: &Gateway,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> HttpResponse {
    let mut tcp = tokio::net::TcpStream::connect(gw.http_addr).await.unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut out = Vec::new();
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        out.extend_from_slice(head.as_bytes());
        for part in body.chunks(8192) {
            out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(body);
    }
    // The server may answer (and close) before reading a refused body.
    let _ = tcp.write_all(&out).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("HTTP response in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|t| t == "chunked") {
        let (mut plain, mut rest) = (Vec::new(), &body[..]);
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
            if len == 0 {
                break;
            }
            plain.extend_from_slice(&rest[eol + 2..eol + 2 + len]);
            rest = &rest[eol + 2 + len + 2..];
        }
        body = plain;
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

async fn download(gw: &Gateway, id: &str, ticket: &str) -> HttpResponse {
    http(
        gw,
        "GET",
        &format!("/api/uploads/{id}?ticket={ticket}"),
        &[],
        b"",
        false,
    )
    .await
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn an_interrupted_upload_resumes_from_the_servers_offset_and_reaches_another_client() {
    let gw = gateway(|_| {}).await;
    let (bob, mut bob_events) = client(&gw, "bob").await;
    bob.join("pics").await.unwrap();

    let data = bytes(5 * CHUNK + 1000, 7);
    let mut alice = Raw::connect(&gw, "alice").await;
    alice.join("pics").await;
    let (id, offset) = alice.start_ok("photo.png", "image/png", &data).await;
    assert_eq!((id.len(), offset), (32, 0));

    // Half the chunks, then one at a stale offset: its refusal (an Error frame, not a
    // close) proves the server has written everything before it.
    let mut stream = alice.upload_stream().await;
    let half = 3 * CHUNK;
    send_chunks(&mut stream, &id, &data[..half], 0).await;
    chunk(&mut stream, &id, 0, b"x").await;
    let e = alice.stray_error().await;
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(
        e.message.contains(&format!("expected offset {half}")),
        "{}",
        e.message
    );
    let (old_ticket, user) = (alice.ticket.clone(), alice.user);
    alice.drop_connection();
    connections(&gw, 1).await;

    // A new connection: the same file resumes where the server's copy ends.
    let mut alice = Raw::connect(&gw, "alice").await;
    assert_eq!(alice.user, user, "the same user again");
    assert_ne!(alice.ticket, old_ticket, "a ticket per session");
    let (again, offset) = alice.start_ok("photo.png", "image/png", &data).await;
    assert_eq!((again.as_str(), offset), (id.as_str(), half as u64));
    let mut stream = alice.upload_stream().await;
    send_chunks(&mut stream, &id, &data, half).await;
    match alice.complete(&id).await {
        Message::UploadDone(d) => assert_eq!(
            (d.upload.as_str(), d.url),
            (id.as_str(), format!("/api/uploads/{id}"))
        ),
        other => panic!("UploadComplete refused: {other:?}"),
    }
    // Starting the same file again is answered with UploadDone at once.
    assert!(
        matches!(alice.start("photo.png", "image/png", &data).await, Message::UploadDone(d) if d.upload == id)
    );

    // A message referencing it carries it to another client.
    let reply = alice.send("pics", "look at this", Some(&id)).await;
    assert!(matches!(reply, Message::MessageAck(_)), "{reply:?}");
    let got = wait_for(
        &mut bob_events,
        "the message with its attachment",
        |ev| match room_event(ev) {
            Some((Message::RoomMessage(m), _)) if m.text == "look at this" => Some(m.attachment.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(got.as_deref(), Some(id.as_str()));

    // The download is the very file.
    let r = download(&gw, &id, &alice.ticket).await;
    assert_eq!(r.status, 200);
    assert_eq!(Sha256::digest(&r.body), Sha256::digest(&data));
    assert_eq!(r.headers["content-type"], "image/png");
    assert_eq!(r.headers["content-length"], data.len().to_string());
    assert!(r.headers["content-disposition"].starts_with("inline; filename=\"photo.png\""));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    // The dropped session's ticket died with it.
    assert_eq!(download(&gw, &id, &old_ticket).await.status, 401);
    gw.shutdown().await;
}

#[tokio::test]
async fn limits_and_bad_chunks_are_refused_without_closing_the_session() {
    let gw = gateway(|c| {
        c.uploads.max_size = 64 * 1024;
        c.uploads.content_types = vec!["image/".into()];
    })
    .await;
    let mut alice = Raw::connect(&gw, "alice").await;
    let data = bytes(1000, 3);

    let too_big = bytes(64 * 1024 + 1, 1);
    assert_eq!(
        refused(alice.start("big.png", "image/png", &too_big).await).0,
        ErrorCode::LimitReached
    );
    let (code, why) = refused(alice.start("notes.txt", "text/plain", &data).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(why.contains("content type"), "{why}");
    for name in ["", "../x.png", "a/b.png", "a\\b.png", "..", &"n".repeat(256)] {
        let (code, why) = refused(alice.start(name, "image/png", &data).await);
        assert_eq!(code, ErrorCode::InvalidArgument, "{name:?}");
        assert!(why.contains("file name"), "{why}");
    }
    let short_hash = alice
        .request(|req| {
            UploadStart {
                req,
                name: "x.png".into(),
                content_type: "image/png".into(),
                size: 10,
                sha256: vec![0; 31],
            }
            .into()
        })
        .await;
    assert!(refused(short_hash).1.contains("32 bytes"));
    // 255 characters and an upper-case type with parameters are fine.
    alice.start_ok(&"é".repeat(255), "IMAGE/PNG; q=1", &data).await;

    // Chunks: too large, beyond the declared size, at the wrong offset.
    let (id, _) = alice.start_ok("ok.png", "image/png", &data).await;
    let mut stream = alice.upload_stream().await;
    chunk(&mut stream, &id, 0, &vec![0; CHUNK + 1]).await;
    assert!(alice.stray_error().await.message.contains("at most"));
    chunk(&mut stream, &id, 0, &[0; 1001]).await;
    assert!(alice
        .stray_error()
        .await
        .message
        .contains("beyond the declared size"));
    chunk(&mut stream, &id, 5, &data[5..]).await;
    assert!(alice.stray_error().await.message.contains("expected offset 0"));
    // Incomplete, then wrong bytes: the hash check refuses and discards them.
    chunk(&mut stream, &id, 0, &data[..10]).await;
    let (code, why) = refused(alice.complete(&id).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(why.contains("10 of 1000 bytes"), "{why}");
    let mut wrong = data.clone();
    wrong[500] ^= 1;
    chunk(&mut stream, &id, 10, &wrong[10..]).await;
    // The stream is ordered: once a later chunk is refused, the one before was written.
    chunk(&mut stream, &id, 0, b"!").await;
    assert!(alice.stray_error().await.message.contains("expected offset 1000"));
    assert_eq!(refused(alice.complete(&id).await).1, "sha256 mismatch");
    // A retry starts over.
    let (again, offset) = alice.start_ok("ok.png", "image/png", &data).await;
    assert_eq!((again.as_str(), offset), (id.as_str(), 0));
    send_chunks(&mut stream, &id, &data, 0).await;
    assert!(matches!(alice.complete(&id).await, Message::UploadDone(_)));
    chunk(&mut stream, &id, 1000, b"more").await;
    assert!(alice.stray_error().await.message.contains("is complete"));

    // Only the owner writes, completes or attaches.
    let mut mallory = Raw::connect(&gw, "mallory").await;
    let (mid, _) = alice.start_ok("other.png", "image/png", &data).await;
    let mut theirs = mallory.upload_stream().await;
    chunk(&mut theirs, &mid, 0, &data).await;
    assert_eq!(mallory.stray_error().await.code, ErrorCode::Forbidden);
    assert_eq!(refused(mallory.complete(&mid).await).0, ErrorCode::Forbidden);
    assert_eq!(
        refused(mallory.complete("../../etc/passwd").await).0,
        ErrorCode::InvalidArgument
    );

    // Through all of this the sessions stayed up.
    alice.join("still-here").await;
    mallory.join("still-here").await;
    assert_eq!(gw.hub.connection_count(), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn attachments_must_be_complete_uploads_of_the_sender_and_downloads_need_a_members_ticket() {
    let gw = gateway(|_| {}).await;
    let mut alice = Raw::connect(&gw, "alice").await;
    let mut dave = Raw::connect(&gw, "dave").await;
    let mut carol = Raw::connect(&gw, "carol").await;
    alice.join("club").await;
    alice.join("elsewhere").await;
    dave.join("club").await;
    let data = bytes(3000, 11);
    let id = alice.upload("cat.gif", "image/gif", &data).await;

    // Not shared yet: only the owner may download it.
    assert_eq!(download(&gw, &id, &alice.ticket).await.status, 200);
    assert_eq!(download(&gw, &id, &dave.ticket).await.status, 403);

    // Refused attachments: never acked, nothing published.
    let (partial, _) = alice.start_ok("half.gif", "image/gif", &bytes(10, 1)).await;
    let (code, why) = refused(alice.send("club", "x", Some(&partial)).await);
    assert!(
        code == ErrorCode::InvalidArgument && why.contains("not complete"),
        "{why}"
    );
    let (code, _) = refused(
        alice
            .send("club", "x", Some("0123456789abcdef0123456789abcdef"))
            .await,
    );
    assert_eq!(code, ErrorCode::InvalidArgument);
    let (code, _) = refused(alice.send("club", "x", Some("../../secret")).await);
    assert_eq!(code, ErrorCode::InvalidArgument);
    let (code, _) = refused(dave.send("club", "mine now", Some(&id)).await);
    assert_eq!(code, ErrorCode::Forbidden);

    assert!(matches!(
        alice.send("club", "a cat", Some(&id)).await,
        Message::MessageAck(_)
    ));
    assert!(matches!(
        alice.send("club", "again", Some(&id)).await,
        Message::MessageAck(_)
    ));
    let (code, why) = refused(alice.send("elsewhere", "a cat", Some(&id)).await);
    assert!(
        code == ErrorCode::InvalidArgument && why.contains("another room"),
        "{why}"
    );

    let ok = download(&gw, &id, &dave.ticket).await;
    assert_eq!(ok.status, 200, "a member of the room");
    assert_eq!(ok.body, data);
    assert_eq!(
        download(&gw, &id, &carol.ticket).await.status,
        403,
        "not a member"
    );
    assert_eq!(
        download(&gw, &id, &"0".repeat(32)).await.status,
        401,
        "no such ticket"
    );
    let none = http(&gw, "GET", &format!("/api/uploads/{id}"), &[], b"", false).await;
    assert_eq!(none.status, 401, "no ticket");
    // The ticket may travel in the Authorization header instead (it wins over the query).
    let bearer = format!("Bearer {}", dave.ticket);
    let target = format!("/api/uploads/{id}?ticket={}", carol.ticket);
    let r = http(&gw, "GET", &target, &[("Authorization", &bearer)], b"", false).await;
    assert_eq!((r.status, r.body == data), (200, true));
    assert_eq!(download(&gw, &"a".repeat(32), &alice.ticket).await.status, 404);
    assert_eq!(
        download(&gw, "..%2F..%2Fstore.db", &alice.ticket).await.status,
        404
    );
    assert_eq!(
        download(&gw, &partial, &alice.ticket).await.status,
        404,
        "not complete"
    );

    // Joining the room opens it to carol too.
    carol.join("club").await;
    assert_eq!(download(&gw, &id, &carol.ticket).await.status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn browsers_upload_over_http_with_their_ticket() {
    let data_dir = tempfile::tempdir().unwrap();
    let gw = gateway(|c| {
        c.data = data_dir.path().to_owned();
        c.uploads.max_size = 100_000;
        c.uploads.content_types = vec!["image/".into()];
    })
    .await;
    let mut alice = Raw::connect(&gw, "alice").await;
    let data = bytes(80_000, 5);
    let post = |ticket: String, ct: &'static str, body: Vec<u8>, chunked: bool| {
        let gw = &gw;
        async move {
            let target = format!("/api/uploads?ticket={ticket}&name=sn%C3%A4p%20%221%22.png");
            http(gw, "POST", &target, &[("Content-Type", ct)], &body, chunked).await
        }
    };

    let r = post(alice.ticket.clone(), "image/png", data.clone(), false).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let id = json["id"].as_str().unwrap().to_owned();
    assert_eq!(json["url"], format!("/api/uploads/{id}"));
    // The same file again is the same upload; streamed without a length it is fine too.
    let r = post(alice.ticket.clone(), "image/png", data.clone(), true).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"],
        id
    );

    let got = download(&gw, &id, &alice.ticket).await;
    assert_eq!((got.status, got.body == data), (200, true));
    assert_eq!(
        got.headers["content-disposition"],
        "inline; filename=\"sn_p _1_.png\"; filename*=UTF-8''sn%C3%A4p%20%221%22.png"
    );
    // It can be attached like any other upload.
    alice.join("pics").await;
    assert!(matches!(
        alice.send("pics", "snap", Some(&id)).await,
        Message::MessageAck(_)
    ));

    let too_big = bytes(100_001, 6);
    assert_eq!(
        post(alice.ticket.clone(), "image/png", too_big.clone(), false)
            .await
            .status,
        413
    );
    assert_eq!(
        post(alice.ticket.clone(), "image/png", too_big, true)
            .await
            .status,
        413
    );
    assert_eq!(
        post(alice.ticket.clone(), "text/html", data.clone(), false)
            .await
            .status,
        415
    );
    assert_eq!(
        post("nope".into(), "image/png", data.clone(), false).await.status,
        401
    );
    let bad_name = format!("/api/uploads?ticket={}&name=..%2Fx.png", alice.ticket);
    let r = http(
        &gw,
        "POST",
        &bad_name,
        &[("Content-Type", "image/png")],
        &data,
        false,
    )
    .await;
    assert_eq!(r.status, 400);
    // Nothing refused was left behind.
    let files: Vec<_> = std::fs::read_dir(data_dir.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, [std::ffi::OsString::from(&id)], "only the one upload");
    gw.shutdown().await;
}

// ------------------------------------------------------------------ who may store and read

const SECRET: &str = "uploads-secret";

fn token(sub: &str) -> Credentials {
    use garou_gateway::auth::{mint, now_secs, Claims};
    let claims = Claims {
        sub: sub.into(),
        name: None,
        exp: now_secs() + 600,
        nbf: None,
        rooms: HashMap::new(),
        aud: None,
        iss: None,
    };
    Credentials::Token(mint(SECRET, &claims).unwrap())
}

#[tokio::test]
async fn guests_neither_upload_nor_download_unless_allowed() {
    for allowed in [false, true] {
        let gw = gateway(|c| {
            c.auth.secret = Some(SECRET.into());
            c.auth.allow_guests = true;
            c.uploads.allow_guests = allowed;
        })
        .await;
        let mut owner = Raw::connect_with(&gw, "owner", token("owner")).await;
        owner.join("lobby").await;
        let data = bytes(5000, 21);
        let id = owner.upload("pic.png", "image/png", &data).await;
        assert!(matches!(
            owner.send("lobby", "look", Some(&id)).await,
            Message::MessageAck(_)
        ));
        // A nick on a token gateway that allows guests: an anonymous guest.
        let mut guest = Raw::connect(&gw, "visitor").await;
        guest.join("lobby").await;
        let started = guest.start("mine.png", "image/png", &bytes(100, 22)).await;
        let target = format!("/api/uploads?ticket={}&name=mine.png", guest.ticket);
        let posted = http(
            &gw,
            "POST",
            &target,
            &[("Content-Type", "image/png")],
            &data,
            false,
        )
        .await;
        let got = download(&gw, &id, &guest.ticket).await;
        if allowed {
            assert!(matches!(started, Message::UploadReady(_)), "{started:?}");
            assert_eq!((posted.status, got.status), (201, 200));
        } else {
            let (code, why) = refused(started);
            assert_eq!(code, ErrorCode::Forbidden, "{why}");
            assert!(why.contains("guests"), "{why}");
            assert_eq!(posted.status, 403);
            assert_eq!(got.status, 403, "a guest member downloads");
        }
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn quotas_rates_and_the_disk_budget_hold_on_both_paths() {
    let gw = gateway(|c| {
        c.uploads.max_size = 100_000;
        c.uploads.quota_bytes_per_user = 200_000;
        c.uploads.max_total_bytes = 300_000;
        c.uploads.uploads_per_window = 3;
        c.uploads.rate_window_secs = 3600;
    })
    .await;
    let post = |ticket: String, body: Vec<u8>| {
        let gw = &gw;
        async move {
            let target = format!("/api/uploads?ticket={ticket}&name=f.png");
            http(
                gw,
                "POST",
                &target,
                &[("Content-Type", "image/png")],
                &body,
                false,
            )
            .await
        }
    };
    let text = |r: &HttpResponse| String::from_utf8_lossy(&r.body).into_owned();

    // Quota: alice has 200 kB.
    let mut alice = Raw::connect(&gw, "alice").await;
    alice.upload("a.png", "image/png", &bytes(80_000, 1)).await;
    alice.start_ok("b.png", "image/png", &bytes(80_000, 2)).await; // reserved, unfinished
    let (code, why) = refused(alice.start("c.png", "image/png", &bytes(80_000, 3)).await);
    assert_eq!(code, ErrorCode::LimitReached, "{why}");
    assert!(why.contains("quota"), "{why}");
    let r = post(alice.ticket.clone(), bytes(80_000, 3)).await;
    assert_eq!(r.status, 413, "{}", text(&r));
    assert!(text(&r).contains("quota"), "{}", text(&r));
    // A refused upload reserved nothing: 30 kB more still fit.
    alice.start_ok("d.png", "image/png", &bytes(30_000, 4)).await;

    // The disk budget: 300 kB for everybody (alice holds 190 kB).
    let mut bob = Raw::connect(&gw, "bob").await;
    let r = post(bob.ticket.clone(), bytes(80_000, 5)).await;
    assert_eq!(r.status, 201, "{}", text(&r));
    let (code, why) = refused(bob.start("e.png", "image/png", &bytes(40_000, 6)).await);
    assert_eq!(code, ErrorCode::LimitReached, "{why}");
    assert!(why.contains("storage is full"), "{why}");
    let r = post(bob.ticket.clone(), bytes(40_000, 6)).await;
    assert_eq!(r.status, 507, "{}", text(&r));
    assert!(text(&r).contains("storage is full"), "{}", text(&r));

    // The rate: 3 new uploads per window; resuming one is not a new one.
    let mut carol = Raw::connect(&gw, "carol").await;
    let first = bytes(1000, 7);
    let (id, _) = carol.start_ok("1.png", "image/png", &first).await;
    carol.start_ok("2.png", "image/png", &bytes(1000, 8)).await;
    carol.start_ok("3.png", "image/png", &bytes(1000, 9)).await;
    let (code, why) = refused(carol.start("4.png", "image/png", &bytes(1000, 10)).await);
    assert_eq!(code, ErrorCode::RateLimited, "{why}");
    assert_eq!(post(carol.ticket.clone(), bytes(1000, 10)).await.status, 429);
    assert_eq!(
        carol.start_ok("1.png", "image/png", &first).await.0,
        id,
        "a resume"
    );
    gw.shutdown().await;
}
