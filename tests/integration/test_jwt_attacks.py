"""RFC 8725 (JWT Best Current Practices) end to end: alg none in every
casing, HMAC signed with the RSA public key, stripped signatures, another
key's signature, kid tricks, keys embedded in or pointed at by the header
(jwk, jku, x5u, x5c), ECDSA r=s=0, malformed base64 and JSON, oversized
tokens, crit, the time claims with and without skew, issuer and audience,
typ, and required claims (403 insufficient_scope)."""

import base64
import datetime
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec as cec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from jwt_util import (AUD, ISS, JwksServer, b64u, b64u_json, claims, ec_key, expect_forbidden,
                      expect_invalid, expect_ok, get, hs_sign, metric, mint, oct_key, provider, raw_token,
                      rs256_sig, rsa_key, start)
from ops_util import read_json_lines, wait_for


def good_keys():
    return [rsa_key(), ec_key("P-256", kid="ec-1")]


def attacker_rsa():
    return rsa_key(kid="rsa-1", slot="attacker-rsa")


def basic(gatehouse, upstream, **kw):
    up = upstream()
    return start(gatehouse, up, {"corp": provider(keys=kw.pop("keys", None) or good_keys(), **kw)})


# --------------------------------------------------------------------------
# alg none


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_every_casing(gatehouse, upstream, alg):
    g = basic(gatehouse, upstream)
    payload = claims()
    unsigned = raw_token({"alg": alg, "typ": "JWT"}, payload)
    assert unsigned.endswith(".")
    expect_invalid(get(g, "/echo", unsigned), "alg none refused", "malformed token", "stripped signature")
    # With the kid of a real key, and with some signature bytes: still refused,
    # and now the reason can only be the algorithm.
    expect_invalid(get(g, "/echo", raw_token({"alg": alg, "kid": "rsa-1"}, payload)))
    signed_junk = raw_token({"alg": alg, "kid": "rsa-1"}, payload, b"\x01" * 32)
    expect_invalid(get(g, "/echo", signed_junk), "alg none refused")
    # A none token with a valid RS256 signature glued on is still none.
    real = mint(rsa_key())
    glued = raw_token({"alg": alg, "kid": "rsa-1"}, payload) + real.split(".")[2]
    expect_invalid(get(g, "/echo", glued), "alg none refused")


# --------------------------------------------------------------------------
# HMAC keyed with the RSA public key (key confusion)


def public_forms(key):
    pub = key.public
    spki = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"spki-pem": spki, "spki-pem-no-newline": spki.rstrip(b"\n"), "pkcs1-pem": pkcs1, "der": der,
            "jwk-json": json.dumps(key.jwk()).encode(),
            "n-bytes": key.public.public_numbers().n.to_bytes(256, "big")}


@pytest.mark.parametrize("allow_symmetric", [False, True])
def test_hmac_signed_with_rsa_public_key(gatehouse, upstream, allow_symmetric):
    rsa = rsa_key()
    keys = [rsa, ec_key("P-256", kid="ec-1")]
    if allow_symmetric:
        keys.append(oct_key(kid="hmac-1"))
    g = basic(gatehouse, upstream, keys=keys, allow_symmetric=allow_symmetric)
    expect_ok(get(g, "/echo", mint(rsa)))
    for name, secret in public_forms(rsa).items():
        for alg in ("HS256", "HS384", "HS512"):
            for kid in ("rsa-1", None):
                hdr = {"alg": alg, "typ": "JWT"}
                if kid:
                    hdr["kid"] = kid
                tok = raw_token(hdr, claims(), hs_sign(secret, alg))
                r = get(g, "/echo", tok)
                assert r.status == 401, f"HMAC with RSA public key ({name}, {alg}, kid={kid}): {r.status}"
                expect_invalid(r)


# --------------------------------------------------------------------------
# Stripped signature, another key's signature


def test_stripped_signature(gatehouse, upstream):
    g = basic(gatehouse, upstream)
    for k in good_keys():
        tok = mint(k)
        h, p, _ = tok.split(".")
        for bad in (f"{h}.{p}.", f"{h}.{p}", f"{h}.{p}.."):
            expect_invalid(get(g, "/echo", bad))


