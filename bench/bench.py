#!/usr/bin/env python3
"""`make bench`: kapauth against nginx, on loopback, with wrk. Standard library only.

Started by bench/run.sh, which installs the tools, builds kapauth, makes the work
directory and removes it (and kills any PID listed in its pid file) on exit. See
bench/README.md for what is measured and how to read the table.
"""

import base64
import csv
import http.client
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import idle

USER, PASSWORD = "admin", "changeit"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PATH = "/kapacitor/v1/tasks"
BODY_BYTES = 1024
START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 5
IDLE_TIMEOUT_S = 120
WRK_TIMEOUT = "30s"  # wrk's per-request timeout: bcrypt at c64 waits ~3 s per answer

# key, name, description, needs the Basic header
CONTENDERS = [
    ("A", "nginx-proxy", "nginx reverse proxy, no auth", False),
    ("B", "nginx-md5", "nginx auth_basic, apr1 (MD5) htpasswd", True),
    ("C", "nginx-bcrypt", "nginx auth_basic, bcrypt cost 10 htpasswd", True),
    ("D", "kapauth-auth", "kapauth, auth on, cached user", True),
    ("E", "kapauth-noauth", "kapauth, auth off", False),
]

# Targets: (label, contender, concurrency or None, how it is checked)
RPS_VS_NGINX = 0.6
P50_VS_NGINX = 1.5
AUTH_VS_NOAUTH = 0.95
IDLE_CONNS_TARGET = 1000
IDLE_RSS_TARGET_KIB = 32 * 1024


def log(msg):
    print(msg, flush=True)


def env_int(name, default, minimum):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not a whole number")
    if value < minimum:
        sys.exit(f"bench: {name}={raw!r} must be at least {minimum}")
    return value


def env_contenders():
    raw = os.environ.get("BENCH_CONTENDERS", "").strip()
    if not raw:
        return [c[0] for c in CONTENDERS]
    chosen = []
    for word in re.split(r"[,\s]+", raw):
        if not word:
            continue
        match = [c[0] for c in CONTENDERS if word.upper() == c[0] or word.lower() == c[1]]
        if not match:
            names = ", ".join(f"{c[0]}={c[1]}" for c in CONTENDERS)
            sys.exit(f"bench: BENCH_CONTENDERS: unknown contender {word!r}; known: {names}")
        if match[0] not in chosen:
            chosen.append(match[0])
    return [c[0] for c in CONTENDERS if c[0] in chosen]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clk_us(ticks):
    return ticks * 1_000_000 / os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(ppid, utime+stime in clock ticks) of pid, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st and st[0] == pid:
                kids.append(int(entry))
    return kids


def vm_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss_kib(pid, tries=20, pause_s=0.05):
    """VmRSS once two readings in a row agree; at most tries readings (bounded)."""
    last = vm_rss_kib(pid)
    for _ in range(tries):
        time.sleep(pause_s)
        now = vm_rss_kib(pid)
        if now == last:
            return now
        last = now
    return last


