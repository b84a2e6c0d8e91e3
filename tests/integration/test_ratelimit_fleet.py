"""Fleet mode (`mode: fleet`, docs/rate-limits.md#fleet-mode): rate limits
counted in Redis, one atomic decision per request, shared by every
gatehouse in front of the same Redis. Real processes against a real
redis-server (redis_util.RedisServer):

- two gatehouses (two workers each) on one Redis enforce one limit
  exactly: parallel clients split across both, exactly the limit get 200;
- the 429, Retry-After and RateLimit fields across both processes, as
  local mode shows them;
- Redis killed under load: fail-open limits pass, fail-closed limits
  answer 503, every request answered (each bounded by a client timeout);
  Redis restarted: recovery without restarting gatehouse;
- Redis hung (SIGSTOP): answers after the store's timeout, then at once;
- a client that leaves while its decision is in flight, and a stop
  (SIGTERM, drain timeout) with decisions in flight: no crash (run this
  file with GATEHOUSE_BIN=build-asan/gatehouse GH_SANITIZED=1 for ASan);
- a reload that changes the store, and one that is refused;
- metrics and the throttled log line.

- a usage plan in fleet mode, with real API keys in the same Redis (made
  with the CLI): its quota is one quota for both gatehouses.

The Redis backend's decisions are compared with the local limiter's in
tests/unit/filters/test_ratelimit_fleet.c."""

import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from harness import ConnectionClosed, RawConn, assert_refusal, fetch, free_port, gatehouse_bin, make_config
from ops_util import config_errors, metrics, sighup, wait_for, wait_metric, write_config
from test_ratelimit import fields

EVENTS = "gatehouse_filter_events_total"


def fleet_cfg(up, redis, routes, timeout="250ms", prefix="gh:", drain=None):
    """One listener "edge" whose routes are (name, path prefix, limits);
    a Redis store; an admin listener for /metrics. Built once per process:
    the limits' ids come from the listener, route and limit (not from the
    ports), so two processes with this config share their counters."""
    table = []
    for name, prefix_path, limits in routes:
        table.append({"name": name, "match": {"path": {"prefix": prefix_path}}, "to": "app",
                      "rate_limits": limits})
    cfg = make_config([up], routes=table)
    cfg["store"] = {"kind": "redis", "address": f"127.0.0.1:{redis.port}", "timeout": timeout,
                    "prefix": prefix}
    cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    if drain is not None:
        cfg["drain_timeout"] = drain
    return cfg


def aport(cfg):
    return int(cfg["admin"]["listen"].rsplit(":", 1)[1])


def get(port, target="/x", timeout=10.0):
    return fetch(port, "GET", target, timeout=timeout)


