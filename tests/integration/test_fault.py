"""Fault injection (route key `fault`): a delay holds a share of requests on
a worker deadline while the worker goes on serving, an abort answers a
share locally with {"error": "fault_injected"}; both optionally only for
requests that carry a header. Checked here: the shares over thousands of
requests (within stated binomial bounds), 0% and 100%, the header
condition, that a delay really holds the request and nothing else, a
client leaving during a delay (FIN, half-close, RST), drain and reload with
requests held, the config errors, fault on a direct_response route, and
that the access log's `filter` field and gatehouse_filter_events_total
agree exactly with what the client saw."""

import math
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness import (RawConn, assert_refusal, chunked, fetch, free_port, gatehouse_bin, make_config, pattern_bytes,
                     pattern_sha256)
from ops_util import (config_text, connect_refused, metrics, sighup, wait_for, wait_lines,
                      wait_metric, write_config)

EVENTS = "gatehouse_filter_events_total"


# --------------------------------------------------------------------------
# Setup


def fault_routes(up_fault, extra_routes=()):
    """Route "flaky" (prefix /f) with the given fault, route "plain" (prefix
    /p) without, both to cluster app."""
    routes = list(extra_routes)
    if up_fault is not None:
        routes.append({"name": "flaky", "match": {"path": {"prefix": "/f"}}, "to": "app", "timeout": "60s",
                       "fault": up_fault})
    else:
        routes.append({"name": "flaky", "match": {"path": {"prefix": "/f"}}, "to": "app", "timeout": "60s"})
    routes.append({"name": "plain", "match": {"path": {"prefix": "/p"}}, "to": "app", "timeout": "60s"})
    return routes


def fault_cfg(up, fault, tmp_path, admin_port, drain_timeout="5s", extra_routes=()):
    cfg = make_config([up], routes=fault_routes(fault, extra_routes))
    cfg["drain_timeout"] = drain_timeout
    cfg["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    cfg["access_log"] = {"path": str(tmp_path / "access.log")}
    return cfg


def start(gatehouse, upstream, tmp_path, fault, workers=1, drain_timeout="5s", extra_routes=()):
    up = upstream()
    admin = free_port()
    g = gatehouse(fault_cfg(up, fault, tmp_path, admin, drain_timeout, extra_routes), workers=workers)
    g.admin = admin
    g.log_path = tmp_path / "access.log"
    return g, up


def events(g, route="flaky"):
    """(delays, aborts) counted by gatehouse for route (0 when no sample)."""
    m = metrics(g.admin)
    d = m.get(EVENTS, 0.0, filter="fault", route=route, event="delay")
    a = m.get(EVENTS, 0.0, filter="fault", route=route, event="abort")
    return int(d), int(a)


def log_by_id(g, n):
    """Waits for n access log lines; returns {id query value: record}."""
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= n, timeout=30, what=f"{n} access log lines")
    out = {}
    for r in recs:
        q = dict(p.split("=", 1) for p in (r.get("query") or "").split("&") if "=" in p)
        if "id" in q:
            assert q["id"] not in out, f"two log lines for id {q['id']}"
            out[q["id"]] = r
    return recs, out


def upstream_ids(up):
    return [r.query.get("id") for r in up.complete_requests()]


def sanitizer_clean(g):
    err = g.stderr
    for word in ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:"):
        assert word not in err, f"sanitizer report in stderr:\n{g.stderr_tail(80)}"


def stop_clean(g, timeout=20):
    """SIGTERM, exit status 0 and no sanitizer report (a leak under ASan
    also makes the exit status non-zero)."""
    rc = g.stop(signal.SIGTERM, timeout=timeout)
    assert rc == 0, f"exit status {rc}\n{g.stderr_tail(80)}"
    sanitizer_clean(g)


# --------------------------------------------------------------------------
# Bulk client: a few keep-alive connections, each pipelining batches of
# requests (in-process, no subprocess per request).


