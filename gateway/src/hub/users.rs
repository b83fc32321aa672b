//! Who is who: users and their nicks, signing in (open dev mode, guests, tokens) and out,
//! `/nick`, and the renaming of a guest whose nick a registered user signs in with.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use garou_protocol::*;

use super::commit::Refusal;
use super::resume::ResumeTokens;
use super::{err, reply_later, Hub, Reply};
use crate::conn::{Conn, ConnId};
use crate::store::Op;

pub(super) struct User {
    pub(super) nick: String,
    pub(super) conns: Vec<Arc<Conn>>,
    pub(super) rooms: HashSet<Arc<str>>,
    /// Anonymous guest: read-only everywhere, never stored.
    pub(super) guest: bool,
    /// Roles granted by the user's token, per room (applied when joining).
    pub(super) grants: HashMap<String, Role>,
}

impl User {
    pub(super) fn new(nick: String, guest: bool) -> User {
        User {
            nick,
            conns: Vec::new(),
            rooms: HashSet::new(),
            guest,
            grants: HashMap::new(),
        }
    }
}

#[derive(Default)]
pub(super) struct Users {
    pub(super) by_nick: HashMap<String, UserId>,
    pub(super) by_id: HashMap<UserId, User>,
    /// Token subject (`sub`) -> user.
    pub(super) by_subject: HashMap<String, UserId>,
    /// Resume tokens of live and recently lost sessions.
    pub(super) resume: ResumeTokens,
}

impl Users {
    /// `wanted` made into a valid nick: invalid characters dropped, at most 26 kept
    /// (room for a `-N` suffix), `user` when nothing is left.
    pub(super) fn base_nick(wanted: &str) -> String {
        let base: String = wanted
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(26)
            .collect();
        if base.is_empty() {
            "user".into()
        } else {
            base
        }
    }

    /// `wanted` made into a valid nick nobody has: [`Users::base_nick`], then `-2`, `-3`,
    /// ... appended while taken.
    pub(super) fn free_nick(&self, wanted: &str) -> String {
        let base = Users::base_nick(wanted);
        if !self.by_nick.contains_key(&base) {
            return base;
        }
        (2u64..)
            .map(|n| format!("{base}-{n}"))
            .find(|n| !self.by_nick.contains_key(n))
            .expect("some suffix is free")
    }
}

/// A guest renamed because a registered user signed in with its nick.
pub(super) struct Displaced {
    pub(super) user: UserId,
    pub(super) nick: String,
    pub(super) conns: Vec<Arc<Conn>>,
    pub(super) rooms: Vec<Arc<str>>,
}

