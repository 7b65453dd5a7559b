//! Certificates for the TLS tests, made at run time with the `openssl` command-line tool
//! (nothing secret is checked in): a CA, a server certificate for 127.0.0.1 and localhost
//! (subjectAltName) and a client certificate, both signed by the CA, all ECDSA P-256.
//! PEM files for kapauth's `meta-ca`, `meta-cert` and `meta-key`; DER bytes for the
//! test's own rustls server. Included by test files with
//! `#[path = "support/certs.rs"] mod certs;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One certificate and its key.
pub struct Identity {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: Vec<u8>,
    /// PKCS#8.
    pub key_der: Vec<u8>,
}

/// A CA and the server and client certificates it signed.
pub struct Pki {
    pub ca: Identity,
    pub server: Identity,
    pub client: Identity,
}

/// Makes a CA named `name` and its server and client certificates in `dir`.
pub fn make_pki(dir: &Path, name: &str) -> Pki {
    make_pki_for(dir, name, "localhost")
}

/// `make_pki` with a server certificate for 127.0.0.1 and the host name `host`.
pub fn make_pki_for(dir: &Path, name: &str, host: &str) -> Pki {
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    let ca = make_ca(dir, name);
    let server = make_signed(
        dir,
        &format!("{name}-server"),
        &ca,
        &format!(
            "subjectAltName=IP:127.0.0.1,DNS:{host}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    );
    let client = make_signed(
        dir,
        &format!("{name}-client"),
        &ca,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    Pki { ca, server, client }
}

fn make_ca(dir: &Path, name: &str) -> Identity {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        path(&key),
        "-out",
        path(&cert),
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    identity(dir, name, cert, key)
}

fn make_signed(dir: &Path, name: &str, ca: &Identity, extensions: &str) -> Identity {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, extensions).expect("write the extensions file");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        path(&key),
        "-out",
        path(&csr),
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        path(&csr),
        "-CA",
        path(&ca.cert_pem),
        "-CAkey",
        path(&ca.key_pem),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        path(&ext),
        "-out",
        path(&cert),
    ]);
    identity(dir, name, cert, key)
}

/// Reads back the DER forms of a PEM certificate and key.
fn identity(dir: &Path, name: &str, cert_pem: PathBuf, key_pem: PathBuf) -> Identity {
    let cert_der = dir.join(format!("{name}.crt.der"));
    let key_der = dir.join(format!("{name}.key.der"));
    openssl(&[
        "x509",
        "-in",
        path(&cert_pem),
        "-outform",
        "DER",
        "-out",
        path(&cert_der),
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        path(&key_pem),
        "-outform",
        "DER",
        "-out",
        path(&key_der),
    ]);
    Identity {
        cert_der: std::fs::read(&cert_der).expect("read the certificate DER"),
        key_der: std::fs::read(&key_der).expect("read the key DER"),
        cert_pem,
        key_pem,
    }
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (the TLS tests need the openssl command-line tool)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
