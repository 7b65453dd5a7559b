//! A TLS-terminating TCP proxy for the gateway's meta-TLS tests: `kapauth meta` has no TLS
//! listener, so this puts one in front of it, with rustls 0.23 (kapauth's own rustls) and
//! the ring provider. It can require a client certificate signed by a given CA, and it
//! counts completed handshakes and the client certificates it saw, so a test knows TLS
//! was really spoken. Included by test files with
//! `#[path = "support/tls_proxy.rs"] mod tls_proxy;`.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// A running proxy; it lives until the test process ends.
pub struct TlsProxy {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicUsize,
    failed_handshakes: AtomicUsize,
    client_certificates: AtomicUsize,
}

impl TlsProxy {
    /// Listens on 127.0.0.1:0 with `cert_der` and its PKCS#8 `key_der`, relaying every
    /// connection to `backend`. With `client_ca_der`, a client certificate signed by that
    /// CA is required.
    pub fn start(
        backend: SocketAddr,
        cert_der: &[u8],
        key_der: &[u8],
        client_ca_der: Option<&[u8]>,
    ) -> TlsProxy {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions");
        let builder = match client_ca_der {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots
                    .add(CertificateDer::from(ca.to_vec()))
                    .expect("a valid CA certificate");
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("a client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(
            builder
                .with_single_cert(
                    vec![CertificateDer::from(cert_der.to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec())),
                )
                .expect("a valid server certificate and key"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = Arc::clone(&config);
                let counts = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = relay(stream, config, backend, &counts);
                });
            }
        });
        TlsProxy { addr, counts }
    }

    /// Handshakes that completed.
    pub fn handshakes(&self) -> usize {
        self.counts.handshakes.load(Ordering::SeqCst)
    }

    /// Handshakes the proxy or its client abandoned.
    pub fn failed_handshakes(&self) -> usize {
        self.counts.failed_handshakes.load(Ordering::SeqCst)
    }

    /// Completed handshakes in which the client presented a certificate.
    pub fn client_certificates(&self) -> usize {
        self.counts.client_certificates.load(Ordering::SeqCst)
    }
}

/// Handshakes, then copies bytes both ways until either side closes. One thread polls both
/// sockets with short read timeouts: a rustls stream cannot be split between threads.
fn relay(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    backend: SocketAddr,
    counts: &Counts,
) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut connection = ServerConnection::new(config).map_err(io::Error::other)?;
    while connection.is_handshaking() {
        if let Err(error) = connection.complete_io(&mut tcp) {
            counts.failed_handshakes.fetch_add(1, Ordering::SeqCst);
            return Err(error);
        }
    }
    counts.handshakes.fetch_add(1, Ordering::SeqCst);
    if connection
        .peer_certificates()
        .is_some_and(|certs| !certs.is_empty())
    {
        counts.client_certificates.fetch_add(1, Ordering::SeqCst);
    }

    let poll = Some(Duration::from_millis(5));
    let mut plain = TcpStream::connect(backend)?;
    plain.set_nodelay(true)?;
    plain.set_read_timeout(poll)?;
    tcp.set_read_timeout(poll)?;
    let mut tls = StreamOwned::new(connection, tcp);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => plain.write_all(&buf[..n])?,
            Err(error) if idle(&error) => {}
            Err(error) => return Err(error),
        }
        match plain.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                tls.write_all(&buf[..n])?;
                tls.flush()?;
            }
            Err(error) if idle(&error) => {}
            Err(error) => return Err(error),
        }
    }
}

fn idle(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
