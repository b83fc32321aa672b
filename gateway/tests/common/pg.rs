//! PostgreSQL for tests: a fresh database per test on the server `GAROU_TEST_PG` names
//! (`scripts/test.sh` sets it; plain `cargo test` skips these tests with a printed reason).
//! Databases are named `garou_test_<pid>_<n>`, so parallel tests and repeated runs never
//! collide; each test drops its own, and one a crashed run left behind (its pid gone) is
//! dropped by the next run.

use std::sync::atomic::{AtomicU32, Ordering};

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