def bulk(port, ids, headers=(), conns=4, batch=25, prefix="/f/r"):
    """Sends GET {prefix}?id=ID for every id, spread over `conns` keep-alive
    connections in threads; returns {id: Response}."""
    ids = [str(i) for i in ids]
    parts = [ids[i::conns] for i in range(conns)]
    out, errors = {}, []
    lock = threading.Lock()

    def run(part):
        try:
            with RawConn(port, timeout=30) as c:
                for k in range(0, len(part), batch):
                    chunk = part[k:k + batch]
                    c.send(b"".join(RawConn.build("GET", f"{prefix}?id={i}", headers) for i in chunk))
                    for i in chunk:
                        r = c.read_response()
                        with lock:
                            out[i] = r
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(repr(e))

    ts = [threading.Thread(target=run, args=(p,), daemon=True) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join(100)
    assert not errors, errors
    assert len(out) == len(ids), (len(out), len(ids))
    return out


def is_abort(r, status=503):
    if r.status != status or not (r.header("content-type") or "").startswith("application/json"):
        return False
    assert_refusal(r, status, "fault_injected")
    return True


def binomial_bounds(n, pct):
    """Counts a Binomial(n, pct/100) draw falls in except with probability
    below 6e-7: mean +- 5 standard deviations. The tests choose n so that the
    interval excludes both 0 and n, and the neighbouring mistakes (a percent
    read 10x too large or too small), so each can fail."""
    p = pct / 100.0
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    return mean - 5 * sd, mean + 5 * sd


def assert_share(count, n, pct, what):
    lo, hi = binomial_bounds(n, pct)
    assert lo > 0 and hi < n, f"test design: the bounds for {what} cannot fail"
    assert lo <= count <= hi, f"{what}: {count} of {n}, outside [{lo:.1f}, {hi:.1f}] for {pct}%"


def check_records(g, up, resps, abort_status=503):
    """The access log, the metrics and the upstream agree exactly with what
    the client saw: aborted requests (by their JSON reply) are logged with
    fault=abort or fault=delay,abort and never reach the upstream; the rest
    reach it once each and answer 200. Returns (delayed ids, aborted ids)."""
    n = len(resps)
    aborted = {i for i, r in resps.items() if is_abort(r, abort_status)}
    for i, r in resps.items():
        if i not in aborted:
            assert r.status == 200 and r.json()["target"].endswith(f"id={i}"), r
    _, logs = log_by_id(g, n)
    assert set(logs) == set(resps), "access log ids differ from the requests sent"
    delayed = set()
    for i, rec in logs.items():
        f = rec["filter"]
        assert f in (None, "fault=delay", "fault=abort", "fault=delay,abort"), rec
        assert rec["route"] == "flaky", rec
        assert rec["status"] == resps[i].status, (rec, resps[i])
        assert (f is not None and f.endswith("abort")) == (i in aborted), (i, rec, resps[i])
        if f is not None and f.startswith("fault=delay"):
            delayed.add(i)
    got = upstream_ids(up)
    assert sorted(got) == sorted(set(resps) - aborted), "the upstream saw other requests than the non-aborted"
    d, a = events(g)
    assert (d, a) == (len(delayed), len(aborted)), f"metrics {(d, a)}, log/client {(len(delayed), len(aborted))}"
    return delayed, aborted


# --------------------------------------------------------------------------
# Shares over many requests


@pytest.mark.parametrize("pct,n,workers", [(10, 3000, 2), (0.5, 10000, 1)], ids=["10pct-2w", "0.5pct-1w"])
def test_abort_share(gatehouse, upstream, tmp_path, pct, n, workers):
    # 10% of 3000: mean 300, 5 sd = 82 -> [218, 382] (1% or 100% fail);
    # 0.5% of 10000: mean 50, 5 sd = 35 -> [15, 85] (0.05% or 5% fail).
    g, up = start(gatehouse, upstream, tmp_path, {"abort": {"status": 503, "percent": pct}}, workers=workers)
    resps = bulk(g.port, range(n))
    delayed, aborted = check_records(g, up, resps)
    assert not delayed
    assert_share(len(aborted), n, pct, "aborts")
    stop_clean(g)


def test_delay_share_and_combined(gatehouse, upstream, tmp_path):
    """Delay 25% (5ms) and abort 40%, independent draws: delayed requests are
    recognised by the metrics counter and the access log, not by timing.
    2000 requests: delays mean 500, 5 sd = 97; aborts mean 800, 5 sd = 110;
    both (10%) mean 200, 5 sd = 67."""
    n = 2000
    g, up = start(gatehouse, upstream, tmp_path,
                  {"delay": {"fixed": "5ms", "percent": 25}, "abort": {"status": 429, "percent": 40}})
    resps = bulk(g.port, range(n), conns=8, batch=10)
    delayed, aborted = check_records(g, up, resps, abort_status=429)
    assert_share(len(delayed), n, 25, "delays")
    assert_share(len(aborted), n, 40, "aborts")
    assert_share(len(delayed & aborted), n, 10, "delayed and aborted")
    _, logs = log_by_id(g, n)
    for i in delayed & aborted:
        assert logs[i]["filter"] == "fault=delay,abort", logs[i]
    stop_clean(g)


@pytest.mark.parametrize("pct", [0, 0.0], ids=["0", "0.0"])
def test_zero_percent_never(gatehouse, upstream, tmp_path, pct):
    n = 1000
    g, up = start(gatehouse, upstream, tmp_path,
                  {"delay": {"fixed": "50ms", "percent": pct}, "abort": {"status": 503, "percent": pct}})
    resps = bulk(g.port, range(n))
    delayed, aborted = check_records(g, up, resps)
    assert not delayed and not aborted
    _, logs = log_by_id(g, n)
    assert all(r["filter"] is None for r in logs.values())
    stop_clean(g)


@pytest.mark.parametrize("pct", [100, None], ids=["100", "default"])
def test_hundred_percent_always(gatehouse, upstream, tmp_path, pct):
    """percent 100, and percent left out (default 100): every request is
    delayed and then aborted."""
    n = 500
    delay, abort = {"fixed": "1ms"}, {"status": 503}
    if pct is not None:
        delay["percent"] = abort["percent"] = pct
    g, up = start(gatehouse, upstream, tmp_path, {"delay": delay, "abort": abort})
    resps = bulk(g.port, range(n), conns=8, batch=10)
    delayed, aborted = check_records(g, up, resps)
    assert len(delayed) == n and len(aborted) == n
    _, logs = log_by_id(g, n)
    assert all(r["filter"] == "fault=delay,abort" for r in logs.values())
    assert up.complete_requests() == []
    # The plain route next to it is untouched.
    r = fetch(g.port, "GET", "/p/x?id=plain")
    assert r.status == 200 and r.json()["target"] == "/p/x?id=plain", r
    assert events(g, "plain") == (0, 0)
    stop_clean(g)


# --------------------------------------------------------------------------
# Header condition


def test_abort_header_condition(gatehouse, upstream, tmp_path):
    """abort only for requests with x-abort (configured in upper case, sent
    in mixed case; any value, even empty): without it never, with it at 30%
    (2000 requests: mean 600, 5 sd = 102)."""
    g, up = start(gatehouse, upstream, tmp_path, {"abort": {"status": 503, "percent": 30, "header": "X-Abort"}})
    without = bulk(g.port, [f"n{i}" for i in range(1000)], headers=[("x-abortion", "1"), ("x-abor", "1")])
    assert all(r.status == 200 for r in without.values())
    assert events(g) == (0, 0)
    with_h = bulk(g.port, [f"h{i}" for i in range(2000)], headers=[("x-ABORT", "")])
    resps = {**without, **with_h}
    delayed, aborted = check_records(g, up, resps)
    assert not delayed
    assert aborted <= set(with_h)
    assert_share(len(aborted), 2000, 30, "aborts with the header")
    stop_clean(g)


def test_delay_header_condition(gatehouse, upstream, tmp_path):
    """delay only for requests with x-fault: without it never, with it at
    50% (2000 requests: mean 1000, 5 sd = 112). The abort next to it has no
    header condition and percent 0."""
    g, up = start(gatehouse, upstream, tmp_path, {"delay": {"fixed": "2ms", "percent": 50, "header": "x-fault"},
                                                  "abort": {"status": 503, "percent": 0}})
    without = bulk(g.port, [f"n{i}" for i in range(1000)], headers=[("x-faults", "1")])
    assert events(g) == (0, 0)
    with_h = bulk(g.port, [f"h{i}" for i in range(2000)], headers=[("X-Fault", "yes")], conns=8, batch=10)
    resps = {**without, **with_h}
    delayed, aborted = check_records(g, up, resps)
    assert not aborted
    assert delayed <= set(with_h)
    assert_share(len(delayed), 2000, 50, "delays with the header")
    stop_clean(g)


def test_draws_differ_between_runs(gatehouse, upstream, tmp_path):
    """The draws are not a fixed sequence: two processes, 200 requests each
    in the same order on one connection at 50%, abort different requests
    (the same pattern twice has probability 2^-200)."""
    patterns = []
    for run in range(2):
        g, up = start(gatehouse, upstream, tmp_path,
                      {"abort": {"status": 503, "percent": 50}})
        resps = bulk(g.port, range(200), conns=1, batch=20)
        patterns.append(tuple(resps[str(i)].status for i in range(200)))
        stop_clean(g)
        g.log_path.unlink()
    assert patterns[0] != patterns[1], "two runs aborted exactly the same requests"
    for p in patterns:
        assert 0 < p.count(503) < 200


# --------------------------------------------------------------------------
# A delay holds the request, and only it


class Arrivals:
    """Records when each request first reaches the upstream (its first bytes),
    by watching the upstream's request list."""

    def __init__(self, up):
        self.up, self.times = up, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        seen = 0
        with self.up.cond:
            while not self._stop.is_set():
                while seen < len(self.up.requests):
                    self.times.append((time.monotonic(), self.up.requests[seen]))
                    seen += 1
                self.up.cond.wait(0.05)

    def when(self, ident):
        for t, r in self.times:
            if r.query.get("id") == ident:
                return t
        return None

    def stop(self):
        self._stop.set()
        self._t.join(5)


class Sender(threading.Thread):
    """One request on its own connection; records the send time, the
    response or the exception."""

    def __init__(self, port, target, headers=(), timeout=60):
        super().__init__(daemon=True)
        self.conn = RawConn(port, timeout=timeout)
        self.target, self.headers = target, headers
        self.sent = self.resp = self.error = None
        self.done_at = None

    def run(self):
        try:
            self.sent = time.monotonic()
            self.conn.request("GET", self.target, self.headers)
            self.resp = self.conn.read_response()
        except Exception as e:  # noqa: BLE001
            self.error = e
        self.done_at = time.monotonic()


def test_delay_holds_request_worker_keeps_serving(gatehouse, upstream, tmp_path):
    g, up = start(gatehouse, upstream, tmp_path, {"delay": {"fixed": "2s"}})
    arr = Arrivals(up)
    try:
        held = Sender(g.port, "/f/held?id=held")
        held.start()
        wait_metric(g.admin, EVENTS, 1.0, filter="fault", route="flaky", event="delay")
        # The same (only) worker answers other connections meanwhile, the
        # plain route and the admin API alike.
        r = fetch(g.port, "GET", "/p/other?id=other")
        assert r.status == 200 and r.json()["target"] == "/p/other?id=other", r
        assert held.resp is None and held.error is None, "the delayed request finished before the other one"
        assert "held" not in upstream_ids(up) and arr.when("held") is None, \
            "the delayed request reached the upstream before the other one was answered"
        held.join(30)
        assert held.error is None, held.error
        assert held.resp.status == 200 and held.resp.json()["target"] == "/f/held?id=held", held.resp
        # The watcher thread records arrivals on its own schedule: under
        # load it may not have seen the upstream's request yet.
        t = wait_for(lambda: arr.when("held"), 10, "the held request's arrival recorded")
        # A generous lower bound only (the delay is 2 s); no upper bound.
        assert t - held.sent >= 1.5, (t, held.sent)
        assert upstream_ids(up) == ["other", "held"]
    finally:
        arr.stop()
    _, logs = log_by_id(g, 2)
    assert logs["held"]["filter"] == "fault=delay" and logs["held"]["status"] == 200, logs["held"]
    assert logs["other"]["filter"] is None and logs["other"]["route"] == "plain", logs["other"]
    assert events(g) == (1, 0)
    stop_clean(g)


def test_delay_then_abort_holds_then_replies(gatehouse, upstream, tmp_path):
    """Delayed and aborted: the abort comes when the delay ends, the
    upstream never sees the request, and the keep-alive connection serves
    the next request."""
    g, up = start(gatehouse, upstream, tmp_path, {"delay": {"fixed": "1s", "header": "x-d"},
                                                  "abort": {"status": 504, "header": "x-a"}})
    with RawConn(g.port, timeout=30) as c:
        t0 = time.monotonic()
        c.request("GET", "/f/x?id=both", [("x-d", "1"), ("x-a", "1")])
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert_refusal(r, 504, "fault_injected")
        assert elapsed >= 0.8, elapsed  # lower bound only: it was held
        c.request("GET", "/f/x?id=next")
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["target"] == "/f/x?id=next", r2
        c.request("GET", "/f/x?id=abort", [("x-a", "1")])
        assert_refusal(c.read_response(), 504, "fault_injected")
    _, logs = log_by_id(g, 3)
    assert logs["both"]["filter"] == "fault=delay,abort" and logs["both"]["status"] == 504, logs["both"]
    assert logs["next"]["filter"] is None, logs["next"]
    assert logs["abort"]["filter"] == "fault=abort", logs["abort"]
    assert upstream_ids(up) == ["next"]
    assert events(g) == (1, 2)
    stop_clean(g)


@pytest.mark.parametrize("mode", ["length", "chunked"])
def test_delay_keeps_request_body(gatehouse, upstream, tmp_path, mode):
    """A body sent with (and right after) a delayed head reaches the upstream
    whole once the delay ends."""
    g, up = start(gatehouse, upstream, tmp_path, {"delay": {"fixed": "500ms"}})
    n = 300000
    body = pattern_bytes(n)
    with RawConn(g.port, timeout=30) as c:
        if mode == "length":
            c.request("POST", "/f/body?id=b", body=body)
        else:
            c.request("POST", "/f/body?id=b", [("Transfer-Encoding", "chunked")],
                      body=chunked([body[:1000], body[1000:200000], body[200000:]]))
        r = c.read_response()
        assert r.status == 200, r
        seen = r.json()
        assert (seen["body_len"], seen["body_sha256"]) == (n, pattern_sha256(n)), seen
        c.request("GET", "/f/body?id=after")
        assert c.read_response().status == 200
    assert upstream_ids(up) == ["b", "after"]
    assert events(g) == (2, 0)
    stop_clean(g)


def test_delay_longer_than_timeouts_get(gatehouse, upstream, tmp_path):
    """A delay longer than the listener's header/idle/body timeouts and the
    route's timeout (which counts from sending upstream): a GET is held and
    then answered 200, not timed out."""
    up = upstream()
    admin = free_port()
    cfg = fault_cfg(up, {"delay": {"fixed": "2s"}}, tmp_path, admin)
    cfg["listeners"][0].update({"header_timeout": "1s", "idle_timeout": "1s", "body_timeout": "1s"})
    cfg["listeners"][0]["routes"][0]["timeout"] = "1s"
    g = gatehouse(cfg)
    with RawConn(g.port, timeout=30) as c:
        c.request("GET", "/f/t?id=t")
        r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/f/t?id=t", r
    stop_clean(g)


def test_delay_longer_than_body_timeout_post(gatehouse, upstream, tmp_path):
    """docs/config.md body_timeout: while gatehouse does not read the body
    (waiting for an upstream connection) the timeout does not blame the
    client; a fault delay is gatehouse not reading either. The client sent
    its whole 100-byte body with the head."""
    up = upstream()
    admin = free_port()
    cfg = fault_cfg(up, {"delay": {"fixed": "2s"}}, tmp_path, admin)
    cfg["listeners"][0]["body_timeout"] = "1s"
    g = gatehouse(cfg)
    with RawConn(g.port, timeout=30) as c:
        c.request("POST", "/f/t?id=post", body=pattern_bytes(100))
        r = c.read_response()
    assert r.status == 200, r
    assert r.json()["body_sha256"] == pattern_sha256(100), r
    stop_clean(g)


def test_abort_with_body_closes_connection(gatehouse, upstream, tmp_path):
    """An aborted request's unread body is never read as a next request:
    the reply carries connection: close (docs/architecture.md: the
    connection stays open unless a body is left unread), the connection
    closes, and a request hidden in the body never reaches the upstream."""
    g, up = start(gatehouse, upstream, tmp_path, {"abort": {"status": 503, "header": "x-a"}})
    inner = RawConn.build("GET", "/f/smuggled?id=smug")
    with RawConn(g.port, timeout=10) as c:
        c.request("POST", "/f/x?id=outer", [("x-a", "1")], body=inner)
        r = c.read_response()
        assert_refusal(r, 503, "fault_injected")
        assert [v.lower() for v in r.headers_all("connection")] == ["close"], r
        assert c.is_closed(timeout=10)
    r = fetch(g.port, "GET", "/f/y?id=fresh")
    assert r.status == 200, r
    assert upstream_ids(up) == ["fresh"]
    _, logs = log_by_id(g, 2)
    assert set(logs) == {"outer", "fresh"}
    stop_clean(g)


# --------------------------------------------------------------------------
# The client leaves during a delay


def leave(conn, how):
    s = conn.sock
    if how == "rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    elif how == "fin":
        s.close()
    elif how == "halfclose":
        s.shutdown(socket.SHUT_WR)
    conn.closed = how != "halfclose"


@pytest.mark.parametrize("how", ["fin", "rst", "halfclose"])
def test_client_leaves_during_delay(gatehouse, upstream, tmp_path, how):
    """abortonclose: a client that closes (or half-closes) while its request
    is held is taken as gone; the request is never sent upstream, the stream
    ends at once (logged with fault=delay and the error), the process stays
    healthy and exits cleanly (under ASan: no leak, no error)."""
    g, up = start(gatehouse, upstream, tmp_path, {"delay": {"fixed": "60s"}}, drain_timeout="60s")
    conns = []
    for k in range(3):
        c = RawConn(g.port, timeout=20)
        c.request("GET", f"/f/gone?id={how}{k}")
        conns.append(c)
    wait_metric(g.admin, EVENTS, 3.0, filter="fault", route="flaky", event="delay")
    for c in conns:
        leave(c, how)
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 3, timeout=20, what="the 3 abandoned requests logged")
    for rec in recs:
        assert rec["filter"] == "fault=delay", rec
        assert rec["route"] == "flaky", rec
        assert rec["status"] == 0 and rec["bytes_out"] == 0, rec
        assert rec["error"] == "client closed the connection while the request was held", rec
        assert rec["upstream"] is None, rec
    if how == "halfclose":
        for c in conns:
            assert c.read_head() is None, "a response came after the half-close"
            assert c.is_closed(timeout=10)
            c.close()
    # Nothing was sent upstream, and the worker still serves.
    r = fetch(g.port, "GET", "/p/after?id=after")
    assert r.status == 200, r
    assert upstream_ids(up) == ["after"]
    assert up.connections == 1
    assert events(g) == (3, 0)
    # No stream is left held: the drain does not wait for the 60s delay
    # (the fixture would kill it after 20s).
    stop_clean(g)


