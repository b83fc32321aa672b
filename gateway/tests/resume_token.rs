//! Resume tokens on a real gateway (loopback QUIC): a client whose connection vanished
//! (no close; its session lingers until the idle timeout) comes back with the resume token
//! of its Welcome and takes its stale session, and so its nick, over at once; the stale
//! session is closed with `SessionReplaced`. Without a valid token of the same user the
//! nick stays refused, as before.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::raw::{self, Raw};
use common::{gateway, Target, WAIT};
use garou_protocol::*;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A UDP relay in front of the gateway, for one client: cutting it stops every packet
/// both ways, as a client that lost its network (or crashed) would, without any close.
struct Relay {
    addr: SocketAddr,
    cert: [u8; 32],
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(gw: &impl Target) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        back.connect(gw.quic_addr()).await.unwrap();
        let addr = front.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut up, mut down) = ([0u8; 2048], [0u8; 2048]);
            let mut client = None;
            loop {
                tokio::select! {
                    r = front.recv_from(&mut up) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        let _ = back.send(&up[..n]).await;
                    }
                    r = back.recv(&mut down) => {
                        let (Ok(n), Some(to)) = (r, client) else { continue };
                        let _ = front.send_to(&down[..n], to).await;
                    }
                }
            }
        });
        Relay {
            addr,
            cert: gw.cert_sha256(),
            task,
        }
    }

    /// Drop every packet from now on (the sockets close with the task).
    fn cut(&self) {
        self.task.abort();
    }
}

impl Target for Relay {
    fn quic_addr(&self) -> SocketAddr {
        self.addr
    }
    fn cert_sha256(&self) -> [u8; 32] {
        self.cert
    }
}

/// A gateway whose sessions would linger for ten minutes after their client vanished.
async fn lingering() -> garou_gateway::server::Gateway {
    gateway(|c| c.idle_timeout_secs = 600).await
}

fn nick(n: &str) -> Credentials {
    Credentials::Nick(n.into())
}

