//! Black-box tests of `kapauth user` and `kapauth role` (issue 9, item 5): the real binary
//! against a real `kapauth meta` on 127.0.0.1 port 0. Users and roles are made, granted,
//! listed and removed only through the commands; the meta API itself is asked (`GET /user`,
//! `/authorized`) to show each change really happened. Passwords go in on stdin, or at a
//! prompt on a terminal that `script` provides, and are checked never to reach argv,
//! stdout, stderr or the meta log. Also: the meta API's own error texts with what was
//! attempted, https with the meta client's CA, the internal-secret token, a 307 followed
//! with the credentials and the body, the config file naming the meta API.

mod support;

#[path = "support/certs.rs"]
mod certs;
#[path = "support/raw_upstream.rs"]
mod raw_upstream;
#[path = "support/tls_proxy.rs"]
mod tls_proxy;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use raw_upstream::RawUpstream;
use support::{Kapauth, Launch, Output, READY_TIMEOUT, TempDir, basic, request};
use tls_proxy::TlsProxy;

const ADMIN: (&str, &str) = ("admin", "changeit");

/// The 18 permissions the first user of an empty store gets, as `user list` prints them.
const ALL_18: &str = "AddRemoveNode,CopyShard,CreateDatabase,CreateUserAndRole,DropData,DropDatabase,KapacitorAPI,KapacitorConfigAPI,ManageContinuousQuery,ManageQuery,ManageShard,ManageSubscription,Monitor,ReadData,Rebalance,ViewAdmin,ViewChronograf,WriteData";

/// The hint every 401 or 403 ends with.
const CREDENTIALS_HINT: &str = "set [auth] meta-username and meta-password, or meta-internal-shared-secret, in the file or as KAPACITOR_AUTH_META_*";

/// A `kapauth meta` over a temporary store.
struct Meta {
    dir: TempDir,
    server: Kapauth,
}

impl Meta {
    fn start(launch: impl FnOnce(Launch) -> Launch) -> Meta {
        let dir = TempDir::new("admin");
        let server = launch(Launch::meta(&dir.join("store"))).start();
        Meta { dir, server }
    }

    /// A meta server whose first user, `admin`, was made by `kapauth user add` itself.
    fn with_admin() -> Meta {
        let meta = Meta::start(|launch| launch);
        let created = meta.run(&["user", "add", "admin"], &[], "changeit\n");
        assert_done(&created, "created user \"admin\"\n");
        meta
    }

    fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `kapauth ARGS --meta URL` with the environment `env` and `stdin`.
    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
        let url = self.url();
        run(&[args, &["--meta", &url]].concat(), env, stdin)
    }

    /// `run` with the admin's credentials in the environment, as an operator sets them.
    fn admin(&self, args: &[&str], stdin: &str) -> Output {
        self.run(args, &admin_env(), stdin)
    }

    /// The meta API's own view of `path`, read as the admin.
    fn get(&self, path: &str) -> String {
        let authorization = basic(ADMIN.0, ADMIN.1);
        let response = request(
            self.server.addr(),
            "GET",
            path,
            &[("Authorization", &authorization)],
            b"",
        );
        assert_eq!(response.status, 200, "GET {path}: {response:?}");
        response.text().to_string()
    }

    /// The status of `/authorized` for this name, password and permission on every database.
    fn authorized(&self, name: &str, password: &str, permission: &str) -> u16 {
        let authorization = basic(ADMIN.0, ADMIN.1);
        let target = format!(
            "/authorized?name={name}&password={password}&permission={permission}&resource="
        );
        request(
            self.server.addr(),
            "GET",
            &target,
            &[("Authorization", &authorization)],
            b"",
        )
        .status
    }

    /// How many POSTs the meta API has logged. A `GET /ping` is sent and its line awaited
    /// first: every command that ran before it got its answer after the meta API wrote
    /// that request's line, so once the ping's line is read, so are all of theirs.
    fn posts(&self) -> usize {
        let is_ping = |line: &str| is_meta_request(line) && line.contains("path=/ping");
        let pings = self.server.count_log_lines(is_ping);
        assert_eq!(
            request(self.server.addr(), "GET", "/ping", &[], b"").status,
            204
        );
        self.server.wait_for_log_lines(pings + 1, is_ping);
        self.server
            .count_log_lines(|line| is_meta_request(line) && line.contains("method=POST"))
    }
}