def test_client_leaves_one_of_many(gatehouse, upstream, tmp_path):
    """The delays of the others go on: three held, the middle one leaves
    (RST), the other two are answered by the upstream."""
    g, up = start(gatehouse, upstream, tmp_path, {"delay": {"fixed": "1500ms"}})
    s = [Sender(g.port, f"/f/m?id=m{k}") for k in (0, 2)]
    for t in s:
        t.start()
    # The one that leaves is not read from another thread: a close() while
    # a recv() is blocked on the socket sends nothing until the recv returns.
    gone = RawConn(g.port, timeout=20)
    gone.request("GET", "/f/m?id=m1")
    wait_metric(g.admin, EVENTS, 3.0, filter="fault", route="flaky", event="delay")
    leave(gone, "rst")
    for t in s:
        t.join(30)
        assert t.error is None and t.resp.status == 200, (t.error, t.resp)
    assert sorted(upstream_ids(up)) == ["m0", "m2"]
    _, logs = log_by_id(g, 3)
    assert all(logs[f"m{k}"]["filter"] == "fault=delay" for k in range(3))
    assert logs["m0"]["status"] == 200 and logs["m2"]["status"] == 200
    assert "client closed" in (logs["m1"]["error"] or ""), logs["m1"]
    stop_clean(g)


