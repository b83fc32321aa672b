//! Echo bot: joins a room and repeats every message it sees, with a prefix.
//!
//! ```text
//! cargo run -p garou-examples --example echo_bot -- general [127.0.0.1:4433] [echo]
//! ```
//! Arguments: room, gateway address (default 127.0.0.1:4433), nick (default "echo").

use garou_client::{connect, ClientEvent, ClientOptions, Trust};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let room = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: echo_bot ROOM [HOST:PORT] [NICK]"))?;
    let server = args.next().unwrap_or_else(|| "127.0.0.1:4433".into());
    let nick = args.next().unwrap_or_else(|| "echo".into());

    // A local dev gateway uses a self-signed certificate, so accept any certificate here.
    // Against a real deployment keep the default (Trust::System), or pin the certificate
    // the gateway logs with Trust::cert_hash_hex("...").
    let opts = ClientOptions::with_nick(server, nick).trust(Trust::Insecure);
    let (client, mut events) = connect(opts).await?;
    client.join(room.as_str()).await?;
    println!("{} listening in #{room}", client.nick());

    // The client reconnects and rejoins by itself; the stream ends only on close.
    while let Some(event) = events.next().await {
        match &event {
            ClientEvent::Disconnected { reason } => eprintln!("disconnected: {reason}"),
            ClientEvent::Reconnected { .. } => eprintln!("reconnected"),
            _ => {}
        }
        let Some(msg) = event.room_message() else {
            continue;
        };
        // Not our own messages (nor other bots' echoes), or two bots would loop forever.
        if msg.author == client.user() || msg.text.starts_with("echo: ") {
            continue;
        }
        // Hand the reply off without waiting for the server's ack, so this loop keeps
        // reading events; a task reports failures (rate limits, lost connection).
        let pending = client
            .send(msg.room.as_str(), format!("echo: {}", msg.text))
            .submit()
            .await;
        tokio::spawn(async move {
            if let Err(e) = pending.await {
                eprintln!("echo failed: {e}");
            }
        });
    }
    Ok(())
}
