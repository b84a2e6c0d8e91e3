"""Helpers for gatehouse's black-box tests (standard library only).

- Gatehouse: starts `gatehouse serve` with a config written to a temp dir and
  waits until its port accepts connections.
- Upstream: a threaded raw-socket HTTP/1.1 server with its own parser that
  records every request it receives (method, target, headers in order, body
  length and sha256, trailers, framing, connection id) and answers per path.
- RawConn: a raw-socket client that sends exact bytes and parses responses
  strictly enough to check framing (length, chunked, close-delimited).
- Deterministic body data (pattern_chunks / pattern_sha256) so that large
  bodies are generated and checked while streaming, never held in memory.

Every socket operation has a timeout; nothing here waits forever.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT = 10.0
MiB = 1024 * 1024


def gatehouse_bin():
    p = Path(os.environ.get("GATEHOUSE_BIN", "build/gatehouse"))
    if not p.is_absolute():
        p = REPO / p
    return p


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Deterministic data


BLOCK_SIZE = 65536
_BLOCK = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(BLOCK_SIZE // 32))
_BLOCK2 = memoryview(_BLOCK + _BLOCK)


def pattern_chunks(n, chunk=BLOCK_SIZE, start=0):
    """Yields n bytes of the pattern (from offset start) in pieces of at most
    chunk bytes, as memoryviews (no copies)."""
    chunk = max(1, min(chunk, BLOCK_SIZE))
    off, end = start, start + n
    while off < end:
        k = min(chunk, end - off)
        o = off % BLOCK_SIZE
        yield _BLOCK2[o : o + k]
        off += k


def pattern_bytes(n, start=0):
    return b"".join(bytes(c) for c in pattern_chunks(n, start=start))


_sha_cache = {}


def pattern_sha256(n):
    if n not in _sha_cache:
        h = hashlib.sha256()
        for c in pattern_chunks(n):
            h.update(c)
        _sha_cache[n] = h.hexdigest()
    return _sha_cache[n]


# --------------------------------------------------------------------------
# YAML (block style) for configs; PyYAML is not assumed.

_PLAIN = re.compile(r"[A-Za-z0-9_/.]([A-Za-z0-9_./:-]*[A-Za-z0-9_./-])?")
_NOT_PLAIN = re.compile(
    r"^(true|false|yes|no|on|off|null|~|y|n|[-+]?[0-9._]+([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+)$",
    re.IGNORECASE,
)


def _yscalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.fullmatch(s) and not _NOT_PLAIN.fullmatch(s):
        return s
    return json.dumps(s)


def to_yaml(obj, indent=0):
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = _yscalar(k)
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(v, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_yscalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = to_yaml(item, indent + 2)
                lines.append(pad + "- " + sub[indent + 2 :])
            elif isinstance(item, dict):
                lines.append(pad + "- {}")
            elif isinstance(item, list):
                lines.append(pad + "- []")
            else:
                lines.append(pad + "- " + _yscalar(item))
    else:
        lines.append(pad + _yscalar(obj))
    return "\n".join(lines)


def make_config(upstreams=(), route=None, routes=None, listener=None, cluster=None, clusters=None):
    """A one-listener config. By default one catch-all route (prefix /) to
    cluster "app" whose endpoints are the given upstreams (Upstream objects,
    ports or "host:port" strings). `route` adds keys to the default route,
    `routes` replaces the table, `listener`/`cluster` add keys."""
    eps = []
    for u in upstreams:
        if isinstance(u, Upstream):
            eps.append(f"127.0.0.1:{u.port}")
        elif isinstance(u, int):
            eps.append(f"127.0.0.1:{u}")
        else:
            eps.append(u)
    if routes is None:
        r = {"name": "all", "match": {"path": {"prefix": "/"}}, "to": "app"}
        r.update(route or {})
        routes = [r]
    lst = {"name": "edge"}
    lst.update(listener or {})
    lst["routes"] = routes
    cfg = {"listeners": [lst]}
    if clusters is None:
        clusters = {}
        if eps:
            c = {"endpoints": eps}
            c.update(cluster or {})
            clusters["app"] = c
    if clusters:
        cfg["clusters"] = clusters
    return cfg


# --------------------------------------------------------------------------
# gatehouse process


class Gatehouse:
    _seq = 0

    def __init__(self, config, tmp_path, workers=1, args=(), cli_workers=None, preexec_fn=None):
        Gatehouse._seq += 1
        n = Gatehouse._seq
        self.port = free_port()
        if isinstance(config, dict):
            cfg = json.loads(json.dumps(config))
            if workers is not None and "workers" not in cfg:
                cfg = {"workers": workers, **cfg}
            if "drain_timeout" not in cfg:
                # Bounds teardown when a test leaves a stuck connection behind.
                cfg = {"drain_timeout": "5s", **cfg}
            if "state_dir" not in cfg:
                # What a store makes by default (state/gatehouse.db) goes to
                # the test's directory, never the source tree.
                cfg = {"state_dir": str(Path(tmp_path) / "state"), **cfg}
            for lst in cfg.get("listeners", [])[:1]:
                if "listen" not in lst:
                    items = list(lst.items())
                    lst.clear()
                    lst.update(items[:1])
                    lst["listen"] = f"127.0.0.1:{self.port}"
                    lst.update(items[1:])
                else:
                    self.port = int(str(lst["listen"]).rsplit(":", 1)[1])
            text = to_yaml(cfg) + "\n"
        else:
            text = config.replace("$PORT", str(self.port))
        self.config_text = text
        self.config_path = Path(tmp_path) / f"gatehouse-{n}.yaml"
        self.config_path.write_text(text)
        self.stderr_path = Path(tmp_path) / f"gatehouse-{n}.stderr"
        self.stdout_path = Path(tmp_path) / f"gatehouse-{n}.stdout"
        binary = gatehouse_bin()
        if not binary.exists():
            raise AssertionError(f"gatehouse binary not found at {binary} (build it, or set GATEHOUSE_BIN)")
        cmd = [str(binary), "serve", "-c", str(self.config_path)]
        if cli_workers is not None:
            cmd += ["--workers", str(cli_workers)]
        cmd += list(args)
        self.cmd = cmd
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     preexec_fn=preexec_fn)
        self.pid = self.proc.pid

    @property
    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, n=60):
        return "\n".join(self.stderr.splitlines()[-n:])

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"gatehouse exited with {rc} before listening on {self.port}\n"
                    f"config:\n{self.config_text}\nstderr:\n{self.stderr_tail()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"gatehouse not listening on {self.port} after {timeout}s\nstderr:\n{self.stderr_tail()}"
                )
            time.sleep(0.02)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig and waits; returns the exit code, or None if it had to be killed."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self._close_files()
                return None
        self._close_files()
        return self.proc.returncode

    def _close_files(self):
        for f in (self._err, self._out):
            try:
                f.close()
            except OSError:
                pass

    def rss_kib(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


class RssSampler:
    """Samples a process's VmRSS in a background thread; .max_kib."""

    def __init__(self, gh, interval=0.02):
        self.gh, self.interval = gh, interval
        self.max_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = self.gh.rss_kib()
            if v is not None:
                self.max_kib = max(self.max_kib, v)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(5)
        v = self.gh.rss_kib()
        if v is not None:
            self.max_kib = max(self.max_kib, v)


