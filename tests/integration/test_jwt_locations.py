"""Where tokens come from (Authorization with a case-insensitive scheme,
other headers with or without a prefix, a query parameter, a cookie; two
different tokens refused), what the upstream receives (claims_to_headers,
payload_header, the token forwarded or removed, client-forged identity
headers stripped), the route authn modes (any, all, optional, exempt
paths) and the principal in the access log."""

import base64
import json

from harness import assert_refusal, echo_of, hdr
from jwt_util import (ec_key, expect_invalid, expect_missing, expect_ok, get, mint, provider, route, rsa_key,
                      start)
from ops_util import read_json_lines, wait_for

FROM_ALL = [{"header": "authorization", "prefix": "Bearer "}, {"header": "x-token"},
            {"query": "access_token"}, {"cookie": "session"}]


def seen(r):
    return echo_of(r)["headers"]


def test_bearer_scheme_case_insensitive(gatehouse, upstream):
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa])})
    tok = mint(rsa)
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        expect_ok(get(g, "/echo", tok, scheme=scheme))
    # Extra spaces after the scheme are tolerated.
    expect_ok(get(g, "/echo", headers=[("Authorization", f"Bearer   {tok}")]))
    # The header name is case-insensitive as every HTTP field name.
    expect_ok(get(g, "/echo", headers=[("AUTHORIZATION", f"Bearer {tok}")]))


def test_other_schemes_are_missing_token(gatehouse, upstream):
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa])})
    expect_missing(get(g, "/echo"))
    expect_missing(get(g, "/echo", headers=[("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")]))
    expect_missing(get(g, "/echo", headers=[("Authorization", "Digest username=\"a\"")]))
    expect_missing(get(g, "/echo", headers=[("Authorization", "Bearer")]))
    expect_missing(get(g, "/echo", headers=[("Authorization", "Bearer ")]))
    # A token in a place the provider does not read is no token.
    expect_missing(get(g, "/echo?access_token=" + mint(rsa)))
    expect_missing(get(g, "/echo", headers=[("Cookie", "session=" + mint(rsa))]))
    r = get(g, "/echo", headers=[("Authorization", "Bearer" + mint(rsa))])
    assert r.status == 401, r


def test_bearer_then_tab_is_checked(gatehouse, upstream):
    """"Bearer<TAB>token" breaks RFC 9110's single SP, yet upstreams that
    split on whitespace read it as a bearer token: it is one here too,
    verified like any other, so an optional route cannot pass a forged
    one on unverified (it did, as "another scheme")."""
    rsa = rsa_key()
    forged = mint(rsa_key(kid="rsa-1", slot="attacker-rsa"), sub="root")
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], claims_to_headers={"sub": "x-user"})},
              routes=[route("opt", "/opt", {"optional": ["corp"]}), route("req", "/", {"any": ["corp"]})])
    for sep in ("\t", "\t ", " \t", "\t\t"):
        for path in ("/opt", "/echo"):
            expect_invalid(get(g, path, headers=[("Authorization", f"Bearer{sep}{forged}")]), "bad signature")
        h = seen(expect_ok(get(g, "/opt", headers=[("Authorization", f"bearer{sep}{mint(rsa)}")])))
        assert hdr(h, "x-user") == ["alice"], h
    # Latin-1 NBSP and NEL (whitespace to Python's str.split) end the scheme
    # word too; what follows them is no base64url token.
    # (Header text goes out as Latin-1: "\xc2\xa0" is UTF-8's NBSP.)
    for sep in ("\xa0", "\x85", "\xc2\xa0", ",", ";"):
        for path in ("/opt", "/echo"):
            expect_invalid(get(g, path, headers=[("Authorization", f"Bearer{sep}{forged}")]), "malformed header")
    # Other schemes, and a longer scheme word, are not bearer tokens.
    expect_ok(get(g, "/opt", headers=[("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")]))
    expect_ok(get(g, "/opt", headers=[("Authorization", "Bearer\t")]))
    assert get(g, "/opt", headers=[("Authorization", "Bearer" + forged)]).status == 200
    assert get(g, "/opt", headers=[("Authorization", "Bearer-" + forged)]).status == 200