fn is_meta_request(line: &str) -> bool {
    line.contains("msg=\"meta request\"")
}

fn admin_env() -> [(&'static str, &'static str); 2] {
    [
        ("KAPACITOR_AUTH_META_USERNAME", ADMIN.0),
        ("KAPACITOR_AUTH_META_PASSWORD", ADMIN.1),
    ]
}

/// `kapauth ARGS` with `env` and `stdin` (a pipe), to completion.
fn run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let (program, rest) = args.split_first().expect("a command");
    let launch = rest
        .iter()
        .fold(Launch::new(program), |launch, arg| launch.arg(arg));
    let launch = env
        .iter()
        .fold(launch, |launch, (name, value)| launch.env(name, value));
    launch.run_with_stdin(stdin.as_bytes())
}

/// Exit code 0, exactly `stdout`, nothing on stderr.
fn assert_done(output: &Output, stdout: &str) {
    assert_eq!(
        (output.code, output.stdout.as_str(), output.stderr.as_str()),
        (Some(0), stdout, ""),
        "{output:?}"
    );
}

/// Exit code `code`, nothing on stdout, exactly `stderr`.
fn assert_failed(output: &Output, code: i32, stderr: &str) {
    assert_eq!(
        (output.code, output.stdout.as_str(), output.stderr.as_str()),
        (Some(code), "", stderr),
        "{output:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The story: add, grant, role, list, revoke, passwd, rm
// ---------------------------------------------------------------------------------------

#[test]
fn users_and_roles_are_managed_end_to_end_with_passwords_on_stdin() {
    let meta = Meta::with_admin();
    assert_eq!(
        meta.authorized("admin", "changeit", "CreateUserAndRole"),
        200
    );

    assert_done(
        &meta.admin(&["user", "add", "johndoe"], "pa5sw0Rd\n"),
        "created user \"johndoe\"\n",
    );
    assert_eq!(meta.authorized("johndoe", "pa5sw0Rd", "NoPermissions"), 200);
    assert_eq!(
        meta.authorized("johndoe", "pa5sw0Rd%0A", "NoPermissions"),
        401
    );

    let steps: [(&[&str], &str); 5] = [
        (
            &["user", "grant", "johndoe", "KapacitorAPI"],
            "granted KapacitorAPI on all databases to user \"johndoe\"\n",
        ),
        (
            &["user", "grant", "johndoe", "WriteData", "--db", "telegraf"],
            "granted WriteData on database \"telegraf\" to user \"johndoe\"\n",
        ),
        (&["role", "add", "penguin"], "created role \"penguin\"\n"),
        (
            &["role", "grant", "penguin", "KapacitorConfigAPI"],
            "granted KapacitorConfigAPI on all databases to role \"penguin\"\n",
        ),
        (
            &["role", "add-user", "penguin", "johndoe"],
            "added user \"johndoe\" to role \"penguin\"\n",
        ),
    ];
    for (args, printed) in steps {
        assert_done(&meta.admin(args, ""), printed);
    }
    assert_eq!(
        meta.get("/user?name=johndoe")
            .split("\"permissions\":")
            .nth(1),
        Some(r#"{"":["KapacitorAPI"],"telegraf":["WriteData"]}}]}"#)
    );
    // The role's permission reaches the user through the role.
    assert_eq!(
        meta.authorized("johndoe", "pa5sw0Rd", "KapacitorConfigAPI"),
        200
    );

    let users = meta.admin(&["user", "list"], "");
    assert_done(
        &users,
        &format!(
            "USER     ROLES    DATABASE  PERMISSIONS\n\
             admin    -        (all)     {ALL_18}\n\
             johndoe  penguin  (all)     KapacitorAPI\n\
             \x20                 telegraf  WriteData\n"
        ),
    );
    assert!(!users.stdout.contains("$2"), "a hash was printed");
    assert_done(
        &meta.admin(&["role", "list"], ""),
        "ROLE     USERS    DATABASE  PERMISSIONS\n\
         penguin  johndoe  (all)     KapacitorConfigAPI\n",
    );

    let undo: [(&[&str], &str); 3] = [
        (
            &["user", "revoke", "johndoe", "WriteData", "--db", "telegraf"],
            "revoked WriteData on database \"telegraf\" from user \"johndoe\"\n",
        ),
        (
            &["role", "remove-user", "penguin", "johndoe"],
            "removed user \"johndoe\" from role \"penguin\"\n",
        ),
        (
            &["role", "revoke", "penguin", "KapacitorConfigAPI"],
            "revoked KapacitorConfigAPI on all databases from role \"penguin\"\n",
        ),
    ];
    for (args, printed) in undo {
        assert_done(&meta.admin(args, ""), printed);
    }
    assert_eq!(
        meta.authorized("johndoe", "pa5sw0Rd", "KapacitorConfigAPI"),
        403
    );
    assert_done(
        &meta.admin(&["role", "list"], ""),
        "ROLE     USERS  DATABASE  PERMISSIONS\npenguin  -      -         -\n",
    );

    assert_done(
        &meta.admin(&["user", "passwd", "johndoe"], "n3w-Passw0rd\r\n"),
        "changed the password of user \"johndoe\"\n",
    );
    assert_eq!(
        meta.authorized("johndoe", "n3w-Passw0rd", "KapacitorAPI"),
        200
    );
    assert_eq!(meta.authorized("johndoe", "pa5sw0Rd", "KapacitorAPI"), 401);

    assert_done(
        &meta.admin(&["user", "rm", "johndoe"], ""),
        "deleted user \"johndoe\"\n",
    );
    assert_done(
        &meta.admin(&["role", "rm", "penguin"], ""),
        "deleted role \"penguin\"\n",
    );
    assert_done(
        &meta.admin(&["user", "list"], ""),
        &format!("USER   ROLES  DATABASE  PERMISSIONS\nadmin  -      (all)     {ALL_18}\n"),
    );
    assert_done(
        &meta.admin(&["role", "list"], ""),
        "ROLE  USERS  DATABASE  PERMISSIONS\n(no roles)\n",
    );
    // Every line the commands caused is read once `posts` returns.
    assert_eq!(meta.posts(), 13);
    for password in ["pa5sw0Rd", "n3w-Passw0rd", "changeit"] {
        let logged = meta.server.count_log_lines(|line| line.contains(password));
        assert_eq!(logged, 0, "{password} reached the meta log");
    }
}

// ---------------------------------------------------------------------------------------
// Errors: the meta API's own text, what was attempted, the exit code
// ---------------------------------------------------------------------------------------

#[test]
fn wrong_or_missing_meta_credentials_print_the_meta_apis_own_refusal() {
    let meta = Meta::with_admin();
    let url = meta.url();
    let wrong = [
        ("KAPACITOR_AUTH_META_USERNAME", "admin"),
        ("KAPACITOR_AUTH_META_PASSWORD", "wrong"),
    ];
    assert_failed(
        &meta.run(&["user", "add", "mallory"], &wrong, "m4llory\n"),
        1,
        &format!(
            "kapauth: cannot create user \"mallory\": POST {url}/user answered 401: authorization failed (sent Basic credentials of meta-username \"admin\"; {CREDENTIALS_HINT})\n"
        ),
    );
    assert_failed(
        &meta.run(&["user", "list"], &[], ""),
        1,
        &format!(
            "kapauth: cannot list users: GET {url}/user answered 401: unable to parse authentication credentials (sent no credentials; {CREDENTIALS_HINT})\n"
        ),
    );

    // A user who may log in but not manage users gets the meta API's 403.
    assert_done(
        &meta.admin(&["user", "add", "johndoe"], "pa5sw0Rd\n"),
        "created user \"johndoe\"\n",
    );
    let johndoe = [
        ("KAPACITOR_AUTH_META_USERNAME", "johndoe"),
        ("KAPACITOR_AUTH_META_PASSWORD", "pa5sw0Rd"),
    ];
    assert_failed(
        &meta.run(
            &["user", "grant", "johndoe", "CreateUserAndRole"],
            &johndoe,
            "",
        ),
        1,
        &format!(
            "kapauth: cannot grant CreateUserAndRole on all databases to user \"johndoe\": POST {url}/user answered 403: user \"johndoe\" needs the CreateUserAndRole permission for this request (sent Basic credentials of meta-username \"johndoe\"; {CREDENTIALS_HINT})\n"
        ),
    );
    assert_eq!(meta.authorized("mallory", "m4llory", "NoPermissions"), 401);
    assert_eq!(
        meta.authorized("johndoe", "pa5sw0Rd", "CreateUserAndRole"),
        403
    );
}

#[test]
fn a_refused_change_names_what_was_attempted_and_the_meta_apis_reason() {
    let meta = Meta::with_admin();
    let url = meta.url();
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["role", "add-user", "penguin", "tux"],
            "add user \"tux\" to role \"penguin\"",
            "POST /role answered 404: user \"tux\" not found",
        ),
        (
            &["user", "rm", "nobody"],
            "delete user \"nobody\"",
            "POST /user answered 404: user \"nobody\" not found",
        ),
        (
            &["user", "add", "admin"],
            "create user \"admin\"",
            "POST /user answered 409: user \"admin\" already exists",
        ),
        (
            &["role", "grant", "nope", "ReadData", "--db", "db1"],
            "grant ReadData on database \"db1\" to role \"nope\"",
            "POST /role answered 404: role \"nope\" not found",
        ),
    ];
    for (args, attempt, answer) in cases {
        let (method, rest) = answer.split_once(' ').expect("a method");
        assert_failed(
            &meta.admin(args, "s0me-password\n"),
            1,
            &format!("kapauth: cannot {attempt}: {method} {url}{rest}\n"),
        );
    }
}

#[test]
fn an_unreachable_meta_api_is_named_with_the_url_tried() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral port")
        .port();
    let output = run(
        &[
            "user",
            "list",
            "--meta",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[],
        "",
    );
    assert_eq!(output.code, Some(1), "{output:?}");
    let expected =
        format!("kapauth: cannot list users: GET http://127.0.0.1:{port}/user got no answer: ");
    assert!(output.stderr.starts_with(&expected), "{output:?}");
    assert!(
        output
            .stderr
            .ends_with("; check --meta or [auth] meta-addr\n"),
        "{output:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Passwords and permissions: checked before anything is sent
// ---------------------------------------------------------------------------------------

#[test]
fn a_password_cannot_be_given_on_the_command_line_and_none_is_sent_without_one() {
    let meta = Meta::with_admin();
    let before = meta.posts();
    let refused: [(&[&str], &str); 3] = [
        (
            &["user", "add", "johndoe", "pa5sw0Rd"],
            "kapauth: unexpected argument \"pa5sw0Rd\" for 'kapauth user add'; run 'kapauth user add --help'\n",
        ),
        (
            &["user", "add", "johndoe", "--password", "pa5sw0Rd"],
            "kapauth: unknown flag --password for 'kapauth user add'; run 'kapauth user add --help'\n",
        ),
        (
            &["user", "passwd", "johndoe", "-p", "pa5sw0Rd"],
            "kapauth: unknown flag -p for 'kapauth user passwd'; run 'kapauth user passwd --help'\n",
        ),
    ];
    for (args, stderr) in refused {
        assert_failed(&meta.admin(args, ""), 2, stderr);
    }
    for stdin in ["", "\n"] {
        assert_failed(
            &meta.admin(&["user", "add", "johndoe"], stdin),
            1,
            "kapauth: no password given: type it at the prompt, or pipe one line on stdin (e.g. from a file readable only by you)\n",
        );
    }
    assert_eq!(
        meta.posts(),
        before,
        "a refused command reached the meta API"
    );
    assert_eq!(meta.authorized("johndoe", "pa5sw0Rd", "NoPermissions"), 401);
}

#[test]
fn a_permission_name_is_checked_against_the_19_tokens_before_anything_is_sent() {
    let meta = Meta::with_admin();
    let before = meta.posts();
    let output = meta.admin(&["user", "grant", "admin", "kapacitorapi"], "");
    assert_failed(
        &output,
        2,
        "kapauth: unknown permission \"kapacitorapi\" (did you mean KapacitorAPI?); the permissions are NoPermissions, ViewAdmin, ViewChronograf, CreateDatabase, CreateUserAndRole, AddRemoveNode, DropDatabase, DropData, ReadData, WriteData, Rebalance, ManageShard, ManageContinuousQuery, ManageQuery, ManageSubscription, Monitor, CopyShard, KapacitorAPI, KapacitorConfigAPI\n",
    );
    assert_eq!(meta.posts(), before);
}

#[test]
fn help_is_printed_for_user_role_and_each_subcommand() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["user", "--help"],
            "Usage: kapauth user <subcommand> [flags]\n",
        ),
        (
            &["role", "help"],
            "Usage: kapauth role <subcommand> [flags]\n",
        ),
        (&["user", "add", "--help"], "Usage: kapauth user add NAME\n"),
        (
            &["user", "grant", "-h"],
            "Usage: kapauth user grant NAME PERMISSION [--db DB]\n",
        ),
        (
            &["role", "remove-user", "--help"],
            "Usage: kapauth role remove-user ROLE USER\n",
        ),
    ];
    for (args, first_line) in cases {
        let output = run(args, &[], "");
        assert_eq!(
            (output.code, output.stderr.as_str()),
            (Some(0), ""),
            "{args:?}"
        );
        assert!(
            output.stdout.starts_with(first_line),
            "{args:?}: {}",
            output.stdout
        );
        assert!(!output.stdout.contains("--password"), "{args:?}");
    }
    let top = run(&["--help"], &[], "");
    assert!(top.stdout.contains("\n  user "), "{}", top.stdout);
    assert!(top.stdout.contains("\n  role "), "{}", top.stdout);
}

