//! Who a connection is: JWTs checked against configured keys, anonymous guests, or the open
//! dev mode's bare nick.
//!
//! With no key configured the gateway is in open dev mode (a nick alone makes a full
//! member) so a first run works without setup; with a key, a client proves who it is with
//! a token (HS256 with a shared secret, or EdDSA / RS256 with a public key — the private
//! key stays with the service that issues tokens), or, when allowed, comes in as an
//! anonymous, read-only guest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use garou_protocol::{Credentials, ErrorCode, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// `[auth]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 shared secret (`garou token` signs with it).
    pub secret: Option<String>,
    /// PEM public key file for EdDSA (Ed25519) or RS256 tokens.
    pub public_key: Option<PathBuf>,
    /// Let clients without a token in as read-only guests (only when a key is configured).
    pub allow_guests: bool,
    /// Required `aud` claim, if set.
    pub audience: Option<String>,
    /// Required `iss` claim, if set.
    pub issuer: Option<String>,
}

/// The claims Garou reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user's stable id in the issuing system.
    pub sub: String,
    /// Display name, used as the nick (made unique if taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the epoch (required).
    pub exp: u64,
    /// Not before, seconds since the epoch (optional): a token presented earlier than this
    /// (with the same leeway as `exp`) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Room grants: room name -> role (`guest`, `member`, `moderator`, `admin`, `owner`)
    /// the user gets when joining it.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub rooms: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// A connection's proven identity.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// Open dev mode: the nick is the identity.
    Open { nick: String },
    /// A verified token.
    Token {
        subject: String,
        name: String,
        grants: HashMap<String, Role>,
    },
    /// An anonymous guest: read-only everywhere.
    Guest { nick: String },
}

/// Why credentials were refused (sent in AuthError, then the connection closes).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("bad token signature")]
    BadSignature,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("this gateway requires a token (anonymous guests are not allowed)")]
    TokenRequired,
    #[error("token auth is not configured on this gateway; send a nick")]
    NotConfigured,
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::AuthFailed
    }
}

/// Errors reading the configured keys (at start).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: not an Ed25519 or RSA public key in PEM")]
    Pem(PathBuf),
    #[error("no auth secret configured: set [auth] secret or GAROU_AUTH__SECRET")]
    NoSecret,
    #[error("signing: {0}")]
    Sign(String),
}

/// The verifier built from [`AuthConfig`].
#[derive(Clone)]
pub struct Auth {
    keys: Vec<(DecodingKey, Algorithm)>,
    allow_guests: bool,
    audience: Option<String>,
    issuer: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys.iter().map(|(_, a)| a).collect::<Vec<_>>())
            .field("allow_guests", &self.allow_guests)
            .finish()
    }
}

impl Auth {
    /// Open dev mode: no keys.
    pub fn open() -> Auth {
        Auth {
            keys: Vec::new(),
            allow_guests: false,
            audience: None,
            issuer: None,
        }
    }

    /// Read the configured keys.
    pub fn from_config(cfg: &AuthConfig) -> Result<Auth, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = &cfg.secret {
            keys.push((DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256));
        }
        if let Some(path) = &cfg.public_key {
            let pem = std::fs::read(path).map_err(|e| KeyError::Read(path.clone(), e))?;
            let key = if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
                (k, Algorithm::EdDSA)
            } else if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                (k, Algorithm::RS256)
            } else {
                return Err(KeyError::Pem(path.clone()));
            };
            keys.push(key);
        }
        Ok(Auth {
            keys,
            allow_guests: cfg.allow_guests,
            audience: cfg.audience.clone(),
            issuer: cfg.issuer.clone(),
        })
    }

    /// True when no key is configured (open dev mode).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check credentials.
    pub fn verify(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
        match credentials {
            Credentials::Nick(nick) if self.is_open() => Ok(Identity::Open {
                nick: nick.trim().to_owned(),
            }),
            Credentials::Nick(nick) if self.allow_guests => Ok(Identity::Guest {
                nick: nick.trim().to_owned(),
            }),
            Credentials::Nick(_) => Err(AuthError::TokenRequired),
            Credentials::Token(_) if self.is_open() => Err(AuthError::NotConfigured),
            Credentials::Token(token) => self.verify_token(token),
        }
    }

    fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let Some((key, alg)) = self.keys.iter().find(|(_, a)| *a == header.alg) else {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted here",
                header.alg
            )));
        };
        let mut v = Validation::new(*alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        match &self.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                _ => AuthError::Invalid(e.to_string()),
            }
        })?;
        let c = data.claims;
        if c.sub.is_empty() || c.sub.len() > 256 {
            return Err(AuthError::Invalid("sub must be 1-256 bytes".into()));
        }
        let name = c
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| c.sub.clone());
        let mut grants = HashMap::with_capacity(c.rooms.len());
        for (room, role) in c.rooms {
            let role =
                Role::parse(&role).ok_or_else(|| AuthError::Invalid(format!("unknown role {role:?}")))?;
            grants.insert(room, role);
        }
        Ok(Identity::Token {
            subject: c.sub,
            name,
            grants,
        })
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mint an HS256 token (`garou token`, tests).
pub fn mint(secret: &str, claims: &Claims) -> Result<String, KeyError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| KeyError::Sign(e.to_string()))
}

