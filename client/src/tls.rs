//! How the client decides to trust a gateway's certificate.
//!
//! Three modes, because a chat gateway lives in three kinds of places: behind a real
//! domain with a CA-issued certificate ([`Trust::System`]), on a developer machine or LAN
//! with a self-signed certificate whose SHA-256 the gateway logs and serves
//! ([`Trust::CertHash`], the same pinning browsers offer WebTransport through
//! `serverCertificateHashes`), and in throwaway local tests ([`Trust::Insecure`]).
//! In every mode the TLS 1.3 handshake signature is still verified, so the peer must hold
//! the private key of the certificate it shows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::{ClientError, ALPN};

/// Which server certificates are accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Trust {
    /// Certificates chaining to the Mozilla root set (webpki-roots) and valid for the
    /// server name. Independent of the host's trust store, so it behaves the same everywhere.
    #[default]
    System,
    /// Any certificate (the handshake signature is still checked). For local development
    /// only: it does not authenticate the server.
    Insecure,
    /// Only an end-entity certificate whose DER encoding has this SHA-256. Name and expiry
    /// are not checked: the pin is the whole identity.
    CertHash([u8; 32]),
}

impl Trust {
    /// Parse a 64-hex-digit SHA-256 (colons and spaces allowed, as fingerprints are often
    /// printed with them) into [`Trust::CertHash`].
    pub fn cert_hash_hex(s: &str) -> Result<Trust, ClientError> {
        let clean: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
        let bytes = hex::decode(&clean)
            .map_err(|e| ClientError::Config(format!("bad certificate hash {s:?}: {e}")))?;
        let hash: [u8; 32] = bytes.try_into().map_err(|_| {
            ClientError::Config(format!("certificate hash {s:?} is not 32 bytes (64 hex digits)"))
        })?;
        Ok(Trust::CertHash(hash))
    }
}

/// SHA-256 of a DER certificate, the value [`Trust::CertHash`] compares against.
pub fn cert_hash(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The quinn client configuration for `trust` (ALPN and transport settings included):
/// what [`crate::connect`] uses, for tools that drive a raw quinn connection themselves.
/// Transport: 2 s keep-alive, 10 s idle timeout (see [`quic_client_config_with`]).
pub fn quic_client_config(trust: &Trust) -> Result<quinn::ClientConfig, ClientError> {
    quic_client_config_with(trust, Duration::from_secs(2), Duration::from_secs(10))
}

/// [`quic_client_config`] with the given keep-alive interval and idle timeout.
pub fn quic_client_config_with(
    trust: &Trust,
    keep_alive: Duration,
    idle_timeout: Duration,
) -> Result<quinn::ClientConfig, ClientError> {
    Ok(build(trust, keep_alive, idle_timeout)?.0)
}

/// The reason of the last certificate the verifier refused (cleared by the driver before
/// each attempt), so a failed handshake can be told apart from an unreachable server.
#[derive(Clone, Debug, Default)]
pub(crate) struct CertFailures(Arc<Mutex<Option<String>>>);

impl CertFailures {
    /// Take the recorded refusal, if any.
    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn record(&self, why: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }
}

/// The configuration and the recorder of certificate refusals it reports to.
pub(crate) fn build(
    trust: &Trust,
    keep_alive: Duration,
    idle_timeout: Duration,
) -> Result<(quinn::ClientConfig, CertFailures), ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(format!("TLS setup: {e}")))?;
    let failures = CertFailures::default();
    let inner: Arc<dyn ServerCertVerifier> = match trust {
        Trust::System => {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| ClientError::Config(format!("TLS roots: {e}")))?
        }
        Trust::Insecure => Arc::new(PinVerifier {
            pin: None,
            algs: provider.signature_verification_algorithms,
        }),
        Trust::CertHash(hash) => Arc::new(PinVerifier {
            pin: Some(*hash),
            algs: provider.signature_verification_algorithms,
        }),
    };
    let verifier = Recording {
        inner,
        failures: failures.clone(),
    };
    let mut tls = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Config(format!("TLS config unusable for QUIC: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config(keep_alive, idle_timeout)?));
    Ok((config, failures))
}

/// Transport settings: keep NATs and the server's idle timer happy with the keep-alive,
/// give up on a silent path after `idle_timeout` (a gateway that died without closing,
/// e.g. killed, is noticed that fast and the client reconnects), allow datagrams (typing,
/// presence), and let the server open enough uni streams for its shards plus hot rooms.
fn transport_config(
    keep_alive: Duration,
    idle_timeout: Duration,
) -> Result<quinn::TransportConfig, ClientError> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(keep_alive));
    let idle = quinn::IdleTimeout::try_from(idle_timeout)
        .map_err(|_| ClientError::Config(format!("idle_timeout {idle_timeout:?} is too large")))?;
    t.max_idle_timeout(Some(idle));
    t.datagram_receive_buffer_size(Some(1 << 20));
    t.max_concurrent_uni_streams(256u32.into());
    Ok(t)
}

/// Delegates to the verifier of the trust mode and records why a certificate was refused.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    failures: CertFailures,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        if let Err(e) = &r {
            let hash = hex::encode(cert_hash(end_entity.as_ref()));
            self.failures.record(format!(
                "certificate rejected ({e}); the server presented sha256 {hash}"
            ));
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (`pin: None`) or only the pinned one, and verifies handshake
/// signatures with the ring provider's algorithms either way.
#[derive(Debug)]
struct PinVerifier {
    pin: Option<[u8; 32]>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) if cert_hash(end_entity.as_ref()) == pin => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hashes() {
        let hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let Trust::CertHash(h) = Trust::cert_hash_hex(hex64).unwrap() else {
            panic!()
        };
        assert_eq!(h[1], 0x11);
        let colons =
            "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
        assert_eq!(Trust::cert_hash_hex(colons).unwrap(), Trust::CertHash(h));
        assert!(Trust::cert_hash_hex("abcd").is_err());
        assert!(Trust::cert_hash_hex("zz").is_err());
    }

    #[test]
    fn configs_build() {
        for t in [Trust::System, Trust::Insecure, Trust::CertHash([7; 32])] {
            quic_client_config(&t).unwrap();
        }
    }

    #[test]
    fn pin_checks_hash() {
        let cert = CertificateDer::from(vec![1u8, 2, 3]);
        let v = PinVerifier {
            pin: Some(cert_hash(&[1, 2, 3])),
            algs: provider().signature_verification_algorithms,
        };
        let name = ServerName::try_from("localhost").unwrap();
        assert!(v
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .is_ok());
        let other = CertificateDer::from(vec![9u8]);
        assert!(v
            .verify_server_cert(&other, &[], &name, &[], UnixTime::now())
            .is_err());
    }
}
