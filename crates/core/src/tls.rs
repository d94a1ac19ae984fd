//! What every TLS client of mailfleet trusts: the system's CAs plus a server's `ca_file`,
//! read once and checked (a CA file that cannot be used is an error naming it, never a
//! silent fall back to fewer roots or to clear text).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("tls.ca_file {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The name to verify is not a DNS name or address.
    #[error("{0:?} is not a name a certificate can carry")]
    Name(String),
    /// rustls refused the setup.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// A server's certificate or key file could not be used.
    #[error("{path}: {message}")]
    ServerFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// The system's trusted CAs, read once (a few hundred certificates).
pub fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        // Unreadable system certificates only narrow what verifies; the error names them.
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        store
    })
}

/// The crypto of every client.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's CAs plus those of `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = system_roots().clone();
    if let Some(path) = ca_file {
        let ca_err = |message: String| TlsError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> =
            rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(format!("{e:?}")))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in the file".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    Ok(roots)
}

/// A server config from a PEM certificate chain and its private key; a file that cannot be
/// read, holds nothing usable, or a key that does not match the certificate is an error
/// naming the file.
pub fn server(cert_file: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |path: &Path, message: String| TlsError::ServerFile {
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(cert_file).map_err(|e| bad(cert_file, e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert_file, format!("{e:?}")))?;
    if chain.is_empty() {
        return Err(bad(cert_file, "no certificate in the file".into()));
    }
    let pem = std::fs::read(key_file).map_err(|e| bad(key_file, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| bad(key_file, format!("no private key: {e:?}")))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            bad(
                key_file,
                format!("does not go with {}: {e}", cert_file.display()),
            )
        })?;
    Ok(Arc::new(config))
}

/// A client config that verifies strictly against [`roots`].
pub fn strict_client(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let e = roots(Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
        let e = roots(Some(&dir.path().join("missing.pem")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tls.ca_file") && e.contains("missing.pem"),
            "{e}"
        );
        assert!(strict_client(None).is_ok());
    }
}
