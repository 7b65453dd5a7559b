//! TLS towards the meta API (`meta-use-tls`, `meta-ca`, `meta-cert` + `meta-key`,
//! `meta-insecure-skip-verify`; SPEC §4, §11) and the check of every piece of TLS material
//! for `check-config`. kapauth reads the PEM files and builds the rustls 0.23 client
//! configuration itself, at startup, with the calls ureq makes when it connects: a CA that
//! rustls cannot use, a certificate it refuses (an X.509 v1 one), a key that does not match
//! its certificate, each stops kapauth with the key to fix, and nothing left can fail (or
//! panic inside ureq) on the request path. Also names, for the log, the TLS problem of a
//! failed connection to meta.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use crate::config::{Config, MetaTls};
use crate::http::tls::{TlsError, certificates, internal, provider, read};

/// Every piece of TLS material `config` names, loaded as the programs will load it.
pub fn check(config: &Config) -> Result<(), TlsError> {
    crate::http::tls::check(config)?;
    if let Some(tls) = &config.auth.meta_tls {
        meta_tls_config(tls)?;
    }
    Ok(())
}

/// The meta client's TLS configuration for ureq, after building the same rustls
/// configuration ureq will build, so that any problem shows now, naming its key.
pub fn meta_tls_config(tls: &MetaTls) -> Result<TlsConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|error| internal("[auth] meta-use-tls", Path::new(""), error))?;
    let (builder, roots) = match &tls.ca {
        Some(path) => {
            let key = "[auth] meta-ca";
            let cas = certificates(key, path)?;
            let mut store = RootCertStore::empty();
            for ca in &cas {
                store.add(ca.clone()).map_err(|error| TlsError {
                    key: key.to_string(),
                    path: path.to_path_buf(),
                    problem: format!("holds a CA certificate rustls will not use: {error}"),
                })?;
            }
            let roots = RootCerts::new_with_certs(&cas.iter().map(to_ureq).collect::<Vec<_>>());
            (builder.with_root_certificates(store), roots)
        }
        None => {
            let store = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            (builder.with_root_certificates(store), RootCerts::WebPki)
        }
    };
    let client_cert = match &tls.client_identity {
        Some((cert_path, key_path)) => {
            let chain = certificates("[auth] meta-cert", cert_path)?;
            let key = private_key(key_path)?;
            let ureq_key = ureq_private_key(key_path)?;
            builder
                .with_client_auth_cert(chain.clone(), key)
                .map_err(|error| client_cert_error(error, cert_path, key_path))?;
            Some(ClientCert::new_with_certs(
                &chain.iter().map(to_ureq).collect::<Vec<_>>(),
                ureq_key,
            ))
        }
        None => None,
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .client_cert(client_cert)
        .disable_verification(tls.insecure_skip_verify)
        .build())
}

/// The TLS problem of a failed request to meta, and the key to check, if TLS is what failed:
/// for the gateway's log and the admin commands' errors alike.
pub fn meta_tls_failure(error: &ureq::Error) -> Option<String> {
    let tls = match error {
        ureq::Error::Rustls(tls) => tls,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        _ => return None,
    };
    Some(meta_tls_problem(tls))
}

/// The TLS problem of a failed connection to meta, and the key to check, for the log.
pub fn meta_tls_problem(error: &rustls::Error) -> String {
    use rustls::Error;
    let hint = match error {
        Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            "meta's certificate is not signed by a CA kapauth trusts: set [auth] meta-ca to the CA that signed it"
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            "meta's certificate does not name the host of [auth] meta-addr: use a name the certificate holds, or reissue it with that name in its subjectAltName"
        }
        Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "meta's certificate is outside its validity period: renew it, or check the clocks",
        Error::InvalidCertificate(_) => {
            "meta's certificate was refused: check it and [auth] meta-ca"
        }
        Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => "meta refused kapauth's client certificate: check [auth] meta-cert and meta-key",
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "meta does not answer in TLS: check [auth] meta-use-tls and meta-addr"
        }
        _ => "check [auth] meta-use-tls, meta-ca, meta-cert and meta-key",
    };
    format!("TLS to meta failed ({error}): {hint}")
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let key = "[auth] meta-key";
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| TlsError {
        key: key.to_string(),
        path: path.to_path_buf(),
        problem: format!("holds no usable PEM private key ({error})"),
    })
}

/// Why rustls refused the client certificate and key, naming the key to fix.
fn client_cert_error(error: rustls::Error, cert_path: &Path, key_path: &Path) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(_) => TlsError {
            key: "[auth] meta-key".to_string(),
            path: key_path.to_path_buf(),
            problem: format!(
                "does not match the certificate in {} ([auth] meta-cert)",
                cert_path.display()
            ),
        },
        rustls::Error::InvalidCertificate(problem) => TlsError {
            key: "[auth] meta-cert".to_string(),
            path: cert_path.to_path_buf(),
            problem: unusable_certificate(&format!("{problem:?}")),
        },
        other => TlsError {
            key: "[auth] meta-key".to_string(),
            path: key_path.to_path_buf(),
            problem: format!("cannot be used with the certificate: {other}"),
        },
    }
}

/// What to say of a certificate rustls refuses; an X.509 v1 one (what a bare
/// `openssl x509 -req` makes, and Go accepts) gets the way to make a v3 one.
pub fn unusable_certificate(problem: &str) -> String {
    if problem.contains("UnsupportedCertVersion") {
        format!(
            "rustls will not use this certificate ({problem}): it is X.509 v1; make a v3 one, e.g. by adding -extfile <(printf 'basicConstraints=CA:FALSE') to the openssl x509 -req command that signed it"
        )
    } else {
        format!("rustls will not use this certificate ({problem}); make an X.509 v3 certificate")
    }
}

fn to_ureq(certificate: &CertificateDer<'_>) -> Certificate<'static> {
    Certificate::from_der(certificate.as_ref()).to_owned()
}

/// The key of `path` as ureq reads it (ureq does not let a key be built from DER and its
/// kind); the same file `private_key` has just read and rustls has accepted.
fn ureq_private_key(path: &Path) -> Result<PrivateKey<'static>, TlsError> {
    let key = "[auth] meta-key";
    let bytes = read(key, path)?;
    ureq::tls::parse_pem(&bytes)
        .find_map(|item| match item {
            Ok(PemItem::PrivateKey(private_key)) => Some(private_key),
            _ => None,
        })
        .ok_or_else(|| TlsError {
            key: key.to_string(),
            path: path.to_path_buf(),
            problem: "holds no PEM private key ureq can read".to_string(),
        })
}
