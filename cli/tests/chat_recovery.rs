//! `garou chat` loses no typed line across a gateway restart: a piped chat writes lines
//! before, during and after a graceful restart (SIGTERM) and a crash (kill -9) of the
//! gateway, restarted on the same port, data directory and certificate (the chat pins
//! it); a second reader then finds every line in the room's history exactly once, in
//! order, and the chat exits 0. A gateway back with another certificate is a terminal
//! error: the queued lines fail with it, and so does the exit code.

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lines::Lines;
use common::serve::Serve;
use garou_client::{connect, ClientOptions, Trust};

const BIN: &str = env!("CARGO_BIN_EXE_garou");

/// Longest wait for one expected line (reconnects back off, a crash takes ~3 s to notice).
const LINE_WAIT: Duration = Duration::from_secs(40);

/// `garou cert --out DIR`: the certificate's SHA-256 (hex) as printed.
fn make_cert(dir: &Path) -> String {
    let made = Command::new(BIN)
        .args(["cert", "--out"])
        .arg(dir)
        .output()
        .expect("run garou cert");
    assert!(made.status.success(), "{made:?}");
    let printed = String::from_utf8(made.stdout).unwrap();
    printed
        .lines()
        .find_map(|l| l.strip_prefix("sha256 "))
        .unwrap_or_else(|| panic!("no sha256 line in {printed}"))
        .trim()
        .to_owned()
}

fn serve(data: &Path, certs: &Path, quic: &str) -> Serve {
    let cert = certs.join("cert.pem");
    let key = certs.join("key.pem");
    Serve::start(
        BIN,
        data,
        quic,
        &[
            ("GAROU_CERT", cert.to_str().unwrap()),
            ("GAROU_KEY", key.to_str().unwrap()),
        ],
    )
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the chat if the test fails before it exits.
struct Chat(Child);

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_piped_chat_loses_no_line_across_a_graceful_restart_and_a_crash() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let hash = make_cert(certs.path());
    let mut server = serve(data.path(), certs.path(), "127.0.0.1:0");
    let quic = server.quic.clone();

    let mut chat = Chat(
        Command::new(BIN)
            .args(["chat", "--server", &quic, "--cert-hash", &hash])
            .args(["--nick", "writer", "--room", "general"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn garou chat"),
    );
    let mut input = chat.0.stdin.take().unwrap();
    let mut out = Lines::of(chat.0.stdout.take().unwrap(), LINE_WAIT);
    out.wait_for("now talking in #general");

    let mut expected = Vec::new();
    let mut write = |phase: &str| {
        for i in 0..3 {
            let line = format!("{phase} {i}");
            writeln!(input, "{line}").unwrap();
            expected.push(line);
        }
        input.flush().unwrap();
    };

    write("before");
    // Graceful restart: the gateway tells its clients and exits; lines typed while it is
    // away are queued and delivered after the reconnect.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    out.wait_for("server shutting down");
    assert!(wait_exit(&mut server.child, LINE_WAIT).success());
    out.wait_for("* disconnected");
    write("during-restart");
    out.wait_for("(queued: reconnecting)");
    drop(server);
    let mut server = serve(data.path(), certs.path(), &quic);
    out.wait_for("rejoined #general");
    write("after-restart");

    // Crash: kill -9, no goodbye; lines typed meanwhile (before the client even noticed)
    // are carried over to the next session.
    server.child.kill().unwrap();
    let _ = server.child.wait();
    write("during-crash");
    std::thread::sleep(Duration::from_secs(1));
    drop(server);
    let _server = serve(data.path(), certs.path(), &quic);
    out.wait_for("rejoined #general");
    write("after-crash");

    drop(input); // end of input: wait for every acknowledgement, then exit
    let status = wait_exit(&mut chat.0, Duration::from_secs(90));
    assert!(
        status.success(),
        "garou chat exits 0: {status:?}\n{}",
        out.seen.join("\n")
    );

    // The second reader: the room's whole history, oldest first.
    let texts = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let opts = ClientOptions::with_nick(&quic, "reader").trust(Trust::cert_hash_hex(&hash).unwrap());
        let (reader, _events) = connect(opts).await.expect("reader connects");
        reader.join("general").await.expect("reader joins");
        let mut texts = Vec::new();
        let mut after = Some(0);
        loop {
            let page = tokio::time::timeout(common::WAIT, reader.history("general", None, after, 1000))
                .await
                .expect("history in time")
                .expect("history");
            let Some(last) = page.messages.last() else { break };
            after = Some(last.offset);
            texts.extend(page.messages.iter().map(|m| m.text.clone()));
        }
        reader.close().await;
        texts
    });
    assert_eq!(texts, expected, "every line exactly once, in order");
}

#[test]
fn a_gateway_back_with_another_certificate_fails_the_queued_lines_and_the_exit_code() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let hash = make_cert(certs.path());
    let mut server = serve(data.path(), certs.path(), "127.0.0.1:0");
    let quic = server.quic.clone();
    let mut chat = Chat(
        Command::new(BIN)
            .args(["chat", "--server", &quic, "--cert-hash", &hash])
            .args(["--nick", "writer", "--room", "general"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn garou chat"),
    );
    let mut input = chat.0.stdin.take().unwrap();
    let mut out = Lines::of(chat.0.stdout.take().unwrap(), LINE_WAIT);
    let mut errors = Lines::of(chat.0.stderr.take().unwrap(), LINE_WAIT);
    out.wait_for("now talking in #general");
    writeln!(input, "before").unwrap();

    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(wait_exit(&mut server.child, LINE_WAIT).success());
    out.wait_for("* disconnected");
    writeln!(input, "queued, then refused").unwrap();
    out.wait_for("(queued: reconnecting)");
    drop(server);
    // Back without --cert: a fresh self-signed certificate the chat does not trust.
    let _server = Serve::start(BIN, data.path(), &quic, &[]);
    errors.wait_for("error: stopped for good");
    writeln!(input, "after the stop").unwrap();
    errors.wait_for("the client stopped");
    // The queued line's failure and the refusal of the line typed after the stop come from
    // two branches of the chat's loop: either may be printed first.
    let queued_failed = "error: message to #general not delivered: untrusted server certificate";
    if !errors.seen.iter().any(|l| l.contains(queued_failed)) {
        errors.wait_for(queued_failed);
    }
    drop(input);
    let status = wait_exit(&mut chat.0, Duration::from_secs(30));
    assert!(!status.success(), "lines were lost: the exit code says so");
}