def test_every_location(gatehouse, upstream):
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa], **{"from": FROM_ALL + [
        {"header": "x-prefixed", "prefix": "JWT "}]})})
    tok = mint(rsa)
    expect_ok(get(g, "/echo", tok))
    expect_ok(get(g, "/echo", headers=[("X-Token", tok)]))
    expect_ok(get(g, "/echo", headers=[("x-prefixed", "JWT " + tok)]))
    expect_ok(get(g, "/echo", headers=[("x-prefixed", "jwt " + tok)]))
    expect_missing(get(g, "/echo", headers=[("x-prefixed", tok)]))
    expect_ok(get(g, f"/echo?access_token={tok}"))
    expect_ok(get(g, f"/echo?a=1&access_token={tok}&b=2"))
    expect_ok(get(g, "/echo", headers=[("Cookie", f"session={tok}")]))
    expect_ok(get(g, "/echo", headers=[("Cookie", f"theme=dark; session={tok}; lang=en")]))
    expect_missing(get(g, "/echo", headers=[("Cookie", f"xsession={tok}")]))
    expect_missing(get(g, f"/echo?xaccess_token={tok}"))
    # An invalid token in any location is an invalid token, not a missing one.
    expect_invalid(get(g, "/echo?access_token=abc.def.ghi"))
    expect_invalid(get(g, "/echo", headers=[("Cookie", "session=abc.def.ghi")]))


def test_two_different_tokens_refused(gatehouse, upstream):
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa], **{"from": FROM_ALL})})
    a, b = mint(rsa, sub="alice"), mint(rsa, sub="bob")
    assert a != b
    cases = [
        dict(target=f"/echo?access_token={b}", token=a),
        dict(target="/echo", token=a, headers=[("X-Token", b)]),
        dict(target="/echo", token=a, headers=[("Cookie", f"session={b}")]),
        dict(target=f"/echo?access_token={a}&access_token={b}"),
        dict(target="/echo", headers=[("X-Token", a), ("X-Token", b)]),
        dict(target="/echo", headers=[("Cookie", f"session={a}"), ("Cookie", f"session={b}")]),
        # A valid and an invalid one: still two tokens.
        dict(target="/echo?access_token=junk.junk.junk", token=a),
    ]
    for c in cases:
        r = get(g, c.get("target"), c.get("token"), headers=c.get("headers", ()))
        expect_invalid(r, "multiple tokens")
    # The same token in several places is one token.
    expect_ok(get(g, f"/echo?access_token={a}", a))
    expect_ok(get(g, "/echo", a, headers=[("X-Token", a), ("Cookie", f"session={a}")]))
    # Two Authorization fields are refused before any filter runs, even
    # with the same token (docs/http.md: Authorization is a singleton).
    for two in ([("Authorization", f"Bearer {a}"), ("Authorization", f"Bearer {b}")],
                [("Authorization", f"Bearer {a}"), ("Authorization", f"bearer {a}")]):
        assert_refusal(get(g, "/echo", headers=two), 400, "bad_request")


def test_forward_token(gatehouse, upstream):
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {
        "keep": provider(keys=[rsa], audiences=["keep"]),
        "drop": provider(keys=[rsa], audiences=["drop"], forward_token=False,
                         **{"from": [{"header": "authorization", "prefix": "Bearer "}, {"header": "x-token"}]}),
    }, routes=[route("keep", "/fwd-keep", "keep"), route("drop", "/fwd-drop", "drop")])
    tk, td = mint(rsa, aud="keep"), mint(rsa, aud="drop")
    h = seen(expect_ok(get(g, "/fwd-keep", tk)))
    assert hdr(h, "authorization") == [f"Bearer {tk}"], h
    h = seen(expect_ok(get(g, "/fwd-drop", td)))
    assert hdr(h, "authorization") == [], f"forward_token: false, upstream still saw {hdr(h, 'authorization')}"
    h = seen(expect_ok(get(g, "/fwd-drop", headers=[("X-Token", td), ("X-Other", "kept")])))
    assert hdr(h, "x-token") == [], h
    assert hdr(h, "x-other") == ["kept"], h


CLAIM_HEADERS = {"sub": "x-user", "realm.role": "x-role", "groups": "x-groups", "age": "x-age",
                 "admin": "x-admin", "ratio": "x-ratio", "org.ids": "x-org-ids", "email": "x-email",
                 "a.b.c": "x-deep", "flags": "x-flags"}


def claims_gh(gatehouse, upstream, **extra):
    rsa = rsa_key()
    up = upstream()
    p = provider(keys=[rsa], claims_to_headers=CLAIM_HEADERS, payload_header="x-jwt-payload", **extra)
    g = start(gatehouse, up, {"corp": p}, routes=[
        route("opt", "/opt", {"optional": ["corp"]}),
        route("ex", "/", {"any": ["corp"], "exempt": [{"prefix": "/health"}]}),
    ])
    return g, up, rsa