class Proc:
    """A server this script started (pinned with taskset), with its log."""

    registry = []

    def __init__(self, name, argv, logfile, pidfile, stderr_pipe=False):
        self.name = name
        self.logfile = logfile
        self.listening = {}
        self.cond = threading.Condition()
        self.eof = False
        self.extra_pids = set()
        self.pidfile = pidfile
        log(f"  start {name}: {shlex.join(argv)}")
        if stderr_pipe:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self.reader = threading.Thread(target=self._read_stderr, daemon=True)
            self.reader.start()
        else:
            with open(logfile, "ab") as out:
                self.popen = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
        self.pid = self.popen.pid
        Proc.registry.append(self)
        self._record_pid(self.pid)

    def _record_pid(self, pid):
        with open(self.pidfile, "a") as f:
            f.write(f"{pid}\n")

    def _read_stderr(self):
        pattern = re.compile(rb"msg=listening service=(\S+) addr=(\S+)")
        with open(self.logfile, "ab") as out:
            for line in self.popen.stderr:
                out.write(line)
                out.flush()
                m = pattern.search(line)
                if m:
                    with self.cond:
                        self.listening[m.group(1).decode()] = m.group(2).decode()
                        self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_listening(self, services, timeout_s):
        """Waits for a `msg=listening service=S` line for each of services. Returns the
        addresses by service, or None if the process exited first; raises on timeout."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not all(s in self.listening for s in services):
                if self.eof:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(
                        f"{self.name}: no 'msg=listening' line for {services} within "
                        f"{timeout_s}s; log: {self.logfile}"
                    )
                self.cond.wait(left)
            return dict(self.listening)

    def pids(self):
        """The process and, for nginx, its workers (children of the master)."""
        pids = [self.pid] + children(self.pid)
        for pid in pids[1:]:
            if pid not in self.extra_pids:
                self.extra_pids.add(pid)
                self._record_pid(pid)
        return pids

    def cpu_ticks(self):
        total = 0
        for pid in self.pids():
            st = proc_stat(pid)
            if st:
                total += st[1]
        return total

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=20):
        try:
            return "\n".join(Path(self.logfile).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.alive():
            self.pids()  # remember the workers, should the master need a SIGKILL
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"  {self.name} (pid {self.pid}) did not stop on SIGTERM: SIGKILL")
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT_S)
        for pid in self.extra_pids:
            st = proc_stat(pid)
            if st and st[0] in (self.pid, 1):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.popen.stderr:
            self.reader.join(STOP_TIMEOUT_S)  # the pipe's EOF ends it once the process is gone
            if not self.reader.is_alive():
                self.popen.stderr.close()
        if self in Proc.registry:
            Proc.registry.remove(self)
        # run.sh's trap kills what the pid file lists: list only what still runs.
        with open(self.pidfile, "w") as f:
            for p in Proc.registry:
                f.writelines(f"{pid}\n" for pid in [p.pid, *p.extra_pids])

    @classmethod
    def stop_all(cls):
        for p in list(reversed(cls.registry)):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log(f"  stopping {p.name}: {e}")


def http_get(port, headers, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", PATH, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def wait_port(proc, port, timeout_s):
    """Bounded wait until port accepts a connection; fails early if proc exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.log_tail()}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name}: port {port} not accepting after {timeout_s}s")
            time.sleep(0.02)


def preflight(name, port, needs_auth):
    """An exact 200 with the 1 KiB JSON body, and a 401 without credentials where auth is on."""
    headers = {"Authorization": BASIC} if needs_auth else {}
    status, ctype, body = http_get(port, headers)
    if status != 200 or len(body) != BODY_BYTES or "application/json" not in ctype:
        raise RuntimeError(
            f"{name}: preflight GET {PATH} gave {status} {ctype!r} with {len(body)} bytes; "
            f"want 200 application/json with {BODY_BYTES} bytes: {body[:200]!r}"
        )
    if needs_auth:
        status, _, _ = http_get(port, {})
        if status != 401:
            raise RuntimeError(f"{name}: an unauthenticated GET gave {status}, not 401")


def upstream_body():
    task = (
        '{"id":"cpu_alert_%03d","type":"stream","status":"enabled","executing":true,'
        '"dbrps":[{"db":"telegraf","rp":"autogen"}]}'
    )
    tasks = []
    while True:
        candidate = '{"tasks":[' + ",".join(tasks + [task % len(tasks)]) + '],"pad":""}'
        if len(candidate) > BODY_BYTES:
            break
        tasks.append(task % len(tasks))
    body = '{"tasks":[' + ",".join(tasks) + '],"pad":""}'
    body = body[:-2] + "x" * (BODY_BYTES - len(body)) + '"}'
    assert len(body) == BODY_BYTES and json.loads(body)
    assert "'" not in body and "$" not in body and "\\" not in body
    return body


NGINX_COMMON = """\
user root;
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
{body}
}}
"""

NGINX_UPSTREAM = """\
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      default_type application/json;
      return 200 '{payload}';
    }}
  }}
"""

NGINX_PROXY = """\
  upstream kapacitor {{
    server 127.0.0.1:{upstream};
    keepalive 64;
    keepalive_requests 10000000;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
{auth}      proxy_pass http://kapacitor;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
"""


