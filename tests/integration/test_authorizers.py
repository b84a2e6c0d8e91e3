"""Custom authorizers on routes (docs/authorizers.md): real authorizer
services on loopback (an HTTP server answering API Gateway events, the
local Lambda Invoke endpoint verifying SigV4 with botocore, an ext_authz
service), every outcome and error mapping, the cache (counted at the
service), headers, mixes with JWT and API keys, CUSTOM policies, and
clients or services that misbehave."""

import json
import socket
import time

import pytest

from authz_server import HANG, AuthzServer, FunctionError, allow_policy
from harness import RawConn, echo_of, fetch, hdr
from ops_util import wait_for

ARN_PREFIX = "arn:aws:execute-api:us-east-1:123456789012:orders/prod/"


def config(up, authz_port, authorizers, routes=None, policies=None, extra=None):
    cfg = {
        "listeners": [{"name": "edge", "routes": routes or [
            {"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "az", "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]},
                     "authz": {"endpoints": [f"127.0.0.1:{authz_port}"]}},
        "providers": {"authorizers": authorizers},
    }
    if policies:
        cfg["policies"] = policies
    if extra:
        for k, v in extra.items():
            if k == "providers":
                cfg["providers"].update(v)
            else:
                cfg[k] = v
    return cfg


def az(fmt="aws-v2", **kw):
    a = {"format": fmt, "http": {"cluster": "authz", "path": "/authorize"},
         "api": {"account_id": "123456789012", "api_id": "orders", "stage": "prod"}}
    a.update(kw)
    return a


def get(g, target="/echo", headers=(), method="GET"):
    return fetch(g.port, method, target, headers=list(headers))


def body(r):
    return json.loads(r.body)


def simple(ev):
    tok = ev["headers"].get("authorization", "")
    return {"isAuthorized": tok == "good", "context": {"tenant": "t1", "n": 7}}


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


def start(gatehouse, upstream, authz, handler, authorizers, **kw):
    up = upstream()
    srv = authz(handler)
    g = gatehouse(config(up, srv.port, authorizers, **kw))
    return g, up, srv


# ---- aws-v2 simple answers ----


def test_v2_simple_allow_deny_missing(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"az": az(simple_responses=True, ttl=0,
                                 headers={"x-tenant": "context.tenant"})})
    e = echo_of(get(g, headers=[("authorization", "good"), ("x-tenant", "forged")]))
    assert hdr(e["headers"], "x-tenant") == ["t1"]
    ev = srv.requests[-1].json()
    assert ev["version"] == "2.0" and ev["type"] == "REQUEST"
    assert ev["routeArn"] == ARN_PREFIX + "GET/echo"
    assert ev["identitySource"] == ["good"]
    assert srv.requests[-1].method == "POST" and srv.requests[-1].target == "/authorize"

    r = get(g, headers=[("authorization", "bad")])
    assert r.status == 403, r
    assert body(r)["error"] == "forbidden" and body(r)["authorizer"] == "az"

    n = srv.calls
    r = get(g)
    assert r.status == 401 and body(r)["error"] == "unauthorized"
    assert hdr(r.headers, "www-authenticate") == ['Bearer realm="gatehouse"']
    assert srv.calls == n, "a missing identity source must not call the authorizer"
    assert len(up.complete_requests()) == 1


def test_v2_cache_hits_and_denials_cached(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"az": az(simple_responses=True, ttl="300s")})
    for _ in range(3):
        assert get(g, headers=[("authorization", "good")]).status == 200
    assert srv.calls == 1
    for _ in range(3):
        assert get(g, headers=[("authorization", "bad")]).status == 403
    assert srv.calls == 2, "a denial is cached too"
    # Another value is another key.
    assert get(g, headers=[("authorization", "bad2")]).status == 403
    assert srv.calls == 3


def test_cached_answers_give_the_identity_a_call_gives(gatehouse, upstream, authz):
    """A cached simple allow (the one-authorizer route's short path) leaves
    the same identity as the call did: its context is the claims a policy
    reads, per token, however often the cache answers; what the cache
    cannot decide (a denial) is still refused."""
    def handler(ev):
        tok = ev["headers"].get("authorization", "")
        return {"isAuthorized": tok != "bad",
                "context": {"tenant": "t1" if tok == "good" else "t2"}}

    g, up, srv = start(
        gatehouse, upstream, authz, handler,
        {"az": az(simple_responses=True, ttl="300s", headers={"x-tenant": "context.tenant"})},
        routes=[{"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "az",
                 "policies": ["t1-only"], "to": "app"}],
        policies={"t1-only": {"rules": [{"when": [{"key": "request.auth.claims[tenant]",
                                                   "values": ["t1"]}]}]}})
    for _ in range(3):
        e = echo_of(get(g, headers=[("authorization", "good"), ("x-tenant", "t1")]))
        assert hdr(e["headers"], "x-tenant") == ["t1"]
        r = get(g, headers=[("authorization", "other"), ("x-tenant", "t1")])
        assert r.status == 403 and body(r)["policy"] == "t1-only", r
        r = get(g, headers=[("authorization", "bad")])
        assert r.status == 403 and body(r)["authorizer"] == "az", r
    assert srv.calls == 3
    assert len(up.complete_requests()) == 3


