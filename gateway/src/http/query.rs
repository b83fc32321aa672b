//! The query strings of the HTTP API, parsed apart from the handlers (pure functions of a
//! string, so a fuzz target can drive them): capped in length before anything is decoded,
//! answered with a typed error, never a panic.

use serde::Deserialize;

/// Longest query string accepted, bytes (a ticket, a file name and three numbers fit).
pub const MAX_QUERY: usize = 2048;
/// Messages per history page when the query names no `limit`.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most messages per history page.
pub const MAX_LIMIT: u32 = 1000;

/// Why a query string was refused (400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("query string longer than {MAX_QUERY} bytes")]
    TooLong,
    #[error("bad query string: {0}")]
    Invalid(String),
}

/// `?after=&before=&limit=&ticket=` of `GET /api/rooms/{room}/messages`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct PageQuery {
    pub after: Option<u64>,
    pub before: Option<u64>,
    pub limit: Option<u32>,
    /// A session ticket, when not sent as `Authorization: Bearer`.
    pub ticket: Option<String>,
}

impl PageQuery {
    /// The page size asked for, within 1..=[`MAX_LIMIT`].
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

/// `?ticket=&name=` of the upload routes.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct TicketQuery {
    /// A session ticket, when not sent as `Authorization: Bearer`.
    pub ticket: Option<String>,
    /// The file name of a `POST /api/uploads` (checked by the handler).
    pub name: Option<String>,
}

fn parse<'a, T: Deserialize<'a>>(raw: &'a str) -> Result<T, QueryError> {
    if raw.len() > MAX_QUERY {
        return Err(QueryError::TooLong);
    }
    serde_urlencoded::from_str(raw).map_err(|e| QueryError::Invalid(e.to_string()))
}

/// Parse the query of a history request (`raw` without the `?`; empty for none).
pub fn page_query(raw: &str) -> Result<PageQuery, QueryError> {
    parse(raw)
}

/// Parse the query of an upload request (`raw` without the `?`; empty for none).
pub fn ticket_query(raw: &str) -> Result<TicketQuery, QueryError> {
    parse(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        assert_eq!(page_query("").unwrap(), PageQuery::default());
        let p = page_query("after=5&limit=5000&ticket=ab&other=1").unwrap();
        assert_eq!(
            (p.after, p.before, p.limit(), p.ticket.as_deref()),
            (Some(5), None, 1000, Some("ab"))
        );
        assert_eq!(page_query("limit=0").unwrap().limit(), 1);
        assert!(matches!(page_query("after=-1"), Err(QueryError::Invalid(_))));
        assert!(matches!(
            page_query("after=1&after=2"),
            Err(QueryError::Invalid(_))
        ));
        assert!(matches!(
            page_query("limit=99999999999"),
            Err(QueryError::Invalid(_))
        ));
        assert_eq!(page_query(&"a".repeat(MAX_QUERY + 1)), Err(QueryError::TooLong));
    }

    #[test]
    fn tickets_and_names() {
        let q = ticket_query("ticket=t&name=sn%C3%A4p%20%221%22.png").unwrap();
        assert_eq!(
            (q.ticket.as_deref(), q.name.as_deref()),
            (Some("t"), Some("snäp \"1\".png"))
        );
        // Bytes that are not UTF-8 become U+FFFD; a stray `%` stays as it is.
        assert_eq!(
            ticket_query("name=%FF").unwrap().name.as_deref(),
            Some("\u{FFFD}")
        );
        assert_eq!(ticket_query("name=%").unwrap().name.as_deref(), Some("%"));
    }
}
