//! What every cluster test needs before it starts nodes: the NATS server (or a printed
//! reason to skip) and ports free for both QUIC and HTTP.

/// The NATS server tests use (`GAROU_TEST_NATS`), or `None` after printing why the test
/// is skipped.
pub fn nats() -> Option<String> {
    match std::env::var("GAROU_TEST_NATS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipping the cluster: GAROU_TEST_NATS unset");
            None
        }
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
