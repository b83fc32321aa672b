//! A `garou serve` child process (for the tests of the binary in cli/tests): started on a
//! data directory, its addresses read from its log, killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::WAIT;

/// A running `garou serve`.
pub struct Serve {
    pub child: Child,
    /// Its QUIC address (`quic_addr=` in the log).
    pub quic: String,
    /// Its HTTP address (`http_addr=` in the log).
    pub http: String,
}

/// A failing test must not leave its gateway running.
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Start `bin serve --quic QUIC --http 127.0.0.1:0 --data DATA` with `env` set, and wait
    /// (bounded) until it logs both addresses.
    pub fn start(bin: &str, data: &Path, quic: &str, env: &[(&str, &str)]) -> Serve {
        let child = Command::new(bin)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .args(["serve", "--quic", quic, "--http", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn garou serve");
        // Owned (and killed on drop) before anything can fail.
        let mut serve = Serve {
            child,
            quic: String::new(),
            http: String::new(),
        };
        let stderr = serve.child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        while serve.quic.is_empty() || serve.http.is_empty() {
            let line = rx.recv_timeout(WAIT).expect("gateway starts");
            for (key, slot) in [("quic_addr=", &mut serve.quic), ("http_addr=", &mut serve.http)] {
                if let Some(i) = line.find(key) {
                    *slot = line[i + key.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_owned();
                }
            }
        }
        serve
    }
}
