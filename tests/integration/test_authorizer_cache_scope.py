"""An authorizer's answer cache shared by the workers (cache_scope: process,
docs/authorizers.md#caching): with two workers, an answer one worker
fetched decides the next request with the same identity values on the
other, without a call; denials, IAM policies per method ARN, envoy
answers, expiry, the cache_entries bound, usage keys and reloads keep the
per-worker cache's semantics.

Which worker a connection lands on is the kernel's choice (SO_REUSEPORT
hashes the addresses). To know that requests reached both workers, each
test first opens keep-alive connections until a worker-scoped authorizer
(the oracle: one call per worker for one token) was called twice, which
proves the connections span the two workers; a connection stays on its
worker, so the process-scoped authorizer is then asked over the same
connections."""

import json

import pytest

from authz_server import AuthzServer, allow_policy
from harness import RawConn, echo_of, fetch, free_port, hdr
from ops_util import config_text, sighup, wait_for, wait_metric, write_config

ARN_PREFIX = "arn:aws:execute-api:us-east-1:123456789012:orders/prod/"
API = {"account_id": "123456789012", "api_id": "orders", "stage": "prod"}
MAX_CONNS = 64  # the chance that 64 connections all land on one of 2 workers: 2**-63


def az(path, scope, fmt="aws-v2", **kw):
    a = {"format": fmt, "http": {"cluster": "authz", "path": path}, "cache_scope": scope}
    if fmt != "envoy":
        a["api"] = dict(API)
    a.update(kw)
    return a


def config(up, authz_port, authorizers, routes, admin_port=None, extra=None):
    cfg = {
        "listeners": [{"name": "edge", "routes": routes}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]},
                     "authz": {"endpoints": [f"127.0.0.1:{authz_port}"]}},
        "providers": {"authorizers": authorizers},
    }
    if admin_port:
        cfg["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    for k, v in (extra or {}).items():
        cfg[k] = v
    return cfg


def route(name, prefix, authn):
    return {"name": name, "match": {"path": {"prefix": prefix}}, "authn": authn, "to": "app"}


# The oracle: a worker-scoped simple authorizer on /w.
ORACLE = {"oracle": az("/oracle", "worker", simple_responses=True)}
ORACLE_ROUTE = route("oracle", "/w/", "oracle")


def simple(ev):
    if ev.get("rawPath", "").startswith("/w/"):
        return {"isAuthorized": True}
    tok = ev["headers"].get("authorization", "")
    return {"isAuthorized": tok.startswith("good"), "context": {"tok": tok}}


def ask(c, target, token=None, method="GET", headers=()):
    hs = [("authorization", token)] if token is not None else []
    c.request(method, target, hs + list(headers))
    return c.read_response(method)


def calls_to(srv, path):
    with srv.lock:
        return sum(1 for r in srv.requests if r.target.split("?")[0] == path)


def upstream_got(up, prefix):
    return sum(1 for r in up.complete_requests() if r.path.startswith(prefix))


def spread(g, srv, probe):
    """Keep-alive connections that span both workers: opened until the
    worker-scoped oracle, asked about one token on each, was called twice."""
    base = calls_to(srv, "/oracle")
    conns = []
    while calls_to(srv, "/oracle") - base < 2:
        assert len(conns) < MAX_CONNS, "every connection landed on one worker"
        c = RawConn(g.port)
        r = ask(c, "/w/probe", probe)
        assert r.status == 200, r
        conns.append(c)
    # Two calls for one token: two workers, each with its own cache.
    assert calls_to(srv, "/oracle") - base == 2
    return conns


@pytest.fixture
def authz():
    servers = []

    def make(handler, raw=False):
        s = AuthzServer(handler, raw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def start(gatehouse, upstream, authz, handler, authorizers, routes, workers=2, admin=False,
          extra=None):
    up = upstream()
    srv = authz(handler)
    ap = free_port() if admin else None
    g = gatehouse(config(up, srv.port, {**ORACLE, **authorizers}, [ORACLE_ROUTE] + routes, ap,
                         extra), workers=workers)
    g.admin_port = ap
    return g, up, srv


def test_process_scope_one_call_for_all_workers(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"azp": az("/p", "process", simple_responses=True,
                                  headers={"x-tok": "context.tok"})},
                       [route("p", "/p/", "azp")], admin=True)
    conns = spread(g, srv, "probe-1")
    for i, c in enumerate(conns):
        r = ask(c, "/p/echo", "good-1", headers=[("x-tok", "forged")])
        assert r.status == 200, r
        # The cached answer's header, on every worker.
        assert hdr(echo_of(r)["headers"], "x-tok") == ["good-1"]
    assert calls_to(srv, "/p") == 1, "one answer for every worker"
    # New connections too (wherever they land).
    for _ in range(8):
        assert fetch(g.port, "GET", "/p/echo", headers=[("authorization", "good-1")]).status == 200
    assert calls_to(srv, "/p") == 1
    # Another value is another key.
    assert ask(conns[0], "/p/echo", "good-2").status == 200
    assert calls_to(srv, "/p") == 2
    # Every decision counted, by the worker that made it.
    wait_metric(g.admin_port, "gatehouse_auth_decisions_total", 2, provider="azp",
                decision="allow", reason="allowed")
    wait_metric(g.admin_port, "gatehouse_auth_decisions_total", len(conns) - 1 + 8,
                provider="azp", decision="allow", reason="allowed_cached")


def test_worker_scope_stays_per_worker(gatehouse, upstream, authz):
    """The default: the same connections make one call per worker."""
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"azw": az("/pw", "worker", simple_responses=True)},
                       [route("pw", "/p/", "azw")])
    conns = spread(g, srv, "probe-1")
    for c in conns:
        assert ask(c, "/p/echo", "good-1").status == 200
    assert calls_to(srv, "/pw") == 2