def hammer(ports, threads, per_thread, target="/x"):
    """threads clients at once, spread over ports, each per_thread requests
    on its own keep-alive connection; returns [(port, status)]."""
    out, lock, start = [], threading.Lock(), threading.Barrier(threads)

    def run(port):
        got = []
        with RawConn(port, timeout=30) as c:
            start.wait()
            for _ in range(per_thread):
                c.request("GET", target)
                got.append((port, c.read_response().status))
        with lock:
            out.extend(got)

    ts = [threading.Thread(target=run, args=(ports[i % len(ports)],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


# --------------------------------------------------------------------------
# One limit for the fleet


@pytest.mark.parametrize("limit", [
    {"name": "b", "key": "route", "rate": "1/h", "burst": 300, "mode": "fleet"},
    {"name": "q", "key": "address", "quota": {"limit": 300, "period": "day"}, "mode": "fleet"},
])
def test_two_gatehouses_enforce_one_limit_exactly(gatehouse, upstream, redis_server, limit):
    up = upstream()
    routes = [("r", "/", [limit])]
    g1 = gatehouse(fleet_cfg(up, redis_server, routes), workers=2)
    g2 = gatehouse(fleet_cfg(up, redis_server, routes), workers=2)
    got = hammer([g1.port, g2.port], 16, 40)
    statuses = [s for _, s in got]
    assert len(statuses) == 640
    assert statuses.count(200) == 300, sorted(set(statuses))
    assert statuses.count(429) == 340
    # Both processes decided, and took from the one counter.
    for g in (g1, g2):
        assert any(p == g.port and s == 200 for p, s in got), g.port
    assert len(up.wait_requests(300)) == 300
    time.sleep(0.2)
    assert len(up.complete_requests()) == 300


def test_fields_and_retry_after_across_two_gatehouses(gatehouse, upstream, redis_server):
    up = upstream()
    routes = [("r", "/", [{"name": "shared", "key": "address", "rate": "1/h", "burst": 3, "mode": "fleet"},
                          {"name": "daily", "key": "address", "quota": {"limit": 5, "period": "day"},
                           "mode": "fleet"}])]
    g1 = gatehouse(fleet_cfg(up, redis_server, routes))
    g2 = gatehouse(fleet_cfg(up, redis_server, routes))
    for i, g in enumerate((g1, g2, g1)):
        now = time.time()
        r = get(g.port)
        assert r.status == 200, r
        limits, policies = fields(r)
        until_midnight = 86400 - int(now) % 86400
        # A bucket's t is the time until its next unit (3600 s at 1/h),
        # a quota's the time until its window ends: as in local mode.
        assert limits["shared"] == {"r": 2 - i, "t": 3600}, r
        assert limits["daily"]["r"] == 4 - i, r
        assert until_midnight - 2 <= limits["daily"]["t"] <= until_midnight, r
        assert policies == {"shared": {"q": 3, "w": 10800}, "daily": {"q": 5, "w": 86400}}, r
    r = get(g2.port)
    doc = assert_refusal(r, 429, "rate_limited")
    assert doc["detail"] == "rate limit 'shared' exceeded; retry after 3600 s", doc
    assert r.header("retry-after") == "3600", r
    limits, policies = fields(r)
    assert limits == {"shared": {"r": 0, "t": 3600}}, r
    assert policies == {"shared": {"q": 3, "w": 10800}}, r
    # The refused request took nothing from the quota (one decision, all
    # or none): the daily count is still 3 of 5 in Redis.
    keys = [k for k in redis_server.cmd("KEYS", "gh:rl:*") if b":w" in k]
    assert len(keys) == 1, keys
    assert redis_server.cmd("GET", keys[0]) == b"3"
    assert len(up.wait_requests(3)) == 3


def test_keys_in_redis_are_per_limit_and_not_steerable(gatehouse, upstream, redis_server):
    up = upstream()
    limits = [{"name": "tenant", "key": "header:x-tenant", "rate": "1/h", "burst": 1, "mode": "fleet"}]
    g = gatehouse(fleet_cfg(up, redis_server, [("r", "/", limits)]))
    # A value made to look like another value's key, or the script's
    # suffixes: each its own bucket.
    for v in ["a", "a:b", "1:a", "a:w0", "a" * 100, "é"]:
        hs = [("x-tenant", v)]
        assert fetch(g.port, "GET", "/x", headers=hs).status == 200, v
        assert fetch(g.port, "GET", "/x", headers=hs).status == 429, v
    keys = sorted(redis_server.cmd("KEYS", "gh:rl:*"))
    assert len(keys) == 6, keys
    ids = {k.split(b":")[2] for k in keys}
    assert len(ids) == 1 and re.fullmatch(rb"[0-9a-f]{16}", ids.pop()), keys
    assert any(k.endswith(b":3:a:b:b") for k in keys), keys
    assert sum(1 for k in keys if b":#:" in k) == 2, keys  # the long one and the non-ASCII one


# --------------------------------------------------------------------------
# A usage plan for the fleet, with real API keys


KEY_RE = re.compile(r"\bgh_[a-z2-7]{12}_[A-Za-z0-9]{43}\b")


def test_fleet_plan_quota_shared_by_two_gatehouses(gatehouse, upstream, redis_server, tmp_path):
    up = upstream()
    cfg = make_config([up], routes=[{"name": "api", "match": {"path": {"prefix": "/"}},
                                      "authn": "keys", "to": "app"}])
    cfg["providers"] = {"apikeys": {"keys": {}}}
    cfg["store"] = {"kind": "redis", "address": f"127.0.0.1:{redis_server.port}", "prefix": "gh:"}
    # Monthly quotas: a test run does not straddle their boundary.
    cfg["plans"] = {"gold": {"throttle": {"rate": "1/h", "burst": 1000},
                             "quota": {"limit": 100, "period": "month"}, "mode": "fleet"},
                    "local": {"quota": {"limit": 100, "period": "month"}}}
    g1 = gatehouse(cfg, workers=2)
    g2 = gatehouse(cfg, workers=2)

    def key(plan, consumer):
        r = subprocess.run([str(gatehouse_bin()), "apikey", "create", "--consumer", consumer,
                            "--plan", plan, "-c", str(g1.config_path)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return KEY_RE.search(r.stdout).group(0)

    def hammer_key(k):
        out, lock, start = [], threading.Lock(), threading.Barrier(16)

        def run(port):
            got = []
            with RawConn(port, timeout=30) as c:
                start.wait()
                for _ in range(10):
                    c.request("GET", "/x", [("x-api-key", k)])
                    got.append(c.read_response().status)
            with lock:
                out.extend(got)

        ts = [threading.Thread(target=run, args=((g1.port, g2.port)[i % 2],)) for i in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return out

    # The fleet plan: 100 for both gatehouses together.
    statuses = hammer_key(key("gold", "alice"))
    assert statuses.count(200) == 100, sorted(set(statuses))
    assert statuses.count(429) == 60
    # Another key of the same consumer shares the quota; another consumer has its own.
    r = fetch(g2.port, "GET", "/x", headers=[("x-api-key", key("gold", "alice"))])
    assert r.status == 429 and b"'gold.quota' exceeded" in r.body, r
    r = fetch(g2.port, "GET", "/x", headers=[("x-api-key", key("gold", "bob"))])
    assert r.status == 200, r
    # A local plan: each gatehouse counts its own 100.
    statuses = hammer_key(key("local", "carol"))
    assert statuses.count(200) == 160, sorted(set(statuses))


# --------------------------------------------------------------------------
# Redis down, hung, back


def soft_and_hard():
    return [("open", "/open", [{"name": "soft", "key": "route", "rate": "100000/s", "burst": 100000,
                               "mode": "fleet", "on_error": "open"}]),
            ("closed", "/closed", [{"name": "hard", "key": "route", "rate": "100000/s", "burst": 100000,
                                   "mode": "fleet"}])]


class Load:
    """Clients sending /open and /closed in turn on keep-alive connections
    until stopped; each request bounded by a client timeout."""

    def __init__(self, port, threads=4, timeout=5.0):
        self.port, self.timeout = port, timeout
        self.results = []  # (path, status or "timeout" or "error")
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.ts = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.ts:
            t.start()

    def run(self):
        n = 0
        c = None
        while not self.stop_ev.is_set():
            path = "/open" if n % 2 == 0 else "/closed"
            n += 1
            try:
                if c is None:
                    c = RawConn(self.port, timeout=self.timeout)
                c.request("GET", path)
                st = c.read_response().status
            except socket.timeout:
                st = "timeout"
                c.close()
                c = None
            except (OSError, AssertionError):
                st = "error"
                if c is not None:
                    c.close()
                c = None
            with self.lock:
                self.results.append((path, st))
        if c is not None:
            c.close()

    def count(self):
        with self.lock:
            return len(self.results)

    def stop(self):
        self.stop_ev.set()
        for t in self.ts:
            t.join(30)
        return list(self.results)


def wait_connections(cfg, n, timeout=20.0):
    wait_metric(aport(cfg), "gatehouse_rate_limit_fleet_connections", float(n), timeout=timeout)


def test_redis_killed_and_restarted_under_load(gatehouse, upstream, redis_server):
    up = upstream()
    cfg = fleet_cfg(up, redis_server, soft_and_hard())
    g = gatehouse(cfg, workers=2)
    # New connections land on either worker: both make their client.
    for _ in range(20):
        assert get(g.port, "/closed").status == 200
    load = Load(g.port)
    wait_for(lambda: load.count() >= 100, 20, "requests with Redis up")
    wait_connections(cfg, 4)  # 2 workers x pool 2
    redis_server.kill()
    t_kill = time.monotonic()
    # Fail closed: 503, promptly; fail open: 200. Each on a new connection,
    # which lands on either worker.
    wait_for(lambda: get(g.port, "/closed", timeout=5).status == 503, 10, "a 503 from /closed")
    for _ in range(20):
        r = get(g.port, "/closed", timeout=5)
        doc = assert_refusal(r, 503, "service_unavailable")
        assert doc["detail"] == "the rate limit store is unavailable", doc
        r = get(g.port, "/open", timeout=5)
        assert r.status == 200, r
        assert not r.has("ratelimit"), r  # passed without that limit: no fields
    n_down = load.count()
    wait_for(lambda: load.count() >= n_down + 100, 20, "requests with Redis down")
    m = metrics(aport(cfg))
    assert m.sum("gatehouse_rate_limit_fleet_errors_total") > 0
    assert m.value("gatehouse_rate_limit_fleet_connections") == 0
    assert m.value(EVENTS, filter="rate_limits", route="closed", event="error:hard") > 0
    assert m.value(EVENTS, filter="rate_limits", route="open", event="error:soft") > 0
    # Back: without restarting gatehouse.
    redis_server.restart()
    wait_connections(cfg, 4)
    for _ in range(10):
        assert get(g.port, "/closed", timeout=5).status == 200
    n_up = load.count()
    wait_for(lambda: load.count() >= n_up + 100, 20, "requests with Redis back")
    results = load.stop()
    t_total = time.monotonic() - t_kill
    assert not [x for x in results if x[1] in ("timeout", "error")], "requests unanswered"
    assert {s for p, s in results if p == "/open"} == {200}
    assert {s for p, s in results if p == "/closed"} == {200, 503}
    assert g.alive()
    # Logged, but not per request: at most one line per 10 s.
    lines = [l for l in g.stderr.splitlines() if "fleet limits: redis" in l]
    assert 1 <= len(lines) <= 2 + int(t_total / 10), lines


def test_hung_redis_answers_within_the_timeout(gatehouse, upstream, redis_server):
    up = upstream()
    cfg = fleet_cfg(up, redis_server, soft_and_hard(), timeout="300ms")
    g = gatehouse(cfg)
    assert get(g.port, "/closed").status == 200
    redis_server.pause()
    try:
        for _ in range(5):
            assert get(g.port, "/closed", timeout=5).status == 503
            assert get(g.port, "/open", timeout=5).status == 200
        m = metrics(aport(cfg))
        assert m.value("gatehouse_rate_limit_fleet_errors_total", reason="timeout") >= 1
        assert m.value("gatehouse_rate_limit_fleet_pending") == 0
    finally:
        redis_server.resume()
    wait_connections(cfg, 2)
    assert get(g.port, "/closed").status == 200


def test_client_leaves_while_its_decision_is_in_flight(gatehouse, upstream, redis_server):
    up = upstream()
    cfg = fleet_cfg(up, redis_server, soft_and_hard(), timeout="5s")
    g = gatehouse(cfg)
    assert get(g.port, "/closed").status == 200
    allowed = metrics(aport(cfg)).value("gatehouse_rate_limit_fleet_decisions_total", result="allowed")
    redis_server.pause()
    try:
        c = RawConn(g.port, timeout=5)
        c.request("GET", "/closed")
        wait_metric(aport(cfg), "gatehouse_rate_limit_fleet_pending", 1.0)
        c.close()
        # gatehouse saw the client go while the call waits
        wait_for(lambda: metrics(aport(cfg)).sum("gatehouse_downstream_connections_active") == 0, 10,
                 "the client's connection closed")
    finally:
        redis_server.resume()
    # The late answer finds the stream gone: counted, freed, nothing sent.
    wait_metric(aport(cfg), "gatehouse_rate_limit_fleet_decisions_total", allowed + 1, result="allowed")
    wait_metric(aport(cfg), "gatehouse_rate_limit_fleet_pending", 0.0)
    assert get(g.port, "/closed").status == 200
    assert g.alive()
    assert len(up.wait_requests(2)) == 2
    time.sleep(0.2)
    assert len(up.complete_requests()) == 2


@pytest.mark.parametrize("warm", [True, False], ids=["in-flight", "held"])
def test_stop_with_decisions_in_flight(gatehouse, upstream, redis_server, warm):
    """SIGTERM while decisions wait on a stopped Redis: sent ones (the
    worker's client connected before), or held for a new client's first
    connection. The drain deadline passes first; the worker ends with them
    and its teardown ends them (-ESHUTDOWN): exit 0, nothing freed twice
    or leaked (ASan)."""
    up = upstream()
    cfg = fleet_cfg(up, redis_server, soft_and_hard(), timeout="5s", drain="300ms")
    g = gatehouse(cfg)
    if warm:
        assert get(g.port, "/closed").status == 200
    redis_server.pause()
    conns = []
    try:
        for _ in range(4):
            c = RawConn(g.port, timeout=10)
            c.request("GET", "/closed")
            conns.append(c)
        wait_metric(aport(cfg), "gatehouse_rate_limit_fleet_pending", 4.0)
        rc = g.stop(signal.SIGTERM, timeout=15)
        assert rc == 0, g.stderr_tail()
        # Cut off at the deadline: no response, the connection closed.
        for c in conns:
            with pytest.raises(ConnectionClosed):
                c.read_response()
    finally:
        redis_server.resume()
        for c in conns:
            c.close()


# --------------------------------------------------------------------------
# Reloads and config


def test_reload_that_changes_the_store(gatehouse, upstream, redis_server):
    up = upstream()
    limits = [{"name": "a", "key": "route", "rate": "1/h", "burst": 2, "mode": "fleet"}]
    cfg = fleet_cfg(up, redis_server, [("r", "/", limits)], prefix="one:")
    g = gatehouse(cfg)
    assert [get(g.port).status for _ in range(3)] == [200, 200, 429]
    # Another prefix: other counters (in the same Redis).
    text = g.config_path.read_text()
    write_config(g, text.replace("one:", "two:"))
    sighup(g)
    wait_for(lambda: metrics(aport(cfg)).value("gatehouse_config_generation") == 2, 10, "reload 1")
    assert [get(g.port).status for _ in range(3)] == [200, 200, 429]
    assert redis_server.cmd("KEYS", "two:rl:*") and redis_server.cmd("KEYS", "one:rl:*")
    # The connections of the first store are closed once idle: two left.
    wait_connections(cfg, 2)
    # A store without Redis cannot hold fleet limits: refused, and the
    # running config goes on (its counters too).
    bad = re.sub(r"store:\n(  .*\n)+", "", text.replace("one:", "two:"))
    assert "store:" not in bad
    write_config(g, bad)
    sighup(g)
    wait_for(lambda: any("'mode: fleet' needs a shared store (store.kind: redis); this config's "
                         "store is sqlite" in l for l in config_errors(g)), 10, "the refusal")
    assert metrics(aport(cfg)).value("gatehouse_config_generation") == 2
    assert get(g.port).status == 429


def test_metrics_lines(gatehouse, upstream, redis_server):
    up = upstream()
    cfg = fleet_cfg(up, redis_server, [("r", "/", [{"name": "a", "key": "route", "rate": "1/h", "burst": 1,
                                                    "mode": "fleet"}])])
    g = gatehouse(cfg)
    assert [get(g.port).status for _ in range(2)] == [200, 429]
    m = wait_metric(aport(cfg), "gatehouse_rate_limit_fleet_connections", 2.0)
    assert m.types["gatehouse_rate_limit_fleet_decisions_total"] == "counter"
    assert m.types["gatehouse_rate_limit_fleet_pending"] == "gauge"
    assert m.value("gatehouse_rate_limit_fleet_decisions_total", result="allowed") == 1
    assert m.value("gatehouse_rate_limit_fleet_decisions_total", result="limited") == 1
    assert m.value("gatehouse_rate_limit_fleet_decisions_total", result="error") == 0
    assert m.value(EVENTS, filter="rate_limits", route="r", event="limited:a") == 1
    # The table of local counters holds nothing for fleet limits.
    assert m.value("gatehouse_rate_limit_keys") == 0
