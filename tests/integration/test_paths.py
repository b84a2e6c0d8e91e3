"""Path normalization (docs/http.md, "Path normalization"): dot segments in
every spelling, escaped slashes and backslashes, ;params, merged slashes
and encoded unreserved characters, against a JWT exemption for /public/ and
an unauthenticated prefix route /open/. The upstream's raw log must hold
exactly the normalized requests that were allowed through, with the query
as sent, and the access log the normalized path. The exhaustive cases are
in tests/unit/http/test_path.c; these are the ones that prove the wiring.
"""

import json

import pytest

from harness import RawConn, fetch
from jwt_util import build_config, expect_missing, expect_ok, get, mint, provider, route, rsa_key
from ops_util import read_json_lines, wait_for
from test_cli import run


def routes():
    return [
        route("open", "/open/", None),
        route("api", "/", {"any": ["corp"], "exempt": [{"prefix": "/public/"}]}),
    ]


def start(gatehouse, up, listener=None, access_log=None):
    cfg = build_config(up, {"corp": provider(keys=[rsa_key()])}, routes(), access_log=access_log)
    cfg["listeners"][0].update(listener or {})
    return gatehouse(cfg)


def expect_bad(r):
    assert r.status == 400, f"expected 400, got {r.status}: {r.body[:300]!r}"
    assert json.loads(r.body)["error"] == "bad_request", r.body


def raw_get(g, target, token=None):
    """A request line sent exactly as written (fetch does too; this is for
    absolute-form)."""
    hs = [("Authorization", f"Bearer {token}")] if token else []
    with RawConn(g.port) as c:
        c.request("GET", target, hs)
        return c.read_response("GET")


# Spellings of /admin reached through the exempt /public/ prefix (or the
# open /open/ route): each must be judged as /admin (401 without a token)
# and reach the upstream as /admin with one.
CLIMBS = [
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2e/admin",
    "/public/.%2e/admin",
    "/public/..;/admin",
    "/public/..;x=1/admin",
    "/public/..%3b/admin",
    "/public/.;x/../admin",
    "/public/a/b/../../../admin",
    "/public/%2e%2e",  # -> "/", not exempt either
    "/open/../admin",
    "/open/..;/admin",
    "/%61dmin",
    "/%61%64%6D%69%6e",
    "//admin",
    "///admin",
    "/./admin",
    "/admin;jsessionid=1",
]

# Refused outright (400) under the default options, with or without a token.
REFUSED = [
    "/public/..%2fadmin",
    "/public/..%2Fadmin",
    "/public/%2e%2e%5cadmin",
    "/public/..%5Cadmin",
    "/public/..\\admin",
    "/public%2f..%2fadmin",
    "/admin%2fx",
    "/public/%00/x",
    "/public/%0a",
    "/public/%zz",
    "/public/%2",
    "/public/%",
    "/public/%c0%ae%c0%ae/admin",
    "/public/%ed%a0%80",
]


def normalized(target):
    return "/" if target == "/public/%2e%2e" else "/admin"


