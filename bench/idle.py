"""Opens many keep-alive connections, each completing one request and then left open idle.

Used by bench.py for the idle-connection memory figure. Standard library only.
"""

import selectors
import socket
import time


class IdleError(Exception):
    pass


class _Conn:
    __slots__ = ("sock", "state", "out", "buf", "status", "need")

    def __init__(self, sock, request):
        self.sock = sock
        self.state = "connect"
        self.out = request
        self.buf = b""
        self.status = None
        self.need = None  # bytes of the whole response, once the head has arrived


def _parse_head(buf):
    """Returns (status, total response length) once the head is in buf, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = None
    chunked = False
    for line in head[1:]:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-length":
            length = int(value.strip())
        elif key == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        return status, "chunked", end + 4
    return status, end + 4 + (length or 0), end + 4


def _complete(conn):
    if conn.need is None:
        parsed = _parse_head(conn.buf)
        if parsed is None:
            return False
        conn.status, conn.need, body_at = parsed
        if conn.need == "chunked":
            conn.need = ("chunked", body_at)
    if isinstance(conn.need, tuple):
        return conn.buf.endswith(b"0\r\n\r\n")
    return len(conn.buf) >= conn.need


def open_idle(host, port, count, path, headers, timeout_s, inflight=64):
    """Opens `count` connections to host:port; on each sends one GET and reads the whole
    answer, keeping at most `inflight` handshakes in progress (so the listen backlog never
    overflows). Returns the list of open sockets once the last answer has arrived; raises
    IdleError after timeout_s or on any answer other than 200."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sel = selectors.DefaultSelector()
    done = []
    started = 0
    active = 0
    deadline = time.monotonic() + timeout_s
    try:
        while len(done) < count:
            while started < count and active < inflight:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex((host, port))
                sel.register(sock, selectors.EVENT_WRITE, _Conn(sock, request))
                started += 1
                active += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise IdleError(
                    f"timed out after {timeout_s}s with {len(done)} of {count} answers"
                )
            for key, _events in sel.select(timeout=min(left, 1.0)):
                conn = key.data
                sock = conn.sock
                if conn.state == "connect":
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise IdleError(f"connection {started} failed: errno {err}")
                    conn.state = "send"
                if conn.state == "send":
                    sent = sock.send(conn.out)
                    conn.out = conn.out[sent:]
                    if not conn.out:
                        conn.state = "read"
                        sel.modify(sock, selectors.EVENT_READ, conn)
                    continue
                data = sock.recv(65536)
                if not data:
                    raise IdleError(
                        f"server closed a connection before answering ({len(done)} answered)"
                    )
                conn.buf += data
                if _complete(conn):
                    if conn.status != 200:
                        raise IdleError(f"answer {conn.status}, not 200: {conn.buf[:200]!r}")
                    sel.unregister(sock)
                    active -= 1
                    done.append(sock)
        return done
    except BaseException:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        for sock in done:
            sock.close()
        raise
    finally:
        sel.close()


def count_open(socks):
    """How many of socks the server has not closed (no EOF or error waiting on them)."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    closed = 0
    for key, _events in sel.select(timeout=0):
        try:
            if key.fileobj.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except OSError:
            closed += 1
    sel.close()
    return len(socks) - closed
