"""gatehouse token mint | jwks | inspect: tokens minted by gatehouse verify
with PyJWT and in a running gatehouse, its JWKS output matches the key and
leaks no private part, and inspect says which check failed (exit 1) or that
the token is valid (exit 0)."""

import json
import subprocess
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from harness import gatehouse_bin
from jwt_util import (AUD, ISS, b64u_int, b64u_json, claims, ec_key, expect_invalid, expect_ok, get, mint, okp_key,
                      provider, rsa_key, start)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


def run(*args, timeout=20):
    p = subprocess.run([str(gatehouse_bin()), "token", *args], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, text=True)
    return p.returncode, p.stdout, p.stderr


def key_file(tmp_path, key, fmt="pkcs8"):
    if fmt == "pkcs8":
        data = key.private_pem()
    elif fmt == "traditional":
        data = key.priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption())
    else:
        raise ValueError(fmt)
    path = tmp_path / f"{key.kid}-{fmt}.pem"
    path.write_bytes(data)
    return path


KEYS = {
    "RS256": lambda: rsa_key(kid="cli-rsa", alg="RS256", slot="cli-rsa"),
    "RS512": lambda: rsa_key(kid="cli-rsa", alg="RS512", slot="cli-rsa"),
    "PS256": lambda: rsa_key(kid="cli-rsa", alg="PS256", slot="cli-rsa"),
    "ES256": lambda: ec_key("P-256", kid="cli-ec256"),
    "ES384": lambda: ec_key("P-384", kid="cli-ec384"),
    "ES512": lambda: ec_key("P-521", kid="cli-ec521"),
    "EdDSA": lambda: okp_key("Ed25519", kid="cli-ed25519"),
    "EdDSA-448": lambda: okp_key("Ed448", kid="cli-ed448"),
}


@pytest.mark.parametrize("name", list(KEYS))
def test_mint_jwks_inspect_round_trip(tmp_path, name):
    key = KEYS[name]()
    alg = key.alg
    kf = key_file(tmp_path, key)
    rc, out, err = run("mint", "--key", str(kf), "--alg", alg, "--kid", key.kid, "--iss", ISS, "--sub", "bob",
                       "--aud", AUD, "--scope", "orders.read orders.write", "--ttl", "600")
    assert rc == 0, err
    tok = out.strip()
    assert tok.count(".") == 2 and "\n" not in tok, out
    # PyJWT verifies gatehouse's signature with the public key.
    hdr = pyjwt.get_unverified_header(tok)
    assert hdr["alg"] == alg and hdr["kid"] == key.kid, hdr
    c = pyjwt.decode(tok, key.public, algorithms=[alg], audience=AUD, issuer=ISS)
    assert c["sub"] == "bob" and c["scope"] == "orders.read orders.write", c
    assert c["exp"] - c["iat"] == 600 and abs(c["iat"] - time.time()) < 120, c
    # The JWKS: the public key, no private members.
    rc, out, err = run("jwks", "--key", str(kf), "--alg", alg, "--kid", key.kid)
    assert rc == 0, err
    doc = json.loads(out)
    assert len(doc["keys"]) == 1, doc
    jwk = doc["keys"][0]
    assert not PRIVATE_MEMBERS & set(jwk), f"private members in the JWKS: {PRIVATE_MEMBERS & set(jwk)}"
    mine = key.jwk(with_alg=False)
    for member in ("kty", "crv", "n", "e", "x", "y"):
        assert jwk.get(member) == mine.get(member), (member, jwk, mine)
    assert jwk.get("kid") == key.kid, jwk
    assert jwk.get("alg") in (None, alg), jwk
    jf = tmp_path / "jwks.json"
    jf.write_text(out)
    # inspect: valid, exit 0.
    rc, out, err = run("inspect", "--jwks", str(jf), "--iss", ISS, "--aud", AUD, tok)
    assert rc == 0, out + err
    assert "valid" in out and "FAILED" not in out, out
    assert "bob" in out, "inspect shows the claims"
    # A PyJWT token for the same key inspects as valid too.
    rc, out, err = run("inspect", "--jwks", str(jf), "--iss", ISS, "--aud", AUD, mint(key))
    assert rc == 0, out + err


def test_other_key_formats(tmp_path):
    for key in (rsa_key(kid="cli-rsa", slot="cli-rsa"), ec_key("P-256", kid="cli-ec256")):
        kf = key_file(tmp_path, key, "traditional")
        rc, out, err = run("mint", "--key", str(kf), "--alg", key.alg, "--kid", key.kid, "--iss", ISS)
        assert rc == 0, err
        pyjwt.decode(out.strip(), key.public, algorithms=[key.alg], options={"verify_aud": False})
    # A private JWK.
    key = ec_key("P-256", kid="cli-ec256")
    nums = key.priv.private_numbers()
    jwk = dict(key.jwk(), d=b64u_int(nums.private_value, 32))
    jf = tmp_path / "private.jwk"
    jf.write_text(json.dumps(jwk))
    rc, out, err = run("mint", "--key", str(jf), "--alg", "ES256", "--kid", key.kid, "--iss", ISS)
    assert rc == 0, err
    pyjwt.decode(out.strip(), key.public, algorithms=["ES256"], options={"verify_aud": False})


