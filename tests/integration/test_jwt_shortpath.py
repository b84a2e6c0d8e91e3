"""The authn filter's short path (src/filters/jwt/filter.c bearer_cached):
on a route with one provider that reads only "Authorization: Bearer",
forwards the token and sets no headers, a token already in the worker's
cache is accepted without the general path's location scan. Each case here
first gets the token cached (an accepted request), then sends what the
short path could decide differently from the general one: other spellings,
a look-alike sharing the cache hash's inputs, the token of another
provider's cache entry, a config reload, a split head, and routes that
must never take the short path (forward_token: false, claims_to_headers,
exempt, all, any). A cached token's expiry is tested in-process, with the
filter's clock moved (tests/unit/filters/test_jwt_identity.c); keys that
change under a cached token in test_jwks_lifecycle.py (its default route
takes the short path)."""

import time

from harness import RawConn, echo_of, hdr
from jwt_util import (expect_invalid, expect_missing, expect_ok, get, mint, provider, route, rsa_key,
                      start)
from ops_util import read_json_lines, wait_for


def seen(r):
    return echo_of(r)["headers"]


def look_alike(tok, where):
    """tok with one base64url character changed in its header ("h") or
    payload ("p") segment: same length, same last 16 bytes (the cache
    hash's inputs, gh_jwtf_hash), so the same cache set and hash."""
    head, payload, sig = tok.split(".")
    if where == "h":
        i = len(head) // 2
        head = head[:i] + ("A" if head[i] != "A" else "B") + head[i + 1:]
    else:
        i = len(payload) // 2
        payload = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1:]
    out = ".".join((head, payload, sig))
    assert len(out) == len(tok) and out[-16:] == tok[-16:] and out != tok
    return out


def test_spellings_and_look_alikes_after_caching(gatehouse, upstream):
    """Every spelling the general path reads as a bearer token is accepted
    with the token cached (and every one it refuses is refused): the short
    path takes only "Bearer " + a non-blank byte and passes the rest on.
    Look-alikes that share the hash inputs hit the cached entry's hash but
    not its bytes, whichever segment differs, and stay refused however
    often they are sent."""
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa])},
              routes=[route("opt", "/opt", {"optional": ["corp"]}), route("req", "/", "corp")])
    tok = mint(rsa, sub="alice")
    for path in ("/echo", "/opt"):
        for _ in range(3):
            expect_ok(get(g, path, tok))
        # (Trailing blanks are not the value's: RFC 9112 section 5.)
        for v in (f"Bearer  {tok}", f"Bearer\t{tok}", f"Bearer \t{tok}", f"bearer {tok}",
                  f"BEARER {tok}", f"BeArEr {tok}", f"Bearer {tok} ", f"Bearer {tok}\t "):
            expect_ok(get(g, path, headers=[("Authorization", v)]))
        # A blank that is no SP/HTAB starts the token: malformed, on both
        # routes (the optional one included: an invalid token never passes).
        for v in (f"Bearer \xa0{tok}", f"Bearer\xa0{tok}", f"Bearer \x85{tok}", f"Bearer ,{tok}"):
            expect_invalid(get(g, path, headers=[("Authorization", v)]), "malformed")
        for where in ("h", "p"):
            forged = look_alike(tok, where)
            for _ in range(2):
                r = get(g, path, forged)
                assert r.status == 401, (where, r.status, r.body[:200])
        # Same hash inputs and nothing else of the token: garbage.
        junk = "x" * (len(tok) - 16) + tok[-16:]
        expect_invalid(get(g, path, junk), "malformed")
        for v in (tok[:-1], tok + "A", "A" + tok[1:], tok + " x", tok + "\tx", tok + ",x"):
            assert get(g, path, v).status == 401, v
        # Another scheme with the cached token after it is no bearer token
        # ("Digest " is as long as "Bearer ").
        for scheme in ("Basic", "Digest", "Bearer-", "Bearerx"):
            r = get(g, path, headers=[("Authorization", f"{scheme} {tok}")])
            if path == "/opt":
                expect_ok(r)
            else:
                expect_missing(r)
        # No blank after the scheme: "Bearereyj..." is another scheme.
        r = get(g, path, headers=[("Authorization", f"Bearer{tok}")])
        if path == "/opt":
            expect_ok(r)
        else:
            expect_missing(r)
    # obs-fold before the token: refused by the parser (RFC 9112 section 5.2).
    with RawConn(g.port, timeout=5) as c:
        c.send(f"GET /echo HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer\r\n {tok}\r\n\r\n")
        assert c.read_response().status == 400
    # Two Authorization fields, the cached token in each: refused before
    # any filter (the short path reads the one the stream found).
    for two in ([("Authorization", f"Bearer {tok}"), ("Authorization", f"Bearer {tok}")],
                [("Authorization", f"Bearer {tok}"), ("authorization", "Basic eDp5")]):
        assert get(g, "/echo", headers=two).status == 400