def test_claims_to_headers_and_payload_header(gatehouse, upstream):
    g, up, rsa = claims_gh(gatehouse, upstream)
    payload_claims = dict(sub="alice", realm={"role": "admin", "x": 1}, groups=["eng", "ops", "on-call"], age=42,
                          admin=True, ratio=1.5, org={"ids": [7, 8]}, flags=[True, False], a={"b": {"c": "deep"}})
    tok = mint(rsa, **payload_claims)
    h = seen(expect_ok(get(g, "/echo", tok)))
    assert hdr(h, "x-user") == ["alice"], h
    assert hdr(h, "x-role") == ["admin"], h
    assert hdr(h, "x-groups") == ["eng,ops,on-call"], h
    assert hdr(h, "x-age") == ["42"], h
    assert hdr(h, "x-admin") == ["true"], h
    assert hdr(h, "x-ratio") == ["1.5"], h
    assert hdr(h, "x-org-ids") == ["7,8"], h
    assert hdr(h, "x-flags") == ["true,false"], h
    assert hdr(h, "x-deep") == ["deep"], h
    # Absent claims set no header.
    assert hdr(h, "x-email") == [], h
    p = hdr(h, "x-jwt-payload")
    assert len(p) == 1, h
    raw = base64.urlsafe_b64decode(p[0] + "=" * (-len(p[0]) % 4))
    assert raw == base64.urlsafe_b64decode(tok.split(".")[1] + "=" * (-len(tok.split(".")[1]) % 4)), raw
    doc = json.loads(raw)
    assert doc["sub"] == "alice" and doc["groups"] == ["eng", "ops", "on-call"], doc


def test_claim_values_cannot_inject_headers(gatehouse, upstream):
    g, up, rsa = claims_gh(gatehouse, upstream)
    for sub in ("alice\r\nx-injected: 1", "alice\nx-injected: 1", "alice\rx-injected: 1", "a\u0000b"):
        r = get(g, "/echo", mint(rsa, sub=sub, groups=["ok", "x\r\nx-injected: 2"]))
        if r.status == 200:
            h = seen(r)
            assert hdr(h, "x-injected") == [], h
            for v in hdr(h, "x-user") + hdr(h, "x-groups"):
                assert "\r" not in v and "\n" not in v and "\0" not in v, h
        else:
            assert r.status == 401, r
    raw = up.complete_requests()
    for req in raw:
        assert b"x-injected" not in req.raw_head.lower(), req.raw_head


def test_array_elements_cannot_smuggle_list_items(gatehouse, upstream):
    """An array claim is sent as a ','-separated list: an element holding a
    ',' would reach the upstream as two items ("admin" here), so the header
    is not sent at all; a plain string with a comma is one value and goes."""
    g, up, rsa = claims_gh(gatehouse, upstream)
    for groups in (["eng,admin"], ["eng", {"\",admin,\"": 1}], ["eng", ["admin", "x"]]):
        h = seen(expect_ok(get(g, "/echo", mint(rsa, sub="Doe, John", groups=groups))))
        assert hdr(h, "x-groups") == [], (groups, h)
        assert hdr(h, "x-user") == ["Doe, John"], h
    h = seen(expect_ok(get(g, "/echo", mint(rsa, groups=["eng", "ops"]))))
    assert hdr(h, "x-groups") == ["eng,ops"], h
    # HTTP trims spaces and tabs around a value and around list elements:
    # " admin" would arrive as "admin", so such a value is not sent either.
    for sub, groups in ((" admin", ["eng", " admin"]), ("admin\t", ["admin "])):
        h = seen(expect_ok(get(g, "/echo", mint(rsa, sub=sub, groups=groups))))
        assert hdr(h, "x-user") == [] and hdr(h, "x-groups") == [], h


def test_forged_identity_headers_stripped(gatehouse, upstream):
    g, up, rsa = claims_gh(gatehouse, upstream)
    forged = [("X-User", "root"), ("x-role", "superuser"), ("X-Jwt-Payload", "eyJzdWIiOiJyb290In0"),
              ("x-groups", "admins"), ("X-USER", "root2")]
    # Authenticated: only gatehouse's values.
    h = seen(expect_ok(get(g, "/echo", mint(rsa, sub="alice"), headers=forged)))
    assert hdr(h, "x-user") == ["alice"], h
    assert hdr(h, "x-role") == [] and hdr(h, "x-groups") == [], h
    assert len(hdr(h, "x-jwt-payload")) == 1 and hdr(h, "x-jwt-payload")[0] != "eyJzdWIiOiJyb290In0", h
    # Exempt path: no token needed, forged headers still removed.
    h = seen(expect_ok(get(g, "/health", headers=forged)))
    for name in ("x-user", "x-role", "x-jwt-payload", "x-groups"):
        assert hdr(h, name) == [], f"{name} reached the upstream on an exempt path: {h}"
    # Optional route without a token: removed too.
    h = seen(expect_ok(get(g, "/opt", headers=forged)))
    for name in ("x-user", "x-role", "x-jwt-payload", "x-groups"):
        assert hdr(h, name) == [], f"{name} reached the upstream on an optional route: {h}"
    # Optional route with a token: gatehouse's values.
    h = seen(expect_ok(get(g, "/opt", mint(rsa, sub="carol"), headers=forged)))
    assert hdr(h, "x-user") == ["carol"], h
    # A refused request never reaches the upstream at all.
    n = len(up.complete_requests())
    expect_missing(get(g, "/echo", headers=forged))
    expect_invalid(get(g, "/opt", "junk.junk.junk", headers=forged))
    assert len(up.complete_requests()) == n