def test_mint_claims_and_typ(tmp_path):
    key = rsa_key(kid="cli-rsa", slot="cli-rsa")
    kf = key_file(tmp_path, key)
    now = int(time.time())
    payload = {"iss": ISS, "sub": "carol", "aud": ["orders", "x"], "exp": now + 60, "realm": {"role": "admin"},
               "n": 5}
    rc, out, err = run("mint", "--key", str(kf), "--alg", "RS256", "--kid", key.kid, "--typ", "at+jwt",
                       "--claims", json.dumps(payload))
    assert rc == 0, err
    tok = out.strip()
    assert pyjwt.get_unverified_header(tok)["typ"] == "at+jwt"
    assert pyjwt.decode(tok, key.public, algorithms=["RS256"], audience="orders") == payload


def test_hmac_mint(tmp_path):
    secret = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"  # 512 bits
    sf = tmp_path / "secret.txt"
    sf.write_bytes(secret + b"\n")
    for alg in ("HS256", "HS384", "HS512"):
        rc, out, err = run("mint", "--key", str(sf), "--alg", alg, "--kid", "h1", "--iss", ISS, "--aud", AUD)
        assert rc == 0, err
        tok = out.strip()
        c = pyjwt.decode(tok, secret, algorithms=[alg], audience=AUD)
        assert c["iss"] == ISS
        # jwks prints the shared key as an oct JWK; inspect verifies with it.
        rc, out, err = run("jwks", "--key", str(sf), "--alg", alg, "--kid", "h1")
        assert rc == 0, err
        jwk = json.loads(out)["keys"][0]
        assert jwk["kty"] == "oct" and jwk.get("kid") == "h1", jwk
        jf = tmp_path / f"hs-{alg}.json"
        jf.write_text(out)
        rc, out, err = run("inspect", "--jwks", str(jf), "--iss", ISS, "--aud", AUD, tok)
        assert rc == 0, out + err
        rc, out, err = run("inspect", "--jwks", str(jf), tok[:-4] + ("AAAA" if tok[-4:] != "AAAA" else "BBBB"))
        assert rc == 1 and "signature" in out, out + err


def test_served_by_gatehouse(gatehouse, upstream, tmp_path):
    """The JWKS printed by `token jwks`, inline in a provider, accepts the
    token printed by `token mint` (and refuses a tampered copy)."""
    key = ec_key("P-384", kid="cli-ec384")
    kf = key_file(tmp_path, key)
    rc, jwks_out, err = run("jwks", "--key", str(kf), "--alg", "ES384", "--kid", key.kid)
    assert rc == 0, err
    rc, out, err = run("mint", "--key", str(kf), "--alg", "ES384", "--kid", key.kid, "--iss", ISS, "--aud", AUD,
                       "--sub", "dan")
    assert rc == 0, err
    tok = out.strip()
    g = start(gatehouse, upstream(), {"corp": provider(jwks={"inline": jwks_out.strip()},
                                                       claims_to_headers={"sub": "x-user"})})
    r = expect_ok(get(g, "/echo", tok))
    assert ["x-user", "dan"] in [[k.lower(), v] for k, v in r.json()["headers"]], r.json()
    h, p, s = tok.split(".")
    expect_invalid(get(g, "/echo", f"{h}.{b64u_json(dict(claims(sub='root')))}.{s}"), "bad signature")


def inspect_fails(tmp_path, token, *checks, iss=ISS, aud=AUD, keys=None):
    keys = keys or [rsa_key()]
    jf = tmp_path / "inspect-jwks.json"
    jf.write_text(json.dumps({"keys": [k.jwk() for k in keys]}))
    args = ["inspect", "--jwks", str(jf)]
    if iss:
        args += ["--iss", iss]
    if aud:
        args += ["--aud", aud]
    rc, out, err = run(*args, token)
    assert rc == 1, f"inspect exit {rc} for a bad token\n{out}{err}"
    text = out + err
    assert "FAILED" in text or "invalid" in text, text
    assert any(c in text for c in checks), f"inspect output names none of {checks}:\n{text}"
    lines = out.strip().splitlines()
    assert not lines or lines[-1].strip() != "valid", out
    return text


