"""The OAuth clients of the store on the admin API (docs/admin.md#oauth-clients),
through the real binary: every endpoint and its JSON (the CLI's), the admin
token (401 without it on every /clients path, 403 when none is configured),
the secret shown once and stored as its SHA-256 (checked with hashlib in the
file), rotate-secret and revoke, a JWKS registered for private_key_jwt (a
key made by python3-cryptography; private and symmetric keys refused), the
CLI and the admin API on one store while the server runs, and requests a
client gets wrong: bad JSON, duplicates, wrong types, odd ids in the path
(percent-encoded, wrong case, too long), query strings, bodies too large,
chunked, split across reads, a body on GET."""

import base64
import hashlib
import json
import re
import sqlite3
import subprocess
import time

from cryptography.hazmat.primitives.asymmetric import ec

from harness import RawConn, fetch, free_port, gatehouse_bin
from ops_util import wait_admin

TOKEN = "s3cr3t-admin-token-0123456789abcdef"
ID_RE = re.compile(r"^ghc_[a-z2-7]{16}$")
SECRET_RE = re.compile(r"^ghs_[A-Za-z0-9]{43}$")


def start(gatehouse, upstream, tmp_path, token=True, store=None):
    up = upstream()
    cfg = {
        "listeners": [{"name": "edge", "routes": [{"name": "api", "match": {"path": {"prefix": "/"}}, "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "store": store or {"kind": "sqlite", "path": str(tmp_path / "gh.db")},
    }
    if token:
        tf = tmp_path / "admin-token"
        tf.write_text(TOKEN + "\n")
        cfg["admin"]["token_file"] = str(tf)
    g = gatehouse(cfg)
    g.admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    wait_admin(g.admin)
    return g


def admin(g, method, path, body=None, ctype="application/json", token=TOKEN):
    hs = []
    if token is not None:
        hs.append(("Authorization", f"Bearer {token}"))
    if body is not None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if ctype is not None:
            hs.append(("Content-Type", ctype))
    return fetch(g.admin, method, path, headers=hs, body=body, host=f"127.0.0.1:{g.admin}")


def doc(r):
    assert (r.header("content-type") or "").startswith("application/json"), r
    return json.loads(r.body)


def refused(r, status, code, text):
    assert r.status == status, (r.status, r.body)
    d = doc(r)
    assert d["error"] == code, d
    assert text in d["detail"], d
    assert r.header("cache-control") == "no-store", r.headers
    assert all(0x20 <= b < 0x7f for b in d["detail"].encode()), d
    return d


def create(g, **spec):
    r = admin(g, "POST", "/clients", spec)
    assert r.status == 201, r.body
    return doc(r)


def row(tmp_path, cid):
    with sqlite3.connect(tmp_path / "gh.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM oauth_clients WHERE id = ?", (cid,)).fetchone()


def jwk_of(key):
    n = key.public_key().public_numbers()
    b64 = lambda v: base64.urlsafe_b64encode(v.to_bytes(32, "big")).rstrip(b"=").decode()  # noqa: E731
    return {"kty": "EC", "crv": "P-256", "x": b64(n.x), "y": b64(n.y), "kid": "c1"}


def cli(g, *args):
    r = subprocess.run([str(gatehouse_bin()), "client", *args, "--config", str(g.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_create_show_list(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    r = admin(g, "POST", "/clients", {"name": "Orders", "audiences": ["https://api.example.com/orders"],
                                      "scopes": ["orders.read", "orders.write"], "token_ttl": "10m"})
    assert r.status == 201, r.body
    assert r.header("cache-control") == "no-store"
    c = doc(r)
    assert ID_RE.match(c["client_id"]) and SECRET_RE.match(c["client_secret"]), c
    assert r.header("location") == f"/clients/{c['client_id']}"
    assert (c["name"], c["scopes"], c["audiences"], c["auth_methods"], c["token_ttl"], c["state"]) == \
        ("Orders", ["orders.read", "orders.write"], ["https://api.example.com/orders"],
         ["client_secret_basic", "client_secret_post"], 600, "active")
    # stored as SHA-256 of the secret, never the secret
    assert bytes(row(tmp_path, c["client_id"])["secret_hash"]) == hashlib.sha256(c["client_secret"].encode()).digest()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("gh.db*"))
    assert c["client_secret"].encode() not in data
    shown = doc(admin(g, "GET", f"/clients/{c['client_id']}"))
    assert "client_secret" not in shown and "secret_hash" not in json.dumps(shown)
    assert {k: v for k, v in c.items() if k != "client_secret"} == shown
    lst = doc(admin(g, "GET", "/clients"))
    assert [x["client_id"] for x in lst] == [c["client_id"]]
    h = admin(g, "HEAD", f"/clients/{c['client_id']}")
    assert h.status == 200 and h.body == b""
    # the CLI sees the same store, and the admin API what the CLI made
    assert json.loads(cli(g, "show", c["client_id"], "--json")) == shown
    out = cli(g, "create", "--name", "from-cli", "--audiences", "x")
    cid2 = dict(line.split("=", 1) for line in out.splitlines())["client_id"]
    assert doc(admin(g, "GET", f"/clients/{cid2}"))["name"] == "from-cli"
    refused(admin(g, "GET", "/clients/ghc_aaaaaaaaaaaaaaaa"), 404, "not_found", "no client")


def test_rotate_and_revoke(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    c = create(g, name="a", audiences=["x"])
    cid, s0 = c["client_id"], c["client_secret"]
    r = admin(g, "POST", f"/clients/{cid}/rotate-secret", {"grace": "1h"})
    assert r.status == 200, r.body
    s1 = doc(r)["client_secret"]
    assert SECRET_RE.match(s1) and s1 != s0
    assert doc(r)["previous_secret_until"] is not None
    rw = row(tmp_path, cid)
    assert bytes(rw["secret_hash"]) == hashlib.sha256(s1.encode()).digest()
    assert bytes(rw["prev_secret_hash"]) == hashlib.sha256(s0.encode()).digest()
    assert rw["prev_valid_until"] - rw["secret_rotated_at"] == 3600
    # no body: the default grace (24h)
    r = admin(g, "POST", f"/clients/{cid}/rotate-secret")
    assert r.status == 200, r.body
    rw = row(tmp_path, cid)
    assert rw["prev_valid_until"] - rw["secret_rotated_at"] == 86400
    assert bytes(rw["prev_secret_hash"]) == hashlib.sha256(s1.encode()).digest()
    refused(admin(g, "POST", f"/clients/{cid}/rotate-secret", {"grace": "31d"}), 400, "bad_request", "grace")
    refused(admin(g, "POST", f"/clients/{cid}/rotate-secret", {"grace": 60}), 400, "bad_request", "grace must be")
    refused(admin(g, "POST", f"/clients/{cid}/rotate-secret", {"grace": "1h", "now": 1}), 400, "bad_request",
            "unknown member 'now'")
    r = admin(g, "POST", f"/clients/{cid}/revoke")
    assert r.status == 200 and doc(r)["state"] == "revoked" and doc(r)["revoked"] is not None
    refused(admin(g, "POST", f"/clients/{cid}/revoke", {}), 409, "conflict", "revoked before")
    refused(admin(g, "POST", f"/clients/{cid}/rotate-secret"), 409, "conflict", "is revoked")
    refused(admin(g, "POST", "/clients/ghc_aaaaaaaaaaaaaaaa/revoke"), 404, "not_found", "no client")
    refused(admin(g, "POST", f"/clients/{cid}/revoke", {"x": 1}), 400, "bad_request", "unknown member")


def test_jwks(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    pub = jwk_of(key)
    c = create(g, name="signer", audiences=["x"], jwks={"keys": [pub]})
    assert "client_secret" not in c and c["has_secret"] is False
    assert c["auth_methods"] == ["private_key_jwt"] and c["jwks"] == {"keys": [pub]}
    assert row(tmp_path, c["client_id"])["secret_hash"] is None
    refused(admin(g, "POST", f"/clients/{c['client_id']}/rotate-secret"), 400, "bad_request", "no secret")
    c2 = create(g, name="both", audiences=["x"], jwks=pub, auth_methods=["client_secret_post", "private_key_jwt"])
    assert SECRET_RE.match(c2["client_secret"]) and c2["jwks"] == pub
    priv = dict(pub, d="870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE")
    for jwks, why in (({"keys": [pub, priv]}, "cannot verify"), (priv, "JWKS"),
                      ({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}, "JWKS"),
                      ({"keys": []}, "JWKS is refused"), ("{}", "jwks must be a JSON object"),
                      ([pub], "jwks must be a JSON object")):
        refused(admin(g, "POST", "/clients", {"name": "x", "audiences": ["x"], "jwks": jwks}), 400,
                "bad_request", why)
    refused(admin(g, "POST", "/clients", {"name": "x", "audiences": ["x"], "auth_methods": ["private_key_jwt"]}),
            400, "bad_request", "needs the client's public keys")
    assert len(doc(admin(g, "GET", "/clients"))) == 2


def test_token_is_required(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    c = create(g, name="a", audiences=["x"])
    cid = c["client_id"]
    paths = [("GET", "/clients"), ("POST", "/clients"), ("GET", f"/clients/{cid}"),
             ("POST", f"/clients/{cid}/revoke"), ("POST", f"/clients/{cid}/rotate-secret"),
             ("GET", "/clients/nope"), ("DELETE", "/clients"), ("GET", "/clients/")]
    for method, path in paths:
        for token in (None, "wrong-token-wrong-token", TOKEN + "x"):
            r = admin(g, method, path, token=token)
            refused(r, 401, "unauthorized", "Bearer")
    # a body is not read before the token
    with RawConn(g.admin) as conn:
        conn.request("POST", f"/clients/{cid}/revoke", [("Content-Type", "application/json")], b"{}")
        assert conn.read_response().status == 401
        assert conn.is_closed()
    assert doc(admin(g, "GET", f"/clients/{cid}"))["state"] == "active"


def test_without_a_token_the_endpoints_are_forbidden(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path, token=False)
    refused(admin(g, "GET", "/clients", token=None), 403, "forbidden", "admin.token_file")
    refused(admin(g, "POST", "/clients", {"name": "a", "audiences": ["x"]}, token=None), 403, "forbidden", "token")
    assert not (tmp_path / "gh.db").exists()


def test_malformed_requests(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    cases = [
        ('{"name":"a","audiences":["x"]', "ends too early"),
        ('{"name":"a","audiences":["x"]} {}', "something follows"),
        ("name=a", "not acceptable JSON"),
        ('{"name":"a","name":"b","audiences":["x"]}', "appears twice"),
        ('{"name":"a","\\u006eame":"b","audiences":["x"]}', "appears twice"),
        ('{"name":1,"audiences":["x"]}', "name must be a string"),
        ('{"audiences":["x"]}', "name is required"),
        ('{"name":"a"}', "audiences is required"),
        ('{"name":"a","audiences":"x"}', "audiences must be an array"),
        ('{"name":"a","audiences":["x y"]}', "audiences[0] must be one item"),
        ('{"name":"a","audiences":["x"],"scopes":["a,b"]}', "scopes[0] must be one item"),
        ('{"name":"a","audiences":["x"],"scopes":[1]}', "scopes[0] must be a string"),
        ('{"name":"a","audiences":["x\\u0000y"]}', "u0000 escape"),
        ('{"name":"a","audiences":["x"],"token_ttl":600}', "token_ttl must be a string"),
        ('{"name":"a","audiences":["x"],"token_ttl":"2d"}', "token_ttl must be a duration"),
        ('{"name":"a","audiences":["x"],"token_ttl":"0"}', "token_ttl must be a duration"),
        ('{"name":"a","audiences":["x"],"token_ttl":"99999999999999999999999s"}', "token_ttl must be"),
        ('{"name":"a","audiences":["x"],"auth_methods":["none"]}', "auth_methods"),
        ('{"name":"a","audiences":["x"],"auth_methods":[]}', "at least one method"),
        ('{"name":"a","audiences":["x"],"Scopes":["a"]}', "unknown member 'Scopes'"),
        ('["a"]', "must be a JSON object"),
        ("", "needs a JSON body"),
        ('{"name":"=HYPERLINK(1)","audiences":["x"]}', "the name"),
        ('{"name":"a\\u001b[2J","audiences":["x"]}', "control"),
        ('{"name":"a","audiences":["https://x/#y"]}', "fragment"),
        ('{"name":"a","audiences":["x","x"]}', "twice"),
    ]
    for body, why in cases:
        refused(admin(g, "POST", "/clients", body), 400, "bad_request", why)
    refused(admin(g, "POST", "/clients", b'{"name":"\xff","audiences":["x"]}'), 400, "bad_request", "not UTF-8")
    refused(admin(g, "POST", "/clients", '{"name":"a","audiences":["x"]}', ctype="text/plain"), 415,
            "unsupported_media_type", "application/json")
    refused(admin(g, "POST", "/clients?dry_run=1", {"name": "a", "audiences": ["x"]}), 400, "bad_request",
            "no query parameters")
    refused(admin(g, "GET", "/clients?x"), 400, "bad_request", "no query parameters")
    c = create(g, name="x", audiences=["x"])
    cid = c["client_id"]
    refused(admin(g, "PUT", f"/clients/{cid}"), 405, "method_not_allowed", "GET, HEAD")
    assert admin(g, "DELETE", "/clients").header("allow") == "GET, HEAD, POST"
    assert admin(g, "GET", f"/clients/{cid}/revoke").header("allow") == "POST"
    for path in ("/clients/NOPE", f"/clients/{cid.upper()}", f"/clients/{cid}x", f"/clients/{cid[:-1]}",
                 "/clients/%67hc_aaaaaaaaaaaaaaaa", f"/clients/{cid[:-1]}%00", "/clients/",
                 "/clients//revoke"):
        refused(admin(g, "GET", path), 404, "not_found", "is not a client id")
    # a raw non-ASCII byte never reaches the routing: the parser refuses it
    refused(admin(g, "GET", f"/clients/{cid[:-1]}\u00e9".encode("utf-8").decode("latin-1")), 400,
            "bad_request", "invalid byte")
    refused(admin(g, "POST", f"/clients/{cid}/rotate"), 404, "not_found", "no client operation")
    refused(admin(g, "POST", f"/clients/{cid}/revoke/x"), 404, "not_found", "no client operation")
    # /clusters is another path
    assert admin(g, "GET", "/clusters").status == 200
    assert [x["name"] for x in doc(admin(g, "GET", "/clients"))] == ["x"]
    assert doc(admin(g, "GET", f"/clients/{cid}"))["state"] == "active"


def head(path, n, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {n}\r\n{extra}\r\n").encode()


def test_bodies_on_the_wire(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    body = b'{"name":"wire","audiences":["x"],"scopes":["a"]}'
    req = head("/clients", len(body)) + body + b"GET /live HTTP/1.1\r\nHost: a\r\n\r\n"
    made = []
    for cut in (1, len(req) // 3, req.index(b"\r\n\r\n") + 4, len(req) - len(body) // 2, len(req) - 1):
        with RawConn(g.admin) as c:
            c.send(req[:cut])
            time.sleep(0.02)
            c.send(req[cut:])
            r = c.read_response()
            assert r.status == 201 and json.loads(r.body)["name"] == "wire", r.body
            made.append(json.loads(r.body)["client_id"])
            r = c.read_response()
            assert r.status == 200 and json.loads(r.body) == {"status": "live"}
    big = b" " * (64 * 1024 + 1)
    with RawConn(g.admin) as c:
        c.send(head("/clients", len(big)))
        r = c.read_response()
        assert r.status == 413 and "larger than 65536" in json.loads(r.body)["detail"]
        assert c.is_closed()
    with RawConn(g.admin) as c:
        c.send(f"POST /clients HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               "2\r\n{}\r\n0\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 411
        assert c.is_closed()
    with RawConn(g.admin) as c:
        c.send(f"GET /clients HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Length: 2\r\n\r\n{}".encode())
        assert c.read_response().status == 400
        assert c.is_closed()
    # a body that resets mid-way leaves the server serving, nothing made
    with RawConn(g.admin) as c:
        c.send(head("/clients", len(body)) + body[:10])
        time.sleep(0.05)
        c.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert sorted(x["client_id"] for x in doc(admin(g, "GET", "/clients"))) == sorted(made)
    assert len(set(made)) == 5


def test_redis_store(gatehouse, upstream, tmp_path, redis_server):
    g = start(gatehouse, upstream, tmp_path,
              store={"kind": "redis", "address": f"127.0.0.1:{redis_server.port}", "prefix": "gha:"})
    c = create(g, name="fleet", audiences=["x"])
    assert redis_server.cmd("HGET", f"gha:client:{c['client_id']}", "secret_hash") == \
        hashlib.sha256(c["client_secret"].encode()).hexdigest().encode()
    r = admin(g, "POST", f"/clients/{c['client_id']}/revoke")
    assert r.status == 200 and doc(r)["state"] == "revoked"
    assert redis_server.cmd("HEXISTS", f"gha:client:{c['client_id']}", "revoked_at") == 1
    redis_server.kill()
    refused(admin(g, "GET", "/clients"), 503, "service_unavailable", "Redis")
    redis_server.restart()