def test_signature_of_another_key(gatehouse, upstream):
    g = basic(gatehouse, upstream)
    # Attacker keys under the victim's kids.
    expect_invalid(get(g, "/echo", mint(attacker_rsa())), "bad signature")
    evil_ec = ec_key("P-256", kid="ec-1", slot="attacker-ec")
    expect_invalid(get(g, "/echo", mint(evil_ec)), "bad signature")
    # A real signature moved onto another payload.
    a = mint(rsa_key(), sub="alice")
    b = mint(rsa_key(), sub="mallory", scope="admin")
    ha, pa, sa = a.split(".")
    hb, pb, sb = b.split(".")
    expect_invalid(get(g, "/echo", f"{hb}.{pb}.{sa}"), "bad signature")
    expect_invalid(get(g, "/echo", f"{ha}.{pb}.{sa}"), "bad signature")
    # The ES256 key's signature under an RS256 header with the RSA kid.
    e = mint(ec_key("P-256", kid="ec-1"))
    expect_invalid(get(g, "/echo", f"{ha}.{pa}.{e.split('.')[2]}"))
    expect_ok(get(g, "/echo", a))


# --------------------------------------------------------------------------
# kid


KID_TRICKS = ["../../etc/passwd", "/dev/null", "../../../../../../dev/null", "' OR '1'='1",
              "rsa-1' --", "rsa-1; DROP TABLE keys", "RSA-1", "rsa-1 ", " rsa-1", "rsa-1\u0000",
              "rsa-1\u0000evil", "*", "rsa-%", "file:///etc/passwd", "http://127.0.0.1:1/k", ""]


def test_kid_tricks(gatehouse, upstream):
    g = basic(gatehouse, upstream)
    rsa = rsa_key()
    evil = attacker_rsa()
    for kid in KID_TRICKS:
        for signer in (rsa, evil):
            tok = mint(signer, kid=kid) if kid else raw_token({"alg": "RS256", "kid": ""}, claims(),
                                                               lambda si: rs256_sig(signer, si))
            r = get(g, "/echo", tok)
            assert r.status == 401, f"kid {kid!r} signed by {'real' if signer is rsa else 'attacker'} key: " \
                                    f"{r.status} {r.body[:200]!r}"
            # (a NUL inside a JSON string makes the whole header malformed)
            expect_invalid(r, "unknown key", "malformed kid", "malformed header", "bad signature")
    # A kid that is not a string, or far too long.
    for kid in (1, None, ["rsa-1"], {"k": "rsa-1"}, "k" * 5000):
        tok = raw_token({"alg": "RS256", "kid": kid}, claims(), lambda si: rs256_sig(rsa, si))
        r = get(g, "/echo", tok)
        if kid is None:
            # "kid": null is not a string either.
            assert r.status == 401, (kid, r.status)
        else:
            expect_invalid(r)


def test_missing_kid_with_several_keys(gatehouse, upstream):
    """Without a kid the keys of the right type are tried: a token from one
    of them passes, an attacker's never does."""
    keys = [rsa_key(), rsa_key(kid="rsa-2"), ec_key("P-256", kid="ec-1")]
    g = basic(gatehouse, upstream, keys=keys)
    for k in keys:
        expect_ok(get(g, "/echo", mint(k, kid=False)))
    expect_invalid(get(g, "/echo", mint(attacker_rsa(), kid=False)), "bad signature")
    expect_invalid(get(g, "/echo", mint(ec_key("P-256", kid="x", slot="attacker-ec"), kid=False)),
                   "bad signature")


# --------------------------------------------------------------------------
# Keys named by the token


def self_signed_cert(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "login.example.com")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public)
            .serial_number(1234).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key.priv, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def test_embedded_and_referenced_keys_never_trusted(gatehouse, upstream, tmp_path):
    evil_kid = rsa_key(kid="evil-1", slot="attacker-rsa")
    evil_same_kid = attacker_rsa()
    evil_ec = ec_key("P-256", kid="evil-ec", slot="attacker-ec")
    srv = JwksServer(tmp_path, jwks={"keys": [evil_kid.jwk(), evil_ec.jwk()]})
    try:
        g = basic(gatehouse, upstream)
        variants = []
        for k in (evil_kid, evil_same_kid, evil_ec):
            variants += [
                ("jwk", {"jwk": k.jwk()}),
                ("jku", {"jku": srv.uri}),
                ("x5u", {"x5u": srv.uri}),
                ("x5c", {"x5c": [self_signed_cert(k)]}),
                ("jwk+jku+x5c", {"jwk": k.jwk(), "jku": srv.uri, "x5c": [self_signed_cert(k)]}),
            ]
            for label, extra in variants[-5:]:
                for kid in (k.kid, False):
                    tok = mint(k, headers=extra, kid=kid)
                    r = get(g, "/echo", tok)
                    assert r.status == 401, f"{label} with key {k.kid} (kid in header: {kid}): {r.status}"
                    expect_invalid(r)
        # jku / x5u were never fetched.
        assert srv.stats()["jwks"] == 0, srv.stats()
        # The same headers on a token signed by the real key are ignored (RFC
        # 7515: unknown or unused members do not change the verification).
        expect_ok(get(g, "/echo", mint(rsa_key(), headers={"jku": srv.uri, "x5u": srv.uri})))
        assert srv.stats()["jwks"] == 0, srv.stats()
    finally:
        srv.stop()


