//! TLS configurations, built in one place for the services, the launcher and the client tool
//! (`[tls] cert, key, ca`): rustls with the ring provider. A service serves with its
//! certificate chain and key; every caller trusts exactly the cluster's CA, nothing from the
//! system or the web. Errors name the file and what is wrong with it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bad(path: &Path, what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{}: {what}: {e}", path.display()))
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, "cannot read PEM certificates", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, "not a PEM certificate", e))?;
    if certs.is_empty() {
        return Err(bad(
            path,
            "no certificate",
            "expected -----BEGIN CERTIFICATE-----",
        ));
    }
    Ok(certs)
}

/// What a service serves with: the chain in `cert` (its own certificate first) and the
/// private key in `key`, both PEM.
pub fn server_config(cert: &Path, key: &Path) -> io::Result<rustls::ServerConfig> {
    let chain = certificates(cert)?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, "not a PEM private key", e))?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| bad(cert, "certificate and key do not go together", e))
}

/// What a caller trusts: the certificates in `ca` (PEM), and nothing else.
pub fn client_config(ca: &Path) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(ca)? {
        roots
            .add(c)
            .map_err(|e| bad(ca, "not a usable CA certificate", e))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = client_config(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let e = client_config(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no certificate"),
            "{e}"
        );
        let e = server_config(&junk, &junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
    }
}
