//! Helpers shared by the black-box suites in `tests/`: the real `kapauth` binary started
//! on ephemeral ports with its stderr captured line by line, a tiny HTTP/1.1 client over
//! std `TcpStream` so a test sees the exact status, headers and body bytes, and temporary
//! directories that clean up after themselves. No sleeps: readiness is the `msg=listening`
//! line the binary prints once it has bound (SPEC §9), and every wait has a bound.

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a started binary may take to print its `msg=listening` lines, and how long
/// any other wait on its log may last, before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the HTTP client waits on a connect, a write or a read before giving up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// How `kapauth` is started: the program, its `--set section.key=value` flags, extra
/// environment variables, and the services whose `msg=listening` lines mean it is ready.
#[derive(Debug, Clone)]
pub struct Launch {
    program: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    services: Vec<String>,
    /// A program that starts kapauth (a sandbox, `chroot`) with its arguments; empty:
    /// kapauth is started directly.
    runner: Vec<OsString>,
    /// The kapauth binary, as the runner (or this process) names it.
    binary: OsString,
}

impl Launch {
    /// `kapauth PROGRAM` with no flags, waiting for no listener.
    pub fn new(program: &str) -> Launch {
        Launch {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            services: Vec::new(),
            runner: Vec::new(),
            binary: env!("CARGO_BIN_EXE_kapauth").into(),
        }
    }

    /// `kapauth meta` on an ephemeral port of 127.0.0.1 over `dir`, with bcrypt cost 4 so
    /// tests stay fast; ready once the meta listener is bound.
    pub fn meta(dir: &Path) -> Launch {
        Launch::new("meta")
            .set("meta.bind-address", "127.0.0.1:0")
            .set("meta.dir", dir)
            .set("meta.bcrypt-cost", "4")
            .wait_for("meta")
    }

    /// `kapauth serve` with no flags; the caller adds the addresses, the upstream and the
    /// services to wait for.
    pub fn serve() -> Launch {
        Launch::new("serve")
    }

    /// Adds `--set KEY=VALUE`; a later flag for the same key wins, as in kapauth.
    pub fn set(mut self, key: &str, value: impl AsRef<OsStr>) -> Launch {
        let mut flag = OsString::from(format!("{key}="));
        flag.push(value.as_ref());
        self.args.push("--set".into());
        self.args.push(flag);
        self
    }

    /// Adds `--config PATH`.
    pub fn config(mut self, path: &Path) -> Launch {
        self.args.push("--config".into());
        self.args.push(path.into());
        self
    }

    /// Sets an environment variable for the child (after the inherited `KAPACITOR_*` and
    /// `KAPAUTH_*` ones are removed).
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Launch {
        self.env.push((name.into(), value.as_ref().into()));
        self
    }

    /// Adds one argument as it is: a subcommand word, an operand or a flag.
    pub fn arg(mut self, value: impl AsRef<OsStr>) -> Launch {
        self.args.push(value.as_ref().into());
        self
    }

    /// Runs the binary to completion with `stdin` as its standard input (a pipe, not a
    /// terminal) and returns what it printed. Fails the test if it still runs after
    /// `READY_TIMEOUT`, killing it by its pid.
    pub fn run_with_stdin(&self, stdin: &[u8]) -> Output {
        let mut command = self.command();
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .expect("the kapauth binary built by cargo starts");
        let mut input = child.stdin.take().expect("stdin is piped");
        let stdin = stdin.to_vec();
        // Written from a thread, so a child that never reads cannot block the test; the
        // pipe closes when the thread ends, which is the end of stdin.
        std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let pid = child.id();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        match receiver.recv_timeout(READY_TIMEOUT) {
            Ok(output) => {
                let output = output.expect("waiting on our own child");
                Output {
                    code: output.status.code(),
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                }
            }
            Err(_) => {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!(
                    "kapauth {} {:?} still ran after {READY_TIMEOUT:?}",
                    self.program, self.args
                );
            }
        }
    }

    /// Starts `binary` through `runner`: `RUNNER... BINARY PROGRAM ARGS...`, for a runner
    /// that execs its last arguments in its own place (a sandbox, `chroot DIR`), so the pid
    /// the test holds is kapauth's.
    pub fn through(mut self, runner: &[OsString], binary: impl AsRef<OsStr>) -> Launch {
        self.runner = runner.to_vec();
        self.binary = binary.as_ref().into();
        self
    }

    /// Readiness also waits for `msg=listening service=SERVICE`.
    pub fn wait_for(mut self, service: &str) -> Launch {
        self.services.push(service.to_string());
        self
    }