def rss_limit_kib():
    """The RSS bound for the streaming tests, or None when it cannot be
    judged: a sanitized build (GH_SANITIZED=1) keeps freed memory in ASan's
    quarantine, so its RSS says nothing about buffering. An explicit
    GATEHOUSE_RSS_LIMIT_MIB always applies."""
    if "GATEHOUSE_RSS_LIMIT_MIB" in os.environ:
        return int(float(os.environ["GATEHOUSE_RSS_LIMIT_MIB"]) * 1024)
    if os.environ.get("GH_SANITIZED") == "1":
        return None
    return 64 * 1024


# --------------------------------------------------------------------------
# Raw client


class ProtocolError(AssertionError):
    pass


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = ""
        self.headers = []  # [(name, value)] as received
        self.body = None
        self.trailers = []
        self.framing = None  # none | length | chunked | close
        self.complete = None
        self.interim = []  # 1xx responses skipped before this one
        self.raw_head = b""

    def headers_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header(self, name):
        vals = self.headers_all(name)
        if not vals:
            return None
        if len(vals) > 1:
            raise AssertionError(f"header {name} appears {len(vals)} times: {vals}")
        return vals[0]

    def has(self, name):
        return bool(self.headers_all(name))

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        b = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"..."
        return (
            f"<Response {self.version} {self.status} {self.reason!r} headers={self.headers} "
            f"framing={self.framing} complete={self.complete} body={b!r}>"
        )


