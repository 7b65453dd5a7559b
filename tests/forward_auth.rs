//! Black-box tests of forward-auth, `GET /kapauth/auth` (SPEC §6): the real `kapauth serve`
//! asking a real `kapauth meta` (`support/stack.rs`), first asked directly as nginx's
//! `auth_request` and Traefik's `forwardAuth` ask it, each answer compared with the one the
//! gateway gives the same request; then behind a real nginx (`support/nginx.rs`) in front of
//! the echo upstream, with the configuration the README shows.

#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/stack.rs"]
mod stack;
mod support;
#[path = "support/upstream.rs"]
mod upstream;

use std::net::SocketAddr;

use nginx::Nginx;
use stack::{KAPACITOR, Stack};
use support::{Response, basic, request};
use upstream::{Echo, Seen};

const TASKS: &str = "/kapacitor/v1/tasks";
const JSON_UTF8: &str = "application/json; charset=utf-8";
const KAPACITOR_REALM: &str = "Basic realm=\"kapacitor\"";

// ---------------------------------------------------------------------------------------
// Asked directly, as a proxy asks
// ---------------------------------------------------------------------------------------

#[test]
fn an_allowed_request_is_answered_204_naming_the_user_and_nothing_reaches_kapacitor() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let auth = basic("johndoe", "pa5sw0Rd");

    let nginx_style = ask(
        &stack,
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", TASKS),
            ("Authorization", &auth),
        ],
    );
    let traefik_style = ask(
        &stack,
        &[
            ("X-Forwarded-Method", "POST"),
            (
                "X-Forwarded-Uri",
                "/kapacitor/v1/tasks?u=johndoe&p=pa5sw0Rd",
            ),
        ],
    );

    for response in [nginx_style, traefik_style] {
        assert_eq!(response.status, 204, "{response:?}");
        assert_eq!(response.header("X-Kapauth-User"), Some("johndoe"));
        assert!(response.body.is_empty(), "{response:?}");
        assert!(response.header("Request-Id").is_some(), "{response:?}");
    }
    assert_eq!(stack.echo.requests(), 0);
}

#[test]
fn every_other_answer_is_the_one_the_gateway_gives_the_same_request() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    stack.create_user("reader", "s3cret", &[("mydb", &["ReadData"])]);
    stack.create_user("writer", "s3cret", &[("", &["KapacitorAPI"])]);
    let johndoe = basic("johndoe", "pa5sw0Rd");
    let reader = basic("reader", "s3cret");
    let writer = basic("writer", "s3cret");
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("GET", TASKS, None),
        ("GET", TASKS, Some(&johndoe)),
        ("GET", "/kapacitor/v1/tasks?u=johndoe&p=pa5sw0Rd", None),
        ("GET", "/kapacitor/v1/tasks?u=johndoe&p=wrong", None),
        ("GET", TASKS, Some(&basic("johndoe", "wrong"))),
        ("GET", TASKS, Some(&basic("", "x"))),
        ("GET", TASKS, Some(&basic("~subscriber", "x"))),
        ("GET", TASKS, Some("Bearer not.a.token")),
        ("GET", TASKS, Some("Digest something")),
        ("GET", TASKS, Some(&reader)),
        ("DELETE", "/kapacitor/v1/tasks/t1", Some(&reader)),
        ("TRACE", TASKS, Some(&johndoe)),
        ("get", TASKS, Some(&johndoe)),
        ("HEAD", "/kapacitor/v1/ping", Some(&reader)),
        ("POST", "/write?db=mydb", Some(&writer)),
        ("POST", "/kapacitor/v1/write?db=other&rp=x", Some(&writer)),
        ("GET", "/kapacitor/v1preview/tasks", Some(&reader)),
        ("GET", "/kapacitor/v1/../v1/tasks", Some(&johndoe)),
        ("GET", "/kapacitor/v1/tasks%2Ft1", Some(&johndoe)),
        ("GET", "//kapacitor/v1/tasks", Some(&johndoe)),
        ("GET", "http://kapacitor/kapacitor/v1/tasks", Some(&johndoe)),
        ("OPTIONS", TASKS, None),
    ];
    for (method, uri, authorization) in cases {
        let context = format!("{method} {uri} {authorization:?}");
        let mut headers = vec![("X-Original-Method", *method), ("X-Original-URI", *uri)];
        let mut gateway_headers = Vec::new();
        if let Some(authorization) = authorization {
            headers.push(("Authorization", authorization));
            gateway_headers.push(("Authorization", *authorization));
        }
        let gateway = stack.request(method, uri, &gateway_headers, b"");
        let asked = ask(&stack, &headers);
        if gateway.header("X-Echo").is_some() {
            assert_eq!(asked.status, 204, "{context}: {asked:?}");
            continue;
        }
        assert_eq!(
            asked.status, gateway.status,
            "{context}: {asked:?} {gateway:?}"
        );
        assert_eq!(asked.body, gateway.body, "{context}: {asked:?} {gateway:?}");
        for name in ["Content-Type", "WWW-Authenticate", "Retry-After"] {
            assert_eq!(
                asked.header(name),
                gateway.header(name),
                "{context}: {name}"
            );
        }
        assert_eq!(asked.header("X-Kapauth-User"), None, "{context}");
    }
    // The gateway forwarded what it allowed; forward-auth never forwards.
    let forwarded = stack.echo.requests();
    assert!(forwarded >= 4, "{forwarded}");
}

