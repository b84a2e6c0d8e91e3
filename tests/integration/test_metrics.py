"""Prometheus metrics on the admin listener: exact counts after a known
number of requests (summed over workers), histograms, bytes, connections,
upstream failures, pool hits, reloads, and bounded label cardinality."""

import math
import threading

import pytest

from harness import RawConn, fetch, free_port, make_config
from ops_util import (admin_conf, admin_port_of, config_text, metrics, sighup, wait_admin,
                      wait_for, wait_metric, write_config)

REQ = "gatehouse_requests_total"
# Paths the test upstream acts on (route r2); it does not strip prefixes.
UPSTREAM_PATHS = "^/(echo|status|hash|slow|bytes|drop)"


def dr(body, status=200):
    return {"status": status, "headers": {"content-type": "text/plain"}, "body": body}


def base_cfg(up, dead_port=None, **route_extra):
    routes = [
        {"name": "r1", "match": {"path": {"prefix": "/r1"}}, "direct_response": dr("one")},
        # A request with ?short=1 goes to the same upstream with a 1 s timeout.
        {"name": "slow", "match": {"query": [{"name": "short", "present": True}]}, "to": "app",
         "timeout": "1s"},
        {"name": "r2", "match": {"path": {"regex": UPSTREAM_PATHS}}, "to": "app", **route_extra},
        {"name": "teapot", "match": {"path": {"prefix": "/teapot"}}, "direct_response": dr("tea", 418)},
    ]
    clusters = {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}}
    if dead_port:
        routes.append({"name": "dead", "match": {"path": {"prefix": "/dead"}}, "to": "dead"})
        clusters["dead"] = {"endpoints": [f"127.0.0.1:{dead_port}"], "max_idle": 0}
    cfg = make_config(routes=routes, clusters=clusters)
    cfg["admin"] = admin_conf()
    return cfg


def start(gatehouse, up, workers=1, **kw):
    cfg = base_cfg(up, **kw)
    g = gatehouse(cfg, workers=workers)
    g.admin = admin_port_of(cfg)
    wait_admin(g.admin)
    return g


def fresh_get(g, target, **kw):
    """One request on its own connection (so that with several workers the
    requests spread over them)."""
    return fetch(g.port, "GET", target, **kw)


def rq(route, code, cluster="", listener="edge"):
    return {"listener": listener, "route": route, "cluster": cluster, "code": code}


@pytest.mark.parametrize("workers", [1, 2])
def test_request_counts_exact(gatehouse, upstream, workers):
    up = upstream()
    g = start(gatehouse, up, workers=workers)
    for i in range(7):
        assert fresh_get(g, f"/r1/{i}").status == 200
    for i in range(3):
        assert fresh_get(g, f"/echo?i={i}").status == 200
    assert fresh_get(g, "/status/503").status == 503
    assert fresh_get(g, "/status/404").status == 404
    for i in range(2):
        assert fresh_get(g, f"/teapot/{i}").status == 418
    # Keep-alive: several requests on one connection count each.
    with RawConn(g.port) as c:
        for i in range(5):
            c.request("GET", f"/r1/ka{i}")
            assert c.read_response().status == 200
    m = wait_metric(g.admin, REQ, 12, **rq("r1", "2xx"))
    assert m.value(REQ, **rq("r2", "2xx", "app")) == 3
    assert m.value(REQ, **rq("r2", "5xx", "app")) == 1
    assert m.value(REQ, **rq("r2", "4xx", "app")) == 1
    assert m.value(REQ, **rq("teapot", "4xx")) == 2
    # No route matched: every path above matched, so no such series has a count.
    assert m.sum(REQ, route="") == 0
    # Nothing else was counted anywhere.
    assert m.sum(REQ, listener="edge") == 19, m.series(REQ)
    for labels, _ in m.series(REQ):
        assert set(labels) == {"listener", "route", "cluster", "code"}, labels
        assert labels["code"] in ("1xx", "2xx", "3xx", "4xx", "5xx"), labels


def test_no_route_counted_with_empty_route(gatehouse):
    cfg = make_config(routes=[{"name": "only", "match": {"path": {"exact": "/only"}},
                               "direct_response": dr("x")}])
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg, workers=2)
    ap = admin_port_of(cfg)
    wait_admin(ap)
    for i in range(4):
        assert fetch(g.port, "GET", f"/missing/{i}").status == 404
    m = wait_metric(ap, REQ, 4, **rq("", "4xx"))
    assert m.sum(REQ, listener="edge") == 4


