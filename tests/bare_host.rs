//! The static binary on a bare host (issue 9, item 9): `make static`'s glibc binary started
//! in a root holding only itself, its config, the CA it trusts for meta, `/etc/hosts` and
//! `/etc/resolv.conf` (no `/lib`, no NSS modules, no `/etc/nsswitch.conf`), with `meta-addr`
//! and `upstream` given as host names. A `kapauth meta` over https and an echo upstream run
//! outside on 127.0.0.1; the gateway must look users up there and forward.
//!
//! Run by `make bare-host` (as root, for `chroot` and port 53), which builds the static
//! binary and names it in `KAPAUTH_STATIC_BINARY`; under `make test` that variable is unset
//! and each test says it skipped. A machine without root fails here rather than pass
//! unseen, since asking for the check is setting the variable.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/deployment.rs"]
mod deployment;
#[path = "support/dns.rs"]
mod dns;
mod support;
#[path = "support/upstream.rs"]
mod upstream;

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use deployment::{Backends, check_gateway, gateway_launch, unit_sandbox};
use support::TempDir;

/// The meta host's name; only the bare root's /etc/hosts knows it.
const META_HOST: &str = "meta.kapauth.test";
/// The upstream's name when /etc/hosts knows it.
const UPSTREAM_HOST: &str = "kapacitor.kapauth.test";
/// The upstream's name when only DNS knows it.
const UPSTREAM_DNS_HOST: &str = "kapacitor.dns.kapauth.test";
/// Where the DNS stand-in listens: a loopback address no other test uses, port 53.
const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 53, 0, 1);

#[test]
fn the_static_binary_in_a_bare_root_reaches_meta_and_upstream_named_in_its_etc_hosts() {
    serve_from_bare_root(
        "bare-hosts",
        UPSTREAM_HOST,
        Ipv4Addr::LOCALHOST,
        BareRoot::chroot,
    );
}

#[test]
fn the_static_binary_in_a_bare_root_runs_under_the_units_system_call_filter() {
    serve_from_bare_root("bare-filter", UPSTREAM_HOST, Ipv4Addr::LOCALHOST, |root| {
        let root_path = root.dir.path().to_string_lossy().into_owned();
        unit_sandbox(&["--root", &root_path]).expect(
            "make bare-host needs python3-seccomp and systemd-analyze (.ci/run installs them)",
        )
    });
}

#[test]
fn the_static_binary_in_a_bare_root_resolves_a_name_only_dns_knows() {
    if static_binary().is_none() {
        return;
    }
    let dns = dns::Dns::start(DNS_ADDRESS, UPSTREAM_DNS_HOST, Ipv4Addr::LOCALHOST).unwrap_or_else(
        |error| panic!("bind the DNS stand-in on {DNS_ADDRESS}:53 (root): {error}"),
    );
    serve_from_bare_root("bare-dns", UPSTREAM_DNS_HOST, DNS_ADDRESS, BareRoot::chroot);
    assert!(dns.answered() > 0, "the upstream's name came from DNS");
}

#[test]
fn the_static_binary_in_a_bare_root_passes_over_nss_modules_it_cannot_load() {
    serve_from_bare_root("bare-nss", UPSTREAM_HOST, Ipv4Addr::LOCALHOST, |root| {
        // What a desktop or systemd-resolved host says: modules a static binary would have
        // to load from the host's libraries, which the bare root does not have.
        root.write(
            "etc/nsswitch.conf",
            b"hosts: resolve [!UNAVAIL=return] mdns4_minimal [NOTFOUND=return] files dns\n",
        );
        root.chroot()
    });
}

/// Starts meta and the upstream outside, a bare root whose resolver is `nameserver`, and
/// the gateway in it through the runner `runner` gives (which may add to the root first),
/// then checks lookups over TLS and forwarding. Skips without `KAPAUTH_STATIC_BINARY`.
fn serve_from_bare_root(
    label: &str,
    upstream_host: &str,
    nameserver: Ipv4Addr,
    runner: impl FnOnce(&BareRoot) -> Vec<OsString>,
) {
    let Some(binary) = static_binary() else {
        return;
    };
    let backends = Backends::start(label, META_HOST, |launch| launch);
    let root = BareRoot::new(&binary, &backends, upstream_host, nameserver);
    let gateway = gateway_launch(Path::new("/kapauth.conf"))
        .through(&runner(&root), "/kapauth")
        .start();
    check_gateway(&gateway, &backends);
}

/// `KAPAUTH_STATIC_BINARY`, or `None` after saying the test skipped.
fn static_binary() -> Option<PathBuf> {
    match std::env::var_os("KAPAUTH_STATIC_BINARY") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            println!("skipped: KAPAUTH_STATIC_BINARY is unset; `make bare-host` runs this as root");
            None
        }
    }
}

/// The bare root: `/kapauth`, `/kapauth.conf`, `/meta-ca.pem`, `/etc/hosts` (the meta host
/// and the upstream host, unless DNS is to answer for it), `/etc/resolv.conf`.
struct BareRoot {
    dir: TempDir,
}

impl BareRoot {
    fn new(
        binary: &Path,
        backends: &Backends,
        upstream_host: &str,
        nameserver: Ipv4Addr,
    ) -> BareRoot {
        let root = BareRoot {
            dir: TempDir::new("bare-root"),
        };
        let image = std::fs::read(binary)
            .unwrap_or_else(|error| panic!("read the static binary {}: {error}", binary.display()));
        root.write("kapauth", &image);
        std::fs::set_permissions(
            root.dir.join("kapauth"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("make /kapauth executable");
        root.write(
            "meta-ca.pem",
            &std::fs::read(backends.ca_pem()).expect("read the CA certificate"),
        );
        root.write(
            "kapauth.conf",
            backends
                .gateway_config(META_HOST, upstream_host, "/meta-ca.pem")
                .as_bytes(),
        );
        // Each name also has ::1, where nothing listens, as `localhost` often has: glibc
        // sorts the two (asking the kernel's interface list over netlink, which the unit
        // refuses), and both clients must go on to the address that answers.
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for name in [META_HOST, UPSTREAM_HOST] {
            if name == META_HOST || upstream_host == UPSTREAM_HOST {
                hosts.push_str(&format!("::1 {name}\n127.0.0.1 {name}\n"));
            }
        }
        root.write("etc/hosts", hosts.as_bytes());
        root.write(
            "etc/resolv.conf",
            format!("nameserver {nameserver}\n").as_bytes(),
        );
        root
    }

    /// Writes `name` (a path inside the root) with `contents`.
    fn write(&self, name: &str, contents: &[u8]) {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a file in the root"))
            .expect("make the root's directories");
        std::fs::write(&path, contents).unwrap_or_else(|error| panic!("write {name}: {error}"));
    }

    /// `chroot ROOT`, as the runner of `/kapauth`.
    fn chroot(&self) -> Vec<OsString> {
        vec!["chroot".into(), self.dir.path().into()]
    }
}
