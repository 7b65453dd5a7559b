//! Forwarding an allowed request to Kapacitor (SPEC §7): what is sent is decided by two
//! pure functions, `forward_target` (the raw target minus `u` and `p`, every other byte
//! kept) and `forward_fields` (the client's fields minus credentials, hop-by-hop and
//! framing fields, plus `X-Forwarded-*`); `forward` hands them to the HTTP core's upstream
//! pool and passes Kapacitor's answer back as it is, streamed. Decides nothing about access.

use std::net::IpAddr;

use crate::http::client::{Outgoing, Upstream, UpstreamError};
use crate::http::{Fields, Request, RequestBody, Response};
use crate::query::strip_credential_params;

/// Fields that describe one hop, not the message (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields kapauth replaces or must not pass: credentials never reach Kapacitor (SPEC §7);
/// `Host` is the upstream's; the core answers `Expect` and writes the body's framing; the
/// `X-Forwarded-*` fields are rewritten below.
const REPLACED: &[&str] = &[
    "authorization",
    "host",
    "expect",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Why a request did not reach Kapacitor or its answer did not come back.
#[derive(Debug)]
pub enum ForwardError {
    /// Kapacitor could not be reached: 502.
    Unreachable(String),
    /// Kapacitor did not answer within `upstream-timeout`: 504.
    Timeout,
    /// The exchange with Kapacitor failed half-way: 502.
    Broken(String),
    /// The client's body could not be read (malformed chunks, cut short): 400.
    ClientBody(String),
}

/// The client side of a forwarded request, for `X-Forwarded-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSide<'a> {
    pub addr: IpAddr,
    /// The client's `Host`, if it sent one.
    pub host: Option<&'a [u8]>,
    /// Whether the client reached kapauth over TLS.
    pub secure: bool,
}

/// The target Kapacitor receives: the raw path and query as the client sent them, minus the
/// `u` and `p` parameters; no `?` at all when nothing else is left.
pub fn forward_target(raw_path: &str, raw_query: Option<&str>) -> String {
    match raw_query.map(strip_credential_params) {
        Some(query) if !query.is_empty() => format!("{raw_path}?{query}"),
        _ => raw_path.to_string(),
    }
}

/// A `Referer` as the access line logs it: the URL without a fragment (a browser sends
/// none) and without `u` and `p` pieces in its query, so a page that carried a password in
/// its URL never puts it in a log.
pub fn logged_referer(referer: &str) -> String {
    let referer = referer.split('#').next().unwrap_or_default();
    match referer.split_once('?') {
        Some((base, query)) => forward_target(base, Some(query)),
        None => referer.to_string(),
    }
}

/// The fields Kapacitor receives: the client's, in order, without hop-by-hop fields, those
/// its `Connection` names, and `REPLACED`; then `X-Forwarded-For` (the client's chain plus
/// its address), `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub fn forward_fields(incoming: &Fields, client: &ClientSide) -> Fields {
    let listed: Vec<&[u8]> = incoming
        .all("Connection")
        .flat_map(|value| value.split(|b| *b == b','))
        .map(crate::http::head::trim)
        .collect();
    let mut fields = Fields::with_capacity(512, incoming.len() + 3);
    for (name, value) in incoming.iter() {
        let dropped = HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || REPLACED.iter().any(|own| name.eq_ignore_ascii_case(own))
            || listed
                .iter()
                .any(|item| item.eq_ignore_ascii_case(name.as_bytes()));
        if !dropped {
            fields.push(name, value);
        }
    }
    let mut chain: Vec<u8> = Vec::new();
    for earlier in incoming.all("X-Forwarded-For") {
        chain.extend_from_slice(earlier);
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(client.addr.to_string().as_bytes());
    fields.push("X-Forwarded-For", &chain);
    let proto: &[u8] = if client.secure { b"https" } else { b"http" };
    fields.push("X-Forwarded-Proto", proto);
    if let Some(host) = client.host {
        fields.push("X-Forwarded-Host", host);
    }
    fields
}