// ---------------------------------------------------------------------------------------
// Where the meta API is and how it is reached
// ---------------------------------------------------------------------------------------

#[test]
fn the_config_file_names_the_meta_api_and_its_credentials() {
    let meta = Meta::with_admin();
    let addr = meta.server.addr();
    let remote = meta.dir.join("remote.conf");
    std::fs::write(
        &remote,
        format!(
            "[auth]\nmeta-addr = \"{addr}\"\nmeta-username = \"admin\"\nmeta-password = \"changeit\"\n"
        ),
    )
    .expect("write the config");
    // With meta-addr empty, the embedded meta API of [meta] bind-address is the default.
    let embedded = meta.dir.join("embedded.conf");
    std::fs::write(
        &embedded,
        format!(
            "[auth]\nmeta-username = \"admin\"\nmeta-password = \"changeit\"\n\n[meta]\nbind-address = \"{addr}\"\n"
        ),
    )
    .expect("write the config");
    for config in [&remote, &embedded] {
        let config = config.to_str().expect("a UTF-8 path");
        assert_done(
            &run(&["role", "add", "from-config", "--config", config], &[], ""),
            "created role \"from-config\"\n",
        );
        assert_done(
            &run(&["role", "rm", "from-config", "--config", config], &[], ""),
            "deleted role \"from-config\"\n",
        );
    }
    // The environment overrides the file, as for serve.
    let output = run(
        &[
            "user",
            "list",
            "--config",
            remote.to_str().expect("a UTF-8 path"),
        ],
        &[("KAPACITOR_AUTH_META_PASSWORD", "wrong")],
        "",
    );
    assert_eq!(output.code, Some(1), "{output:?}");
    assert!(
        output.stderr.contains("answered 401: authorization failed"),
        "{output:?}"
    );
}

