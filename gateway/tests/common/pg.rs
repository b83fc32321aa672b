//! PostgreSQL for tests: a fresh database per test on the server `GAROU_TEST_PG` names
//! (`scripts/test.sh` sets it; plain `cargo test` skips these tests with a printed reason).
//! Databases are named `garou_test_<pid>_<n>`, so parallel tests and repeated runs never
//! collide; each test drops its own, and one a crashed run left behind (its pid gone) is
//! dropped by the next run.

use std::sync::atomic::{AtomicU32, Ordering};

use std::path::PathBuf;
use std::process::Command;

use sqlx::{Connection, PgConnection};

/// The variable naming the test server.
pub const VAR: &str = "GAROU_TEST_PG";

/// The server's URL, or `None` after printing why the test is skipped.
pub fn server() -> Option<String> {
    match std::env::var(VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipping PostgreSQL: {VAR} unset");
            None
        }
    }
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let host_end = rest.find('/').map_or(base.len(), |i| base.len() - rest.len() + i);
    format!("{}/{db}{query}", &base[..host_end])
}

/// A database of its own, dropped by [`TestDb::drop`].
pub struct TestDb {
    /// Its URL.
    pub url: String,
    server: String,
    name: String,
}

impl TestDb {
    /// A fresh database on the `GAROU_TEST_PG` server, or `None` (printed) when unset.
    pub async fn create() -> Option<TestDb> {
        Some(Self::create_on(&server()?).await)
    }

    /// A fresh database on the server at `server`.
    pub async fn create_on(server: &str) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "garou_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(server)
            .await
            .expect("connect to the test server");
        // Leftovers of runs that died before dropping theirs.
        let old: Vec<String> =
            sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'garou\\_test\\_%'")
                .fetch_all(&mut admin)
                .await
                .unwrap();
        for db in old {
            let pid = db.split('_').nth(2).unwrap_or("");
            if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        }
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.ok();
        TestDb {
            url: with_database(server, &name),
            server: server.to_owned(),
            name,
        }
    }

    /// Drop the database (closing whatever still uses it).
    pub async fn drop(self) {
        let mut admin = PgConnection::connect(&self.server)
            .await
            .expect("connect to the test server");
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .execute(&mut admin)
            .await
            .expect("drop the test database");
        admin.close().await.ok();
    }
}

/// A PostgreSQL server of this test's own (initdb, pg_ctl) on a free loopback port, so it
/// can be stopped and started again. Stopped and removed on drop.
pub struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the server's programs as this user (PostgreSQL refuses to run as root).
    as_user: Option<&'static str>,
}

impl PrivatePg {
    /// Set one up and start it, or `None` (printed) when initdb is not installed.
    pub fn start() -> Option<PrivatePg> {
        let bin = Self::bin_dir()?;
        let dir = tempfile::tempdir().unwrap();
        let root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
        let as_user = root.then_some("postgres");
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                println!("skipping: cannot hand a directory to the postgres user");
                return None;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePg {
            bin,
            dir,
            port,
            as_user,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.ctl_start();
        Some(pg)
    }

    fn bin_dir() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .collect();
        found.sort();
        let bin = found.pop();
        if bin.is_none() {
            println!("skipping: no PostgreSQL server programs (initdb) in /usr/lib/postgresql");
        }
        bin
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect(program);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn ctl_start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    pub fn ctl_stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"],
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join("pg_ctl"));
                c
            }
            None => Command::new(self.bin.join("pg_ctl")),
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
    }
}

/// A NATS server of this test's own on a free loopback port, so it can be stopped and
/// started again on the same port. Killed on drop.
pub struct PrivateNats {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateNats {
    /// Start one, or `None` (printed) when `nats-server` is not installed.
    pub fn start() -> Option<PrivateNats> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = PrivateNats { port, child: None };
        if !n.resume() {
            println!("skipping: no nats-server");
            return None;
        }
        Some(n)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kill it (SIGKILL: no goodbye to its clients).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on its port; waits until it accepts connections.
    pub fn resume(&mut self) -> bool {
        let Ok(child) = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            return false;
        };
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
    }
}
