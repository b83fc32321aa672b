//! Echo bot: joins a room and repeats every message it sees, with a prefix.
//!
//! ```text
//! cargo run -p garou-examples --example echo_bot -- general [127.0.0.1:4433] [echo]
//! ```
//! Arguments: room, gateway address (default 127.0.0.1:4433), nick (default "echo").
//!
//! It keeps running across gateway restarts: the client reconnects, rejoins the room and
//! re-sends what was not acknowledged; it stops only on a terminal error (e.g. the
//! gateway's certificate no longer matches a pin).

use garou_client::{connect, ClientOptions, ConnectRetry, Trust, Update};

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
    // the gateway logs with Trust::cert_hash_hex("..."). A bot retries its first connect
    // too: after a crash its old session keeps the nick until the gateway notices.
    let opts = ClientOptions::with_nick(server, nick)
        .trust(Trust::Insecure)
        .connect_retry(ConnectRetry::patient());
    let (client, mut events) = connect(opts).await?;
    client.join(room.as_str()).await?;
    println!("{} listening in #{room}", client.nick());

    while let Some(update) = events.next_update().await {
        let msg = match update {
            Update::Message(msg) => msg,
            Update::Disconnected { error } => {
                eprintln!("disconnected: {error}");
                continue;
            }
            Update::Reconnected => {
                eprintln!("reconnected");
                continue;
            }
            Update::Stopped { error } => anyhow::bail!("stopped: {error}"),
            _ => continue,
        };
        // Not our own messages (nor other bots' echoes), or two bots would loop forever.
        if msg.author == client.user() || msg.text.starts_with("echo: ") {
            continue;
        }
        // Hand the reply off without waiting for the server's ack, so this loop keeps
        // reading events; a task reports failures (a full queue while disconnected).
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
