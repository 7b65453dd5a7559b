//! Black-box tests of `kapauth serve`, the gateway (SPEC §1, §2, §4–§7): the real binary in
//! front of an echo upstream (`support/upstream.rs`), looking users up in a real
//! `kapauth meta` whose users are made through its own HTTP API, exactly as the seed
//! documents make them. Every body kapauth writes is asserted byte for byte; what reached
//! the upstream is read back from the echo's description of it; meta lookups are counted
//! on the meta server's access log (`path=/user name=NAME`).

#[path = "support/certs.rs"]
mod certs;
#[path = "support/raw_upstream.rs"]
mod raw_upstream;
#[path = "support/stack.rs"]
mod stack;
mod support;
#[path = "support/tls_proxy.rs"]
mod tls_proxy;
#[path = "support/upstream.rs"]
mod upstream;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde_json::json;
use stack::{
    KAPACITOR, Stack, bootstrap_admin, create_user, gateway_launch, meta_post, start_meta,
};
use support::{Kapauth, Launch, Response, TempDir, basic, request};
use tls_proxy::TlsProxy;
use upstream::{Echo, Pattern, Seen, pattern_sha256};

const JSON_UTF8: &str = "application/json; charset=utf-8";
const KAPACITOR_REALM: &str = "Basic realm=\"kapacitor\"";
const SHARED_SECRET: &str = "the gateway's shared secret";
const TASKS: &str = "/kapacitor/v1/tasks";

// ---------------------------------------------------------------------------------------
// The seed's story (SPEC §1–§3, §7)
// ---------------------------------------------------------------------------------------

#[test]
fn seed_user_with_kapacitor_permissions_reaches_the_upstream_without_its_credentials() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    let response = stack.get(TASKS, &[("Authorization", &basic("johndoe", "pa5sw0Rd"))]);

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("X-Echo"), Some("yes"));
    let seen = Seen::parse(&response.body);
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, TASKS);
    assert_eq!(seen.header("Authorization"), None, "{seen:?}");
    assert_eq!(seen.header("X-Forwarded-For"), Some("127.0.0.1"));
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("http"));
    let gateway_host = stack.gateway.addr().to_string();
    assert_eq!(seen.header("X-Forwarded-Host"), Some(gateway_host.as_str()));
    assert_eq!(seen.body_length, 0);
    assert_eq!(stack.echo.requests(), 1);
}

#[test]
fn user_without_the_permission_gets_kapacitors_exact_403_and_nothing_is_forwarded() {
    let stack = Stack::start(&[]);
    // Permissions for databases give nothing under /api.
    stack.create_user("admin2", "s3cret", &[("mydb", &["ReadData"])]);
    stack.create_user("nobody", "s3cret", &[]);

    for user in ["admin2", "nobody"] {
        let response = stack.get(TASKS, &[("Authorization", &basic(user, "s3cret"))]);
        assert_eq!(response.status, 403, "{response:?}");
        assert_eq!(
            response.text(),
            format!(
                r#"{{"error":"user {user} does not have \"read\" privilege for API endpoint \"/kapacitor/v1/tasks\""}}"#
            )
        );
        assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
        assert_request_id(&response);
    }
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn the_seeds_role_grants_its_permissions_to_the_users_it_lists() {
    let stack = Stack::start(&[]);
    stack.meta_post(
        "/role",
        json!({"action": "create", "role": {"name": "penguin"}}),
    );
    stack.meta_post(
        "/role",
        json!({"action": "add-permissions", "role": {"name": "penguin",
            "permissions": {"": ["KapacitorAPI", "KapacitorConfigAPI"]}}}),
    );
    stack.create_user("tux", "changeit", &[]);
    stack.create_user("sova", "changeit", &[]);
    stack.meta_post(
        "/role",
        json!({"action": "add-users", "role": {"name": "penguin", "users": ["tux"]}}),
    );

    let tux = stack.get(TASKS, &[("Authorization", &basic("tux", "changeit"))]);
    assert_eq!(tux.status, 200, "{tux:?}");
    assert_eq!(Seen::parse(&tux.body).target, TASKS);
    let sova = stack.get(TASKS, &[("Authorization", &basic("sova", "changeit"))]);
    assert_eq!(sova.status, 403, "{sova:?}");
    assert_eq!(
        sova.text(),
        r#"{"error":"user sova does not have \"read\" privilege for API endpoint \"/kapacitor/v1/tasks\""}"#
    );
}

#[test]
fn query_credentials_are_accepted_and_only_u_and_p_are_removed_from_the_target() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    let cases = [
        (
            "/kapacitor/v1/tasks?u=johndoe&p=pa5sw0Rd",
            "/kapacitor/v1/tasks",
        ),
        (
            "/kapacitor/v1/tasks?dot=%2e&u=johndoe&x=a+b&p=pa5sw0Rd&y=%41;z&flag&x=2",
            "/kapacitor/v1/tasks?dot=%2e&x=a+b&y=%41;z&flag&x=2",
        ),
        // Keys are compared decoded, so an encoded `u` or `p` is a credential too.
        (
            "/kapacitor/v1/tasks?%75=johndoe&%70=pa5sw0Rd&pattern=x",
            "/kapacitor/v1/tasks?pattern=x",
        ),
    ];
    for (target, forwarded) in cases {
        let response = stack.get(target, &[]);
        assert_eq!(response.status, 200, "{target}: {response:?}");
        let seen = Seen::parse(&response.body);
        assert_eq!(seen.target, forwarded, "{target}");
        assert_eq!(seen.header("Authorization"), None);
    }
    // With Basic credentials, `u` and `p` in the query are removed all the same.
    let response = stack.get(
        "/kapacitor/v1/tasks?u=someone&p=else&keep=1",
        &[("Authorization", &basic("johndoe", "pa5sw0Rd"))],
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        Seen::parse(&response.body).target,
        "/kapacitor/v1/tasks?keep=1"
    );
    // Nor does the password reach the gateway's log.
    stack
        .gateway
        .wait_for_log_lines(4, |line| line.contains("msg=\"http request\""));
    assert_eq!(
        stack
            .gateway
            .count_log_lines(|line| line.contains("pa5sw0Rd")),
        0
    );
}

#[test]
fn forwarded_headers_extend_the_clients_for_and_replace_its_host_and_proto() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    let response = stack.get(
        TASKS,
        &[
            ("Authorization", &basic("johndoe", "pa5sw0Rd")),
            ("X-Forwarded-For", "10.1.2.3"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
            ("X-Custom", "kept"),
        ],
    );
    assert_eq!(response.status, 200, "{response:?}");
    let seen = Seen::parse(&response.body);
    assert_eq!(seen.header("X-Forwarded-For"), Some("10.1.2.3, 127.0.0.1"));
    let gateway_host = stack.gateway.addr().to_string();
    assert_eq!(seen.header("X-Forwarded-Host"), Some(gateway_host.as_str()));
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("http"));
    assert_eq!(seen.header("X-Custom"), Some("kept"));
    let upstream_host = stack.echo.addr.to_string();
    assert_eq!(seen.header("Host"), Some(upstream_host.as_str()));
    assert_eq!(
        seen.headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-host"))
            .count(),
        1
    );
}

