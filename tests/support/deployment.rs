//! The deployed shape of kapauth, shared by the tests of how it is run (`systemd.rs`,
//! `bare_host.rs`): a `kapauth meta` over https on 127.0.0.1 holding three users, an echo
//! upstream standing in for Kapacitor, the gateway's config naming both by host name, and
//! the requests that show lookups, TLS to meta and forwarding work. How the gateway and
//! meta are started (a sandbox, a bare root) is the caller's. Included by test files with
//! `#[path = "support/deployment.rs"] mod deployment;` beside `support`, `certs` and
//! `upstream`.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::certs::{self, Pki};
use crate::support::{Kapauth, Launch, Response, TempDir, basic, request};
use crate::upstream::{Echo, Seen};

/// The meta user the gateway signs in as; its password goes by environment only.
pub const META_USER: &str = "admin";
pub const META_PASSWORD: &str = "adm1n-pass";
const TASKS: &str = "/kapacitor/v1/tasks";

/// `kapauth meta` over https with its users, and the echo upstream.
pub struct Backends {
    pub meta: Kapauth,
    pub echo: Echo,
    pub pki: Pki,
    dir: TempDir,
}

impl Backends {
    /// Starts meta (through `wrap`, which may add a runner) with a server certificate for
    /// `meta_host`, creates its users over plain HTTP first, then serves them over https.
    pub fn start(label: &str, meta_host: &str, wrap: impl Fn(Launch) -> Launch) -> Backends {
        let dir = TempDir::new(label);
        let pki = certs::make_pki_for(&dir.join("certs"), "deploy-ca", meta_host);
        let store = dir.join("meta");
        {
            // The first run only writes the users to the store; it ends when dropped.
            let plain = wrap(Launch::meta(&store)).start();
            make_users(&plain);
        }
        let meta = wrap(
            Launch::meta(&store)
                .set("meta.https-enabled", "true")
                .set("meta.https-certificate", &pki.server.cert_pem)
                .set("meta.https-private-key", &pki.server.key_pem),
        )
        .start();
        Backends {
            meta,
            echo: Echo::start(),
            pki,
            dir,
        }
    }

    /// The gateway's config file: meta at `meta_host` over https trusting `ca` (a path as
    /// kapauth will see it), the upstream at `upstream_host`, no secret in it.
    pub fn gateway_config(&self, meta_host: &str, upstream_host: &str, ca: &str) -> String {
        format!(
            "[http]\n  bind-address = \"127.0.0.1:0\"\n\n\
             [auth]\n  meta-addr = \"{meta_host}:{meta_port}\"\n  meta-use-tls = true\n  \
             meta-ca = \"{ca}\"\n  meta-username = \"{META_USER}\"\n  meta-timeout = \"5s\"\n\n\
             [gateway]\n  upstream = \"http://{upstream_host}:{upstream_port}\"\n",
            meta_port = self.meta.addr_of("meta").port(),
            upstream_port = self.echo.addr.port(),
        )
    }

    /// The CA certificate the gateway must trust for meta.
    pub fn ca_pem(&self) -> PathBuf {
        self.pki.ca.cert_pem.clone()
    }

    /// A scratch directory that lives as long as the backends.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `kapauth serve --config CONFIG` with the meta password in its environment, as the
/// unit's EnvironmentFile= gives it.
pub fn gateway_launch(config: &Path) -> Launch {
    Launch::serve()
        .config(config)
        .env("KAPACITOR_AUTH_META_PASSWORD", META_PASSWORD)
        .wait_for("gateway")
}

/// Requests through `gateway` that need meta over TLS and the upstream: a user allowed,
/// a wrong password, an unknown name, a user without the permission.
pub fn check_gateway(gateway: &Kapauth, backends: &Backends) {
    let before = backends.echo.requests();
    let allowed = tasks(gateway, "johndoe", "pa5sw0Rd");
    assert_eq!(
        allowed.status,
        200,
        "a user meta allows reaches the upstream: {allowed:?}\n{:#?}",
        gateway.log_lines()
    );
    let seen = Seen::parse(&allowed.body);
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("GET", TASKS));
    assert_eq!(backends.echo.requests(), before + 1);
    for (user, password, status) in [
        ("johndoe", "wrong", 401),
        ("nosuchuser", "whatever", 401),
        ("reader", "r3ader-pass", 403),
    ] {
        let response = tasks(gateway, user, password);
        assert_eq!(response.status, status, "{user}: {response:?}");
    }
    assert_eq!(
        backends.echo.requests(),
        before + 1,
        "refused requests never reach the upstream"
    );
}

fn tasks(gateway: &Kapauth, user: &str, password: &str) -> Response {
    request(
        gateway.addr(),
        "GET",
        TASKS,
        &[("Authorization", &basic(user, password))],
        b"",
    )
}

/// The administrator the gateway signs in as, a user with KapacitorAPI and one without.
fn make_users(meta: &Kapauth) {
    let addr = meta.addr_of("meta");
    for (credentials, body) in [
        (
            None,
            format!(
                r#"{{"action":"create","user":{{"name":"{META_USER}","password":"{META_PASSWORD}"}}}}"#
            ),
        ),
        (
            Some((META_USER, META_PASSWORD)),
            r#"{"action":"create","user":{"name":"johndoe","password":"pa5sw0Rd","permissions":{"":["KapacitorAPI"]}}}"#.to_string(),
        ),
        (
            Some((META_USER, META_PASSWORD)),
            r#"{"action":"create","user":{"name":"reader","password":"r3ader-pass"}}"#
                .to_string(),
        ),
    ] {
        let authorization = credentials.map(|(user, password)| basic(user, password));
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        let response = request(addr, "POST", "/user", &headers, body.as_bytes());
        assert_eq!(response.status, 200, "{body}: {response:?}");
    }
}

/// `etc/kapauth.service`.
pub fn unit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/kapauth.service")
}

/// The runner that applies the unit's seccomp restrictions (`support/unit_sandbox.py`;
/// `options` go before the unit), or `None`, after saying the test skipped, where
/// libseccomp's Python binding or systemd-analyze (which expands the filter's groups) is
/// missing.
pub fn unit_sandbox(options: &[&str]) -> Option<Vec<OsString>> {
    let python = "/usr/bin/python3";
    let probe = Command::new(python).args(["-c", "import seccomp"]).output();
    if !probe.is_ok_and(|output| output.status.success()) {
        println!("skipped: {python} cannot import seccomp; install python3-seccomp");
        return None;
    }
    if let Err(error) = Command::new("systemd-analyze").arg("--version").output() {
        println!("skipped: systemd-analyze cannot run here ({error}); install systemd");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/unit_sandbox.py");
    let mut runner: Vec<OsString> = vec![python.into(), script.into()];
    runner.extend(options.iter().map(OsString::from));
    runner.push(unit().into());
    runner.push("--".into());
    Some(runner)
}
