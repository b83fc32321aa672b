//! The HTTP API's query parsing (`garou_gateway::http::query`) and the upload checks on
//! hostile bytes: the history API's `?after=&before=&limit=&ticket=`, the upload API's
//! `?ticket=&name=`, and the upload's `Content-Type`.
//!
//! Input: `[selector (1 byte)] [rest]`; the rest (lossily UTF-8) is the query string, and
//! with the selector's low bit set also a content type. Checked:
//! - no panic; a query over the cap is refused before it is looked at;
//! - a page query's limit is within `1..=MAX_LIMIT`;
//! - whatever parses re-encodes (percent-encoding every byte but unreserved ones) to a query
//!   that parses to the same value (decoding is a function of the encoded form);
//! - an accepted content type is short, printable ASCII, with a `/`.
#![no_main]

use std::fmt::Write;

use garou_gateway::config::ServerConfig;
use garou_gateway::http::query::{page_query, ticket_query, QueryError, MAX_LIMIT, MAX_QUERY};
use garou_gateway::uploads::{accepted_type, valid_name};
use libfuzzer_sys::fuzz_target;

/// Percent-encode everything but RFC 3986 unreserved bytes.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else { return };
    let query = String::from_utf8_lossy(rest);

    match page_query(&query) {
        Ok(p) => {
            assert!(query.len() <= MAX_QUERY);
            assert!((1..=MAX_LIMIT).contains(&p.limit()));
            let mut again = String::from("x=1");
            if let Some(l) = p.limit {
                write!(again, "&limit={l}").unwrap();
            }
            if let Some(a) = p.after {
                write!(again, "&after={a}").unwrap();
            }
            if let Some(b) = p.before {
                write!(again, "&before={b}").unwrap();
            }
            if let Some(t) = &p.ticket {
                write!(again, "&ticket={}", encode(t)).unwrap();
            }
            if again.len() <= MAX_QUERY {
                assert_eq!(page_query(&again), Ok(p), "page query does not round-trip");
            }
        }
        Err(QueryError::TooLong) => assert!(query.len() > MAX_QUERY),
        Err(QueryError::Invalid(_)) => assert!(query.len() <= MAX_QUERY),
    }

    match ticket_query(&query) {
        Ok(t) => {
            let mut again = String::from("x=1");
            if let Some(ticket) = &t.ticket {
                write!(again, "&ticket={}", encode(ticket)).unwrap();
            }
            if let Some(name) = &t.name {
                write!(again, "&name={}", encode(name)).unwrap();
                let _ = valid_name(name);
            }
            if again.len() <= MAX_QUERY {
                assert_eq!(ticket_query(&again), Ok(t), "ticket query does not round-trip");
            }
        }
        Err(QueryError::TooLong) => assert!(query.len() > MAX_QUERY),
        Err(QueryError::Invalid(_)) => assert!(query.len() <= MAX_QUERY),
    }

    if selector & 1 == 1 {
        thread_local!(static CFG: ServerConfig = ServerConfig::default());
        CFG.with(|cfg| {
            if let Some(ct) = accepted_type(cfg, &query) {
                assert!(!ct.is_empty() && ct.len() <= 255 && ct.contains('/'), "{ct:?}");
                assert!(ct.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{ct:?}");
            }
        });
    }
});
