//! Transport security (TLS-1/2): a fresh self-signed certificate at every start,
//! served with TLS 1.2 as the minimum.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The session server's identity for this process lifetime.
#[derive(Clone)]
pub struct Identity {
    /// PEM of the certificate, sent to GitLab as `session.certificate` (TLS-2).
    pub certificate_pem: String,
    pub certificate_der: CertificateDer<'static>,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

/// The crypto provider used by every TLS endpoint of the crate.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes a new self-signed certificate for `public_host` (a DNS name or an IP
/// address; an unspecified address such as `0.0.0.0` is kept as is, like the
/// reference, and then only a client that trusts this exact certificate and
/// skips the name check could use it: configure advertise_address instead).
pub fn generate(public_host: &str) -> anyhow::Result<Identity> {
    let certified = rcgen::generate_simple_self_signed(vec![public_host.to_string()]).map_err(|e| {
        anyhow::anyhow!("making a self-signed certificate for {public_host:?}: {e}; check advertise_address")
    })?;
    let certificate_der = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(vec![certificate_der.clone()], key)?;
    // The runner speaks HTTP/1.1 only (EX-7); WebSocket upgrades need it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        certificate_pem: certified.cert.pem(),
        certificate_der,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

/// A client configuration that trusts `certificate_pem` as its only root (TLS-2),
/// the way Workhorse dials a runner.
pub fn client_config_trusting(certificate_pem: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = std::io::Cursor::new(certificate_pem.as_bytes());
    let mut found = 0;
    for cert in rustls_pemfile_certs(&mut reader)? {
        roots.add(cert)?;
        found += 1;
    }
    anyhow::ensure!(found > 0, "the certificate PEM holds no certificate");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn rustls_pemfile_certs(
    reader: &mut dyn std::io::BufRead,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("reading certificate PEM: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_gets_a_fresh_certificate() {
        let a = generate("runner.example").unwrap();
        let b = generate("runner.example").unwrap();
        assert!(a.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(a.certificate_pem, b.certificate_pem);
    }

    #[test]
    fn a_client_can_trust_the_pem_alone() {
        let id = generate("127.0.0.1").unwrap();
        client_config_trusting(&id.certificate_pem).unwrap();
        assert!(client_config_trusting("not a pem").is_err());
    }
}