def test_cached_entry_is_per_provider(gatehouse, upstream):
    """Two bearer-only providers share keys and issuer, their audiences
    differ: a token cached by one is refused by the other on every
    request, in either order, and a third provider of another issuer
    refuses it too."""
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {
        "pa": provider(keys=[rsa], audiences=["a"]),
        "pb": provider(keys=[rsa], audiences=["b"]),
        "pc": provider(keys=[rsa], issuer="https://other.example", audiences=["a"]),
    }, routes=[route("ra", "/a", "pa"), route("rb", "/b", "pb"), route("rc", "/c", "pc")])
    ta, tb = mint(rsa, aud="a"), mint(rsa, aud="b")
    for _ in range(3):
        expect_ok(get(g, "/a", ta))
        expect_invalid(get(g, "/b", ta), "audience")
        expect_invalid(get(g, "/c", ta), "issuer")
        expect_ok(get(g, "/b", tb))
        expect_invalid(get(g, "/a", tb), "audience")


def test_authorization_split_across_reads(gatehouse, upstream):
    """The head arrives a few bytes at a time, split inside the
    Authorization field: the cached token is accepted, its look-alike
    refused, on one keep-alive connection."""
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa])})
    tok = mint(rsa)
    expect_ok(get(g, "/echo", tok))
    forged = look_alike(tok, "p")
    with RawConn(g.port, timeout=5) as c:
        for t, want in ((tok, 200), (forged, 401), (tok, 200)):
            data = RawConn.build("GET", "/echo", [("Authorization", f"Bearer {t}")])
            i = data.index(b"Bearer")
            pieces = [data[:i + 3], data[i + 3:i + 7], data[i + 7:i + 8], data[i + 8:-20],
                      data[-20:-2], data[-2:]]
            for p in pieces:
                c.send(p)
                time.sleep(0.02)
            r = c.read_response()
            assert r.status == want, (want, r.status, r.body[:200])