def test_ttl_expiry_calls_again(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"az": az(simple_responses=True, ttl="1s")})
    assert get(g, headers=[("authorization", "good")]).status == 200
    assert srv.calls == 1

    def again():
        get(g, headers=[("authorization", "good")])
        return srv.calls >= 2

    wait_for(again, timeout=20)


# ---- IAM policies ----


def test_iam_policy_evaluated_per_method_arn_from_cache(gatehouse, upstream, authz):
    def h(ev):
        return allow_policy("user-1", [ARN_PREFIX + "GET/a*"], context={"plan": "gold"})

    g, up, srv = start(gatehouse, upstream, authz, h,
                       {"az": az(headers={"x-user": "principalId", "x-plan": "context.plan"})})
    e = echo_of(get(g, "/a/1", headers=[("authorization", "tok")]))
    assert hdr(e["headers"], "x-user") == ["user-1"]
    assert hdr(e["headers"], "x-plan") == ["gold"]
    r = get(g, "/b", headers=[("authorization", "tok")])
    assert r.status == 403, r
    assert srv.calls == 1, "one cached answer decides both method ARNs"
    assert get(g, "/a/2", headers=[("authorization", "tok")]).status == 200
    assert srv.calls == 1


def test_iam_explicit_deny_wins(gatehouse, upstream, authz):
    def h(ev):
        out = allow_policy("u", "*")
        out["policyDocument"]["Statement"].append(
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN_PREFIX + "*/admin*"})
        return out

    g, up, srv = start(gatehouse, upstream, authz, h, {"az": az(ttl=0)})
    assert get(g, "/x", headers=[("authorization", "t")]).status == 200
    assert get(g, "/admin/x", headers=[("authorization", "t")]).status == 403


# ---- aws-v1 ----


def test_v1_token_event_and_validation(gatehouse, upstream, authz):
    def h(ev):
        assert ev["type"] == "TOKEN"
        if ev["authorizationToken"] == "Bearer deny":
            return allow_policy("u", "*", effect="Deny")
        if ev["authorizationToken"] == "Bearer unauth":
            raise FunctionError("Unauthorized")
        if ev["authorizationToken"] == "Bearer crash":
            raise FunctionError("boom")
        return allow_policy("u-" + ev["authorizationToken"][7:], ev["methodArn"],
                            context={"ok": True, "n": 1.5})

    g, up, srv = start(gatehouse, upstream, authz, h,
                       {"az": az("aws-v1-token", ttl=0, token_validation="^Bearer [a-z]+$",
                                 headers={"x-user": "principalId", "x-ok": "context.ok",
                                          "x-n": "context.n"})})
    e = echo_of(get(g, headers=[("authorization", "Bearer abc")]))
    assert hdr(e["headers"], "x-user") == ["u-abc"]
    assert hdr(e["headers"], "x-ok") == ["true"] and hdr(e["headers"], "x-n") == ["1.5"]
    assert srv.requests[-1].json()["methodArn"] == ARN_PREFIX + "GET/echo"
    assert get(g, headers=[("authorization", "Bearer deny")]).status == 403
    r = get(g, headers=[("authorization", "Bearer unauth")])
    assert r.status == 401 and body(r)["error"] == "unauthorized"
    r = get(g, headers=[("authorization", "Bearer crash")])
    assert r.status == 500 and body(r)["error"] == "authorizer_error"
    n = srv.calls
    r = get(g, headers=[("authorization", "Basic Zm9v")])
    assert r.status == 401
    assert srv.calls == n, "token_validation refuses without calling"


def test_v1_request_sources_query_and_cookie(gatehouse, upstream, authz):
    def h(ev):
        assert ev["type"] == "REQUEST"
        ok = ev["queryStringParameters"].get("t") == "q1"
        return allow_policy("p", "*", effect="Allow" if ok else "Deny")

    g, up, srv = start(gatehouse, upstream, authz, h,
                       {"az": az("aws-v1-request", ttl=0,
                                 identity_sources=["method.request.querystring.t",
                                                   "method.request.header.X-Tenant"])})
    assert get(g, "/echo?t=q1", headers=[("x-tenant", "a")]).status == 200
    assert get(g, "/echo?t=q2", headers=[("x-tenant", "a")]).status == 403
    n = srv.calls
    assert get(g, "/echo?t=q1").status == 401
    assert get(g, "/echo", headers=[("x-tenant", "a")]).status == 401
    assert get(g, "/echo?t=", headers=[("x-tenant", "a")]).status == 401
    assert srv.calls == n


