"""The API keys of the store on the admin API (docs/admin.md#api-keys),
through the real binary: every endpoint and its JSON (the CLI's), the admin
token (401 without it, for every /apikeys path; 403 when none is
configured), a key made on the admin API used on a route, revoked and
rotated there, usage counted by the workers and reported at once, imports
good and bad, the CLI and the admin API on one store while the server
runs, a reload to another store, and request bodies a client gets wrong:
bad JSON, duplicates, wrong types, too large, chunked, split across reads,
stalled. The exhaustive cases (every byte split, every member) are unit
tests (tests/unit/admin/)."""

import json
import re
import socket
import subprocess
import time

from harness import RawConn, echo_of, fetch, free_port, gatehouse_bin, hdr
from ops_util import sighup, wait_admin, wait_for, write_config

TOKEN = "s3cr3t-admin-token-0123456789abcdef"
KEY_RE = re.compile(r"^gh_[a-z2-7]{12}_[A-Za-z0-9]{43}$")


def config(up, tmp_path, token=True, apikeys=True, store=None, state_dir=None):
    routes = [{"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "keys", "to": "app"}]
    if not apikeys:
        routes = [{"name": "api", "match": {"path": {"prefix": "/"}}, "to": "app"}]
    cfg = {
        "listeners": [{"name": "edge", "routes": routes}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
    }
    if apikeys:
        cfg["providers"] = {"apikeys": {"keys": {"cache_ttl": "0s", "negative_cache_ttl": "0s"}}}
        # The plans the keys below name (a key naming a plan the config
        # does not have is refused).
        cfg["plans"] = {"gold": {}, "free": {}}
    if token:
        tf = tmp_path / "admin-token"
        tf.write_text(TOKEN + "\n")
        cfg["admin"]["token_file"] = str(tf)
    if state_dir is not None:
        cfg["state_dir"] = str(state_dir)
    elif store is not False:
        cfg["store"] = store or {"kind": "sqlite", "path": str(tmp_path / "gh.db"), "usage_flush": "100ms"}
    return cfg


def start(gatehouse, upstream, tmp_path, **kw):
    up = upstream()
    cfg = config(up, tmp_path, **kw)
    g = gatehouse(cfg)
    g.admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    wait_admin(g.admin)
    return g


def admin(g, method, path, body=None, ctype="application/json", token=TOKEN, headers=()):
    hs = list(headers)
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
    return d


def create(g, **spec):
    r = admin(g, "POST", "/apikeys", spec)
    assert r.status == 201, r.body
    return doc(r)


def use(g, key, target="/echo"):
    hs = [] if key is None else [("x-api-key", key)]
    return fetch(g.port, "GET", target, headers=hs)


def cli(g, *args, check=True):
    r = subprocess.run([str(gatehouse_bin()), "apikey", *args, "--config", str(g.config_path)],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def test_create_then_use_show_list(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    r = admin(g, "POST", "/apikeys", {"consumer": "alice", "plan": "gold", "scopes": ["orders:read", "orders:write"],
                                      "description": "Orders app", "expires": "90d"})
    assert r.status == 201, r.body
    assert r.header("cache-control") == "no-store"
    k = doc(r)
    assert KEY_RE.match(k["key"]), k
    assert r.header("location") == f"/apikeys/{k['id']}"
    assert k["key"][3:15] == k["id"]
    assert (k["consumer"], k["plan"], k["scopes"], k["description"], k["state"], k["source"]) == \
        ("alice", "gold", ["orders:read", "orders:write"], "Orders app", "valid", "generated")
    created = time.strptime(k["created"], "%Y-%m-%dT%H:%M:%SZ")
    expires = time.strptime(k["expires"], "%Y-%m-%dT%H:%M:%SZ")
    assert round((time.mktime(expires) - time.mktime(created)) / 86400) == 90
    # The key works on a route at once, and names its consumer upstream.
    r = use(g, k["key"])
    assert r.status == 200, r.body
    assert hdr(echo_of(r)["headers"], "x-consumer") == ["alice"]
    # show and list never give the key or its hash again
    r = admin(g, "GET", f"/apikeys/{k['id']}")
    assert r.status == 200
    shown = doc(r)
    assert "key" not in shown and "hash" not in shown
    assert k["key"] not in r.body.decode() and k["key"][16:] not in r.body.decode()
    assert {x: shown[x] for x in shown} == {x: k[x] for x in k if x != "key"}
    create(g, consumer="bob")
    lst = doc(admin(g, "GET", "/apikeys"))
    assert sorted(x["consumer"] for x in lst) == ["alice", "bob"]
    assert all("key" not in x for x in lst)
    assert [x["id"] for x in doc(admin(g, "GET", "/apikeys?consumer=alice"))] == [k["id"]]
    assert doc(admin(g, "GET", "/apikeys?consumer=nobody")) == []
    # HEAD: the same head, no body
    h = admin(g, "HEAD", "/apikeys")
    assert h.status == 200 and h.body == b"" and int(h.header("content-length")) > 2


def test_revoke_then_the_route_refuses(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    k = create(g, consumer="alice")
    assert use(g, k["key"]).status == 200
    r = admin(g, "POST", f"/apikeys/{k['id']}/revoke")
    assert r.status == 200, r.body
    assert doc(r)["state"] == "revoked" and doc(r)["revoked"] is not None
    r = use(g, k["key"])
    assert r.status == 401 and "revoked" in json.loads(r.body)["detail"], r.body
    refused(admin(g, "POST", f"/apikeys/{k['id']}/revoke", {}), 409, "conflict", "revoked")
    refused(admin(g, "POST", f"/apikeys/{k['id']}/rotate"), 409, "conflict", "revoked")
    refused(admin(g, "POST", "/apikeys/aaaaaaaaaaaa/revoke"), 404, "not_found", "")


def test_rotate_with_grace(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    old = create(g, consumer="alice", expires="30d")
    r = admin(g, "POST", f"/apikeys/{old['id']}/rotate", {"grace": "1h"})
    assert r.status == 201, r.body
    assert r.header("cache-control") == "no-store"
    new = doc(r)
    assert KEY_RE.match(new["key"]) and new["key"] != old["key"]
    assert new["consumer"] == "alice" and new["expires"] is not None
    # both work in the grace; the old one says whom it was replaced by
    assert use(g, old["key"]).status == 200
    assert use(g, new["key"]).status == 200
    o = doc(admin(g, "GET", f"/apikeys/{old['id']}"))
    assert o["replaced_by"] == new["id"] and o["grace_until"] is not None and o["state"] == "valid"
    refused(admin(g, "POST", f"/apikeys/{old['id']}/rotate"), 409, "conflict", "rotated already")
    # grace 0: the replaced key stops at once
    newer = doc(admin(g, "POST", f"/apikeys/{new['id']}/rotate", {"grace": "0", "expires": "never"}))
    assert newer["expires"] is None
    r = use(g, new["key"])
    assert r.status == 401 and "replaced" in json.loads(r.body)["detail"]
    assert use(g, newer["key"]).status == 200


def test_usage_counts_are_reported_at_once(gatehouse, upstream, tmp_path):
    """The admin API reports through the store object the workers count
    in, so uses are in the answer before they are written (with cache_ttl
    0 each use reaches that object at once: the answer is exact at once);
    the CLI (another process) sees them once written."""
    g = start(gatehouse, upstream, tmp_path)
    k = create(g, consumer="alice")
    other = create(g, consumer="bob")
    for _ in range(7):
        assert use(g, k["key"]).status == 200
    assert use(g, other["key"]).status == 200
    u = doc(admin(g, "GET", f"/apikeys/{k['id']}/usage?days=3"))
    assert (u["id"], u["consumer"], u["today"], u["week"], u["month"]) == (k["id"], "alice", 7, 7, 7), u
    assert len(u["days"]) == 3 and u["days"][-1]["count"] == 7
    assert u["days"][-1]["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert len(doc(admin(g, "GET", f"/apikeys/{k['id']}/usage"))["days"]) == 7
    wait_for(lambda: json.loads(cli(g, "usage", k["id"], "--json").stdout)["today"] == 7, 10,
             "usage written to the store")
    refused(admin(g, "GET", f"/apikeys/{k['id']}/usage?days=0"), 400, "bad_request", "days")
    refused(admin(g, "GET", "/apikeys/aaaaaaaaaaaa/usage"), 404, "not_found", "")


CSV = ("Name,Key,Description,Enabled,UsagePlanIds\n"
       "orders-app,apikey1234abcdefghij0123456789,Orders,TRUE,c7y23b\n"
       "billing,apikey9876abcdefghij0123456789,\"Billing, nightly\",true,\n"
       "legacy,apikey5555abcdefghij0123456789,,FALSE,\n")


def test_import(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    # an unmapped usage plan: every row checked, nothing imported, no key echoed
    r = admin(g, "POST", "/apikeys/import", CSV, ctype="text/csv")
    d = refused(r, 400, "bad_request", "nothing was imported")
    assert d["errors"] == [{"line": 2, "message": d["errors"][0]["message"]}] and "c7y23b" in d["errors"][0]["message"]
    assert d["total_errors"] == 1
    assert "apikey1234" not in r.body.decode()
    assert doc(admin(g, "GET", "/apikeys")) == []
    r = admin(g, "POST", "/apikeys/import?plan_map=c7y23b=gold&dry_run=1", CSV, ctype="text/csv")
    assert doc(r) == {"dry_run": True, "rows": 3, "created": 3, "updated": 0}, r.body
    assert doc(admin(g, "GET", "/apikeys")) == []
    r = admin(g, "POST", "/apikeys/import?plan_map=c7y23b%3Dgold&plan=free", CSV, ctype="text/csv; charset=utf-8")
    assert r.status == 200 and doc(r) == {"dry_run": False, "rows": 3, "created": 3, "updated": 0}, r.body
    keys = {k["consumer"]: k for k in doc(admin(g, "GET", "/apikeys"))}
    assert keys["orders-app"]["plan"] == "gold" and keys["billing"]["plan"] == "free"
    assert keys["legacy"]["state"] == "disabled" and keys["orders-app"]["source"] == "aws-import"
    # the imported keys work on the route (the disabled one does not)
    r = use(g, "apikey1234abcdefghij0123456789")
    assert r.status == 200 and hdr(echo_of(r)["headers"], "x-consumer") == ["orders-app"]
    assert use(g, "apikey5555abcdefghij0123456789").status == 401
    # bad files and bad parameters
    bad = "Name,Key\nx,short\n"
    d = refused(admin(g, "POST", "/apikeys/import", bad, ctype="text/csv"), 400, "bad_request", "1 error")
    assert d["errors"][0]["line"] == 2
    refused(admin(g, "POST", "/apikeys/import?plan_map=nomap", CSV, ctype="text/csv"), 400, "bad_request",
            "plan_map must be USAGEPLANID=PLAN")
    refused(admin(g, "POST", "/apikeys/import?dryrun=1", CSV, ctype="text/csv"), 400, "bad_request",
            "unknown query parameter 'dryrun'")
    refused(admin(g, "POST", "/apikeys/import", CSV, ctype="application/json"), 415, "unsupported_media_type",
            "text/csv")


def test_cli_and_admin_share_the_store(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    out = cli(g, "create", "--consumer", "from-cli", "--scopes", "a,b", "--json").stdout
    made = json.loads(out)
    shown = doc(admin(g, "GET", f"/apikeys/{made['id']}"))
    assert shown == {k: v for k, v in made.items() if k != "key"}
    k = create(g, consumer="from-admin", plan="gold")
    assert json.loads(cli(g, "show", k["id"], "--json").stdout) == {x: v for x, v in k.items() if x != "key"}
    # the same documents, byte for byte, from the CLI and the admin API
    assert cli(g, "list", "--json").stdout.encode() == admin(g, "GET", "/apikeys").body
    cli(g, "revoke", made["id"])
    assert doc(admin(g, "GET", f"/apikeys/{made['id']}"))["state"] == "revoked"
    admin(g, "POST", f"/apikeys/{k['id']}/revoke")
    assert "revoked" in cli(g, "show", k["id"]).stdout


def test_token_is_required(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    k = create(g, consumer="alice")
    paths = [("GET", "/apikeys"), ("POST", "/apikeys"), ("GET", f"/apikeys/{k['id']}"),
             ("POST", f"/apikeys/{k['id']}/revoke"), ("POST", f"/apikeys/{k['id']}/rotate"),
             ("GET", f"/apikeys/{k['id']}/usage"), ("POST", "/apikeys/import"),
             ("GET", "/apikeys/nope"), ("DELETE", "/apikeys"), ("GET", "/apikeys/"),
             ("GET", "/apikeys/aaaaaaaaaaaa/nope")]
    for method, path in paths:
        for token in (None, "wrong-token-wrong-token", TOKEN + "x", TOKEN[:-1]):
            r = admin(g, method, path, token=token)
            refused(r, 401, "unauthorized", "Bearer")
            assert r.header("www-authenticate") == 'Bearer realm="gatehouse-admin"'
    # a body is not read before the token: the connection closes after the 401
    with RawConn(g.admin) as c:
        c.request("POST", "/apikeys", [("Content-Type", "application/json")], b'{"consumer":"mallory"}')
        assert c.read_response().status == 401
        assert c.is_closed()
    assert [x["consumer"] for x in doc(admin(g, "GET", "/apikeys"))] == ["alice"]
    assert doc(admin(g, "GET", f"/apikeys/{k['id']}"))["state"] == "valid"


def test_without_a_token_the_endpoints_are_forbidden(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path, token=False, apikeys=False)
    refused(admin(g, "GET", "/apikeys", token=None), 403, "forbidden", "admin.token_file")
    refused(admin(g, "POST", "/apikeys", {"consumer": "a"}, token=None), 403, "forbidden", "token")
    assert admin(g, "GET", "/live", token=None).status == 200
    assert not (tmp_path / "gh.db").exists()


def test_store_without_apikey_providers(gatehouse, upstream, tmp_path):
    """A config whose routes use no API keys still has its store (the
    default, in the state directory), so keys can be made before routes
    use them; it is made on first use, not at start."""
    state = tmp_path / "state"
    g = start(gatehouse, upstream, tmp_path, apikeys=False, state_dir=state)
    assert not state.exists()
    k = create(g, consumer="early")
    assert (state / "gatehouse.db").exists()
    assert json.loads(cli(g, "show", k["id"], "--json").stdout)["consumer"] == "early"


def test_reload_to_another_store(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    k = create(g, consumer="first")
    text = g.config_text.replace(str(tmp_path / "gh.db"), str(tmp_path / "other.db"))
    write_config(g, text)
    sighup(g)
    wait_for(lambda: doc(admin(g, "GET", "/apikeys")) == [], 10, "the other store")
    assert use(g, k["key"]).status == 401
    k2 = create(g, consumer="second")
    assert use(g, k2["key"]).status == 200
    # and back: the first store's key again
    write_config(g, text.replace(str(tmp_path / "other.db"), str(tmp_path / "gh.db")))
    sighup(g)
    wait_for(lambda: [x["consumer"] for x in doc(admin(g, "GET", "/apikeys"))] == ["first"], 10, "the first store")
    assert use(g, k["key"]).status == 200


def test_store_unavailable_is_503(gatehouse, upstream, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    g = start(gatehouse, upstream, tmp_path, store={"kind": "sqlite", "path": str(blocker / "gh.db")})
    refused(admin(g, "GET", "/apikeys"), 503, "service_unavailable", "the key store is unavailable")
    refused(admin(g, "POST", "/apikeys", {"consumer": "a"}), 503, "service_unavailable", "unavailable")


def test_malformed_bodies(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    cases = [
        ('{"consumer":"a"', "ends too early"),
        ('{"consumer":"a"} {}', "something follows"),
        ("consumer=a", "not acceptable JSON"),
        ('{"consumer":"a","consumer":"b"}', "appears twice"),
        ('{"consumer":"a","\\u0063onsumer":"b"}', "appears twice"),
        ('{"consumer":1}', "consumer must be a string"),
        ('{"consumer":null}', "consumer must be a string"),
        ('{"consumer":"a","scopes":"a,b"}', "scopes must be an array"),
        ('{"consumer":"a","scopes":["a b"]}', "scopes[0] must be one scope"),
        ('{"consumer":"a","expires":90}', "expires must be a string"),
        ('{"consumer":"a","expires":"90"}', "expires must be a duration"),
        ('{"consumer":"a","plan":"gold","Plan":"x"}', "unknown member 'Plan'"),
        ('["a"]', "must be a JSON object"),
        ("", "needs a JSON body"),
        ('{"consumer":"=HYPERLINK(1)"}', "the consumer"),
    ]
    for body, why in cases:
        refused(admin(g, "POST", "/apikeys", body), 400, "bad_request", why)
    refused(admin(g, "POST", "/apikeys", b'{"consumer":"\xff"}'), 400, "bad_request", "not UTF-8")
    refused(admin(g, "POST", "/apikeys", '{"consumer":"a"}', ctype=None), 415, "unsupported_media_type",
            "application/json")
    refused(admin(g, "POST", "/apikeys", '{"consumer":"a"}', ctype="text/plain"), 415,
            "unsupported_media_type", "application/json")
    refused(admin(g, "POST", "/apikeys?dry_run=1", '{"consumer":"a"}'), 400, "bad_request", "create takes none")
    k = create(g, consumer="x")
    refused(admin(g, "POST", f"/apikeys/{k['id']}/rotate", {"grace": 5}), 400, "bad_request", "grace must be")
    refused(admin(g, "POST", f"/apikeys/{k['id']}/revoke", {"now": True}), 400, "bad_request", "unknown member")
    refused(admin(g, "PUT", f"/apikeys/{k['id']}"), 405, "method_not_allowed", "GET, HEAD")
    assert admin(g, "PUT", f"/apikeys/{k['id']}").header("allow") == "GET, HEAD"
    assert admin(g, "DELETE", "/apikeys").header("allow") == "GET, HEAD, POST"
    refused(admin(g, "GET", "/apikeys/NOPE"), 404, "not_found", "is not a key id")
    assert [x["consumer"] for x in doc(admin(g, "GET", "/apikeys"))] == ["x"]


def raw_admin(g):
    return RawConn(g.admin)


def head(path, n, ctype="application/json", extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {n}\r\n{extra}\r\n").encode()


def test_bodies_on_the_wire(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    body = b'{"consumer":"wire","description":"sent in pieces"}'
    req = head("/apikeys", len(body)) + body + b"GET /live HTTP/1.1\r\nHost: a\r\n\r\n"
    # split across reads, at a few places (every place: tests/unit/admin)
    for cut in (1, len(req) // 3, req.index(b"\r\n\r\n") + 4, len(req) - len(body) // 2, len(req) - 1):
        with raw_admin(g) as c:
            c.send(req[:cut])
            time.sleep(0.02)
            c.send(req[cut:])
            r = c.read_response()
            assert r.status == 201 and json.loads(r.body)["consumer"] == "wire", r.body
            r = c.read_response()
            assert r.status == 200 and json.loads(r.body) == {"status": "live"}
    # too large: refused before it is read; the answer is whole and the connection closes
    big = b" " * (64 * 1024 + 1)
    with raw_admin(g) as c:
        c.send(head("/apikeys", len(big)))
        r = c.read_response()
        assert r.status == 413 and r.header("connection") == "close", r
        assert "larger than 65536" in json.loads(r.body)["detail"]
        assert c.is_closed()
    # too large, sent whole before reading the answer
    with raw_admin(g) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        c.send(head("/apikeys", len(big)) + big)
        r = c.read_response()
        assert r.status == 413, r
    # chunked: 411, closed
    with raw_admin(g) as c:
        c.send(f"POST /apikeys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               "4\r\n{}  \r\n0\r\n\r\n".encode())
        r = c.read_response()
        assert r.status == 411 and "Content-Length" in json.loads(r.body)["detail"]
        assert c.is_closed()
    # a body on a GET: 400, closed, as before
    with raw_admin(g) as c:
        c.send(f"GET /apikeys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Content-Length: 2\r\n\r\n{}".encode())
        assert c.read_response().status == 400
        assert c.is_closed()
    # 100-continue
    with raw_admin(g) as c:
        c.send(head("/apikeys", len(body), extra="Expect: 100-continue\r\n"))
        r = c.read_response(skip_interim=False)
        assert r.status == 100
        c.send(body)
        assert c.read_response().status == 201
    # a client that stalls mid-body is closed, without an answer
    with raw_admin(g) as c:
        c.send(head("/apikeys", len(body)) + body[:10])
        t0 = time.monotonic()
        assert c.is_closed(timeout=30)
        assert not c.buf
        assert time.monotonic() - t0 >= 4  # the stall bound (5 s), not an immediate close
    # one that resets mid-body leaves the server serving
    with raw_admin(g) as c:
        c.send(head("/apikeys/import", 1000, ctype="text/csv") + b"Name,Key\n")
        time.sleep(0.05)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    r = admin(g, "POST", "/apikeys/import?dry_run=1", "Name,Key\n", ctype="text/csv")
    assert r.status == 200, r.body
    assert sorted(x["consumer"] for x in doc(admin(g, "GET", "/apikeys"))) == ["wire"] * 6


def test_import_bound_is_configurable(gatehouse, upstream, tmp_path):
    up = upstream()
    cfg = config(up, tmp_path)
    cfg["admin"]["max_import_body"] = "1KiB"
    g = gatehouse(cfg)
    g.admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    wait_admin(g.admin)
    rows = "Name,Key\n" + "".join(f"c{i},apikey{i:04d}abcdefghij0123456789\n" for i in range(40))
    assert len(rows) > 1024
    refused(admin(g, "POST", "/apikeys/import", rows, ctype="text/csv"), 413, "payload_too_large",
            "admin.max_import_body")
    assert admin(g, "POST", "/apikeys/import", rows[:900].rsplit("\n", 1)[0] + "\n", ctype="text/csv").status == 200
    c = json.loads(admin(g, "GET", "/config").body)
    assert c["admin"]["max_import_body"] == 1024