# --------------------------------------------------------------------------
# Drain and reload with requests held


def test_drain_lets_delays_complete(gatehouse, upstream, tmp_path):
    """SIGTERM while requests are delayed (2s, drain_timeout 30s): the
    listener closes, the delays run out, the requests go upstream (or are
    aborted, for the one with x-abort) and are answered with
    connection: close; exit 0."""
    g, up = start(gatehouse, upstream, tmp_path,
                  {"delay": {"fixed": "2s"}, "abort": {"status": 503, "header": "x-abort"}},
                  workers=2, drain_timeout="30s")
    s = [Sender(g.port, f"/f/d?id=d{k}") for k in range(3)]
    s.append(Sender(g.port, "/f/d?id=da", [("x-abort", "1")]))
    for t in s:
        t.start()
    wait_for(lambda: events(g)[0] == 4, 10, "4 delays")
    g.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: connect_refused(g.port), 10, "the listener to stop accepting")
    for t in s:
        t.join(30)
        assert not t.is_alive() and t.error is None, t.error
        assert "close" in [v.lower() for v in t.resp.headers_all("connection")], t.resp
    for t in s[:3]:
        assert t.resp.status == 200 and t.resp.json()["target"] == t.target, t.resp
    assert_refusal(s[3].resp, 503, "fault_injected")
    rc = g.proc.wait(timeout=30)
    assert rc == 0, f"exit status {rc}\n{g.stderr_tail()}"
    sanitizer_clean(g)
    assert sorted(upstream_ids(up)) == ["d0", "d1", "d2"]
    _, logs = log_by_id(g, 4)
    assert [logs[f"d{k}"]["filter"] for k in range(3)] == ["fault=delay"] * 3
    assert logs["da"]["filter"] == "fault=delay,abort" and logs["da"]["status"] == 503