def test_process_scope_denials_cached(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"azp": az("/p", "process", simple_responses=True)},
                       [route("p", "/p/", "azp")])
    conns = spread(g, srv, "probe-1")
    for c in conns:
        r = ask(c, "/p/echo", "bad")
        assert r.status == 403 and json.loads(r.body)["error"] == "forbidden", r
    assert calls_to(srv, "/p") == 1, "a denial is cached for every worker too"
    assert upstream_got(up, "/p/") == 0


def test_process_scope_iam_policy_evaluated_per_method_arn(gatehouse, upstream, authz):
    def h(ev):
        if "methodArn" not in ev:  # the oracle (aws-v2)
            return {"isAuthorized": True}
        out = allow_policy("user-1", [ARN_PREFIX + "GET/a*"], context={"plan": "gold"})
        out["policyDocument"]["Statement"].append(
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN_PREFIX + "GET/a/x*"})
        return out

    g, up, srv = start(gatehouse, upstream, authz, h,
                       {"azp": az("/p", "process", fmt="aws-v1-token",
                                  headers={"x-user": "principalId", "x-plan": "context.plan"})},
                       [route("a", "/a/", "azp"), route("b", "/b", "azp")])
    conns = spread(g, srv, "probe-1")
    for i, c in enumerate(conns):
        e = echo_of(ask(c, f"/a/{i}", "tok"))
        assert hdr(e["headers"], "x-user") == ["user-1"]
        assert hdr(e["headers"], "x-plan") == ["gold"]
        assert ask(c, "/b", "tok").status == 403
        assert ask(c, "/a/x1", "tok").status == 403, "the explicit Deny wins from the cache"
    assert calls_to(srv, "/p") == 1, "one cached policy decides every method ARN on every worker"


def test_process_scope_envoy_keyed_by_request(gatehouse, upstream, authz):
    def h(req):
        if req.target == "/oracle":  # the aws-v2 oracle
            return (200, [("content-type", "application/json")], b'{"isAuthorized": true}')
        ok = req.header("authorization") == "good" and req.method == "GET"
        if ok:
            return (200, [("x-user", "u1")], b"")
        return (403, [("content-type", "text/plain")], b"no")

    up = upstream()
    srv = authz(h, raw=True)
    azp = az("/ext", "process", fmt="envoy", identity_sources=["$request.header.Authorization"],
             envoy={"upstream_headers": ["x-user"]})
    g = gatehouse(config(up, srv.port, {**ORACLE, "azp": azp},
                         [ORACLE_ROUTE, route("e", "/e/", "azp")]), workers=2)
    conns = spread(g, srv, "probe-1")
    for c in conns:
        e = echo_of(ask(c, "/e/public", "good", headers=[("x-user", "forged")]))
        assert hdr(e["headers"], "x-user") == ["u1"]
    assert calls_to(srv, "/ext/e/public") == 1
    # Another request with the same token is another question; envoy
    # denials are not cached (passed on as they came): one call each.
    for c in conns:
        r = ask(c, "/e/admin", "good", method="DELETE")
        assert r.status == 403 and r.body == b"no", r
    assert calls_to(srv, "/ext/e/admin") == len(conns)


def test_process_scope_expiry(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"azp": az("/p", "process", simple_responses=True, ttl="1s")},
                       [route("p", "/p/", "azp")])
    conns = spread(g, srv, "probe-1")
    assert ask(conns[0], "/p/echo", "good").status == 200
    assert calls_to(srv, "/p") == 1
    k = [0]

    def again():
        k[0] += 1
        assert ask(conns[k[0] % len(conns)], "/p/echo", "good").status == 200
        return calls_to(srv, "/p") >= 2

    wait_for(again, timeout=20, what="a call once the answer expired")


