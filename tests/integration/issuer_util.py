"""Helpers for the token service's tests (test_issuer.py): a gatehouse that
serves the issuer (routes /oauth2/ and /.well-known/, `issuer: {}`) beside
a route protected by a JWT provider with `issuer: self`; clients made with
`gatehouse client create`; form requests sent as raw bytes; the checks of
an RFC 6749 section 5.2 error answer; and access tokens judged by PyJWT
against the JWKS the issuer publishes (RFC 9068)."""

import base64
import json
import os
import subprocess
import time
from urllib.parse import quote, urlencode

import jwt as pyjwt

from harness import Gatehouse, fetch, free_port, gatehouse_bin

AUD = "https://orders.test"
SCOPES = "orders.read orders.write"
FORM = "application/x-www-form-urlencoded"
GRANT = "grant_type=client_credentials"
# RFC 6749 section 5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
DESC_OK = set(range(0x20, 0x7F)) - {0x22, 0x5C}


def issuer_config(port, up, issuer=None, jwt=None, state_dir=None, routes=True, **top):
    """The config of a gatehouse whose issuer is http://127.0.0.1:port (it
    listens there), with revocations polled every second, and a catch-all
    route to up that takes only the issuer's tokens for AUD."""
    isec = {"issuer": f"http://127.0.0.1:{port}", "revocation_poll": "1s"}
    isec.update(issuer or {})
    prov = {"issuer": "self", "audiences": [AUD]}
    prov.update(jwt or {})
    rs = []
    if routes:
        rs = [{"name": "oauth", "match": {"path": {"prefix": "/oauth2/"}}, "issuer": {}},
              {"name": "meta", "match": {"path": {"prefix": "/.well-known/"}}, "issuer": {}}]
    rs.append({"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "me", "to": "app"})
    cfg = {"issuer": isec, "providers": {"jwt": {"me": prov}},
           "listeners": [{"name": "edge", "listen": f"127.0.0.1:{port}", "routes": rs}],
           "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}}}
    if state_dir is not None:
        cfg["state_dir"] = str(state_dir)
    cfg.update(top)
    return cfg


def start(gatehouse, up, port=None, **kw):
    """A started issuer gatehouse (issuer_config's keywords), with .url (its
    issuer identifier), .token_url, .introspect_url, .revoke_url, .jwks_url."""
    port = port or free_port()
    g = gatehouse(issuer_config(port, up, **kw), workers=kw.get("workers", 1))
    return decorate(g, f"http://127.0.0.1:{port}")


def decorate(g, url):
    g.url = url
    g.token_url = url + "/oauth2/token"
    g.introspect_url = url + "/oauth2/introspect"
    g.revoke_url = url + "/oauth2/revoke"
    g.jwks_url = url + "/oauth2/jwks"
    return g


def start_standalone(tmp_path, up, name, **kw):
    """An issuer gatehouse outside the gatehouse fixture (for a module's
    shared server); stop it with stop_standalone."""
    port = free_port()
    d = tmp_path / name
    d.mkdir()
    kw.setdefault("state_dir", d / "state")
    cfg = issuer_config(port, up, **kw)
    cfg = {"workers": 1, "drain_timeout": "5s", **cfg}
    g = Gatehouse(cfg, d)
    g.wait_ready()
    return decorate(g, f"http://127.0.0.1:{port}")


def cli(*args, check=True):
    r = subprocess.run([str(gatehouse_bin()), *args], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env={**os.environ, "GH_CONFIG_NO_DNS": "1"})
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def create_client(g, *extra, name="batch", scopes=SCOPES, audiences=AUD):
    """Registers a client in g's store; returns (client_id, secret or None)."""
    r = cli("client", "create", "-c", str(g.config_path), "--name", name, "--scopes", scopes,
            "--audiences", audiences, *extra)
    lines = dict(line.split("=", 1) for line in r.stdout.splitlines())
    return lines["client_id"], lines.get("client_secret")


def basic(cid, secret):
    """RFC 6749 section 2.3.1: each part form-urlencoded, then Basic."""
    raw = f"{quote(cid, safe='')}:{quote(secret, safe='')}".encode()
    return ("Authorization", "Basic " + base64.b64encode(raw).decode())


def form(pairs):
    return pairs if isinstance(pairs, (str, bytes)) else urlencode(pairs)


def post(g, path, body, headers=(), ctype=FORM, auth=None, source=None, timeout=10.0):
    """POST a form (a str/bytes body or a list of pairs) to g's path. auth:
    (client_id, secret) for client_secret_basic."""
    hs = [] if ctype is None else [("Content-Type", ctype)]
    if auth is not None:
        hs.append(basic(*auth))
    hs += list(headers)
    return fetch(g.port, "POST", path, headers=hs, body=form(body), source=source,
                 timeout=timeout)


def token(g, cid, secret, extra="", **kw):
    """A token by client_secret_basic: the parsed 200 answer."""
    r = post(g, "/oauth2/token", GRANT + extra, auth=(cid, secret), **kw)
    assert r.status == 200, r
    return expect_token_reply(r)


def expect_token_reply(r):
    assert r.status == 200, r
    assert r.header("content-type") == "application/json", r
    assert r.header("cache-control") == "no-store", r
    assert r.header("pragma") == "no-cache", r
    doc = json.loads(r.body)
    assert doc["token_type"] == "Bearer", doc
    assert isinstance(doc["expires_in"], int) and doc["expires_in"] > 0, doc
    return doc


def expect_error(r, status, code, says=None):
    """An RFC 6749 section 5.2 error: status, JSON body with `error` (and a
    well-formed error_description), no-store, a Basic challenge on 401 and
    on nothing else, Allow on 405. Returns the body."""
    assert r.status == status, f"wanted {status} {code}: {r!r}"
    assert (r.header("content-type") or "").split(";")[0] == "application/json", r
    assert r.header("cache-control") == "no-store", r
    assert r.header("pragma") == "no-cache", r
    doc = json.loads(r.body)
    assert isinstance(doc, dict) and doc.get("error") == code, doc
    assert set(doc) <= {"error", "error_description", "error_uri"}, doc
    desc = doc.get("error_description", "")
    assert isinstance(desc, str) and all(ord(c) in DESC_OK for c in desc), doc
    if says is not None:
        assert says in desc, doc
    chal = r.headers_all("www-authenticate")
    if status == 401:
        assert len(chal) == 1 and chal[0].startswith('Basic realm="'), r
    else:
        assert chal == [], r
    if status == 405:
        assert r.header("allow") == "POST", r
    return doc


def jwks(g):
    r = fetch(g.port, "GET", "/oauth2/jwks")
    assert r.status == 200, r
    return json.loads(r.body)


def verify(tok, jwks_doc, issuer, client_id, audience=AUD, scope=SCOPES, leeway=0):
    """An RFC 9068 access token checked by PyJWT with the key its kid names
    in jwks_doc: the claims, or an exception from PyJWT."""
    h = pyjwt.get_unverified_header(tok)
    assert h.get("typ") == "at+jwt", h
    keys = {k["kid"]: k for k in jwks_doc["keys"]}
    assert h.get("kid") in keys, (h, list(keys))
    jwk = keys[h["kid"]]
    assert h["alg"] == jwk["alg"], (h, jwk)
    key = pyjwt.PyJWK(jwk).key
    c = pyjwt.decode(tok, key, algorithms=[jwk["alg"]], audience=audience, issuer=issuer,
                     leeway=leeway,
                     options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
    assert c["client_id"] == client_id and c["sub"] == client_id, c
    if scope is None:
        assert "scope" not in c, c
    else:
        assert c["scope"] == scope, c
    assert isinstance(c["jti"], str) and len(c["jti"]) >= 16, c
    now = time.time()
    assert c["iat"] <= now + 5 and c["exp"] > c["iat"], c
    return c


def api(g, tok, path="/orders/1"):
    """A request to g's protected route with the bearer token."""
    return fetch(g.port, "GET", path, headers=[("Authorization", "Bearer " + tok)])
