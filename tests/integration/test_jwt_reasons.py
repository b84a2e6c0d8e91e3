"""Every refusal reason docs/authentication.md lists is reachable: one
request per reason against one gatehouse, each answered with the status
and error_description the docs give, and counted under its own
gatehouse_auth_decisions_total series. The list is read from the docs, so
a reason documented but never produced (or produced but not documented)
fails here."""

import re
import time
from pathlib import Path

from harness import free_port
from jwt_util import (ISS, b64u, b64u_json, ec_key, get, mint, provider, raw_token, route, rsa_key, rs256_sig,
                      start, wait_for)
from ops_util import metrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "authentication.md"

# Needs fault injection (an allocation failing); the reason table row is
# covered by the unit tests.
NOT_OVER_A_SOCKET = {"out of memory"}


def documented_reasons():
    """{reason: status} from the table under "Reasons" in the docs."""
    text = DOCS.read_text()
    m = re.search(r"^\| reason \| status \| when \|\n\| --- .*?\n((?:\|.*\n)+)", text, re.M)
    assert m, "docs/authentication.md has no reason table"
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) \|", m.group(1), re.M)
    return {r: int(st) for r, st in rows}


def test_every_documented_reason(gatehouse, upstream):
    rsa, other = rsa_key(), rsa_key(kid="rsa-1", slot="reasons-other")
    ec = ec_key("P-256", kid="ec-1")
    now = int(time.time())
    providers = {
        "corp": provider(keys=[rsa, ec], algorithms=["RS256", "PS256", "ES256"],
                         **{"from": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "at"}]}),
        "typed": provider(keys=[rsa], issuer="https://typed.example", typ="at+jwt"),
        "aged": provider(keys=[rsa], issuer="https://aged.example", max_token_age="60s"),
        "scoped": provider(keys=[rsa], issuer="https://scoped.example",
                           required_claims=[{"claim": "scope", "contains": ["orders.read"]}]),
        "down": provider(jwks={"uri": f"http://127.0.0.1:{free_port()}/jwks.json", "timeout": "1s"},
                         issuer="https://down.example"),
    }
    routes = [route("typed", "/typed", "typed"), route("aged", "/aged", "aged"),
              route("scoped", "/scoped", "scoped"), route("down", "/down", "down"),
              route("all", "/all", {"all": ["corp"]}), route("corp", "/", {"any": ["corp"]})]
    g = start(gatehouse, upstream(), providers, routes=routes, admin=True)
    wait_for(lambda: get(g, "/echo", mint(rsa)).status == 200, 10, "corp's keys")
    hdr = {"alg": "RS256", "kid": rsa.kid}
    good = {"iss": ISS, "aud": "orders", "sub": "a", "iat": now, "exp": now + 300}
    sign = lambda si: rs256_sig(rsa, si)  # noqa: E731

    def tok(h=None, p=None, **over):
        body = dict(good, **over)
        return raw_token(h or hdr, p if p is not None else {k: v for k, v in body.items() if v is not None}, sign)

    big = tok(pad="x" * (17 * 1024))
    cases = {
        "missing token": dict(),
        # Two Authorization fields are a 400 before any filter (docs/http.md);
        # two different tokens in two of the provider's locations are this.
        "multiple tokens": dict(headers=[("Authorization", f"Bearer {mint(rsa)}"),
                                         ("Cookie", f"at={mint(rsa, sub='b')}")]),
        "unknown issuer": dict(token=tok(iss="https://nobody.example")),
        "keys unavailable": dict(target="/down", token=mint(rsa, iss="https://down.example")),
        "algorithm not allowed": dict(token=mint(ec_key("P-384", kid="ec-384"), iss=ISS, aud="orders")),
        "token too large": dict(token=big),
        "malformed token": dict(token="abc.def"),
        "malformed header": dict(token=f"{b64u('not json')}.{b64u_json(good)}.{b64u(b'sig')}"),
        "malformed kid": dict(token=tok({"alg": "RS256", "kid": 7})),
        "malformed payload": dict(token=f"{b64u_json(hdr)}.{b64u('[1,2')}.{b64u(b'sig')}"),
        "malformed signature": dict(token=f"{b64u_json(hdr)}.{b64u_json(good)}.A"),
        "alg none refused": dict(token=f"{b64u_json({'alg': 'nOnE'})}.{b64u_json(good)}.{b64u(b'x')}"),
        "unsupported algorithm": dict(token=tok({"alg": "RS257"})),
        "unsupported crit": dict(token=tok({"alg": "RS256", "kid": rsa.kid, "crit": ["exp"]})),
        "unknown key": dict(token=tok({"alg": "RS256", "kid": "nobody"})),
        "no key for algorithm": dict(token=tok({"alg": "PS256", "kid": rsa.kid})),
        "bad signature": dict(token=raw_token(hdr, good, lambda si: rs256_sig(other, si))),
        "wrong typ": dict(target="/typed", token=tok(iss="https://typed.example")),
        "wrong issuer": dict(target="/all", token=tok(iss="https://nobody.example")),
        "wrong audience": dict(token=tok(aud="billing")),
        "missing exp": dict(token=tok(exp=None)),
        "expired": dict(token=tok(exp=now - 3600)),
        "not yet valid": dict(token=tok(nbf=now + 3600)),
        "issued in the future": dict(token=tok(iat=now + 3600)),
        "malformed claim": dict(token=tok(exp=1e300)),
        "missing iat": dict(target="/aged", token=tok(iss="https://aged.example", iat=None)),
        "token too old": dict(target="/aged", token=tok(iss="https://aged.example", iat=now - 3600)),
        "insufficient claims": dict(target="/scoped", token=tok(iss="https://scoped.example", scope="x")),
    }
    listed = documented_reasons()
    assert set(listed) - NOT_OVER_A_SOCKET == set(cases), (
        f"documented but not produced here: {set(listed) - NOT_OVER_A_SOCKET - set(cases)}; "
        f"produced but not documented: {set(cases) - set(listed)}")
    for reason, c in cases.items():
        r = get(g, c.get("target", "/echo"), c.get("token"), headers=c.get("headers", ()))
        want = listed[reason]
        assert r.status == want, f"{reason}: {r.status} {r.body[:200]!r}"
        detail = r.json().get("detail", "")
        assert detail == reason or detail.startswith(reason + ":"), f"{reason}: detail {detail!r}"
    m = metrics(g.admin)
    for reason in cases:
        n = m.sum("gatehouse_auth_decisions_total", decision="deny", reason=reason)
        assert n == 1, f"{reason}: counted {n} times, not once; series {m.series('gatehouse_auth_decisions_total')}"


def test_cached_token_refused_past_max_token_age(gatehouse, upstream):
    """The verified-token cache keeps a token no longer than max_token_age
    allows: a token accepted (and cached) shortly before it gets too old is
    refused once it is, although its exp is an hour away."""
    rsa = rsa_key()
    g = start(gatehouse, upstream(), {"corp": provider(keys=[rsa], max_token_age="60s", clock_skew="1s")})
    now = int(time.time())
    tok = mint(rsa, now=now - 58, ttl=3600 + 58)
    r = get(g, "/echo", tok)
    assert r.status == 200, r
    wait_for(lambda: get(g, "/echo", tok).status == 401, 15, "the cached token to age out")
    r = get(g, "/echo", tok)
    assert r.json().get("detail", "").startswith("token too old"), r.body
