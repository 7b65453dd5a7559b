//! The only file that writes kapauth's own response bodies (SPEC §6): the exact texts of
//! SPEC §1, §2, §4, §5 and §7, encoded byte for byte as Kapacitor's Go code encodes them
//! (`json.Marshal` of `{"error":…}`, `%q` quoting, `http.Error` for the /write database
//! denial). Pure: it builds `Reply` values; `handle.rs` sends them.

use crate::gateway::authorize::Denial;

/// A response kapauth writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// `Content-Type` of every JSON reply (SPEC §6).
pub use crate::http::JSON;

/// 401 with `WWW-Authenticate`, for every authentication failure.
pub fn unauthorized(message: &str) -> Reply {
    let mut reply = json_error(401, message);
    reply
        .headers
        .push(("WWW-Authenticate", "Basic realm=\"kapacitor\"".to_string()));
    reply
}

/// The answer to a denial of SPEC §2 for `user`.
pub fn denied(user: &str, denial: &Denial) -> Reply {
    match denial {
        Denial::UnknownMethod { method } => {
            json_error(403, &format!("unknown method {}", go_quote(method)))
        }
        Denial::Missing { privilege, path } => json_error(
            403,
            &format!(
                "user {user} does not have \"{}\" privilege for API endpoint {}",
                privilege.as_str(),
                go_quote(path)
            ),
        ),
        // Kapacitor's writeError writes the message and a newline as they are, under the
        // JSON Content-Type its handler set before; the body is the one non-JSON one (SPEC §6).
        Denial::Database { db } => Reply {
            status: 401,
            headers: vec![
                ("Content-Type", JSON.to_string()),
                ("WWW-Authenticate", "Basic realm=\"kapacitor\"".to_string()),
            ],
            body: format!(
                "{} user is not authorized to write to database {}\n",
                go_quote(user),
                go_quote(db)
            ),
        },
    }
}

/// 200 with a scrape of `/kapauth/metrics`, in the Prometheus text format (kapauth).
pub fn metrics(text: String) -> Reply {
    Reply {
        status: 200,
        headers: vec![("Content-Type", crate::metrics::CONTENT_TYPE.to_string())],
        body: text,
    }
}

/// 400 for a path that is not canonical (SPEC §7).
pub fn non_canonical_path() -> Reply {
    json_error(400, "non-canonical request path")
}

/// 503 when the meta API cannot answer within `meta-timeout` (SPEC §4, kapauth).
pub fn authentication_unavailable() -> Reply {
    let mut reply = json_error(503, "authentication service unavailable");
    reply.headers.push(("Retry-After", "5".to_string()));
    reply
}

/// 429 when a client address has spent its failed-login budget for a username or in all
/// (SPEC §11, kapauth); `Retry-After` in whole seconds, at least one.
pub fn too_many_failed_logins(retry_after: std::time::Duration) -> Reply {
    let mut reply = json_error(429, "too many failed logins; retry later");
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    reply
        .headers
        .push(("Retry-After", seconds.max(1).to_string()));
    reply
}

/// What a request beyond `max-concurrent-requests` is told, in a 503 the HTTP core writes.
pub const OVERLOADED: &str = "kapauth is at max-concurrent-requests; retry shortly";

/// 502 when the upstream cannot be reached.
pub fn upstream_unreachable(upstream: &str, reason: &str) -> Reply {
    json_error(
        502,
        &format!("upstream {upstream} is unreachable: {reason}"),
    )
}

/// 502 when the exchange with the upstream fails half-way, or its answer is not HTTP.
pub fn upstream_failed(upstream: &str, reason: &str) -> Reply {
    json_error(502, &format!("upstream {upstream} failed: {reason}"))
}

/// 400 when the client's own body cannot be read (malformed chunks, cut short).
pub fn unreadable_body(reason: &str) -> Reply {
    json_error(400, &format!("request body could not be read: {reason}"))
}

/// 504 when the upstream does not answer in time.
pub fn upstream_timeout(upstream: &str) -> Reply {
    json_error(
        504,
        &format!("upstream {upstream} did not answer within upstream-timeout"),
    )
}

/// `GET /kapauth/health`.
pub fn health() -> Reply {
    Reply {
        status: 200,
        headers: vec![("Content-Type", JSON.to_string())],
        body: "{\"status\":\"ok\"}".to_string(),
    }
}

/// 404 for an unknown path under `/kapauth/`, which never reaches Kapacitor.
pub fn own_path_not_found() -> Reply {
    json_error(
        404,
        "not found; kapauth serves only GET /kapauth/health, /kapauth/metrics and /kapauth/auth under /kapauth/",
    )
}

/// 204 for a forward-auth request whose original request may pass (SPEC §6, kapauth):
/// `X-Kapauth-User` names the user who passed, already made safe for a header by
/// `forward_auth::user_header`; a preflight or a request under auth off has no user.
pub fn forward_auth_allowed(user_header: Option<String>) -> Reply {
    Reply {
        status: 204,
        headers: user_header
            .map(|user| vec![("X-Kapauth-User", user)])
            .unwrap_or_default(),
        body: String::new(),
    }
}

/// 400 for a forward-auth request that does not say which request it asks about.
pub fn forward_auth_unnamed(problem: &str) -> Reply {
    json_error(400, problem)
}

