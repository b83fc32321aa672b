//! Pure parsers for what the HTTP API reads from a request's query string and headers:
//! `?after=&before=&limit=` of the history API and `?ticket=&name=` of the upload API.
//!
//! The handlers call these on the raw query (`axum::extract::RawQuery`) instead of a serde
//! extractor, so the parsing is a plain function that unit tests and the fuzz targets
//! (`fuzz/fuzz_targets/http_query.rs`) reach without a server. The rules are those of
//! `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte, a malformed `%` kept
//! as is, invalid UTF-8 replaced by U+FFFD), plus: the query is capped before anything is
//! allocated, a known parameter given twice is an error, unknown parameters are ignored.

use std::borrow::Cow;

/// Longest query string accepted, in bytes (a file name of 255 characters, percent-encoded,
/// and a ticket fit well below it).
pub const MAX_QUERY_LEN: usize = 4096;

/// History page size when `limit` is absent.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest history page; a larger `limit` is lowered to it (and 0 raised to 1).
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// Why a query string was refused (answered with 400 Bad Request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Longer than [`MAX_QUERY_LEN`].
    #[error("query string of {0} bytes, more than the {MAX_QUERY_LEN} allowed")]
    TooLong(usize),
    /// A parameter this endpoint reads was given more than once.
    #[error("parameter `{0}` given more than once")]
    Duplicate(&'static str),
    /// A numeric parameter that is not a decimal number in range.
    #[error("parameter `{0}` must be a decimal number in range")]
    BadNumber(&'static str),
}

/// `?after=&before=&limit=` of `GET /api/rooms/{room}/messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// Only messages after this offset.
    pub after: Option<u64>,
    /// Only messages before this offset.
    pub before: Option<u64>,
    /// Page size, within `1..=MAX_PAGE_LIMIT` (default [`DEFAULT_PAGE_LIMIT`]).
    pub limit: u32,
}

/// `?ticket=&name=` of `POST /api/uploads` and `GET /api/uploads/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketQuery {
    /// The live session's upload ticket.
    pub ticket: Option<String>,
    /// The file name of a POST (checked by [`crate::uploads::valid_name`] afterwards).
    pub name: Option<String>,
}

/// Percent-decode one form component (`+` is a space; a `%` not followed by two hex digits
/// is kept as is); borrows when there is nothing to decode.
pub fn decode_component(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: &u8) -> Option<u8> {
    char::from(*b).to_digit(16).map(|d| d as u8)
}

/// The decoded `(key, value)` pairs of a query string, after the length cap.
fn pairs(query: &str) -> Result<impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)>, QueryError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong(query.len()));
    }
    Ok(query.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode_component(k), decode_component(v))
    }))
}

/// Store `value` in `slot`, refusing a second one.
fn once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), QueryError> {
    if slot.replace(value).is_some() {
        return Err(QueryError::Duplicate(name));
    }
    Ok(())
}

/// Parse the query string (without the `?`) of the history API.
pub fn parse_page_query(query: &str) -> Result<PageQuery, QueryError> {
    let (mut after, mut before, mut limit) = (None, None, None);
    for (k, v) in pairs(query)? {
        match &*k {
            "after" => once(&mut after, "after", number::<u64>(&v, "after")?)?,
            "before" => once(&mut before, "before", number::<u64>(&v, "before")?)?,
            "limit" => once(&mut limit, "limit", number::<u32>(&v, "limit")?)?,
            _ => {}
        }
    }
    Ok(PageQuery {
        after,
        before,
        limit: limit.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT),
    })
}

/// Decimal digits only (no sign, no spaces), in range of `T`.
fn number<T: std::str::FromStr>(v: &str, name: &'static str) -> Result<T, QueryError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::BadNumber(name));
    }
    v.parse().map_err(|_| QueryError::BadNumber(name))
}

/// Parse the query string (without the `?`) of the upload API.
pub fn parse_ticket_query(query: &str) -> Result<TicketQuery, QueryError> {
    let mut q = TicketQuery::default();
    for (k, v) in pairs(query)? {
        match &*k {
            "ticket" => once(&mut q.ticket, "ticket", v.into_owned())?,
            "name" => once(&mut q.name, "name", v.into_owned())?,
            _ => {}
        }
    }
    Ok(q)
}

/// A `Content-Length` header value: decimal digits only, else `None` (hyper has already
/// refused a malformed one on the wire; this only reads it).
pub fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_query_defaults_clamps_and_refuses() {
        let q = |s| parse_page_query(s);
        assert_eq!(
            q(""),
            Ok(PageQuery {
                after: None,
                before: None,
                limit: DEFAULT_PAGE_LIMIT
            })
        );
        assert_eq!(
            q("after=5&limit=20&x=y&&before=%39"),
            Ok(PageQuery {
                after: Some(5),
                before: Some(9),
                limit: 20
            })
        );
        assert_eq!(q("limit=0").map(|p| p.limit), Ok(1));
        assert_eq!(q("limit=4000000000").map(|p| p.limit), Ok(MAX_PAGE_LIMIT));
        assert_eq!(q("limit=4294967296"), Err(QueryError::BadNumber("limit")));
        assert_eq!(q("after=1&after=2"), Err(QueryError::Duplicate("after")));
        assert_eq!(q("after="), Err(QueryError::BadNumber("after")));
        assert_eq!(q("after=+1"), Err(QueryError::BadNumber("after")));
        assert_eq!(q("before=-1"), Err(QueryError::BadNumber("before")));
        assert_eq!(q("%61fter=7").map(|p| p.after), Ok(Some(7)));
        let long = "a".repeat(MAX_QUERY_LEN + 1);
        assert_eq!(q(&long), Err(QueryError::TooLong(MAX_QUERY_LEN + 1)));
    }

    #[test]
    fn ticket_query_decodes_and_refuses_duplicates() {
        assert_eq!(
            parse_ticket_query("ticket=ab%2Bc&name=my+file%20%C3%A9.png"),
            Ok(TicketQuery {
                ticket: Some("ab+c".into()),
                name: Some("my file é.png".into()),
            })
        );
        assert_eq!(
            parse_ticket_query("name"),
            Ok(TicketQuery {
                ticket: None,
                name: Some(String::new())
            })
        );
        assert_eq!(
            parse_ticket_query("ticket=a&ticket=b"),
            Err(QueryError::Duplicate("ticket"))
        );
        // A malformed escape stays as written; invalid UTF-8 becomes U+FFFD.
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%4"), "%zz%4");
        assert_eq!(decode_component("%FF"), "\u{FFFD}");
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b"123"), Some(123));
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"+1"), None);
        assert_eq!(content_length(b"18446744073709551616"), None);
    }
}