# --------------------------------------------------------------------------
# ECDSA


def test_ecdsa_zero_and_malformed_signatures(gatehouse, upstream):
    keys = [ec_key("P-256", kid="ec-1"), ec_key("P-384", kid="ec-384"), ec_key("P-521", kid="ec-521")]
    g = basic(gatehouse, upstream, keys=keys + [rsa_key()])
    orders = {
        "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        "ES384": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                     "581A0DB248B0A77AECEC196ACCC52973", 16),
        "ES512": int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA"
                     "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16),
    }
    sizes = {"ES256": 32, "ES384": 48, "ES512": 66}
    for k in keys:
        alg, n = k.alg, sizes[k.alg]
        hdr = {"alg": alg, "kid": k.kid, "typ": "JWT"}
        order = orders[alg]
        for label, sig in [
            ("r=s=0", b"\x00" * (2 * n)),
            ("r=s=n", order.to_bytes(n, "big") * 2),
            ("r=0,s=1", b"\x00" * n + (1).to_bytes(n, "big")),
            ("r=1,s=0", (1).to_bytes(n, "big") + b"\x00" * n),
            ("short", b"\x00" * n),
            ("empty-ish", b"\x00"),
        ]:
            r = get(g, "/echo", raw_token(hdr, claims(), sig))
            assert r.status == 401, f"{alg} {label}: {r.status}"
            expect_invalid(r)
        # A valid signature in DER (ASN.1) form instead of JOSE's r||s.
        payload = claims()
        h64, p64 = b64u_json(hdr), b64u_json(payload)
        hash_alg = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
        der = k.priv.sign(f"{h64}.{p64}".encode(), cec.ECDSA(hash_alg))
        expect_invalid(get(g, "/echo", f"{h64}.{p64}.{b64u(der)}"))
        rr, ss = decode_dss_signature(der)
        expect_ok(get(g, "/echo", f"{h64}.{p64}.{b64u(rr.to_bytes(n, 'big') + ss.to_bytes(n, 'big'))}"))


# --------------------------------------------------------------------------
# Malformed tokens