def two_providers(**extra_b):
    a = rsa_key()
    b = ec_key("P-256", kid="ec-b")
    pa = provider(keys=[a], issuer="https://a.example.com", claims_to_headers={"sub": "x-user", "iss": "x-iss"})
    pb = provider(keys=[b], issuer="https://b.example.com", claims_to_headers={"sub": "x-user", "iss": "x-iss"},
                  **extra_b)
    return a, b, pa, pb


def test_authn_any(gatehouse, upstream):
    a, b, pa, pb = two_providers()
    g = start(gatehouse, upstream(), {"a": pa, "b": pb}, routes=[route("any", "/", {"any": ["a", "b"]})])
    h = seen(expect_ok(get(g, "/x", mint(a, iss="https://a.example.com", sub="from-a"))))
    assert hdr(h, "x-user") == ["from-a"] and hdr(h, "x-iss") == ["https://a.example.com"], h
    h = seen(expect_ok(get(g, "/x", mint(b, iss="https://b.example.com", sub="from-b"))))
    assert hdr(h, "x-user") == ["from-b"] and hdr(h, "x-iss") == ["https://b.example.com"], h
    expect_invalid(get(g, "/x", mint(a, iss="https://c.example.com")), "unknown issuer", "wrong issuer")
    # a's key under b's issuer: b's keys decide, so refused.
    expect_invalid(get(g, "/x", mint(a, iss="https://b.example.com")))
    expect_missing(get(g, "/x"))


def test_authn_all(gatehouse, upstream):
    a, b, pa, pb = two_providers(**{"from": [{"header": "x-service-token"}]})
    pb["claims_to_headers"] = {"sub": "x-service"}
    g = start(gatehouse, upstream(), {"a": pa, "b": pb}, routes=[route("all", "/", {"all": ["a", "b"]})])
    ta = mint(a, iss="https://a.example.com", sub="user-1")
    tb = mint(b, iss="https://b.example.com", sub="svc-1")
    h = seen(expect_ok(get(g, "/x", ta, headers=[("X-Service-Token", tb)])))
    assert hdr(h, "x-user") == ["user-1"] and hdr(h, "x-service") == ["svc-1"], h
    expect_missing(get(g, "/x", ta))
    expect_missing(get(g, "/x", headers=[("X-Service-Token", tb)]))
    expect_invalid(get(g, "/x", ta, headers=[("X-Service-Token", ta)]))
    expect_invalid(get(g, "/x", tb, headers=[("X-Service-Token", tb)]))


def test_authn_optional(gatehouse, upstream):
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], claims_to_headers={"sub": "x-user"})},
              routes=[route("opt", "/", {"optional": ["corp"]})])
    h = seen(expect_ok(get(g, "/x")))
    assert hdr(h, "x-user") == [], h
    h = seen(expect_ok(get(g, "/x", mint(rsa, sub="dave"))))
    assert hdr(h, "x-user") == ["dave"], h
    expect_invalid(get(g, "/x", "junk.junk.junk"))
    expect_invalid(get(g, "/x", mint(rsa_key(kid="rsa-1", slot="attacker-rsa"))), "bad signature")
    expect_invalid(get(g, "/x", mint(rsa, aud="nope")), "wrong audience")
    # Basic auth on an optional route: no bearer token, so it passes.
    expect_ok(get(g, "/x", headers=[("Authorization", "Basic YTpi")]))


def test_exempt_paths_and_routes_without_authn(gatehouse, upstream):
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa])}, routes=[
        route("open", "/open", None),
        route("api", "/", {"any": ["corp"], "exempt": [{"prefix": "/health"}, {"exact": "/ping"},
                                                       {"regex": "^/public/.*\\.css$"}]}),
    ])
    for path in ("/health", "/healthz", "/health/live", "/ping", "/public/site.css", "/public/a/b.css",
                 "/open", "/open/x"):
        expect_ok(get(g, path))
    for path in ("/ping/x", "/pingx", "/public/site.js", "/x/health", "/", "/public/site.css.js"):
        expect_missing(get(g, path))
    expect_ok(get(g, "/ping/x", mint(rsa)))
    # An exempt path with a bad token: exempt means not checked.
    expect_ok(get(g, "/health", "junk.junk.junk"))