#[test]
fn https_meta_is_managed_with_the_meta_clients_ca_and_refused_without_it() {
    let dir = TempDir::new("admin-tls");
    let pki = certs::make_pki(&dir.join("pki"), "admin-cli-ca");
    let meta = Meta::start(|launch| {
        launch
            .set("meta.https-enabled", "true")
            .set("meta.https-certificate", &pki.server.cert_pem)
            .set("meta.https-private-key", &pki.server.key_pem)
    });
    let addr = meta.server.addr();
    let ca = pki.ca.cert_pem.to_str().expect("a UTF-8 path").to_string();
    let tls = [
        "--set",
        &format!("auth.meta-addr={addr}"),
        "--set",
        "auth.meta-use-tls=true",
        "--set",
        &format!("auth.meta-ca={ca}"),
    ];
    let with_tls = |args: &[&str], env: &[(&str, &str)], stdin: &str| {
        run(&[args, &tls[..]].concat(), env, stdin)
    };
    assert_done(
        &with_tls(&["user", "add", "admin"], &[], "changeit\n"),
        "created user \"admin\"\n",
    );
    assert_done(
        &with_tls(&["user", "list"], &admin_env(), ""),
        &format!("USER   ROLES  DATABASE  PERMISSIONS\nadmin  -      (all)     {ALL_18}\n"),
    );

    // Without the CA the server's certificate is not trusted: nothing is sent.
    let untrusted = run(
        &["user", "list", "--meta", &format!("https://{addr}")],
        &admin_env(),
        "",
    );
    assert_eq!(untrusted.code, Some(1), "{untrusted:?}");
    let expected = format!("kapauth: cannot list users: GET https://{addr}/user got no answer: ");
    assert!(untrusted.stderr.starts_with(&expected), "{untrusted:?}");
    assert!(untrusted.stderr.contains("UnknownIssuer"), "{untrusted:?}");

    // A meta-ca that is not a certificate is named before anything else happens.
    let output = run(
        &[
            "user",
            "list",
            "--set",
            "auth.meta-use-tls=true",
            "--set",
            "auth.meta-ca=/nonexistent/ca.pem",
            "--meta",
            &format!("https://{addr}"),
        ],
        &admin_env(),
        "",
    );
    assert_eq!(output.code, Some(1), "{output:?}");
    assert!(
        output
            .stderr
            .starts_with("kapauth: TLS for the meta API: [auth] meta-ca = \"/nonexistent/ca.pem\": cannot be read: "),
        "{output:?}"
    );
}

