"""Every JWS algorithm gatehouse supports, with tokens minted by PyJWT (an
independent implementation): RS256/384/512, PS256/384/512, ES256/384/512,
EdDSA with Ed25519 and Ed448, and HS256/384/512 with allow_symmetric and an
inline oct key. Each key type has its own JWKS. Also: a key's alg must equal
the token's, the key type must fit the algorithm, short RSA keys are
refused at load, HS* needs allow_symmetric, and the algorithms allow-list."""

import pytest

from jwt_util import (Key, ec_key, expect_invalid, expect_ok, get, jwks_text, mint, oct_key, okp_key,
                      provider, rsa_key, start)

RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
EC_ALGS = [("ES256", "P-256"), ("ES384", "P-384"), ("ES512", "P-521")]
HS_ALGS = ["HS256", "HS384", "HS512"]


def key_for(alg):
    if alg in RSA_ALGS:
        return rsa_key(kid=f"rsa-{alg}", alg=alg)
    for a, crv in EC_ALGS:
        if a == alg:
            return ec_key(crv, kid=f"ec-{alg}")
    if alg == "Ed25519":
        return okp_key("Ed25519", kid="ed25519")
    if alg == "Ed448":
        return okp_key("Ed448", kid="ed448")
    if alg in HS_ALGS:
        return oct_key(kid=f"oct-{alg}", alg=alg)
    raise ValueError(alg)


ALL = RSA_ALGS + [a for a, _ in EC_ALGS] + ["Ed25519", "Ed448"]


@pytest.mark.parametrize("alg", ALL)
def test_asymmetric_algorithm_accepted(gatehouse, upstream, alg):
    key = key_for(alg)
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[key])})
    tok = mint(key, sub=f"user-{alg}")
    r = expect_ok(get(g, "/echo", tok))
    assert r.json()["target"] == "/echo"
    # A tampered copy (one payload byte changed) fails the signature.
    h, p, s = tok.split(".")
    bad_sig = s[:-4] + ("AAAA" if s[-4:] != "AAAA" else "BBBB")
    expect_invalid(get(g, "/echo", f"{h}.{p}.{bad_sig}"), "bad signature", "malformed signature")


@pytest.mark.parametrize("alg", HS_ALGS)
def test_hmac_with_allow_symmetric(gatehouse, upstream, alg):
    key = key_for(alg)
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[key], allow_symmetric=True)})
    expect_ok(get(g, "/echo", mint(key)))
    wrong = Key("oct", b"x" * 64, key.kid, alg)
    expect_invalid(get(g, "/echo", mint(wrong)), "bad signature")


def test_jwks_with_every_key_type_selects_by_kid(gatehouse, upstream):
    keys = [key_for(a) for a in ALL]
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=keys)})
    for k in keys:
        expect_ok(get(g, "/echo", mint(k, sub=k.kid)))


def test_hmac_refused_without_allow_symmetric(gatehouse, upstream):
    """An oct key in a JWKS without allow_symmetric is not a usable key: an
    HS256 token is refused (never accepted)."""
    rsa = rsa_key()
    hk = oct_key(kid="oct-plain")
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa, hk])})
    expect_ok(get(g, "/echo", mint(rsa)))
    expect_invalid(get(g, "/echo", mint(hk)))


def test_key_alg_must_equal_token_alg(gatehouse, upstream):
    """The JWK says RS256; a token signed by the same key with RS512 or PS256
    is refused."""
    k = rsa_key(kid="rsa-strict", alg="RS256", slot="rsa-strict")
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[k])})
    expect_ok(get(g, "/echo", mint(k, alg="RS256")))
    for other in ("RS512", "PS256"):
        expect_invalid(get(g, "/echo", mint(k, alg=other)))


def test_key_without_alg_member_fits_its_type(gatehouse, upstream):
    """A JWK without "alg" accepts algorithms of its key type (RS and PS for
    RSA), not others."""
    k = rsa_key(kid="rsa-noalg", alg=None, slot="rsa-noalg")
    e = ec_key("P-256", kid="ec-noalg", slot="ec-noalg")
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(jwks={"inline": jwks_text(k, e, with_alg=False)})})
    expect_ok(get(g, "/echo", mint(k, alg="RS384")))
    expect_ok(get(g, "/echo", mint(k, alg="PS512")))
    expect_ok(get(g, "/echo", mint(e, alg="ES256")))