def test_principal_in_access_log(gatehouse, upstream, tmp_path):
    rsa = rsa_key()
    log = tmp_path / "access.log"
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa])}, access_log=log)
    tok = mint(rsa, sub="erin@example.com")
    expect_ok(get(g, "/echo?n=1", tok))
    expect_ok(get(g, "/echo?n=2", tok))  # cached verification: same identity
    expect_missing(get(g, "/echo?n=3"))
    recs = wait_for(lambda: (lambda rs: rs if len(rs) >= 3 else None)(read_json_lines(log)), 10, "3 log lines")
    by = {r.get("query"): r for r in recs}
    assert by["n=1"].get("principal") == "erin@example.com", by["n=1"]
    assert by["n=2"].get("principal") == "erin@example.com", by["n=2"]
    assert by["n=3"].get("principal") in (None, "", "-"), by["n=3"]
    assert tok.split(".")[2] not in log.read_text()


def test_same_issuer_disjoint_audiences(gatehouse, upstream):
    """Two providers may share an issuer when their audiences do not overlap
    (only overlapping ones are a config error); the token then belongs to
    the one whose audience it names, whatever the config order."""
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {
        "orders": provider(keys=[rsa], audiences=["orders"], claims_to_headers={"aud": "x-aud"}),
        "billing": provider(keys=[rsa], audiences=["billing"], claims_to_headers={"aud": "x-aud"}),
    }, routes=[route("any", "/", {"any": ["orders", "billing"]})])
    h = seen(expect_ok(get(g, "/x", mint(rsa, aud="orders"))))
    assert hdr(h, "x-aud") == ["orders"], h
    r = get(g, "/x", mint(rsa, aud="billing"))
    assert r.status == 200, (f"token for the second provider with the same issuer: {r.status} "
                             f"{r.header('www-authenticate')}")
    expect_invalid(get(g, "/x", mint(rsa, aud="payments")), "audience")


def test_cached_token_stays_per_provider(gatehouse, upstream):
    """The verified-token cache answers for the provider that verified the
    token only: accepted (and cached) by one provider, a token is still
    refused by another that shares its keys (audience, required claims,
    issuer), and where two accept it each adds its own headers, whatever
    order the routes saw it in. Prefixes and extensions of a cached token
    are other tokens."""
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {
        "pa": provider(keys=[rsa], audiences=["a"], claims_to_headers={"sub": "x-a"}),
        "pb": provider(keys=[rsa], audiences=["b"], claims_to_headers={"sub": "x-b"},
                       required_claims=[{"claim": "role", "exact": "admin"}]),
        "pc": provider(keys=[rsa], issuer="https://other.example", audiences=["a"]),
    }, routes=[route("ra", "/pa", {"any": ["pa"]}), route("rb", "/pb", {"any": ["pb"]}),
               route("rc", "/pc", {"any": ["pc"]}), route("rall", "/both", {"all": ["pa", "pb"]})])
    ta, tab, tabr = mint(rsa, aud="a"), mint(rsa, aud=["a", "b"]), mint(rsa, aud=["a", "b"], role="admin")

    def xs(path, tok):
        h = seen(expect_ok(get(g, path, tok)))
        return hdr(h, "x-a"), hdr(h, "x-b")

    for _ in range(3):
        assert xs("/pa", ta) == (["alice"], [])
        expect_invalid(get(g, "/pb", ta), "audience")
        expect_invalid(get(g, "/pc", ta))
        assert xs("/pa", tab) == (["alice"], [])
        assert get(g, "/pb", tab).status == 403
        assert get(g, "/both", tab).status == 403
        assert xs("/pb", tabr) == ([], ["alice"])
        assert xs("/pa", tabr) == (["alice"], [])
        assert xs("/both", tabr) == (["alice"], ["alice"])
    for v in (ta + "A", ta[:-1], "A" + ta, ta + "AAAA", ta[:-2] + ta[-1] + ta[-2]):
        assert get(g, "/pa", v).status == 401, v


def test_custom_realm(gatehouse, upstream):
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa], realm="orders-api")})
    expect_missing(get(g, "/echo"), realm="orders-api")
    r = get(g, "/echo", "junk.junk.junk")
    expect_invalid(r)
    assert 'realm="orders-api"' in r.header("www-authenticate"), r.headers


def test_small_or_disabled_cache(gatehouse, upstream):
    """cache_entries 0 (no cache) and 1 (constant eviction): every token is
    still judged correctly."""
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {
        "none": provider(keys=[rsa], audiences=["none"], cache_entries=0, claims_to_headers={"sub": "x-user"}),
        "one": provider(keys=[rsa], audiences=["one"], cache_entries=1, claims_to_headers={"sub": "x-user"}),
    }, routes=[route("none", "/none", "none"), route("one", "/one", "one")])
    for name in ("none", "one"):
        toks = [mint(rsa, aud=name, sub=f"u{i}") for i in range(5)]
        for _ in range(3):
            for i, t in enumerate(toks):
                h = seen(expect_ok(get(g, f"/{name}", t)))
                assert hdr(h, "x-user") == [f"u{i}"], h
        bad = toks[0][:-6] + ("AAAAAA" if not toks[0].endswith("AAAAAA") else "BBBBBB")
        expect_invalid(get(g, f"/{name}", bad))