def histogram(m, name, **labels):
    buckets = []
    for l, v in m.series(name + "_bucket"):
        rest = {k: x for k, x in l.items() if k != "le"}
        if rest == labels:
            assert "le" in l, l
            buckets.append((float(l["le"].replace("+Inf", "inf")), v))
    buckets.sort()
    return buckets, m.value(name + "_sum", **labels), m.value(name + "_count", **labels)


def check_histogram(m, name, count, **labels):
    assert m.types.get(name) == "histogram", (name, m.types.get(name))
    buckets, s, n = histogram(m, name, **labels)
    assert buckets, f"no buckets for {name}{labels}"
    assert math.isinf(buckets[-1][0]), f"{name}{labels}: last bucket is not +Inf: {buckets}"
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), f"{name}{labels}: buckets not cumulative: {buckets}"
    assert vals[-1] == n == count, f"{name}{labels}: +Inf {vals[-1]}, _count {n}, expected {count}"
    # Durations are positive: a sum of 0 with requests counted means the
    # observations were lost (and a non-zero sum without any, the reverse).
    assert (s > 0) == (count > 0), f"{name}{labels}: _sum {s} for {count} observations"
    les = [le for le, _ in buckets]
    assert len(set(les)) == len(les), f"duplicate le in {name}{labels}"
    return buckets, s


def test_histograms(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, workers=2)
    for i in range(7):
        assert fresh_get(g, f"/r1/{i}").status == 200
    for i in range(4):
        assert fresh_get(g, f"/echo?{i}").status == 200
    assert fresh_get(g, "/slow/0.3").status == 200
    m = wait_metric(g.admin, REQ, 5, **rq("r2", "2xx", "app"))
    check_histogram(m, "gatehouse_request_duration_seconds", 7, listener="edge", route="r1")
    _, s = check_histogram(m, "gatehouse_request_duration_seconds", 5, listener="edge", route="r2")
    # One request took 0.3 s upstream: the sum is in seconds.
    assert 0.3 <= s < 30, s
    _, s = check_histogram(m, "gatehouse_upstream_request_duration_seconds", 5, cluster="app")
    assert 0.3 <= s < 30, s
    # The 0.3 s request is not in a bucket below 0.3.
    buckets, _, _ = histogram(m, "gatehouse_request_duration_seconds", listener="edge", route="r2")
    below = [v for le, v in buckets if le < 0.3]
    assert all(v <= 4 for v in below), buckets
    for l, _ in m.series("gatehouse_upstream_request_duration_seconds_count"):
        assert set(l) == {"cluster"}, l


def test_byte_counters(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, workers=1)
    m0 = metrics(g.admin)
    rb0 = m0.get("gatehouse_request_bytes_total", 0, listener="edge", route="r2")
    sb0 = m0.get("gatehouse_response_bytes_total", 0, listener="edge", route="r2")
    body = b"x" * 20000
    r = fetch(g.port, "POST", "/hash", body=body)
    assert r.status == 200
    r = fresh_get(g, "/bytes/50000")
    assert r.status == 200 and len(r.body) == 50000
    m = wait_metric(g.admin, REQ, 2, **rq("r2", "2xx", "app"))
    rb = m.value("gatehouse_request_bytes_total", listener="edge", route="r2") - rb0
    sb = m.value("gatehouse_response_bytes_total", listener="edge", route="r2") - sb0
    assert 20000 <= rb < 30000, rb
    assert 50000 <= sb < 60000, sb
    for n in ("gatehouse_request_bytes_total", "gatehouse_response_bytes_total"):
        assert m.types.get(n) == "counter", (n, m.types.get(n))


def test_downstream_connections(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, workers=2)
    act = "gatehouse_downstream_connections_active"
    tot = "gatehouse_downstream_connections_total"
    wait_metric(g.admin, act, 0, listener="edge")
    t0 = metrics(g.admin).value(tot, listener="edge")
    conns = []
    for i in range(3):
        c = RawConn(g.port)
        c.request("GET", "/r1/x")
        assert c.read_response().status == 200
        conns.append(c)
    m = wait_metric(g.admin, act, 3, listener="edge")
    assert m.value(tot, listener="edge") - t0 == 3
    assert m.types.get(act) == "gauge" and m.types.get(tot) == "counter"
    for c in conns:
        c.close()
    m = wait_metric(g.admin, act, 0, listener="edge")
    assert m.value(tot, listener="edge") - t0 == 3