#[test]
fn a_preflight_passes_without_credentials_or_a_user() {
    let stack = Stack::start(&[]);

    let response = ask(
        &stack,
        &[
            ("X-Forwarded-Method", "OPTIONS"),
            ("X-Forwarded-Uri", TASKS),
        ],
    );

    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(response.header("X-Kapauth-User"), None);
    // `options` is not a preflight (Go compares the method as sent): it needs credentials.
    let lower = ask(
        &stack,
        &[
            ("X-Forwarded-Method", "options"),
            ("X-Forwarded-Uri", TASKS),
        ],
    );
    assert_eq!(lower.status, 401, "{lower:?}");
}

#[test]
fn with_auth_off_every_request_passes_without_a_user() {
    let stack = Stack::start(&[("http.auth-enabled", "false")]);

    let response = ask(
        &stack,
        &[("X-Original-Method", "DELETE"), ("X-Original-URI", TASKS)],
    );

    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(response.header("X-Kapauth-User"), None);
    // The path is still checked: a non-canonical one would not be routed as authorized.
    let dotted = ask(
        &stack,
        &[("X-Original-Method", "GET"), ("X-Original-URI", "/a/../b")],
    );
    assert_eq!(dotted.status, 400, "{dotted:?}");
}

#[test]
fn a_request_for_kapauths_own_endpoints_never_passes() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);

    for uri in [
        "/kapauth/health",
        "/kapauth/auth",
        "/kapauth",
        "/kapauth/x?u=johndoe&p=pa5sw0Rd",
    ] {
        let response = ask(
            &stack,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", uri),
                ("Authorization", &basic("johndoe", "pa5sw0Rd")),
            ],
        );
        assert_eq!(response.status, 403, "{uri}: {response:?}");
        assert_eq!(
            response.text(),
            r#"{"error":"kapauth never authorizes a request for its own endpoints under /kapauth/"}"#
        );
        assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
    }
}