# ---- errors ----


@pytest.mark.parametrize("answer", [
    (200, [("Content-Type", "application/json")], b"not json"),
    (200, [("Content-Type", "application/json")], b'{"isAuthorized": "yes"}'),
    (500, [], b"{}"),
    (200, [("Transfer-Encoding", "chunked")], b"5\r\n{\"isA\r\n0\r\n\r\n"),
    (200, [], b'{"isAuthorized": true, "context": {"a": "' + b"x" * (2 << 20) + b'"}}'),
])
def test_malformed_answers_are_500(gatehouse, upstream, authz, answer):
    g, up, srv = start(gatehouse, upstream, authz, lambda ev: answer,
                       {"az": az(simple_responses=True, ttl=0)})
    r = get(g, headers=[("authorization", "x")])
    assert r.status == 500, r
    assert body(r)["error"] == "authorizer_error"
    assert up.complete_requests() == []


def test_chunked_answer_allows(gatehouse, upstream, authz):
    data = b'{"isAuthorized": true}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (1, data[i:i + 1]) for i in range(len(data))) + b"0\r\n\r\n"
    g, up, srv = start(gatehouse, upstream, authz,
                       lambda ev: (200, [("Transfer-Encoding", "chunked")], chunks),
                       {"az": az(simple_responses=True, ttl=0)})
    assert get(g, headers=[("authorization", "x")]).status == 200


@pytest.mark.parametrize("on_error,status", [("500", 500), ("503", 503), ("allow", 200)])
def test_on_error_when_down(gatehouse, upstream, authz, on_error, status):
    up = upstream()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    g = gatehouse(config(up, dead, {"az": az(simple_responses=True, ttl=0, on_error=on_error)}))
    r = get(g, headers=[("authorization", "x")])
    assert r.status == status, r
    if status == 200:
        e = echo_of(r)
        assert len(up.complete_requests()) == 1


def test_timeout_on_hung_authorizer(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, lambda ev: HANG,
                       {"az": az(simple_responses=True, ttl=0, timeout="300ms")})
    r = get(g, headers=[("authorization", "x")])
    assert r.status == 500, r
    wait_for(lambda: srv.peer_closed >= 1, timeout=10)


def test_header_value_with_control_byte_is_malformed(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz,
                       lambda ev: {"isAuthorized": True, "context": {"t": "a\r\nx-admin: 1"}},
                       {"az": az(simple_responses=True, ttl=0, headers={"x-tenant": "context.t"})})
    r = get(g, headers=[("authorization", "x")])
    assert r.status == 500, r
    assert up.complete_requests() == []


def test_client_leaves_mid_call(gatehouse, upstream, authz):
    g, up, srv = start(gatehouse, upstream, authz, lambda ev: HANG,
                       {"az": az(simple_responses=True, ttl=0, timeout="30s")})
    c = RawConn(g.port)
    c.request("GET", "/echo", [("authorization", "x")])
    wait_for(lambda: srv.calls == 1, timeout=10)
    c.close()
    # The call is cancelled: gatehouse closes its connection to the service.
    wait_for(lambda: srv.peer_closed == 1, timeout=10)
    # And it still serves.
    srv.handler = simple
    assert get(g, headers=[("authorization", "good")]).status == 200
    assert g.alive()


# ---- Lambda targets (the Invoke API, SigV4 checked with botocore) ----

AK, SK, TOKEN = "AKIDAUTHZTEST", "authz/secret/key", "session-token-1"


@pytest.fixture
def lambda_env(monkeypatch, tmp_path):
    for k in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SK)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_lambda_authorizer_signed_and_error_mapping(gatehouse, upstream, lambda_env):
    from aws_lambda_server import LambdaServer

    def handler(event, context):
        tok = event["headers"].get("authorization")
        if tok == "unauth":
            raise Exception("Unauthorized")
        if tok == "crash":
            raise ValueError("boom")
        return {"isAuthorized": tok == "good", "context": {"who": tok}}

    with LambdaServer(credentials={AK: (SK, TOKEN)}) as lam:
        lam.register("auth", handler, versions={"live": "3"})
        up = upstream()
        a = az(simple_responses=True, ttl=0, headers={"x-who": "context.who"})
        del a["http"]
        a["lambda"] = {"function": "arn:aws:lambda:us-east-1:123456789012:function:auth",
                       "qualifier": "live", "endpoint": "lambda-api"}
        cfg = config(up, 9, {"az": a})
        cfg["clusters"]["lambda-api"] = {"endpoints": [f"127.0.0.1:{lam.port}"]}
        g = gatehouse(cfg)
        e = echo_of(get(g, headers=[("authorization", "good")]))
        assert hdr(e["headers"], "x-who") == ["good"]
        rec = lam.requests[-1]
        assert rec.verified and rec.access_key == AK and rec.qualifier == "live"
        assert rec.function == "auth"
        assert rec.target == ("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012"
                              "%3Afunction%3Aauth/invocations?Qualifier=live")
        assert json.loads(rec.body)["routeArn"] == ARN_PREFIX + "GET/echo"
        assert get(g, headers=[("authorization", "bad")]).status == 403
        r = get(g, headers=[("authorization", "unauth")])
        assert r.status == 401 and body(r)["error"] == "unauthorized"
        r = get(g, headers=[("authorization", "crash")])
        assert r.status == 500
        assert all(x.verified for x in lam.requests), [x.error for x in lam.requests]