#[test]
fn a_meta_api_that_requires_a_client_certificate_gets_meta_cert_and_meta_key() {
    let meta = Meta::with_admin();
    let dir = TempDir::new("admin-mtls");
    let pki = certs::make_pki(&dir.join("pki"), "admin-mtls-ca");
    let proxy = TlsProxy::start(
        meta.server.addr(),
        &pki.server.cert_der,
        &pki.server.key_der,
        Some(&pki.ca.cert_der),
    );
    let path = |path: &std::path::Path| path.to_str().expect("a UTF-8 path").to_string();
    let tls = [
        format!("auth.meta-addr={}", proxy.addr),
        "auth.meta-use-tls=true".to_string(),
        format!("auth.meta-ca={}", path(&pki.ca.cert_pem)),
    ];
    let identity = [
        format!("auth.meta-cert={}", path(&pki.client.cert_pem)),
        format!("auth.meta-key={}", path(&pki.client.key_pem)),
    ];
    let list = |sets: &[&String]| {
        let mut args = vec!["role", "list"];
        for set in sets {
            args.extend(["--set", set.as_str()]);
        }
        run(&args, &admin_env(), "")
    };
    let with_identity: Vec<&String> = tls.iter().chain(&identity).collect();
    assert_done(
        &list(&with_identity),
        "ROLE  USERS  DATABASE  PERMISSIONS\n(no roles)\n",
    );
    assert_eq!(proxy.client_certificates(), 1);

    let without: Vec<&String> = tls.iter().collect();
    let refused = list(&without);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    let expected = format!(
        "kapauth: cannot list roles: GET https://{}/role got no answer: ",
        proxy.addr
    );
    assert!(refused.stderr.starts_with(&expected), "{refused:?}");
    assert_eq!(proxy.client_certificates(), 1);
}