#[test]
fn a_request_that_does_not_name_one_original_request_is_a_400_naming_the_headers() {
    let stack = Stack::start(&[]);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[],
            "forward-auth needs the original request: set X-Original-Method and X-Original-URI (nginx) or X-Forwarded-Method and X-Forwarded-Uri (Traefik)",
        ),
        (
            &[("X-Original-URI", TASKS)],
            "forward-auth got X-Original-URI without X-Original-Method; set both",
        ),
        (
            &[("X-Forwarded-Method", "GET")],
            "forward-auth got X-Forwarded-Method without X-Forwarded-Uri; set both",
        ),
        (
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", TASKS),
                ("X-Original-URI", "/write"),
            ],
            "forward-auth needs exactly one non-empty UTF-8 X-Original-URI header",
        ),
        // A client behind Traefik naming a harmless request in nginx's pair.
        (
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/kapacitor/v1/ping"),
                ("X-Forwarded-Method", "DELETE"),
                ("X-Forwarded-Uri", "/kapacitor/v1/tasks/t1"),
            ],
            "forward-auth got X-Original-Method and X-Original-URI naming another request than X-Forwarded-Method and X-Forwarded-Uri; the proxy should send one pair",
        ),
    ];
    for (headers, message) in cases {
        let response = ask(&stack, headers);
        assert_eq!(response.status, 400, "{headers:?}: {response:?}");
        assert_eq!(
            response.text(),
            format!(r#"{{"error":"{message}"}}"#),
            "{headers:?}"
        );
        assert_eq!(response.header("Content-Type"), Some(JSON_UTF8));
    }
    // Both pairs naming the same request are one request.
    let both = ask(
        &stack,
        &[
            ("X-Original-Method", "OPTIONS"),
            ("X-Original-URI", TASKS),
            ("X-Forwarded-Method", "OPTIONS"),
            ("X-Forwarded-Uri", TASKS),
        ],
    );
    assert_eq!(both.status, 204, "{both:?}");
}

#[test]
fn failed_logins_through_forward_auth_are_throttled_as_the_gateways_are() {
    let stack = Stack::start(&[
        ("auth.failed-login-burst", "2"),
        ("auth.failed-login-interval", "1h"),
    ]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let wrong = [
        ("X-Original-Method", "GET"),
        ("X-Original-URI", "/kapacitor/v1/tasks?u=johndoe&p=wrong"),
    ];

    let statuses: Vec<u16> = (0..3).map(|_| ask(&stack, &wrong).status).collect();

    assert_eq!(statuses, [401, 401, 429]);
    let throttled = ask(&stack, &wrong);
    assert_eq!(
        throttled.text(),
        r#"{"error":"too many failed logins; retry later"}"#
    );
    assert!(throttled.header("Retry-After").is_some(), "{throttled:?}");
    // The gateway's own requests share the budget: the same client, the same user.
    let gateway = stack.get("/kapacitor/v1/tasks?u=johndoe&p=wrong", &[]);
    assert_eq!(gateway.status, 429, "{gateway:?}");
}

#[test]
fn the_access_line_names_the_original_request_without_credentials_and_metrics_count_it() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    stack.create_user("nobody", "s3cret", &[]);

    let allowed = ask(
        &stack,
        &[
            ("X-Original-Method", "DELETE"),
            (
                "X-Original-URI",
                "/kapacitor/v1/tasks/t1?u=johndoe&p=pa5sw0Rd&x=1",
            ),
        ],
    );
    let denied = ask(
        &stack,
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", TASKS),
            ("Authorization", &basic("nobody", "s3cret")),
        ],
    );
    let unnamed = ask(&stack, &[]);

    assert_eq!(
        (allowed.status, denied.status, unnamed.status),
        (204, 403, 400)
    );
    let lines = stack
        .gateway
        .wait_for_log_lines(3, |line| line.contains("reason=\"forward-auth"));
    let expected = [
        "username=johndoe start=",
        "method=DELETE uri=/kapacitor/v1/tasks/t1?x=1 protocol=HTTP/1.1 status=204",
        "reason=\"forward-auth: allow\"",
        "username=nobody start=",
        "method=GET uri=/kapacitor/v1/tasks protocol=HTTP/1.1 status=403",
        "reason=\"forward-auth: deny priv=read path=/kapacitor/v1/tasks\"",
        "method=GET uri=/kapauth/auth protocol=HTTP/1.1 status=400",
        "reason=\"forward-auth needs the original request: set X-Original-Method",
    ];
    let all = lines.join("\n");
    for piece in expected {
        assert!(all.contains(piece), "{piece} not in:\n{all}");
    }
    assert_eq!(
        stack
            .gateway
            .count_log_lines(|line| line.contains("pa5sw0Rd")),
        0
    );
    let metrics = request(stack.gateway.addr(), "GET", "/kapauth/metrics", &[], b"");
    let text = metrics.text();
    for line in [
        "kapauth_requests_total{outcome=\"allowed\"} 1",
        "kapauth_requests_total{outcome=\"forbidden\"} 1",
        "kapauth_requests_total{outcome=\"bad_request\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Behind a real nginx
// ---------------------------------------------------------------------------------------

#[test]
fn nginx_passes_an_allowed_request_to_the_upstream_with_the_user_and_without_credentials() {
    let stack = Stack::start(&[]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    let nginx = Nginx::start(&nginx_site(stack.gateway.addr(), &stack.echo, ""));

    let target = "/kapacitor/v1/tasks?u=johndoe&p=pa5sw0Rd&x=1";
    let by_query = request(nginx.addr, "GET", target, &[], b"");
    let by_header = request(
        nginx.addr,
        "POST",
        TASKS,
        &[
            ("Authorization", &basic("johndoe", "pa5sw0Rd")),
            ("X-Kapauth-User", "admin"),
        ],
        b"{\"id\":\"t1\"}",
    );

    assert_eq!(by_query.status, 200, "{by_query:?}\n{}", nginx.error_log());
    let seen = Seen::parse(&by_query.body);
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", target)
    );
    assert_eq!(seen.header("X-Kapauth-User"), Some("johndoe"));
    assert_eq!(
        by_header.status,
        200,
        "{by_header:?}\n{}",
        nginx.error_log()
    );
    let seen = Seen::parse(&by_header.body);
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", TASKS)
    );
    // nginx's own header replaces the one the client sent, and Authorization is dropped.
    assert_eq!(seen.header("X-Kapauth-User"), Some("johndoe"), "{seen:?}");
    assert_eq!(seen.header("Authorization"), None, "{seen:?}");
    assert_eq!(seen.body_length, 11);
    assert_eq!(stack.echo.requests(), 2);
    // kapauth decided the original requests, not nginx's subrequests.
    stack.gateway.wait_for_log_lines(2, |line| {
        line.contains("username=johndoe") && line.contains("status=204")
    });
    let lines = stack.gateway.log_lines().join("\n");
    assert!(
        lines.contains("method=POST uri=/kapacitor/v1/tasks protocol=HTTP/1.0 status=204"),
        "{lines}"
    );
}

