"""A real redis-server for integration tests, and a tiny RESP client.

RedisServer starts Debian's redis-server on a free loopback port in a
temporary directory, without persistence, and can stop, kill (SIGKILL),
restart on the same port (empty: nothing was saved), pause (SIGSTOP: the
kernel still accepts connections, nothing is answered) and resume it, for
fault tests. A missing redis-server is a test failure, never a skip
(scripts/deps test installs it); $GH_REDIS_SERVER names another binary.

    srv = RedisServer(); srv.start()
    srv.cmd("SET", "k", "v"); srv.cmd("GET", "k") == b"v"
    srv.kill(); srv.restart(); srv.pause(); srv.resume(); srv.stop()
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest


class RedisError(Exception):
    """An error reply (-ERR ...)."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError(f"bad reply line {line!r}")


class RedisServer:
    def __init__(self, *extra_args, port=None):
        self.extra_args = [str(a) for a in extra_args]
        self.port = port
        self.proc = None
        self.paused = False
        self.dir = None
        self.password = None
        if "--requirepass" in self.extra_args:
            self.password = self.extra_args[self.extra_args.index("--requirepass") + 1]
        self._sock = None
        self._reader = None

    # ---- process ----

    @staticmethod
    def binary():
        env = os.environ.get("GH_REDIS_SERVER")
        path = env or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(path, os.X_OK):
            pytest.fail("redis-server not found (run scripts/deps test)", pytrace=False)
        return path

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self):
        return os.path.join(self.dir, "redis.log")

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _spawn(self):
        args = [
            self.binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.dir,
            "--logfile", self.log_path, "--daemonize", "no",
            "--protected-mode", "no", "--enable-debug-command", "yes",
        ] + self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.paused = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            if self._answers():
                return True
            time.sleep(0.01)
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        return False

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(encode("PING"))
                return s.recv(1)[:1] in (b"+", b"-")
        except OSError:
            return False

    def start(self):
        """Starts on a free port (or the one given). Returns self."""
        self.binary()  # fails the test first when there is none
        self.dir = tempfile.mkdtemp(prefix="gh-redis-")
        fixed = self.port is not None
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            if self._spawn():
                return self
        log = self.log()
        self.stop()
        pytest.fail(f"redis-server did not start on port {self.port}:\n{log}", pytrace=False)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        """SIGSTOP: connections are accepted by the kernel, never answered."""
        if self.alive() and not self.paused:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
            self.paused = False

    def kill(self):
        """SIGKILL: gone at once, its connections closed by the kernel."""
        self._drop_conn()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.paused = False

    def restart(self):
        """A new, empty server on the same port."""
        self.kill()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._spawn():
                return self
            time.sleep(0.05)
        pytest.fail(f"redis-server did not restart on port {self.port}:\n{self.log()}",
                    pytrace=False)

    def stop(self):
        self._drop_conn()
        if self.proc is not None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ---- commands ----

    def _drop_conn(self):
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._reader = None

    def cmd(self, *args, timeout=10):
        """One command on a kept connection; an error reply raises
        RedisError; a broken connection is reopened on the next call."""
        try:
            if self._sock is None:
                self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
                self._reader = _Reader(self._sock)
                if self.password is not None:
                    self._sock.sendall(encode("AUTH", self.password))
                    r = self._reader.reply()
                    if isinstance(r, RedisError):
                        raise r
            self._sock.settimeout(timeout)
            self._sock.sendall(encode(*args))
            r = self._reader.reply()
        except (OSError, ConnectionError):
            self._drop_conn()
            raise
        if isinstance(r, RedisError):
            raise r
        return r
