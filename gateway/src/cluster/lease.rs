//! The hub lease in PostgreSQL: which node runs the rooms, for which term.
//!
//! One row (`garou_hub`). A node takes it when it has expired, by the database's clock (no
//! node's clock matters), and the generation grows with every new holder. The holder renews
//! it every second; a node killed with `kill -9` stops renewing and another takes over once
//! the lease has run out. Fencing: the hub's store checks its generation inside every commit
//! (see [`crate::store::postgres::PostgresStore::fenced`]), so a node that lost the lease,
//! however slow to notice, never commits again.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use crate::store::StoreError;

/// The lease as the database holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The node holding it.
    pub node: String,
    /// Its term.
    pub gen: u64,
    /// The holder's HTTP address, as it advertised it.
    pub http: String,
    /// Not expired.
    pub live: bool,
}

/// A handle on the lease row.
#[derive(Clone)]
pub struct Lease {
    pool: PgPool,
    node: String,
    ttl: Duration,
}

impl Lease {
    /// Connect (a small pool of its own, so a busy store never delays a renewal) and make
    /// sure the schema is there.
    pub async fn connect(url: &str, node: &str, ttl: Duration) -> Result<Lease, StoreError> {
        let opts = PgConnectOptions::from_str(url)?.application_name("garou-lease");
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Lease {
            pool,
            node: node.to_owned(),
            ttl,
        })
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// Take the lease if nobody holds it (or the holder let it expire): the new term's
    /// generation, or `None` while another node holds it. After PostgreSQL itself
    /// restarted, the holder gets one lease length to renew before anyone may take over:
    /// an outage of the store alone does not move the hub.
    pub async fn try_acquire(&self, http: &str) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO garou_hub (id, node, gen, http, expires_at)
             VALUES (1, $1, 1, $2, now() + $3 * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE
                SET node = excluded.node, gen = garou_hub.gen + 1, http = excluded.http,
                    expires_at = excluded.expires_at
              WHERE garou_hub.expires_at < now()
                AND pg_postmaster_start_time() < now() - $3 * interval '1 millisecond'
             RETURNING gen",
        )
        .bind(&self.node)
        .bind(http)
        .bind(self.ttl_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    /// Extend term `gen`: `false` when it is no longer ours (another node took over).
    pub async fn renew(&self, gen: u64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "UPDATE garou_hub SET expires_at = now() + $3 * interval '1 millisecond'
              WHERE id = 1 AND node = $1 AND gen = $2 RETURNING gen",
        )
        .bind(&self.node)
        .bind(gen as i64)
        .bind(self.ttl_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Give term `gen` up at once (a clean shutdown): another node need not wait it out.
    pub async fn release(&self, gen: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE garou_hub SET expires_at = now() - interval '1 second' WHERE id = 1 AND node = $1 AND gen = $2")
            .bind(&self.node)
            .bind(gen as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who holds the lease now, if anyone ever did.
    pub async fn holder(&self) -> Result<Option<Holder>, StoreError> {
        let row = sqlx::query("SELECT node, gen, http, expires_at > now() FROM garou_hub WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Holder {
            node: r.get(0),
            gen: r.get::<i64, _>(1) as u64,
            http: r.get(2),
            live: r.get(3),
        }))
    }
}