def test_query_token_never_logged(gatehouse, upstream, tmp_path):
    """The issue: the reason, never the token, goes to the access log. A token
    read from the query must not land in the log's query field."""
    rsa = rsa_key()
    log = tmp_path / "access.log"
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa], **{"from": [{"query": "access_token"}]})},
              access_log=log)
    tok = mint(rsa, sub="frank")
    expect_ok(get(g, f"/echo?n=1&access_token={tok}"))
    expect_invalid(get(g, f"/echo?n=2&access_token={tok[:-10]}"))
    wait_for(lambda: len(read_json_lines(log)) >= 2, 10, "2 log lines")
    text = log.read_text()
    assert tok.split(".")[2][:-10] not in text, f"the query token reached the access log: {text[:600]}"


def test_forward_token_false_for_query_and_cookie(gatehouse, upstream):
    """forward_token: false keeps the token from the upstream wherever it was
    found: header, query parameter or cookie."""
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], forward_token=False, **{"from": FROM_ALL})})
    tok = mint(rsa)
    sig = tok.split(".")[2]
    problems = []
    for label, kw in (("query", dict(target=f"/echo?a=1&access_token={tok}")),
                      ("cookie", dict(target="/echo", headers=[("Cookie", f"theme=dark; session={tok}")]))):
        r = expect_ok(get(g, kw["target"], headers=kw.get("headers", ())))
        e = echo_of(r)
        if sig in e["target"] or any(sig in v for _, v in e["headers"]):
            problems.append(f"{label}: upstream saw the token ({e['target'][:60]}..., "
                            f"cookie={hdr(e['headers'], 'cookie')[:1]})")
    assert not problems, "; ".join(problems)


def test_identity_does_not_leak_across_keepalive_requests(gatehouse, upstream):
    """Several requests on one connection: each gets only its own token's
    identity headers, never the previous request's."""
    from harness import RawConn

    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], claims_to_headers={"sub": "x-user"},
                                               payload_header="x-jwt-payload")},
              routes=[route("opt", "/", {"optional": ["corp"]})])
    with RawConn(g.port, timeout=5) as c:
        plan = [("alice", mint(rsa, sub="alice")), (None, None), ("bob", mint(rsa, sub="bob")), (None, None),
                ("alice", mint(rsa, sub="alice"))]
        for who, tok in plan:
            hs = [("Authorization", f"Bearer {tok}")] if tok else []
            c.request("GET", "/echo", hs)
            r = c.read_response()
            h = seen(expect_ok(r))
            assert hdr(h, "x-user") == ([who] if who else []), (who, h)
            assert len(hdr(h, "x-jwt-payload")) == (1 if who else 0), (who, h)
            if not who:
                assert hdr(h, "authorization") == [], h


def test_same_issuer_refusal_comes_from_the_matching_provider(gatehouse, upstream):
    """Same issuer, disjoint audiences, the first provider requires a scope:
    a token for the first provider's audience that lacks the scope is that
    provider's 403 insufficient_scope, not the second provider's "wrong
    audience" 401 (the token is plainly not for the second one)."""
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {
        "orders": provider(keys=[rsa], audiences=["orders"],
                           required_claims=[{"claim": "scope", "contains": ["orders.read"]}]),
        "billing": provider(keys=[rsa], audiences=["billing"]),
    }, routes=[route("any", "/", {"any": ["orders", "billing"]})])
    expect_ok(get(g, "/x", mint(rsa, aud="orders", scope="orders.read")))
    expect_ok(get(g, "/x", mint(rsa, aud="billing")))
    from jwt_util import expect_forbidden
    expect_forbidden(get(g, "/x", mint(rsa, aud="orders", scope="profile")), scope="orders.read")