#[test]
fn url_userinfo_arrives_as_basic_and_is_split_at_the_first_colon() {
    let stack = Stack::start(&[]);
    // `kapacitor -url http://bob:p%40ss:w0rd@host` and curl send Basic of the decoded
    // userinfo; the password may itself hold a colon.
    stack.create_user("bob", "p@ss:w0rd", KAPACITOR);

    let response = stack.get(
        "/kapacitor/v1/ping",
        &[("Authorization", &basic("bob", "p@ss:w0rd"))],
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(Seen::parse(&response.body).target, "/kapacitor/v1/ping");
    // The scheme word is case-insensitive for Basic (SPEC §1).
    let lower = basic("bob", "p@ss:w0rd").replacen("Basic", "basic", 1);
    let response = stack.get("/kapacitor/v1/ping", &[("Authorization", &lower)]);
    assert_eq!(response.status, 200, "{response:?}");
}

// ---------------------------------------------------------------------------------------
// 401s (SPEC §1, §5)
// ---------------------------------------------------------------------------------------

#[test]
fn every_credential_failure_is_a_401_with_the_exact_text_and_the_kapacitor_realm() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    let unparseable = "unable to parse authentication credentials";
    let subscriber = "subscription tokens are not supported; give the subscription a meta user";
    let no_colon = format!("Basic {}", support::base64(b"johndoe"));
    // (target, Authorization header, message)
    let cases = [
        (TASKS, None, unparseable),
        (TASKS, Some("Digest x=1".to_string()), unparseable),
        // Not base64, and base64 without a colon: neither is Basic, so the query is read.
        (TASKS, Some("Basic !!!".to_string()), unparseable),
        (TASKS, Some(no_colon), unparseable),
        ("/kapacitor/v1/tasks?u=johndoe", None, unparseable),
        ("/kapacitor/v1/tasks?u=johndoe&p=", None, unparseable),
        (TASKS, Some(basic("", "pa5sw0Rd")), "username required"),
        (
            TASKS,
            Some(basic("nosuch", "pa5sw0Rd")),
            "authorization failed",
        ),
        (
            TASKS,
            Some(basic("johndoe", "wrong")),
            "authorization failed",
        ),
        (
            "/kapacitor/v1/tasks?u=johndoe&p=wrong",
            None,
            "authorization failed",
        ),
        (
            "/kapacitor/v1/tasks?u=nosuch&p=x",
            None,
            "authorization failed",
        ),
        (TASKS, Some(basic("~subscriber", "anything")), subscriber),
        // Only the Basic username is special (SPEC §1): in the query it is a name that
        // meta does not know, as Kapacitor answers it.
        (
            "/kapacitor/v1/tasks?u=~subscriber&p=anything",
            None,
            "authorization failed",
        ),
    ];
    for (target, authorization, message) in &cases {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        let response = stack.get(target, &headers);
        assert_unauthorized(&response, message, &format!("{target} {authorization:?}"));
    }
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn valid_hs256_and_hs512_bearer_tokens_reach_the_upstream_without_the_token() {
    let stack = Stack::start(&[("http.shared-secret", SHARED_SECRET)]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let claims = json!({"username": "johndoe", "exp": unix_now() + 60});

    for algorithm in ["HS256", "HS384", "HS512"] {
        let token = jwt(algorithm, &claims, SHARED_SECRET);
        let response = stack.get(TASKS, &[("Authorization", &format!("Bearer {token}"))]);
        assert_eq!(response.status, 200, "{algorithm}: {response:?}");
        let seen = Seen::parse(&response.body);
        assert_eq!(seen.target, TASKS);
        assert_eq!(seen.header("Authorization"), None);
    }
    // The access line names the token's user.
    stack.gateway.wait_for_log_lines(3, |line| {
        line.contains(" username=johndoe ") && line.contains(" status=200 ")
    });
    // A token carries no password, but the user's privileges still apply.
    stack.create_user("nobody", "x", &[]);
    let token = jwt(
        "HS512",
        &json!({"username": "nobody", "exp": unix_now() + 60}),
        SHARED_SECRET,
    );
    let response = stack.get(TASKS, &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(response.status, 403, "{response:?}");
    assert_eq!(
        response.text(),
        r#"{"error":"user nobody does not have \"read\" privilege for API endpoint \"/kapacitor/v1/tasks\""}"#
    );
}

#[test]
fn refused_bearer_tokens_get_golang_jwt_texts_in_a_401() {
    let stack = Stack::start(&[("http.shared-secret", SHARED_SECRET)]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let now = unix_now();
    let valid = json!({"username": "johndoe", "exp": now + 60});

    let cases = [
        (
            jwt(
                "HS256",
                &json!({"username": "johndoe", "exp": now - 10}),
                SHARED_SECRET,
            ),
            "invalid token: Token is expired",
        ),
        (
            jwt("HS512", &valid, "another secret"),
            "invalid token: signature is invalid",
        ),
        (
            jwt("none", &valid, SHARED_SECRET),
            "invalid token: unexpected signing method: none",
        ),
        (
            jwt(
                "HS256",
                &json!({"username": "johndoe", "exp": now + 60, "nbf": now + 600}),
                SHARED_SECRET,
            ),
            "invalid token: Token is not valid yet",
        ),
        (
            jwt("HS256", &json!({"username": "johndoe"}), SHARED_SECRET),
            "token expiration required",
        ),
        (
            jwt("HS256", &json!({"exp": now + 60}), SHARED_SECRET),
            "username in token must be a string",
        ),
        (
            jwt(
                "HS256",
                &json!({"username": "", "exp": now + 60}),
                SHARED_SECRET,
            ),
            "token must contain a username",
        ),
        (
            "not-a-token".to_string(),
            "invalid token: token contains an invalid number of segments",
        ),
        // A valid token for a user meta does not know.
        (
            jwt(
                "HS256",
                &json!({"username": "nosuch", "exp": now + 60}),
                SHARED_SECRET,
            ),
            "authorization failed",
        ),
    ];
    for (token, message) in &cases {
        let response = stack.get(TASKS, &[("Authorization", &format!("Bearer {token}"))]);
        assert_unauthorized(&response, message, token);
    }
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn without_a_shared_secret_every_bearer_token_is_refused() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let claims = json!({"username": "johndoe", "exp": unix_now() + 60});

    // Signed with the empty key Kapacitor would verify against, and with any other.
    for secret in ["", SHARED_SECRET] {
        let token = jwt("HS256", &claims, secret);
        let response = stack.get(TASKS, &[("Authorization", &format!("Bearer {token}"))]);
        assert_unauthorized(
            &response,
            "invalid token: no shared secret is configured",
            secret,
        );
    }
    assert_eq!(stack.echo.requests(), 0);
}

// ---------------------------------------------------------------------------------------
// Authorization details (SPEC §2, §6)
// ---------------------------------------------------------------------------------------

#[test]
fn a_write_to_a_database_needs_write_data_on_it_or_gets_kapacitors_plain_text_401() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    stack.create_user(
        "writer",
        "pw",
        &[("", &["KapacitorAPI"]), ("mydb", &["WriteData"])],
    );
    stack.create_user("everywhere", "pw", &[("", &["KapacitorAPI", "WriteData"])]);
    // Kapacitor's own rule: WriteData alone allows /write (InfluxDB subscriptions).
    stack.create_user("subscription", "pw", &[("mydb", &["WriteData"])]);
    let line = b"cpu,host=a value=1 1700000000000000000\n";

    for path in ["/write", "/kapacitor/v1/write"] {
        let target = format!("{path}?db=mydb&rp=autogen");
        let denied = stack.post(
            &target,
            &[("Authorization", &basic("johndoe", "pa5sw0Rd"))],
            line,
        );
        assert_eq!(denied.status, 401, "{path}: {denied:?}");
        assert_eq!(
            denied.text(),
            "\"johndoe\" user is not authorized to write to database \"mydb\"\n"
        );
        assert_eq!(
            denied.header("Content-Type"),
            Some("application/json; charset=utf-8")
        );
        assert_request_id(&denied);

        for user in ["writer", "everywhere", "subscription"] {
            let allowed = stack.post(&target, &[("Authorization", &basic(user, "pw"))], line);
            assert_eq!(allowed.status, 200, "{user} {path}: {allowed:?}");
            let seen = Seen::parse(&allowed.body);
            assert_eq!(
                (seen.method.as_str(), seen.target.as_str()),
                ("POST", target.as_str())
            );
            assert_eq!(seen.body_length, line.len() as u64);
        }
        // WriteData on one database is not WriteData on another.
        let other = stack.post(
            &format!("{path}?db=other"),
            &[("Authorization", &basic("writer", "pw"))],
            line,
        );
        assert_eq!(other.status, 401, "{other:?}");
        assert_eq!(
            other.text(),
            "\"writer\" user is not authorized to write to database \"other\"\n"
        );
    }
}

#[test]
fn an_influxdb_subscription_write_reaches_kapacitor_as_the_setup_guide_describes() {
    // The README's step 3: a meta user with WriteData on the database, and the write as
    // InfluxDB's subscriber sends it (its HTTP client: Basic from the subscription URL,
    // the query in Go's sorted form, User-Agent InfluxDBClient).
    let stack = Stack::start(&[]);
    stack.create_user("telegraf-writer", "wr1ter", &[("telegraf", &["WriteData"])]);
    let target = "/write?consistency=&db=telegraf&precision=ns&rp=autogen";
    let points = b"cpu,host=edge1 usage_idle=97.5 1764636000000000000\nmem,host=edge1 used=1024i 1764636000000000000\n";
    let headers = [
        ("Authorization", basic("telegraf-writer", "wr1ter")),
        ("User-Agent", "InfluxDBClient".to_string()),
        ("Content-Type", "".to_string()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let written = stack.post(target, &headers, points);
    assert_eq!(written.status, 200, "{written:?}");
    let seen = Seen::parse(&written.body);
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", target)
    );
    assert_eq!(seen.body_length, points.len() as u64);
    assert_eq!(
        seen.header("Authorization"),
        None,
        "credentials never reach Kapacitor"
    );
    // Another database of the same InfluxDB is refused with Kapacitor's text.
    let other = stack.post(
        "/write?consistency=&db=other&precision=ns&rp=autogen",
        &headers,
        points,
    );
    assert_eq!(other.status, 401, "{other:?}");
    assert_eq!(
        other.text(),
        "\"telegraf-writer\" user is not authorized to write to database \"other\"\n"
    );
}

#[test]
fn options_is_forwarded_without_credentials_and_head_needs_only_a_known_user() {
    let stack = Stack::start(&[]);
    stack.create_user("nobody", "pw", &[]);

    let preflight = stack.request(
        "OPTIONS",
        TASKS,
        &[
            ("Origin", "http://example.com"),
            ("Access-Control-Request-Method", "DELETE"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 200, "{preflight:?}");
    let seen = Seen::parse(&preflight.body);
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("OPTIONS", TASKS)
    );
    assert_eq!(seen.header("Origin"), Some("http://example.com"));

    let head = stack.request(
        "HEAD",
        TASKS,
        &[("Authorization", &basic("nobody", "pw"))],
        b"",
    );
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("X-Echo"), Some("yes"));
    // HEAD still needs a user.
    let anonymous = stack.request("HEAD", TASKS, &[], b"");
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(stack.echo.requests(), 2);
}

#[test]
fn an_unknown_method_is_a_403_naming_it_upper_cased() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");

    for (method, shown) in [
        ("TRACE", "TRACE"),
        ("PROPFIND", "PROPFIND"),
        ("trace", "TRACE"),
    ] {
        let response = stack.request(method, TASKS, &[("Authorization", &auth)], b"");
        assert_eq!(response.status, 403, "{method}: {response:?}");
        assert_eq!(
            response.text(),
            format!(r#"{{"error":"unknown method \"{shown}\""}}"#)
        );
        assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
        assert_request_id(&response);
    }
    // The method is upper-cased to decide, and forwarded as sent.
    let lower = stack.request("get", TASKS, &[("Authorization", &auth)], b"");
    assert_eq!(lower.status, 200, "{lower:?}");
    assert_eq!(Seen::parse(&lower.body).method, "get");
    assert_eq!(stack.echo.requests(), 1);
}

#[test]
fn non_canonical_paths_are_refused_with_a_400_before_anything_else() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");

    let targets = [
        "/kapacitor/v1/../x",
        "/kapacitor/v1/tasks/..",
        "/kapacitor/v1/./tasks",
        "/kapacitor/v1/%2e%2e/x",
        "//",
        "//kapacitor/v1/tasks",
        "/kapacitor/v1//tasks",
        "/kapacitor/v1/tasks%2Fx",
        "/kapacitor/v1/tasks%2fx",
        "/kapacitor/v1/tasks%00",
        "/kapacitor/v1/tasks%zz",
        "/kapacitor/v1/tasks%",
        "/kapauth/../kapacitor/v1/tasks",
    ];
    for target in targets {
        for headers in [vec![], vec![("Authorization", auth.as_str())]] {
            let response = stack.get(target, &headers);
            assert_eq!(response.status, 400, "{target}: {response:?}");
            assert_eq!(
                response.text(),
                r#"{"error":"non-canonical request path"}"#,
                "{target}"
            );
            assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
            assert_request_id(&response);
        }
    }
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn health_answers_without_credentials_and_never_reaches_the_upstream() {
    let stack = Stack::start(&[]);

    let response = stack.get("/kapauth/health", &[]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), r#"{"status":"ok"}"#);
    assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
    assert_request_id(&response);
    let other = stack.get("/kapauth/users", &[]);
    assert_eq!(other.status, 404, "{other:?}");
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn upstream_status_headers_and_body_come_back_as_they_are() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    for status in [201, 302, 404, 500] {
        let response = stack.get(
            "/kapacitor/v1/tasks/t1",
            &[
                ("Authorization", &basic("johndoe", "pa5sw0Rd")),
                ("X-Echo-Status", &status.to_string()),
            ],
        );
        assert_eq!(response.status, status, "{response:?}");
        assert_eq!(response.header("X-Echo"), Some("yes"));
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(Seen::parse(&response.body).target, "/kapacitor/v1/tasks/t1");
    }
}

// ---------------------------------------------------------------------------------------
// The cache (SPEC §4), counted at meta's access log
// ---------------------------------------------------------------------------------------

#[test]
fn repeated_requests_within_cache_expiration_cost_one_meta_lookup() {
    let stack = Stack::start(&[("auth.cache-expiration", "1h")]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");

    for n in 0..20 {
        let query = format!("/kapacitor/v1/tasks?n={n}");
        let response = stack.get(&query, &[("Authorization", &auth)]);
        assert_eq!(response.status, 200, "{response:?}");
    }
    let query = stack.get("/kapacitor/v1/tasks?u=johndoe&p=pa5sw0Rd", &[]);
    assert_eq!(query.status, 200, "{query:?}");
    assert_eq!(stack.lookups("johndoe"), 1);
}

#[test]
fn an_expired_entry_is_looked_up_again() {
    let stack = Stack::start(&[("auth.cache-expiration", "1s")]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");

    let started = Instant::now();
    assert_eq!(stack.get(TASKS, &[("Authorization", &auth)]).status, 200);
    assert_eq!(stack.lookups("johndoe"), 1);
    let answered = poll_until(Duration::from_secs(5), || {
        let response = stack.get(TASKS, &[("Authorization", &auth)]);
        assert_eq!(response.status, 200, "{response:?}");
        let answered = started.elapsed();
        (stack.lookups("johndoe") == 2).then_some(answered)
    });
    // The entry was made after `started`, so the lookup that replaced it was answered at
    // least one expiration later.
    assert!(
        answered >= Duration::from_secs(1),
        "looked up again after {answered:?}"
    );
}

#[test]
fn a_password_changed_on_meta_is_accepted_by_the_time_the_entry_expires() {
    // The poll below fails many times on purpose; throttling is not what is tested.
    let stack = Stack::start(&[
        ("auth.cache-expiration", "1s"),
        ("auth.login-throttling", "false"),
    ]);
    stack.create_user("johndoe", "old-password", KAPACITOR);
    assert_eq!(
        stack
            .get(
                TASKS,
                &[("Authorization", &basic("johndoe", "old-password"))]
            )
            .status,
        200
    );

    stack.meta_post(
        "/user",
        json!({"action": "change-password", "user": {"name": "johndoe", "password": "new-password"}}),
    );
    let changed = Instant::now();
    let new = basic("johndoe", "new-password");
    poll_until(Duration::from_secs(5), || {
        let response = stack.get(TASKS, &[("Authorization", &new)]);
        match response.status {
            200 => Some(()),
            401 => {
                assert_unauthorized(&response, "authorization failed", "new password, old entry");
                None
            }
            _ => panic!("{response:?}"),
        }
    });
    assert!(
        changed.elapsed() < Duration::from_secs(3),
        "took {:?}",
        changed.elapsed()
    );
    let old = stack.get(
        TASKS,
        &[("Authorization", &basic("johndoe", "old-password"))],
    );
    assert_unauthorized(
        &old,
        "authorization failed",
        "old password after the change",
    );
}

#[test]
fn a_wrong_password_is_never_accepted_from_a_live_entry() {
    // Twelve failures from one address: past the default budget, which is tested apart.
    let stack = Stack::start(&[
        ("auth.cache-expiration", "1h"),
        ("auth.login-throttling", "false"),
    ]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let right = basic("johndoe", "pa5sw0Rd");

    assert_eq!(stack.get(TASKS, &[("Authorization", &right)]).status, 200);
    for wrong in [
        "wrong",
        "pa5sw0rd",
        "pa5sw0Rd ",
        "pa5sw0R",
        "",
        "pa5sw0Rd\u{0}",
    ] {
        for _ in 0..2 {
            let response = stack.get(TASKS, &[("Authorization", &basic("johndoe", wrong))]);
            assert_unauthorized(&response, "authorization failed", wrong);
        }
        assert_eq!(stack.get(TASKS, &[("Authorization", &right)]).status, 200);
    }
    assert_eq!(stack.lookups("johndoe"), 1);
    assert_eq!(stack.echo.requests(), 7);
}

#[test]
fn fifty_concurrent_first_requests_for_one_user_cost_one_lookup() {
    let stack = Stack::start(&[("auth.cache-expiration", "1h")]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let gateway = stack.gateway.addr();
    let start = Arc::new(Barrier::new(50));

    let threads: Vec<_> = (0..50)
        .map(|_| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let auth = basic("johndoe", "pa5sw0Rd");
                start.wait();
                request(gateway, "GET", TASKS, &[("Authorization", &auth)], b"")
            })
        })
        .collect();
    for thread in threads {
        let response = thread.join().expect("a request thread");
        assert_eq!(response.status, 200, "{response:?}");
    }
    assert_eq!(stack.lookups("johndoe"), 1);
    assert_eq!(stack.echo.requests(), 50);
}

// ---------------------------------------------------------------------------------------
// Faults (SPEC §4, §7)
// ---------------------------------------------------------------------------------------

#[test]
fn meta_down_is_a_503_with_retry_after_while_a_cached_user_is_still_served() {
    let mut stack = Stack::start(&[
        ("auth.cache-expiration", "1h"),
        ("auth.meta-timeout", "500ms"),
    ]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    stack.create_user("janedoe", "pa5sw0Rd", KAPACITOR);
    let johndoe = basic("johndoe", "pa5sw0Rd");
    assert_eq!(stack.get(TASKS, &[("Authorization", &johndoe)]).status, 200);

    stack.meta.kill_9();

    let cached = stack.get(TASKS, &[("Authorization", &johndoe)]);
    assert_eq!(cached.status, 200, "{cached:?}");
    // A wrong password is still checked against the cached entry, without meta.
    let wrong = stack.get(TASKS, &[("Authorization", &basic("johndoe", "wrong"))]);
    assert_unauthorized(&wrong, "authorization failed", "wrong password, meta down");
    let started = Instant::now();
    let uncached = stack.get(TASKS, &[("Authorization", &basic("janedoe", "pa5sw0Rd"))]);
    let took = started.elapsed();
    assert_unavailable(&uncached);
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "503 after {took:?} with meta-timeout 500ms"
    );
    assert_eq!(stack.echo.requests(), 2);
}

#[test]
fn meta_that_never_answers_is_a_503_within_about_meta_timeout() {
    let silent = SilentServer::start();
    let echo = Echo::start();
    let gateway = gateway_launch(silent.addr, &echo)
        .set("auth.meta-timeout", "1s")
        .start();

    let started = Instant::now();
    let response = request(
        gateway.addr(),
        "GET",
        TASKS,
        &[("Authorization", &basic("johndoe", "pa5sw0Rd"))],
        b"",
    );
    let took = started.elapsed();
    assert_unavailable(&response);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "503 after {took:?} with meta-timeout 1s"
    );
    assert!(
        silent.connections() >= 1,
        "the gateway never asked the silent meta"
    );
    assert_eq!(echo.requests(), 0);
}

#[test]
fn an_unreachable_upstream_is_a_502_naming_it() {
    let closed = closed_port();
    let upstream = format!("http://{closed}");
    let stack = Stack::start(&[("gateway.upstream", upstream.as_str())]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    let response = stack.get(TASKS, &[("Authorization", &basic("johndoe", "pa5sw0Rd"))]);
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.text(),
        format!(r#"{{"error":"upstream {upstream} is unreachable: connection refused"}}"#)
    );
    assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
    assert_request_id(&response);
}

#[test]
fn an_upstream_slower_than_upstream_timeout_is_a_504_naming_it() {
    let dir = TempDir::new("gateway-slow-upstream");
    let meta = start_meta(&dir);
    let slow = Echo::start_with_delay(Duration::from_secs(4));
    let gateway = gateway_launch(meta.addr(), &slow)
        .set("gateway.upstream-timeout", "700ms")
        .start();
    create_user(meta.addr(), "johndoe", "pa5sw0Rd", KAPACITOR);

    let started = Instant::now();
    let response = request(
        gateway.addr(),
        "GET",
        TASKS,
        &[("Authorization", &basic("johndoe", "pa5sw0Rd"))],
        b"",
    );
    let took = started.elapsed();
    assert_eq!(response.status, 504, "{response:?}");
    assert_eq!(
        response.text(),
        format!(
            r#"{{"error":"upstream {} did not answer within upstream-timeout"}}"#,
            slow.url()
        )
    );
    assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
    assert!(
        took < Duration::from_secs(3),
        "504 after {took:?} with upstream-timeout 700ms"
    );
    assert_eq!(slow.requests(), 1);
}

#[test]
fn an_upstream_answering_within_upstream_timeout_is_not_cut_off() {
    let dir = TempDir::new("gateway-patient");
    let meta = start_meta(&dir);
    let slow = Echo::start_with_delay(Duration::from_millis(1200));
    let gateway = gateway_launch(meta.addr(), &slow)
        .set("gateway.upstream-timeout", "2s")
        .start();
    create_user(meta.addr(), "johndoe", "pa5sw0Rd", KAPACITOR);

    let response = request(
        gateway.addr(),
        "GET",
        TASKS,
        &[("Authorization", &basic("johndoe", "pa5sw0Rd"))],
        b"",
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(Seen::parse(&response.body).target, TASKS);
}

// ---------------------------------------------------------------------------------------
// Streaming (SPEC §7)
// ---------------------------------------------------------------------------------------

#[test]
fn a_chunked_request_body_is_forwarded_whole() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    let response = stack.post(
        "/kapacitor/v1/tasks",
        &[
            ("Authorization", &basic("johndoe", "pa5sw0Rd")),
            ("Transfer-Encoding", "chunked"),
        ],
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 200, "{response:?}");
    let seen = Seen::parse(&response.body);
    assert_eq!(seen.body_length, 11);
    assert_eq!(
        seen.body_sha256,
        upstream::hex(ring::digest::digest(&ring::digest::SHA256, b"hello world").as_ref())
    );
}

/// RUSTSEC-2020-0031's shape (CRATE-NOTES): a request framed both ways. As in Go's
/// net/http, `Transfer-Encoding` wins and `Content-Length` is void (RFC 9112 §6.3), so the
/// upstream must get the de-chunked body with framing that agrees with it (or kapauth may
/// refuse the request with a 400) — never a `Content-Length` its body does not match.
#[test]
fn conflicting_content_length_and_transfer_encoding_never_reach_the_upstream_mismatched() {
    let stack = Stack::start(&[("gateway.upstream-timeout", "2s")]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");

    for length in ["4", "50"] {
        let response = stack.post(
            "/kapacitor/v1/tasks",
            &[
                ("Authorization", &auth),
                ("Content-Length", length),
                ("Transfer-Encoding", "chunked"),
            ],
            b"5\r\nhello\r\n0\r\n\r\n",
        );
        match response.status {
            400 => {}
            200 => {
                let seen = Seen::parse(&response.body);
                assert_eq!(seen.body_length, 5, "{seen:?}");
                assert_ne!(seen.header("Content-Length"), Some(length), "{seen:?}");
            }
            _ => panic!("Content-Length {length} with chunked: {response:?}"),
        }
        let next = stack.get("/kapacitor/v1/next", &[("Authorization", &auth)]);
        assert_eq!(next.status, 200, "{next:?}");
        let seen = Seen::parse(&next.body);
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("GET", "/kapacitor/v1/next")
        );
    }
}

/// 256 MiB each way through the gateway, while its peak resident memory stays small:
/// bodies are streamed, never held whole.
#[test]
fn large_bodies_stream_both_ways_in_little_memory() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");
    let expected = pattern_sha256(SIZE);

    let upload = stream_upload(stack.gateway.addr(), "/kapacitor/v1/load", &auth, SIZE)
        .expect("upload through the gateway");
    assert_eq!(upload.status, 200, "{upload:?}");
    let seen = Seen::parse(&upload.body);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_length, SIZE);
    assert_eq!(seen.body_sha256, expected);

    let (status, length, sha256) =
        stream_download(stack.gateway.addr(), "/kapacitor/v1/load", &auth, SIZE)
            .expect("download through the gateway");
    assert_eq!(status, 200);
    assert_eq!(length, SIZE);
    assert_eq!(sha256, expected);

    let peak = peak_rss_kib(stack.gateway.pid());
    assert!(peak < 64 * 1024, "the gateway's peak RSS was {peak} KiB");
}

// ---------------------------------------------------------------------------------------
// TLS to meta (`[auth] meta-use-tls`, `meta-ca`, `meta-cert`/`meta-key`,
// `meta-insecure-skip-verify`), through a rustls proxy in front of the real meta
// ---------------------------------------------------------------------------------------

#[test]
fn meta_over_tls_is_trusted_through_meta_ca() {
    let tls = TlsStack::start("tls-ca");
    let proxy = TlsProxy::start(
        tls.meta.addr(),
        &tls.pki.server.cert_der,
        &tls.pki.server.key_der,
        None,
    );

    let gateway = tls
        .gateway_launch(proxy.addr)
        .set("auth.meta-ca", &tls.pki.ca.cert_pem)
        .start();

    tls.assert_login(&gateway, 200);
    assert!(proxy.handshakes() >= 1);
    assert_eq!(proxy.client_certificates(), 0);
}

#[test]
fn meta_that_requires_a_client_certificate_gets_meta_cert_and_meta_key() {
    let tls = TlsStack::start("tls-client-cert");
    let proxy = TlsProxy::start(
        tls.meta.addr(),
        &tls.pki.server.cert_der,
        &tls.pki.server.key_der,
        Some(&tls.pki.ca.cert_der),
    );

    let with_certificate = tls
        .gateway_launch(proxy.addr)
        .set("auth.meta-ca", &tls.pki.ca.cert_pem)
        .set("auth.meta-cert", &tls.pki.client.cert_pem)
        .set("auth.meta-key", &tls.pki.client.key_pem)
        .start();
    tls.assert_login(&with_certificate, 200);
    assert!(proxy.client_certificates() >= 1);

    // The same meta refuses a gateway that has no certificate to show.
    let without_certificate = tls
        .gateway_launch(proxy.addr)
        .set("auth.meta-ca", &tls.pki.ca.cert_pem)
        .start();
    tls.assert_login(&without_certificate, 503);
    assert_reason(
        &without_certificate,
        "meta refused kapauth's client certificate: check [auth] meta-cert and meta-key",
    );
}

/// The access line of the gateway's last request gives `reason`.
fn assert_reason(gateway: &Kapauth, reason: &str) {
    let lines = gateway.wait_for_log_lines(1, |line| line.contains("msg=\"http request\""));
    let last = lines.last().expect("an access line");
    assert!(last.contains(reason), "{reason:?} not in {last}");
}

#[test]
fn insecure_skip_verify_accepts_a_meta_certificate_nobody_signed_for_us() {
    let tls = TlsStack::start("tls-skip-verify");
    let proxy = TlsProxy::start(
        tls.meta.addr(),
        &tls.rogue.server.cert_der,
        &tls.rogue.server.key_der,
        None,
    );

    let gateway = tls
        .gateway_launch(proxy.addr)
        .set("auth.meta-insecure-skip-verify", "true")
        .start();

    tls.assert_login(&gateway, 200);
    assert!(proxy.handshakes() >= 1);
}

#[test]
fn an_untrusted_meta_certificate_without_skip_verify_is_a_503() {
    let tls = TlsStack::start("tls-untrusted");
    let proxy = TlsProxy::start(
        tls.meta.addr(),
        &tls.rogue.server.cert_der,
        &tls.rogue.server.key_der,
        None,
    );

    // Trusting another CA, and trusting the web PKI roots (no meta-ca).
    let with_ca = tls
        .gateway_launch(proxy.addr)
        .set("auth.meta-ca", &tls.pki.ca.cert_pem)
        .start();
    tls.assert_login(&with_ca, 503);
    let with_web_roots = tls.gateway_launch(proxy.addr).start();
    tls.assert_login(&with_web_roots, 503);
    assert_eq!(proxy.handshakes(), 0);
    // One handshake each: a certificate problem is reported at once, not retried. The
    // proxy counts a failure when it reads the gateway's alert, which may come after the
    // answer; once both are in, no other can come, as the answers are out.
    poll_until(Duration::from_secs(5), || {
        (proxy.failed_handshakes() >= 2).then_some(())
    });
    assert_eq!(proxy.failed_handshakes(), 2);
    for gateway in [&with_ca, &with_web_roots] {
        assert_reason(
            gateway,
            "meta's certificate is not signed by a CA kapauth trusts: set [auth] meta-ca to the CA that signed it",
        );
    }
}

/// A meta server with `johndoe`, an echo, and two certificate authorities: `pki`, which
/// the gateway is told to trust, and `rogue`, which it is not.
struct TlsStack {
    meta: Kapauth,
    echo: Echo,
    pki: certs::Pki,
    rogue: certs::Pki,
    _dir: TempDir,
}

impl TlsStack {
    fn start(label: &str) -> TlsStack {
        let dir = TempDir::new(label);
        let meta = start_meta(&dir);
        create_user(meta.addr(), "johndoe", "pa5sw0Rd", KAPACITOR);
        TlsStack {
            pki: certs::make_pki(&dir.join("certs"), "trusted-ca"),
            rogue: certs::make_pki(&dir.join("certs"), "rogue-ca"),
            meta,
            echo: Echo::start(),
            _dir: dir,
        }
    }

    /// A gateway asking meta over TLS at `proxy`; meta-timeout is long, as TLS failures
    /// must not wait for it.
    fn gateway_launch(&self, proxy: SocketAddr) -> Launch {
        gateway_launch(proxy, &self.echo)
            .set("auth.meta-use-tls", "true")
            .set("auth.meta-timeout", "30s")
    }

    fn assert_login(&self, gateway: &Kapauth, status: u16) {
        let response = request(
            gateway.addr(),
            "GET",
            TASKS,
            &[("Authorization", &basic("johndoe", "pa5sw0Rd"))],
            b"",
        );
        match status {
            200 => {
                assert_eq!(response.status, 200, "{response:?}");
                assert_eq!(Seen::parse(&response.body).target, TASKS);
            }
            _ => assert_unavailable(&response),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Meta load, failed logins, timing, meta errors and logs (SPEC §11, kapauth)
// ---------------------------------------------------------------------------------------

#[test]
fn a_repeated_unknown_name_costs_one_meta_lookup_per_negative_interval() {
    let stack = Stack::start(&[("auth.negative-cache-expiration", "1h")]);
    for _ in 0..8 {
        let response = stack.get(TASKS, &[("Authorization", &basic("nosuch", "pw"))]);
        assert_unauthorized(&response, "authorization failed", "unknown user");
    }
    assert_eq!(stack.lookups("nosuch"), 1);
    // Created since: the name is still remembered as unknown until the interval ends
    // (with an external meta; the embedded store tells the gateway at once).
    stack.create_user("nosuch", "pw", KAPACITOR);
    let response = stack.get(TASKS, &[("Authorization", &basic("nosuch", "pw"))]);
    assert_unauthorized(&response, "authorization failed", "remembered unknown");
    assert_eq!(stack.lookups("nosuch"), 1);
}

#[test]
fn a_cached_user_is_served_while_meta_hangs_and_hundreds_of_uncached_requests_wait() {
    let meta = HangingMeta::start();
    let echo = Echo::start();
    let gateway = gateway_launch(meta.upstream.addr, &echo)
        .set("auth.meta-timeout", "60s")
        .set("auth.cache-expiration", "1h")
        .start();
    let alice = basic("alice", "right");
    let login = || {
        request(
            gateway.addr(),
            "GET",
            TASKS,
            &[("Authorization", &alice)],
            b"",
        )
    };
    assert_eq!(login().status, 200);

    meta.hang();
    let (answers, answered) = std::sync::mpsc::channel();
    for i in 0..150 {
        let addr = gateway.addr();
        let answers = answers.clone();
        thread::spawn(move || {
            let started = Instant::now();
            let credentials = basic(&format!("user{i}"), "pw");
            // The 16 lookups meta holds outlast this client's read timeout: an error here.
            let response =
                support::try_request(addr, "GET", TASKS, &[("Authorization", &credentials)], b"");
            let _ = answers.send((response, started.elapsed()));
        });
    }
    // The lookups meta-max-lookups allows are all held by meta now.
    meta.await_held(16);
    for probe in 0..6 {
        let response = login();
        assert_eq!(
            response.status, 200,
            "probe {probe} while meta hangs: {response:?}"
        );
    }
    // Every request past the 16 in flight gets its 503 after the bounded wait, well before
    // meta-timeout (60 s).
    let mut unavailable = 0;
    while unavailable < 150 - 16 {
        let (response, took) = answered
            .recv_timeout(Duration::from_secs(15))
            .expect("every request past the 16 is answered soon");
        let response = response.expect("an answer");
        assert_unavailable(&response);
        assert!(took < Duration::from_secs(15), "answered after {took:?}");
        unavailable += 1;
    }
    meta.release();
    // The reason reaches the access lines (written just after each answer).
    gateway.wait_for_log_lines(150 - 16, |line| {
        line.contains("msg=\"http request\"")
            && line.contains("meta-max-lookups (16) lookups already in flight")
    });
    assert_eq!(meta.held(), 16);
}

#[test]
fn past_the_failed_login_budget_a_client_gets_429_but_the_user_still_logs_in_elsewhere() {
    let stack = Stack::start(&[("http.bind-address", "[::]:0")]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let port = stack.gateway.addr().port();
    let here = SocketAddr::from(([127, 0, 0, 1], port));
    let elsewhere = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let get = |addr, password: &str| {
        request(
            addr,
            "GET",
            TASKS,
            &[("Authorization", &basic("johndoe", password))],
            b"",
        )
    };
    for attempt in 0..10 {
        assert_unauthorized(
            &get(here, "guess"),
            "authorization failed",
            &format!("guess {attempt}"),
        );
    }
    for password in ["guess", "pa5sw0Rd"] {
        let throttled = get(here, password);
        assert_eq!(throttled.status, 429, "{throttled:?}");
        assert_eq!(
            throttled.text(),
            r#"{"error":"too many failed logins; retry later"}"#
        );
        assert_eq!(throttled.header("Content-Type"), Some(JSON_UTF8));
        assert_eq!(throttled.header("Retry-After"), Some("1"));
        assert_request_id(&throttled);
    }
    // The real user, from another address, is not locked out by those failures.
    assert_eq!(get(elsewhere, "pa5sw0Rd").status, 200);
    assert!(
        stack
            .gateway
            .count_log_lines(|line| line.contains(" status=429 ")
                && line.contains(" username=johndoe ")
                && line.contains("reason=\"too many failed logins\""))
            == 2,
        "{:#?}",
        stack.gateway.log_lines()
    );
    // Throttled requests cost meta nothing.
    assert_eq!(stack.lookups("johndoe"), 1);
}

#[test]
fn a_wrong_password_costs_the_same_for_known_and_unknown_users() {
    // The gateway's own cost (10) differs from meta's (4): the decoy must follow meta's.
    let stack = Stack::start(&[
        ("auth.bcrypt-cost", "10"),
        ("auth.login-throttling", "false"),
    ]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    assert_eq!(
        stack
            .get(TASKS, &[("Authorization", &basic("johndoe", "pa5sw0Rd"))])
            .status,
        200
    );
    let time = |user: &str| {
        let started = Instant::now();
        let response = stack.get(TASKS, &[("Authorization", &basic(user, "wrong"))]);
        assert_eq!(response.status, 401, "{response:?}");
        started.elapsed()
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..25 {
        known.push(time("johndoe"));
        unknown.push(time("nosuch"));
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64()
    };
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    let ratio = unknown / known;
    assert!(
        (0.5..=2.0).contains(&ratio),
        "median failure: known {known:.6}s, unknown {unknown:.6}s (ratio {ratio:.2})"
    );
}

#[test]
fn meta_refusing_kapauths_credentials_is_reported_at_once_with_its_reason() {
    let dir = TempDir::new("meta-refuses");
    let meta = start_meta(&dir);
    create_user(meta.addr(), "johndoe", "pa5sw0Rd", KAPACITOR);
    let echo = Echo::start();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("auth.meta-password", "not-the-password")],
            "meta refused kapauth's credentials (GET /user answered 401): check [auth] meta-username / meta-password",
        ),
        (
            &[("auth.meta-username", ""), ("auth.meta-password", "")],
            "meta refused kapauth's credentials (GET /user answered 401): kapauth sends none: set [auth] meta-username and meta-password, or meta-internal-shared-secret",
        ),
        (
            &[("auth.meta-internal-shared-secret", "not meta's secret")],
            "meta refused kapauth's credentials (GET /user answered 401): check [auth] meta-internal-shared-secret against meta's own",
        ),
    ];
    for (settings, reason) in cases {
        let mut launch = gateway_launch(meta.addr(), &echo).set("auth.meta-timeout", "30s");
        for (key, value) in settings {
            launch = launch.set(key, value);
        }
        let gateway = launch.start();
        let lookups_before =
            meta.count_log_lines(|line| line.contains(" path=/user name=johndoe "));
        let response = request(
            gateway.addr(),
            "GET",
            TASKS,
            &[("Authorization", &basic("johndoe", "pa5sw0Rd"))],
            b"",
        );
        assert_unavailable(&response);
        let lines = gateway.wait_for_log_lines(1, |line| line.contains("msg=\"http request\""));
        assert!(
            lines[0].contains(reason),
            "expected {reason:?} in {:#?}",
            lines
        );
        // Asked once, not retried until meta-timeout.
        let lookups = meta.wait_for_log_lines(lookups_before + 1, |line| {
            line.contains(" path=/user name=johndoe ")
        });
        assert_eq!(lookups.len(), lookups_before + 1, "{lookups:#?}");
        assert!(
            !gateway.log_lines().iter().any(|line| line.contains("not-the-password")
                || line.contains("not meta's secret")),
            "a secret reached the log"
        );
    }
}

#[test]
fn a_revocation_in_the_embedded_store_takes_effect_on_the_next_request() {
    let dir = TempDir::new("embedded-revocation");
    let echo = Echo::start();
    let kapauth = Launch::serve()
        .set("http.bind-address", "127.0.0.1:0")
        .set("meta.bind-address", "127.0.0.1:0")
        .set("meta.dir", dir.path())
        .set("meta.bcrypt-cost", "4")
        .set("auth.cache-expiration", "1h")
        .set("auth.negative-cache-expiration", "1h")
        .set("gateway.upstream", echo.url())
        .wait_for("meta")
        .wait_for("gateway")
        .start();
    let meta = kapauth.addr_of("meta");
    let gateway = kapauth.addr_of("gateway");
    bootstrap_admin(meta);
    let get = |user: &str, password: &str| {
        request(
            gateway,
            "GET",
            TASKS,
            &[("Authorization", &basic(user, password))],
            b"",
        )
    };
    // Unknown, remembered for an hour, then created: seen at once.
    assert_eq!(get("johndoe", "old").status, 401);
    create_user(meta, "johndoe", "old", KAPACITOR);
    assert_eq!(get("johndoe", "old").status, 200);

    meta_post(
        meta,
        "/user",
        &json!({"action": "remove-permissions", "user": {"name": "johndoe", "permissions": {"": ["KapacitorAPI", "KapacitorConfigAPI"]}}}),
    );
    assert_eq!(get("johndoe", "old").status, 403);

    meta_post(
        meta,
        "/role",
        &json!({"action": "create", "role": {"name": "ops", "permissions": {"": ["KapacitorAPI"]}}}),
    );
    meta_post(
        meta,
        "/role",
        &json!({"action": "add-users", "role": {"name": "ops", "users": ["johndoe"]}}),
    );
    assert_eq!(get("johndoe", "old").status, 200);

    meta_post(
        meta,
        "/user",
        &json!({"action": "change-password", "user": {"name": "johndoe", "password": "new"}}),
    );
    assert_unauthorized(
        &get("johndoe", "old"),
        "authorization failed",
        "old password",
    );
    assert_eq!(get("johndoe", "new").status, 200);

    meta_post(
        meta,
        "/role",
        &json!({"action": "remove-users", "role": {"name": "ops", "users": ["johndoe"]}}),
    );
    assert_eq!(get("johndoe", "new").status, 403);
    meta_post(
        meta,
        "/user",
        &json!({"action": "delete", "user": {"name": "johndoe"}}),
    );
    assert_unauthorized(&get("johndoe", "new"), "authorization failed", "deleted");
}

#[test]
fn log_lines_stay_one_capped_record_each_under_hostile_names_and_paths() {
    let stack = Stack::start(&[]);
    let long_name = "n".repeat(5000);
    let long_path = format!("/kapacitor/v1/{}", "p".repeat(7000));
    let cases: Vec<(String, Option<String>)> = vec![
        (
            format!("{TASKS}#x?p=SECRET-IN-FRAGMENT"),
            Some(basic("johndoe", "pw")),
        ),
        (format!("{TASKS}?u=bob&p=SECRET-IN-QUERY"), None),
        (
            TASKS.to_string(),
            Some(basic("evil\u{202e}name\u{2028}ts=1 lvl=error", "pw")),
        ),
        (TASKS.to_string(), Some(basic("line\nbreak", "pw"))),
        (TASKS.to_string(), Some(basic(&long_name, "pw"))),
        (long_path, Some(basic("johndoe", "pw"))),
    ];
    for (target, authorization) in &cases {
        let headers: Vec<(&str, &str)> = authorization
            .iter()
            .map(|value| ("Authorization", value.as_str()))
            .collect();
        let response = stack.get(target, &headers);
        assert!(
            matches!(response.status, 400 | 401),
            "{target}: {response:?}"
        );
    }
    let lines = stack
        .gateway
        .wait_for_log_lines(cases.len(), |line| line.contains("msg=\"http request\""));
    for line in stack.gateway.log_lines() {
        assert!(line.starts_with("ts="), "a line was split: {line:?}");
        assert!(!line.contains("SECRET"), "a secret was logged: {line}");
        assert!(
            !line.contains('\u{202e}') && !line.contains('\u{2028}'),
            "a bidi or separator character was written raw: {line:?}"
        );
        assert!(line.len() < 4 * 1024, "a line of {} bytes", line.len());
    }
    let logged = lines.join("\n");
    for expected in [
        "username=\"evil\\u{202e}name\\u{2028}ts=1 lvl=error\"",
        "username=\"line\\nbreak\"",
        "...(3976 more bytes)\"",
        "...(5990 more bytes)\"",
        "uri=/kapacitor/v1/tasks ",
    ] {
        assert!(logged.contains(expected), "{expected:?} not in {logged}");
    }
}

#[test]
fn the_access_line_has_kapacitors_keys_and_the_request_id_the_client_received() {
    // An upstream that names its answers as Kapacitor does, and the echo, which does not.
    let named = raw_upstream::RawUpstream::start(|mut connection| {
        while let Some(seen) = connection.read_request() {
            let answer = format!(
                "HTTP/1.1 204 No Content\r\nRequest-Id: kapacitor-{}\r\n\r\n",
                seen.target.len()
            );
            if connection.send(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    let dir = TempDir::new("access-line");
    let meta = start_meta(&dir);
    create_user(meta.addr(), "johndoe", "pa5sw0Rd", KAPACITOR);
    let echo = Echo::start();
    for (upstream, expected_id) in [(named.url(), Some("kapacitor-23")), (echo.url(), None)] {
        let gateway = gateway_launch(meta.addr(), &echo)
            .set("gateway.upstream", &upstream)
            .start();
        let response = request(
            gateway.addr(),
            "GET",
            "/kapacitor/v1/tasks?u=johndoe&p=pa5sw0Rd&x=1",
            &[
                ("Referer", "http://chronograf/"),
                ("User-Agent", "kapacitor-cli/1.7"),
            ],
            b"",
        );
        assert!(matches!(response.status, 200 | 204), "{response:?}");
        let id = response
            .header("Request-Id")
            .expect("a Request-Id")
            .to_string();
        if let Some(expected) = expected_id {
            assert_eq!(id, expected, "Kapacitor's id is passed through");
        }
        let line = gateway
            .wait_for_log_lines(1, |line| line.contains("msg=\"http request\""))
            .remove(0);
        let keys: Vec<&str> = line
            .split(' ')
            .filter_map(|pair| pair.split_once('=').map(|(key, _)| key))
            .collect();
        assert_eq!(
            keys,
            [
                "ts",
                "lvl",
                "msg",
                "service",
                "host",
                "username",
                "start",
                "method",
                "uri",
                "protocol",
                "status",
                "referer",
                "user-agent",
                "request-id",
                "duration"
            ],
            "{line}"
        );
        for expected in [
            " service=http host=127.0.0.1 username=johndoe start=",
            " method=GET uri=/kapacitor/v1/tasks?x=1 protocol=HTTP/1.1 ",
            " referer=http://chronograf/ user-agent=kapacitor-cli/1.7 ",
            &format!(" request-id={id} duration="),
        ] {
            assert!(line.contains(expected), "{expected:?} not in {line}");
        }
        assert!(!line.contains("pa5sw0Rd"), "{line}");
    }
}

#[test]
fn metrics_count_requests_logins_and_lookups_in_the_prometheus_text_format() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    stack.create_user("nobody", "pa5sw0Rd", &[]);
    let before = scrape(stack.gateway.addr(), "/kapauth/metrics");
    let johndoe = basic("johndoe", "pa5sw0Rd");
    for _ in 0..3 {
        assert_eq!(stack.get(TASKS, &[("Authorization", &johndoe)]).status, 200);
    }
    assert_eq!(
        stack
            .get(TASKS, &[("Authorization", &basic("johndoe", "wrong"))])
            .status,
        401
    );
    assert_eq!(
        stack
            .get(TASKS, &[("Authorization", &basic("nobody", "pa5sw0Rd"))])
            .status,
        403
    );
    assert_eq!(stack.get("/kapacitor/v1/a/../b", &[]).status, 400);
    let after = scrape(stack.gateway.addr(), "/kapauth/metrics");
    let moved = |sample: &str| {
        after.get(sample).copied().unwrap_or(-1.0) - before.get(sample).copied().unwrap_or(0.0)
    };
    for (sample, expected) in [
        ("kapauth_requests_total{outcome=forwarded}", 3.0),
        ("kapauth_requests_total{outcome=unauthorized}", 1.0),
        ("kapauth_requests_total{outcome=forbidden}", 1.0),
        ("kapauth_requests_total{outcome=bad_request}", 1.0),
        // The scrape before is counted by the scrape after.
        ("kapauth_requests_total{outcome=own_endpoint}", 1.0),
        ("kapauth_request_duration_seconds_count", 7.0),
        ("kapauth_meta_lookups_total{result=found}", 2.0),
        ("kapauth_cache_requests_total{result=miss}", 2.0),
        ("kapauth_cache_requests_total{result=hit}", 3.0),
        // The two first logins, the wrong password against the cached hash.
        ("kapauth_bcrypt_runs_total", 3.0),
        ("kapauth_meta_lookup_duration_seconds_count", 2.0),
    ] {
        assert_eq!(moved(sample), expected, "{sample}: {after:#?}");
    }
    assert_eq!(after["kapauth_cache_entries"], 2.0);
    assert!(after["kapauth_open_connections"] >= 1.0);
    assert!(after.contains_key("kapauth_http_refusals_total{status=431}"));
    let labels = after
        .keys()
        .filter(|sample| sample.contains('{'))
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        !labels
            .iter()
            .any(|sample| sample.contains("johndoe") || sample.contains("/kapacitor")),
        "a user or a path in a label: {labels:?}"
    );

    // The meta API's own.
    let meta = scrape(stack.meta.addr(), "/metrics");
    assert!(
        meta["kapauth_meta_changes_total{action=create}"] >= 3.0,
        "{meta:#?}"
    );
    assert!(
        meta["kapauth_meta_logins_total{result=ok}"] >= 1.0,
        "{meta:#?}"
    );

    // Off: the path is one of kapauth's own, and there is no such endpoint.
    let off = gateway_launch(stack.meta.addr(), &stack.echo)
        .set("gateway.metrics-enabled", "false")
        .start();
    assert_eq!(
        request(off.addr(), "GET", "/kapauth/metrics", &[], b"").status,
        404
    );
}

/// Scrapes `path` and reads it with the prometheus-client package's own text parser: each
/// sample as `name{label=value,...}` (labels sorted, unquoted) and its value.
fn scrape(addr: SocketAddr, path: &str) -> std::collections::BTreeMap<String, f64> {
    let response = request(addr, "GET", path, &[], b"");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // make test names the venv scripts/test-deps made; a plain cargo test finds it there too.
    let venv = std::env::var("HOME").map(|home| format!("{home}/.cache/kapauth/py/bin/python"));
    let python = std::env::var("KAPAUTH_TEST_PYTHON")
        .or(venv
            .ok()
            .filter(|path| std::path::Path::new(path).exists())
            .ok_or(()))
        .unwrap_or_else(|_| "python3".to_string());
    let program = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}{{{labels}}}" if labels else sample.name, sample.value)
"#;
    let mut child = std::process::Command::new(&python)
        .args(["-c", program])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("run {python} (make test installs it): {error}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&response.body)
        .expect("write the scrape");
    let output = child.wait_with_output().expect("the parser's output");
    assert!(
        output.status.success(),
        "prometheus-client refused the scrape ({}; run make test to install it):\n{}",
        String::from_utf8_lossy(&output.stderr),
        response.text()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(sample, value)| (sample.to_string(), value.parse().expect("a number")))
        .collect()
}

#[test]
fn tls_material_meta_would_fail_on_is_refused_at_check_config_naming_the_key() {
    let dir = TempDir::new("meta-tls-material");
    let pki = certs::make_pki(&dir.join("certs"), "check-ca");
    let other = certs::make_pki(&dir.join("certs"), "other-ca");
    let v1 = dir.join("v1-client.pem");
    let v1_status = std::process::Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(make_csr(&dir, &pki.client.key_pem))
        .arg("-CA")
        .arg(&pki.ca.cert_pem)
        .arg("-CAkey")
        .arg(pki.ca.cert_pem.with_extension("key"))
        .args(["-CAcreateserial", "-out"])
        .arg(&v1)
        .output()
        .expect("run openssl");
    assert!(v1_status.status.success(), "{v1_status:?}");
    let missing = dir.join("no-such-ca.pem");
    let check = |settings: &[(&str, &std::path::Path)]| {
        let mut launch = Launch::new("check-config")
            .set("auth.meta-addr", "meta.example:8091")
            .set("auth.meta-use-tls", "true");
        for (key, value) in settings {
            launch = launch.set(key, value);
        }
        let exit = launch.run_to_exit();
        assert_eq!(exit.code, Some(1), "{:#?}", exit.stderr);
        exit.stderr.join("\n")
    };
    type Settings<'a> = Vec<(&'a str, &'a std::path::Path)>;
    let cases: [(Settings, &[&str]); 3] = [
        (
            vec![("auth.meta-ca", &missing)],
            &["[auth] meta-ca", "no-such-ca.pem", "cannot be read"],
        ),
        (
            vec![
                ("auth.meta-cert", &v1),
                ("auth.meta-key", &pki.client.key_pem),
            ],
            &["[auth] meta-cert", "X.509 v1", "make a v3 one"],
        ),
        (
            vec![
                ("auth.meta-cert", &pki.client.cert_pem),
                ("auth.meta-key", &other.client.key_pem),
            ],
            &["[auth] meta-key", "does not match the certificate"],
        ),
    ];
    for (settings, expected) in &cases {
        let stderr = check(settings);
        for text in *expected {
            assert!(stderr.contains(text), "{text:?} not in {stderr}");
        }
    }
}

/// A certificate request for `key`, for a certificate the test signs itself.
fn make_csr(dir: &TempDir, key: &std::path::Path) -> std::path::PathBuf {
    let csr = dir.join("v1-client.csr");
    let output = std::process::Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=kapauth-v1", "-key"])
        .arg(key)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("run openssl");
    assert!(output.status.success(), "{output:?}");
    csr
}

/// A meta stand-in that knows `alice` (password `right`) and can be made to hang: while
/// hung, it reads each lookup and holds it unanswered until released or 30 s pass, and
/// counts the lookups it holds.
struct HangingMeta {
    upstream: raw_upstream::RawUpstream,
    state: Arc<(Mutex<HangState>, Condvar)>,
}

#[derive(Default)]
struct HangState {
    hanging: bool,
    held: usize,
}

impl HangingMeta {
    fn start() -> HangingMeta {
        let hash = kapauth::secret::password::hash_bcrypt(
            &kapauth::secret::password::Password::new("right".to_string()),
            4,
        )
        .unwrap();
        let state = Arc::new((Mutex::new(HangState::default()), Condvar::new()));
        let shared = Arc::clone(&state);
        let upstream = raw_upstream::RawUpstream::start(move |mut connection| {
            while let Some(seen) = connection.read_request() {
                let (lock, changed) = &*shared;
                let mut state = lock.lock().unwrap();
                if state.hanging {
                    state.held += 1;
                    changed.notify_all();
                    let _ = changed
                        .wait_timeout_while(state, Duration::from_secs(30), |state| state.hanging)
                        .unwrap();
                    return;
                }
                drop(state);
                let body = if seen.target.starts_with("/role") {
                    json!({"roles": []})
                } else {
                    json!({"users": [{"name": "alice", "hash": hash, "permissions": {"": ["KapacitorAPI"]}}]})
                }
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if connection.send(answer.as_bytes()).is_err() {
                    return;
                }
            }
        });
        HangingMeta { upstream, state }
    }

    fn hang(&self) {
        self.state.0.lock().unwrap().hanging = true;
    }

    fn release(&self) {
        self.state.0.lock().unwrap().hanging = false;
        self.state.1.notify_all();
    }

    fn held(&self) -> usize {
        self.state.0.lock().unwrap().held
    }

    /// Blocks until `count` lookups are held (at most 20 s).
    fn await_held(&self, count: usize) {
        let (lock, changed) = &*self.state;
        let state = lock.lock().unwrap();
        let (state, _) = changed
            .wait_timeout_while(state, Duration::from_secs(20), |state| state.held < count)
            .unwrap();
        assert!(
            state.held >= count,
            "only {} lookups reached meta",
            state.held
        );
    }
}

// ---------------------------------------------------------------------------------------
// Regressions found by review, each named after what it broke
// ---------------------------------------------------------------------------------------

#[test]
fn a_fragment_in_the_target_is_refused_so_the_path_forwarded_is_the_path_authorized() {
    let stack = Stack::start(&[]);
    // KapacitorAPI alone leaves /api/config at none: the config endpoint is denied.
    stack.create_user("k1", "pw", &[("", &["KapacitorAPI"])]);
    let auth = basic("k1", "pw");
    let denied = stack.get("/kapacitor/v1/config", &[("Authorization", &auth)]);
    assert_eq!(denied.status, 403, "{denied:?}");
    for target in [
        "/kapacitor/v1/config#x",
        "/kapacitor/v1preview/config#x",
        "/kapacitor/v1/tasks?x=1#f&y=2",
    ] {
        let refused = stack.get(target, &[("Authorization", &auth)]);
        assert_eq!(refused.status, 400, "{target}: {refused:?}");
        assert_eq!(refused.text(), r#"{"error":"non-canonical request path"}"#);
    }
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn a_database_name_that_is_not_utf8_is_denied_not_skipped() {
    let stack = Stack::start(&[]);
    stack.create_user(
        "w1",
        "pw",
        &[("", &["KapacitorAPI"]), ("db1", &["WriteData"])],
    );
    let auth = basic("w1", "pw");
    for target in ["/write?db=%FF", "/write?db=%FF&db=db1"] {
        let denied = stack.post(target, &[("Authorization", &auth)], b"cpu v=1\n");
        assert_eq!(denied.status, 401, "{target}: {denied:?}");
        assert_eq!(
            denied.text(),
            "\"w1\" user is not authorized to write to database \"\u{FFFD}\"\n"
        );
    }
    let allowed = stack.post("/write?db=db1", &[("Authorization", &auth)], b"cpu v=1\n");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(stack.echo.requests(), 1);
}

#[test]
fn a_transfer_encoding_other_than_chunked_is_refused() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");
    let refused = stack.request(
        "POST",
        "/kapacitor/v1/tasks",
        &[
            ("Authorization", &auth),
            ("Transfer-Encoding", "gzip, chunked"),
        ],
        b"5\r\nhello\r\n0\r\n\r\n",
    );
    // 501, as RFC 9112 §6.1 asks of a coding the server does not implement (SPEC §10).
    assert_eq!(refused.status, 501, "{refused:?}");
    assert_eq!(
        refused.text(),
        r#"{"error":"unsupported Transfer-Encoding; send chunked or a Content-Length"}"#
    );
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn an_unread_chunked_body_is_never_parsed_as_the_next_request() {
    let stack = Stack::start(&[]);
    // Smuggled as an OPTIONS, which kapauth would forward without credentials: if it were
    // ever parsed, the echo upstream would count it.
    let smuggled = "OPTIONS /kapacitor/v1/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let body = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    // No credentials, so kapauth answers 401 itself without using the body; the request
    // after it on the connection is the real one.
    let bytes = format!(
        "POST /kapacitor/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}\
         GET /kapauth/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(stack.gateway.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(bytes.as_bytes()).unwrap();
    // The connection closes after the last request's answer, which kapauth writes after
    // every earlier one: by then a smuggled request would have reached the upstream.
    let mut answers = Vec::new();
    let _ = stream.read_to_end(&mut answers);
    stack
        .gateway
        .wait_for_log_lines(1, |line| line.contains("uri=/kapauth/health "));
    stack.gateway.wait_for_log_lines(1, |line| {
        line.contains("uri=/kapacitor/v1/tasks protocol=HTTP/1.1 status=401")
    });
    assert_eq!(stack.echo.requests(), 0, "{:#?}", stack.gateway.log_lines());
    assert!(
        !stack
            .gateway
            .log_lines()
            .iter()
            .any(|line| line.contains("smuggled"))
    );
}

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

fn assert_unauthorized(response: &Response, message: &str, context: &str) {
    assert_eq!(response.status, 401, "{context}: {response:?}");
    assert_eq!(
        response.text(),
        format!(r#"{{"error":{}}}"#, serde_json::Value::from(message)),
        "{context}"
    );
    assert_eq!(
        response.header("WWW-Authenticate"),
        Some(KAPACITOR_REALM),
        "{context}"
    );
    assert_eq!(
        response.header("Content-Type"),
        Some(JSON_UTF8),
        "{context}"
    );
    assert_request_id(response);
}

fn assert_unavailable(response: &Response) {
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(
        response.text(),
        r#"{"error":"authentication service unavailable"}"#
    );
    assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
    let retry_after = response
        .header("Retry-After")
        .expect("a Retry-After header");
    assert!(
        retry_after.parse::<u32>().is_ok(),
        "Retry-After: {retry_after}"
    );
    assert_request_id(response);
}

fn assert_request_id(response: &Response) {
    let id = response.header("Request-Id").unwrap_or_default();
    assert!(!id.is_empty(), "no Request-Id: {response:?}");
}

/// Calls `attempt` until it returns `Some`, at most until `limit` has passed.
fn poll_until<T>(limit: Duration, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = attempt() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up after {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A compact JWT signed with `secret` by `algorithm` (HS256/384/512), or unsigned for
/// `none`; built here, not with kapauth's own signer.
fn jwt(algorithm: &str, claims: &serde_json::Value, secret: &str) -> String {
    let header = json!({"alg": algorithm, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let hmac_algorithm = match algorithm {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        _ => return format!("{input}."),
    };
    let key = hmac::Key::new(hmac_algorithm, secret.as_bytes());
    let signature = hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", base64url(signature.as_ref()))
}

fn base64url(bytes: &[u8]) -> String {
    support::base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port to close");
    listener.local_addr().expect("its address")
}

/// A "meta node" that accepts connections and never answers on them.
struct SilentServer {
    addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the silent meta");
        let addr = listener.local_addr().expect("its address");
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        SilentServer { addr, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// POSTs `length` bytes of the test pattern to `target`, streamed, and reads the answer.
fn stream_upload(addr: SocketAddr, target: &str, auth: &str, length: u64) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(support::IO_TIMEOUT))?;
    stream.set_write_timeout(Some(support::IO_TIMEOUT))?;
    write!(
        stream,
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )?;
    io::copy(&mut Pattern::new(length), &mut stream)?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_response_head(&mut reader)?;
    let mut body = Vec::new();
    reader.read_to_end(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// GETs `target` asking the echo for `length` pattern bytes; returns the status, the
/// body's length and its SHA-256, read as a stream.
fn stream_download(
    addr: SocketAddr,
    target: &str,
    auth: &str,
    length: u64,
) -> io::Result<(u16, u64, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(support::IO_TIMEOUT))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nX-Echo-Bytes: {length}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let (status, headers) = read_response_head(&mut reader)?;
    let declared = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Content-Length"))
        .map(|(_, value)| value.clone());
    assert_eq!(declared, Some(length.to_string()), "{headers:?}");
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        context.update(&buf[..n]);
    }
    Ok((status, total, upstream::hex(context.finish().as_ref())))
}

fn read_response_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok((status, headers));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_string(), value.trim().to_string()));
        }
    }
}

/// The peak resident set size (`VmHWM`) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line")
}
