"""An outside review of issue 11's second round (perf11's authorizer short
path, cache_scope: process, the implicit Lambda endpoint), as an attacker
would: each test is a case that broke, or one that must keep holding.
docs/authorizers.md#caching, docs/lambda.md#endpoint."""

import pytest

from authz_server import AuthzServer
from harness import fetch
from test_authorizers import az


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


def calls_to(srv, path):
    with srv.lock:
        return sum(1 for r in srv.requests if r.target == path)


def two_scopes(up, port, process_entries):
    """/w/ behind a worker-scoped authorizer (10 entries), /p/ behind a
    process-scoped one; both simple aws-v2 answers keyed by Authorization
    (the routes the short path takes)."""
    def a(path, **kw):
        return az(simple_responses=True, ttl="300s", http={"cluster": "authz", "path": path},
                  headers={"x-user": "context.u"}, **kw)

    return {
        "listeners": [{"name": "edge", "routes": [
            {"name": "w", "match": {"path": {"prefix": "/w/"}}, "authn": "aw", "to": "app"},
            {"name": "p", "match": {"path": {"prefix": "/p/"}}, "authn": "ap", "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]},
                     "authz": {"endpoints": [f"127.0.0.1:{port}"]}},
        "providers": {"authorizers": {
            "aw": a("/aw", cache_entries=10),
            "ap": a("/ap", cache_scope="process", cache_entries=process_entries)}},
    }


def allow_all(ev):
    return {"isAuthorized": True, "context": {"u": "user-" + ev["headers"]["authorization"]}}


def test_process_scope_leaves_the_worker_cache_alone(gatehouse, upstream, authz):
    """A process-scoped authorizer keeps its answers in the process's table
    only: its requests never size, fill or flush the workers' own cache.
    (The short path of az_fast routes looked in the worker cache for every
    authorizer keyed by Authorization, growing it to the process-scoped
    authorizer's cache_entries, up to a million entries per worker, and a
    growth drops every answer the worker had cached for other
    authorizers.)"""
    up = upstream()
    srv = authz(allow_all)
    g = gatehouse(two_scopes(up, srv.port, 100000))
    tok = [("authorization", "alice")]
    assert fetch(g.port, "GET", "/w/1", headers=tok).status == 200
    assert calls_to(srv, "/aw") == 1
    for i in range(3):
        assert fetch(g.port, "GET", "/p/1", headers=tok).status == 200
    assert calls_to(srv, "/ap") == 1, "the process cache answers its own requests"
    assert fetch(g.port, "GET", "/w/2", headers=tok).status == 200
    assert calls_to(srv, "/aw") == 1, "the worker's cached answer is still there"