/// 403 for a forward-auth request about a path under `/kapauth/`: the gateway answers
/// those itself and never forwards one, so forward-auth never lets one pass. A 403, not a
/// 404, because nginx's `auth_request` turns any status but 2xx, 401 and 403 into a 500.
pub fn forward_auth_own_path() -> Reply {
    json_error(
        403,
        "kapauth never authorizes a request for its own endpoints under /kapauth/",
    )
}

/// `{"error":"…"}` as Go's `json.Marshal` writes it.
pub fn json_error(status: u16, message: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type", JSON.to_string())],
        body: crate::http::json_error(message),
    }
}

/// Go's `%q` of a valid UTF-8 string (`strconv.Quote`): printable characters as they are,
/// the usual short escapes, `\x` for other bytes below 0x80, `\u`/`\U` above.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` good for request paths and names: control,
/// format, separator (other than the ASCII space) and private-use characters are not printable.
fn is_go_printable(c: char) -> bool {
    let code = c as u32;
    !(c.is_control()
        || (0x80..0xa0).contains(&code)
        || code == 0xa0
        || code == 0xad
        || (0x2000..=0x200f).contains(&code)
        || (0x2028..=0x202f).contains(&code)
        || (0x205f..=0x206f).contains(&code)
        || code == 0x3000
        || code == 0xfeff
        || (0xe000..=0xf8ff).contains(&code)
        || (0xfff9..=0xfffb).contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::authorize::Privilege;

    fn check(reply: Reply, status: u16, body: &str) {
        assert_eq!(reply.status, status);
        assert_eq!(reply.body, body);
    }

    #[test]
    fn denials_render_exactly_as_kapacitor_writes_them() {
        let missing = |privilege, path: &str| Denial::Missing {
            privilege,
            path: path.to_string(),
        };
        check(
            denied("johndoe", &missing(Privilege::Read, "/kapacitor/v1/tasks")),
            403,
            r#"{"error":"user johndoe does not have \"read\" privilege for API endpoint \"/kapacitor/v1/tasks\""}"#,
        );
        check(
            denied(
                "bob",
                &missing(Privilege::Delete, "/kapacitor/v1/tasks/a b"),
            ),
            403,
            r#"{"error":"user bob does not have \"delete\" privilege for API endpoint \"/kapacitor/v1/tasks/a b\""}"#,
        );
        check(
            denied(
                "bob",
                &missing(Privilege::Write, "/kapacitor/v1/x<y>&\"z\""),
            ),
            403,
            r#"{"error":"user bob does not have \"write\" privilege for API endpoint \"/kapacitor/v1/x\u003cy\u003e\u0026\\\"z\\\"\""}"#,
        );
        check(
            denied(
                "bob",
                &Denial::UnknownMethod {
                    method: "TRACE".to_string(),
                },
            ),
            403,
            r#"{"error":"unknown method \"TRACE\""}"#,
        );
        let write = denied(
            "bob",
            &Denial::Database {
                db: "my db".to_string(),
            },
        );
        check(
            write.clone(),
            401,
            "\"bob\" user is not authorized to write to database \"my db\"\n",
        );
        assert!(write.headers.contains(&("Content-Type", JSON.to_string())));
    }

    #[test]
    fn kapauth_replies_carry_their_headers() {
        let reply = unauthorized("authorization failed");
        check(reply.clone(), 401, r#"{"error":"authorization failed"}"#);
        assert!(
            reply
                .headers
                .contains(&("WWW-Authenticate", "Basic realm=\"kapacitor\"".to_string()))
        );
        assert!(reply.headers.contains(&("Content-Type", JSON.to_string())));
        let reply = authentication_unavailable();
        check(
            reply.clone(),
            503,
            r#"{"error":"authentication service unavailable"}"#,
        );
        assert!(reply.headers.iter().any(|(name, _)| *name == "Retry-After"));
        for (wait, seconds) in [(0, "1"), (100, "1"), (1000, "1"), (1001, "2"), (2500, "3")] {
            let reply = too_many_failed_logins(std::time::Duration::from_millis(wait));
            check(
                reply.clone(),
                429,
                r#"{"error":"too many failed logins; retry later"}"#,
            );
            assert!(
                reply
                    .headers
                    .contains(&("Retry-After", seconds.to_string())),
                "{wait} ms: {:?}",
                reply.headers
            );
        }
        check(
            non_canonical_path(),
            400,
            r#"{"error":"non-canonical request path"}"#,
        );
        check(health(), 200, r#"{"status":"ok"}"#);
        check(
            upstream_unreachable("http://127.0.0.1:9093", "connection refused"),
            502,
            r#"{"error":"upstream http://127.0.0.1:9093 is unreachable: connection refused"}"#,
        );
    }

    #[test]
    fn strings_are_quoted_as_go_quotes_them() {
        let cases = [
            ("TRACE", r#""TRACE""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("tab\there", r#""tab\there""#),
            ("\u{7}\u{1}\u{7f}", r#""\a\x01\x7f""#),
            ("é/日本", "\"é/日本\""),
            ("\u{200b}", r#""\u200b""#),
            ("\u{a0}", r#""\u00a0""#),
            ("\u{e000}", r#""\ue000""#),
            ("😀", "\"😀\""),
        ];
        for (text, expected) in cases {
            assert_eq!(go_quote(text), expected, "{text:?}");
        }
    }
}