def test_malformed_base64_and_json(gatehouse, upstream):
    g = basic(gatehouse, upstream)
    rsa = rsa_key()
    sign = lambda si: rs256_sig(rsa, si)  # noqa: E731
    good = mint(rsa)
    h, p, s = good.split(".")
    std_b64 = lambda d: base64.b64encode(json.dumps(d).encode()).decode()  # noqa: E731
    cases = {
        "one segment": "abc",
        "two segments": f"{h}.{p}",
        "four segments": f"{h}.{p}.{s}.{s}",
        "five segments (JWE)": f"{h}.{p}.{s}.{s}.{s}",
        "empty header": f".{p}.{s}",
        "empty payload": f"{h}..{s}",
        "bad base64 chars": f"{h}!!.{p}.{s}",
        "padding in header": f"{h}==.{p}.{s}",
        "bad base64 in signature": f"{h}.{p}.{s[:-2]}*!",
        "impossible base64 length": f"{h}.{p}.{s}A",
        "header not JSON": raw_token(b64u(b"{alg:RS256"), claims(), sign),
        "header is an array": raw_token(b64u(b'["RS256"]'), claims(), sign),
        "header alg not a string": raw_token({"alg": 256, "kid": "rsa-1"}, claims(), sign),
        "header without alg": raw_token({"kid": "rsa-1", "typ": "JWT"}, claims(), sign),
        "payload not JSON": raw_token({"alg": "RS256", "kid": "rsa-1"}, b64u(b"not json"), sign),
        "payload a JSON string": raw_token({"alg": "RS256", "kid": "rsa-1"}, b64u(b'"alice"'), sign),
        "payload a JSON array": raw_token({"alg": "RS256", "kid": "rsa-1"}, b64u(b"[1,2]"), sign),
        "payload truncated JSON": raw_token({"alg": "RS256", "kid": "rsa-1"}, b64u(b'{"sub":"a"'), sign),
        "duplicate claim": raw_token({"alg": "RS256", "kid": "rsa-1"}, b64u(
            ('{"iss":"%s","aud":"%s","sub":"alice","sub":"admin","exp":%d}'
             % (ISS, AUD, int(time.time()) + 300)).encode()), sign),
        "duplicate alg": raw_token(b64u(b'{"alg":"RS256","alg":"none","kid":"rsa-1"}'), claims(), sign),
        "standard base64 header": raw_token(std_b64({"alg": "RS256", "kid": "rsa-1", "x": "??>>"}), claims(),
                                            sign),
        "whitespace inside": f"{h}.{p[:10]} {p[10:]}.{s}",
        "non-ASCII": f"{h}.{p}é.{s}",
    }
    for label, tok in cases.items():
        r = get(g, "/echo", tok)
        assert r.status == 401, f"{label}: {r.status} {r.body[:200]!r}"
        if label != "whitespace inside":
            expect_invalid(r)
    # A token with a huge kid or typ, and JSON nested deeply in the payload.
    deep = "[" * 5000 + "]" * 5000
    tok = raw_token({"alg": "RS256", "kid": "rsa-1"},
                    b64u(('{"iss":"%s","aud":"%s","exp":%d,"x":%s}'
                          % (ISS, AUD, time.time() + 300, deep)).encode()),
                    sign)
    r = get(g, "/echo", tok)
    # jansson refuses JSON nested deeper than 2048 levels: not a payload.
    assert r.status == 401, r.status
    expect_invalid(r)
    expect_ok(get(g, "/echo", good))


def test_oversized_token(gatehouse, upstream):
    g = basic(gatehouse, upstream)
    rsa = rsa_key()
    big = mint(rsa, pad="x" * (17 * 1024))
    assert len(big) > 16 * 1024
    expect_invalid(get(g, "/echo", big), "too large", "malformed token")
    # A lot of junk that is not even a token.
    expect_invalid(get(g, "/echo", "A" * 40000))
    expect_invalid(get(g, "/echo", "A" * 20000 + "." + "B" * 20000 + "." + "C" * 20000))
    # Just under the limit: fine.
    ok = mint(rsa, pad="x" * (11 * 1024))
    assert len(ok) < 16 * 1024
    expect_ok(get(g, "/echo", ok))


def test_crit_header_refused(gatehouse, upstream):
    g = basic(gatehouse, upstream)
    rsa = rsa_key()
    for crit, extra in ((["exp"], {"exp": 1}), (["http://example.com/ext"], {"http://example.com/ext": True}),
                        ([], {}), (["b64"], {"b64": True})):
        tok = mint(rsa, headers={"crit": crit, **extra})
        expect_invalid(get(g, "/echo", tok), "crit")


# --------------------------------------------------------------------------
# Time claims


def test_time_claims_and_skew(gatehouse, upstream):
    """Default skew 60 s: margins of 30 s on either side so no clock race."""
    g = basic(gatehouse, upstream)
    rsa = rsa_key()
    now = int(time.time())
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(now=now - 1000, ttl=880))), "expired")
    expect_ok(get(g, "/echo", mint(rsa, payload=claims(now=now - 330, ttl=300))))  # exp 30 s ago
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(nbf=now + 120))), "not yet valid")
    expect_ok(get(g, "/echo", mint(rsa, payload=claims(nbf=now + 30))))
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(iat=now + 120))), "issued in the future")
    expect_ok(get(g, "/echo", mint(rsa, payload=claims(iat=now + 30))))
    # exp is required by default.
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(exp=None))), "exp")
    # NumericDate must be a number.
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(exp=str(now + 300)))))
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(nbf="yesterday"))))
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(iat=[now]))))
    # Fractional dates are numbers too.
    expect_ok(get(g, "/echo", mint(rsa, payload=claims(exp=now + 300.5))))