class Bench:
    def __init__(self):
        self.work = Path(os.environ["BENCH_WORK"])
        self.out = Path(os.environ["BENCH_OUT"])
        self.kapauth = os.environ["BENCH_KAPAUTH_BIN"]
        self.pidfile = self.work / "pids"
        self.rounds = env_int("BENCH_ROUNDS", 5, 1)
        self.seconds = env_int("BENCH_SECONDS", 6, 1)
        conc = os.environ.get("BENCH_CONCURRENCY", "16,64")
        try:
            self.concurrency = [int(c) for c in re.split(r"[,\s]+", conc.strip()) if c]
        except ValueError:
            self.concurrency = []
        if not self.concurrency or min(self.concurrency) < 1:
            sys.exit(f"bench: BENCH_CONCURRENCY={conc!r} is not a list of connection counts")
        self.idle_conns = env_int("BENCH_IDLE_CONNS", IDLE_CONNS_TARGET, 0)
        self.chosen = env_contenders()
        two = (os.cpu_count() or 1) >= 2
        self.cpu_load, self.cpu_server = ("0", "1") if two else ("0", "0")
        if not two:
            log("bench: WARNING: one CPU only; wrk and the servers share CPU 0")
        self.servers = {}  # key -> (Proc, port)
        self.runs = []

    # ---- servers ---------------------------------------------------------------------

    def pinned(self, argv):
        return ["taskset", "-c", self.cpu_server] + argv

    def start_nginx(self, name, body):
        d = self.work / name
        d.mkdir()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_COMMON.format(dir=d, body=body))
        argv = self.pinned(["nginx", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)])
        return Proc(name, argv, d / "stdout.log", self.pidfile)

    def start_upstream(self):
        port = free_port()
        payload = upstream_body()
        proc = self.start_nginx("upstream", NGINX_UPSTREAM.format(port=port, payload=payload))
        wait_port(proc, port, START_TIMEOUT_S)
        status, ctype, body = http_get(port, {})
        if status != 200 or len(body) != BODY_BYTES or ctype != "application/json":
            raise RuntimeError(f"upstream answers {status} {ctype!r} {len(body)} bytes")
        self.upstream_port = port
        return proc

    def htpasswd(self, name, flags):
        path = self.work / f"{name}.htpasswd"
        subprocess.run(
            ["htpasswd", "-b", "-c", *flags, str(path), USER, PASSWORD],
            check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return path

    def start_nginx_contender(self, key, name):
        auth = ""
        if key == "B":
            auth = f'      auth_basic "kapacitor";\n      auth_basic_user_file {self.htpasswd(name, ["-m"])};\n'
        elif key == "C":
            auth = (
                f'      auth_basic "kapacitor";\n'
                f'      auth_basic_user_file {self.htpasswd(name, ["-B", "-C", "10"])};\n'
            )
        port = free_port()
        body = NGINX_PROXY.format(upstream=self.upstream_port, port=port, auth=auth)
        proc = self.start_nginx(name, body)
        wait_port(proc, port, START_TIMEOUT_S)
        return proc, port

    def start_kapauth(self, name, auth_on, extra=()):
        """Starts kapauth on port 0 with the embedded meta store in a directory of its own.
        Returns (proc, gateway port, meta address or None), or (None, returncode, log tail)
        when it exits before listening."""
        d = self.work / name
        d.mkdir(exist_ok=True)
        conf = d / "kapauth.conf"
        conf.write_text("# bench: every setting comes from --set\n")
        sets = {
            "http.bind-address": "127.0.0.1:0",
            "http.auth-enabled": "true" if auth_on else "false",
            "http.log-enabled": "false",
            "gateway.upstream": f"http://127.0.0.1:{self.upstream_port}",
            "meta.dir": str(d / "meta"),
            "meta.bind-address": "127.0.0.1:0",
            "meta.bcrypt-cost": "10",
        }
        sets.update(dict(extra))
        argv = [self.kapauth, "serve", "--config", str(conf)]
        for k, v in sets.items():
            argv += ["--set", f"{k}={v}"]
        proc = Proc(name, self.pinned(argv), d / "stderr.log", self.pidfile, stderr_pipe=True)
        addrs = proc.wait_listening(["gateway"], START_TIMEOUT_S)
        if addrs is None:
            rc = proc.popen.wait(STOP_TIMEOUT_S)
            tail = proc.log_tail()
            proc.stop()
            return None, rc, tail
        meta = None
        if auth_on:
            addrs = proc.wait_listening(["gateway", "meta"], START_TIMEOUT_S)
            if addrs is None:
                raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
            meta = addrs["meta"]
            self.bootstrap_admin(meta)
        port = int(addrs["gateway"].rsplit(":", 1)[1])
        return proc, port, meta

    def bootstrap_admin(self, meta):
        host, port = meta.rsplit(":", 1)
        steps = [
            ({}, {"action": "create", "user": {"name": USER, "password": PASSWORD}}),
            (
                {"Authorization": BASIC},
                {
                    "action": "add-permissions",
                    "user": {"name": USER, "permissions": {"": ["KapacitorAPI", "KapacitorConfigAPI"]}},
                },
            ),
        ]
        for headers, doc in steps:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                conn.request(
                    "POST", "/user", body=json.dumps(doc),
                    headers={"Content-Type": "application/json", **headers},
                )
                resp = conn.getresponse()
                text = resp.read()
            finally:
                conn.close()
            if resp.status // 100 != 2:
                raise RuntimeError(f"meta {doc['action']}: {resp.status} {text[:300]!r}")

    def start_contenders(self):
        for key, name, desc, needs_auth in CONTENDERS:
            if key not in self.chosen:
                continue
            if key in "ABC":
                proc, port = self.start_nginx_contender(key, name)
            else:
                proc, port, _meta = self.start_kapauth(name, auth_on=(key == "D"))
                if proc is None:
                    raise RuntimeError(f"{name} exited with code {port} before listening:\n{_meta}")
            preflight(name, port, needs_auth)  # for D this also puts the user in the cache
            self.servers[key] = (proc, port)
            log(f"  ready {key} {name} on 127.0.0.1:{port} ({desc})")

    # ---- load ------------------------------------------------------------------------

    def run_wrk(self, key, conc, rnd):
        _, name, _, needs_auth = next(c for c in CONTENDERS if c[0] == key)
        proc, port = self.servers[key]
        argv = [
            "taskset", "-c", self.cpu_load, "wrk", "-t1", f"-c{conc}", f"-d{self.seconds}s",
            "--timeout", WRK_TIMEOUT, "-s", str(Path(__file__).with_name("report.lua")),
        ]
        if needs_auth:
            argv += ["-H", f"Authorization: {BASIC}"]
        argv.append(f"http://127.0.0.1:{port}{PATH}")
        cpu0 = proc.cpu_ticks()
        t0 = time.monotonic()
        wrk = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Which of wrk's connections get no answer in the middle half of the run.
            sleep_until(t0 + self.seconds / 4)
            first = client_bytes(port)
            sleep_until(t0 + self.seconds * 3 / 4)
            second = client_bytes(port)
            stdout, stderr = wrk.communicate(timeout=self.seconds + 60)
        except BaseException:
            wrk.kill()
            wrk.wait()
            raise
        cpu1 = proc.cpu_ticks()
        stalled = sum(1 for c, n in first.items() if second.get(c) == n)
        res = subprocess.CompletedProcess(argv, wrk.returncode, stdout, stderr)
        if not proc.alive():
            raise RuntimeError(f"{name} died during the run:\n{proc.log_tail()}")
        m = re.search(r"^BENCH_RESULT (.*)$", res.stdout, re.M)
        if res.returncode != 0 or not m:
            raise RuntimeError(
                f"wrk against {name} failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        fig = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        requests = int(fig["requests"])
        errors = sum(int(fig[k]) for k in fig if k.startswith("err_"))
        cpu_us = clk_us(cpu1 - cpu0)
        run = {
            "round": rnd,
            "concurrency": conc,
            "contender": key,
            "name": name,
            "requests": requests,
            "duration_s": round(fig["duration_us"] / 1e6, 3),
            "rps": round(requests / (fig["duration_us"] / 1e6), 1),
            # wrk reports 0 for the percentiles of a run without answers.
            "p50_us": int(fig["p50_us"]) if requests else None,
            "p90_us": int(fig["p90_us"]) if requests else None,
            "p99_us": int(fig["p99_us"]) if requests else None,
            "max_us": int(fig["max_us"]) if requests else None,
            "mean_us": fig["mean_us"] if requests else None,
            "err_connect": int(fig["err_connect"]),
            "err_read": int(fig["err_read"]),
            "err_write": int(fig["err_write"]),
            "err_status": int(fig["err_status"]),
            "err_timeout": int(fig["err_timeout"]),
            "errors": errors,
            "cpu_us": round(cpu_us),
            "cpu_us_per_req": round(cpu_us / requests, 2) if requests else None,
            "stalled_conns": stalled,
        }
        self.runs.append(run)
        cpu = f"{run['cpu_us_per_req']:.1f}" if requests else "-"
        log(
            f"  round {rnd}/{self.rounds} c{conc:<3} {key} {name:<15} {run['rps']:>9.0f} req/s  "
            f"p50 {fmt(run['p50_us']):>9} us  p99 {fmt(run['p99_us']):>9} us  cpu {cpu:>7} us/req"
            + (f"  {stalled} of {conc} conns stalled" if stalled else "")
        )
        if requests == 0 and not errors:
            log(
                f"  !!!!! NO ANSWER in {name} c{conc} round {rnd} within {self.seconds}s: "
                "req/s 0, no latency figures !!!!!"
            )
        if errors:
            log(
                f"  !!!!! ERRORS in {name} c{conc} round {rnd}: {requests} requests, "
                f"answers >= 400 {run['err_status']}, connect {run['err_connect']}, "
                f"read {run['err_read']}, write {run['err_write']}, timeout {run['err_timeout']}"
                " -- THIS RUN IS NOT A RESULT !!!!!"
            )
        # A server still busy with the requests of wrk's closed connections (nginx bcrypt
        # hashes each queued request: seconds of CPU) would slow the next run on its CPU.
        self.quiesce([proc, self.upstream])

    def quiesce(self, procs, timeout_s=60, window=5):
        """Bounded wait until procs have used at most one clock tick of CPU over the last
        `window` readings 100 ms apart (at most 2% of a CPU: idle, not merely descheduled
        for a moment by other work on the machine)."""
        t0 = time.monotonic()
        readings = [sum(p.cpu_ticks() for p in procs)]
        while time.monotonic() - t0 < timeout_s:
            time.sleep(0.1)
            readings.append(sum(p.cpu_ticks() for p in procs))
            if len(readings) > window and readings[-1] - readings[-1 - window] <= 1:
                waited = time.monotonic() - t0 - window * 0.1
                if waited > 1:
                    log(f"  (waited {waited:.1f} s for {procs[0].name} to go idle)")
                return
        log(f"  WARNING: {', '.join(p.name for p in procs)} still busy after {timeout_s}s")

    # ---- idle connections -------------------------------------------------------------

    def idle_rss(self):
        n = self.idle_conns
        log(f"idle connections: a fresh kapauth (auth on), {n} keep-alive connections")
        many = [("http.max-connections-per-client", "2048"), ("http.max-connections", "4096")]
        proc, port, meta = self.start_kapauth("kapauth-idle", True, many)
        keys = "with --set http.max-connections-per-client=2048 --set http.max-connections=4096"
        if proc is None:
            rc, tail = port, meta
            if rc != 1:
                raise RuntimeError(f"kapauth-idle exited with code {rc}:\n{tail}")
            keys = "without the max-connections keys (this binary refuses them: exit code 1)"
            log(f"  kapauth refused the max-connections keys (exit 1: {tail.strip()[-160:]})")
            shutil.rmtree(self.work / "kapauth-idle", ignore_errors=True)
            proc, port, meta = self.start_kapauth("kapauth-idle", True)
            if proc is None:
                raise RuntimeError(f"kapauth-idle exited with code {port}:\n{meta}")
        log(f"  kapauth run {keys}")
        before = settled_rss_kib(proc.pid)
        t0 = time.monotonic()
        # One connection at a time: this measures memory per idle connection; how a
        # server copes with many handshakes at once shows in the wrk runs (stalled conns).
        socks = idle.open_idle(
            "127.0.0.1", port, n, PATH, {"Authorization": BASIC}, IDLE_TIMEOUT_S, inflight=1
        )
        try:
            took = time.monotonic() - t0
            after = settled_rss_kib(proc.pid)
            still_open = idle.count_open(socks)
        finally:
            for s in socks:
                s.close()
        proc.stop()
        result = {
            "connections": n,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "per_connection_kib": round((after - before) / n, 2) if n else None,
            "still_open": still_open,
            "open_seconds": round(took, 2),
            "keys": keys,
        }
        log(
            f"  VmRSS {before} KiB before, {after} KiB with {n} idle connections "
            f"({still_open} still open), {result['per_connection_kib']} KiB per connection"
        )
        if still_open != n:
            log(f"  !!!!! kapauth closed {n - still_open} of the {n} idle connections !!!!!")
        return result

    # ---- the whole run ----------------------------------------------------------------

    def main(self):
        raise_nofile()
        log(
            f"bench: rounds={self.rounds} seconds={self.seconds} "
            f"concurrency={','.join(map(str, self.concurrency))} contenders={','.join(self.chosen)} "
            f"idle_conns={self.idle_conns}; wrk on CPU {self.cpu_load}, servers on CPU {self.cpu_server}"
        )
        t0 = time.monotonic()
        log("starting servers")
        self.upstream = self.start_upstream()
        self.start_contenders()
        total = self.rounds * len(self.concurrency) * len(self.chosen)
        log(f"load: {total} wrk runs of {self.seconds}s")
        for rnd in range(1, self.rounds + 1):
            for conc in self.concurrency:
                for key in self.chosen:
                    self.run_wrk(key, conc, rnd)
        for key in list(self.servers):
            self.servers.pop(key)[0].stop()
        idle_result = self.idle_rss() if self.idle_conns else None
        Proc.stop_all()
        return report(self, idle_result, time.monotonic() - t0)


def sleep_until(t):
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


def client_bytes(port):
    """Bytes received so far by each established client socket to 127.0.0.1:port (wrk's)."""
    out = subprocess.run(
        ["ss", "-tniH", "state", "established", f"( dport = :{port} )"],
        capture_output=True, text=True, timeout=10,
    ).stdout
    counts = {}
    local = None
    for line in out.splitlines():
        if line[:1].isspace():
            if local:
                m = re.search(r"bytes_received:(\d+)", line)
                counts[local] = int(m.group(1)) if m else 0
                local = None
        elif line.strip():
            fields = line.split()
            local = fields[2] if len(fields) >= 4 else None
    return counts


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# ---- report ----------------------------------------------------------------------------


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def tool_version(argv):
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (res.stdout + res.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"


def report(b, idle_result, elapsed):
    names = {c[0]: c[1] for c in CONTENDERS}
    descs = {c[0]: c[2] for c in CONTENDERS}
    summary = {}
    for conc in b.concurrency:
        for key in b.chosen:
            runs = [r for r in b.runs if r["contender"] == key and r["concurrency"] == conc]
            summary[(key, conc)] = {
                "runs": len(runs),
                "flagged": sum(1 for r in runs if r["errors"]),
                "no_answer": sum(1 for r in runs if not r["requests"] and not r["errors"]),
                "errors": sum(r["errors"] for r in runs),
                "rps": med([r["rps"] for r in runs]),
                "p50_us": med([r["p50_us"] for r in runs]),
                "p99_us": med([r["p99_us"] for r in runs]),
                "cpu_us_per_req": med([r["cpu_us_per_req"] for r in runs]),
                "stalled_max": max((r["stalled_conns"] for r in runs), default=0),
            }
    # A ratio is the median over rounds of the two runs' ratio in the same round: runs that
    # close in time share the machine's state (other load, steal time on a VM), which the
    # medians of each contender taken apart do not.
    def round_ratio(key, peer, conc, field):
        pairs = []
        for r in b.runs:
            if r["contender"] != key or r["concurrency"] != conc:
                continue
            mate = next(
                (m for m in b.runs
                 if m["contender"] == peer and m["concurrency"] == conc and m["round"] == r["round"]),
                None,
            )
            if mate is not None:
                pairs.append(ratio(r[field], mate[field]))
        return med(pairs)

    for (key, conc), s in summary.items():
        has_a = ("A", conc) in summary
        s["rps_vs_A"] = round_ratio(key, "A", conc, "rps") if has_a else None
        s["p50_vs_A"] = round_ratio(key, "A", conc, "p50_us") if has_a else None

    lines = []
    add = lines.append
    add("# kapauth benchmark")
    add("")
    add(
        f"kapauth `{tool_version([b.kapauth, 'version'])}` ({b.kapauth}); "
        f"{tool_version(['nginx', '-v'])}; {tool_version(['wrk', '--version'])}."
    )
    add(
        f"{b.rounds} interleaved rounds x {b.seconds} s per run; wrk -t1 on CPU {b.cpu_load}, "
        f"every server on CPU {b.cpu_server}; GET {PATH}, 1 KiB JSON from an nginx upstream. "
        f"Medians over rounds; a ratio is the median over rounds of the ratio to A (nginx "
        f"reverse proxy) measured in the same round."
    )
    add("")
    add("| contender | conns | req/s | x A req/s | p50 us | x A p50 | p99 us | CPU us/req | stalled conns | runs | flagged |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for conc in b.concurrency:
        for key in b.chosen:
            s = summary[(key, conc)]
            flag = f"**{s['flagged']} WITH ERRORS**" if s["flagged"] else "0"
            if s["no_answer"]:
                flag += f", {s['no_answer']} without answers"
            add(
                f"| {key} {names[key]} | {conc} | {fmt(s['rps'])} | {fmt(s['rps_vs_A'], 2)} | "
                f"{fmt(s['p50_us'])} | {fmt(s['p50_vs_A'], 2)} | {fmt(s['p99_us'])} | "
                f"{fmt(s['cpu_us_per_req'], 1)} | {s['stalled_max']} | {s['runs']} | {flag} |"
            )
    add("")
    add("Contenders: " + "; ".join(f"{k} {names[k]} = {descs[k]}" for k in b.chosen) + ".")
    add(
        "Stalled conns: the most, over rounds, of wrk's connections that received no byte "
        "in the middle half of a run; where it is not 0 the figures describe fewer "
        "active connections than the column conns says."
    )
    add("")
    onoff = {}
    for conc in b.concurrency:
        both = ("D", conc) in summary and ("E", conc) in summary
        onoff[conc] = round_ratio("D", "E", conc, "rps") if both else None
    add(
        "kapauth auth-on / auth-off req/s: "
        + ", ".join(f"c{c} {fmt(onoff[c], 2)}" for c in b.concurrency)
        + "."
    )
    if idle_result:
        i = idle_result
        add(
            f"Idle connections: kapauth VmRSS {fmt(i['rss_before_kib'] / 1024, 1)} MiB fresh, "
            f"{fmt(i['rss_after_kib'] / 1024, 1)} MiB with {i['connections']} idle keep-alive "
            f"connections ({i['still_open']} still open), "
            f"{fmt(i['per_connection_kib'], 1)} KiB per connection, opened one after another "
            f"in {i['open_seconds']} s; run {i['keys']}."
        )
    add("")

    def verdict(value, limit, le):
        if value is None:
            return "n/a"
        return "PASS" if (value <= limit if le else value >= limit) else "FAIL"

    def kapauth_target(label, conc, value, limit, le, others=()):
        """A target on kapauth auth-on (D): it fails, whatever the ratio, when a D run had
        errors or left connections stalled, since its figures then describe fewer
        connections than asked. `others` are further rows whose state is noted."""
        d = summary.get(("D", conc))
        if d is None or value is None:
            return (label, "n/a", "n/a")
        measured = fmt(value, 2) + "x"
        notes = []
        for key, row in [("D", d), *others]:
            if row and row["stalled_max"]:
                notes.append(f"{key}: {row['stalled_max']} of {conc} conns stalled")
            if row and row["flagged"]:
                notes.append(f"{key}: {row['flagged']} runs with errors")
        if notes:
            measured += " (" + "; ".join(notes) + ")"
        v = verdict(value, limit, le)
        if d["stalled_max"] or d["flagged"]:
            v = "FAIL"
        return (label, measured, v)

    targets = []
    for conc in (16, 64):
        s = summary.get(("D", conc))
        targets.append(kapauth_target(
            f"kapauth auth-on req/s >= {RPS_VS_NGINX}x nginx reverse proxy, c{conc}",
            conc, s["rps_vs_A"] if s else None, RPS_VS_NGINX, False,
            [("A", summary.get(("A", conc)))],
        ))
    for conc in (16, 64):
        s = summary.get(("D", conc))
        targets.append(kapauth_target(
            f"kapauth auth-on p50 <= {P50_VS_NGINX}x nginx reverse proxy p50, c{conc}",
            conc, s["p50_vs_A"] if s else None, P50_VS_NGINX, True,
            [("A", summary.get(("A", conc)))],
        ))
    for conc in (16, 64):
        targets.append(kapauth_target(
            f"kapauth auth-on req/s >= {AUTH_VS_NOAUTH}x auth-off, c{conc}",
            conc, onoff.get(conc), AUTH_VS_NOAUTH, False, [("E", summary.get(("E", conc)))],
        ))
    label = f"kapauth with {IDLE_CONNS_TARGET:,} idle connections <= {IDLE_RSS_TARGET_KIB // 1024} MiB RSS"
    if idle_result and idle_result["connections"] == IDLE_CONNS_TARGET:
        rss = idle_result["rss_after_kib"]
        measured = fmt(rss / 1024, 1) + " MiB"
        v = verdict(rss, IDLE_RSS_TARGET_KIB, True)
        if idle_result["still_open"] != IDLE_CONNS_TARGET:
            measured += f", but only {idle_result['still_open']} still open"
            v = "FAIL"
        targets.append((label, measured, v))
    else:
        targets.append((label, "n/a", "n/a"))
    add("| target | measured | verdict |")
    add("|---|---:|---|")
    for label, value, v in targets:
        add(f"| {label} | {value} | {'**FAIL**' if v == 'FAIL' else v} |")
    flagged = sum(s["flagged"] for s in summary.values())
    if flagged:
        add("")
        add(f"**WARNING: {flagged} run(s) had socket errors or non-2xx answers; their figures "
            "are not results. See runs.csv (errors column).**")
    add("")
    add(f"Wall time of the measurements: {elapsed:.0f} s.")
    md = "\n".join(lines) + "\n"

    b.out.mkdir(parents=True, exist_ok=True)
    (b.out / "results.md").write_text(md)
    with open(b.out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(b.runs[0].keys()) if b.runs else ["round"])
        w.writeheader()
        w.writerows(b.runs)
    doc = {
        "rounds": b.rounds,
        "seconds": b.seconds,
        "summary": [
            {"contender": k, "name": names[k], "concurrency": c, **s} for (k, c), s in summary.items()
        ],
        "auth_on_vs_off": {str(c): v for c, v in onoff.items()},
        "idle": idle_result,
        "targets": [{"target": t, "measured": m, "verdict": v} for t, m, v in targets],
        "runs": b.runs,
    }
    (b.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")

    log("")
    print(md, end="")
    log("")
    log(f"results: {b.out / 'results.md'} (this table), {b.out / 'runs.csv'} (every run), "
        f"{b.out / 'results.json'} (both, as JSON)")
    if flagged:
        log(f"bench: {flagged} run(s) had errors: exit code 3")
        return 3
    if os.environ.get("BENCH_ENFORCE") == "1" and any(v == "FAIL" for _, _, v in targets):
        log("bench: BENCH_ENFORCE=1 and a target failed: exit code 4")
        return 4
    return 0


def main():
    # Started in the background by run.sh, which would leave SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench()
    try:
        return bench.main()
    except KeyboardInterrupt:
        log("bench: interrupted; stopping the servers")
        return 130
    except (RuntimeError, idle.IdleError, subprocess.SubprocessError) as e:
        log(f"bench: FAILED: {e}")
        return 1
    finally:
        # No second signal may cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Proc.stop_all()


if __name__ == "__main__":
    sys.exit(main())
