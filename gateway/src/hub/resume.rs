//! Resume tokens: the proof a returning client gives that it is the same session, so it
//! takes its stale session over at once instead of being refused its own nick.
//!
//! One token per live session, issued with its Welcome (a new one every session). A token
//! is `<session hex>.<128 random bits, hex>`: the first part finds the entry, the secret is
//! compared in constant time. A token is consumed when it is used, forgotten when its
//! session ends cleanly (the client closed), and kept for `ttl` after a session that ended
//! otherwise (lost, timed out), so the set stays bounded by the live sessions plus those
//! that ended within `ttl`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use garou_protocol::{ResumeToken, UserId, MAX_RESUME_TOKEN};

use crate::conn::ConnId;

/// Random bytes of a token's secret (128 bits).
const SECRET: usize = 16;

struct Entry {
    user: UserId,
    secret: [u8; SECRET],
    /// When a token whose session has ended stops being valid (`None` while it lives).
    expires: Option<Instant>,
}

/// The resume tokens of live and recently ended sessions.
pub(super) struct ResumeTokens {
    ttl: Duration,
    entries: HashMap<ConnId, Entry>,
    /// Ended sessions in the order they ended (so in expiry order, `ttl` being fixed).
    ended: VecDeque<(Instant, ConnId)>,
}

impl Default for ResumeTokens {
    fn default() -> Self {
        ResumeTokens::new(Duration::from_secs(600))
    }
}

impl ResumeTokens {
    /// Tokens that stay valid `ttl` after their session ended.
    pub(super) fn new(ttl: Duration) -> Self {
        ResumeTokens {
            ttl,
            entries: HashMap::new(),
            ended: VecDeque::new(),
        }
    }

    /// A new token for session `conn` of `user` (replacing any it had).
    pub(super) fn issue(&mut self, conn: ConnId, user: UserId) -> ResumeToken {
        self.purge(Instant::now());
        let secret: [u8; SECRET] = rand::random();
        self.entries.insert(
            conn,
            Entry {
                user,
                secret,
                expires: None,
            },
        );
        let token = format!("{conn:x}.{}", hex::encode(secret));
        debug_assert!(token.len() <= MAX_RESUME_TOKEN);
        ResumeToken::new(token)
    }

    /// If `token` is a valid token of `user`, consume it and return the session it was
    /// issued to (which may have ended already). A token of another user, a wrong secret,
    /// an expired or malformed token: `None`, and nothing is consumed.
    pub(super) fn take(&mut self, token: &ResumeToken, user: UserId) -> Option<ConnId> {
        let now = Instant::now();
        self.purge(now);
        let (conn, secret) = parse(token.as_str())?;
        let entry = self.entries.get(&conn)?;
        let valid = constant_time_eq(&entry.secret, &secret)
            && entry.user == user
            && entry.expires.is_none_or(|at| now < at);
        if !valid {
            return None;
        }
        self.entries.remove(&conn);
        Some(conn)
    }

    /// Session `conn` ended: its token is forgotten if the client closed it (`clean`),
    /// else kept for the ttl.
    pub(super) fn ended(&mut self, conn: ConnId, clean: bool) {
        let now = Instant::now();
        self.purge(now);
        if clean || self.ttl.is_zero() {
            self.entries.remove(&conn);
            return;
        }
        if let Some(e) = self.entries.get_mut(&conn) {
            if e.expires.is_none() {
                let at = now + self.ttl;
                e.expires = Some(at);
                self.ended.push_back((at, conn));
            }
        }
    }

    /// Tokens held (live and recently ended sessions).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn purge(&mut self, now: Instant) {
        while let Some(&(at, conn)) = self.ended.front() {
            if at > now {
                break;
            }
            self.ended.pop_front();
            if self.entries.get(&conn).is_some_and(|e| e.expires == Some(at)) {
                self.entries.remove(&conn);
            }
        }
    }
}

/// The session id and secret of a well-formed token.
fn parse(token: &str) -> Option<(ConnId, [u8; SECRET])> {
    let (conn, secret) = token.split_once('.')?;
    if conn.is_empty() || conn.len() > 16 || secret.len() != SECRET * 2 {
        return None;
    }
    let conn = ConnId::from_str_radix(conn, 16).ok()?;
    let mut bytes = [0u8; SECRET];
    hex::decode_to_slice(secret, &mut bytes).ok()?;
    Some((conn, bytes))
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; SECRET], b: &[u8; SECRET]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_valid_once_for_its_own_user_only() {
        let mut t = ResumeTokens::default();
        let token = t.issue(7, 100);
        assert_eq!(t.take(&token, 101), None, "another user's token");
        let mut forged = token.as_str().to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(t.take(&ResumeToken::new(forged), 100), None, "wrong secret");
        for garbage in ["", ".", "7.", "zz.00", "7.xyz", &"f".repeat(64)] {
            assert_eq!(t.take(&ResumeToken::new(garbage), 100), None, "{garbage:?}");
        }
        assert_eq!(t.take(&token, 100), Some(7));
        assert_eq!(t.take(&token, 100), None, "consumed");
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn tokens_are_forgotten_on_a_clean_end_and_expire_after_an_unclean_one() {
        let mut t = ResumeTokens::new(Duration::from_millis(1));
        let clean = t.issue(1, 10);
        let lost = t.issue(2, 20);
        t.ended(1, true);
        assert_eq!(t.take(&clean, 10), None);
        t.ended(2, false);
        assert_eq!(t.len(), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(t.take(&lost, 20), None, "expired");
        assert_eq!(t.len(), 0);
        // Within the ttl, a lost session's token still works.
        let mut t = ResumeTokens::new(Duration::from_secs(600));
        let lost = t.issue(3, 30);
        t.ended(3, false);
        assert_eq!(t.take(&lost, 30), Some(3));
    }
}