    /// Starts the binary and blocks until every awaited service has logged its address;
    /// fails the test after `READY_TIMEOUT` or if the process exits first.
    pub fn start(&self) -> Kapauth {
        let mut kapauth = Kapauth {
            launch: self.clone(),
            process: None,
            earlier_lines: Vec::new(),
            addrs: Vec::new(),
        };
        kapauth.spawn();
        kapauth
    }

    /// Runs the binary to completion (for startup failures): returns its exit code and
    /// every stderr line. Fails the test if it is still running after `READY_TIMEOUT`.
    pub fn run_to_exit(&self) -> Exit {
        let mut process = Process::spawn(self);
        let closed = process
            .log
            .wait_until(READY_TIMEOUT, |state| state.closed.then_some(()));
        if closed.is_err() {
            let lines = process.stop();
            panic!(
                "kapauth {} was expected to exit but is still running after {READY_TIMEOUT:?}; stderr:\n{}",
                self.program,
                lines.join("\n")
            );
        }
        let status = process
            .child
            .wait()
            .expect("waiting on a child whose stderr closed");
        let stderr = process.stop();
        Exit {
            code: status.code(),
            stderr,
        }
    }

    fn command(&self) -> Command {
        let mut command = match self.runner.split_first() {
            Some((runner, runner_args)) => {
                let mut command = Command::new(runner);
                command.args(runner_args).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command.arg(&self.program).args(&self.args);
        // The test's own environment must not configure the binary: only what the test
        // says counts. kapauth compares names upper-cased, so these are too.
        for (name, _) in std::env::vars_os() {
            let upper = name.to_string_lossy().to_ascii_uppercase();
            if upper.starts_with("KAPACITOR_") || upper.starts_with("KAPAUTH_") {
                command.env_remove(&name);
            }
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }
}

/// How a `run_to_exit` ended.
#[derive(Debug)]
pub struct Exit {
    /// `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stderr: Vec<String>,
}

/// What a run to completion printed, and its exit code (`None` for a signal).
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A running `kapauth`; killed (SIGKILL) when dropped.
pub struct Kapauth {
    launch: Launch,
    process: Option<Process>,
    /// The stderr of processes this handle ran before the current one, in order.
    earlier_lines: Vec<String>,
    addrs: Vec<(String, SocketAddr)>,
}

impl Kapauth {
    /// The address of the first awaited service.
    pub fn addr(&self) -> SocketAddr {
        self.addrs
            .first()
            .map(|(_, addr)| *addr)
            .expect("the launch waited for no service, so no address is known")
    }

    /// The address `service` logged it listens on.
    pub fn addr_of(&self, service: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(name, _)| name == service)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no service {service:?} was awaited"))
    }

    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .map(|process| process.child.id())
            .expect("the process was killed")
    }

    /// Kills the process with SIGKILL (`Child::kill` on unix), reaps it and reads its
    /// stderr to the end, so `log_lines` then holds every line it wrote.
    pub fn kill_9(&mut self) {
        if let Some(process) = self.process.take() {
            let lines = process.stop();
            self.earlier_lines.extend(lines);
        }
    }

    /// Kills the process if it still runs, then starts the same launch again (same flags,
    /// so the same `[meta] dir`) and waits for readiness; the addresses are the new ones.
    pub fn restart(&mut self) {
        self.kill_9();
        self.spawn();
    }

    /// Sends the signal `name` (`TERM`, `INT`, `HUP`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the process to exit on its own, at most `limit`; its exit code (`None`
    /// for a signal). Fails the test if it is still running then.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(code) = self.try_exit_code() {
                return code;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            // The child's exit has no other notification std gives a parent.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process has exited on its own; returns its exit code then (`None`
    /// inside for a signal).
    pub fn try_exit_code(&mut self) -> Option<Option<i32>> {
        let process = self.process.as_mut()?;
        let status = process
            .child
            .try_wait()
            .expect("try_wait on our own child")?;
        Some(status.code())
    }

    /// Every stderr line captured so far, from every process this handle ran.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = self.earlier_lines.clone();
        if let Some(process) = &self.process {
            lines.extend(process.log.state().lines.iter().cloned());
        }
        lines
    }

    /// How many captured lines match `predicate`.
    pub fn count_log_lines(&self, predicate: impl Fn(&str) -> bool) -> usize {
        self.log_lines()
            .iter()
            .filter(|line| predicate(line))
            .count()
    }