def test_upstream_connections_and_pool_hits(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, workers=1)
    n = 6
    with RawConn(g.port) as c:
        for i in range(n):
            c.request("GET", f"/echo?i={i}")
            assert c.read_response().status == 200
            # Give the finished exchange time to put its connection back in the pool.
            wait_for(lambda: metrics(g.admin).get(REQ, 0, **rq("r2", "2xx", "app")) == i + 1, 5,
                     "request counted")
    m = metrics(g.admin)
    total = m.value("gatehouse_upstream_connections_total", cluster="app")
    hits = m.value("gatehouse_upstream_pool_hits_total", cluster="app")
    assert total == up.connections, (total, up.connections)
    assert hits + total == n, f"pool hits {hits} + new connections {total} != {n} requests"
    assert hits >= 1, "no pooled connection was reused"
    assert m.value("gatehouse_upstream_connections_active", cluster="app") == total - up.closed_conns
    assert m.types.get("gatehouse_upstream_pool_hits_total") == "counter"


def test_connect_failures(gatehouse, upstream):
    up = upstream()
    dead = free_port()
    g = start(gatehouse, up, dead_port=dead)
    for i in range(3):
        assert fresh_get(g, f"/dead/{i}").status == 502
    m = wait_metric(g.admin, "gatehouse_upstream_connect_failures_total", 3, cluster="dead")
    # A request is counted when its stream ends: after the 502 was written,
    # which may be a loop turn after the client read it.
    wait_for(lambda: metrics(g.admin).value(REQ, **rq("dead", "5xx", "dead")) == 3, 10,
             "3 requests counted 5xx on the dead cluster")
    assert m.get("gatehouse_upstream_connect_failures_total", 0, cluster="app") == 0