def test_drain_deadline_cuts_delays(gatehouse, upstream, tmp_path):
    """SIGTERM while requests are delayed far beyond drain_timeout (1s): they
    are cut at the deadline (no response, connection closed), never reach
    the upstream, and the process exits 0 without a sanitizer report."""
    g, up = start(gatehouse, upstream, tmp_path, {"delay": {"fixed": "1h"}}, workers=2, drain_timeout="1s")
    s = [Sender(g.port, f"/f/c?id=c{k}") for k in range(3)]
    for t in s:
        t.start()
    wait_for(lambda: events(g)[0] == 3, 10, "3 delays")
    g.proc.send_signal(signal.SIGTERM)
    rc = g.proc.wait(timeout=30)
    assert rc == 0, f"exit status {rc}\n{g.stderr_tail()}"
    sanitizer_clean(g)
    for t in s:
        t.join(10)
        assert not t.is_alive()
        assert t.resp is None, t.resp
        assert "connection closed before a response" in str(t.error), t.error
    assert up.complete_requests() == [] and up.connections == 0
    # docs/operations.md: a request cut at the drain deadline is logged with
    # status 0 and error "client connection closed".
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 3, what="3 cut requests logged")
    assert len(recs) == 3, recs
    for rec in recs:
        assert rec["status"] == 0 and rec["filter"] == "fault=delay", rec
        assert rec["error"] == "client connection closed", rec