#[test]
fn nginx_answers_kapauths_401_and_403_with_its_own_page_any_other_denial_with_500() {
    let stack = Stack::start(&[("auth.failed-login-burst", "1")]);
    stack.create_user("johndoe", "pa5sw0Rd", KAPACITOR);
    stack.create_user("nobody", "s3cret", &[]);
    let nginx = Nginx::start(&nginx_site(stack.gateway.addr(), &stack.echo, ""));

    let get = |headers: &[(&str, &str)]| request(nginx.addr, "GET", TASKS, headers, b"");
    let anonymous = get(&[]);
    let wrong = get(&[("Authorization", &basic("johndoe", "x"))]);
    let forbidden = get(&[("Authorization", &basic("nobody", "s3cret"))]);
    // kapauth's 429 (the budget of one failure is spent) and 400 (a non-canonical path).
    let throttled = get(&[("Authorization", &basic("johndoe", "x"))]);
    let encoded_slash = request(
        nginx.addr,
        "GET",
        "/kapacitor/v1/tasks%2Ft1",
        &[("Authorization", &basic("nobody", "s3cret"))],
        b"",
    );
    let preflight = request(
        nginx.addr,
        "OPTIONS",
        TASKS,
        &[("X-Kapauth-User", "admin")],
        b"",
    );

    for response in [&anonymous, &wrong] {
        assert_eq!(response.status, 401, "{response:?}\n{}", nginx.error_log());
        // nginx passes a 401's WWW-Authenticate on, and writes its own HTML body.
        assert_eq!(response.header("WWW-Authenticate"), Some(KAPACITOR_REALM));
        assert!(
            response.text().contains("401 Authorization Required"),
            "{response:?}"
        );
    }
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert!(forbidden.text().contains("403 Forbidden"), "{forbidden:?}");
    // auth_request turns every status but 2xx, 401 and 403 into a 500, Retry-After lost.
    for response in [&throttled, &encoded_slash] {
        assert_eq!(response.status, 500, "{response:?}");
        assert_eq!(response.header("Retry-After"), None);
    }
    stack
        .gateway
        .wait_for_log_lines(1, |line| line.contains("status=429"));
    stack.gateway.wait_for_log_lines(1, |line| {
        line.contains("uri=/kapacitor/v1/tasks%2Ft1 protocol=HTTP/1.0 status=400")
    });
    assert_eq!(stack.echo.requests(), 1);
    // A preflight passes without a user; the client's X-Kapauth-User does not.
    assert_eq!(preflight.status, 200, "{preflight:?}");
    let seen = Seen::parse(&preflight.body);
    assert_eq!(seen.header("X-Kapauth-User"), None, "{seen:?}");
}

