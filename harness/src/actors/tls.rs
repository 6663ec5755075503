//! TLS as GitLab's side does it, with rustls and rcgen directly (never the
//! runner's code): Workhorse trusts a session's PEM as its only root (TLS-2), a
//! `curl -k` style client trusts anything, and a TLS-terminating proxy shows a
//! certificate of its own.
//!
//! Speed: a fuzz campaign dials thousands of runners. The crypto provider and
//! the `curl -k` client are built once per process, and the client that
//! trusts a PEM once per PEM (per thread: the last one, since a world has one
//! runner certificate at a time). Cached clients never resume a session, so a
//! handshake is the same one a fresh client makes.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsAcceptor;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::ring::default_provider();
            provider.cipher_suites.sort_by_key(preference);
            Arc::new(provider)
        })
        .clone()
}

/// Workhorse is Go, whose client on hardware with AES offers AES-128-GCM
/// first, then AES-256-GCM, then ChaCha20 (ring's default puts AES-256 first).
/// It is also the cheaper handshake: its key schedule is SHA-256, which this
/// CPU has instructions for, where AES-256's SHA-384 is computed in software.
fn preference(suite: &rustls::SupportedCipherSuite) -> (bool, u8) {
    use rustls::CipherSuite as S;
    let rank = match suite.suite() {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    };
    (suite.version() == &rustls::version::TLS12, rank)
}

/// TLS 1.2 and 1.3, as Workhorse (Go's default minimum is TLS 1.2).
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

thread_local! {
    /// The last PEM trusted on this thread, and its client.
    static TRUSTING: RefCell<Option<(String, Arc<rustls::ClientConfig>)>> = const { RefCell::new(None) };
}

/// A client that trusts the certificates of `pem` and nothing else (TLS-2).
pub fn trusting(pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let cached = TRUSTING.with_borrow(|last| {
        last.as_ref()
            .filter(|(last, _)| last == pem)
            .map(|(_, config)| config.clone())
    });
    if let Some(config) = cached {
        return Ok(config);
    }
    let config = Arc::new(trusting_uncached(pem)?);
    TRUSTING.set(Some((pem.to_string(), config.clone())));
    Ok(config)
}

fn trusting_uncached(pem: &str) -> Result<rustls::ClientConfig, String> {
    let mut pinned = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("reading the PEM: {e:?}"))?;
        // As a root store would: a certificate that does not parse is refused.
        rustls::server::ParsedCertificate::try_from(&cert)
            .map_err(|e| format!("not a usable certificate: {e}"))?;
        pinned.push(cert);
    }
    if pinned.is_empty() {
        return Err("the PEM holds no certificate".into());
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier(Accepts::Pinned(pinned))))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// A client that takes any certificate (still checking the handshake's
/// signature): for `insecure` connections only.
pub fn insecure_client_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier(Accepts::Anything)))
        .with_no_client_auth()
}

/// [`insecure_client_config`] built once, for clients that dial once each.
pub fn insecure_client() -> Arc<rustls::ClientConfig> {
    static INSECURE: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    INSECURE
        .get_or_init(|| {
            let mut config = insecure_client_config();
            config.resumption = Resumption::disabled();
            Arc::new(config)
        })
        .clone()
}

/// A server that shows a fresh self-signed certificate for `host`.
pub fn self_signed_acceptor(host: &str) -> Result<TlsAcceptor, String> {
    let certified = rcgen::generate_simple_self_signed(vec![host.to_string()])
        .map_err(|e| format!("a certificate for {host:?}: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|e| e.to_string())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Which server certificates a client takes.
#[derive(Debug)]
enum Accepts {
    /// Exactly the certificates of a PEM (TLS-2), as a root store holding
    /// only them would, without building a chain: the runner's certificate
    /// is self-signed, so the only chain is the certificate itself. The
    /// server must show one of them byte for byte, for the name dialled;
    /// anything else is an unknown authority, the error a root store gives.
    Pinned(Vec<CertificateDer<'static>>),
    /// Any certificate, for any name (`curl -k`).
    Anything,
}

/// A client's check of the server: its certificate as [`Accepts`] says, and
/// in every case the handshake's signature, the server's proof that it holds
/// the key of the certificate it showed (which `curl -k` checks too).
#[derive(Debug)]
struct Verifier(Accepts);

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Accepts::Pinned(certificates) = &self.0 {
            if !certificates
                .iter()
                .any(|c| c.as_ref() == end_entity.as_ref())
            {
                return Err(CertificateError::UnknownIssuer.into());
            }
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signed(rustls::crypto::verify_tls12_signature, message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signed(rustls::crypto::verify_tls13_signature, message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The check of a handshake's signature, `verify` (TLS 1.2's or 1.3's), with
/// the provider's algorithms.
fn signed(
    verify: fn(
        &[u8],
        &CertificateDer<'_>,
        &DigitallySignedStruct,
        &rustls::crypto::WebPkiSupportedAlgorithms,
    ) -> Result<HandshakeSignatureValid, rustls::Error>,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify(
        message,
        cert,
        dss,
        &provider().signature_verification_algorithms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_a_certificate_is_refused_with_a_reason() {
        assert!(trusting("not a pem")
            .unwrap_err()
            .contains("no certificate"));
    }

    fn certificate(host: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap()
    }

    fn verify(
        pinned: &rcgen::CertifiedKey<rcgen::KeyPair>,
        shown: &rcgen::CertifiedKey<rcgen::KeyPair>,
        host: &str,
    ) -> Result<(), rustls::Error> {
        let verifier = Verifier(Accepts::Pinned(vec![pinned.cert.der().clone()]));
        let name = ServerName::try_from(host.to_string()).unwrap();
        verifier
            .verify_server_cert(shown.cert.der(), &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn the_pinned_client_accepts_its_certificate_for_its_name_only() {
        let runner = certificate("runner");
        assert!(verify(&runner, &runner, "runner").is_ok());
        assert!(matches!(
            verify(&runner, &runner, "elsewhere"),
            Err(rustls::Error::InvalidCertificate(_))
        ));
    }

    #[test]
    fn the_pinned_client_refuses_any_other_certificate_as_an_unknown_authority() {
        let (runner, proxy) = (certificate("runner"), certificate("runner"));
        assert_eq!(
            verify(&runner, &proxy, "runner"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        );
    }

    #[test]
    fn a_self_signed_certificate_can_be_made_for_a_host() {
        assert!(self_signed_acceptor("runner-proxy").is_ok());
    }
}