/// Sends the allowed `request` (its `method`, a copy the caller holds while the body is
/// read) to Kapacitor at `target` and returns its answer, streaming.
pub fn forward<'u>(
    upstream: &'u Upstream,
    request: &mut Request<'_>,
    method: &str,
    target: &str,
) -> Result<Response<'u>, ForwardError> {
    let client = ClientSide {
        addr: request.remote.ip().to_canonical(),
        host: request.head.fields.get("Host"),
        secure: request.secure,
    };
    let fields = forward_fields(&request.head.fields, &client);
    let framing = request.framing();
    let mut body = request.body();
    let outgoing = match framing {
        RequestBody::None => Outgoing::None,
        RequestBody::Length(length) => Outgoing::Length(length, &mut body),
        RequestBody::Chunked => Outgoing::Chunked(&mut body),
    };
    let answer = upstream
        .send(method, target, &fields, outgoing)
        .map_err(|error| match error {
            UpstreamError::Unreachable(reason) => ForwardError::Unreachable(reason),
            UpstreamError::Timeout => ForwardError::Timeout,
            UpstreamError::Broken(reason) => ForwardError::Broken(reason),
            UpstreamError::ClientBody(error) => ForwardError::ClientBody(error.to_string()),
        })?;
    Ok(Response {
        status: answer.status,
        reason: answer.reason,
        fields: answer.fields,
        body: answer.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn check_target(raw_path: &str, raw_query: Option<&str>, expected: &str) {
        assert_eq!(
            forward_target(raw_path, raw_query),
            expected,
            "{raw_path} {raw_query:?}"
        );
    }

    #[test]
    fn a_logged_referer_keeps_every_byte_but_the_credentials() {
        let check = |referer: &str, expected: &str| {
            assert_eq!(logged_referer(referer), expected, "{referer}");
        };
        check("http://chronograf/", "http://chronograf/");
        check("http://c/x?u=alice&p=s3cret", "http://c/x");
        check("http://c/x?a=1&p=s3cret&b=2", "http://c/x?a=1&b=2");
        check("http://c/x?p=s3cret&u=alice", "http://c/x");
        check("http://c/x?a=1#p=s3cret", "http://c/x?a=1");
        check("http://c/#?p=s3cret", "http://c/");
    }

    #[test]
    fn the_target_keeps_every_byte_but_the_credentials() {
        check_target("/kapacitor/v1/tasks", None, "/kapacitor/v1/tasks");
        check_target("/kapacitor/v1/tasks", Some(""), "/kapacitor/v1/tasks");
        check_target(
            "/kapacitor/v1/tasks",
            Some("u=a&p=b"),
            "/kapacitor/v1/tasks",
        );
        check_target("/write", Some("db=x&u=a&p=b&rp=y"), "/write?db=x&rp=y");
        check_target("/write", Some("p=b&db=%2Fx+y"), "/write?db=%2Fx+y");
        check_target("/a%20b", Some("q=%zz&u=a"), "/a%20b?q=%zz");
        check_target("/x", Some("u=a;b=c"), "/x?u=a;b=c");
        check_target("/x", Some("%75=a&%70=b&up=c"), "/x?up=c");
    }

    fn fields(list: &[(&str, &str)]) -> Fields {
        let mut fields = Fields::default();
        for (name, value) in list {
            fields.push(name, value.as_bytes());
        }
        fields
    }

    fn check_fields(incoming: &[(&str, &str)], client: ClientSide, expected: &[(&str, &str)]) {
        let got: Vec<(String, String)> = forward_fields(&fields(incoming), &client)
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value).into_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        assert_eq!(got, expected, "{incoming:?}");
    }

    #[test]
    fn forwarded_fields_drop_credentials_hops_and_framing_and_add_x_forwarded() {
        let local = ClientSide {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host: Some(b"gw:9092"),
            secure: false,
        };
        let v6_tls = ClientSide {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            host: None,
            secure: true,
        };
        let added = [
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "gw:9092"),
        ];
        check_fields(
            &[("Accept", "*/*")],
            local,
            &[&[("Accept", "*/*")][..], &added].concat(),
        );
        check_fields(
            &[
                ("Host", "gw:9092"),
                ("Authorization", "Basic eDp5"),
                ("Content-Length", "5"),
                ("Transfer-Encoding", "chunked"),
                ("Expect", "100-continue"),
                ("Connection", "keep-alive, X-Secret"),
                ("X-Secret", "s"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Trailer", "X"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic eDp5"),
                ("Proxy-Connection", "keep-alive"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "evil"),
                ("content-type", "application/json"),
            ],
            local,
            &[&[("content-type", "application/json")][..], &added].concat(),
        );
        check_fields(
            &[
                ("X-Forwarded-For", "10.0.0.1"),
                ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
            ],
            v6_tls,
            &[
                ("X-Forwarded-For", "10.0.0.1, 10.0.0.2, 10.0.0.3, ::1"),
                ("X-Forwarded-Proto", "https"),
            ],
        );
    }
}
