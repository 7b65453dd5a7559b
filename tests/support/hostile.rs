//! What a hostile client does to kapauth's listeners, and how a test sees the cost of it
//! (SPEC §10): a request head that never ends, written from its own thread while the test
//! waits for the answer; the resident memory and thread count of the kapauth process, read
//! from `/proc/PID/status`; and a bounded poll for what has no signal of its own (a thread
//! that has exited); and a pids cgroup that holds the kapauth process at the number of
//! threads it has, so its next thread cannot start. Included by test files with `#[path = "support/hostile.rs"] mod
//! hostile;` beside `mod support;` and `mod wire;`.
#![allow(dead_code)]

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::Response;
use crate::wire::Connection;

/// What an endless head brought back.
#[derive(Debug)]
pub struct Endless {
    /// The answer, or why none could be read within the connection's timeout.
    pub response: Result<Response, String>,
    /// How many bytes the writer got onto the socket before it stopped.
    pub written: usize,
    /// Whether the server closed the connection after its answer.
    pub closed: Result<Duration, String>,
}

/// Writes `prefix`, then `filler` bytes up to `total` bytes in all (or until the server
/// stops taking them), from a thread of its own, while this thread waits up to `timeout`
/// for the answer and then for the connection to close.
pub fn endless(
    addr: SocketAddr,
    prefix: &[u8],
    filler: u8,
    total: usize,
    timeout: Duration,
) -> Endless {
    let mut connection = match Connection::open(addr, timeout) {
        Ok(connection) => connection,
        Err(error) => {
            return Endless {
                response: Err(format!("connect: {error}")),
                written: 0,
                closed: Err("never opened".to_string()),
            };
        }
    };
    let mut stream = connection
        .try_clone_stream()
        .expect("a second handle on the socket");
    let prefix = prefix.to_vec();
    let writer = thread::spawn(move || {
        let block = vec![filler; 16 * 1024];
        let mut written = 0;
        let _ = stream.write_all(&prefix).map(|()| written += prefix.len());
        while written < total {
            let n = block.len().min(total - written);
            // A server that has answered stops reading and closes: the write fails then.
            if stream.write_all(&block[..n]).is_err() {
                break;
            }
            written += n;
        }
        written
    });
    let response = connection.response().map_err(|error| error.to_string());
    let closed = match &response {
        Ok(_) => connection.closed(),
        Err(_) => Err("no answer was read".to_string()),
    };
    // Unblocks a writer still waiting on a server that reads nothing.
    connection.shutdown();
    let written = writer.join().expect("the writer thread does not panic");
    Endless {
        response,
        written,
        closed,
    }
}

/// `VmRSS` of process `pid`: its resident memory now, in KiB; `None` once the process has
/// exited (a zombie has no `VmRSS` line).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    number(&status, "VmRSS:")
}

/// `Threads` of process `pid`.
pub fn threads(pid: u32) -> u64 {
    status_number(pid, "Threads:")
}

/// Calls `attempt` every 20 ms until it returns `Some`, for at most `limit`; `None` if it
/// never did. For states that send no signal, such as a thread having exited.
pub fn poll_until<T>(limit: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = attempt() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The bytes waiting unread in each established connection whose local port is `port`:
/// the server's side of every connection to a listener on that port, from
/// `/proc/net/tcp` and `/proc/net/tcp6`. Zero for a connection means the server has taken
/// everything its client sent, so a test can tell "kapauth has read these heads" without
/// an answer to wait for.
pub fn unread_bytes_on_port(port: u16) -> Vec<u64> {
    let mut unread = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(queues)) =
                (fields.get(1), fields.get(3), fields.get(4))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            // 01 is ESTABLISHED; the queues are `tx:rx` in hex.
            let rx = queues
                .split_once(':')
                .and_then(|(_, hex)| u64::from_str_radix(hex, 16).ok());
            if let (Some(local_port), "01", Some(rx)) = (local_port, *state, rx)
                && local_port == port
            {
                unread.push(rx);
            }
        }
    }
    unread
}

/// Writes `bytes` without failing on a server that closed first (it may have answered).
pub fn write_ignoring_close(stream: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    match stream.write_all(bytes) {
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn status_number(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("read /proc/{pid}/status: {error}"));
    number(&status, field).unwrap_or_else(|| panic!("no {field} line in /proc/{pid}/status"))
}

/// The number on the line of `/proc/PID/status` that starts with `field`.
fn number(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A pids cgroup of its own for one process (root only): while `freeze` holds, the
/// process cannot start another thread (`clone` fails with `EAGAIN`), as on a host at its
/// `pids.max` or `ulimit -u`. Dropping it moves the process back and removes the cgroup.
pub struct PidsLimit {
    dir: PathBuf,
    parent: PathBuf,
    pid: u32,
}

impl PidsLimit {
    /// Moves `pid` into a new pids cgroup (cgroup v1's `pids` hierarchy or a v2 one with
    /// the controller enabled); `Err` says why there is none to use here.
    pub fn new(pid: u32) -> Result<PidsLimit, String> {
        let mut reasons = Vec::new();
        for parent in [
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup",
        ] {
            let parent = PathBuf::from(parent);
            let dir = parent.join(format!("kapauth-test-{}-{pid}", std::process::id()));
            if let Err(error) = fs::create_dir(&dir) {
                reasons.push(format!("{}: {error}", dir.display()));
                continue;
            }
            let limit = PidsLimit { dir, parent, pid };
            if !limit.dir.join("pids.max").exists() {
                reasons.push(format!("{}: no pids controller", limit.dir.display()));
                continue;
            }
            match fs::write(limit.dir.join("cgroup.procs"), pid.to_string()) {
                Ok(()) => return Ok(limit),
                Err(error) => reasons.push(format!("{}: {error}", limit.dir.display())),
            }
        }
        Err(reasons.join("; "))
    }

    /// Sets `pids.max` to the threads the process has now: the next one cannot start.
    pub fn freeze(&self) {
        let current = fs::read_to_string(self.dir.join("pids.current"))
            .unwrap_or_else(|error| panic!("read {}/pids.current: {error}", self.dir.display()));
        self.set_max(current.trim());
    }

    /// Lifts the limit: threads start again.
    pub fn lift(&self) {
        self.set_max("max");
    }

    fn set_max(&self, value: &str) {
        fs::write(self.dir.join("pids.max"), value)
            .unwrap_or_else(|error| panic!("write {}/pids.max: {error}", self.dir.display()));
    }
}

impl Drop for PidsLimit {
    fn drop(&mut self) {
        // The process may have exited already; either way the cgroup must end up empty.
        let _ = fs::write(self.parent.join("cgroup.procs"), self.pid.to_string());
        let _ = fs::remove_dir(&self.dir);
    }
}