#[test]
fn the_internal_shared_secret_signs_a_token_the_meta_api_accepts() {
    let meta = Meta::start(|launch| launch.set("meta.internal-shared-secret", "s3cret-shared"));
    assert_done(
        &meta.run(&["user", "add", "admin"], &[], "changeit\n"),
        "created user \"admin\"\n",
    );
    let token = [(
        "KAPACITOR_AUTH_META_INTERNAL_SHARED_SECRET",
        "s3cret-shared",
    )];
    assert_done(
        &meta.run(&["role", "add", "ops"], &token, ""),
        "created role \"ops\"\n",
    );
    let url = meta.url();
    let wrong = [(
        "KAPACITOR_AUTH_META_INTERNAL_SHARED_SECRET",
        "not-the-secret",
    )];
    assert_failed(
        &meta.run(&["role", "rm", "ops"], &wrong, ""),
        1,
        &format!(
            "kapauth: cannot delete role \"ops\": POST {url}/role answered 401: invalid token: signature is invalid (sent a token signed with meta-internal-shared-secret; {CREDENTIALS_HINT})\n"
        ),
    );
    assert_eq!(meta.get("/role"), r#"{"roles":[{"name":"ops"}]}"#);
}

#[test]
fn a_307_from_a_meta_node_is_followed_with_the_credentials_and_the_body() {
    let meta = Meta::with_admin();
    let leader = meta.url();
    // A follower that sends every request to the leader, as Enterprise's meta nodes do.
    let follower = RawUpstream::start(move |mut connection| {
        while let Some(seen) = connection.read_request() {
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {leader}{}\r\nContent-Length: 0\r\n\r\n",
                seen.target
            );
            if connection.send(answer.as_bytes()).is_err() {
                break;
            }
        }
    });
    let output = run(
        &["user", "add", "tux", "--meta", &follower.url()],
        &admin_env(),
        "t0xic-penguin\n",
    );
    assert_done(&output, "created user \"tux\"\n");
    assert_eq!(
        meta.authorized("tux", "t0xic-penguin", "NoPermissions"),
        200
    );
    let seen = follower.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].header("Authorization"),
        Some(basic(ADMIN.0, ADMIN.1).as_str())
    );
}

