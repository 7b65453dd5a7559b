//! Signals (issue "operate it like a real service"): SIGTERM and SIGINT stop accepting, let
//! requests in flight finish within `[http] shutdown-timeout`, log the start and the end of
//! the stop and exit 0; SIGHUP reads the configuration file again and applies what can
//! change live (meta credentials, authentication settings, certificates, logging), keeping
//! the cache, naming what needs a restart, and refusing a configuration that does not load.
//! Against the real binary, a real `kapauth meta` and scripted upstreams on 127.0.0.1.

#[path = "support/raw_upstream.rs"]
mod raw_upstream;
mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use raw_upstream::RawUpstream;
use support::{Kapauth, Launch, TempDir, basic, request};

const TASKS: &str = "/kapacitor/v1/tasks";

#[test]
fn sigterm_stops_accepting_lets_the_request_in_flight_finish_and_exits_zero() {
    // An upstream that holds its answer until the test lets it go.
    let (received_tx, received) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let received_tx = Mutex::new(received_tx);
    let release_rx = Arc::new(Mutex::new(release_rx));
    let upstream = RawUpstream::start(move |mut connection| {
        while let Some(seen) = connection.read_request() {
            let _ = received_tx.lock().unwrap().send(seen.target.clone());
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20));
            let answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone";
            if connection.send(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    let dir = TempDir::new("sigterm");
    let mut kapauth = unchecked_gateway(&dir, &upstream).start();
    let gateway = kapauth.addr();
    let in_flight = thread::spawn(move || request(gateway, "GET", TASKS, &[], b""));
    assert_eq!(
        received.recv_timeout(Duration::from_secs(10)).unwrap(),
        TASKS
    );

    kapauth.signal("TERM");
    let stopping = kapauth.wait_for_log_lines(1, |line| line.contains("msg=\"shutting down\""));
    assert!(
        stopping[0].contains("service=gateway signal=SIGTERM in-flight=1"),
        "{stopping:?}"
    );
    // No new connection once the stop began.
    assert_refused(gateway);
    assert_eq!(
        kapauth.try_exit_code(),
        None,
        "it waits for the request in flight"
    );

    release.send(()).unwrap();
    let answer = in_flight.join().unwrap();
    assert_eq!((answer.status, answer.text()), (200, "done"));
    // Lines reach the test through a pipe and a thread: the last one first, then the exit.
    kapauth.wait_for_log_lines(1, |line| line.contains("msg=\"shutdown complete\""));
    assert_eq!(kapauth.wait_for_exit(Duration::from_secs(10)), Some(0));
    let lines = kapauth.log_lines();
    assert!(
        lines.iter().any(
            |line| line.contains("msg=\"shutdown complete\" service=gateway")
                && !line.contains("abandoned")
        ),
        "{lines:#?}"
    );
}

#[test]
fn a_request_outlasting_shutdown_timeout_is_abandoned_and_the_exit_is_still_zero() {
    let upstream = RawUpstream::start(|mut connection| {
        // Reads the request and never answers (until the test process ends).
        let _ = connection.read_request();
        let _ = connection.read_request();
    });
    let dir = TempDir::new("sigterm-timeout");
    let mut kapauth = unchecked_gateway(&dir, &upstream)
        .set("http.shutdown-timeout", "300ms")
        .start();
    let gateway = kapauth.addr();
    let _held = thread::spawn(move || support::try_request(gateway, "GET", TASKS, &[], b""));
    while upstream.requests().is_empty() {
        thread::yield_now();
    }
    kapauth.signal("INT");
    // Lines reach the test through a pipe and a thread: the last one first, then the exit.
    kapauth.wait_for_log_lines(1, |line| line.contains("msg=\"shutdown complete\""));
    assert_eq!(kapauth.wait_for_exit(Duration::from_secs(10)), Some(0));
    let lines = kapauth.log_lines();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("signal=SIGINT in-flight=1")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("msg=\"shutdown complete\"")
                && line.contains("abandoned-requests=1")
                && line.contains("reason=\"shutdown-timeout ran out\"")),
        "{lines:#?}"
    );
}

#[test]
fn kapauth_meta_stops_on_sigterm_with_exit_zero() {
    let dir = TempDir::new("meta-sigterm");
    let mut meta = Launch::meta(&dir.join("meta")).start();
    assert_eq!(request(meta.addr(), "GET", "/ping", &[], b"").status, 204);
    meta.signal("TERM");
    // Lines reach the test through a pipe and a thread: the last one first, then the exit.
    meta.wait_for_log_lines(1, |line| line.contains("msg=\"shutdown complete\""));
    assert_eq!(meta.wait_for_exit(Duration::from_secs(10)), Some(0));
    assert!(
        meta.log_lines()
            .iter()
            .any(|line| line.contains("msg=\"shutdown complete\" service=meta")),
        "{:#?}",
        meta.log_lines()
    );
}

