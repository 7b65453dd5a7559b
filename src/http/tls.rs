//! TLS material of the HTTP core, read once at startup and by `check-config`: the rustls
//! 0.23 server configuration of an HTTPS listener (`https-certificate`,
//! `https-private-key`, the key in the certificate file when empty, as Kapacitor reads
//! them) and the client configuration for an `https://` upstream (`[gateway] upstream-ca`,
//! else the web PKI roots). Every failure names the configuration key and the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{Config, Gateway, ListenerTls};

/// TLS material that cannot be used: which key named it, the file, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The configuration key, e.g. `[http] https-certificate`.
    pub key: String,
    pub path: PathBuf,
    pub problem: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {:?}: {}",
            self.key,
            self.path.display().to_string(),
            self.problem
        )
    }
}

impl std::error::Error for TlsError {}

/// The server configuration of the listener configured in `[section]`, if it serves HTTPS.
pub fn listener(
    section: &str,
    tls: Option<&ListenerTls>,
) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    tls.map(|tls| server_config(section, &tls.certificate, tls.private_key.as_deref()))
        .transpose()
}

/// The client configuration an `https://` upstream needs; `None` for an `http://` one.
pub fn upstream(gateway: &Gateway) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if !gateway.upstream.starts_with("https://") {
        return Ok(None);
    }
    upstream_config(gateway.upstream_ca.as_deref()).map(Some)
}

/// Loads every piece of TLS material `config` names, for `check-config`.
pub fn check(config: &Config) -> Result<(), TlsError> {
    listener("http", config.http.tls.as_ref())?;
    listener("meta", config.meta.tls.as_ref())?;
    upstream(&config.gateway)?;
    Ok(())
}

/// The server configuration of a listener whose keys live in `[section]`: the certificate
/// chain of `certificate` and the private key in `private_key` (or in `certificate`).
pub fn server_config(
    section: &str,
    certificate: &Path,
    private_key: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certificate_key = format!("[{section}] https-certificate");
    let (key_name, key_path) = match private_key {
        Some(path) => (format!("[{section}] https-private-key"), path),
        None => (certificate_key.clone(), certificate),
    };
    let chain = certificates(&certificate_key, certificate)?;
    let key_bytes = read(&key_name, key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|error| TlsError {
        key: key_name.clone(),
        path: key_path.to_path_buf(),
        problem: match private_key {
            Some(_) => format!("holds no usable PEM private key ({error})"),
            None => format!(
                "holds no usable PEM private key ({error}); set [{section}] https-private-key to the key's file, or append the key to this file"
            ),
        },
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| internal(&certificate_key, certificate, error))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| {
            let (key, path, problem) = match error {
                rustls::Error::InconsistentKeys(_) => (
                    key_name.clone(),
                    key_path,
                    format!(
                        "does not match the certificate in {}",
                        certificate.display()
                    ),
                ),
                rustls::Error::InvalidCertificate(problem) => (
                    certificate_key.clone(),
                    certificate,
                    format!(
                        "rustls will not use this certificate ({problem:?}); make an X.509 v3 certificate with a subjectAltName"
                    ),
                ),
                other => (
                    key_name.clone(),
                    key_path,
                    format!("cannot be used with the certificate: {other}"),
                ),
            };
            TlsError {
                key,
                path: path.to_path_buf(),
                problem,
            }
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client configuration for an `https://` upstream: the CAs of `ca` (the key
/// `[gateway] upstream-ca`), or the web PKI roots when it is empty.
pub fn upstream_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let key = "[gateway] upstream-ca";
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for certificate in certificates(key, path)? {
                roots.add(certificate).map_err(|error| TlsError {
                    key: key.to_string(),
                    path: path.to_path_buf(),
                    problem: format!("holds a CA certificate rustls will not use: {error}"),
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| internal(key, ca.unwrap_or(Path::new("")), error))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn certificates(
    key: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError {
            key: key.to_string(),
            path: path.to_path_buf(),
            problem: format!("holds a broken PEM block ({error})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError {
            key: key.to_string(),
            path: path.to_path_buf(),
            problem: "holds no PEM CERTIFICATE block".to_string(),
        });
    }
    Ok(chain)
}

pub(crate) fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError {
        key: key.to_string(),
        path: path.to_path_buf(),
        problem: format!("cannot be read: {error}"),
    })
}

pub(crate) fn internal(key: &str, path: &Path, error: rustls::Error) -> TlsError {
    TlsError {
        key: key.to_string(),
        path: path.to_path_buf(),
        problem: format!("TLS setup failed: {error}"),
    }
}