def test_ec_curve_must_fit_algorithm(gatehouse, upstream):
    """ES384 header with a kid naming a P-256 key: refused (the curve fixes
    the algorithm)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec as cec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from jwt_util import claims, raw_token

    e = ec_key("P-256", kid="ec-256-only", slot="ec-256-only")
    up = upstream()
    jwk = e.jwk(with_alg=False)
    import json

    g = start(gatehouse, up, {"corp": provider(jwks={"inline": json.dumps({"keys": [jwk]})})})

    def sign(si):
        der = e.priv.sign(si, cec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    tok = raw_token({"alg": "ES384", "kid": e.kid, "typ": "JWT"}, claims(), sign)
    expect_invalid(get(g, "/echo", tok))


def test_short_rsa_key_refused_at_load(gatehouse, upstream):
    """RSA keys under 2048 bits are not loaded: their tokens never pass, the
    other keys of the set still work."""
    weak = rsa_key(kid="rsa-1024", alg="RS256", bits=1024)
    good = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[weak, good])})
    expect_ok(get(g, "/echo", mint(good)))
    r = get(g, "/echo", mint(weak))
    assert r.status in (401,), f"token from a 1024-bit RSA key: {r.status} {r.body!r}"
    expect_invalid(r)


def test_algorithms_allow_list(gatehouse, upstream):
    rsa = rsa_key()
    e = ec_key("P-256", kid="ec-al")
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa, e], algorithms=["ES256"])})
    expect_ok(get(g, "/echo", mint(e)))
    expect_invalid(get(g, "/echo", mint(rsa)), "algorithm not allowed")


def test_unknown_algorithm_refused(gatehouse, upstream):
    """ES256K (secp256k1) is not a supported algorithm."""
    from cryptography.hazmat.primitives.asymmetric import ec as cec

    k = Key("EC", cec.generate_private_key(cec.SECP256K1()), "k1", "ES256K", "secp256k1")
    rsa = rsa_key()
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[rsa])})
    expect_invalid(get(g, "/echo", mint(k)))


def test_encryption_keys_not_used_for_signatures(gatehouse, upstream):
    """RFC 7517 section 4.2/4.3: a key marked "use": "enc" (or whose key_ops
    do not include "verify") is not a signature key."""
    import json

    enc = rsa_key(kid="rsa-enc", alg=None, slot="rsa-enc")
    ops = ec_key("P-256", kid="ec-ops", slot="ec-ops")
    sig = rsa_key()
    keys = [dict(enc.jwk(), use="enc"), dict(ops.jwk(), key_ops=["encrypt", "wrapKey"]), sig.jwk(use="sig")]
    up = upstream()
    g = start(gatehouse, up, {"corp": provider(jwks={"inline": json.dumps({"keys": keys})})})
    expect_ok(get(g, "/echo", mint(sig)))
    r = get(g, "/echo", mint(enc, alg="RS256"))
    assert r.status == 401, f'token verified with a "use": "enc" key: {r.status}'
    r = get(g, "/echo", mint(ops))
    assert r.status == 401, f'token verified with a key whose key_ops lack "verify": {r.status}'


def test_rsa_key_labelled_hs256_is_not_an_hmac_secret(gatehouse, upstream):
    """A JWKS that (wrongly) labels an RSA key "alg": "HS256": the key still
    never becomes an HMAC secret, with or without allow_symmetric."""
    import json

    from cryptography.hazmat.primitives import serialization

    from jwt_util import claims, hs_sign, raw_token

    k = rsa_key(kid="rsa-hs", slot="rsa-hs")
    jwk = dict(k.jwk(with_alg=False), alg="HS256")
    for sym in (False, True):
        up = upstream()
        g = start(gatehouse, up, {"corp": provider(jwks={"inline": json.dumps({"keys": [jwk, rsa_key().jwk()]})},
                                                   allow_symmetric=sym)})
        expect_ok(get(g, "/echo", mint(rsa_key())))
        for secret in (k.public_pem(), json.dumps(jwk).encode(),
                       k.public.public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)):
            tok = raw_token({"alg": "HS256", "kid": "rsa-hs"}, claims(), hs_sign(secret))
            r = get(g, "/echo", tok)
            assert r.status == 401, f"allow_symmetric={sym}: {r.status}"
