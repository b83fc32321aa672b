//! Memory probe: open N QUIC connections to a gateway and have each send a Hello header
//! declaring a 1 MiB frame plus a few bytes of it, then hold them. Measure the gateway's
//! RSS (e.g. `VmRSS` in `/proc/PID/status`) before and while they are held.
//!
//! ```text
//! cargo run -p garou-gateway --example partial_frames -- 127.0.0.1:4433 100 15
//! ```
//!
//! Arguments: the gateway's QUIC address, the number of connections (at most 1000), how
//! long to hold them in seconds (at most 120), and optionally `auth`: log in first (open
//! dev mode, nick `probeN`) and send the partial frame (a Send) on a command stream
//! instead, past the pre-authentication cap (`hello` for the default), and how many bytes
//! of the frame to send (default 10, less than 1 MiB). Accepts any server certificate: a
//! loopback measurement tool, never a client.

use std::net::SocketAddr;
use std::time::Duration;

use garou_protocol::{
    Auth, Credentials, Frame, FrameType, Hello, Message, StreamHeader, StreamKind, DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
};
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let server: SocketAddr = args.first().map_or("127.0.0.1:4433", |s| s.as_str()).parse()?;
    let n: usize = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let hold: u64 = args.get(2).map_or(Ok(15), |s| s.parse())?;
    let after_auth = args.get(3).is_some_and(|a| a == "auth");
    let body: usize = args.get(4).map_or(Ok(10), |s| s.parse())?;
    anyhow::ensure!(n <= 1000 && hold <= 120, "at most 1000 connections for 120 s");
    anyhow::ensure!(body < DEFAULT_MAX_FRAME, "the frame must stay partial");
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    // Any certificate: a local probe of a dev gateway.
    let cfg = garou_client::quic_client_config(&garou_client::Trust::Insecure)?;
    let mut held = Vec::new();
    let (mut sent, mut closed) = (0, 0);
    let mut uni = Vec::new();
    for i in 0..n {
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            ep.connect_with(cfg.clone(), server, "localhost")?,
        )
        .await??;
        let (mut send, recv) = conn.open_bi().await?;
        let partial = |ty: FrameType| {
            let mut bytes = Frame::header(ty as u8, DEFAULT_MAX_FRAME).to_vec();
            bytes.resize(bytes.len() + body, b'x');
            bytes
        };
        if after_auth {
            let hello = Hello {
                version: PROTOCOL_VERSION,
                client: "partial-frames".into(),
                resume: Default::default(),
            };
            let auth = Auth {
                credentials: Credentials::Nick(format!("probe{i}")),
            };
            send.write_all(&Message::from(hello).encode()).await?;
            send.write_all(&Message::from(auth).encode()).await?;
            let mut s = conn.open_uni().await?;
            let header = Message::from(StreamHeader {
                kind: StreamKind::Commands,
            });
            s.write_all(&header.encode()).await?;
            if s.write_all(&partial(FrameType::Send)).await.is_ok() {
                sent += 1;
            }
            uni.push(s);
        } else if send.write_all(&partial(FrameType::Hello)).await.is_ok() {
            sent += 1;
        }
        held.push((conn, send, recv));
    }
    let what = if after_auth { "Send (after auth)" } else { "Hello" };
    println!("{sent} connections hold a partial 1 MiB {what} ({body} bytes sent); holding {hold} s");
    tokio::time::sleep(Duration::from_secs(hold)).await;
    for (conn, _, _) in &held {
        if let Some(reason) = conn.close_reason() {
            closed += 1;
            if closed == 1 {
                println!("closed by the gateway, e.g.: {reason}");
            }
        }
    }
    println!("{closed} of {n} were closed by the gateway");
    Ok(())
}
