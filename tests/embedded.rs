//! `kapauth serve` on its embedded defaults (SPEC §8, issue "kapauth serve"): with an empty
//! `[auth] meta-addr` the gateway reads the embedded store in-process, serves its meta API on
//! `[meta] bind-address`, and keeps users across restarts. This is the path `make run` takes.

mod support;
#[path = "support/upstream.rs"]
mod upstream;

use std::net::SocketAddr;

use support::{Kapauth, Launch, Response, TempDir, basic, request};
use upstream::{Echo, Seen};

/// The gateway with the embedded store in `dir`, in front of `echo`.
fn embedded(dir: &TempDir, echo: &Echo) -> Kapauth {
    Launch::serve()
        .set("http.bind-address", "127.0.0.1:0")
        .set("meta.bind-address", "127.0.0.1:0")
        .set("meta.dir", dir.path())
        .set("meta.bcrypt-cost", "4")
        .set("gateway.upstream", echo.url())
        .wait_for("meta")
        .wait_for("gateway")
        .start()
}

fn post(meta: SocketAddr, credentials: Option<(&str, &str)>, path: &str, body: &str) -> Response {
    let authorization = credentials.map(|(user, password)| basic(user, password));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("Authorization", value.as_str()))
        .collect();
    request(meta, "POST", path, &headers, body.as_bytes())
}

fn get_tasks(gateway: SocketAddr, user: &str, password: &str) -> Response {
    request(
        gateway,
        "GET",
        "/kapacitor/v1/tasks",
        &[("Authorization", &basic(user, password))],
        b"",
    )
}

#[test]
fn the_embedded_store_serves_the_seeds_story_and_keeps_it_across_a_restart() {
    let dir = TempDir::new("embedded");
    let echo = Echo::start();
    let mut kapauth = embedded(&dir, &echo);
    assert!(
        kapauth.count_log_lines(|line| line.contains("lvl=warn") && line.contains("no users")) >= 1,
        "an empty store is announced loudly: {:#?}",
        kapauth.log_lines()
    );
    let meta = kapauth.addr_of("meta");
    let admin = Some(("admin", "changeit"));
    for (credentials, path, body) in [
        (
            None,
            "/user",
            r#"{"action":"create","user":{"name":"admin","password":"changeit"}}"#,
        ),
        (
            admin,
            "/user",
            r#"{"action":"create","user":{"name":"johndoe","password":"pa5sw0Rd"}}"#,
        ),
        (
            admin,
            "/user",
            r#"{"action":"add-permissions","user":{"name":"johndoe","permissions":{"":["KapacitorAPI","KapacitorConfigAPI"]}}}"#,
        ),
        (
            admin,
            "/user",
            r#"{"action":"create","user":{"name":"nobody","password":"n0b0dy"}}"#,
        ),
    ] {
        let response = post(meta, credentials, path, body);
        assert_eq!(response.status, 200, "{body}: {response:?}");
    }

    let allowed = get_tasks(kapauth.addr_of("gateway"), "johndoe", "pa5sw0Rd");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    let seen = Seen::parse(&allowed.body);
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/kapacitor/v1/tasks")
    );
    assert_eq!(seen.header("Authorization"), None);

    let denied = get_tasks(kapauth.addr_of("gateway"), "nobody", "n0b0dy");
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.text(),
        r#"{"error":"user nobody does not have \"read\" privilege for API endpoint \"/kapacitor/v1/tasks\""}"#
    );
    let wrong = get_tasks(kapauth.addr_of("gateway"), "johndoe", "wrong");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.text(), r#"{"error":"authorization failed"}"#);

    kapauth.restart();
    let again = get_tasks(kapauth.addr_of("gateway"), "johndoe", "pa5sw0Rd");
    assert_eq!(again.status, 200, "the store survives a restart: {again:?}");
    assert_eq!(echo.requests(), 2);
}

#[test]
fn a_second_gateway_on_the_same_embedded_store_refuses_to_start() {
    let dir = TempDir::new("embedded-lock");
    let echo = Echo::start();
    let _first = embedded(&dir, &echo);
    let second = Launch::serve()
        .set("http.bind-address", "127.0.0.1:0")
        .set("meta.bind-address", "127.0.0.1:0")
        .set("meta.dir", dir.path())
        .set("gateway.upstream", echo.url())
        .run_to_exit();
    assert_eq!(second.code, Some(1));
    let locked = second
        .stderr
        .iter()
        .any(|line| line.contains("is locked by another kapauth process"));
    assert!(locked, "{:#?}", second.stderr);
}