    /// Blocks until the current process has written at least `count` lines matching
    /// `predicate` (lines reach the test through a pipe and a thread, so a line written
    /// before a response may be read after it); returns them. Fails after `READY_TIMEOUT`.
    pub fn wait_for_log_lines(
        &self,
        count: usize,
        predicate: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let process = self.process.as_ref().expect("the process was killed");
        let matching = |state: &LogState| {
            state
                .lines
                .iter()
                .filter(|line| predicate(line))
                .cloned()
                .collect::<Vec<_>>()
        };
        process
            .log
            .wait_until(READY_TIMEOUT, |state| {
                let found = matching(state);
                (found.len() >= count).then_some(found)
            })
            .unwrap_or_else(|state| {
                panic!(
                    "waited {READY_TIMEOUT:?} for {count} matching log lines, found {}; stderr:\n{}",
                    matching(&state).len(),
                    state.lines.join("\n")
                )
            })
    }

    fn spawn(&mut self) {
        let process = Process::spawn(&self.launch);
        let services = self.launch.services.clone();
        let ready = process.log.wait_until(READY_TIMEOUT, |state| {
            let addrs: Vec<(String, SocketAddr)> = services
                .iter()
                .filter_map(|service| {
                    let addr = state
                        .lines
                        .iter()
                        .find_map(|line| listening(line, service))?;
                    Some((service.clone(), addr))
                })
                .collect();
            (addrs.len() == services.len()).then_some(addrs)
        });
        match ready {
            Ok(addrs) => {
                self.addrs = addrs;
                self.process = Some(process);
            }
            Err(state) => {
                let exited = state.closed;
                let lines = process.stop();
                panic!(
                    "kapauth {} {}; stderr:\n{}",
                    self.launch.program,
                    if exited {
                        "exited before every service logged msg=listening".to_string()
                    } else {
                        format!(
                            "did not log msg=listening for {services:?} within {READY_TIMEOUT:?}"
                        )
                    },
                    lines.join("\n")
                );
            }
        }
    }
}

impl Drop for Kapauth {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The address in `msg=listening service=SERVICE addr=IP:PORT`, if `line` is that line.
pub fn listening(line: &str, service: &str) -> Option<SocketAddr> {
    let mut fields = line.split(' ');
    fields.find(|field| *field == "msg=listening")?;
    let mut fields = fields.filter_map(|field| field.split_once('='));
    let mut addr = None;
    let mut matched = false;
    for (key, value) in &mut fields {
        match key {
            "service" => matched = value == service,
            "addr" => addr = value.parse().ok(),
            _ => {}
        }
    }
    if matched { addr } else { None }
}

/// One child and the thread that reads its stderr.
struct Process {
    child: Child,
    log: Arc<Log>,
    reader: JoinHandle<()>,
}

impl Process {
    fn spawn(launch: &Launch) -> Process {
        let mut child = launch
            .command()
            .spawn()
            .expect("the kapauth binary built by cargo starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Log::default());
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || read_lines(stderr, &log))
        };
        Process { child, log, reader }
    }

    /// SIGKILL, reap, read stderr to its end; returns every line.
    fn stop(mut self) -> Vec<String> {
        // An already exited child makes `kill` fail; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reader.join();
        std::mem::take(&mut self.log.state().lines)
    }
}

#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default, Clone)]
struct LogState {
    lines: Vec<String>,
    /// stderr reached its end: the process exited (or closed it).
    closed: bool,
}

impl Log {
    fn state(&self) -> MutexGuard<'_, LogState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until `check` returns `Some` or the log closes or `timeout` passes; on
    /// failure returns a copy of the state for the panic message.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&LogState) -> Option<T>,
    ) -> Result<T, LogState> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if let Some(found) = check(&state) {
                return Ok(found);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return Err(state.clone());
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

fn read_lines(stderr: ChildStderr, log: &Log) {
    let mut reader = BufReader::new(stderr);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer);
                let line = line.strip_suffix('\n').unwrap_or(&line).to_string();
                log.state().lines.push(line);
                log.changed.notify_all();
            }
        }
    }
    log.state().closed = true;
    log.changed.notify_all();
}

/// A directory under `std::env::temp_dir()` named after the test process and a counter;
/// removed with everything in it when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "kapauth-test-{}-{}-{label}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from an earlier run with a recycled pid must not leak into this one.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a directory under the temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// An HTTP response exactly as received, the body de-chunked.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names and values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every header named `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The body as text; fails the test if it is not UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("the response body is UTF-8")
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} ", self.status, self.headers)?;
        match std::str::from_utf8(&self.body) {
            Ok(text) => write!(f, "{text:?}"),
            Err(_) => write!(f, "{:?}", self.body),
        }
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole response;
/// fails the test on any I/O or protocol error. `Host` is the address unless `headers`
/// hold one; `Content-Length` is added for a non-empty body (or a POST, PUT or PATCH)
/// unless `headers` set it or `Transfer-Encoding`, in which case `body` is sent as given.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, target, headers, body)
        .unwrap_or_else(|error| panic!("{method} {target} to {addr}: {error}"))
}

