//! Upload bookkeeping shared by the sessions, the hub and the HTTP handlers: session
//! tickets, one lock per upload being written, the per-user upload rate, and the shape of
//! an upload id. A leaf: it names no other module of the gateway, so the hub may hold it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use garou_protocol::UserId;
use parking_lot::Mutex;

/// Shared upload state: session tickets and one lock per upload being written.
#[derive(Default)]
pub struct Registry {
    tickets: Mutex<HashMap<String, UserId>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Woken whenever a chunk was written.
    pub(crate) grew: tokio::sync::Notify,
    /// New uploads per user in the current window: (window start, count).
    started: Mutex<HashMap<UserId, (std::time::Instant, u32)>>,
}

/// Users tracked by the upload rate before windows that ended are swept out.
const RATE_TABLE: usize = 4096;

impl Registry {
    /// A new random ticket for `user`, valid until [`Registry::revoke`].
    pub fn issue(&self, user: UserId) -> String {
        let ticket = random_hex();
        self.tickets.lock().insert(ticket.clone(), user);
        ticket
    }

    pub fn revoke(&self, ticket: &str) {
        self.tickets.lock().remove(ticket);
    }

    /// The user a ticket belongs to.
    pub fn ticket_user(&self, ticket: &str) -> Option<UserId> {
        self.tickets.lock().get(ticket).copied()
    }

    /// Count a new upload of `user`: false if it is over `per_window` in the current
    /// `window` (0 = no limit).
    pub(crate) fn take_upload(&self, user: UserId, per_window: u32, window: Duration) -> bool {
        if per_window == 0 {
            return true;
        }
        let now = std::time::Instant::now();
        let mut started = self.started.lock();
        if started.len() >= RATE_TABLE {
            started.retain(|_, (since, _)| now.duration_since(*since) < window);
        }
        let (since, n) = started.entry(user).or_insert((now, 0));
        if now.duration_since(*since) >= window {
            (*since, *n) = (now, 0);
        }
        if *n >= per_window {
            return false;
        }
        *n += 1;
        true
    }

    /// Exclusive access to one upload's files (chunks, completion, HTTP upload).
    pub(crate) async fn lock(&self, id: &str) -> UploadLock<'_> {
        let mutex = self.locks.lock().entry(id.to_owned()).or_default().clone();
        UploadLock {
            registry: self,
            id: id.to_owned(),
            guard: Some(mutex.lock_owned().await),
        }
    }
}

/// Held while an upload's files change; the lock's map entry goes when nobody needs it.
pub(crate) struct UploadLock<'a> {
    registry: &'a Registry,
    id: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for UploadLock<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Clones are only taken under the map lock: a count of 1 means nobody waits.
        let mut locks = self.registry.locks.lock();
        if locks.get(&self.id).is_some_and(|m| Arc::strong_count(m) == 1) {
            locks.remove(&self.id);
        }
    }
}

/// 128 random bits as 32 lowercase hex digits (upload ids and tickets).
pub(crate) fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `id` looks like an upload id (so it is safe in a file name).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