def test_climbs_out_of_exempt_and_open_prefixes(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    tok = mint(rsa_key())
    for t in CLIMBS:
        expect_missing(get(g, t))
    for t in REFUSED:
        expect_bad(get(g, t))
        expect_bad(get(g, t, tok))
    # Only now does anything reach the upstream: each climb with a token.
    for t in CLIMBS:
        expect_ok(get(g, t, tok))
    # The exempt prefix still works, for the normalized path.
    expect_ok(get(g, "/public/a/./b/../c%7e?x=%2e%2e/%2F&y"))
    expect_ok(get(g, "/open/x/..//y"))
    seen = [r.target for r in up.wait_requests(len(CLIMBS) + 2)]
    assert seen == [normalized(t) for t in CLIMBS] + ["/public/a/c~?x=%2e%2e/%2F&y", "/open/y"], seen
    assert len(up.complete_requests()) == len(CLIMBS) + 2


def test_absolute_form_is_normalized(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    tok = mint(rsa_key())
    expect_missing(raw_get(g, "http://gatehouse.test/public/../admin"))
    expect_missing(raw_get(g, "http://gatehouse.test/public/%2e%2e/admin?q=1"))
    expect_bad(raw_get(g, "http://gatehouse.test/public/..%2fadmin"))
    expect_ok(raw_get(g, "http://gatehouse.test/public/%2e%2e/admin?q=%2e%2e", tok))
    expect_ok(raw_get(g, "http://gatehouse.test?q=1", tok))
    seen = [r.target for r in up.wait_requests(2)]
    assert seen == ["/admin?q=%2e%2e", "/?q=1"], seen


def test_upstream_gets_case_normalized_escapes(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    for t in ("/public/%c3%a9t%c3%a9", "/public/a%3bb", "/public/a%20b%2a", "/public/%25%32%65"):
        expect_ok(get(g, t))
    seen = [r.target for r in up.wait_requests(4)]
    assert seen == ["/public/%C3%A9t%C3%A9", "/public/a%3Bb", "/public/a%20b%2A", "/public/%252e"], seen


def test_access_log_shows_normalized_path(gatehouse, upstream, tmp_path):
    log = tmp_path / "access.log"
    up = upstream()
    g = start(gatehouse, up, access_log=log)
    expect_missing(get(g, "/public/%2e%2e/admin?n=1"))
    expect_ok(get(g, "/public/x/..;p/%79?n=2"))
    expect_bad(get(g, "/public/..%2fadmin?n=3"))
    recs = wait_for(lambda: (lambda rs: rs if len(rs) >= 3 else None)(read_json_lines(log)), 10, "3 log lines")
    by = {r.get("query"): r for r in recs}
    assert by["n=1"]["path"] == "/admin" and by["n=1"]["status"] == 401, by["n=1"]
    assert by["n=2"]["path"] == "/public/y" and by["n=2"]["status"] == 200, by["n=2"]
    # A refused path is logged as it was sent: there is no normalized one.
    assert by["n=3"]["path"] == "/public/..%2fadmin" and by["n=3"]["status"] == 400, by["n=3"]
    assert [r.target for r in up.wait_requests(1)] == ["/public/y?n=2"]


def test_escaped_slashes_keep(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, {"escaped_slashes": "keep"})
    tok = mint(rsa_key())
    # Kept, upper-cased, and not a segment boundary for matching...
    expect_ok(get(g, "/public/group%2fproject/x"))
    expect_ok(get(g, "/public/a\\b"))
    # ...but never next to a dot segment, which a decoding origin would climb.
    for t in ("/public/..%2fadmin", "/public/%2e%2e%5cadmin", "/public/..\\admin", "/public%2f..%2fadmin"):
        expect_bad(get(g, t, tok))
    expect_missing(get(g, "/public/x%2F/../../admin"))
    seen = [r.target for r in up.wait_requests(2)]
    assert seen == ["/public/group%2Fproject/x", "/public/a\\b"], seen


def test_escaped_slashes_unescape_and_redirect(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up, {"escaped_slashes": "unescape_and_redirect"})
    r = get(g, "/public/..%2fadmin?x=%2F")
    assert r.status == 307, r
    assert r.header("location") == "/admin?x=%2F", r.headers
    r = get(g, "/public/a%5Cb")
    assert r.status == 307 and r.header("location") == "/public/a/b", r.headers
    r = get(g, "/public/..\\..\\admin")
    assert r.status == 307 and r.header("location") == "/admin", r.headers
    # Never a Location that browsers read as another host.
    r = get(g, "/%2F%2Fevil.example/x")
    assert r.status == 307 and r.header("location") == "/evil.example/x", r.headers
    g2 = start(gatehouse, up, {"escaped_slashes": "unescape_and_redirect", "merge_slashes": False})
    for t in ("/%2F%2Fevil.example/x", "/%5c%5cevil.example", "//%2fevil.example", "/\\evil.example"):
        expect_bad(get(g2, t))
    # Following the redirect is an ordinary request.
    expect_ok(get(g, "/public/a/b"))
    assert [x.target for x in up.wait_requests(1)] == ["/public/a/b"]


def test_path_params_and_merge_options(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    expect_ok(get(g, "/public/a;v=1/b;c"))
    up2 = upstream()
    g2 = start(gatehouse, up2, {"path_params": "keep", "merge_slashes": False})
    tok = mint(rsa_key())
    expect_ok(get(g2, "/public/a;v=1/b"))
    expect_ok(get(g2, "//admin", tok))
    expect_missing(get(g2, "/public/..;v=1/admin"))  # a dot segment loses its params anyway
    up3 = upstream()
    g3 = start(gatehouse, up3, {"path_params": "reject"})
    expect_bad(get(g3, "/public/a;v=1"))
    expect_ok(get(g3, "/public/a%3Bv=1"))
    assert [r.target for r in up.wait_requests(1)] == ["/public/a/b"]
    assert [r.target for r in up2.wait_requests(2)] == ["/public/a;v=1/b", "//admin"]
    assert [r.target for r in up3.wait_requests(1)] == ["/public/a%3Bv=1"]


def test_normalize_path_off_forwards_verbatim(gatehouse, upstream):
    """The escape hatch is what the docs say it is: the path is matched and
    forwarded as sent (and /public/../admin is then exempt)."""
    up = upstream()
    g = start(gatehouse, up, {"normalize_path": False})
    expect_ok(get(g, "/public/../admin?a=%2e"))
    expect_ok(get(g, "/public/%2e%2e%2fx"))
    assert [r.target for r in up.wait_requests(2)] == ["/public/../admin?a=%2e", "/public/%2e%2e%2fx"]


@pytest.mark.parametrize("key,value,word", [
    ("escaped_slashes", "unescape", "escaped_slashes"),
    ("path_params", "drop", "path_params"),
    ("normalize_path", "yes please", "normalize_path"),
    ("merge_slashes", "7", "merge_slashes"),
])
def test_config_errors(tmp_path, key, value, word):
    p = tmp_path / "bad.yaml"
    p.write_text(f"""\
listeners:
  - name: edge
    listen: 127.0.0.1:1
    {key}: {value}
    routes:
      - name: all
        match: {{ path: {{ prefix: / }} }}
        direct_response: {{ status: 200 }}
""")
    r = run("validate", "-c", str(p))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert f"{p}:4:" in r.stderr and word in r.stderr, r.stderr


def test_fresh_request_after_refusals(gatehouse, upstream):
    """A refused path leaves nothing behind: without a body the connection
    serves the next (pipelined) request; with a body it is closed, and the
    body is never read as a request."""
    up = upstream()
    g = start(gatehouse, up)
    with RawConn(g.port) as c:
        c.send(RawConn.build("GET", "/public/..%2fadmin") + RawConn.build("GET", "/public/next"))
        r = c.read_response("GET")
        assert r.status == 400, r
        assert r.header("connection") is None, r.headers
        r = c.read_response("GET")
        assert r.status == 200, r
    smuggled = RawConn.build("GET", "/public/smuggled")
    with RawConn(g.port) as c:
        c.send(RawConn.build("POST", "/public/%zz", body=smuggled) + RawConn.build("GET", "/public/after"))
        r = c.read_response("POST")
        assert r.status == 400, r
        assert c.is_closed(), "the connection must close: the body was not read"
    r = fetch(g.port, "GET", "/public/ok")
    assert r.status == 200
    assert [x.target for x in up.wait_requests(2)] == ["/public/next", "/public/ok"]
    assert len(up.complete_requests()) == 2
