//! [`StoreError`]: every store failure, classified by what the caller can do about it.

/// A store failure, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row broke a constraint (a UNIQUE index, a foreign key): this change can never
    /// be applied as it is; retrying it is pointless, other changes are unaffected.
    #[error("store conflict: {0}")]
    Conflict(String),
    /// The store cannot be reached or written right now (I/O error, disk full, busy or
    /// locked, pool timeout, connection lost): retry the same change later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// This node may no longer commit: a cluster's hub lease passed to another node (see
    /// `PostgresStore::fenced`). Nothing more is written or delivered here.
    #[error("store fenced: {0}")]
    Fenced(String),
    /// Anything else (a bad migration, a corrupt file, a bug).
    #[error("store: {0}")]
    Other(String),
}

impl StoreError {
    /// A constraint violation (see [`StoreError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict(_))
    }

    /// A transient failure worth retrying (see [`StoreError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// A short label for logs and metrics: `conflict`, `unavailable` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Conflict(_) => "conflict",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Fenced(_) | StoreError::Other(_) => "other",
        }
    }
}

/// SQLite primary result codes (the low byte of an extended code) that mean "try again":
/// BUSY, LOCKED, NOMEM, READONLY (a file or directory made read-only), IOERR, FULL,
/// CANTOPEN, PROTOCOL.
const SQLITE_TRANSIENT: [i64; 8] = [5, 6, 7, 8, 10, 13, 14, 15];
/// SQLITE_CONSTRAINT.
const SQLITE_CONSTRAINT: i64 = 19;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let text = e.to_string();
        match &e {
            sqlx::Error::Database(db) => {
                #[cfg(feature = "postgres")]
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    return from_sqlstate(pg.code(), text);
                }
                let primary = db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
                match db.kind() {
                    ErrorKind::UniqueViolation
                    | ErrorKind::ForeignKeyViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation => StoreError::Conflict(text),
                    _ if primary == Some(SQLITE_CONSTRAINT) => StoreError::Conflict(text),
                    _ if primary.is_some_and(|c| SQLITE_TRANSIENT.contains(&c)) => {
                        StoreError::Unavailable(text)
                    }
                    _ => StoreError::Other(text),
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(text),
            _ => StoreError::Other(text),
        }
    }
}

/// A PostgreSQL error by its SQLSTATE: class 23 (integrity constraint) and 22 (data the
/// column cannot hold, e.g. a NUL character in text) are this change's own problem;
/// connection failures (08), insufficient resources (53), shutdown (57P0x), serialization
/// failures and deadlocks (40001, 40P01), a lock timeout (55P03) and a read-only server (25006,
/// a standby during failover) are worth retrying.
pub fn from_sqlstate(code: &str, text: String) -> StoreError {
    let class = code.get(..2).unwrap_or("");
    if matches!(class, "22" | "23") {
        StoreError::Conflict(text)
    } else if matches!(class, "08" | "53")
        || code.starts_with("57P0")
        || matches!(code, "40001" | "40P01" | "55P03" | "25006")
    {
        StoreError::Unavailable(text)
    } else {
        StoreError::Other(text)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            e => StoreError::Other(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified() {
        let kind = |code: &str| from_sqlstate(code, code.into()).kind();
        for code in ["23505", "23503", "23502", "23514", "22021", "22003"] {
            assert_eq!(kind(code), "conflict", "{code}");
        }
        for code in [
            "08006", "08001", "53300", "53100", "57P01", "57P03", "40001", "40P01", "55P03", "25006",
        ] {
            assert_eq!(kind(code), "unavailable", "{code}");
        }
        for code in ["42P01", "42601", "XX000", "57014", ""] {
            assert_eq!(kind(code), "other", "{code}");
        }
    }
}
