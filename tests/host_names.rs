//! Host names in `[auth] meta-addr` and `[gateway] upstream` (README "The static binary on
//! a bare host"): kapauth reads every `/etc/hosts` line naming a host, so a name listed
//! with `::1` first, where nothing listens, still reaches `127.0.0.1`, with or without
//! `/etc/host.conf` (glibc alone takes only the first line without `multi on`). The gateway
//! runs in a private mount namespace (`unshare --map-root-user --mount`, no root needed
//! where user namespaces are allowed) with the test's own file bound over `/etc/hosts`
//! and an empty `/etc/host.conf`; the test says it skipped where that namespace cannot be
//! made. `make bare-host` checks the same with the static binary in a bare root.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/deployment.rs"]
mod deployment;
mod support;
#[path = "support/upstream.rs"]
mod upstream;

use std::ffi::OsString;
use std::process::Command;

use deployment::{Backends, check_gateway, gateway_launch};

const META_HOST: &str = "meta.kapauth.test";
const UPSTREAM_HOST: &str = "kapacitor.kapauth.test";

/// Binds `$HOSTS` over /etc/hosts and `$EMPTY` over /etc/host.conf where there is one,
/// then execs the rest of the command line (`$0` is the program).
const BIND_AND_EXEC: &str = "mount --bind \"$HOSTS\" /etc/hosts \
     && { [ ! -e /etc/host.conf ] || mount --bind \"$EMPTY\" /etc/host.conf; } \
     && exec \"$0\" \"$@\"";

#[test]
fn names_listed_with_ipv6_first_still_reach_meta_and_the_upstream_on_ipv4() {
    let probe = Command::new("unshare")
        .args(["--map-root-user", "--mount", "true"])
        .output();
    if !probe.as_ref().is_ok_and(|output| output.status.success()) {
        println!("skipped: unshare --map-root-user --mount cannot run here: {probe:?}");
        return;
    }
    let backends = Backends::start("host-names", META_HOST, |launch| launch);
    let hosts = backends.dir().join("hosts");
    let empty = backends.dir().join("empty");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1 localhost\n::1 {META_HOST}\n127.0.0.1 {META_HOST}\n::1 {UPSTREAM_HOST}\n127.0.0.1 {UPSTREAM_HOST}\n"
        ),
    )
    .expect("write the hosts file");
    std::fs::write(&empty, "").expect("write the empty host.conf");
    let config = backends.dir().join("kapauth.conf");
    std::fs::write(
        &config,
        backends.gateway_config(
            META_HOST,
            UPSTREAM_HOST,
            &backends.ca_pem().to_string_lossy(),
        ),
    )
    .expect("write the gateway config");
    let runner: Vec<OsString> = [
        "unshare",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        BIND_AND_EXEC,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let gateway = gateway_launch(&config)
        .env("HOSTS", &hosts)
        .env("EMPTY", &empty)
        .through(&runner, env!("CARGO_BIN_EXE_kapauth"))
        .start();
    check_gateway(&gateway, &backends);
}
