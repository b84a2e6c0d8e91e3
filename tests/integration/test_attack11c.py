"""An outside review of issue 11's second round (perf11's authorizer short
path, cache_scope: process, the implicit Lambda endpoint), as an attacker
would: each test is a case that broke, or one that must keep holding.
docs/authorizers.md#caching, docs/lambda.md#endpoint."""

import pytest

from authz_server import AuthzServer
from harness import fetch
from test_authorizers import az
from test_lambda_upstream import FAKE, aws_env, implicit_config, validate  # noqa: F401


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


# ---- the implicit Lambda endpoint


@pytest.mark.parametrize("ignore,regional", [
    ("true", True), ("TRUE", True), ("True", True),
    ("false", False), ("", False), ("1", False), ("yes", False),
])
def test_ignore_configured_endpoint_urls_means_aws(tmp_path, aws_env, ignore, regional):  # noqa: F811
    """AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (any case, as the SDKs read
    it) turns AWS_ENDPOINT_URL_LAMBDA and AWS_ENDPOINT_URL off: the SDKs then
    call AWS's regional endpoint, and gatehouse, whose events carry clients'
    tokens and bodies, must not send them to the URL the variables name.
    (DNS is off, so the regional endpoint shows as the URL that cannot be
    resolved.)"""
    aws_env.setenv("GH_CONFIG_NO_DNS", "1")
    aws_env.setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")
    aws_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:10")
    aws_env.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", ignore)
    cfg = implicit_config(FAKE)
    cfg["clusters"]["fn"]["lambda"]["region"] = "eu-west-3"
    rc, out = validate(tmp_path, cfg)
    if regional:
        assert rc == 1, out
        assert "'https://lambda.eu-west-3.amazonaws.com'" in out, out
    else:
        assert rc == 0, out


def _named_implicit(where):
    """A config whose fn cluster makes the implicit endpoint
    http://127.0.0.1:9 and whose other block names that URL as a cluster:
    a lambda cluster before fn or after it, an authorizer's lambda.endpoint
    or its http.cluster."""
    url = "http://127.0.0.1:9"
    cfg = implicit_config(FAKE)
    other = {"type": "lambda", "lambda": {"function": "g", "region": "us-east-1", "endpoint": url}}
    if where == "cluster_before":
        cfg["clusters"] = {"other": other, **cfg["clusters"]}
    elif where == "cluster_after":
        cfg["clusters"]["other"] = other
    else:
        a = {"format": "aws-v2", "ttl": 0}
        if where == "authorizer_lambda":
            a["lambda"] = {"function": "az", "region": "us-east-1", "endpoint": url}
        else:
            a["http"] = {"cluster": url, "path": "/az"}
        cfg["providers"] = {"authorizers": {"az": a}}
    return cfg


@pytest.mark.parametrize("where", ["cluster_before", "cluster_after", "authorizer_lambda",
                                   "authorizer_http"])
def test_the_implicit_endpoint_is_named_by_no_key(tmp_path, aws_env, where):  # noqa: F811
    """The cluster made for the endpoint URL is not one the config can
    name (as routes cannot): lambda.endpoint naming it was refused when
    the block came before the one that made it and accepted after, so a
    config's meaning hung on the order of its clusters."""
    aws_env.setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")
    rc, out = validate(tmp_path, _named_implicit(where))
    assert rc == 1, out
    assert "names unknown cluster 'http://127.0.0.1:9'" in out, out
    # Written out, the same cluster is one (and the implicit one is it).
    cfg = _named_implicit(where)
    cfg["clusters"]["http://127.0.0.1:9"] = {"endpoints": ["127.0.0.1:9"]}
    rc, out = validate(tmp_path, cfg)
    assert rc == 0, out


# ---- the short path against the general way, and both scopes


def _three_routes(up, port):
    """/t0/ asks every time (ttl 0: the general way), /tw/ caches per
    worker (the short path, gh_azr_apply_cached), /tp/ caches for the
    process; one simple aws-v2 authorizer each, mapping context.u and
    context.n to headers."""
    routes, azs = [], {}
    for name, kw in (("t0", {"ttl": 0}), ("tw", {"ttl": "300s"}),
                     ("tp", {"ttl": "300s", "cache_scope": "process"})):
        azs[name] = az(simple_responses=True, headers={"x-user": "context.u",
                                                       "x-consumer-id": "context.n"}, **kw)
        routes.append({"name": name, "match": {"path": {"prefix": f"/{name}/"}},
                       "authn": name, "to": "app"})
    return {"listeners": [{"name": "edge", "routes": routes}],
            "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]},
                         "authz": {"endpoints": [f"127.0.0.1:{port}"]}},
            "providers": {"authorizers": azs}}


FORGED = [[], [("X-User", "root")], [("x_user", "root")], [("X_USER", "r"), ("x-user", "r2")],
          [("X_Consumer_Id", "0")], [("connection", "x-user, x-consumer-id")]]
AUTHS = [("authorization", "good1"), ("AUTHORIZATION", "good1"), ("aUTHORIZATIOn", "bad"),
         ("Authorization", "good-" + "x" * 700)]


def test_short_path_general_way_and_process_scope_agree(gatehouse, upstream, authz):
    """The same request, cached or not, per worker or per process, reaches
    the upstream with the same fields: the authorizer's values once, never
    a client's copy in any spelling (a Connection option naming them
    removes neither); denials the same."""
    def h(ev):
        tok = ev["headers"]["authorization"]
        return {"isAuthorized": tok.startswith("good"), "context": {"u": "u-" + tok[:9], "n": 7}}

    up = upstream()
    srv = authz(h)
    g = gatehouse(_three_routes(up, srv.port))
    for auth in AUTHS:
        for forged in FORGED:
            seen = []
            for rt in ("t0", "tw", "tp"):
                for _ in range(2):  # the second from the cache on tw and tp
                    r = fetch(g.port, "GET", f"/{rt}/x", headers=[auth] + forged)
                    if r.status != 200:
                        seen.append((r.status, None))
                        continue
                    got = sorted((k.lower(), v) for k, v in r.json()["headers"]
                                 if k.lower().replace("_", "-") in ("x-user", "x-consumer-id"))
                    seen.append((200, got))
            ok = auth[1].startswith("good")
            want = (200, [("x-consumer-id", "7"), ("x-user", "u-" + auth[1][:9])]) if ok \
                else (403, None)
            assert seen == [want] * 6, (auth, forged, seen)
    # t0 asks every time; tw and tp once per distinct token (good1 is
    # spelled two ways).
    tokens = len({v for _, v in AUTHS})
    assert calls_to(srv, "/authorize") == len(AUTHS) * len(FORGED) * 2 + 2 * tokens
