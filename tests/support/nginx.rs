//! A real nginx for the forward-auth tests: Debian's package (installed by
//! `scripts/test-deps`), run as a child process in the foreground (`daemon off;`,
//! `master_process off;`) on a configuration written into a temporary directory, which also
//! holds its pid file, logs and temp paths. nginx cannot listen on port 0, so a free port is
//! found by binding 127.0.0.1:0 and closing it; if another process takes it before nginx
//! binds, nginx exits saying so and the start is tried again on a new port. Ready means a
//! connect succeeds, polled with a bound. Included by test files with
//! `#[path = "support/nginx.rs"] mod nginx;` beside `mod support;`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{READY_TIMEOUT, TempDir};

/// How many ports are tried before the test fails.
const PORT_ATTEMPTS: usize = 5;

/// A running nginx, stopped (by its own pid) when dropped.
pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx on a free port of 127.0.0.1 with `server` (the directives of one
    /// `server` block, without `listen`) as the whole of its site.
    pub fn start(server: &str) -> Nginx {
        let program = nginx_program();
        let dir = TempDir::new("nginx");
        let mut refusals = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let addr = free_port();
            std::fs::write(dir.join("nginx.conf"), config(dir.path(), addr, server))
                .expect("write nginx.conf");
            let mut child = Command::new(&program)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-e")
                .arg(dir.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("start {}: {error}", program.display()));
            match wait_ready(&mut child, addr) {
                Ok(()) => return Nginx { addr, child, dir },
                Err(exited) => {
                    let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                    assert!(
                        log.contains("Address already in use"),
                        "nginx did not start ({exited}):\n{log}"
                    );
                    refusals.push(log);
                }
            }
        }
        panic!("nginx found no free port in {PORT_ATTEMPTS} attempts: {refusals:#?}");
    }

    /// nginx's error log so far, for assertion messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// nginx's access log so far (the `$status $request` of each request).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx from `KAPAUTH_TEST_NGINX`, else the first of `PATH` and `/usr/sbin`.
fn nginx_program() -> PathBuf {
    if let Some(program) = std::env::var_os("KAPAUTH_TEST_NGINX") {
        return PathBuf::from(program);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .expect("nginx not found on PATH or in /usr/sbin: run scripts/test-deps, which installs Debian's nginx")
}

/// A port that was free a moment ago.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("its address")
}

/// The whole configuration: one process in the foreground, everything it writes in `dir`.
fn config(dir: &Path, addr: SocketAddr, server: &str) -> String {
    let dir = dir.display();
    format!(
        "daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {addr};
{server}
    }}
}}
"
    )
}

/// Polls a connect until nginx accepts one; `Err` with its exit status if it exits first.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll nginx") {
            return Err(status.to_string());
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Whoever took the port may have answered before nginx gave up on it.
            return match child.try_wait().expect("poll nginx") {
                Some(status) => Err(status.to_string()),
                None => Ok(()),
            };
        }
        assert!(
            Instant::now() < deadline,
            "nginx not listening on {addr} after {READY_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