def test_reload_while_held(gatehouse, upstream, tmp_path):
    """A reload that removes the fault while requests are held: the held ones
    finish on their old config (delayed, then 200 from the upstream, or the
    old config's abort for the one with x-abort: its conf must outlive the
    reload); new requests follow the new config (no delay, no abort) and are
    answered while the old ones are still held."""
    g, up = start(gatehouse, upstream, tmp_path,
                  {"delay": {"fixed": "4s"}, "abort": {"status": 507, "header": "x-abort"}})
    s = [Sender(g.port, f"/f/old?id=old{k}") for k in range(3)]
    s.append(Sender(g.port, "/f/old?id=olda", [("x-abort", "1")]))
    for t in s:
        t.start()
    wait_for(lambda: events(g)[0] == 4, 10, "4 delays")
    new_cfg = fault_cfg(up, None, tmp_path, g.admin)
    # A marker route shows when the new config is live.
    new_cfg["listeners"][0]["routes"].insert(0, {"name": "marker", "match": {"path": {"exact": "/marker"}},
                                                  "direct_response": {"status": 200, "body": "v2"}})
    write_config(g, config_text(g, new_cfg))
    sighup(g)
    wait_for(lambda: fetch(g.port, "GET", "/marker", timeout=5).status == 200, 10, "the new config")
    r = fetch(g.port, "GET", "/f/new?id=new")
    assert r.status == 200 and r.json()["target"] == "/f/new?id=new", r
    r = fetch(g.port, "GET", "/f/new?id=newa", headers=[("x-abort", "1")])
    assert r.status == 200 and r.json()["target"] == "/f/new?id=newa", r
    assert all(t.resp is None for t in s), "held requests finished before the new ones"
    assert upstream_ids(up) == ["new", "newa"]
    for t in s:
        t.join(30)
        assert t.error is None, t.error
    for t in s[:3]:
        assert t.resp.status == 200 and t.resp.json()["target"] == t.target, t.resp
    assert_refusal(s[3].resp, 507, "fault_injected")
    assert sorted(upstream_ids(up)) == ["new", "newa", "old0", "old1", "old2"]
    recs, logs = log_by_id(g, 6)
    assert [logs[f"old{k}"]["filter"] for k in range(3)] == ["fault=delay"] * 3
    assert logs["olda"]["filter"] == "fault=delay,abort" and logs["olda"]["status"] == 507, logs["olda"]
    assert logs["new"]["filter"] is None and logs["newa"]["filter"] is None, (logs["new"], logs["newa"])
    assert events(g) == (4, 1)
    stop_clean(g)