/// Parse a duration like `90s`, `15m`, `1h`, `7d` (or plain seconds).
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("bad duration unit in {s:?} (use s, m, h or d)")),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(secret: &str) -> Auth {
        Auth::from_config(&AuthConfig {
            secret: Some(secret.into()),
            ..Default::default()
        })
        .unwrap()
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "u-1".into(),
            name: Some("ann".into()),
            exp,
            nbf: None,
            rooms: HashMap::from([("ops".to_owned(), "admin".to_owned())]),
            aud: None,
            iss: None,
        }
    }

    #[test]
    fn hs256_round_trip_with_grants() {
        let t = mint("s3cret", &claims(now_secs() + 60)).unwrap();
        let id = hs("s3cret").verify(&Credentials::Token(t)).unwrap();
        assert_eq!(
            id,
            Identity::Token {
                subject: "u-1".into(),
                name: "ann".into(),
                grants: HashMap::from([("ops".to_owned(), Role::Admin)]),
            }
        );
    }

    #[test]
    fn expired_and_forged_tokens_are_refused() {
        let old = mint("s3cret", &claims(now_secs() - 3600)).unwrap();
        assert_eq!(
            hs("s3cret").verify(&Credentials::Token(old)),
            Err(AuthError::Expired)
        );
        let forged = mint("other", &claims(now_secs() + 60)).unwrap();
        assert_eq!(
            hs("s3cret").verify(&Credentials::Token(forged)),
            Err(AuthError::BadSignature)
        );
        assert!(matches!(
            hs("s3cret").verify(&Credentials::Token("not.a.jwt".into())),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_used_before_its_nbf_is_refused_with_the_exp_leeway() {
        let now = now_secs();
        let early = Claims {
            nbf: Some(now + 3600),
            ..claims(now + 7200)
        };
        let t = mint("s3cret", &early).unwrap();
        assert_eq!(
            hs("s3cret").verify(&Credentials::Token(t)),
            Err(AuthError::NotYetValid)
        );
        // Within the leeway (clock skew between issuer and gateway), and in the past: fine.
        for nbf in [now + LEEWAY_SECS / 2, now - 60] {
            let t = mint(
                "s3cret",
                &Claims {
                    nbf: Some(nbf),
                    ..claims(now + 60)
                },
            )
            .unwrap();
            assert!(
                matches!(
                    hs("s3cret").verify(&Credentials::Token(t)),
                    Ok(Identity::Token { .. })
                ),
                "nbf {nbf} (now {now})"
            );
        }
    }

    #[test]
    fn eddsa_public_key() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pub.pem");
        std::fs::write(&path, kp.public_key_pem()).unwrap();
        let auth = Auth::from_config(&AuthConfig {
            public_key: Some(path),
            ..Default::default()
        })
        .unwrap();
        let key = EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap();
        let t = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims(now_secs() + 60), &key).unwrap();
        assert!(matches!(
            auth.verify(&Credentials::Token(t)),
            Ok(Identity::Token { .. })
        ));
        // An HS256 token is not accepted where only the public key is configured.
        let hs = mint("x", &claims(now_secs() + 60)).unwrap();
        assert!(matches!(
            auth.verify(&Credentials::Token(hs)),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn guests_and_open_mode() {
        assert_eq!(
            Auth::open().verify(&Credentials::Nick(" bob ".into())),
            Ok(Identity::Open { nick: "bob".into() })
        );
        assert_eq!(
            Auth::open().verify(&Credentials::Token("x".into())),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(
            hs("s").verify(&Credentials::Nick("bob".into())),
            Err(AuthError::TokenRequired)
        );
        let guests = Auth::from_config(&AuthConfig {
            secret: Some("s".into()),
            allow_guests: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            guests.verify(&Credentials::Nick("bob".into())),
            Ok(Identity::Guest { nick: "bob".into() })
        );
    }

    #[test]
    fn ttl() {
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("2d"), Ok(172_800));
        assert!(parse_ttl("1y").is_err());
    }
}