/// Valid nicks: 1-32 chars of letters, digits, `_`, `-`, `.`.
pub fn valid_nick(nick: &str) -> bool {
    (1..=32).contains(&nick.chars().count())
        && nick
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Hub {
    /// Check `credentials` ([`crate::auth`]) and attach the connection `make_conn` builds
    /// for the user. Open dev mode and guests claim a nick (free, or owned by an offline
    /// user of the same kind, whose rooms are then yours again); a token user is found by
    /// its subject, or created with its name made unique, and may have several connections.
    pub fn login(
        &self,
        credentials: &Credentials,
        make_conn: impl FnOnce(UserId) -> Arc<Conn>,
    ) -> Result<(Arc<Conn>, String), (ErrorCode, String)> {
        self.login_resuming(credentials, &ResumeToken::default(), make_conn)
    }

    /// [`Hub::login`], offering the resume token of the client's previous session: when it
    /// is a valid token of the user the credentials name, that session is taken over (closed
    /// with [`ErrorCode::SessionReplaced`], its nick given to this one at once). Any other
    /// token (another user's, expired, forged, malformed) is ignored: the login goes on as
    /// without one.
    pub fn login_resuming(
        &self,
        credentials: &Credentials,
        resume: &ResumeToken,
        make_conn: impl FnOnce(UserId) -> Arc<Conn>,
    ) -> Result<(Arc<Conn>, String), (ErrorCode, String)> {
        use crate::auth::Identity;
        let identity = self
            .cfg
            .auth
            .verify(credentials)
            .map_err(|e| (e.code(), e.to_string()))?;
        let mut displaced = None;
        let mut replaced = None;
        let (conn, nick) = {
            let mut users = self.users.lock();
            let (user, old) = match identity {
                Identity::Open { nick } => self.claim_nick(&mut users, &nick, false, resume)?,
                Identity::Guest { nick } => self.claim_nick(&mut users, &nick, true, resume)?,
                Identity::Token {
                    subject,
                    name,
                    grants,
                } => {
                    let id = match users.by_subject.get(&subject) {
                        Some(&id) if users.by_id.contains_key(&id) => id,
                        _ => {
                            let id = self.next_id();
                            // Registered names win over guests: a guest holding this
                            // user's name gives it up (renamed, and told, below).
                            let wanted = Users::base_nick(&name);
                            let guest = users
                                .by_nick
                                .get(&wanted)
                                .copied()
                                .filter(|g| users.by_id.get(g).is_some_and(|u| u.guest));
                            let nick = match guest {
                                Some(_) => wanted.clone(),
                                None => users.free_nick(&name),
                            };
                            self.commits.push(
                                vec![
                                    Op::User {
                                        id,
                                        nick: nick.clone(),
                                    },
                                    Op::Subject {
                                        subject: subject.clone(),
                                        user: id,
                                    },
                                ],
                                None,
                            )?;
                            if let Some(guest) = guest {
                                displaced = Some(Self::displace_guest(&mut users, guest, &wanted));
                            }
                            users.by_nick.insert(nick.clone(), id);
                            users.by_id.insert(id, User::new(nick, false));
                            users.by_subject.insert(subject, id);
                            id
                        }
                    };
                    users.by_id.get_mut(&id).expect("user present").grants = grants;
                    // A token user may hold several sessions: a valid resume token only
                    // closes the stale one it was issued to.
                    let old = if resume.is_empty() {
                        None
                    } else {
                        users.resume.take(resume, id)
                    };
                    (id, old)
                }
            };
            let u = users.by_id.get_mut(&user).expect("user present");
            if let Some(pos) = old.and_then(|old| u.conns.iter().position(|c| c.id == old)) {
                replaced = Some(u.conns.remove(pos));
            }
            let conn = make_conn(user);
            u.conns.push(conn.clone());
            (conn, u.nick.clone())
        };
        self.conns.lock().insert(conn.id, conn.clone());
        if let Some(old) = replaced {
            tracing::info!(
                user = conn.user,
                old = old.id,
                new = conn.id,
                "session taken over with its resume token"
            );
            old.kill(
                ErrorCode::SessionReplaced,
                "a new session of this client took over (resume token)",
            );
            // Out of its rooms now: its events go to the new session only.
            self.disconnect(&old);
        }
        if let Some(d) = displaced {
            self.tell_displaced(d, &nick);
        }
        Ok((conn, nick))
    }

    /// Rename guest `id`, who holds `name`, out of the way of the registered user taking
    /// it: `name-guest` (made unique). The caller then gives `name` to the registered user.
    pub(super) fn displace_guest(users: &mut Users, id: UserId, name: &str) -> Displaced {
        let nick = users.free_nick(&format!("{name}-guest"));
        users.by_nick.remove(name);
        users.by_nick.insert(nick.clone(), id);
        let u = users.by_id.get_mut(&id).expect("guest present");
        u.nick = nick.clone();
        Displaced {
            user: id,
            nick,
            conns: u.conns.clone(),
            rooms: u.rooms.iter().cloned().collect(),
        }
    }

    /// Tell a renamed guest's sessions why (a non-fatal Error frame without a request id)
    /// and its rooms its new nick (MemberUpdated), as a `/nick` would.
    pub(super) fn tell_displaced(&self, d: Displaced, taken: &str) {
        tracing::info!(user = d.user, nick = %d.nick, taken, "guest renamed: a registered user signed in with its nick");
        let notice = Message::Error(Error {
            req: None,
            code: ErrorCode::NickUnavailable,
            message: format!(
                "the nick {taken} belongs to a registered user who just signed in; you are now {}",
                d.nick
            ),
        });
        for c in &d.conns {
            c.control(&notice);
        }
        if let Err((code, reason)) = self.rename_in_rooms(d.user, &d.nick, d.rooms) {
            tracing::warn!(?code, %reason, "could not announce a guest's new nick");
        }
    }

    pub(super) fn set_nick(&self, conn: &Arc<Conn>, m: SetNick) -> Reply {
        let nick = m.nick.trim().to_owned();
        if !valid_nick(&nick) {
            return err(
                ErrorCode::NickUnavailable,
                "nick must be 1-32 letters, digits, _ - .",
            );
        }
        let rooms = {
            let mut users = self.users.lock();
            match users.by_nick.get(&nick) {
                Some(&id) if id == conn.user => return Ok(Some(NickOk { req: m.req, nick }.into())),
                Some(_) => return err(ErrorCode::NickUnavailable, format!("nick {nick} is in use")),
                None => {}
            }
            let Some(user) = users.by_id.get_mut(&conn.user) else {
                return err(ErrorCode::Internal, "unknown user");
            };
            let old = std::mem::replace(&mut user.nick, nick.clone());
            let rooms: Vec<_> = user.rooms.iter().cloned().collect();
            users.by_nick.remove(&old);
            users.by_nick.insert(nick.clone(), conn.user);
            rooms
        };
        let ok = NickOk {
            req: m.req,
            nick: nick.clone(),
        }
        .into();
        if self.is_guest(conn.user) {
            // Guests are never stored: a stored nick would come back as a registered user
            // after a restart, holding that name against its real owner.
            self.rename_in_rooms(conn.user, &nick, rooms)?;
            return Ok(Some(ok));
        }
        let user_op = Op::User {
            id: conn.user,
            nick: nick.clone(),
        };
        self.commits.push(vec![user_op], Some(reply_later(conn, ok)))?;
        self.rename_in_rooms(conn.user, &nick, rooms)?;
        Ok(None)
    }

    /// Set `user`'s nick in each of `rooms` and publish MemberUpdated there.
    pub(super) fn rename_in_rooms(
        &self,
        user: UserId,
        nick: &str,
        rooms: Vec<Arc<str>>,
    ) -> Result<(), Refusal> {
        for name in rooms {
            let Some(room) = self.room(&name) else { continue };
            let mut st = room.state.lock();
            let Some(role) = st.core.role_of(user) else {
                continue;
            };
            let (slot, now) = (self.commits.reserve(), self.now());
            let publish = st
                .core
                .rename_member(user, nick.to_owned(), role, Vec::new(), None, slot, now)?;
            room.execute(publish, None, None, None);
        }
        Ok(())
    }

    /// Nick login (open dev mode or guest): the nick's offline user of the same kind, or a
    /// new user (guests are never stored).
    /// A nick in use is claimed only with `resume`, a valid resume token of its user's
    /// session (consumed here; the caller then takes that session over).
    pub(super) fn claim_nick(
        &self,
        users: &mut Users,
        nick: &str,
        guest: bool,
        resume: &ResumeToken,
    ) -> Result<(UserId, Option<ConnId>), Refusal> {
        if !valid_nick(nick) {
            return err(
                ErrorCode::NickUnavailable,
                "nick must be 1-32 letters, digits, _ - .",
            );
        }
        if let Some(&id) = users.by_nick.get(nick) {
            let u = &users.by_id[&id];
            if let [only] = &u.conns[..] {
                // Its session may be stale (a client gone without closing): the client
                // holding its token takes it, and so the nick, over.
                let only = only.id;
                let old = match resume.is_empty() {
                    true => None,
                    false => users.resume.take(resume, id),
                };
                if old != Some(only) {
                    return err(ErrorCode::NickUnavailable, format!("nick {nick} is in use"));
                }
                return Ok((id, old));
            }
            if !u.conns.is_empty() {
                return err(ErrorCode::NickUnavailable, format!("nick {nick} is in use"));
            }
            if guest && !u.guest {
                return err(
                    ErrorCode::NickUnavailable,
                    format!("nick {nick} belongs to a registered user"),
                );
            }
            return Ok((id, None));
        }
        let id = self.next_id();
        if guest {
            self.guests.write().insert(id);
        } else {
            self.commits.push(
                vec![Op::User {
                    id,
                    nick: nick.to_owned(),
                }],
                None,
            )?;
        }
        users.by_nick.insert(nick.to_owned(), id);
        users.by_id.insert(id, User::new(nick.to_owned(), guest));
        Ok((id, None))
    }

    /// A new resume token for session `conn` (sent in its Welcome).
    pub fn issue_resume_token(&self, conn: &Conn) -> ResumeToken {
        self.users.lock().resume.issue(conn.id, conn.user)
    }

    /// Session `conn` ended; `clean`: its client closed it, so its resume token is
    /// forgotten (else it stays valid for `resume_token_ttl`).
    pub fn session_ended(&self, conn: &Conn, clean: bool) {
        self.users.lock().resume.ended(conn.id, clean);
    }

    /// Whether `user` is an anonymous guest.
    pub fn is_guest(&self, user: UserId) -> bool {
        self.guests.read().contains(&user)
    }

    /// The connection is gone: unsubscribe it everywhere; the user goes offline with its last one.
    pub fn disconnect(&self, conn: &Conn) {
        if self.conns.lock().remove(&conn.id).is_none() {
            return;
        }
        self.peers.remove(conn.id);
        let (rooms, offline, nick) = {
            let mut users = self.users.lock();
            let Some(user) = users.by_id.get_mut(&conn.user) else {
                return;
            };
            user.conns.retain(|c| c.id != conn.id);
            (
                user.rooms.iter().cloned().collect::<Vec<_>>(),
                user.conns.is_empty(),
                user.nick.clone(),
            )
        };
        let mut told: HashSet<ConnId> = HashSet::new();
        let mut audience: Vec<Arc<Conn>> = Vec::new();
        for name in rooms {
            let Some(room) = self.room(&name) else { continue };
            let mut st = room.state.lock();
            room.unsubscribe(&mut st, |c| c.id == conn.id);
            if offline {
                audience.extend(
                    st.subs
                        .iter()
                        .filter(|s| told.insert(s.conn.id))
                        .map(|s| s.conn.clone()),
                );
            }
        }
        if offline {
            // Once per connection, however many rooms it shares with the user.
            let frame = Message::from(Presence {
                user: conn.user,
                nick,
                online: false,
            })
            .encode();
            for c in audience {
                c.datagram(frame.clone());
            }
        }
    }

    pub(super) fn nick_of(&self, user: UserId) -> String {
        self.users
            .lock()
            .by_id
            .get(&user)
            .map(|u| u.nick.clone())
            .unwrap_or_default()
    }

    /// The user a token subject signed in as, if it ever did.
    pub fn user_by_subject(&self, subject: &str) -> Option<UserId> {
        self.users.lock().by_subject.get(subject).copied()
    }
}
