//! The `garou` binary end to end: `garou serve`, two `garou chat` processes scripted through
//! pipes, and a graceful SIGTERM shutdown.

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::lines::Lines;

const WAIT: Duration = Duration::from_secs(15);

fn garou() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_garou"));
    c.env("RUST_LOG", "info");
    c
}

/// The value after `key=` in a log line.
fn field(line: &str, key: &str) -> String {
    let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[start..].split_whitespace().next().unwrap().to_owned()
}

struct Server {
    child: Child,
    log: Lines,
    quic: String,
    hash: String,
}

/// A failing test must not leave its gateway running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    serve_with(&[])
}

fn serve_with(extra: &[&str]) -> Server {
    let data = tempfile::tempdir().unwrap().keep();
    let mut child = garou()
        .args([
            "serve",
            "--quic",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn garou serve");
    let log = Lines::of(child.stderr.take().unwrap(), WAIT);
    // Owned (and killed on drop) before a wait can fail.
    let mut server = Server {
        child,
        log,
        quic: String::new(),
        hash: String::new(),
    };
    server.hash = field(&server.log.wait_for("sha256="), "sha256=");
    server.quic = field(&server.log.wait_for("quic_addr="), "quic_addr=");
    server
}

fn chat(server: &Server, nick: &str) -> (Child, ChildStdin, Lines) {
    let mut child = garou()
        .args([
            "chat",
            "--server",
            &server.quic,
            "--cert-hash",
            &server.hash,
            "--nick",
            nick,
        ])
        .args(["--room", "general"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn garou chat");
    let stdin = child.stdin.take().unwrap();
    let out = Lines::of(child.stdout.take().unwrap(), WAIT);
    (child, stdin, out)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn chat_through_pipes_and_graceful_sigterm() {
    let mut server = serve();

    let (mut bob, mut bob_in, mut bob_out) = chat(&server, "bob");
    bob_out.wait_for("bob joined #general");

    // Alice is a script: one line on stdin, then EOF. She must exit 0 once it was acked.
    let (mut alice, mut alice_in, _alice_out) = chat(&server, "alice");
    alice_in.write_all(b"hello from a pipe\n").unwrap();
    drop(alice_in);
    assert!(
        wait_exit(&mut alice).success(),
        "alice exits 0 after her message was accepted"
    );
    let line = bob_out.wait_for("hello from a pipe");
    assert!(line.contains("<alice> hello from a pipe"), "{line}");

    // A second run with the same nick shows the room's history on join.
    let (mut again, again_in, mut again_out) = chat(&server, "alice");
    let line = again_out.wait_for("hello from a pipe");
    assert!(line.contains("<alice> hello from a pipe"), "{line}");
    drop(again_in);
    assert!(wait_exit(&mut again).success());

    // Bob answers; commands work through the pipe too.
    bob_in.write_all(b"/users\n").unwrap();
    bob_out.wait_for("member");

    // SIGTERM: the server tells its clients and exits 0 within the grace period.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    bob_out.wait_for("server shutting down");
    let status = wait_exit(&mut server.child);
    assert!(status.success(), "garou serve exits 0 on SIGTERM: {status:?}");
    server.log.wait_for("shutdown complete");
    drop(bob_in);
    let _ = bob.kill();
}

#[test]
fn garou_cert_writes_what_serve_uses_and_chat_pins() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let made = garou()
        .args(["cert", "--out"])
        .arg(&out)
        .args(["--days", "30", "--name", "localhost", "--name", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let printed = String::from_utf8(made.stdout).unwrap();
    let hash = field(
        printed
            .lines()
            .find(|l| l.starts_with("sha256 "))
            .expect(&printed),
        "sha256 ",
    );
    assert!(
        printed.contains("browsers will not pin it"),
        "30 days is too long for browsers: {printed}"
    );
    let (cert, key) = (out.join("cert.pem"), out.join("key.pem"));
    let server = serve_with(&["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(
        server.hash, hash,
        "the gateway serves the certificate garou cert wrote"
    );

    // A client pinning the printed hash gets in.
    let (mut bob, bob_in, mut bob_out) = chat(&server, "bob");
    bob_out.wait_for("bob joined #general");
    drop(bob_in);
    assert!(wait_exit(&mut bob).success());

    // Bad arguments are refused, not written.
    let refused = garou()
        .args(["cert", "--days", "0", "--out"])
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(!dir.path().join("none").exists());
}