#[test]
fn nginx_can_pass_kapauths_own_denial_bodies_by_asking_again_from_error_page() {
    let stack = Stack::start(&[]);
    stack.create_user("nobody", "s3cret", &[]);
    let nginx = Nginx::start(&nginx_site(
        stack.gateway.addr(),
        &stack.echo,
        &denial_bodies(stack.gateway.addr()),
    ));

    let anonymous = request(nginx.addr, "DELETE", "/kapacitor/v1/tasks/t1", &[], b"");
    let forbidden = request(
        nginx.addr,
        "DELETE",
        "/kapacitor/v1/tasks/t1",
        &[("Authorization", &basic("nobody", "s3cret"))],
        b"",
    );

    assert_eq!(
        anonymous.status,
        401,
        "{anonymous:?}\n{}",
        nginx.error_log()
    );
    assert_eq!(
        anonymous.text(),
        r#"{"error":"unable to parse authentication credentials"}"#
    );
    assert_eq!(anonymous.header("WWW-Authenticate"), Some(KAPACITOR_REALM));
    assert_eq!(anonymous.header("Content-Type"), Some(JSON_UTF8));
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert_eq!(
        forbidden.text(),
        r#"{"error":"user nobody does not have \"delete\" privilege for API endpoint \"/kapacitor/v1/tasks/t1\""}"#
    );
    assert_eq!(stack.echo.requests(), 0);
}

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

/// `GET /kapauth/auth` with `headers`, as a proxy sends it.
fn ask(stack: &Stack, headers: &[(&str, &str)]) -> Response {
    stack.get("/kapauth/auth", headers)
}

/// The README's nginx site: `auth_request` in front of the upstream, asking kapauth at
/// `kapauth`; `extra` is added inside `location /`.
fn nginx_site(kapauth: SocketAddr, echo: &Echo, extra: &str) -> String {
    format!(
        "
        location = /kapauth-auth {{
            internal;
            proxy_pass http://{kapauth}/kapauth/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-Uri \"\";
            proxy_set_header X-Forwarded-Method \"\";
        }}
        location / {{
            auth_request /kapauth-auth;
            auth_request_set $kapauth_user $upstream_http_x_kapauth_user;
            proxy_set_header X-Kapauth-User $kapauth_user;
            proxy_set_header Authorization \"\";
            proxy_pass http://{echo};
            {extra}
        }}
",
        echo = echo.addr,
    )
}

/// The README's addition that gives the client kapauth's own denial: on a 401 or 403 nginx
/// asks kapauth again from a named location and answers with what kapauth says.
fn denial_bodies(kapauth: SocketAddr) -> String {
    format!(
        "
            error_page 401 403 = @kapauth-denied;
        }}
        location @kapauth-denied {{
            rewrite ^ /kapauth/auth break;
            proxy_method GET;
            proxy_pass http://{kapauth};
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-Uri \"\";
            proxy_set_header X-Forwarded-Method \"\";
"
    )
}