# --------------------------------------------------------------------------
# fault on a direct_response route


def test_fault_on_direct_response_route(gatehouse, upstream, tmp_path):
    """fault runs before the terminal filter: an abort replaces the direct
    response, a delay holds it."""
    dr = {"name": "dr", "match": {"path": {"prefix": "/dr"}},
          "direct_response": {"status": 201, "headers": {"content-type": "text/plain"}, "body": "direct"},
          "fault": {"delay": {"fixed": "300ms", "header": "x-d"}, "abort": {"status": 502, "header": "x-a"}}}
    g, up = start(gatehouse, upstream, tmp_path, {"abort": {"status": 503, "percent": 0}}, extra_routes=[dr])
    r = fetch(g.port, "GET", "/dr?id=plain")
    assert r.status == 201 and r.body == b"direct", r
    r = fetch(g.port, "GET", "/dr?id=abort", headers=[("x-a", "1")])
    assert_refusal(r, 502, "fault_injected")
    r = fetch(g.port, "GET", "/dr?id=delay", headers=[("x-d", "1")])
    assert r.status == 201 and r.body == b"direct", r
    r = fetch(g.port, "GET", "/dr?id=both", headers=[("x-d", "1"), ("x-a", "1")])
    assert_refusal(r, 502, "fault_injected")
    _, logs = log_by_id(g, 4)
    assert [logs[k]["filter"] for k in ("plain", "abort", "delay", "both")] == \
        [None, "fault=abort", "fault=delay", "fault=delay,abort"]
    assert [logs[k]["status"] for k in ("plain", "abort", "delay", "both")] == [201, 502, 201, 502]
    assert events(g, "dr") == (2, 2)
    assert up.complete_requests() == []
    stop_clean(g)


# --------------------------------------------------------------------------
# Config errors, each with file:line:col


HEAD = """listeners:
  - name: edge
    listen: 127.0.0.1:{port}
    routes:
      - name: flaky
        match: {{ path: {{ prefix: / }} }}
        to: app
        fault:
"""
TAIL = """clusters:
  app:
    endpoints: [127.0.0.1:9]
"""