def test_lambda_wrong_credentials_is_error(gatehouse, upstream, lambda_env):
    from aws_lambda_server import LambdaServer

    with LambdaServer(credentials={"AKIDOTHER": (SK, None)}) as lam:
        lam.register("auth", lambda e, c: {"isAuthorized": True})
        up = upstream()
        a = az(simple_responses=True, ttl=0, on_error="503")
        del a["http"]
        a["lambda"] = {"function": "auth", "region": "us-east-1", "endpoint": "lambda-api"}
        cfg = config(up, 9, {"az": a})
        cfg["clusters"]["lambda-api"] = {"endpoints": [f"127.0.0.1:{lam.port}"]}
        g = gatehouse(cfg)
        r = get(g, headers=[("authorization", "good")])
        assert r.status == 503, r
        assert lam.requests[-1].error is not None and not lam.requests[-1].verified
        assert up.complete_requests() == []


# ---- envoy ext_authz ----


def test_envoy_allow_deny_and_headers(gatehouse, upstream, authz):
    def h(req):
        if req.header("authorization") == "good":
            return (200, [("x-user", "alice"), ("x-other", "no")], b"")
        return (302, [("location", "https://login.example/"), ("x-secret", "s"),
                      ("content-type", "text/plain")], b"go login")

    up = upstream()
    srv = authz(h, raw=True)
    a = {"format": "envoy", "http": {"cluster": "authz", "path": "/check"}, "ttl": 0,
         "envoy": {"allowed_headers": ["x-tenant"], "upstream_headers": ["x-user"],
                   "client_headers": ["location"]}}
    g = gatehouse(config(up, srv.port, {"az": a}))
    e = echo_of(get(g, "/echo?q=1", headers=[("authorization", "good"), ("x-tenant", "t"),
                                             ("x-user", "forged"), ("x-not", "n")]))
    assert hdr(e["headers"], "x-user") == ["alice"]
    assert hdr(e["headers"], "x-other") == []
    rq = srv.requests[-1]
    assert rq.method == "GET" and rq.target == "/check/echo?q=1"
    assert rq.header("x-tenant") == "t" and rq.header("x-not") is None
    assert rq.header("host") == "gatehouse.test"
    r = get(g, headers=[("authorization", "bad")])
    assert r.status == 302
    assert r.header("location") == "https://login.example/"
    assert r.header("x-secret") is None
    assert r.body == b"go login"
    assert len(up.complete_requests()) == 1


def envoy_body_service(req):
    """An ext_authz service that reads the request body it was sent: it
    allows a body that says "please" and tells the upstream what it saw."""
    import hashlib
    seen = hashlib.sha256(req.body).hexdigest()
    if b"please" in req.body or (req.method == "GET" and req.body == b""):
        return (200, [("x-body-sha", seen), ("x-body-len", str(len(req.body)))], b"")
    return (403, [("content-type", "text/plain")], b"no magic word in " + str(len(req.body)).encode())


def envoy_body_az(limit="64"):
    return {"format": "envoy", "http": {"cluster": "authz", "path": "/check"}, "ttl": 0,
            "envoy": {"allowed_headers": ["content-type"], "max_request_body": limit,
                      "upstream_headers": ["x-body-sha", "x-body-len"]}}