def test_inspect_says_which_check_failed(tmp_path):
    rsa = rsa_key()
    now = int(time.time())
    inspect_fails(tmp_path, mint(rsa, payload=claims(now=now - 1000, ttl=60)), "expired")
    tok = mint(rsa)
    h, p, s = tok.split(".")
    text = inspect_fails(tmp_path, f"{h}.{b64u_json(claims(sub='root'))}.{s}", "bad signature")
    assert "signature" in text
    inspect_fails(tmp_path, mint(rsa, aud="billing"), "wrong audience", "audience")
    inspect_fails(tmp_path, mint(rsa, iss="https://evil.example.com"), "wrong issuer", "issuer")
    inspect_fails(tmp_path, mint(rsa, payload=claims(nbf=now + 3600)), "not yet valid")
    inspect_fails(tmp_path, mint(rsa_key(kid="other", slot="attacker-rsa")), "unknown key")
    inspect_fails(tmp_path, mint(rsa_key(kid="rsa-1", slot="attacker-rsa")), "bad signature")
    inspect_fails(tmp_path, "not-a-token", "malformed", "structure")
    inspect_fails(tmp_path, f"{b64u_json({'alg': 'none'})}.{p}.", "none", "malformed", "structure")
    inspect_fails(tmp_path, f"{h}.{p}.", "malformed", "stripped", "structure")


def test_inspect_output_cannot_drive_the_terminal(tmp_path):
    """A token is anyone's: control characters in its kid, typ or claims
    (ESC, CR, DEL, CSI as U+009B) reach the terminal as \\u00XX text, so a
    token cannot hide "FAILED" (ESC[8m) or print a fake verdict over the
    real one. The claims stay readable JSON."""
    rsa = rsa_key()
    evil = "\x1b[8m\r\x1b[2K  signature ok\x7f\u009b2J\u0085"
    tok = mint(rsa, headers={"typ": "JWT" + evil}, kid="rsa-1" + evil, sub="alice" + evil, **{"x" + evil: 1})
    jf = tmp_path / "jwks.json"
    jf.write_text(json.dumps({"keys": [rsa.jwk()]}))
    p = subprocess.run([str(gatehouse_bin()), "token", "inspect", "--jwks", str(jf), tok], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    out = p.stdout.decode()
    assert p.returncode == 1, out  # the kid names no key
    bad = [c for c in out if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
    assert not bad, f"raw control characters {bad!r} in:\n{out}"
    assert "kid rsa-1\\u001b[8m\\u000d\\u001b[2K  signature ok\\u007f\\u009b2J\\u0085," in out, out
    start, end = out.index("claims:\n") + len("claims:\n"), out.index("\nchecks:")
    doc = json.loads(out[start:end])
    assert doc["sub"] == "alice" + evil and doc["x" + evil] == 1, doc
    assert out.strip().splitlines()[-1] == "invalid", out


def test_usage_errors(tmp_path):
    key = rsa_key(kid="cli-rsa", slot="cli-rsa")
    kf = key_file(tmp_path, key)
    rc, out, err = run("mint", "--alg", "RS256")
    assert rc == 2 and "--key" in err, (rc, err)
    rc, out, err = run("mint", "--key", str(kf), "--alg", "XX999")
    assert rc == 2 and "alg" in err, (rc, err)
    rc, out, err = run("mint", "--key", str(kf), "--alg", "none")
    assert rc != 0 and out.strip() == "", (rc, out, err)
    rc, out, err = run("mint", "--key", str(tmp_path / "nope.pem"), "--alg", "RS256")
    assert rc == 1 and "nope.pem" in err, (rc, err)
    # An RSA key asked for an EC algorithm: refused, nothing printed.
    rc, out, err = run("mint", "--key", str(kf), "--alg", "ES256")
    assert rc != 0 and out.strip() == "", (rc, out, err)
    rc, out, err = run("inspect", "a.b.c")
    assert rc == 2, (rc, out, err)
    rc, out, err = run("frobnicate")
    assert rc == 2, (rc, err)
    rc, out, err = run("--help")
    assert rc == 0 and "mint" in out


def test_hmac_secret_too_short_for_alg(tmp_path):
    """RFC 7518 section 3.2: an HS512 key has at least 512 bits. The JWKS
    loader drops shorter ones, so mint refuses to sign with one (a token no
    gatehouse would verify), saying why, and prints nothing on stdout."""
    sf = tmp_path / "short.txt"
    sf.write_bytes(b"0123456789abcdef0123456789abcdef-cli-secret")  # 43 bytes = 344 bits
    rc, out, err = run("mint", "--key", str(sf), "--alg", "HS512", "--kid", "h1", "--iss", ISS)
    assert rc == 1, (rc, out, err)
    assert out.strip() == "", out
    assert "HS512 needs a secret of 64 bytes or more, not 43" in err, err
    # The boundary: exactly 64 bytes signs, and inspect with the JWKS printed
    # for the same secret accepts the token.
    sf.write_bytes(b"k" * 64)
    rc, tok, err = run("mint", "--key", str(sf), "--alg", "HS512", "--kid", "h1", "--iss", ISS)
    assert rc == 0, err
    rc, jw, err = run("jwks", "--key", str(sf), "--alg", "HS512", "--kid", "h1")
    assert rc == 0, err
    jf = tmp_path / "ok.json"
    jf.write_text(jw)
    rc, out, err = run("inspect", "--jwks", str(jf), "--iss", ISS, tok.strip())
    assert rc == 0, f"inspect refused a token minted with a 64-byte HS512 secret:\n{out}{err}"
