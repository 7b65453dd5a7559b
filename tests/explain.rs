//! `kapauth explain USER METHOD TARGET` against real users (issue 9 item 4): the embedded
//! store read while `kapauth serve` runs and holds its lock, and an external `kapauth meta`
//! through the gateway's meta client. Every answer explain prints is checked against the
//! answer the running gateway gives the same request, so the two cannot drift apart.

mod support;
#[path = "support/upstream.rs"]
mod upstream;

use std::net::SocketAddr;
use std::path::Path;

use support::{Kapauth, Launch, Output, Response, TempDir, basic, request};
use upstream::Echo;

const ADMIN: (&str, &str) = ("admin", "changeit");

/// Users and their passwords: bob writes to telegraf, carol holds KapacitorAPI through role
/// operators only, dave holds nothing Kapacitor knows.
const PASSWORDS: [(&str, &str); 3] = [
    ("bob", "b0b-pass"),
    ("carol", "c4rol-pass"),
    ("dave", "d4ve-pass"),
];

/// The gateway on its embedded store in `dir`, in front of `echo`, with the users above.
fn gateway_with_users(dir: &TempDir, echo: &Echo) -> Kapauth {
    let kapauth = Launch::serve()
        .set("http.bind-address", "127.0.0.1:0")
        .set("meta.bind-address", "127.0.0.1:0")
        .set("meta.dir", dir.join("meta"))
        .set("meta.bcrypt-cost", "4")
        .set("gateway.upstream", echo.url())
        .wait_for("meta")
        .wait_for("gateway")
        .start();
    create_users(kapauth.addr_of("meta"));
    kapauth
}

