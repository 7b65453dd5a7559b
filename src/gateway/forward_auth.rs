//! Forward-auth (SPEC §6, `GET /kapauth/auth`): which request a proxy asks about. nginx's
//! `auth_request` and Traefik's `forwardAuth` send kapauth a request of their own that
//! carries the original method and URI in headers; this file reads that pair and says how
//! the user who passed is named back to the proxy. It never decides access: `handle.rs`
//! decides the original request with the very code that decides a gateway request.
//! Pure: header fields in, values out.

use std::fmt;

use crate::http::Fields;

/// The request a proxy asks about, as it names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original<'a> {
    /// The method as the client sent it (SPEC §2 upper-cases it only to decide).
    pub method: &'a str,
    /// The raw request target, path and query, still percent-encoded.
    pub uri: &'a str,
}

/// The two ways proxies name the original request.
const NGINX: (&str, &str) = ("X-Original-Method", "X-Original-URI");
const TRAEFIK: (&str, &str) = ("X-Forwarded-Method", "X-Forwarded-Uri");

/// Why a forward-auth request does not say which request it asks about. Each becomes a 400
/// naming the headers, so an operator sees what the proxy's configuration lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unnamed {
    /// Neither pair's method nor URI is present.
    NoPair,
    /// One header of a pair is present and its partner is not.
    HalfPair {
        present: &'static str,
        missing: &'static str,
    },
    /// A header is present twice, or is empty or not UTF-8.
    Unreadable { header: &'static str },
    /// Both pairs are present and name different requests.
    Conflict,
}

impl fmt::Display for Unnamed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unnamed::NoPair => write!(
                formatter,
                "forward-auth needs the original request: set {} and {} (nginx) or {} and {} (Traefik)",
                NGINX.0, NGINX.1, TRAEFIK.0, TRAEFIK.1
            ),
            Unnamed::HalfPair { present, missing } => write!(
                formatter,
                "forward-auth got {present} without {missing}; set both"
            ),
            Unnamed::Unreadable { header } => write!(
                formatter,
                "forward-auth needs exactly one non-empty UTF-8 {header} header"
            ),
            Unnamed::Conflict => write!(
                formatter,
                "forward-auth got {} and {} naming another request than {} and {}; the proxy should send one pair",
                NGINX.0, NGINX.1, TRAEFIK.0, TRAEFIK.1
            ),
        }
    }
}

/// The original request named by `fields`: nginx's `X-Original-*` pair or Traefik's
/// `X-Forwarded-*` pair.
///
/// Neither pair wins over the other: each proxy passes the client's own headers on to
/// kapauth, so the pair a proxy does not set is whatever the client wrote. Preferring either
/// would let a client behind the other proxy name a harmless request while the proxy sends
/// a different one on. Both pairs are accepted only when they name the same request.
pub fn original_request(fields: &Fields) -> Result<Original<'_>, Unnamed> {
    let nginx = pair(fields, NGINX)?;
    let traefik = pair(fields, TRAEFIK)?;
    match (nginx, traefik) {
        (Some(nginx), Some(traefik)) if nginx == traefik => Ok(nginx),
        (Some(_), Some(_)) => Err(Unnamed::Conflict),
        (Some(original), None) | (None, Some(original)) => Ok(original),
        (None, None) => Err(Unnamed::NoPair),
    }
}

/// The value of `X-Kapauth-User` for `user`: the name, with control characters, DEL and
/// `%` percent-encoded so that no name can end the header or forge another (meta accepts
/// any name) and every encoded name decodes to one name.
pub fn user_header(user: &str) -> String {
    let mut value = String::with_capacity(user.len());
    for c in user.chars() {
        if c.is_ascii_control() || c == '%' {
            value.push_str(&format!("%{:02X}", c as u32));
        } else {
            value.push(c);
        }
    }
    value
}

/// One pair: both headers, neither, or why not.
fn pair<'a>(
    fields: &'a Fields,
    (method, uri): (&'static str, &'static str),
) -> Result<Option<Original<'a>>, Unnamed> {
    match (single(fields, method)?, single(fields, uri)?) {
        (Some(method), Some(uri)) => Ok(Some(Original { method, uri })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Unnamed::HalfPair {
            present: method,
            missing: uri,
        }),
        (None, Some(_)) => Err(Unnamed::HalfPair {
            present: uri,
            missing: method,
        }),
    }
}

