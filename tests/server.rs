//! What both listeners promise whatever the request (SPEC §9, §10): they keep accepting after
//! idle periods longer than every timeout they have, they close a connection that sends
//! nothing instead of holding a thread for ever, and the gateway answers 503 beyond
//! `max-concurrent-requests` instead of piling up threads.

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Kapauth, Launch, TempDir, request, send};

/// A gateway with auth off in front of `upstream`, whose connections must send a whole head
/// within 1 s and may idle 1 s between requests.
fn gateway(
    dir: &TempDir,
    upstream: SocketAddr,
    upstream_timeout: &str,
    max_in_flight: &str,
) -> Kapauth {
    Launch::serve()
        .set("http.bind-address", "127.0.0.1:0")
        .set("http.auth-enabled", "false")
        .set("meta.bind-address", "127.0.0.1:0")
        .set("meta.dir", dir.path())
        .set("meta.bcrypt-cost", "4")
        .set("gateway.upstream", format!("http://{upstream}"))
        .set("gateway.upstream-timeout", upstream_timeout)
        .set("gateway.max-concurrent-requests", max_in_flight)
        .set("http.read-header-timeout", "1s")
        .set("http.idle-timeout", "1s")
        .wait_for("meta")
        .wait_for("gateway")
        .start()
}

/// An upstream that accepts connections, reports each, and never answers.
fn silent_upstream() -> (SocketAddr, mpsc::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if accepted.send(stream).is_err() {
                return;
            }
        }
    });
    (addr, receiver)
}

#[test]
fn both_listeners_keep_accepting_after_idling_longer_than_their_timeouts() {
    let dir = TempDir::new("idle-accept");
    let (upstream, _accepted) = silent_upstream();
    let kapauth = gateway(&dir, upstream, "1s", "8");
    // Idleness is what this test is about, so it waits on purpose: 2.5 s is more than twice
    // every timeout the listeners were given.
    std::thread::sleep(Duration::from_millis(2500));
    let response = request(
        kapauth.addr_of("gateway"),
        "GET",
        "/kapauth/health",
        &[],
        b"",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), r#"{"status":"ok"}"#);
    let response = request(kapauth.addr_of("meta"), "GET", "/ping", &[], b"");
    assert_eq!(response.status, 204);
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_read_header_timeout() {
    let dir = TempDir::new("idle-close");
    let (upstream, _accepted) = silent_upstream();
    let kapauth = gateway(&dir, upstream, "1s", "8");
    let mut idle = TcpStream::connect(kapauth.addr_of("gateway")).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = idle.read(&mut byte);
    assert!(
        matches!(read, Ok(0)),
        "the gateway should close an idle connection, got {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed only after {:?}",
        started.elapsed()
    );
}

#[test]
fn requests_beyond_max_concurrent_requests_get_503_at_once() {
    let dir = TempDir::new("overload");
    let (upstream, accepted) = silent_upstream();
    let kapauth = gateway(&dir, upstream, "20s", "2");
    let addr = kapauth.addr_of("gateway");
    let held: Vec<_> = (0..2)
        .map(|i| {
            send(
                addr,
                "GET",
                &format!("/kapacitor/v1/ping?held={i}"),
                &[],
                b"",
            )
            .unwrap()
        })
        .collect();
    // Both are in flight once the upstream has their connections.
    let upstream_sides: Vec<TcpStream> = (0..2)
        .map(|_| {
            accepted
                .recv_timeout(Duration::from_secs(10))
                .expect("the gateway forwards both requests")
        })
        .collect();
    let started = Instant::now();
    let response = request(addr, "GET", "/kapacitor/v1/ping", &[], b"");
    assert_eq!(response.status, 503);
    assert_eq!(
        response.text(),
        r#"{"error":"kapauth is at max-concurrent-requests; retry shortly"}"#
    );
    assert_eq!(
        response.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(response.header("Retry-After"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 503 must not wait for a slot"
    );
    let logged = kapauth.count_log_lines(|line| line.contains("msg=\"http request\""));
    assert_eq!(logged, 0, "the held requests are still in flight");
    drop(upstream_sides);
    drop(held);
}
