//! A minimal relay on moq-tokio, only to smoke-test moq-load where moq-relay is not built yet:
//! every session publishes into and subscribes from one shared origin.
//! `cargo run --release --example loopback_relay -- 127.0.0.1:4443`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4443".into());
    let mut listen = moq_tokio::listen::Config::default();
    listen.bind = Some(addr.parse()?);
    listen.tls.generate = vec!["localhost".into()];
    let mut server = listen.init(Default::default())?.listen().await?;
    let origin = moq_tokio::origin::spawn();
    while let Some(request) = server.accept().await {
        let origin = origin.clone();
        tokio::spawn(async move {
            if let Ok(session) = request
                .with_publisher(&origin)
                .with_subscriber(origin.clone())
                .ok()
                .await
            {
                let _ = session.closed().await;
            }
        });
    }
    Ok(())
}