def test_envoy_request_body_sent_and_forwarded_unchanged(gatehouse, upstream, authz):
    import hashlib
    from harness import RawConn, chunked

    up = upstream()
    srv = authz(envoy_body_service, raw=True)
    g = gatehouse(config(up, srv.port, {"az": envoy_body_az()}))
    data = b'{"ask": "please", "n": 1}'
    r = fetch(g.port, "POST", "/echo", headers=[("content-type", "application/json"),
                                                ("x-envoy-auth-partial-body", "true")], body=data)
    e = echo_of(r)
    sha = hashlib.sha256(data).hexdigest()
    assert hdr(e["headers"], "x-body-sha") == [sha]
    assert e["body"] == data.decode()
    rq = srv.requests[-1]
    assert rq.method == "POST" and rq.target == "/check/echo"
    assert rq.body == data
    assert rq.header("content-length") == str(len(data))
    assert rq.header("content-type") == "application/json"
    # Ours, not the client's copy.
    assert [v for k, v in rq.headers if k.lower() == "x-envoy-auth-partial-body"] == ["false"]
    # Chunked, in pieces split at every byte: the service gets the decoded
    # body whole, the upstream the same bytes (framed with Content-Length).
    for cut in range(1, len(data)):
        with RawConn(g.port) as c:
            raw = c.build("POST", "/echo", [("transfer-encoding", "chunked")],
                          chunked([data[:cut], data[cut:]]))
            for i in range(0, len(raw), 7):
                c.send(raw[i:i + 7])
            e = echo_of(c.read_response("POST"))
        assert srv.requests[-1].body == data
        assert e["body"] == data.decode() and hdr(e["headers"], "x-body-sha") == [sha]
    # Exactly the limit passes; one byte more is a 413 before any call,
    # framed by Content-Length or chunked.
    n = srv.calls
    at = b"please" + b"x" * 58
    assert echo_of(fetch(g.port, "POST", "/echo", body=at))["body"] == at.decode()
    assert srv.requests[-1].body == at and srv.calls == n + 1
    r = fetch(g.port, "POST", "/echo", body=at + b"x")
    assert r.status == 413 and body(r)["error"] == "payload_too_large"
    r = fetch(g.port, "POST", "/echo", headers=[("transfer-encoding", "chunked")],
              body=chunked([at[:40], at[40:] + b"x"]))
    assert r.status == 413
    assert srv.calls == n + 1
    # The service's refusal reads the body too; a GET has none.
    r = fetch(g.port, "PUT", "/echo", body=b"rude")
    assert r.status == 403 and r.body == b"no magic word in 4"
    e = echo_of(fetch(g.port, "GET", "/echo"))
    assert srv.requests[-1].body == b"" and hdr(e["headers"], "x-body-len") == ["0"]
    bodies = [q.body for q in up.complete_requests()]
    assert bodies.count(b"rude") == 0 and bodies.count(at + b"x") == 0


