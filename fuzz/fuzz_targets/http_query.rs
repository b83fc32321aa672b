//! The HTTP API's query and header parsing (`garou_gateway::http_query`, `uploads`) on
//! hostile bytes: the history API's `?after=&before=&limit=`, the upload API's
//! `?ticket=&name=`, `Content-Length` and `Content-Type`.
//!
//! Input: `[selector (1 byte)] [rest]`; the selector's low bits pick which header the rest
//! also feeds, the rest (lossily UTF-8) is the query string. Checked:
//! - no panic; a query over the cap is refused before it is looked at;
//! - a page query's limit is within `1..=MAX_PAGE_LIMIT`;
//! - whatever parses re-encodes (percent-encoding every byte but unreserved ones) to a query
//!   that parses to the same value (decoding is a function of the encoded form);
//! - a decoded component is never longer than its encoded form;
//! - `content_length` agrees with `u64::from_str` on digit-only strings and refuses the rest;
//! - an accepted content type is lowercase, short, printable ASCII, with a `/`.
#![no_main]

use std::fmt::Write;

use garou_gateway::config::ServerConfig;
use garou_gateway::http_query::{
    content_length, decode_component, parse_page_query, parse_ticket_query, QueryError,
    MAX_PAGE_LIMIT, MAX_QUERY_LEN,
};
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

    // Every key/value pair decodes to no more bytes than it had.
    for part in query.split('&') {
        for piece in part.splitn(2, '=') {
            let d = decode_component(piece);
            assert!(d.len() <= piece.len(), "decoding grew {piece:?}");
            if !piece.contains(['%', '+']) {
                assert_eq!(d, piece);
            }
        }
    }

    match parse_page_query(&query) {
        Ok(p) => {
            assert!((1..=MAX_PAGE_LIMIT).contains(&p.limit));
            let mut again = format!("limit={}", p.limit);
            if let Some(a) = p.after {
                write!(again, "&after={a}").unwrap();
            }
            if let Some(b) = p.before {
                write!(again, "&before={b}").unwrap();
            }
            assert_eq!(parse_page_query(&again), Ok(p), "page query does not round-trip");
        }
        Err(QueryError::TooLong(n)) => assert!(n > MAX_QUERY_LEN && n == query.len()),
        Err(_) => assert!(query.len() <= MAX_QUERY_LEN),
    }

    match parse_ticket_query(&query) {
        Ok(t) => {
            let mut again = String::from("x=1");
            if let Some(ticket) = &t.ticket {
                write!(again, "&ticket={}", encode(ticket)).unwrap();
            }
            if let Some(name) = &t.name {
                write!(again, "&name={}", encode(name)).unwrap();
                let _ = valid_name(name);
            }
            if again.len() <= MAX_QUERY_LEN {
                assert_eq!(parse_ticket_query(&again), Ok(t), "ticket query does not round-trip");
            }
        }
        Err(QueryError::TooLong(n)) => assert!(n > MAX_QUERY_LEN),
        Err(e) => assert!(matches!(e, QueryError::Duplicate(_)), "unexpected {e:?}"),
    }

    if selector & 1 == 1 {
        let digits = !rest.is_empty() && rest.iter().all(u8::is_ascii_digit);
        let n = content_length(rest);
        if digits {
            assert_eq!(n, query.parse::<u64>().ok());
        } else {
            assert_eq!(n, None);
        }
    }
    if selector & 2 == 2 {
        thread_local!(static CFG: ServerConfig = ServerConfig::default());
        CFG.with(|cfg| {
            if let Some(ct) = accepted_type(cfg, &query) {
                assert!(!ct.is_empty() && ct.len() <= 127 && ct.contains('/'));
                assert!(ct.bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
            }
        });
    }
});