def test_routes_that_must_not_take_the_short_path(gatehouse, upstream, tmp_path):
    """A cached token on routes the short path must leave alone: the token
    is still stripped (forward_token: false), forged identity headers are
    still dropped and set from the token (claims_to_headers), exempt paths
    are still exempt (not checked: no principal) and the others still
    checked, and all/any routes still check every provider or the
    issuer's."""
    rsa = rsa_key()
    other = rsa_key(kid="rsa-2", slot="shortpath-other")
    up = upstream()
    g = start(gatehouse, up, {
        "plain": provider(keys=[rsa], audiences=["a"]),
        "drop": provider(keys=[rsa], audiences=["d"], forward_token=False),
        "hdrs": provider(keys=[rsa], audiences=["h"], claims_to_headers={"sub": "x-user"}),
        "second": provider(keys=[other], issuer="https://second.example", audiences=["a"],
                           **{"from": [{"header": "x-second"}]}),
    }, routes=[
        route("drop", "/nofwd", "drop"),
        route("hdrs", "/hdrs", "hdrs"),
        route("ex", "/ex", {"any": ["plain"], "exempt": [{"prefix": "/ex/open"}]}),
        route("all", "/all", {"all": ["plain", "second"]}),
        route("any", "/any", {"any": ["second", "plain"]}),
        route("plain", "/", "plain"),
    ], access_log=tmp_path / "access.log")
    tok = mint(rsa, aud=["a", "d", "h"], sub="alice")
    tok2 = mint(other, iss="https://second.example", aud="a", sub="svc")
    forged = look_alike(tok, "p")
    for _ in range(3):
        expect_ok(get(g, "/plain", tok))  # cached for "plain"
        h = seen(expect_ok(get(g, "/nofwd", tok)))
        assert hdr(h, "authorization") == [], h
        h = seen(expect_ok(get(g, "/hdrs", tok, headers=[("X-User", "root")])))
        assert hdr(h, "x-user") == ["alice"], h
        expect_ok(get(g, "/ex/open", forged))
        expect_ok(get(g, "/ex/open?cached=1", tok))
        assert get(g, "/ex/closed", forged).status == 401
        h = seen(expect_ok(get(g, "/ex/closed", tok)))
        assert hdr(h, "authorization") == [f"Bearer {tok}"], h
        expect_missing(get(g, "/all", tok))
        expect_ok(get(g, "/all", tok, headers=[("X-Second", tok2)]))
        assert get(g, "/all", tok, headers=[("X-Second", forged)]).status == 401
        expect_ok(get(g, "/any", tok))
        assert get(g, "/any", forged).status == 401
        expect_invalid(get(g, "/any", tok, headers=[("X-Second", tok2)]), "multiple tokens")
    recs = wait_for(lambda: (lambda rs: [r for r in rs if r.get("query") == "cached=1"] or None)(
        read_json_lines(tmp_path / "access.log")), 10, "the exempt requests' log lines")
    for rec in recs:
        assert rec.get("principal") in (None, "", "-"), rec


def test_reload_retires_cached_entries(gatehouse, upstream):
    """A reload that adds a required claim to the provider: its runtime is
    new, so the token cached under the old config is judged again and
    refused (403), never accepted from the old entry."""
    from jwt_util import build_config, metric
    from ops_util import config_text, write_config

    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa])}, admin=True)
    tok = mint(rsa)
    for _ in range(3):
        expect_ok(get(g, "/echo", tok))
    cfg = build_config(up, {"corp": provider(keys=[rsa], required_claims=[{"claim": "role",
                                                                          "exact": "admin"}])},
                       admin_port=g.admin)
    write_config(g, config_text(g, cfg), "rename")
    wait_for(lambda: metric(g, "gatehouse_config_generation") >= 2, 10, "the reload")
    for _ in range(3):
        assert get(g, "/echo", tok).status == 403
    expect_ok(get(g, "/echo", mint(rsa, role="admin")))


def test_identity_per_request_on_keepalive(gatehouse, upstream, tmp_path):
    """On one connection: the cached token (short path), no token, another
    token, its look-alike, the first again. Each request's principal in
    the access log is its own token's, or none."""
    rsa = rsa_key()
    log = tmp_path / "access.log"
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa])},
              routes=[route("opt", "/", {"optional": ["corp"]})], access_log=log)
    ta, tb = mint(rsa, sub="alice"), mint(rsa, sub="bob")
    expect_ok(get(g, "/echo?n=0", ta))
    plan = [("alice", ta, 200), (None, None, 200), ("bob", tb, 200), (None, look_alike(tb, "p"), 401),
            ("bob", tb, 200), ("alice", ta, 200), (None, None, 200)]
    with RawConn(g.port, timeout=5) as c:
        for n, (who, t, want) in enumerate(plan, 1):
            hs = [("Authorization", f"Bearer {t}")] if t else []
            c.request("GET", f"/echo?n={n}", hs)
            r = c.read_response()
            assert r.status == want, (n, who, r.status, r.body[:200])
    recs = wait_for(lambda: (lambda rs: rs if len(rs) >= len(plan) + 1 else None)(read_json_lines(log)), 10,
                    "log lines")
    by = {rec.get("query"): rec for rec in recs}
    for n, (who, _, _) in enumerate(plan, 1):
        assert by[f"n={n}"].get("principal") in ((who,) if who else (None, "", "-")), (n, by[f"n={n}"])
