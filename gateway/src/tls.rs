//! The gateway's TLS identity.
//!
//! With no `--cert/--key` the gateway makes a fresh self-signed ECDSA P-256 certificate
//! valid for 14 days at every start: exactly what browsers accept for WebTransport's
//! `serverCertificateHashes` (P-256, at most 14 days), so the page can pin it by the
//! SHA-256 hash that `/cert-hash` serves and the log prints. With them, PEM files are
//! loaded (a CA-issued certificate, e.g. Let's Encrypt).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// Why an identity could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0} holds no certificate")]
    NoCert(String),
    #[error("{0} holds no private key")]
    NoKey(String),
    #[error("building the TLS config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate chain with its key, and the SHA-256 of the end-entity certificate.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the end-entity certificate's DER (what browsers pin).
    pub sha256: [u8; 32],
    /// True for the generated dev certificate.
    pub self_signed: bool,
}

impl Identity {
    /// A new self-signed ECDSA P-256 certificate for localhost, valid 14 days from a minute ago.
    pub fn self_signed() -> Result<Identity, TlsError> {
        let dev = DevCert::new(&DevCert::default_names(), BROWSER_MAX_DAYS)?;
        Ok(Identity {
            sha256: dev.sha256,
            chain: vec![dev.der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(dev.key_der.clone())),
            self_signed: true,
        })
    }

    /// Load a PEM chain and key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|source| TlsError::Read {
                path: cert.display().to_string(),
                source,
            })?;
        let first = chain
            .first()
            .ok_or_else(|| TlsError::NoCert(cert.display().to_string()))?;
        let sha256 = Sha256::digest(first).into();
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|source| TlsError::Read {
                path: key.display().to_string(),
                source,
            })?
            .ok_or_else(|| TlsError::NoKey(key.display().to_string()))?;
        Ok(Identity {
            chain,
            key,
            sha256,
            self_signed: false,
        })
    }

    /// Hex of [`Identity::sha256`].
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// A rustls server config offering `alpn` protocols, TLS 1.3 only (QUIC needs it).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        cfg.max_early_data_size = 0;
        Ok(Arc::new(cfg))
    }
}

/// The longest validity browsers accept for a certificate pinned by hash
/// (`serverCertificateHashes`): 14 days in total.
pub const BROWSER_MAX_DAYS: u32 = 14;

/// A self-signed ECDSA P-256 development certificate with its key, as DER and PEM: the
/// gateway makes one at every start without `--cert/--key`, `garou cert` writes one to
/// files (valid up to [`BROWSER_MAX_DAYS`] for browsers, longer for native clients that pin
/// by hash).
pub struct DevCert {
    /// The certificate (DER).
    pub der: CertificateDer<'static>,
    /// The PKCS#8 private key (DER).
    pub key_der: Vec<u8>,
    /// The certificate as PEM.
    pub cert_pem: String,
    /// The private key as PEM.
    pub key_pem: String,
    /// SHA-256 of [`DevCert::der`] (what browsers and `--cert-hash` pin).
    pub sha256: [u8; 32],
    /// End of validity.
    pub not_after: time::OffsetDateTime,
}

impl DevCert {
    /// The names a dev certificate covers by default: localhost, 127.0.0.1, ::1.
    pub fn default_names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    }

    /// A certificate for `names` (DNS names or IP addresses), valid `days` from a minute
    /// ago (a 14-day one ends two minutes early so its whole span stays within 14 days).
    pub fn new(names: &[String], days: u32) -> Result<DevCert, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::days(i64::from(days)) - time::Duration::minutes(2);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "garou dev certificate");
        let not_after = params.not_after;
        let cert = params.self_signed(&key)?;
        let der = cert.der().clone();
        Ok(DevCert {
            sha256: Sha256::digest(&der).into(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            der,
            not_after,
        })
    }

    /// Write `cert.pem` and `key.pem` (mode 0600 on Unix) into `dir`, creating it; returns
    /// their paths.
    pub fn write(&self, dir: &Path) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        std::io::Write::write_all(&mut opts.open(&key)?, self.key_pem.as_bytes())?;
        // `mode` only applies to a new file: an old key.pem gets it too.
        #[cfg(unix)]
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok((cert, key))
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            sha256: self.sha256,
            self_signed: self.self_signed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_p256_and_short_lived() {
        let id = Identity::self_signed().unwrap();
        assert_eq!(id.chain.len(), 1);
        assert_eq!(id.sha256_hex().len(), 64);
        let again = Identity::self_signed().unwrap();
        assert_ne!(id.sha256, again.sha256, "a new certificate at every start");
        // Round trip through PEM files.
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::CertifiedKey {
            cert: rcgen::CertificateParams::new(vec!["localhost".into()])
                .unwrap()
                .self_signed(&rcgen::KeyPair::generate().unwrap())
                .unwrap(),
            key_pair: rcgen::KeyPair::generate().unwrap(),
        };
        std::fs::write(dir.path().join("c.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), cert.key_pair.serialize_pem()).unwrap();
        let loaded = Identity::from_pem_files(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap();
        assert!(!loaded.self_signed);
        assert_eq!(loaded.sha256, <[u8; 32]>::from(Sha256::digest(cert.cert.der())));
        assert!(Identity::from_pem_files(&dir.path().join("k.pem"), &dir.path().join("k.pem")).is_err());
    }

    #[test]
    fn dev_cert_files_load_with_the_printed_hash() {
        let dir = tempfile::tempdir().unwrap();
        let dev = DevCert::new(&["chat.test".to_string(), "10.0.0.1".to_string()], 90).unwrap();
        let (cert, key) = dev.write(&dir.path().join("certs")).unwrap();
        let loaded = Identity::from_pem_files(&cert, &key).unwrap();
        assert_eq!(loaded.sha256, dev.sha256);
        loaded.server_config(&[b"garou/1"]).unwrap();
        let days = (dev.not_after - time::OffsetDateTime::now_utc()).whole_days();
        assert!((89..=90).contains(&days), "{days}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let short = DevCert::new(&DevCert::default_names(), BROWSER_MAX_DAYS).unwrap();
        let span = short.not_after - (time::OffsetDateTime::now_utc() - time::Duration::minutes(1));
        assert!(span <= time::Duration::days(14), "browsers refuse longer: {span}");
    }
}