/// Log in as `nick` offering `hello` (an encoded Hello frame) and return the user id, or
/// the AuthError code.
async fn attempt(gw: &impl Target, hello: Bytes, n: &str) -> Result<UserId, ErrorCode> {
    let ep = raw::endpoint();
    let conn = raw::connect(&ep, gw, None).await.expect("QUIC handshake");
    let (mut control, mut recv) = conn.open_bi().await.unwrap();
    control.write_all(&hello).await.unwrap();
    let auth = Message::from(Auth { credentials: nick(n) }).encode();
    control.write_all(&auth).await.unwrap();
    let mut dec = Decoder::default();
    loop {
        let chunk = tokio::time::timeout(WAIT, recv.read_chunk(4096, true))
            .await
            .expect("an answer in time")
            .expect("control stream")
            .expect("control stream open");
        dec.push(&chunk.bytes);
        while let Some(frame) = dec.next_frame().unwrap() {
            match Message::decode(&frame).unwrap() {
                Message::AuthOk(ok) => return Ok(ok.user),
                Message::AuthError(e) => return Err(e.code),
                Message::HelloAck(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn hello(resume: ResumeToken) -> Bytes {
    Message::from(Hello {
        version: PROTOCOL_VERSION,
        client: "resume-test".into(),
        resume,
    })
    .encode()
}

/// A Hello whose token is `len` bytes long (past what `ResumeToken::new` would keep).
fn hello_with_long_token(len: usize) -> Bytes {
    let short = hello(ResumeToken::default());
    // No token is no byte at all: the long one is appended to the payload.
    let mut payload = short[HEADER_LEN..].to_vec();
    let mut n = len;
    while n >= 0x80 {
        payload.push((n as u8) | 0x80);
        n >>= 7;
    }
    payload.push(n as u8);
    payload.extend(std::iter::repeat_n(b'a', len));
    let mut frame = vec![FrameType::Hello as u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend(payload);
    frame.into()
}

/// Join `room` with `since` on a reading raw session, returning the Joined reply.
async fn join_since(s: &mut Raw, room: &str, since: Option<Since>) -> Joined {
    let req = s.req();
    let join = Join {
        req,
        room: room.into(),
        since,
    };
    s.commands.write_all(&Message::from(join).encode()).await.unwrap();
    loop {
        match s.next().await {
            Message::Joined(j) if j.req == req => return j,
            m if m.reply_to() == Some(req) => panic!("join {room}: {m:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_vanished_client_takes_its_nick_back_at_once_with_its_resume_token() {
    let gw = lingering().await;
    let relay = Relay::start(&gw).await;
    let mut old = Raw::login_with(&relay, nick("alice"), true, None, raw::endpoint()).await;
    assert!(!old.resume_token.is_empty(), "Welcome carries a resume token");
    let first = join_since(&mut old, "lobby", None).await;
    let mut bob = Raw::login(&gw, "bob", true, None).await;
    bob.join("lobby").await;
    // Alice's network goes away: no close reaches the gateway, her session lingers.
    relay.cut();
    assert_eq!(
        attempt(&gw, hello(ResumeToken::default()), "alice").await,
        Err(ErrorCode::NickUnavailable),
        "without the token the nick is refused while the stale session lingers"
    );
    // With her token she is back at once: same user, same nick.
    let mut new = Raw::login_resuming(
        &gw,
        nick("alice"),
        true,
        None,
        raw::endpoint(),
        old.resume_token.clone(),
    )
    .await;
    assert_eq!(new.user, old.user);
    assert!(!new.resume_token.is_empty());
    assert_ne!(new.resume_token, old.resume_token, "a new token every Welcome");
    // Her rooms are intact: the new session resumes the room where the old one stopped,
    // still a member, and bob sees alice once.
    let since = Since {
        offset: first.offset,
        epoch: first.epoch,
    };
    let again = join_since(&mut new, "lobby", Some(since)).await;
    assert!(again.resumed, "{again:?}");
    assert_eq!(again.role, first.role);
    let req = bob.req();
    let list = ListUsers {
        req,
        room: "lobby".into(),
    };
    bob.commands
        .write_all(&Message::from(list).encode())
        .await
        .unwrap();
    let users = loop {
        match bob.next().await {
            Message::UserList(u) if u.req == req => break u.users,
            _ => {}
        }
    };
    let alices: Vec<_> = users.iter().filter(|m| m.nick == "alice").collect();
    assert_eq!(alices.len(), 1, "{users:?}");
    assert!(alices[0].online, "{users:?}");
    // The old token was used up: it cannot take the new session over.
    assert_eq!(
        attempt(&gw, hello(old.resume_token.clone()), "alice").await,
        Err(ErrorCode::NickUnavailable)
    );
    drop(old);
}

#[tokio::test]
async fn the_replaced_session_is_closed_with_session_replaced() {
    let gw = lingering().await;
    // A client that is still connected but silent (a frozen tab, a hung bot).
    let mut old = Raw::login(&gw, "carol", true, None).await;
    let token = old.resume_token.clone();
    let new = Raw::login_resuming(&gw, nick("carol"), true, None, raw::endpoint(), token).await;
    assert_eq!(new.user, old.user);
    match old.next().await {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::SessionReplaced, "{e:?}"),
        other => panic!("expected Error{{SessionReplaced}}, got {other:?}"),
    }
    let (code, _) = raw::close_code(&old.conn).await;
    assert_eq!(code, ErrorCode::SessionReplaced.as_u16());
}

#[tokio::test]
async fn only_a_valid_token_of_the_same_user_takes_a_nick_over() {
    let gw = lingering().await;
    let dave = Raw::login(&gw, "dave", false, None).await;
    let eve = Raw::login(&gw, "eve", false, None).await;
    let real = dave.resume_token.as_str().to_owned();
    // Another user's valid token.
    let others = hello(eve.resume_token.clone());
    // Dave's token with one secret digit changed.
    let mut forged = real.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let refused = [
        ("another user's token", others),
        ("a forged secret", hello(ResumeToken::new(forged))),
        ("garbage", hello(ResumeToken::new("not a token"))),
        ("an oversized token", hello_with_long_token(4000)),
    ];
    for (what, h) in refused {
        assert_eq!(
            attempt(&gw, h, "dave").await,
            Err(ErrorCode::NickUnavailable),
            "{what}"
        );
    }
    // None of that used the real token up, nor eve's.
    assert_eq!(
        attempt(&gw, hello(ResumeToken::new(real)), "dave").await,
        Ok(dave.user)
    );
    assert_eq!(
        attempt(&gw, hello(eve.resume_token.clone()), "eve").await,
        Ok(eve.user)
    );
}