/// The one value of `name`: two values could be read two ways, so they are refused.
fn single<'a>(fields: &'a Fields, name: &'static str) -> Result<Option<&'a str>, Unnamed> {
    let mut values = fields.all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let unreadable = Unnamed::Unreadable { header: name };
    if values.next().is_some() || value.is_empty() {
        return Err(unreadable);
    }
    std::str::from_utf8(value).map(Some).map_err(|_| unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::request_path::{NonCanonical, canonical_path, split_target};

    fn check(headers: &[(&str, &[u8])], expected: Result<(&str, &str), Unnamed>) {
        let mut fields = Fields::default();
        for (name, value) in headers {
            fields.push(name, value);
        }
        let got = original_request(&fields).map(|original| (original.method, original.uri));
        assert_eq!(got, expected, "{headers:?}");
    }

    #[test]
    #[rustfmt::skip]
    fn the_original_request_comes_from_exactly_one_consistent_pair() {
        let tasks = "/kapacitor/v1/tasks?u=a&p=b";
        let half = |present, missing| Err(Unnamed::HalfPair { present, missing });
        let unreadable = |header| Err(Unnamed::Unreadable { header });
        check(&[("X-Original-Method", b"GET"), ("X-Original-URI", tasks.as_bytes())], Ok(("GET", tasks)));
        check(&[("x-original-method", b"post"), ("x-original-uri", b"/write?db=x")], Ok(("post", "/write?db=x")));
        check(&[("X-Forwarded-Method", b"DELETE"), ("X-Forwarded-Uri", b"/kapacitor/v1/tasks/t")], Ok(("DELETE", "/kapacitor/v1/tasks/t")));
        check(&[("X-Original-Method", b"GET"), ("X-Original-URI", b"/a"), ("X-Forwarded-Method", b"GET"), ("X-Forwarded-Uri", b"/a")], Ok(("GET", "/a")));
        check(&[("X-Original-Method", b"GET"), ("X-Original-URI", b"/a"), ("X-Forwarded-Method", b"DELETE"), ("X-Forwarded-Uri", b"/a")], Err(Unnamed::Conflict));
        check(&[("X-Original-Method", b"GET"), ("X-Original-URI", b"/ping"), ("X-Forwarded-Method", b"GET"), ("X-Forwarded-Uri", b"/tasks")], Err(Unnamed::Conflict));
        check(&[], Err(Unnamed::NoPair));
        check(&[("X-Forwarded-For", b"10.0.0.1"), ("X-Forwarded-Host", b"x")], Err(Unnamed::NoPair));
        check(&[("X-Original-URI", b"/a")], half("X-Original-URI", "X-Original-Method"));
        check(&[("X-Original-Method", b"GET")], half("X-Original-Method", "X-Original-URI"));
        check(&[("X-Forwarded-Uri", b"/a")], half("X-Forwarded-Uri", "X-Forwarded-Method"));
        // A half pair is refused even beside a whole one: the proxy's setup is wrong.
        check(&[("X-Original-Method", b"GET"), ("X-Original-URI", b"/a"), ("X-Forwarded-Method", b"GET")], half("X-Forwarded-Method", "X-Forwarded-Uri"));
        check(&[("X-Original-Method", b"GET"), ("X-Original-URI", b"/a"), ("X-Original-URI", b"/b")], unreadable("X-Original-URI"));
        check(&[("X-Original-Method", b""), ("X-Original-URI", b"/a")], unreadable("X-Original-Method"));
        check(&[("X-Forwarded-Method", b"GET"), ("X-Forwarded-Uri", b"/\xff")], unreadable("X-Forwarded-Uri"));
    }

    /// What SPEC §1–§3 get to decide once the URI is split as a request target is.
    fn check_split(uri: &str, expected: Result<(&str, Option<&str>), NonCanonical>) {
        let got = split_target(uri).and_then(|(raw_path, raw_query)| {
            canonical_path(raw_path).map(|path| (path, raw_query))
        });
        let got = got.as_ref().map(|(path, query)| (path.as_str(), *query));
        assert_eq!(got, expected.as_ref().map(|(p, q)| (*p, *q)), "{uri}");
    }

    #[test]
    #[rustfmt::skip]
    fn an_original_uri_splits_into_the_path_and_query_a_gateway_request_would_have() {
        check_split("/kapacitor/v1/tasks", Ok(("/kapacitor/v1/tasks", None)));
        check_split("/kapacitor/v1/tasks?u=a&p=b", Ok(("/kapacitor/v1/tasks", Some("u=a&p=b"))));
        check_split("/write?db=my%20db&u=a&p=b", Ok(("/write", Some("db=my%20db&u=a&p=b"))));
        check_split("/kapacitor/v1/tasks/a%20b?", Ok(("/kapacitor/v1/tasks/a b", Some(""))));
        check_split("/kapacitor/v1/../v1/tasks", Err(NonCanonical::DotSegment));
        check_split("/kapacitor/v1/tasks%2Fx", Err(NonCanonical::EncodedSlash));
        check_split("/kapacitor/v1/tasks#x", Err(NonCanonical::Fragment));
        check_split("http://kapacitor/kapacitor/v1/tasks", Err(NonCanonical::NotAbsolute));
        check_split("//kapacitor/v1/tasks", Err(NonCanonical::EmptySegment));
    }

    #[test]
    fn a_user_name_is_sent_so_that_it_cannot_end_the_header() {
        let cases = [
            ("johndoe", "johndoe"),
            ("a b", "a b"),
            ("é", "é"),
            ("100%", "100%25"),
            ("eve\r\nX-Admin: 1", "eve%0D%0AX-Admin: 1"),
            ("tab\there\u{7f}\0", "tab%09here%7F%00"),
        ];
        for (user, expected) in cases {
            assert_eq!(user_header(user), expected, "{user:?}");
        }
    }
}
