//! The gateway's test fixture: a real `kapauth meta` with an administrator made by the
//! bootstrap `create`, an echo upstream (`upstream.rs`), and `kapauth serve` between them,
//! asking that meta as the administrator; users are made through meta's own HTTP API, as
//! the seed documents make them. Included by test files with
//! `#[path = "support/stack.rs"] mod stack;` beside `mod support;` and
//! `#[path = "support/upstream.rs"] mod upstream;`.
#![allow(dead_code)]

use std::net::SocketAddr;

use serde_json::json;

use crate::support::{Kapauth, Launch, Response, TempDir, basic, request};
use crate::upstream::Echo;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "changeit";
/// The seed's permissions for a Kapacitor user.
pub const KAPACITOR: &[(&str, &[&str])] = &[("", &["KapacitorAPI", "KapacitorConfigAPI"])];

/// A meta server with an administrator, an echo upstream, and a gateway between them.
pub struct Stack {
    pub gateway: Kapauth,
    pub meta: Kapauth,
    pub echo: Echo,
    pub dir: TempDir,
}

impl Stack {
    /// Starts the three; `settings` are extra `--set` flags for the gateway.
    pub fn start(settings: &[(&str, &str)]) -> Stack {
        let dir = TempDir::new("gateway");
        let meta = start_meta(&dir);
        let echo = Echo::start();
        let mut launch = gateway_launch(meta.addr(), &echo);
        for (key, value) in settings {
            launch = launch.set(key, value);
        }
        Stack {
            gateway: launch.start(),
            meta,
            echo,
            dir,
        }
    }

    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.gateway.addr(), method, target, headers, body)
    }

    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", target, headers, b"")
    }

    pub fn post(&self, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.request("POST", target, headers, body)
    }

    pub fn create_user(&self, name: &str, password: &str, permissions: &[(&str, &[&str])]) {
        create_user(self.meta.addr(), name, password, permissions);
    }

    pub fn meta_post(&self, path: &str, body: serde_json::Value) {
        meta_post(self.meta.addr(), path, &body);
    }

    /// How many times the gateway has asked meta for `user`. A `/ping` to meta is sent
    /// and its access line awaited first: stderr is one ordered pipe, so every lookup
    /// line written before it has been read by then.
    pub fn lookups(&self, user: &str) -> usize {
        let is_ping = |line: &str| line.contains(" path=/ping ");
        let pings = self.meta.count_log_lines(is_ping);
        let pong = request(self.meta.addr(), "GET", "/ping", &[], b"");
        assert_eq!(pong.status, 204, "{pong:?}");
        self.meta.wait_for_log_lines(pings + 1, is_ping);
        let lookup = format!(" method=GET path=/user name={user} ");
        self.meta.count_log_lines(|line| line.contains(&lookup))
    }
}

/// `kapauth meta` over `dir` with its administrator made by the bootstrap `create`.
pub fn start_meta(dir: &TempDir) -> Kapauth {
    let meta = Launch::meta(&dir.join("meta")).start();
    bootstrap_admin(meta.addr());
    meta
}

/// The first user of an empty store, made without credentials: `ADMIN`, every permission.
pub fn bootstrap_admin(meta: SocketAddr) {
    let response = request(
        meta,
        "POST",
        "/user",
        &[],
        json!({"action": "create", "user": {"name": ADMIN, "password": ADMIN_PASSWORD}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(response.status, 200, "bootstrap admin: {response:?}");
}

/// `kapauth serve` in front of `echo`, asking the meta API at `meta` as the administrator.
pub fn gateway_launch(meta: SocketAddr, echo: &Echo) -> Launch {
    Launch::serve()
        .set("http.bind-address", "127.0.0.1:0")
        .set("auth.meta-addr", meta.to_string())
        .set("auth.meta-username", ADMIN)
        .set("auth.meta-password", ADMIN_PASSWORD)
        .set("auth.bcrypt-cost", "4")
        .set("auth.meta-timeout", "2s")
        .set("gateway.upstream", echo.url())
        .wait_for("gateway")
}

/// Creates a user and grants `permissions` (scope → names) through the meta API.
pub fn create_user(meta: SocketAddr, name: &str, password: &str, permissions: &[(&str, &[&str])]) {
    meta_post(
        meta,
        "/user",
        &json!({"action": "create", "user": {"name": name, "password": password}}),
    );
    if !permissions.is_empty() {
        let permissions: serde_json::Map<String, serde_json::Value> = permissions
            .iter()
            .map(|(scope, names)| (scope.to_string(), json!(names)))
            .collect();
        meta_post(
            meta,
            "/user",
            &json!({"action": "add-permissions", "user": {"name": name, "permissions": permissions}}),
        );
    }
}

pub fn meta_post(meta: SocketAddr, path: &str, body: &serde_json::Value) {
    let response = request(
        meta,
        "POST",
        path,
        &[("Authorization", &basic(ADMIN, ADMIN_PASSWORD))],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 200, "POST {path} {body}: {response:?}");
}