/// `request` that returns I/O and protocol errors instead of failing the test.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    send(addr, method, target, headers, body)?.response()
}

/// A request whose bytes are all written; the response has not been read yet.
pub struct Pending {
    stream: TcpStream,
    head_only: bool,
}

/// Writes a request as `request` does and returns before reading the response, so a test
/// can order events after "the server has the whole request".
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Pending> {
    let has = |wanted: &str| {
        headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
    };
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let framed = has("content-length") || has("transfer-encoding");
    let wants_length = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if !framed && wants_length {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    send_raw(addr, &bytes).map(|mut pending| {
        pending.head_only = method.eq_ignore_ascii_case("HEAD");
        pending
    })
}

/// Writes `bytes` as they are (a whole request, or a deliberately broken one).
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> io::Result<Pending> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    match stream.write_all(bytes) {
        Ok(()) => {}
        // A server may answer (413, 401) without reading a large body and close; its
        // answer is still there to read.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(error) => return Err(error),
    }
    Ok(Pending {
        stream,
        head_only: false,
    })
}

impl Pending {
    /// Reads the response to the end of the connection and parses it.
    pub fn response(mut self) -> io::Result<Response> {
        let mut bytes = Vec::new();
        if let Err(error) = self.stream.read_to_end(&mut bytes) {
            // A reset after a complete response loses nothing; without one it is an error.
            if bytes.is_empty() || error.kind() != io::ErrorKind::ConnectionReset {
                return Err(error);
            }
        }
        parse_response(&bytes, self.head_only)
    }
}

/// `Basic base64(user:password)`, as curl's `--user` and `http://user:pass@host` send it.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Standard padded base64; written here so the tests do not trust kapauth's own codec.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn parse_response(bytes: &[u8], head_only: bool) -> io::Result<Response> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(format!(
                "no end of headers in {:?}",
                String::from_utf8_lossy(bytes)
            ))
        })?;
    let head =
        std::str::from_utf8(&bytes[..end]).map_err(|_| bad("headers are not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers = lines
        .map(|line| {
            line.split_once(':')
                .map(|(name, value)| (name.to_string(), value.trim().to_string()))
                .ok_or_else(|| bad(format!("bad header line {line:?}")))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &bytes[end + 4..];
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    response.body = if head_only || status == 204 || status == 304 {
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} bytes after a response without a body",
                rest.len()
            )));
        }
        Vec::new()
    } else if chunked {
        dechunk(rest).ok_or_else(|| bad("malformed chunked body".into()))?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {length:?}")))?;
        if rest.len() != length {
            return Err(bad(format!(
                "Content-Length {length} but {} body bytes before the connection closed",
                rest.len()
            )));
        }
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers, if any, end with an empty line; nothing may follow it.
            let trailers_end = rest.windows(2).position(|window| window == b"\r\n")?;
            if trailers_end == 0 {
                return (rest.len() == 2).then_some(body);
            }
            let after = rest.windows(4).position(|window| window == b"\r\n\r\n")?;
            return (rest.len() == after + 4).then_some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        if rest.get(size..size + 2)? != b"\r\n" {
            return None;
        }
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_examples() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(basic("admin", "changeit"), "Basic YWRtaW46Y2hhbmdlaXQ=");
    }

    #[test]
    fn responses_are_parsed_with_exact_bodies() {
        let plain = parse_response(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            false,
        )
        .unwrap();
        assert_eq!(plain.status, 404);
        assert_eq!(plain.header("content-type"), Some("application/json"));
        assert_eq!(plain.body, b"{}");
        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(chunked.body, b"abcde");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", false).is_err());
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
                false
            )
            .is_err()
        );
    }

    #[test]
    fn the_listening_line_gives_the_address_of_its_service_only() {
        let line =
            "ts=2026-11-24T09:37:18.123Z lvl=info msg=listening service=meta addr=127.0.0.1:8091";
        assert_eq!(
            listening(line, "meta"),
            Some("127.0.0.1:8091".parse().unwrap())
        );
        assert_eq!(listening(line, "gateway"), None);
        assert_eq!(
            listening(
                "ts=x lvl=info msg=\"meta request\" service=meta addr=1.2.3.4:5",
                "meta"
            ),
            None
        );
    }
}
