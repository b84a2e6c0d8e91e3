"""Fixtures for gatehouse's black-box tests.

Run with Debian's pytest: /usr/bin/python3 -m pytest tests/integration
The binary is $GATEHOUSE_BIN (default build/gatehouse, relative to the repo).
$GATEHOUSE_RSS_LIMIT_MIB (default 64) bounds gatehouse's RSS in the streaming
tests (with GH_SANITIZED=1 and no explicit limit, RSS is not judged);
$GATEHOUSE_TEST_TIMEOUT (default 120 s) is the per-test safety deadline.
redis_server / redis_servers start a real redis-server (redis_util.py).
"""

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Gatehouse, Upstream  # noqa: E402
from redis_util import RedisServer  # noqa: E402


@pytest.fixture(autouse=True)
def _deadline():
    """Every test (setup, call and teardown) must finish in time: SIGALRM
    raises in the main thread, which interrupts any blocking socket call."""
    limit = int(os.environ.get("GATEHOUSE_TEST_TIMEOUT", "120"))

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its {limit}s safety deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def upstream():
    """Factory: upstream(accept_mode="normal", name="up") -> a started Upstream."""
    servers = []

    def make(accept_mode="normal", name=None):
        u = Upstream(accept_mode=accept_mode, name=name or f"up{len(servers) + 1}")
        servers.append(u)
        return u

    yield make
    for u in servers:
        u.stop()


@pytest.fixture
def gatehouse(tmp_path):
    """Factory: gatehouse(config, workers=1, args=(), cli_workers=None, wait=True).

    config is a dict (the first listener gets `listen: 127.0.0.1:<free port>`
    unless it has one; `workers` is set unless present) or YAML text in which
    $PORT is replaced by a free port. Returns a ready Gatehouse (.port, .proc,
    .stderr). On teardown open client connections are closed and gatehouse
    gets SIGTERM; it must exit with status 0."""
    started = []

    def make(config, workers=1, args=(), cli_workers=None, wait=True):
        g = Gatehouse(config, tmp_path, workers=workers, args=args, cli_workers=cli_workers)
        started.append(g)
        if wait:
            g.wait_ready()
        return g

    yield make
    harness.close_all_conns()
    problems = []
    for g in started:
        if not g.alive():
            rc = g.stop()
            if rc != 0 and not getattr(g, "expect_exit", False):
                problems.append(f"gatehouse (pid {g.pid}) died during the test with status {rc}")
            continue
        rc = g.stop(signal.SIGTERM, timeout=15)
        if rc is None:
            problems.append(f"gatehouse (pid {g.pid}) did not exit within 15s of SIGTERM (killed)")
        elif rc != 0:
            problems.append(f"gatehouse (pid {g.pid}) exited with status {rc} after SIGTERM")
    for g in started:
        print(f"---- gatehouse pid {g.pid} port {g.port} stderr (tail) ----")
        print(g.stderr_tail(40))
    assert not problems, "\n".join(problems) + "\n" + "\n".join(g.stderr_tail(30) for g in started)


@pytest.fixture
def proxy(gatehouse, upstream):
    """The common setup: one upstream, a gatehouse with a catch-all route to it.
    proxy(route=..., listener=..., cluster=..., workers=1) -> (gatehouse, upstream)."""

    def make(route=None, listener=None, cluster=None, workers=1, cli_workers=None):
        up = upstream()
        cfg = harness.make_config([up], route=route, listener=listener, cluster=cluster)
        g = gatehouse(cfg, workers=workers, cli_workers=cli_workers)
        return g, up

    return make


@pytest.fixture
def redis_server():
    """A started redis-server on a free loopback port (redis_util.RedisServer:
    .port, .url, .cmd(...), .kill(), .restart(), .pause(), .resume()),
    stopped after the test. Missing redis-server fails the test."""
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def redis_servers():
    """Factory for more servers or other options:
    redis_servers("--requirepass", "pw") -> a started RedisServer."""
    started = []

    def make(*extra_args):
        srv = RedisServer(*extra_args).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
