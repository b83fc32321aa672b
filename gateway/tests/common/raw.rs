//! A raw QUIC client (ALPN garou/1) that speaks frames by hand, so it can send anything:
//! malformed bytes, oversized frames, frames out of state, floods, and can stop reading.

use std::sync::Arc;
use std::time::Duration;

use garou_protocol::{
    Auth, Credentials, Decoder, Hello, Join, Message, ResumeToken, StreamHeader, StreamKind, UserId,
    PROTOCOL_VERSION,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{Target, WAIT};

/// Accepts exactly the gateway's certificate (by SHA-256 of its DER).
#[derive(Debug)]
struct Pin {
    hash: [u8; 32],
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        cert: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(cert.as_ref()).as_slice() == self.hash {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the gateway's certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Client config pinned to the gateway; `transport` tweaks the QUIC transport.
pub fn quic_config(gw: &impl Target, transport: Option<quinn::TransportConfig>) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pin = Pin {
        hash: gw.cert_sha256(),
        algs: provider.signature_verification_algorithms,
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pin))
        .with_no_client_auth();
    tls.alpn_protocols = vec![garou_protocol::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    if let Some(t) = transport {
        cfg.transport_config(Arc::new(t));
    }
    cfg
}

/// One client endpoint (UDP socket) for many raw connections.
pub fn endpoint() -> quinn::Endpoint {
    endpoint_at("127.0.0.1")
}

/// A client endpoint bound to another loopback address (e.g. "127.0.0.2"), to test
/// per-IP limits: Linux routes all of 127.0.0.0/8 to loopback.
pub fn endpoint_at(ip: &str) -> quinn::Endpoint {
    quinn::Endpoint::client(format!("{ip}:0").parse().unwrap()).unwrap()
}

/// A QUIC connection to the gateway, handshake done, nothing sent.
pub async fn connect(
    ep: &quinn::Endpoint,
    gw: &impl Target,
    transport: Option<quinn::TransportConfig>,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let connecting = ep
        .connect_with(quic_config(gw, transport), gw.quic_addr(), "localhost")
        .unwrap();
    tokio::time::timeout(WAIT, connecting)
        .await
        .expect("QUIC handshake in time")
}

/// How the server closed `conn`: (application code, reason). Panics on a timeout or a
/// close that is not an application close.
pub async fn close_code(conn: &quinn::Connection) -> (u16, String) {
    match tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("closed in time")
    {
        quinn::ConnectionError::ApplicationClosed(c) => (
            u16::try_from(c.error_code.into_inner()).unwrap(),
            String::from_utf8_lossy(&c.reason).into_owned(),
        ),
        other => panic!("expected an application close, got {other}"),
    }
}

/// Read messages off one stream into `tx` (stops quietly at the end or on bad bytes).
pub async fn read_messages(mut recv: quinn::RecvStream, tx: mpsc::UnboundedSender<Message>) {
    let mut dec = Decoder::default();
    while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await {
        dec.push(&chunk.bytes);
        while let Ok(Some(frame)) = dec.next_frame() {
            let Ok(m) = Message::decode(&frame) else { return };
            if tx.send(m).is_err() {
                return;
            }
        }
    }
}

/// A logged-in raw session.
pub struct Raw {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub control: quinn::SendStream,
    /// The control stream, still unread (a client that never reads), or `None` once a
    /// reader task feeds `inbox`.
    pub control_recv: Option<quinn::RecvStream>,
    /// Control-stream messages after the handshake (when reading).
    pub inbox: mpsc::UnboundedReceiver<Message>,
    /// Messages of the server's uni streams (room events), when reading.
    pub events: mpsc::UnboundedReceiver<Message>,
    pub commands: quinn::SendStream,
    pub user: UserId,
    pub next_req: u32,
    /// The resume token of this session's Welcome.
    pub resume_token: ResumeToken,
}

impl Raw {
    /// Connect and log in as `nick`. With `read`, control and server streams are read
    /// into `inbox` / `events`; without, the client never reads after the handshake.
    pub async fn login(
        gw: &impl Target,
        nick: &str,
        read: bool,
        transport: Option<quinn::TransportConfig>,
    ) -> Raw {
        Raw::login_with(gw, Credentials::Nick(nick.into()), read, transport, endpoint()).await
    }

    /// [`Raw::login`] with any credentials, from `endpoint` (see [`endpoint_at`]).
    pub async fn login_with(
        gw: &impl Target,
        credentials: Credentials,
        read: bool,
        transport: Option<quinn::TransportConfig>,
        endpoint: quinn::Endpoint,
    ) -> Raw {
        Raw::login_resuming(gw, credentials, read, transport, endpoint, ResumeToken::default()).await
    }

    /// [`Raw::login_with`] offering `resume` (a previous session's token) in Hello.
    pub async fn login_resuming(
        gw: &impl Target,
        credentials: Credentials,
        read: bool,
        transport: Option<quinn::TransportConfig>,
        endpoint: quinn::Endpoint,
        resume: ResumeToken,
    ) -> Raw {
        let nick = match &credentials {
            Credentials::Nick(n) => n.clone(),
            _ => "token user".to_string(),
        };
        let conn = connect(&endpoint, gw, transport).await.expect("QUIC handshake");
        let (mut control, mut recv) = conn.open_bi().await.unwrap();
        let hello = Hello {
            version: PROTOCOL_VERSION,
            client: "raw-test".into(),
            resume,
        };
        control.write_all(&Message::from(hello).encode()).await.unwrap();
        let auth = Auth { credentials };
        control.write_all(&Message::from(auth).encode()).await.unwrap();
        // Read exactly the handshake (up to Welcome) by hand, leaving the rest unread.
        let mut dec = Decoder::default();
        let mut user = 0;
        let resume_token;
        'handshake: loop {
            let chunk = tokio::time::timeout(WAIT, recv.read_chunk(1, true))
                .await
                .expect("handshake in time")
                .expect("control stream")
                .expect("control stream open");
            dec.push(&chunk.bytes);
            while let Some(frame) = dec.next_frame().unwrap() {
                match Message::decode(&frame).unwrap() {
                    Message::AuthOk(ok) => user = ok.user,
                    Message::Welcome(w) => {
                        resume_token = w.resume_token;
                        break 'handshake;
                    }
                    Message::HelloAck(_) | Message::ShardAssignment(_) => {}
                    other => panic!("{nick}: unexpected {other:?} during the handshake"),
                }
            }
        }
        let (in_tx, inbox) = mpsc::unbounded_channel();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let control_recv = if read {
            tokio::spawn(read_messages(recv, in_tx));
            let c = conn.clone();
            tokio::spawn(async move {
                while let Ok(r) = c.accept_uni().await {
                    tokio::spawn(read_messages(r, ev_tx.clone()));
                }
            });
            None
        } else {
            Some(recv)
        };
        let mut commands = conn.open_uni().await.unwrap();
        let header = Message::from(StreamHeader {
            kind: StreamKind::Commands,
        });
        commands.write_all(&header.encode()).await.unwrap();
        Raw {
            endpoint,
            conn,
            control,
            control_recv,
            inbox,
            events,
            commands,
            user,
            next_req: 1,
            resume_token,
        }
    }

    /// A fresh request id.
    pub fn req(&mut self) -> u32 {
        self.next_req += 1;
        self.next_req
    }

    /// Write a Join without waiting for its reply.
    pub async fn send_join(&mut self, room: &str) -> u32 {
        let req = self.req();
        let join = Join {
            req,
            room: room.into(),
            since: None,
        };
        self.commands
            .write_all(&Message::from(join).encode())
            .await
            .unwrap();
        req
    }

    /// The next control message (bounded).
    pub async fn next(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("a control message in time")
            .expect("control stream open")
    }

    /// Join `room` and wait for Joined (needs `read`).
    pub async fn join(&mut self, room: &str) {
        let req = self.send_join(room).await;
        loop {
            match self.next().await {
                Message::Joined(j) if j.req == req => return,
                m if m.reply_to() == Some(req) => panic!("join {room}: {m:?}"),
                _ => {}
            }
        }
    }
}

/// Wait (bounded) until `cond` holds, polling every few milliseconds: for server-side
/// counters, which have no event to await.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
