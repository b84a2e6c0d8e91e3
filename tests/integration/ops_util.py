"""Helpers shared by the operations tests (reload, drain, admin API, metrics,
access log, tracing). Standard library only; every socket operation has a
timeout and every wait has a deadline."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import harness
from harness import free_port, to_yaml

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# Waiting


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    """Calls pred() until it returns a truthy value (returned) or timeout
    passes (AssertionError naming what, with the last value or exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
            last = v
        except (OSError, AssertionError, ValueError) as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Config files


def config_text(g, cfg):
    """YAML for cfg as the gatehouse fixture would write it for g: workers and
    drain_timeout kept from g's first config unless cfg sets them, and the
    first listener on g.port unless it has a listen address."""
    cfg = json.loads(json.dumps(cfg))
    first = _first_config(g)
    for key in ("drain_timeout", "workers"):
        if key not in cfg and key in first:
            cfg = {key: first[key], **cfg}
    for lst in cfg.get("listeners", [])[:1]:
        if "listen" not in lst:
            items = list(lst.items())
            lst.clear()
            lst.update(items[:1])
            lst["listen"] = f"127.0.0.1:{g.port}"
            lst.update(items[1:])
    return to_yaml(cfg) + "\n"


def _first_config(g):
    out = {}
    for line in g.config_text.splitlines():
        m = re.match(r"^(workers|drain_timeout): (\S+)$", line)
        if m:
            out[m.group(1)] = int(m.group(2)) if m.group(2).isdigit() else m.group(2)
    return out


def write_config(g, text, how="inplace"):
    """Replaces g's config file with text: "inplace" rewrites the file (one
    write), "rename" writes a sibling and renames it over the file."""
    path = Path(g.config_path)
    if how == "inplace":
        with open(path, "w") as f:
            f.write(text)
    elif how == "rename":
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)
    else:
        raise ValueError(how)


def sighup(g):
    g.proc.send_signal(signal.SIGHUP)


ERROR_POS = re.compile(r"\.yaml:\d+:\d+:")


def config_errors(g):
    """Lines of g's stderr that carry a file:line:col config error."""
    return [l for l in g.stderr.splitlines() if ERROR_POS.search(l)]


# --------------------------------------------------------------------------
# Small identity upstream: answers every request with its own name.


