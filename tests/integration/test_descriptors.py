"""Running out of file descriptors (RLIMIT_NOFILE).

libuv's accept loop does not return while accept fails for lack of a
descriptor once its own reserve is gone: a worker stuck there logged a line
per try (GBs), stopped serving for good and ignored SIGTERM. gatehouse now
fits its client connections to the limit (fdlimit.c) and, when accept fails
all the same, takes the listener's handle down until descriptors are free
(worker.c). Each test starts gatehouse under a low limit, floods it with
more connections than it has descriptors, and checks that the admin API
answers, the log stays small, a request after the flood is served and
SIGTERM ends the process with status 0."""
import os
import re
import resource
import signal
import socket

import pytest

import harness
from harness import Gatehouse, RawConn, make_config
from ops_util import admin_conf, admin_get, admin_port_of, metrics, wait_admin, wait_for, wait_metric

NOFILE = 256
FLOOD = 400
WORKERS = 2
# Lines a run may log: start, stop, the warnings. The failure this guards
# against wrote millions; a bound in lines, not in time.
MAX_LOG_LINES = 300
# A soft limit below the lowest descriptor the process ever closes.
LOWERED = 6


def _limit_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture
def limited(tmp_path, upstream):
    """gatehouse with 2 workers and the admin API, started with
    RLIMIT_NOFILE = NOFILE (soft and hard). Torn down by the test itself."""
    started = []

    def make():
        up = upstream()
        cfg = make_config([up])
        cfg["admin"] = admin_conf()
        g = Gatehouse(cfg, tmp_path, workers=WORKERS, preexec_fn=_limit_nofile)
        started.append(g)
        g.wait_ready()
        g.admin = admin_port_of(cfg)
        wait_admin(g.admin)
        return g, up

    yield make
    harness.close_all_conns()
    for g in started:
        if g.alive():
            g.proc.kill()
            g.proc.wait(timeout=10)
        g._close_files()


def _flood(port, n=FLOOD):
    """n client connections, each with a complete request sent (so each
    accepted one also takes an upstream connection); none is read."""
    socks = []
    for i in range(n):
        s = socket.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(RawConn.build("GET", f"/flood/{i}"))
        socks.append(s)
    return socks


def _close(socks):
    for s in socks:
        s.close()


def _log_lines(g):
    return g.stderr.count("\n")


def _cap_from_log(g):
    m = re.search(r"RLIMIT_NOFILE is (\d+): with (\d+) workers, each takes at most (\d+) client "
                  r"connections over all listeners \(two descriptors each, with its upstream\), "
                  r"not the (\d+) their max_connections allow", g.stderr)
    assert m, f"no RLIMIT_NOFILE warning in the log:\n{g.stderr_tail()}"
    assert int(m.group(1)) == NOFILE and int(m.group(2)) == WORKERS and int(m.group(4)) == 10000, m
    return int(m.group(3))


def _live(g):
    r = admin_get(g.admin, "/live", timeout=10)
    assert r.status == 200, r
    return r


def _served_after(g, up, name):
    r = harness.fetch(g.port, "GET", f"/after/{name}", timeout=30)
    assert r.status == 200 and r.json()["target"] == f"/after/{name}", r
    assert up.targets().count(f"/after/{name}") == 1


def _sigterm_exits_0(g):
    g.proc.send_signal(signal.SIGTERM)
    try:
        rc = g.proc.wait(timeout=30)
    except Exception:
        raise AssertionError(f"gatehouse ignored SIGTERM for 30s\n{g.stderr_tail()}")
    assert rc == 0, f"exit status {rc}\n{g.stderr_tail()}"


def test_connections_fitted_to_the_descriptor_limit(limited):
    """Under RLIMIT_NOFILE 256 each worker takes only the connections the
    limit can hold (two descriptors each) and leaves the rest of a flood in
    the backlog: nothing fails to accept, the admin API answers, and the
    flood's requests that got in are exactly the accepted connections'."""
    g, up = limited()
    socks = _flood(g.port)
    try:
        wait_for(lambda: any(t.startswith("/flood/") for t in up.targets()), 30,
                 "a flood request upstream")
        _live(g)
        # The process never ran out: neither the workers nor the admin API.
        assert "open files" not in g.stderr and "out of descriptors" not in g.stderr, g.stderr_tail()
        cap = _cap_from_log(g)
        assert 1 <= cap < 10000
        wait_metric(g.admin, "gatehouse_downstream_connections_active", WORKERS * cap,
                    timeout=30, listener="edge")
        wait_for(lambda: len([t for t in up.targets() if t.startswith("/flood/")]) == WORKERS * cap,
                 30, "the accepted connections' requests upstream")
        _live(g)
        m = metrics(g.admin)
        assert m.value("gatehouse_downstream_connections_active", listener="edge") == WORKERS * cap
        assert m.value("gatehouse_downstream_accept_pauses_total", listener="edge") >= 1
        assert m.value("gatehouse_downstream_connections_refused_total", listener="edge") == 0
        assert "open files" not in g.stderr, g.stderr_tail()
        assert len([t for t in up.targets() if t.startswith("/flood/")]) == WORKERS * cap
    finally:
        _close(socks)
    _served_after(g, up, "fitted")
    _live(g)
    # A reload fits the new generation to the limit the same way.
    g.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "generation 2 serving" in g.stderr, 30, "the reload")
    assert g.stderr.count(f"each takes at most {cap} client connections") == 2, g.stderr_tail()
    _served_after(g, up, "reloaded")
    assert _log_lines(g) < MAX_LOG_LINES, g.stderr_tail()
    _sigterm_exits_0(g)
    assert _log_lines(g) < MAX_LOG_LINES, g.stderr_tail()


def _open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_accept_out_of_descriptors_does_not_spin(limited):
    """The limit lowered under the running process, below every descriptor
    number it could give back (the soft limit bounds descriptor numbers, and
    the process keeps its low ones: standard streams, loops): no accept can
    succeed, neither libuv's reserve nor the worker's helps. The workers log
    that at most once a second each, keep running their loops (a raised
    limit is used again: the flood that waited in the backlogs is served up
    to the cap) and stop on SIGTERM."""
    g, up = limited()
    assert _open_fds(g.pid) > LOWERED
    resource.prlimit(g.pid, resource.RLIMIT_NOFILE, (LOWERED, NOFILE))
    socks = []
    try:
        socks = _flood(g.port)
        wait_for(lambda: g.stderr.count("accept on 127.0.0.1") >= WORKERS, 30,
                 "each worker's accept error line")
        lines_out = _log_lines(g)
        assert lines_out < MAX_LOG_LINES, g.stderr_tail()
        # The operator raises the limit again: the workers are in their loops,
        # so they reopen their listeners and take the backlog up to the cap.
        resource.prlimit(g.pid, resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        wait_for(lambda: admin_get(g.admin, "/live", timeout=5).status == 200, 30, "/live")
        cap = _cap_from_log(g)
        wait_metric(g.admin, "gatehouse_downstream_connections_active", WORKERS * cap,
                    timeout=30, listener="edge")
        wait_for(lambda: len([t for t in up.targets() if t.startswith("/flood/")]) == WORKERS * cap,
                 30, "the accepted connections' requests upstream")
        assert _log_lines(g) < MAX_LOG_LINES, g.stderr_tail()
    finally:
        _close(socks)
    _served_after(g, up, "recovered")
    errors = re.findall(r"accept on \S+: too many open files \((\d+) more", g.stderr)
    assert errors, g.stderr_tail()
    _sigterm_exits_0(g)
    assert _log_lines(g) < MAX_LOG_LINES, g.stderr_tail()