// ---------------------------------------------------------------------------------------
// The prompt on a terminal (a pseudo-terminal from util-linux `script`)
// ---------------------------------------------------------------------------------------

/// `script` running `kapauth ARGS; stty -a` on a pseudo-terminal, typed into by the test.
struct Terminal {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Terminal {
    /// `None` when `script` is not installed here.
    fn start(meta: &Meta, args: &[&str]) -> Option<Terminal> {
        let kapauth = env!("CARGO_BIN_EXE_kapauth");
        let url = meta.url();
        let line = format!(
            "{kapauth} {} --meta {url}; echo exit=$?; stty -a",
            args.join(" ")
        );
        let mut command = Command::new("script");
        command
            .args(["--quiet", "--return", "--command", &line, "/dev/null"])
            .envs(admin_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().ok()?;
        let input = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stdout.read(&mut buffer) {
                if read == 0 || sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        Some(Terminal {
            child,
            input,
            output,
            seen: Vec::new(),
        })
    }

    /// Waits until the terminal has shown `text`; fails the test after `READY_TIMEOUT`.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !String::from_utf8_lossy(&self.seen).contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.extend(bytes),
                Err(_) => panic!(
                    "the terminal did not show {text:?}; it showed {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    fn type_in(&mut self, bytes: &[u8]) {
        self.input.write_all(bytes).expect("type into the terminal");
        self.input.flush().expect("flush the typing");
    }

    /// Everything shown until `script` ends (its output closes).
    fn finish(mut self) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.extend(bytes),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "script still ran after {READY_TIMEOUT:?}; it showed {:?}",
                        String::from_utf8_lossy(&self.seen)
                    );
                }
            }
        }
        let _ = self.child.wait();
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