#[test]
fn sighup_applies_new_meta_credentials_keeps_the_cache_and_refuses_a_broken_file() {
    let dir = TempDir::new("sighup");
    let meta = Launch::meta(&dir.join("meta")).start();
    let admin = basic("admin", "changeit");
    let bootstrap = request(
        meta.addr(),
        "POST",
        "/user",
        &[],
        br#"{"action":"create","user":{"name":"admin","password":"changeit"}}"#,
    );
    assert_eq!(bootstrap.status, 200, "{bootstrap:?}");
    for body in [
        r#"{"action":"create","user":{"name":"johndoe","password":"pa5sw0Rd"}}"#,
        r#"{"action":"add-permissions","user":{"name":"johndoe","permissions":{"":["KapacitorAPI"]}}}"#,
    ] {
        let response = request(
            meta.addr(),
            "POST",
            "/user",
            &[("Authorization", &admin)],
            body.as_bytes(),
        );
        assert_eq!(response.status, 200, "{response:?}");
    }
    let echo = RawUpstream::start(|connection| connection.answer_each());
    let file = dir.join("kapauth.conf");
    let write = |password: &str, extra: &str| {
        std::fs::write(
            &file,
            format!(
                "[http]\nbind-address = \"127.0.0.1:0\"\n\n[auth]\nmeta-addr = \"{}\"\nmeta-username = \"admin\"\nmeta-password = \"{password}\"\nbcrypt-cost = 4\n{extra}\n[gateway]\nupstream = \"{}\"\n",
                meta.addr(),
                echo.url()
            ),
        )
        .unwrap();
    };
    write("not-the-password", "");
    let kapauth = Launch::serve().config(&file).wait_for("gateway").start();
    let gateway = kapauth.addr();
    let johndoe = basic("johndoe", "pa5sw0Rd");
    let login = || request(gateway, "GET", TASKS, &[("Authorization", &johndoe)], b"").status;
    assert_eq!(login(), 503, "meta refuses the wrong meta-password");

    // The right password and a new cache expiration, applied live.
    write("changeit", "cache-expiration = \"1h\"\n");
    reload(&kapauth, 1);
    let reloaded = last_line(&kapauth, "msg=reloaded");
    assert!(
        reloaded.contains("changed=\"[auth] cache-expiration, [auth] meta-password\""),
        "{reloaded}"
    );
    assert!(!reloaded.contains("changeit"), "{reloaded}");
    assert_eq!(login(), 200);
    let lookups =
        |meta: &Kapauth| meta.count_log_lines(|line| line.contains(" path=/user name=johndoe "));
    let looked_up = lookups(&meta);

    // A change only a restart applies is named, and the cache is kept.
    write(
        "changeit",
        "cache-expiration = \"1h\"\nmeta-timeout = \"3s\"\n",
    );
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).unwrap().replace(
            "bind-address = \"127.0.0.1:0\"\n\n[auth]",
            "bind-address = \"127.0.0.1:1\"\n\n[auth]",
        ),
    )
    .unwrap();
    reload(&kapauth, 2);
    let restart = last_line(&kapauth, "only a restart applies");
    assert!(
        restart.contains("keys=\"[http] bind-address\""),
        "{restart}"
    );
    assert_eq!(login(), 200);
    assert_eq!(login(), 200);
    assert_eq!(lookups(&meta), looked_up, "the cache survived the reloads");

    // A file that does not load is refused; the configuration in force stays.
    std::fs::write(&file, "[auth]\ncache-expiration = \"soon\"\n").unwrap();
    kapauth.signal("HUP");
    let refused = kapauth.wait_for_log_lines(1, |line| line.contains("msg=\"reload refused"));
    assert!(
        refused[0].contains("cache-expiration") && refused[0].contains("is not a duration"),
        "{refused:?}"
    );
    assert_eq!(login(), 200);
}

/// The gateway with auth off in front of `upstream`, its embedded store in `dir`: what a
/// stop does, without the meta API in the way.
fn unchecked_gateway(dir: &TempDir, upstream: &RawUpstream) -> Launch {
    Launch::serve()
        .set("http.bind-address", "127.0.0.1:0")
        .set("http.auth-enabled", "false")
        .set("meta.bind-address", "127.0.0.1:0")
        .set("meta.dir", dir.path())
        .set("gateway.upstream", upstream.url())
        .wait_for("gateway")
}

/// Sends SIGHUP and waits for the `count`-th reload line.
fn reload(kapauth: &Kapauth, count: usize) {
    kapauth.signal("HUP");
    kapauth.wait_for_log_lines(count, |line| line.contains("msg=reloaded"));
}

fn last_line(kapauth: &Kapauth, needle: &str) -> String {
    kapauth
        .wait_for_log_lines(1, |line| line.contains(needle))
        .pop()
        .unwrap()
}

fn assert_refused(addr: SocketAddr) {
    let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(
        connected.is_err(),
        "a new connection was accepted after the stop began"
    );
}