class IdentityUpstream:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 whose every response is
    200 with body = name. Counts the requests it served."""

    def __init__(self, name):
        self.name = name
        self.body = name.encode()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(512)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.requests = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._conns = set()
        self._threads = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self._conns.add(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, c):
        c.settimeout(30)
        buf = b""
        try:
            while not self._stop.is_set():
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                    continue
                head, buf = buf[:i], buf[i + 4 :]
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[n:]
                with self.lock:
                    self.requests += 1
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
                          % (len(self.body), self.body))
        except OSError:
            return
        finally:
            c.close()
            with self.lock:
                self._conns.discard(c)

    def stop(self):
        self._stop.set()
        self._t.join(5)
        self.lsock.close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)


# --------------------------------------------------------------------------
# Admin API and Prometheus text


def admin_get(port, path, token=None, method="GET", headers=(), timeout=5.0):
    hs = list(headers)
    if token is not None:
        hs.append(("Authorization", f"Bearer {token}"))
    return harness.fetch(port, method, path, headers=hs, host=f"127.0.0.1:{port}", timeout=timeout)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse_labels(s):
    out = {}
    pos = 0
    s = s.strip()
    while pos < len(s):
        m = _LABEL.match(s, pos)
        if not m:
            raise ValueError(f"bad label set {{{s}}} at {pos}")
        if m.group(1) in out:
            raise ValueError(f"duplicate label {m.group(1)} in {{{s}}}")
        out[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return out


class Metrics:
    """A parsed Prometheus text exposition."""

    def __init__(self, text):
        self.text = text
        self.samples = []  # (name, labels dict, value)
        self.types = {}
        self.helps = {}
        for ln, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        raise ValueError(f"line {ln}: bad TYPE line {line!r}")
                    if parts[2] in self.types:
                        raise ValueError(f"line {ln}: second TYPE for {parts[2]}")
                    self.types[parts[2]] = parts[3]
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise ValueError(f"line {ln}: not a sample: {line!r}")
            labels = parse_labels(m.group(3) or "")
            v = m.group(4)
            value = float({"+Inf": "inf", "-Inf": "-inf", "NaN": "nan"}.get(v, v))
            self.samples.append((m.group(1), labels, value))

    def series(self, name):
        return [(l, v) for n, l, v in self.samples if n == name]

    def get(self, name, default=None, **labels):
        """The value of the one sample of name whose labels are exactly labels."""
        found = [v for l, v in self.series(name) if l == labels]
        if len(found) > 1:
            raise AssertionError(f"{name}{labels} appears {len(found)} times")
        return found[0] if found else default

    def value(self, name, **labels):
        v = self.get(name, **labels)
        if v is None:
            have = [l for l, _ in self.series(name)]
            raise AssertionError(f"no sample {name}{labels}; series of {name}: {have}")
        return v

    def sum(self, name, **labels):
        """Sum over samples of name whose labels include labels."""
        return sum(v for l, v in self.series(name) if all(l.get(k) == x for k, x in labels.items()))

    def labelsets(self, name):
        return {tuple(sorted(l.items())) for l, _ in self.series(name)}


def metrics(admin_port, token=None):
    r = admin_get(admin_port, "/metrics", token=token)
    assert r.status == 200, r
    return Metrics(r.body.decode("utf-8"))


def wait_metric(admin_port, name, expect, token=None, timeout=10.0, **labels):
    """Polls until name{labels} == expect; returns the last Metrics."""
    box = {}

    def ok():
        m = metrics(admin_port, token)
        box["m"] = m
        box["v"] = m.get(name, **labels)
        return box["v"] == expect

    try:
        wait_for(ok, timeout, f"{name}{labels} == {expect}")
    except AssertionError:
        raise AssertionError(f"{name}{labels}: expected {expect}, last value {box.get('v')}; "
                             f"series: {box['m'].series(name) if 'm' in box else None}")
    return box["m"]


def admin_conf(port=None, **extra):
    d = {"listen": f"127.0.0.1:{port or free_port()}"}
    d.update(extra)
    return d


def admin_port_of(cfg):
    return int(cfg["admin"]["listen"].rsplit(":", 1)[1])


def wait_admin(port, timeout=10.0):
    def up():
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_for(up, timeout, f"admin listener on {port}")


# --------------------------------------------------------------------------
# Line-oriented JSON files (access log, collector output)


def read_json_lines(path):
    """Complete lines of path, parsed. A partial last line is left out."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:
        if line.strip():
            out.append(json.loads(line))
    return out


def wait_lines(path, pred=lambda recs: True, timeout=10.0, what="log lines"):
    box = {}

    def check():
        recs = read_json_lines(path)
        box["recs"] = recs
        return pred(recs)

    try:
        wait_for(check, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}\nlines in {path}: {box.get('recs')}")
    return box["recs"]


# --------------------------------------------------------------------------
# Collector stand-in


class Collector:
    def __init__(self, tmp_path, slow=None, status=None, port=None):
        self.port = port or free_port()
        self.outfile = Path(tmp_path) / f"collector-{self.port}.jsonl"
        cmd = [sys.executable if sys.executable else "/usr/bin/python3", str(HERE / "collector.py"),
               str(self.port), str(self.outfile)]
        if slow is not None:
            cmd += ["--slow", str(slow)]
        if status is not None:
            cmd += ["--status", str(status)]
        self.errpath = Path(tmp_path) / f"collector-{self.port}.stderr"
        self._err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited: {self.errpath.read_text()}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_for(up, 10, "collector to listen")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def records(self):
        return read_json_lines(self.outfile)

    def spans(self):
        return [r["span"] for r in self.records() if "span" in r]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._err.close()


def attrs(span):
    """A span's attributes as {key: python value}."""
    out = {}
    for a in span.get("attributes") or []:
        (kind, v), = a["value"].items()
        out[a["key"]] = int(v) if kind == "intValue" else v
    return out


# --------------------------------------------------------------------------
# Clients


def get(port, target, headers=(), timeout=10.0, method="GET"):
    return harness.fetch(port, method, target, headers=headers, timeout=timeout)


def connect_refused(port, timeout=1.0):
    """True if a connection to port is refused (or reset at once)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    except OSError:
        return True
    s.close()
    return False