def test_repeated_cookie_or_query_name_refused(gatehouse, upstream):
    """A cookie name or query parameter the provider reads, given twice (even
    with the same token, even once without a value), is refused and never
    reaches the upstream: the upstream might read the copy gatehouse did not
    check."""
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], **{"from": [{"query": "access_token"},
                                                                        {"cookie": "session"}]})})
    a = mint(rsa, sub="alice")
    cases = [
        dict(target=f"/echo?access_token={a}&access_token={a}"),
        dict(target=f"/echo?access_token&access_token={a}"),
        dict(target=f"/echo?access_token=&access_token={a}"),
        dict(target=f"/echo?access_token={a}&access%5Ftoken={a}"),
        dict(target=f"/echo?access_token={a}&access%5ftoken=x"),
        dict(headers=[("Cookie", f"session={a}; session={a}")]),
        dict(headers=[("Cookie", f"session={a}"), ("Cookie", f"session={a}")]),
        dict(headers=[("Cookie", f"session=; session={a}")]),
        dict(headers=[("Cookie", f"session; session={a}")]),
        dict(headers=[("Cookie", f"session={a}; session =x")]),
        # nginx reads $arg_NAME and $cookie_NAME ignoring case, first match:
        # another case is the same name, or an unchecked copy would reach it.
        dict(target=f"/echo?ACCESS_TOKEN=forged&access_token={a}"),
        dict(target=f"/echo?access_token={a}&Access_Token=forged"),
        dict(target=f"/echo?ACCESS%5Ftoken=forged&access_token={a}"),
        dict(headers=[("Cookie", f"Session=forged; session={a}")]),
        dict(headers=[("Cookie", f"session={a}"), ("Cookie", "SESSION=forged")]),
        # PHP reads '.', ' ', '[' in a name as '_', "a[]" as a, and
        # percent-decodes cookie names: each is the same name to it.
        dict(target=f"/echo?access_token={a}&access.token=forged"),
        dict(target=f"/echo?access_token={a}&access_token[]=forged"),
        dict(target=f"/echo?access_token={a}&access+token=forged"),
        dict(target=f"/echo?access_token={a}&access[token=forged"),
        dict(target=f"/echo?access_token={a}&access_token%00x=forged"),
        dict(headers=[("Cookie", f"%73ession=forged; session={a}")]),
    ]
    n = len(up.complete_requests())
    for c in cases:
        r = get(g, c.get("target", "/echo"), headers=c.get("headers", ()))
        try:
            expect_invalid(r, "multiple tokens")
        except AssertionError as e:
            raise AssertionError(f"{c}: {e}")
    assert len(up.complete_requests()) == n, "a refused request reached the upstream"
    # Once is fine, next to other parameters and cookies, in any case.
    expect_ok(get(g, f"/echo?x=1&access_token={a}&y=2"))
    expect_ok(get(g, "/echo", headers=[("Cookie", f"theme=dark; session={a}")]))
    expect_ok(get(g, f"/echo?ACCESS_TOKEN={a}"))
    expect_ok(get(g, "/echo", headers=[("Cookie", f"Session={a}")]))
    # A lone copy in another case is the token, and checked like it.
    expect_invalid(get(g, "/echo?Access_Token=abc.def.ghi"))


def test_query_names_compare_percent_decoded(gatehouse, upstream):
    """access%5Ftoken is access_token to every application: gatehouse finds
    the token there, and forward_token: false removes it in that spelling
    too (the upstream never sees it)."""
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], forward_token=False,
                                               **{"from": [{"query": "access_token"}]})},
              routes=[route("opt", "/opt", {"optional": ["corp"]}), route("all", "/", "corp")])
    a = mint(rsa, sub="alice")
    for name in ("access%5Ftoken", "access%5ftoken", "%61ccess_token", "%61%63%63%65%73%73%5f%74%6f%6b%65%6e"):
        expect_ok(get(g, f"/echo?{name}={a}&keep=1"))
        last = up.complete_requests()[-1]
        assert a.encode() not in last.raw_head, f"{name}: the token reached the upstream: {last.raw_head!r}"
        assert b"keep=1" in last.raw_head, last.raw_head
        # On an optional route an invalid token in the encoded name is
        # still a token: refused, not passed through as anonymous.
        expect_invalid(get(g, f"/opt?{name}=junk.junk.junk"))
    # A '%' without two hex digits is itself: no match, no crash.
    expect_missing(get(g, "/echo?access%5_token=x"))
    expect_missing(get(g, "/echo?access_token%=x"))


def _upstream_head(up, before):
    """The one request the upstream received since `before` requests, as raw
    head bytes."""
    reqs = up.complete_requests()
    assert len(reqs) == before + 1, f"upstream got {len(reqs) - before} requests, expected 1"
    return reqs[-1].raw_head