def validate(tmp_path, fault_lines):
    p = tmp_path / "gatehouse.yaml"
    p.write_text(HEAD.format(port=free_port()) + fault_lines + TAIL)
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


# (fault lines after "fault:" on line 8, the text the error points at, a
# word of the message). The position expected is that text's first
# line:column in the file.
BAD = [
    ("          delay: { fixed: 2s, percent: 100.5 }\n", "100.5", "percent"),
    ("          delay: { fixed: 2s, percent: 0.001 }\n", "0.001", "percent"),
    ("          delay: { fixed: 2s, percent: -1 }\n", "-1", "percent"),
    ("          abort: { status: 503, percent: abc }\n", "abc", "percent"),
    ("          abort: { status: 503, percent: \"50\" }\n", "\"50\"", "percent"),
    ("          abort: { status: 503, percent: 1e1 }\n", "1e1", "percent"),
    ("          abort: { status: 503, percent: 100.01 }\n", "100.01", "percent"),
    ("          abort:\n            status: 503\n            percent: 5.\n", "5.", "percent"),
    ("          delay: { percent: 5 }\n", "{", "fixed"),
    ("          delay: { fixed: 2h }\n", "2h", "fixed"),
    ("          delay: { fixed: 61m }\n", "61m", "fixed"),
    ("          delay: { fixed: 0s }\n", "0s", "fixed"),
    ("          abort: { status: 99 }\n", "99", "status"),
    ("          abort: { status: 600 }\n", "600", "status"),
    ("          abort: { status: 503.5 }\n", "503.5", "status"),
    ("          abort: { percent: 5 }\n", "{", "status"),
    ("          abort: { status: 503, statuss: 1 }\n", "statuss", "statuss"),
    ("          delay: { fixed: 1s, bogus: 1 }\n", "bogus", "bogus"),
    ("          delay: { fixed: 1s }\n          other: 1\n", "other", "other"),
    ("          {}\n", "{}", "fault"),
    ("          delay: 5s\n", "5s", "delay"),
    ("          abort: { status: 503, header: \"x fault\" }\n", "\"x fault\"", "header"),
    ("          abort: { status: 503, header: \"x:f\" }\n", "\"x:f\"", "header"),
    ("          abort: { status: 503, header: \"\" }\n", "\"\"", "header"),
    ("          delay: { fixed: 1s, header: \"x-f(1)\" }\n", "\"x-f(1)\"", "header"),
]


def position(lines, needle):
    for k, line in enumerate(lines.splitlines()):
        if needle in line:
            return f"{HEAD.count(chr(10)) + k + 1}:{line.index(needle) + 1}"
    raise AssertionError(needle)


@pytest.mark.parametrize("lines,needle,word", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_config_errors(tmp_path, lines, needle, word):
    rc, out = validate(tmp_path, lines)
    assert rc == 1, f"accepted:\n{lines}\n{out}"
    pos = position(lines, needle)
    assert f"gatehouse.yaml:{pos}:" in out, f"expected position {pos}:\n{lines}\n{out}"
    assert word in out, out


GOOD = [
    "          delay: { fixed: 1h, percent: 100 }\n",
    "          delay: { fixed: 1ms, percent: 0 }\n",
    "          delay: { fixed: 1s, percent: 0.01, header: X-Fault }\n",
    "          abort: { status: 200, percent: 100.00 }\n",
    "          abort: { status: 599, percent: 99.99, header: \"x-a_b.c~!\" }\n",
    "          delay: { fixed: 250ms }\n          abort: { status: 503 }\n",
]


@pytest.mark.parametrize("lines", GOOD, ids=range(len(GOOD)))
def test_config_accepted(tmp_path, lines):
    rc, out = validate(tmp_path, lines)
    assert rc == 0, f"rejected:\n{lines}\n{out}"


def test_reload_with_bad_fault_keeps_old(gatehouse, upstream, tmp_path):
    """A reload to a config with a bad fault is refused with file:line:col
    and the running fault stays."""
    g, up = start(gatehouse, upstream, tmp_path, {"abort": {"status": 418}})
    assert_refusal(fetch(g.port, "GET", "/f/x?id=a"), 418, "fault_injected")
    text = config_text(g, fault_cfg(up, {"abort": {"status": 418, "percent": 100.5}}, tmp_path, g.admin))
    write_config(g, text)
    sighup(g)
    wait_for(lambda: any("percent" in l and ".yaml:" in l for l in g.stderr.splitlines()), 10,
             "the reload error")
    assert_refusal(fetch(g.port, "GET", "/f/x?id=b"), 418, "fault_injected")
    stop_clean(g)