def test_upstream_timeouts(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    r = fresh_get(g, "/slow/3?short=1")
    assert r.status == 504, r
    wait_metric(g.admin, "gatehouse_upstream_timeouts_total", 1, cluster="app")
    wait_for(lambda: metrics(g.admin).value(REQ, **rq("slow", "5xx", "app")) == 1, 10,
             "the 504 counted on the slow route")


def test_upstream_resets(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    assert fresh_get(g, "/drop").status == 502
    m = metrics(g.admin)
    assert m.types.get("gatehouse_upstream_resets_total") == "counter"
    wait_for(lambda: metrics(g.admin).get("gatehouse_upstream_resets_total", 0, cluster="app") >= 1,
             5, "resets_total{cluster=app} >= 1 after the upstream closed without a response")


def test_reload_metrics(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    m = metrics(g.admin)
    assert m.value("gatehouse_config_generation") == 1
    assert m.value("gatehouse_config_reloads_total", result="ok") == 0
    assert m.value("gatehouse_config_reloads_total", result="failed") == 0
    assert m.types.get("gatehouse_config_generation") == "gauge"
    # SIGHUP with the file unchanged is a full, successful reload.
    sighup(g)
    m = wait_metric(g.admin, "gatehouse_config_generation", 2)
    assert m.value("gatehouse_config_reloads_total", result="ok") == 1
    # A bad config: counted, generation unchanged.
    good = g.config_path.read_text()
    write_config(g, good.replace("routes:", "routes: [", 1), "rename")
    m = wait_metric(g.admin, "gatehouse_config_reloads_total", 1, result="failed")
    assert m.value("gatehouse_config_generation") == 2
    assert m.value("gatehouse_config_reloads_total", result="ok") == 1
    # A good changed config.
    cfg = base_cfg(up)
    cfg["admin"]["listen"] = f"127.0.0.1:{g.admin}"
    cfg["listeners"][0]["routes"][0]["direct_response"]["body"] = "changed"
    write_config(g, config_text(g, cfg), "inplace")
    m = wait_metric(g.admin, "gatehouse_config_generation", 3)
    assert m.value("gatehouse_config_reloads_total", result="ok") == 2
    assert m.value("gatehouse_config_reloads_total", result="failed") == 1
    assert fresh_get(g, "/r1").body == b"changed"


def test_counters_survive_reload(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, workers=2)
    for i in range(5):
        assert fresh_get(g, f"/r1/{i}").status == 200
    wait_metric(g.admin, REQ, 5, **rq("r1", "2xx"))
    sighup(g)
    wait_metric(g.admin, "gatehouse_config_generation", 2)
    for i in range(4):
        assert fresh_get(g, f"/r1/{i}").status == 200
    wait_metric(g.admin, REQ, 9, **rq("r1", "2xx"))


def test_label_cardinality_bounded(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, workers=2)
    assert fresh_get(g, "/r1/first").status == 200
    assert fresh_get(g, "/echo").status == 200
    assert fresh_get(g, "/nomatch/first").status == 404
    wait_metric(g.admin, REQ, 1, **rq("", "4xx"))
    m0 = metrics(g.admin)
    before = {n: m0.labelsets(n) for n in {s[0] for s in m0.samples}}
    for i in range(60):
        assert fresh_get(g, f"/r1/unique-{i}-zzq").status == 200
        assert fresh_get(g, f"/echo/unique-{i}-zzq?q={i}").status == 200
        assert fresh_get(g, f"/nomatch/unique-{i}-zzq").status == 404
    m = wait_metric(g.admin, REQ, 61, **rq("", "4xx"))
    assert "zzq" not in m.text and "unique-" not in m.text
    grown = {}
    for n in {s[0] for s in m.samples}:
        if n.startswith("gatehouse_requests") or n.startswith("gatehouse_request_") or \
                n.startswith("gatehouse_response_"):
            new = m.labelsets(n) - before.get(n, set())
            if new:
                grown[n] = new
    assert not grown, f"new series from distinct paths: {grown}"


def test_exposition_format(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    fresh_get(g, "/r1")
    fresh_get(g, "/echo")
    m = wait_metric(g.admin, REQ, 1, **rq("r2", "2xx", "app"))
    names = {s[0] for s in m.samples}
    for n in names:
        base = n
        for suf in ("_bucket", "_sum", "_count"):
            if n.endswith(suf) and m.types.get(n[: -len(suf)]) == "histogram":
                base = n[: -len(suf)]
        assert base in m.types, f"{n} has no # TYPE line"
        if m.types[base] == "counter":
            assert base.endswith("_total"), base
    expected = {
        "gatehouse_requests_total": "counter",
        "gatehouse_request_duration_seconds": "histogram",
        "gatehouse_upstream_request_duration_seconds": "histogram",
        "gatehouse_request_bytes_total": "counter",
        "gatehouse_response_bytes_total": "counter",
        "gatehouse_downstream_connections_active": "gauge",
        "gatehouse_downstream_connections_total": "counter",
        "gatehouse_upstream_connections_active": "gauge",
        "gatehouse_upstream_connections_total": "counter",
        "gatehouse_upstream_connect_failures_total": "counter",
        "gatehouse_upstream_timeouts_total": "counter",
        "gatehouse_upstream_resets_total": "counter",
        "gatehouse_upstream_pool_hits_total": "counter",
        "gatehouse_config_reloads_total": "counter",
        "gatehouse_config_generation": "gauge",
    }
    wrong = {n: m.types.get(n) for n, t in expected.items() if m.types.get(n) != t}
    assert not wrong, f"missing or mistyped metrics: {wrong}"
    for v in (s[2] for s in m.samples):
        assert not math.isnan(v)
    # Cluster-labelled counters exist for each configured cluster from the start.
    for n in ("gatehouse_upstream_connect_failures_total", "gatehouse_upstream_timeouts_total"):
        assert m.get(n, cluster="app") is not None, (n, m.series(n))


def test_concurrent_requests_two_workers(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, workers=2)
    errors = []

    def run(k):
        try:
            for i in range(25):
                with RawConn(g.port) as c:
                    c.request("GET", f"/r1/{k}/{i}")
                    assert c.read_response().status == 200
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    m = wait_metric(g.admin, REQ, 200, **rq("r1", "2xx"))
    check_histogram(m, "gatehouse_request_duration_seconds", 200, listener="edge", route="r1")
