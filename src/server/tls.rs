//! TLS for the wire endpoint (rustls with the ring provider): PostgreSQL's SSLRequest
//! upgrade, and direct TLS with the `postgresql` ALPN (PostgreSQL 17 clients).
//!
//! Loading fails loudly: a server asked to use TLS never falls back to plaintext.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// A TLS configuration for accepted connections.
#[derive(Clone)]
pub struct Tls(pub(super) TlsAcceptor);

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// Read a PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls> {
        let invalid = |path: &Path, what: &str, e: &dyn fmt::Display| {
            Error::Invalid(format!("TLS {what} {}: {e}", path.display()))
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .map_err(|e| invalid(cert, "certificate", &e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| invalid(cert, "certificate", &e))?;
        if certs.is_empty() {
            return Err(invalid(cert, "certificate", &"no certificate in the file"));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, "key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(cert, "configuration", &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key_der)
            .map_err(|e| invalid(key, "key", &e))?;
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Tls(TlsAcceptor::from(Arc::new(config))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_mismatched_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("server.crt");
        let key = dir.path().join("server.key");
        let err = Tls::from_pem_files(&cert, &key).expect_err("no files");
        assert!(err.to_string().contains("certificate"), "{err}");
        std::fs::write(&cert, "not pem").expect("write");
        std::fs::write(&key, "not pem").expect("write");
        let err = Tls::from_pem_files(&cert, &key).expect_err("not pem");
        assert!(err.to_string().contains("no certificate"), "{err}");
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tls");
        Tls::from_pem_files(&testdata.join("server.crt"), &testdata.join("server.key"))
            .expect("the test certificate loads");
        let err = Tls::from_pem_files(&testdata.join("server.crt"), &cert).expect_err("bad key");
        assert!(err.to_string().contains("key"), "{err}");
    }
}
