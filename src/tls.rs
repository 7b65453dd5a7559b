//! TLS towards the meta API (`meta-use-tls`, `meta-ca`, `meta-cert` + `meta-key`,
//! `meta-insecure-skip-verify`), as a ureq `TlsConfig` on rustls 0.23 with ring: the one
//! rustls in Cargo.lock. Reads the PEM files at startup, so a bad file stops kapauth with
//! its name instead of failing the first login.

use std::fmt;
use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use crate::config::MetaTls;

/// A TLS file could not be used.
#[derive(Debug)]
pub enum TlsError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file holds no PEM item of the kind needed, or a broken one.
    Pem {
        path: PathBuf,
        what: &'static str,
        problem: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            TlsError::Pem {
                path,
                what,
                problem,
            } => {
                write!(f, "{} does not hold {what}: {problem}", path.display())
            }
        }
    }
}

impl std::error::Error for TlsError {}

/// The client TLS configuration for the meta API.
pub fn meta_tls_config(tls: &MetaTls) -> Result<TlsConfig, TlsError> {
    let roots = match &tls.ca {
        Some(path) => RootCerts::new_with_certs(&certificates(path, "a PEM CA certificate")?),
        None => RootCerts::WebPki,
    };
    let client_cert = match &tls.client_identity {
        Some((cert, key)) => Some(ClientCert::new_with_certs(
            &certificates(cert, "a PEM certificate")?,
            private_key(key)?,
        )),
        None => None,
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .client_cert(client_cert)
        .disable_verification(tls.insecure_skip_verify)
        .build())
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<Certificate<'static>>, TlsError> {
    let items = pem_items(path, what)?;
    let certs: Vec<_> = items
        .into_iter()
        .filter_map(|item| match item {
            PemItem::Certificate(cert) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what,
            problem: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKey<'static>, TlsError> {
    let what = "a PEM private key";
    pem_items(path, what)?
        .into_iter()
        .find_map(|item| match item {
            PemItem::PrivateKey(key) => Some(key),
            _ => None,
        })
        .ok_or_else(|| TlsError::Pem {
            path: path.to_path_buf(),
            what,
            problem: "no PRIVATE KEY block found".into(),
        })
}

fn pem_items(path: &Path, what: &'static str) -> Result<Vec<PemItem<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    ureq::tls::parse_pem(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            path: path.to_path_buf(),
            what,
            problem: error.to_string(),
        })
}