def _parse_header_lines(lines):
    out = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError(f"obs-fold in response: {line!r}")
        if b":" not in line:
            raise ProtocolError(f"malformed header line {line!r}")
        k, v = line.split(b":", 1)
        if not k or k != k.strip():
            raise ProtocolError(f"bad header name {k!r}")
        out.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
    return out


_open_conns = weakref.WeakSet()


def close_all_conns():
    for c in list(_open_conns):
        c.close()


class RawConn:
    def __init__(self, port, timeout=DEFAULT_TIMEOUT, rcvbuf=None, host="127.0.0.1", source=None):
        """source: the local address to connect from (another loopback
        address, 127.0.0.2, is another client to gatehouse)."""
        self.port = port
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.closed = False
        _open_conns.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    @staticmethod
    def build(method, target, headers=(), body=None, version="HTTP/1.1", host="gatehouse.test"):
        """Request bytes. Host is added first unless host is None or headers
        has one; Content-Length is added for a bytes body unless headers frame it."""
        hs = list(headers.items() if isinstance(headers, dict) else headers)
        names = {k.lower() for k, _ in hs}
        if host is not None and "host" not in names:
            hs.insert(0, ("Host", host))
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            hs.append(("Content-Length", str(len(body))))
        head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
        data = head.encode("latin-1")
        if body is not None:
            data += body if isinstance(body, bytes) else body.encode("latin-1")
        return data

    def request(self, method, target, headers=(), body=None, version="HTTP/1.1", host="gatehouse.test"):
        self.send(self.build(method, target, headers, body, version, host))

    # -- reading

    def _recv(self, n=262144):
        if self.eof:
            return False
        try:
            d = self.sock.recv(n)
        except ConnectionResetError:
            self.reset = True
            self.eof = True
            return False
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _readline(self, cap=1 << 20):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                if b"\n" in line or b"\r" in line:
                    raise ProtocolError(f"bare CR/LF in line {line!r}")
                return line
            if len(self.buf) > cap:
                raise ProtocolError("line too long")
            if not self._recv():
                return None

    def read_head(self):
        """The next response head, or None if the connection closed cleanly
        before any byte of it."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > (1 << 20):
                raise ProtocolError("response head too long")
            if not self._recv():
                if not self.buf:
                    return None
                raise ProtocolError(f"connection closed inside a response head: {bytes(self.buf)!r}")
        raw = bytes(self.buf[:i])
        del self.buf[: i + 4]
        lines = raw.split(b"\r\n")
        for line in lines:
            if b"\n" in line or b"\r" in line:
                raise ProtocolError(f"bare CR/LF in response head: {raw!r}")
        m = re.match(rb"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ProtocolError(f"bad status line {lines[0]!r}")
        r = Response()
        r.raw_head = raw
        r.version = f"HTTP/{m.group(1).decode()}.{m.group(2).decode()}"
        r.status = int(m.group(3))
        r.reason = (m.group(4) or b"").decode("latin-1")
        r.headers = _parse_header_lines(lines[1:])
        return r

    def read_response(self, method="GET", skip_interim=True, collect=True):
        """Reads one response (1xx skipped into .interim unless skip_interim is
        False). The body is read per the framing rules; .complete is False if
        the connection ended before the framing said the body ended."""
        interim = []
        while True:
            r = self.read_head()
            if r is None:
                raise ConnectionClosed(
                    f"connection closed before a response (reset={self.reset})"
                )
            if 100 <= r.status < 200 and r.status != 101:
                r.framing, r.body, r.complete = "none", b"", True
                if skip_interim:
                    interim.append(r)
                    continue
                return r
            break
        r.interim = interim
        self._decide_framing(r, method)
        if collect:
            r.body = b"".join(bytes(c) for c in self.iter_body(r))
        return r

    def _decide_framing(self, r, method):
        te = r.headers_all("transfer-encoding")
        cl = r.headers_all("content-length")
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            r.framing = "none"
        elif te:
            codings = [t.strip().lower() for t in ",".join(te).split(",")]
            if cl:
                raise ProtocolError(f"response has both TE and CL: {r.headers}")
            r.framing = "chunked" if codings[-1] == "chunked" else "close"
        elif cl:
            vals = {v.strip() for v in ",".join(cl).split(",")}
            if len(vals) != 1 or not next(iter(vals)).isdigit():
                raise ProtocolError(f"bad response Content-Length {cl}")
            r.framing = "length"
            r.length = int(next(iter(vals)))
        else:
            r.framing = "close"

    def iter_body(self, r):
        """Yields the body of r (after read_head/_decide_framing) as it arrives."""
        r.complete = False
        if r.framing == "none":
            r.complete = True
            return
        if r.framing == "length":
            remaining = r.length
            while remaining > 0:
                if not self.buf and not self._recv():
                    return
                k = min(remaining, len(self.buf))
                out = bytes(self.buf[:k])
                del self.buf[:k]
                remaining -= k
                yield out
            r.complete = True
            return
        if r.framing == "close":
            while True:
                if self.buf:
                    out = bytes(self.buf)
                    self.buf.clear()
                    yield out
                if not self._recv():
                    break
            r.complete = not self.reset
            return
        # chunked
        while True:
            line = self._readline()
            if line is None:
                return
            size_s = line.split(b";", 1)[0].strip(b" \t")
            if not size_s or not re.match(rb"^[0-9a-fA-F]+$", size_s):
                raise ProtocolError(f"bad chunk size line {line!r}")
            size = int(size_s, 16)
            if size == 0:
                trailers = []
                while True:
                    t = self._readline()
                    if t is None:
                        return
                    if t == b"":
                        break
                    trailers.append(t)
                r.trailers = _parse_header_lines(trailers)
                r.complete = True
                return
            remaining = size
            while remaining > 0:
                if not self.buf and not self._recv():
                    return
                k = min(remaining, len(self.buf))
                out = bytes(self.buf[:k])
                del self.buf[:k]
                remaining -= k
                yield out
            while len(self.buf) < 2:
                if not self._recv():
                    return
            if self.buf[:2] != b"\r\n":
                raise ProtocolError(f"chunk data not followed by CRLF: {bytes(self.buf[:10])!r}")
            del self.buf[:2]

    def is_closed(self, timeout=5.0):
        """True if the peer closed (EOF or reset) within timeout with no
        further bytes; False if it stayed open or sent more data."""
        if self.buf:
            return False
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.reset = self.eof = True
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if not d:
            self.eof = True
            return True
        self.buf += d
        return False


class ConnectionClosed(AssertionError):
    pass


def send_in_background(sock, size, block=65536):
    """Sends `size` filler bytes on sock from a daemon thread (a body the
    peer may stop reading); a send error ends it quietly. Returns the
    started thread."""
    def pump():
        data = b"x" * block
        try:
            for _ in range(size // block):
                sock.sendall(data)
        except OSError:
            pass

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def fetch(port, method="GET", target="/", headers=(), body=None, version="HTTP/1.1",
          host="gatehouse.test", timeout=DEFAULT_TIMEOUT, source=None):
    with RawConn(port, timeout=timeout, source=source) as c:
        c.request(method, target, headers, body, version, host)
        return c.read_response(method)


def chunked(pieces, trailers=()):
    out = b""
    for p in pieces:
        if isinstance(p, str):
            p = p.encode()
        if p:
            out += f"{len(p):x}\r\n".encode() + p + b"\r\n"
    out += b"0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in trailers).encode() + b"\r\n"
    return out


def assert_refusal(resp, status, code):
    """Checks a gatehouse refusal: status, JSON content-type and body."""
    assert resp.status == status, resp
    ct = resp.header("content-type") or ""
    assert ct.split(";")[0].strip().lower() == "application/json", resp
    try:
        doc = json.loads(resp.body)
    except ValueError:
        raise AssertionError(f"refusal body is not JSON: {resp!r}")
    assert isinstance(doc, dict), doc
    assert doc.get("error") == code, doc
    assert isinstance(doc.get("detail"), str) and doc["detail"], doc
    return doc


# --------------------------------------------------------------------------
# Upstream server


class UpstreamRequest:
    def __init__(self, conn_id, index):
        self.conn_id = conn_id
        self.index = index  # position on its connection (0 = first)
        self.method = self.target = self.version = None
        self.headers = []
        self.raw_head = b""
        self.framing = None  # none | length | chunked
        self.body_len = 0
        self.body_sha256 = None
        self.body = b""  # first 1 MiB
        self.trailers = []
        self.complete = False
        self.error = None

    @property
    def path(self):
        return urlsplit(self.target).path

    @property
    def query(self):
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def headers_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header(self, name):
        vals = self.headers_all(name)
        if not vals:
            return None
        if len(vals) > 1:
            raise AssertionError(f"upstream saw header {name} {len(vals)} times: {vals}")
        return vals[0]

    def has(self, name):
        return bool(self.headers_all(name))

    def to_json(self):
        return {
            "conn_id": self.conn_id,
            "index": self.index,
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "framing": self.framing,
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "body": self.body.decode("latin-1") if self.body_len <= 65536 else None,
            "trailers": [[k, v] for k, v in self.trailers],
        }

    def __repr__(self):
        return (
            f"<UpstreamRequest conn={self.conn_id}#{self.index} {self.method} {self.target} "
            f"framing={self.framing} body_len={self.body_len} complete={self.complete} error={self.error}>"
        )


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self):
        d = self.sock.recv(262144)
        if not d:
            raise EOFError
        self.buf += d

    def read_until(self, delim, cap):
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + len(delim)]
                return out
            if len(self.buf) > cap:
                raise ValueError("line too long")
            start = max(0, len(self.buf) - len(delim) + 1)
            self.fill()

    def read_some(self, maxn):
        if not self.buf:
            self.fill()
        k = min(maxn, len(self.buf))
        out = bytes(self.buf[:k])
        del self.buf[:k]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


# Sent after a response by ?poison=1: bytes no request asked for. A proxy that
# reuses the connection would serve them as the next request's response.
POISON = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Poison: 1\r\n\r\npoison!"


class _Drop(Exception):
    """Close the connection now."""


class Upstream:
    """A real HTTP/1.1 server on 127.0.0.1 with behaviour chosen by path.

    Paths (any other path behaves as /echo):
      /echo                JSON of what it saw (UpstreamRequest.to_json)
      /bytes/N             N pattern bytes; ?mode=cl|chunked|close, &chunk=SIZE
      /hash                {"sha256", "length", "framing"} of the request body
      /slow/SECONDS        waits, then answers like /echo
      /die-mid             ?mode=cl: CL 100000 + 1000 bytes then close;
                           ?mode=chunked: one 1000-byte chunk then close
      /trailers            chunked response with trailers
      /status/N            status N (204/304 without body)
      /head-ok             Content-Length 1234 (or ?mode=chunked); HEAD gets no body
      /drop                reads the request, closes without answering
      /resp-hop            response carrying hop-by-hop headers
      /bad-response        ?kind=... a malformed response, then close
    Query flags on any path: close=1 (answer with Connection: close and close),
    close_after=1 (close silently after answering), delay_body=S (wait S
    seconds before reading the request body), interim=1xx (send that interim
    response first), poison=1 (send an unsolicited response right after, or
    poison_delay=S seconds after).
    accept_mode="close" closes every connection as soon as it is accepted.
    """

    KEEP_BODY = 1 << 20

    def __init__(self, accept_mode="normal", name="up"):
        self.name = name
        self.accept_mode = accept_mode
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.requests = []
        self.connections = 0
        self.closed_conns = 0
        self.poisons_sent = 0
        self.errors = []
        self.bytes_sent = 0
        self._conns = set()
        self._threads = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._accept_loop, daemon=True, name=f"{name}-accept")
        self._t.start()

    # -- queries for tests

    def complete_requests(self):
        with self.lock:
            return [r for r in self.requests if r.complete]

    def targets(self, complete_only=True):
        with self.lock:
            return [r.target for r in self.requests if r.complete or not complete_only]

    def conn_ids(self):
        with self.lock:
            return [r.conn_id for r in self.requests if r.complete]

    def wait_requests(self, n, timeout=DEFAULT_TIMEOUT, complete=True):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [r for r in self.requests if r.complete or not complete]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"upstream {self.name}: wanted {n} requests, saw {self.requests}")
                self.cond.wait(left)

    def stop(self):
        self._stop.set()
        self._t.join(5)
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)

    # -- server

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                self.connections += 1
                cid = self.connections
                self._conns.add(conn)
            if self.accept_mode == "close":
                conn.close()
                with self.lock:
                    self._conns.discard(conn)
                continue
            t = threading.Thread(target=self._serve, args=(conn, cid), daemon=True, name=f"{self.name}-c{cid}")
            self._threads.append(t)
            t.start()

    def _send(self, conn, data):
        conn.sendall(data)
        with self.lock:
            self.bytes_sent += len(data)

    def _serve(self, conn, cid):
        conn.settimeout(120)
        rd = _Reader(conn)
        index = 0
        try:
            while not self._stop.is_set():
                if not rd.buf:
                    try:
                        rd.fill()
                    except (EOFError, OSError):
                        return
                req = UpstreamRequest(cid, index)
                index += 1
                with self.cond:
                    self.requests.append(req)
                    self.cond.notify_all()
                try:
                    head = rd.read_until(b"\r\n\r\n", 1 << 20)
                except (EOFError, OSError, ValueError) as e:
                    req.error = f"head: {e!r}: {bytes(rd.buf[:200])!r}"
                    return
                req.raw_head = head
                try:
                    self._parse_head(req, head)
                except ValueError as e:
                    req.error = f"parse: {e}"
                    with self.lock:
                        self.errors.append(f"conn {cid}: {e}: {head[:300]!r}")
                    return
                q = req.query
                if "delay_body" in q:
                    self._stop.wait(float(q["delay_body"]))
                try:
                    self._read_body(rd, req)
                except (EOFError, OSError, ValueError) as e:
                    req.error = f"body: {e!r}"
                    return
                with self.cond:
                    req.complete = True
                    self.cond.notify_all()
                q = req.query
                if "interim" in q:
                    extra = "Link: </a.css>; rel=preload\r\n" if q["interim"] == "103" else ""
                    self._send(conn, f"HTTP/1.1 {q['interim']} Interim\r\n{extra}\r\n".encode())
                # poison without a delay: the response and the unsolicited
                # bytes leave in one segment (TCP_CORK), so the proxy reads
                # them together.
                cork = q.get("poison") == "1" and "poison_delay" not in q
                if cork:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                try:
                    keep = self._respond(conn, req)
                except _Drop:
                    return
                if q.get("poison") == "1":
                    if "poison_delay" in q:
                        self._stop.wait(float(q["poison_delay"]))
                    self._send(conn, POISON)
                    with self.cond:
                        self.poisons_sent += 1
                        self.cond.notify_all()
                if cork:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                if not keep:
                    return
        except OSError:
            return
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
            with self.cond:
                self._conns.discard(conn)
                self.closed_conns += 1
                self.cond.notify_all()

    def wait_poisons(self, n, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.poisons_sent < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("upstream did not send its unsolicited bytes")
                self.cond.wait(left)

    def wait_closed(self, n, timeout=DEFAULT_TIMEOUT):
        """Waits until at least n connections have ended; returns the count."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.closed_conns < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.closed_conns

    @staticmethod
    def _parse_head(req, head):
        lines = head.split(b"\r\n")
        for line in lines:
            if b"\n" in line or b"\r" in line:
                raise ValueError("bare CR or LF in head")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise ValueError(f"bad request line {lines[0]!r}")
        req.method, req.target, req.version = (p.decode("latin-1") for p in parts)
        for line in lines[1:]:
            if not line or line[:1] in (b" ", b"\t") or b":" not in line:
                raise ValueError(f"bad header line {line!r}")
            k, v = line.split(b":", 1)
            if k != k.strip() or not re.match(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$", k):
                raise ValueError(f"bad header name {k!r}")
            if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", v):
                raise ValueError(f"CTL in header value {v!r}")
            req.headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        te = req.headers_all("transfer-encoding")
        cl = req.headers_all("content-length")
        if te and cl:
            raise ValueError("both TE and CL")
        if te:
            if len(te) != 1 or te[0].lower() != "chunked":
                raise ValueError(f"TE {te}")
            req.framing = "chunked"
        elif cl:
            if len(cl) != 1 or not cl[0].isdigit():
                raise ValueError(f"CL {cl}")
            req.framing = "length"
            req.content_length = int(cl[0])
        else:
            req.framing = "none"

    def _read_body(self, rd, req):
        h = hashlib.sha256()
        kept = bytearray()

        def take(d):
            h.update(d)
            req.body_len += len(d)
            if len(kept) < self.KEEP_BODY:
                kept.extend(d[: self.KEEP_BODY - len(kept)])

        if req.framing == "length":
            remaining = req.content_length
            while remaining:
                d = rd.read_some(min(remaining, 1 << 20))
                take(d)
                remaining -= len(d)
        elif req.framing == "chunked":
            while True:
                line = rd.read_until(b"\r\n", 4096)
                size_s = line.split(b";", 1)[0].strip()
                if not re.match(rb"^[0-9a-fA-F]{1,15}$", size_s):
                    raise ValueError(f"bad chunk size {line!r}")
                size = int(size_s, 16)
                if size == 0:
                    while True:
                        t = rd.read_until(b"\r\n", 8192)
                        if t == b"":
                            break
                        k, _, v = t.partition(b":")
                        req.trailers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
                    break
                remaining = size
                while remaining:
                    d = rd.read_some(min(remaining, 1 << 20))
                    take(d)
                    remaining -= len(d)
                if rd.read_exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
        req.body = bytes(kept)
        req.body_sha256 = h.hexdigest()

    # -- responses

    def _head(self, status, headers, reason=None):
        reason = reason or {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found"}.get(status, "Whatever")
        return (f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")

    def _respond(self, conn, req):
        q = req.query
        path = req.path
        close = q.get("close") == "1"
        conn_hdr = [("Connection", "close")] if close else []
        client_close = any("close" in v.lower() for v in req.headers_all("connection")) or (
            req.version == "HTTP/1.0" and not any("keep-alive" in v.lower() for v in req.headers_all("connection"))
        )
        keep = not (close or client_close or q.get("close_after") == "1")
        head_req = req.method == "HEAD"

        def simple(status, body, ctype="text/plain", extra=()):
            hs = [("Content-Type", ctype), ("Content-Length", str(len(body)))] + list(extra) + conn_hdr
            self._send(conn, self._head(status, hs) + (b"" if head_req else body))

        if path.startswith("/bytes/"):
            n = int(path.split("/")[2])
            mode = q.get("mode", "cl")
            chunk = int(q.get("chunk", BLOCK_SIZE))
            hs = [("Content-Type", "application/octet-stream"), ("X-Sha256", pattern_sha256(n))]
            if mode == "cl":
                hs.append(("Content-Length", str(n)))
            elif mode == "chunked":
                hs.append(("Transfer-Encoding", "chunked"))
            elif mode == "close":
                hs.append(("Connection", "close"))
                keep = False
            self._send(conn, self._head(200, hs + conn_hdr))
            if head_req:
                return keep
            for c in pattern_chunks(n, chunk):
                if mode == "chunked":
                    self._send(conn, b"%x\r\n" % len(c) + bytes(c) + b"\r\n")
                else:
                    self._send(conn, c)
            if mode == "chunked":
                self._send(conn, b"0\r\n\r\n")
            return keep

        if path == "/hash":
            body = json.dumps({"sha256": req.body_sha256, "length": req.body_len, "framing": req.framing}).encode()
            simple(200, body, "application/json")
            return keep

        if path.startswith("/slow/"):
            self._stop.wait(float(path.split("/")[2]))
            body = json.dumps(req.to_json()).encode()
            simple(200, body, "application/json")
            return keep

        if path == "/die-mid":
            if q.get("mode", "cl") == "chunked":
                self._send(conn, self._head(200, [("Transfer-Encoding", "chunked")]))
                self._send(conn, b"3e8\r\n" + pattern_bytes(1000) + b"\r\n")
            else:
                self._send(conn, self._head(200, [("Content-Length", "100000")]))
                self._send(conn, pattern_bytes(1000))
            time.sleep(0.2)
            raise _Drop()

        if path == "/trailers":
            self._send(
                conn,
                self._head(200, [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked"),
                                 ("Trailer", "x-checksum, x-trailer-two")] + conn_hdr)
                + (b"" if head_req else b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc123\r\nx-trailer-two: 2\r\n\r\n"),
            )
            return keep

        if path.startswith("/status/"):
            st = int(path.split("/")[2])
            if st in (204, 304):
                hs = [("X-Status", str(st))]
                if st == 304:
                    hs.append(("ETag", '"v1"'))
                self._send(conn, self._head(st, hs + conn_hdr))
            else:
                simple(st, f"status {st}\n".encode(), extra=[("X-Status", str(st))])
            return keep

        if path == "/head-ok":
            if q.get("mode") == "chunked":
                self._send(conn, self._head(200, [("Transfer-Encoding", "chunked"), ("X-Head-Ok", "1")] + conn_hdr))
                if not head_req:
                    self._send(conn, chunked([pattern_bytes(1234)]))
            else:
                self._send(conn, self._head(200, [("Content-Length", "1234"), ("X-Head-Ok", "1")] + conn_hdr))
                if not head_req:
                    self._send(conn, pattern_bytes(1234))
            return keep

        if path == "/drop":
            raise _Drop()

        if path == "/resp-hop":
            hs = [("Connection", "x-resp-hop"), ("X-Resp-Hop", "1"), ("Keep-Alive", "timeout=5"),
                  ("Proxy-Authenticate", "Basic realm=x"), ("Proxy-Foo", "bar"), ("Upgrade", "foo/1"),
                  ("Trailer", "x-nothing"), ("X-Resp-Keep", "yes")]
            simple(200, b"ok", extra=hs)
            return keep

        if path == "/bad-response":
            kind = q.get("kind")
            bad = {
                "cl_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "dup_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                "bad_cl": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
                "status": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
                "garbage": b"hello there\r\n\r\n",
                "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
                "bare_lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
                "space_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
                "te_gzip_chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                "nul_value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
                "huge_head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100000 + b"\r\nContent-Length: 2\r\n\r\nok",
                "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
                "many_headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
                + b"Content-Length: 2\r\n\r\nok",
            }[kind]
            self._send(conn, bad)
            time.sleep(0.1)
            raise _Drop()

        # /echo and everything else
        body = json.dumps(req.to_json()).encode()
        simple(200, body, "application/json")
        return keep


def echo_of(resp):
    """The upstream's view of a request, from an /echo response."""
    assert resp.status == 200, resp
    return resp.json()


def hdr(pairs, name):
    """All values of name in a [[k, v], ...] list (case-insensitive)."""
    name = name.lower()
    return [v for k, v in pairs if k.lower() == name]