/// The users above, through the meta API at `meta` (the first create bootstraps admin).
fn create_users(meta: SocketAddr) {
    let [bob, carol, dave] = PASSWORDS;
    let bodies = [
        ("/user", format!(r#"{{"action":"create","user":{{"name":"{}","password":"{}"}}}}"#, ADMIN.0, ADMIN.1)),
        ("/user", format!(r#"{{"action":"create","user":{{"name":"bob","password":"{}"}}}}"#, bob.1)),
        ("/user", r#"{"action":"add-permissions","user":{"name":"bob","permissions":{"telegraf":["WriteData"]}}}"#.to_string()),
        ("/user", format!(r#"{{"action":"create","user":{{"name":"carol","password":"{}"}}}}"#, carol.1)),
        ("/user", format!(r#"{{"action":"create","user":{{"name":"dave","password":"{}"}}}}"#, dave.1)),
        ("/role", r#"{"action":"create","role":{"name":"operators"}}"#.to_string()),
        ("/role", r#"{"action":"add-permissions","role":{"name":"operators","permissions":{"":["KapacitorAPI"]}}}"#.to_string()),
        ("/role", r#"{"action":"add-users","role":{"name":"operators","users":["carol"]}}"#.to_string()),
    ];
    for (index, (path, body)) in bodies.iter().enumerate() {
        // The first create needs no credentials: it makes the administrator.
        let authorization = basic(ADMIN.0, ADMIN.1);
        let headers: &[(&str, &str)] = if index == 0 {
            &[]
        } else {
            &[("Authorization", &authorization)]
        };
        let response = request(meta, "POST", path, headers, body.as_bytes());
        assert_eq!(response.status, 200, "{body}: {response:?}");
    }
}

/// `kapauth explain` with `flags` (each `--set`) and the three operands, to completion.
fn explain(flags: &[(&str, &str)], env: &[(&str, &str)], operands: [&str; 3]) -> Output {
    let launch = flags
        .iter()
        .fold(Launch::new("explain"), |launch, (key, value)| {
            launch.set(key, value)
        });
    let launch = env
        .iter()
        .fold(launch, |launch, (name, value)| launch.env(name, value));
    operands
        .iter()
        .fold(launch, |launch, operand| launch.arg(operand))
        .run_with_stdin(b"")
}

/// The request sent to the gateway as `user` with the right password (any for an unknown user).
fn ask_gateway(gateway: SocketAddr, user: &str, method: &str, target: &str) -> Response {
    let password = PASSWORDS
        .iter()
        .find(|(name, _)| *name == user)
        .map_or("whatever", |(_, password)| password);
    let authorization = basic(user, password);
    request(
        gateway,
        method,
        target,
        &[("Authorization", &authorization)],
        b"",
    )
}

/// Explain's exit code and the gateway's status agree, and for a refusal explain prints the
/// gateway's status line, headers and body exactly; no password or hash is printed.
fn check_against(gateway: &Response, explained: &Output, expected_code: i32, lines: &[&str]) {
    let stdout = &explained.stdout;
    assert_eq!(
        explained.code,
        Some(expected_code),
        "{stdout}{}",
        explained.stderr
    );
    let printed: Vec<&str> = stdout.lines().collect();
    if expected_code == 0 {
        assert_eq!(
            gateway.status, 200,
            "the echo upstream answered: {gateway:?}"
        );
    } else {
        let status_line = format!("  HTTP/1.1 {} ", gateway.status);
        assert!(
            stdout.contains(&status_line),
            "{status_line:?} in\n{stdout}"
        );
        let body = format!("  {}", gateway.text().trim_end_matches('\n'));
        assert!(printed.contains(&body.as_str()), "{body:?} in\n{stdout}");
        for (name, value) in &gateway.headers {
            if name == "Content-Type" || name == "WWW-Authenticate" {
                let header = format!("  {name}: {value}");
                assert!(
                    printed.contains(&header.as_str()),
                    "{header:?} in\n{stdout}"
                );
            }
        }
    }
    for line in lines {
        assert!(printed.contains(line), "{line:?} in\n{stdout}");
    }
    for secret in ["$2a$", "$2b$", ADMIN.1, PASSWORDS[0].1, PASSWORDS[1].1] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
}

#[rustfmt::skip]
#[test]
fn explain_reads_the_embedded_store_while_serve_holds_its_lock_and_agrees_with_the_gateway() {
    let dir = TempDir::new("explain-embedded");
    let echo = Echo::start();
    let kapauth = gateway_with_users(&dir, &echo);
    let gateway = kapauth.addr_of("gateway");
    // The config comes from a file, as an operator runs it; serve got the same dir by --set.
    let config = dir.join("kapauth.conf");
    std::fs::write(&config, format!("[meta]\ndir = {:?}\n", dir.join("meta"))).expect("write the config");
    let cases: [(&str, &str, &str, i32, &[&str]); 6] = [
        ("carol", "GET", "/kapacitor/v1/tasks", 0, &["  KapacitorAPI on all databases (role operators)", "      all from KapacitorAPI on all databases (role operators)", "  4. /api: {all} holds read: allowed"]),
        ("carol", "GET", "/kapacitor/v1/config", 1, &["  3. /api/config: {none} lacks read: denied; a parent never overrides it"]),
        ("dave", "GET", "/kapacitor/v1/tasks", 1, &["  none", "  none: every request but HEAD is denied", "  6. no entry up to /: denied"]),
        ("bob", "POST", "/write?db=telegraf&rp=autogen", 0, &["  WriteData on database \"telegraf\" (direct)", "  5. /database/telegraf_clean: {write} holds write: allowed"]),
        ("bob", "POST", "/write?db=other", 1, &["  4. a POST to the write endpoint with db=\"other\" also needs write on /database/other_clean", "  8. no entry up to /: denied"]),
        ("nobody", "GET", "/kapacitor/v1/tasks", 1, &[]),
    ];
    for (user, method, target, code, lines) in cases {
        let explained = Launch::new("explain").config(&config).arg(user).arg(method).arg(target).run_with_stdin(b"");
        let answer = ask_gateway(gateway, user, method, target);
        check_against(&answer, &explained, code, lines);
    }
    let unknown = explain(&[("meta.dir", path_text(&dir.join("meta")))], &[], ["nobody", "GET", "/kapacitor/v1/tasks"]);
    let store = dir.join("meta").join("meta.json");
    assert!(unknown.stdout.contains(&format!("  nobody is not in the embedded store {}\n", store.display())), "{}", unknown.stdout);
    assert_eq!(echo.requests(), 2, "the two allowed requests reached the upstream");
}

/// A `kapauth meta` holding the users above.
struct ExternalMeta {
    meta: Kapauth,
    _dir: TempDir,
}

impl ExternalMeta {
    fn start(label: &str) -> ExternalMeta {
        let dir = TempDir::new(label);
        let meta = Launch::meta(dir.path()).start();
        create_users(meta.addr());
        ExternalMeta { meta, _dir: dir }
    }

    /// Explain against this meta as admin with `meta_password`, plus `extra` flags.
    fn explain(&self, meta_password: &str, extra: &[(&str, &str)], operands: [&str; 3]) -> Output {
        let addr = self.meta.addr().to_string();
        let own = [
            ("auth.meta-addr", addr.as_str()),
            ("auth.meta-username", ADMIN.0),
        ];
        let flags = [own.as_slice(), extra].concat();
        // The meta password comes from the environment, never argv.
        explain(
            &flags,
            &[("KAPACITOR_AUTH_META_PASSWORD", meta_password)],
            operands,
        )
    }
}

#[rustfmt::skip]
#[test]
fn explain_asks_an_external_meta_with_the_gateways_meta_client() {
    let meta = ExternalMeta::start("explain-meta");
    let allowed = meta.explain(ADMIN.1, &[], ["carol", "GET", "/kapacitor/v1/tasks"]);
    assert_eq!(allowed.code, Some(0), "{}{}", allowed.stdout, allowed.stderr);
    let source = format!("  carol found in the meta API at http://{}\n", meta.meta.addr());
    assert!(allowed.stdout.contains(&source), "{}", allowed.stdout);
    assert!(allowed.stdout.contains("  KapacitorAPI on all databases (role operators)\n"));

    let denied = meta.explain(ADMIN.1, &[("auth.resolve-roles", "false")], ["carol", "GET", "/kapacitor/v1/tasks"]);
    assert_eq!(denied.code, Some(1), "{}{}", denied.stdout, denied.stderr);
    let body = r#"  {"error":"user carol does not have \"read\" privilege for API endpoint \"/kapacitor/v1/tasks\""}"#;
    assert!(denied.stdout.contains(body), "{}", denied.stdout);

    let unknown = meta.explain(ADMIN.1, &[], ["nobody", "GET", "/kapacitor/v1/tasks"]);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stdout.contains("  {\"error\":\"authorization failed\"}\n"), "{}", unknown.stdout);
}

#[test]
fn a_meta_that_refuses_explains_credentials_is_no_decision() {
    let meta = ExternalMeta::start("explain-refused");
    let refused = meta.explain("wrong", &[], ["carol", "GET", "/kapacitor/v1/tasks"]);
    assert_eq!(
        refused.code,
        Some(2),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    let named = refused
        .stderr
        .contains("kapauth: explain: cannot look up \"carol\"");
    assert!(named, "{}", refused.stderr);
    assert!(!refused.stderr.contains("wrong"), "{}", refused.stderr);
}

#[test]
fn usage_errors_exit_2_and_help_names_the_exit_codes() {
    let missing = Launch::new("explain").arg("alice").run_with_stdin(b"");
    assert_eq!(missing.code, Some(2));
    assert_eq!(
        missing.stderr,
        "kapauth: 'kapauth explain' needs METHOD and TARGET; run 'kapauth explain --help'\n"
    );
    let bad_config = Launch::new("explain")
        .set("meta.bogus", "1")
        .arg("alice")
        .arg("GET")
        .arg("/")
        .run_with_stdin(b"");
    assert_eq!(bad_config.code, Some(2), "{}", bad_config.stderr);
    let help = Launch::new("explain").arg("--help").run_with_stdin(b"");
    assert_eq!(help.code, Some(0));
    assert!(
        help.stdout
            .contains("Exit status: 0 the request would be allowed")
    );
    let top = Launch::new("--help").run_with_stdin(b"");
    assert!(top.stdout.contains("  explain  "), "{}", top.stdout);
}

/// A store file that is not a store is named, and no decision is made.
#[test]
fn an_unreadable_store_is_no_decision() {
    let dir = TempDir::new("explain-corrupt");
    std::fs::write(dir.join("meta.json"), b"not json").expect("write the store");
    let corrupt = explain(
        &[("meta.dir", path_text(dir.path()))],
        &[],
        ["alice", "GET", "/"],
    );
    assert_eq!(corrupt.code, Some(2));
    assert!(
        corrupt.stderr.contains("is unreadable"),
        "{}",
        corrupt.stderr
    );
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("temp dirs are UTF-8")
}
