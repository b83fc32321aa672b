//! `garou serve --store URL` picks the store: PostgreSQL at a `postgres://` URL (the
//! part with `GAROU_TEST_PG`, skipped with a printed reason when it is unset), and an unknown
//! scheme stops the start with a message naming it.

#[path = "../../gateway/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::pg::TestDb;
use common::WAIT;

/// `garou serve --store URL` picks the store: PostgreSQL at a `postgres://` URL (logged
/// without its password), and an unknown scheme stops the start with a message naming it.
#[test]
fn serve_store_flag_picks_the_store() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let data = tempfile::tempdir().unwrap();
    let serve = |store: &str| {
        Command::new(env!("CARGO_BIN_EXE_garou"))
            .args([
                "serve",
                "--quic",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data.path())
            .args(["--store", store])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn garou serve")
    };
    let out = serve("mysql://db/x").wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("mysql"), "{err}");

    let Some(server) = common::pg::server() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::create_on(&server));
    let mut child = serve(&db.url);
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = loop {
        match rx.recv_timeout(WAIT) {
            Ok(line) if line.contains("store:") => break line,
            Ok(_) => {}
            Err(e) => panic!("no store line: {e}"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("PostgreSQL") && line.contains("/garou_test_"),
        "{line}"
    );
    rt.block_on(db.drop());
}
