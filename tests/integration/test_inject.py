"""Credentials injected on the way out (docs/inject.md): a caller that sends
no credentials goes through a gatehouse whose route has `inject`; that
gatehouse obtains tokens by the client credentials grant from a token
endpoint (oauthlib's server, oauth_token_server.py) and sets them; a second
gatehouse protects the service with its JWT filter, and the service sees
the verified caller."""

import threading
import time

import jwt as pyjwt
import pytest

from harness import fetch, free_port, gatehouse_bin, to_yaml
from jwt_util import ec_key, jwks_text
from oauth_token_server import ISSUER, TokenServer
from ops_util import admin_conf, admin_get, admin_port_of, wait_admin, wait_for

AUD = "https://orders.test"
SECRET = "s3cret:with&odd=bytes+ and space"


@pytest.fixture
def key():
    return ec_key(kid="idp-1")


@pytest.fixture
def idp(key):
    with TokenServer(key, clients={"batch": SECRET}, scopes={"batch": ["orders.read", "x"]},
                     audience=AUD) as s:
        yield s


def inject_conf(idp, tmp_path, **kw):
    sec = tmp_path / "secret"
    sec.write_text(SECRET + "\n")
    c = {"token_url": idp.url, "client_id": "batch", "client_secret_file": str(sec),
         "scopes": ["orders.read"], "audience": AUD, "insecure_http": True, "timeout": "2s"}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def protected(gatehouse, upstream, key):
    """The service's own gatehouse: JWT required (the idp's key)."""
    up = upstream()
    cfg = {"listeners": [{"name": "svc", "routes": [
        {"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "idp", "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "providers": {"jwt": {"idp": {"issuer": ISSUER, "audiences": [AUD],
                                      "jwks": {"inline": jwks_text(key)},
                                      "claims_to_headers": {"sub": "x-caller"}}}}}
    return gatehouse(cfg), up


def outbound(gatehouse, svc_port, inject, admin=False):
    cfg = {"listeners": [{"name": "out", "routes": [
        {"name": "orders", "match": {"path": {"prefix": "/"}}, "inject": inject, "to": "svc"}]}],
        "clusters": {"svc": {"endpoints": [f"127.0.0.1:{svc_port}"]}}}
    if admin:
        cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    if admin:
        g.admin = admin_port_of(cfg)
        wait_admin(g.admin)
    return g


def wait_token(g, timeout=10.0):
    wait_for(lambda: fetch(g.port, "GET", "/probe").status != 503, timeout=timeout)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_caller_without_credentials_reaches_a_protected_service(gatehouse, upstream, key, idp,
                                                                tmp_path, method):
    svc, up = protected(gatehouse, upstream, key)
    g = outbound(gatehouse, svc.port, inject_conf(idp, tmp_path, auth_method=method))
    wait_token(g)
    r = fetch(g.port, "GET", "/orders/1")
    assert r.status == 200, r
    req = up.complete_requests()[-1]
    assert req.header("x-caller") == "batch"
    tok = req.header("authorization").split(" ", 1)[1]
    c = pyjwt.decode(tok, key.public, algorithms=["ES256"], audience=AUD)
    assert c["sub"] == "batch" and c["scope"] == "orders.read"
    assert [m for _, m, ok in idp.auth_methods] == [method] * len(idp.auth_methods)
    assert all(ok for _, _, ok in idp.auth_methods)
    # The form the token endpoint got: exactly the grant's parameters.
    hs, body = idp.requests[0]
    assert hs["Content-Type"] == "application/x-www-form-urlencoded"
    params = dict(p.split("=", 1) for p in body.split("&"))
    assert params["grant_type"] == "client_credentials"
    assert params["scope"] == "orders.read" and params["audience"] == "https%3A%2F%2Forders.test"
    assert ("client_secret" in params) == (method == "client_secret_post")
    assert ("Authorization" in hs) == (method == "client_secret_basic")


def test_callers_own_authorization_never_passes(gatehouse, upstream, key, idp, tmp_path):
    svc, up = protected(gatehouse, upstream, key)
    g = outbound(gatehouse, svc.port, inject_conf(idp, tmp_path))
    wait_token(g)
    forged = pyjwt.encode({"sub": "admin"}, "k" * 32, algorithm="HS256")
    for spelling in ("Authorization", "authorization", "AUTHORIZATION"):
        r = fetch(g.port, "GET", "/x", headers=[(spelling, "Bearer " + forged)])
        assert r.status == 200, r
    reqs = up.complete_requests()
    assert all(len(q.headers_all("authorization")) == 1 for q in reqs)
    assert all(q.header("x-caller") == "batch" for q in reqs)
    assert all(forged not in q.header("authorization") for q in reqs)


def test_one_token_for_many_requests_and_routes(gatehouse, upstream, key, idp, tmp_path):
    """Routes with the same inject settings share one token (per process):
    the token endpoint is asked once, however many requests and workers."""
    svc, up = protected(gatehouse, upstream, key)
    inj = inject_conf(idp, tmp_path)
    cfg = {"listeners": [{"name": "out", "routes": [
        {"name": "a", "match": {"path": {"prefix": "/a"}}, "inject": inj, "to": "svc"},
        {"name": "b", "match": {"path": {"prefix": "/"}}, "inject": dict(inj), "to": "svc"}]}],
        "clusters": {"svc": {"endpoints": [f"127.0.0.1:{svc.port}"]}}}
    g = gatehouse(cfg, workers=2)
    wait_token(g)
    for i in range(20):
        assert fetch(g.port, "GET", "/a" if i % 2 else "/b").status == 200
    assert len(idp.issued) == 1


def test_token_endpoint_down_is_503_with_a_reason_then_recovers(gatehouse, upstream, key, idp,
                                                                  tmp_path):
    svc, up = protected(gatehouse, upstream, key)
    idp.mode = "down"
    g = outbound(gatehouse, svc.port, inject_conf(idp, tmp_path), admin=True)
    # The endpoint's answer reaches gatehouse a moment after the endpoint
    # saw the request: wait for the reason, not for the request.
    wait_for(lambda: "answered 503 temporarily_unavailable" in
             fetch(g.port, "GET", "/x").body.decode(errors="replace"))
    r = fetch(g.port, "GET", "/x")
    assert r.status == 503, r
    assert "answered 503 temporarily_unavailable" in r.json()["detail"], r.json()
    assert up.complete_requests() == [], "nothing went out without credentials"
    rd = admin_get(g.admin, "/ready")
    assert rd.status == 503 and any(w.startswith("inject: ") for w in rd.json()["reasons"]), rd
    idp.mode = None  # retried after 1, 2, 4 ... s
    wait_token(g, timeout=15)
    assert fetch(g.port, "GET", "/x").status == 200
    assert admin_get(g.admin, "/ready").status == 200
    assert "cannot obtain a token" in g.stderr
    assert SECRET not in g.stderr


@pytest.mark.parametrize("mode,words", [
    ("garbage", "not a JSON object"),
    ("spaces", "Bearer field cannot carry"),
    ("mac", "not Bearer"),
])
def test_bad_answers_are_refused(gatehouse, upstream, key, idp, tmp_path, mode, words):
    svc, up = protected(gatehouse, upstream, key)
    idp.mode = mode
    g = outbound(gatehouse, svc.port, inject_conf(idp, tmp_path))
    wait_for(lambda: len(idp.requests) >= 1)
    wait_for(lambda: words in fetch(g.port, "GET", "/x").body.decode(errors="replace"))
    assert up.complete_requests() == []


def test_wrong_secret_is_503_naming_the_error(gatehouse, upstream, key, idp, tmp_path):
    svc, up = protected(gatehouse, upstream, key)
    idp.clients["batch"] = "another"
    g = outbound(gatehouse, svc.port, inject_conf(idp, tmp_path))
    wait_for(lambda: len(idp.requests) >= 1)
    wait_for(lambda: "invalid_client" in fetch(g.port, "GET", "/x").body.decode())
    assert up.complete_requests() == []


def test_refresh_across_expiry_under_load_fails_no_request(gatehouse, upstream, key, idp,
                                                           tmp_path):
    """Tokens of 3 s, refreshed at 80% of their life in the background:
    under steady load for 9 s, every request gets through with a token the
    service accepts, and several tokens were used."""
    idp.ttl = 3
    svc, up = protected(gatehouse, upstream, key)
    g = outbound(gatehouse, svc.port, inject_conf(idp, tmp_path))
    wait_token(g)
    failures, count = [], [0]
    stop = time.monotonic() + 9

    def load():
        from harness import RawConn
        with RawConn(g.port) as c:
            while time.monotonic() < stop:
                c.request("GET", "/load")
                r = c.read_response()
                count[0] += 1
                if r.status != 200:
                    failures.append((r.status, r.body))

    ts = [threading.Thread(target=load) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert failures == [], failures[:3]
    assert count[0] > 100
    used = {pyjwt.decode(q.header("authorization")[7:], options={"verify_signature": False})["jti"]
            for q in up.complete_requests()}
    assert len(used) >= 3, len(used)
    assert len(idp.issued) <= 6, "refreshed in the background, not per request"


def validate(tmp_path, inject):
    cfg = {"listeners": [{"name": "out", "listen": f"127.0.0.1:{free_port()}", "routes": [
        {"name": "r", "match": {"path": {"prefix": "/"}}, "inject": inject, "to": "svc"}]}],
        "clusters": {"svc": {"endpoints": ["127.0.0.1:9"]}}}
    p = tmp_path / "g.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    import subprocess
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("change,words", [
    ({"insecure_http": None}, "in the clear"),
    ({"token_url": "ftp://x/token"}, "https:// URL"),
    ({"token_url": "https://u@idp/token"}, "user information"),
    ({"client_secret_env": "GH_TEST_SECRET"}, "exactly one of"),
    ({"client_secret_file": None, "client_secret_env": "GH_TEST_UNSET_VAR"}, "is not set"),
    ({"client_secret_file": "/nonexistent/secret"}, "cannot read client_secret_file"),
    ({"scopes": ["a b"]}, "RFC 6749"),
    ({"scopes": ['a"b']}, "RFC 6749"),
    ({"auth_method": "private_key_jwt"}, "auth_method"),
    ({"timeout": "0s"}, "timeout"),
    ({"client_id": "a b"}, "without spaces"),
    ({"colour": "red"}, "colour"),
])
def test_config_refusals(tmp_path, idp, monkeypatch, change, words):
    monkeypatch.setenv("GH_TEST_SECRET", "x")
    monkeypatch.delenv("GH_TEST_UNSET_VAR", raising=False)
    inj = inject_conf(idp, tmp_path)
    inj.update(change)
    inj = {k: v for k, v in inj.items() if v is not None}
    rc, out = validate(tmp_path, inj)
    assert rc == 1, out
    assert words in out, out
    assert SECRET not in out


def test_secret_from_the_environment(gatehouse, upstream, key, idp, tmp_path, monkeypatch):
    monkeypatch.setenv("GH_INJECT_SECRET", SECRET)
    svc, up = protected(gatehouse, upstream, key)
    inj = inject_conf(idp, tmp_path, client_secret_file=None, client_secret_env="GH_INJECT_SECRET")
    g = outbound(gatehouse, svc.port, inj)
    wait_token(g)
    assert fetch(g.port, "GET", "/x").status == 200


def test_tokens_from_gatehouses_own_issuer(gatehouse, upstream, tmp_path):
    """The whole of issue 12's injection path with gatehouse at both ends:
    gatehouse B runs the token service and protects the service with
    `issuer: self`; gatehouse A injects tokens it gets from B's token
    endpoint for a caller that sends nothing."""
    import subprocess

    from harness import free_port, gatehouse_bin, to_yaml

    up = upstream()
    port_b = free_port()
    state = tmp_path / "state-b"
    cfg_b = {"state_dir": str(state),
             "issuer": {"issuer": f"http://127.0.0.1:{port_b}"},
             "providers": {"jwt": {"self": {"issuer": "self", "audiences": [AUD],
                                            "claims_to_headers": {"client_id": "x-caller"}}}},
             "listeners": [{"name": "b", "listen": f"127.0.0.1:{port_b}", "routes": [
                 {"name": "oauth", "match": {"path": {"prefix": "/oauth2/"}}, "issuer": {}},
                 {"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "self",
                  "to": "app"}]}],
             "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}}}
    cb = tmp_path / "b.yaml"
    cb.write_text(to_yaml(cfg_b) + "\n")
    out = subprocess.run([str(gatehouse_bin()), "client", "create", "-c", str(cb), "--name",
                          "legacy", "--scopes", "orders.read", "--audiences", AUD],
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    creds = dict(line.split("=", 1) for line in out.stdout.split())
    gatehouse(cfg_b)
    sec = tmp_path / "legacy-secret"
    sec.write_text(creds["client_secret"] + "\n")
    inj = {"token_url": f"http://127.0.0.1:{port_b}/oauth2/token", "insecure_http": True,
           "client_id": creds["client_id"], "client_secret_file": str(sec),
           "scopes": ["orders.read"], "audience": AUD}
    a = outbound(gatehouse, port_b, inj)
    wait_token(a)
    for _ in range(5):
        r = fetch(a.port, "GET", "/orders/7")
        assert r.status == 200, r
    reqs = up.complete_requests()
    assert len(reqs) >= 5
    assert all(q.header("x-caller") == creds["client_id"] for q in reqs)
    tok = reqs[-1].header("authorization")[7:]
    hdr = pyjwt.get_unverified_header(tok)
    assert hdr["typ"] == "at+jwt" and hdr["alg"] == "ES256"
    claims = pyjwt.decode(tok, options={"verify_signature": False})
    assert claims["iss"] == f"http://127.0.0.1:{port_b}" and claims["scope"] == "orders.read"
    # Straight to B without credentials: refused, so the token did the work.
    assert fetch(port_b, "GET", "/orders/7").status == 401


def test_inject_on_a_cluster(gatehouse, upstream, key, idp, tmp_path):
    """`inject` written on a cluster: every route to it injects, a route's
    own section wins, and routes elsewhere carry nothing."""
    svc, up = protected(gatehouse, upstream, key)
    other = upstream()
    inj = inject_conf(idp, tmp_path)
    cfg = {"listeners": [{"name": "out", "routes": [
        {"name": "own", "match": {"path": {"prefix": "/own"}},
         "inject": dict(inj, scopes=["x"]), "to": "svc"},
        {"name": "plain", "match": {"path": {"prefix": "/other"}}, "to": "other"},
        {"name": "via", "match": {"path": {"prefix": "/"}}, "to": "svc"}]}],
        "clusters": {"svc": {"endpoints": [f"127.0.0.1:{svc.port}"], "inject": inj},
                     "other": {"endpoints": [f"127.0.0.1:{other.port}"]}}}
    g = gatehouse(cfg)
    wait_token(g)
    assert fetch(g.port, "GET", "/orders").status == 200
    wait_for(lambda: fetch(g.port, "GET", "/own").status == 200)
    scopes = [pyjwt.decode(q.header("authorization")[7:], options={"verify_signature": False})[
        "scope"] for q in up.complete_requests()]
    assert "orders.read" in scopes and "x" in scopes
    assert fetch(g.port, "GET", "/other", headers=[("authorization", "Bearer mine")]).status == 200
    assert other.complete_requests()[-1].header("authorization") == "Bearer mine"


@pytest.mark.parametrize("second", [None, {"scopes": ["x"]}])
def test_split_between_clusters_must_inject_alike(tmp_path, idp, second):
    inj = inject_conf(idp, tmp_path)
    c2 = {"endpoints": ["127.0.0.1:10"]}
    if second is not None:
        c2["inject"] = dict(inj, **second)
    cfg = {"listeners": [{"name": "out", "listen": f"127.0.0.1:{free_port()}", "routes": [
        {"name": "r", "match": {"path": {"prefix": "/"}},
         "to": [{"cluster": "a", "weight": 1}, {"cluster": "b", "weight": 1}]}]}],
        "clusters": {"a": {"endpoints": ["127.0.0.1:9"], "inject": inj}, "b": c2}}
    p = tmp_path / "g.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    import subprocess
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "route 'r' splits its requests between clusters" in r.stdout + r.stderr