/// Runs `kapauth ARGS` on a terminal, typing each answer once its prompt shows, and
/// returns what the terminal showed, after checking that no typed byte was echoed and that
/// echo, line editing and signals are on again afterwards. `None` without `script`.
fn at_terminal(meta: &Meta, args: &[&str], dialogue: &[(&str, &str)]) -> Option<String> {
    let Some(mut terminal) = Terminal::start(meta, args) else {
        eprintln!("skipped: util-linux script is not installed");
        return None;
    };
    for (prompt, typed) in dialogue {
        terminal.expect(prompt);
        terminal.type_in(typed.as_bytes());
    }
    let shown = terminal.finish();
    for (_, typed) in dialogue {
        // What was typed, minus the editing bytes and the Enter.
        let visible: String = typed.chars().filter(|c| !c.is_control()).collect();
        let echoed = !visible.is_empty() && shown.contains(&visible);
        assert!(!echoed, "{visible:?} was echoed: {shown}");
    }
    for flag in ["echo", "icanon", "isig"] {
        let on = shown.split_whitespace().any(|word| word == flag);
        assert!(on, "{flag} was left off: {shown}");
    }
    Some(shown)
}

#[test]
fn the_prompt_reads_the_password_twice_without_echo_and_restores_the_terminal() {
    let meta = Meta::with_admin();
    let dialogue = [
        ("Password for \"ttyuser\": ", "Typ3d-secrex\x7ft\r"),
        ("Type it again: ", "Typ3d-secret\r"),
    ];
    let Some(shown) = at_terminal(&meta, &["user", "add", "ttyuser"], &dialogue) else {
        return;
    };
    assert!(shown.contains("created user \"ttyuser\""), "{shown}");
    assert!(shown.contains("exit=0"), "{shown}");
    assert!(!shown.contains("Typ3d"), "{shown}");
    let authorized = meta.authorized("ttyuser", "Typ3d-secret", "NoPermissions");
    assert_eq!(authorized, 200);
}

#[test]
fn ctrl_c_or_two_different_passwords_at_the_prompt_send_nothing() {
    let meta = Meta::with_admin();
    let before = meta.posts();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("Password for \"admin\": ", "half-typ\x03")],
            "kapauth: cancelled at the password prompt; nothing was sent",
        ),
        (
            &[("Password for \"admin\": ", "\x04")],
            "kapauth: cancelled at the password prompt; nothing was sent",
        ),
        (
            &[
                ("Password for \"admin\": ", "first-try\r"),
                ("Type it again: ", "second-try\r"),
            ],
            "kapauth: the two passwords differ; nothing was sent",
        ),
    ];
    for (dialogue, message) in cases {
        let Some(shown) = at_terminal(&meta, &["user", "passwd", "admin"], dialogue) else {
            return;
        };
        assert!(shown.contains(message), "{shown}");
        assert!(shown.contains("exit=1"), "{shown}");
    }
    assert_eq!(meta.posts(), before);
    assert_eq!(meta.authorized("admin", "changeit", "NoPermissions"), 200);
}