def test_forward_token_false_strips_every_location(gatehouse, upstream):
    """The same valid token in two (or three) of the provider's locations is
    one token; with forward_token: false none of its copies reaches the
    upstream, and everything else (other cookies, other parameters) does,
    with a single Cookie field."""
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], forward_token=False, **{"from": [
        {"header": "authorization", "prefix": "Bearer "}, {"cookie": "session"}, {"query": "access_token"}]})})
    tok = mint(rsa)
    cases = {
        "header+query": dict(target=f"/echo?a=1&access_token={tok}&b=2", token=tok),
        "header+cookie": dict(token=tok, headers=[("Cookie", f"theme=dark; session={tok}; lang=en")]),
        "cookie+query": dict(target=f"/echo?access_token={tok}&b=2", headers=[("Cookie", f" session ={tok}")]),
        "header+encoded query": dict(target=f"/echo?%61ccess_token={tok}&b=2", token=tok),
        "all three": dict(target=f"/echo?b=2&access%5Ftoken={tok}", token=tok,
                          headers=[("Cookie", "theme=dark"), ("Cookie", f"session={tok}")]),
    }
    problems = []
    for label, c in cases.items():
        n = len(up.complete_requests())
        expect_ok(get(g, c.get("target", "/echo"), c.get("token"), headers=c.get("headers", ())))
        head = _upstream_head(up, n)
        if tok.encode() in head or tok.split(".")[2].encode() in head:
            problems.append(f"{label}: upstream received the token: {head!r}")
        lines = head.lower().split(b"\r\n")
        if "b=2" in c.get("target", "") and b"b=2" not in lines[0]:
            problems.append(f"{label}: other parameter lost: {lines[0]!r}")
        cookies = [ln for ln in lines if ln.startswith(b"cookie:")]
        if len(cookies) > 1:
            problems.append(f"{label}: {len(cookies)} Cookie fields: {cookies!r}")
        if any("theme=dark" in v for _, v in c.get("headers", ())) and cookies != [b"cookie: theme=dark"] and \
                cookies != [b"cookie: theme=dark; lang=en"]:
            problems.append(f"{label}: other cookies not kept as one field: {cookies!r}")
    assert not problems, "; ".join(problems)


def test_forward_token_false_with_providers_sharing_a_location(gatehouse, upstream):
    """any: the provider that took the token has forward_token: false, so
    the token goes from its locations and from the other providers'
    locations that held the same token; a provider that forwards keeps it.
    all: two providers reading one header, the first not forwarding: the
    second still finds the token, and the upstream does not get it."""
    a, b, pa, pb = two_providers(**{"from": [{"header": "authorization", "prefix": "Bearer "},
                                             {"cookie": "session"}]})
    pa.update(forward_token=False, **{"from": [{"header": "authorization", "prefix": "Bearer "},
                                                {"query": "access_token"}]})
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {
        "a": pa, "b": pb,
        "drop": provider(keys=[rsa], audiences=["drop"], forward_token=False),
        "keep": provider(keys=[rsa], audiences=["keep"]),
    }, routes=[route("any", "/any", {"any": ["a", "b"]}), route("all", "/all", {"all": ["drop", "keep"]})])
    ta = mint(a, iss="https://a.example.com")
    n = len(up.complete_requests())
    expect_ok(get(g, "/any", ta, headers=[("Cookie", f"session={ta}; theme=dark")]))
    head = _upstream_head(up, n)
    assert ta.encode() not in head, f"b's cookie still carried a's token: {head!r}"
    assert b"theme=dark" in head, head
    tb = mint(b, iss="https://b.example.com")
    n = len(up.complete_requests())
    expect_ok(get(g, "/any?x=1", tb, headers=[("Cookie", f"session={tb}")]))
    head = _upstream_head(up, n)
    assert head.count(tb.encode()) == 2, f"b forwards its token in both places: {head!r}"
    t = mint(rsa, aud=["drop", "keep"])
    n = len(up.complete_requests())
    expect_ok(get(g, "/all", t))
    head = _upstream_head(up, n)
    assert t.encode() not in head, head


def test_cached_token_short_path_decides_like_the_general_one(gatehouse, upstream):
    """A route with one provider reading "Authorization: Bearer" takes a
    short path for a token already in the cache. Every request it does not
    take (another spelling, another token sharing the cached one's hash
    inputs) must be decided as before."""
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa])})
    tok = mint(rsa, sub="alice")
    for _ in range(3):  # the first verifies and caches, the rest hit
        expect_ok(get(g, "/echo", tok))
    for spelling in (f"Bearer  {tok}", f"Bearer\t{tok}", f"bearer {tok}", f"BEARER {tok}"):
        expect_ok(get(g, "/echo", headers=[("Authorization", spelling)]))
    # Same length, same last 16 bytes (the cache's hash input), one payload
    # byte changed: the hash matches the cached entry, the token does not.
    head, payload, sig = tok.split(".")
    i = len(payload) // 2
    flipped = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1:]
    forged = ".".join((head, flipped, sig))
    assert len(forged) == len(tok) and forged[-16:] == tok[-16:]
    for _ in range(2):
        expect_invalid(get(g, "/echo", forged))
    # A prefix of the cached token, and the token with a byte appended.
    assert get(g, "/echo", tok[:-1]).status == 401
    assert get(g, "/echo", tok + "A").status == 401
    expect_ok(get(g, "/echo", tok))