def test_envoy_request_body_for_custom_policy(gatehouse, upstream, authz):
    up = upstream()
    srv = authz(envoy_body_service, raw=True)
    g = gatehouse(config(
        up, srv.port, {"az": envoy_body_az("1KiB")},
        routes=[{"name": "api", "match": {"path": {"prefix": "/"}}, "policies": ["ext"],
                 "to": "app"}],
        policies={"ext": {"action": "CUSTOM", "provider": "az",
                          "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}}))
    e = echo_of(fetch(g.port, "POST", "/echo", body=b"please" * 100))
    assert srv.requests[-1].body == b"please" * 100
    assert e["body"] == "please" * 100
    r = fetch(g.port, "POST", "/echo", body=b"x" * 10)
    assert r.status == 403 and r.body == b"no magic word in 10"
    assert fetch(g.port, "POST", "/echo", body=b"please" * 200).status == 413


# ---- mixes with JWT and API keys ----


def test_any_jwt_or_authorizer(gatehouse, upstream, authz):
    from jwt_util import mint, provider, rsa_key

    k = rsa_key()
    g, up, srv = start(gatehouse, upstream, authz, simple,
                       {"az": az(simple_responses=True, ttl=0,
                                 identity_sources=["$request.header.x-token"])},
                       routes=[{"name": "api", "match": {"path": {"prefix": "/"}},
                                "authn": {"any": ["corp", "az"]}, "to": "app"}],
                       extra={"providers": {"jwt": {"corp": provider(keys=[k])}}})
    # A valid JWT decides; the authorizer is not asked.
    assert get(g, headers=[("authorization", "Bearer " + mint(k))]).status == 200
    assert srv.calls == 0
    # A bad JWT is refused even with the authorizer's source there.
    assert get(g, headers=[("authorization", "Bearer x.y.z"), ("x-token", "good")]).status == 401
    assert srv.calls == 0
    # No token: the authorizer decides when its source is there.
    r = get(g, headers=[("x-token", "good")])
    assert srv.calls == 1 and srv.requests[-1].json()["identitySource"] == ["good"]
    # simple() reads the authorization header: absent here, so denied.
    assert r.status == 403
    assert get(g).status == 401
    assert srv.calls == 1


def test_all_jwt_and_authorizer(gatehouse, upstream, authz):
    from jwt_util import mint, provider, rsa_key

    k = rsa_key()
    g, up, srv = start(gatehouse, upstream, authz,
                       lambda ev: {"isAuthorized": ev["headers"].get("x-token") == "good",
                                   "context": {"tier": "gold"}},
                       {"az": az(simple_responses=True, ttl=0,
                                 identity_sources=["$request.header.x-token"],
                                 headers={"x-tier": "context.tier"})},
                       routes=[{"name": "api", "match": {"path": {"prefix": "/"}},
                                "authn": {"all": ["corp", "az"]}, "to": "app"}],
                       extra={"providers": {"jwt": {"corp": provider(keys=[k])}}})
    tok = mint(k)
    e = echo_of(get(g, headers=[("authorization", "Bearer " + tok), ("x-token", "good")]))
    assert hdr(e["headers"], "x-tier") == ["gold"]
    assert get(g, headers=[("authorization", "Bearer " + tok), ("x-token", "bad")]).status == 403
    assert get(g, headers=[("authorization", "Bearer " + tok)]).status == 401
    n = srv.calls
    assert get(g, headers=[("x-token", "good")]).status == 401
    assert srv.calls == n, "the token is checked before the authorizer is called"


# ---- CUSTOM policies ----


def test_custom_policy_delegates_matching_requests(gatehouse, upstream, authz):
    g, up, srv = start(
        gatehouse, upstream, authz, simple,
        {"az": az(simple_responses=True, ttl=0)},
        routes=[{"name": "api", "match": {"path": {"prefix": "/"}}, "policies": ["ext", "no-x"],
                 "to": "app"}],
        policies={"ext": {"action": "CUSTOM", "provider": {"name": "az"},
                          "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
                  "no-x": {"action": "DENY",
                           "rules": [{"to": [{"operation": {"paths": ["/admin/x"]}}]}]}})
    # Not matched: no delegation.
    assert get(g, "/public").status == 200
    assert srv.calls == 0
    r = get(g, "/admin/a", headers=[("authorization", "bad")])
    assert r.status == 403 and body(r)["policy"] == "ext", r
    assert get(g, "/admin/a", headers=[("authorization", "good")]).status == 200
    # CUSTOM allowed, then DENY still applies.
    r = get(g, "/admin/x", headers=[("authorization", "good")])
    assert r.status == 403 and body(r)["policy"] == "no-x"
    assert srv.calls == 3


def test_custom_policy_dry_run_never_calls(gatehouse, upstream, authz):
    g, up, srv = start(
        gatehouse, upstream, authz, simple,
        {"az": az(simple_responses=True, ttl=0)},
        routes=[{"name": "api", "match": {"path": {"prefix": "/"}}, "policies": ["ext"],
                 "to": "app"}],
        policies={"ext": {"action": "CUSTOM", "provider": "az", "dry_run": True,
                          "rules": [{}]}})
    assert get(g, "/admin").status == 200
    assert srv.calls == 0


def test_all_api_key_and_authorizer(gatehouse, upstream, authz, tmp_path):
    """AWS's "API key required" with an authorizer: both must pass."""
    from test_apikey_auth import create

    up = upstream()
    srv = authz(simple)
    cfg = config(up, srv.port, {"az": az(simple_responses=True, ttl=0)},
                 routes=[{"name": "api", "match": {"path": {"prefix": "/"}},
                          "authn": {"all": ["keys", "az"]}, "to": "app"}],
                 extra={"providers": {"apikeys": {"keys": {"cache_ttl": "0s",
                                                           "negative_cache_ttl": "0s"}}},
                        "store": {"kind": "sqlite", "path": str(tmp_path / "gh.db")}})
    g = gatehouse(cfg)
    key, _ = create(g, "acme")
    e = echo_of(get(g, headers=[("x-api-key", key), ("authorization", "good")]))
    assert hdr(e["headers"], "x-api-key") == []  # not forwarded
    assert srv.calls == 1
    assert get(g, headers=[("x-api-key", key), ("authorization", "bad")]).status == 403
    n = srv.calls
    assert get(g, headers=[("authorization", "good")]).status == 401
    assert get(g, headers=[("x-api-key", key + "x"), ("authorization", "good")]).status == 401
    assert srv.calls == n, "the key is checked before the authorizer is called"


# ---- Node.js Lambda authorizers, written as AWS's docs show ----

# The TOKEN authorizer of AWS's "Use API Gateway Lambda authorizers" page:
# callback("Unauthorized") for a 401, callback(null, policy) otherwise
# (the CommonJS form of the page's example: the local runner require()s).
NODE_TOKEN = r"""
exports.handler = function(event, context, callback) {
    var token = event.authorizationToken;
    switch (token) {
        case 'allow':
            callback(null, generatePolicy('user', 'Allow', event.methodArn));
            break;
        case 'deny':
            callback(null, generatePolicy('user', 'Deny', event.methodArn));
            break;
        case 'unauthorized':
            callback("Unauthorized");   // Return a 401 Unauthorized response
            break;
        default:
            callback("Error: Invalid token"); // Return a 500 Invalid token response
    }
};

var generatePolicy = function(principalId, effect, resource) {
    var authResponse = {};
    authResponse.principalId = principalId;
    if (effect && resource) {
        var policyDocument = {};
        policyDocument.Version = '2012-10-17';
        policyDocument.Statement = [];
        var statementOne = {};
        statementOne.Action = 'execute-api:Invoke';
        statementOne.Effect = effect;
        statementOne.Resource = resource;
        policyDocument.Statement[0] = statementOne;
        authResponse.policyDocument = policyDocument;
    }
    authResponse.context = {
        "stringKey": "stringval",
        "numberKey": 123,
        "booleanKey": true
    };
    return authResponse;
};
"""

# A REQUEST authorizer (async form): wildcards in the resources, an
# explicit Deny for DELETE, context values of the three kinds.
NODE_REQUEST = r"""
exports.handler = async (event) => {
    const h = event.headers || {};
    const q = event.queryStringParameters || {};
    if (h.headerauth1 !== 'headerValue1' || q.QueryString1 !== 'queryValue1') {
        throw new Error("Unauthorized");
    }
    const arn = event.methodArn.split(':');
    const gw = arn[5].split('/');
    const base = arn.slice(0, 5).join(':') + ':' + gw[0] + '/' + gw[1] + '/';
    return {
        principalId: 'user-' + h.headerauth1,
        policyDocument: {
            Version: '2012-10-17',
            Statement: [
                {Action: 'execute-api:Invoke', Effect: 'Allow', Resource: [base + '*/orders/*']},
                {Action: 'execute-api:Invoke', Effect: 'Allow', Resource: base + 'GET/item?'},
                {Action: 'execute-api:*', Effect: 'Deny', Resource: base + 'DELETE/*'},
            ],
        },
        context: {tenant: 't-' + gw[0], quota: 42, admin: false, methodSeen: event.httpMethod},
    };
};
"""


def node_authorizer(lam, tmp_path, name, src, fmt, **kw):
    js = tmp_path / (name + ".js")
    js.write_text(src)
    lam.register_node(name, js)
    a = az(fmt, **kw)
    del a["http"]
    a["lambda"] = {"function": name, "region": "us-east-1", "endpoint": "lambda-api"}
    return a


def node_gatehouse(gatehouse, upstream, lam, a):
    up = upstream()
    cfg = config(up, 9, {"az": a})
    cfg["clusters"]["lambda-api"] = {"endpoints": [f"127.0.0.1:{lam.port}"]}
    return gatehouse(cfg), up


def test_node_token_authorizer_as_in_aws_docs(gatehouse, upstream, lambda_env, tmp_path):
    from aws_lambda_server import LambdaServer

    with LambdaServer(credentials={AK: (SK, TOKEN)}) as lam:
        a = node_authorizer(lam, tmp_path, "tokauth", NODE_TOKEN, "aws-v1-token", ttl=0,
                            headers={"x-s": "context.stringKey", "x-n": "context.numberKey",
                                     "x-b": "context.booleanKey", "x-p": "principalId"})
        g, up = node_gatehouse(gatehouse, upstream, lam, a)
        e = echo_of(get(g, "/orders/1", headers=[("authorization", "allow")]))
        assert hdr(e["headers"], "x-s") == ["stringval"]
        assert hdr(e["headers"], "x-n") == ["123"]
        assert hdr(e["headers"], "x-b") == ["true"]
        assert hdr(e["headers"], "x-p") == ["user"]
        ev = json.loads(lam.requests[-1].body)
        assert ev == {"type": "TOKEN", "authorizationToken": "allow",
                      "methodArn": ARN_PREFIX + "GET/orders/1"}
        r = get(g, "/orders/1", headers=[("authorization", "deny")])
        assert r.status == 403 and body(r)["error"] == "forbidden"
        r = get(g, "/orders/1", headers=[("authorization", "unauthorized")])
        assert r.status == 401 and r.header("www-authenticate") is not None
        r = get(g, "/orders/1", headers=[("authorization", "other")])
        assert r.status == 500 and body(r)["error"] == "authorizer_error"
        assert get(g, "/orders/1").status == 401  # missing source: not called
        assert len(lam.requests) == 4
        assert all(x.verified for x in lam.requests), [x.error for x in lam.requests]
        assert len(up.complete_requests()) == 1


def test_node_request_authorizer_wildcards_and_deny(gatehouse, upstream, lambda_env, tmp_path):
    from aws_lambda_server import LambdaServer

    with LambdaServer(credentials={AK: (SK, TOKEN)}) as lam:
        a = node_authorizer(lam, tmp_path, "reqauth", NODE_REQUEST, "aws-v1-request", ttl="300s",
                            identity_sources=["method.request.header.HeaderAuth1",
                                              "method.request.querystring.QueryString1"],
                            headers={"x-tenant": "context.tenant", "x-quota": "context.quota",
                                     "x-admin": "context.admin", "x-user": "principalId"})
        g, up = node_gatehouse(gatehouse, upstream, lam, a)
        good = [("headerauth1", "headerValue1")]
        q = "?QueryString1=queryValue1"
        e = echo_of(get(g, "/v1/orders/7" + q, headers=good))
        assert hdr(e["headers"], "x-tenant") == ["t-orders"]
        assert hdr(e["headers"], "x-quota") == ["42"]
        assert hdr(e["headers"], "x-admin") == ["false"]
        assert hdr(e["headers"], "x-user") == ["user-headerValue1"]
        ev = json.loads(lam.requests[-1].body)
        assert ev["type"] == "REQUEST" and ev["httpMethod"] == "GET"
        assert ev["methodArn"] == ARN_PREFIX + "GET/v1/orders/7"
        assert len(lam.requests) == 1
        # The cached policy, evaluated for each new method ARN.
        assert get(g, "/x/orders/y" + q, headers=good, method="POST").status == 200
        assert get(g, "/item" + q, headers=good).status == 403  # '?' needs one character
        assert get(g, "/items" + q, headers=good).status == 200
        assert get(g, "/itemss" + q, headers=good).status == 403
        assert get(g, "/other" + q, headers=good).status == 403  # no statement allows
        r = get(g, "/v1/orders/7" + q, headers=good, method="DELETE")
        assert r.status == 403 and "denies" in body(r)["detail"]  # explicit Deny wins
        assert len(lam.requests) == 1, "decided from the cache"
        # Another identity: called; the function's "Unauthorized" is a 401.
        r = get(g, "/v1/orders/7" + q, headers=[("headerauth1", "nope")])
        assert r.status == 401 and len(lam.requests) == 2
        # A missing source: 401 without calling.
        assert get(g, "/v1/orders/7", headers=good).status == 401
        assert len(lam.requests) == 2
        assert all(x.verified for x in lam.requests)


# ---- usageIdentifierKey (API key source AUTHORIZER) ----


def test_usage_identifier_key_ties_request_to_plan(gatehouse, upstream, lambda_env, tmp_path):
    """A Python Lambda TOKEN authorizer returns the API key of the caller's
    usage plan; the plan's quota applies, an unknown, malformed or revoked
    key is a 403 (usage_key_cache_ttl 0s: revocation takes effect at
    once, while the authorizer's own answer stays cached)."""
    from aws_lambda_server import LambdaServer
    from test_apikey_auth import cli, create

    keys = {}

    def handler(event, context):
        who = event["authorizationToken"]
        if who == "nobody":
            raise Exception("Unauthorized")
        out = allow_policy("user-" + who, resource=event["methodArn"])
        out["usageIdentifierKey"] = keys.get(who, who)
        return out

    with LambdaServer(credentials={AK: (SK, TOKEN)}) as lam:
        lam.register("usage", handler)
        up = upstream()
        a = az("aws-v1-token", ttl="300s", usage_key_cache_ttl="0s",
               usage_key_negative_cache_ttl="0s", headers={"x-user": "principalId"})
        del a["http"]
        a["lambda"] = {"function": "usage", "region": "us-east-1", "endpoint": "lambda-api"}
        cfg = config(up, 9, {"az": a}, extra={
            "store": {"kind": "sqlite", "path": str(tmp_path / "gh.db")},
            "plans": {"bronze": {"quota": {"limit": 3, "period": "day"}}}})
        cfg["clusters"]["lambda-api"] = {"endpoints": [f"127.0.0.1:{lam.port}"]}
        g = gatehouse(cfg)
        keys["alice"], _ = create(g, "alice", "--plan", "bronze")
        keys["bob"], bob_id = create(g, "bob", "--plan", "bronze")
        # A well-formed key the store does not have.
        keys["ghost"] = keys["bob"][:-4] + ("AAAA" if not keys["bob"].endswith("AAAA") else "BBBB")
        for _ in range(3):
            e = echo_of(get(g, headers=[("authorization", "alice")]))
            assert hdr(e["headers"], "x-user") == ["user-alice"]
        r = get(g, headers=[("authorization", "alice")])
        assert r.status == 429 and body(r)["error"] == "rate_limited", r
        assert len(lam.requests) == 1, "the authorizer's answer is cached"
        # Bob has his own quota.
        assert get(g, headers=[("authorization", "bob")]).status == 200
        for who in ("ghost", "junk"):
            r = get(g, headers=[("authorization", who)])
            assert r.status == 403, r
            assert body(r)["error"] == "forbidden"
            assert body(r)["detail"] == "invalid usage identifier key"
        cli(g.config_path, "revoke", bob_id)
        r = get(g, headers=[("authorization", "bob")])
        assert r.status == 403 and body(r)["detail"] == "invalid usage identifier key"
        assert get(g, headers=[("authorization", "nobody")]).status == 401
        assert len(up.complete_requests()) == 4
        assert all(x.verified for x in lam.requests)
