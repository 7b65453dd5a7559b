//! Host names to addresses for kapauth's two clients, the upstream pool (`http/client.rs`)
//! and the meta API clients (ureq, through `HostsFirst`): kapauth reads `/etc/hosts`
//! itself, taking every line that names the host, and asks the system resolver (glibc's
//! `getaddrinfo`: nsswitch.conf, DNS) only for a name the file does not hold. (kapauth)
//!
//! Why: glibc's files backend returns only the first `/etc/hosts` line for a name unless
//! `/etc/host.conf` says `multi on`, which a bare root (the static binary's home) lacks;
//! with `::1 meta` before `127.0.0.1 meta` and meta on IPv4, kapauth got `::1` alone and
//! never reached meta (tests/bare_host.rs). Reading the file here gives every address, and
//! the clients already try each in turn.
//!
//! `hosts_addresses` is pure and table-tested; `socket_addrs` and `HostsFirst` only add the
//! file read and the fallback. Never logs, never panics on any file content.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// The hosts file glibc reads.
const HOSTS_FILE: &str = "/etc/hosts";

/// The addresses `/etc/hosts` text gives `host`: every line whose canonical name or an
/// alias is `host` (ASCII case ignored), in file order, each address once. A line whose
/// address does not parse (a zone index `%eth0`, a typo) is passed over, as glibc does.
pub fn hosts_addresses(text: &str, host: &str) -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    for line in text.lines() {
        let line = line.split_once('#').map_or(line, |(before, _)| before);
        let mut fields = line.split_ascii_whitespace();
        let Some(Ok(address)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if fields.any(|name| name.eq_ignore_ascii_case(host)) && !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    addresses
}

/// `host:port` (or `[v6]:port`) to socket addresses: an address as written, else the
/// `/etc/hosts` lines for the host, else the system resolver.
pub fn socket_addrs(authority: &str) -> io::Result<Vec<SocketAddr>> {
    if let Ok(address) = authority.parse::<SocketAddr>() {
        return Ok(vec![address]);
    }
    if let Some((host, port)) = authority.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
    {
        let listed = from_hosts_file(host, port);
        if !listed.is_empty() {
            return Ok(listed);
        }
    }
    Ok(authority.to_socket_addrs()?.collect())
}

/// A ureq agent built from `config` whose names are resolved as `socket_addrs` does.
pub fn agent(config: Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, DefaultConnector::default(), HostsFirst)
}

/// ureq's resolver with `/etc/hosts` read first; everything else (addresses as written,
/// the system resolver under the call's timeout) is ureq's `DefaultResolver`. The trait is
/// in ureq's `unversioned` module, outside its semver promise: a ureq update that changes
/// it breaks the build here and nowhere else.
#[derive(Debug)]
pub struct HostsFirst;

impl Resolver for HostsFirst {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        if let (Some(host), Some(port)) = (uri.host(), port)
            && host.parse::<IpAddr>().is_err()
        {
            let listed = from_hosts_file(host, port);
            if !listed.is_empty() {
                let mut addresses = self.empty();
                // ureq keeps at most 16 addresses; the rest are dropped, as its own
                // resolver drops them.
                for address in listed {
                    if addresses.try_push(address).is_err() {
                        break;
                    }
                }
                return Ok(addresses);
            }
        }
        DefaultResolver::default().resolve(uri, config, timeout)
    }
}

/// The `/etc/hosts` addresses of `host` with `port`; none when the file cannot be read.
fn from_hosts_file(host: &str, port: u16) -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read_to_string(HOSTS_FILE) else {
        return Vec::new();
    };
    hosts_addresses(&text, host)
        .into_iter()
        .map(|address| SocketAddr::new(address, port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "\
127.0.0.1\tlocalhost
::1     localhost ip6-localhost ip6-loopback
# 10.0.0.9 commented.example
::1 meta.example meta
127.0.0.1 meta.example   # IPv4 too
10.1.2.3 kapacitor.example kapacitor
10.1.2.3 kapacitor
fe80::1%eth0 scoped.example
not-an-address broken.example
192.168.0.300 broken.example
10.9.9.9 Mixed.Case.Example
";

    fn check(host: &str, expected: &[&str]) {
        let expected: Vec<IpAddr> = expected.iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(hosts_addresses(HOSTS, host), expected, "{host}");
    }

    #[test]
    fn every_line_naming_the_host_counts_in_file_order() {
        check("meta.example", &["::1", "127.0.0.1"]);
        check("meta", &["::1"]);
        check("localhost", &["127.0.0.1", "::1"]);
        check("ip6-loopback", &["::1"]);
        check("kapacitor", &["10.1.2.3"]);
        check("KAPACITOR.example", &["10.1.2.3"]);
        check("mixed.case.example", &["10.9.9.9"]);
        check("commented.example", &[]);
        check("scoped.example", &[]);
        check("broken.example", &[]);
        check("unknown.example", &[]);
        check("127.0.0.1", &[]);
        check("", &[]);
    }

    #[test]
    fn an_address_as_written_is_used_without_any_lookup() {
        for (authority, expected) in [
            ("127.0.0.1:9093", "127.0.0.1:9093"),
            ("[::1]:8091", "[::1]:8091"),
        ] {
            let expected: SocketAddr = expected.parse().unwrap();
            assert_eq!(socket_addrs(authority).unwrap(), vec![expected]);
        }
    }
}