def test_process_scope_bounded_by_cache_entries(gatehouse, upstream, authz):
    """cache_entries: 4 for the whole process: ten keys asked twice over
    both workers' connections leave at most four answers to reuse (the
    last one stored among them); a cache that grew, or one per worker
    (eight), would answer more."""
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"azp": az("/p", "process", simple_responses=True, cache_entries=4)},
                       [route("p", "/p/", "azp")])
    conns = spread(g, srv, "probe-1")
    toks = [f"good-{i}" for i in range(10)]
    for i, t in enumerate(toks):
        assert ask(conns[i % len(conns)], "/p/echo", t).status == 200
    assert calls_to(srv, "/p") == 10
    # The last one stored is there, from the other worker's side too.
    for c in conns:
        assert ask(c, "/p/echo", toks[-1]).status == 200
    assert calls_to(srv, "/p") == 10
    for i, t in enumerate(toks[:-1]):
        assert ask(conns[(i + 1) % len(conns)], "/p/echo", t).status == 200
    # At most three of the nine others were still cached.
    assert calls_to(srv, "/p") >= 10 + 6


def test_reload_drops_process_cache(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"azp": az("/p", "process", simple_responses=True)},
                       [route("p", "/p/", "azp")])
    conns = spread(g, srv, "probe-1")
    for c in conns:
        assert ask(c, "/p/echo", "good").status == 200
    assert calls_to(srv, "/p") == 1
    for c in conns:
        c.close()
    write_config(g, config_text(g, config(up, srv.port, {**ORACLE, "azp": az(
        "/p", "process", simple_responses=True)}, [ORACLE_ROUTE, route("p", "/p/", "azp")])))
    sighup(g)
    wait_for(lambda: all(f"worker={w} serving generation 2" in g.stderr for w in range(2)), 10,
             "both workers on the new config")
    conns = spread(g, srv, "probe-2")
    for c in conns:
        assert ask(c, "/p/echo", "good").status == 200
    assert calls_to(srv, "/p") == 2, "the new config asks again, once for every worker"


def test_process_scope_usage_key(gatehouse, upstream, authz, tmp_path):
    """aws-v1 usageIdentifierKey from a shared cached answer: the key's
    plan applies on every worker (its quota counted once per request), an
    invalid key is a 403 from the cache as from the call."""
    from test_apikey_auth import create

    keys = {}

    def h(ev):
        if "methodArn" not in ev:
            return {"isAuthorized": True}
        who = ev["authorizationToken"]
        out = allow_policy("user-" + who, "*")
        out["usageIdentifierKey"] = keys.get(who, "junk")
        return out

    g, up, srv = start(gatehouse, upstream, authz, h,
                       {"azp": az("/p", "process", fmt="aws-v1-token",
                                  headers={"x-user": "principalId"})},
                       [route("p", "/p/", "azp")],
                       extra={"store": {"kind": "sqlite", "path": str(tmp_path / "gh.db")},
                              "plans": {"bronze": {"quota": {"limit": 3, "period": "day"}}}})
    keys["alice"], _ = create(g, "alice", "--plan", "bronze")
    conns = spread(g, srv, "probe-1")
    got = []
    for i in range(5):
        got.append(ask(conns[i % len(conns)], "/p/echo", "alice").status)
    assert got == [200, 200, 200, 429, 429], got
    assert calls_to(srv, "/p") == 1
    for c in conns:
        r = ask(c, "/p/echo", "mallory")
        assert r.status == 403 and json.loads(r.body)["detail"] == "invalid usage identifier key"
    assert calls_to(srv, "/p") == 2
    assert upstream_got(up, "/p/") == 3


def test_process_scope_custom_policy(gatehouse, upstream, authz):
    """A CUSTOM policy's authorizer (the policies filter's runtime) shares
    its answers across workers too."""
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"azp": az("/p", "process", simple_responses=True)},
                       [{"name": "adm", "match": {"path": {"prefix": "/admin"}},
                         "policies": ["ext"], "to": "app"}],
                       extra={"policies": {"ext": {"action": "CUSTOM", "provider": {"name": "azp"},
                                                   "rules": [{"to": [{"operation": {
                                                       "paths": ["/admin*"]}}]}]}}})
    conns = spread(g, srv, "probe-1")
    for c in conns:
        assert ask(c, "/admin/a", "good").status == 200
        r = ask(c, "/admin/a", "bad")
        assert r.status == 403 and json.loads(r.body)["policy"] == "ext", r
    assert calls_to(srv, "/p") == 2