def test_small_clock_skew_and_exp_optional(gatehouse, upstream):
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {
        "strict": provider(keys=[rsa], audiences=["strict"], clock_skew="1s"),
        "lax": provider(keys=[rsa], audiences=["lax"], exp_optional=True, clock_skew="300s"),
    }, routes=[{"name": "s", "match": {"path": {"prefix": "/s"}}, "authn": "strict", "to": "app"},
               {"name": "l", "match": {"path": {"prefix": "/l"}}, "authn": "lax", "to": "app"}])
    now = int(time.time())
    # exp 20 s ago, nbf 30 s ahead: well past a 1 s skew.
    expect_invalid(get(g, "/s", mint(rsa, payload=claims(aud="strict", now=now - 100, ttl=80))), "expired")
    expect_invalid(get(g, "/s", mint(rsa, payload=claims(aud="strict", nbf=now + 30))), "not yet valid")
    expect_invalid(get(g, "/s", mint(rsa, payload=claims(aud="strict", iat=now + 30))), "issued in the future")
    expect_invalid(get(g, "/s", mint(rsa, payload=claims(aud="strict", exp=None))), "exp")
    expect_ok(get(g, "/l", mint(rsa, payload=claims(aud="lax", exp=None))))
    expect_ok(get(g, "/l", mint(rsa, payload=claims(aud="lax", now=now - 200, ttl=30))))  # 170 s ago, skew 300
    expect_invalid(get(g, "/l", mint(rsa, payload=claims(aud="lax", now=now - 1000, ttl=30))), "expired")


# --------------------------------------------------------------------------
# Issuer, audience, typ


def test_issuer_and_audience(gatehouse, upstream):
    up = upstream()
    rsa = rsa_key()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], audiences=["orders", "billing"])})
    ok = lambda **kw: expect_ok(get(g, "/echo", mint(rsa, payload=claims(**kw))))  # noqa: E731
    bad = lambda *why, **kw: expect_invalid(get(g, "/echo", mint(rsa, payload=claims(**kw))), *why)  # noqa: E731
    ok()
    ok(aud="billing")
    ok(aud=["other", "orders"])
    ok(aud=["billing"])
    for iss in ("https://evil.example.com", ISS + "/", ISS.upper(), "https://login.example.com.evil.io", ""):
        bad("wrong issuer", "unknown issuer", iss=iss)
    bad("issuer", iss=None)
    r = get(g, "/echo", mint(rsa, payload=claims(iss=123)))
    expect_invalid(r)
    bad("wrong audience", aud="payments")
    bad("wrong audience", aud=["payments", "ORDERS"])
    bad("wrong audience", aud=[])
    bad("wrong audience", aud=None)
    bad("wrong audience", aud="orders billing")


def test_typ_requirement(gatehouse, upstream):
    up = upstream()
    rsa = rsa_key()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa], typ="at+jwt")})
    expect_ok(get(g, "/echo", mint(rsa, headers={"typ": "at+jwt"})))
    expect_ok(get(g, "/echo", mint(rsa, headers={"typ": "application/at+jwt"})))
    expect_invalid(get(g, "/echo", mint(rsa, headers={"typ": "JWT"})), "typ")
    expect_invalid(get(g, "/echo", mint(rsa, headers={"typ": "at+jwt+evil"})), "typ")
    tok = raw_token({"alg": "RS256", "kid": "rsa-1"}, claims(), lambda si: rs256_sig(rsa, si))
    expect_invalid(get(g, "/echo", tok), "typ")


# --------------------------------------------------------------------------
# Required claims


def required_gh(gatehouse, upstream):
    up = upstream()
    rsa = rsa_key()
    p = provider(keys=[rsa], required_claims=[
        {"claim": "scope", "contains": ["orders.read"]},
        {"claim": "tenant", "one_of": ["a", "b"]},
        {"claim": "role", "exact": "admin"},
        {"claim": "realm.level", "exact": "3"},
    ])
    scp = provider(keys=[rsa], audiences=["scp-api"], required_claims=[
        {"claim": "scp", "contains": ["orders.read", "orders.write"]},
    ])
    g = start(gatehouse, up, {"corp": p, "scp": scp},
              routes=[{"name": "scp", "match": {"path": {"prefix": "/scp"}}, "authn": "scp", "to": "app"},
                      {"name": "all", "match": {"path": {"prefix": "/"}}, "authn": "corp", "to": "app"}])
    return g, rsa


def test_required_claims(gatehouse, upstream):
    g, rsa = required_gh(gatehouse, upstream)
    full = dict(scope="profile orders.read email", tenant="a", role="admin", realm={"level": 3})

    def tok(**kw):
        c = dict(full)
        c.update(kw)
        return mint(rsa, payload=claims(**c))

    expect_ok(get(g, "/echo", tok()))
    expect_ok(get(g, "/echo", tok(scope="orders.read", tenant="b")))
    expect_ok(get(g, "/echo", tok(realm={"level": "3"})))
    # scope: a space-separated list; a longer or shorter word is not the scope.
    for scope in ("profile email", "orders.readwrite", "orders.rea", "orders", "ORDERS.READ", "orders.read,email",
                  None, ""):
        r = get(g, "/echo", tok(scope=scope))
        expect_forbidden(r, scope="orders.read")
    for tenant in ("c", "A", "", None, ["c"]):
        expect_forbidden(get(g, "/echo", tok(tenant=tenant)))
    for role in ("Admin", "administrator", "admin ", None, ["user"]):
        expect_forbidden(get(g, "/echo", tok(role=role)))
    for realm in ({"level": 2}, {"lvl": 3}, 3, None):
        expect_forbidden(get(g, "/echo", tok(realm=realm)))
    # An invalid token that also lacks a claim is 401, not 403.
    expect_invalid(get(g, "/echo", mint(rsa, payload=claims(now=int(time.time()) - 1000, ttl=60, tenant="z"))),
                   "expired")


def test_required_scp_array(gatehouse, upstream):
    g, rsa = required_gh(gatehouse, upstream)
    tok = lambda scp: mint(rsa, payload=claims(aud="scp-api", scp=scp))  # noqa: E731
    expect_ok(get(g, "/scp", tok(["orders.write", "x", "orders.read"])))
    expect_ok(get(g, "/scp", tok("orders.read orders.write")))
    params = expect_forbidden(get(g, "/scp", tok(["orders.read"])))
    assert "orders.write" in params.get("scope", ""), params
    expect_forbidden(get(g, "/scp", tok([])))
    expect_forbidden(get(g, "/scp", tok(["orders.read orders.write"])))


def test_refusals_counted_and_logged_without_token(gatehouse, upstream, tmp_path):
    rsa = rsa_key()
    up = upstream()
    log = tmp_path / "access.log"
    p = provider(keys=[rsa], required_claims=[{"claim": "scope", "contains": ["x"]}])
    g = start(gatehouse, up, {"corp": p},
              admin=True, access_log=log)
    expired = mint(rsa, payload=claims(now=int(time.time()) - 1000, ttl=60, scope="x"))
    noscope = mint(rsa, payload=claims(scope="y"))
    good = mint(rsa, payload=claims(scope="x"))
    expect_invalid(get(g, "/echo?id=1", expired), "expired")
    expect_invalid(get(g, "/echo?id=2", expired), "expired")
    expect_forbidden(get(g, "/echo?id=3", noscope), scope="x")
    expect_ok(get(g, "/echo?id=4", good))
    r = get(g, "/echo?id=5")
    assert r.status == 401
    assert metric(g, "gatehouse_auth_decisions_total", provider="corp", decision="deny", reason="expired") == 2
    assert metric(g, "gatehouse_auth_decisions_total", provider="corp", decision="deny",
                  reason="missing token") == 1
    from ops_util import metrics
    m = metrics(g.admin)
    assert m.sum("gatehouse_auth_decisions_total", provider="corp", decision="allow") == 1, \
        m.series("gatehouse_auth_decisions_total")
    assert m.sum("gatehouse_auth_decisions_total", provider="corp", decision="deny") == 4
    recs = wait_for(lambda: (lambda rs: rs if len(rs) >= 5 else None)(read_json_lines(log)), 10, "5 log lines")
    text = log.read_text()
    for t in (expired, noscope, good):
        for part in t.split("."):
            assert part not in text, "a token (or a segment of one) reached the access log"
    by_id = {r.get("query"): r for r in recs}
    assert "expired" in json.dumps(by_id.get("id=1")), by_id
    assert by_id["id=4"].get("principal") == "alice", by_id["id=4"]
    assert by_id["id=1"].get("principal") in (None, "", "-"), by_id["id=1"]
