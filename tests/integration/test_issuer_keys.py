"""The token issuer's signing keys (docs/issuer-keys.md) through the real
binary: `gatehouse keys rotate | list | jwks | prune` and the admin API's
/issuer/keys, on one state directory.

Judged by implementations gatehouse did not write: the kid of every key is
compared with an RFC 7638 thumbprint computed here from the PEM file with
python3-cryptography, and PyJWT signs with each private key and verifies
with the JWKS gatehouse publishes. The timeline at every instant is a unit
test (tests/unit/issuer/test_issuer_keys.c, with an injected clock); here
the times are checked against the wall clock as the CLI sets them."""

import base64
import hashlib
import json
import os
import stat
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from harness import fetch, free_port, gatehouse_bin
from ops_util import wait_admin

TOKEN = "issuer-admin-token-0123456789abcdef"


def keys(tmp_path, *args, check=True):
    r = subprocess.run([gatehouse_bin(), "keys", *args, "--state-dir", str(tmp_path / "state")],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def key_dir(tmp_path):
    return tmp_path / "state" / "issuer"


def b64(n):
    return base64.urlsafe_b64encode(n).rstrip(b"=").decode()


def int_b64(i, length=None):
    length = length or (i.bit_length() + 7) // 8
    return b64(i.to_bytes(length, "big"))


def thumbprint(pem):
    """RFC 7638 section 3, written here from the spec."""
    k = serialization.load_pem_private_key(pem, None).public_key()
    if isinstance(k, rsa.RSAPublicKey):
        n = k.public_numbers()
        members = {"e": int_b64(n.e), "kty": "RSA", "n": int_b64(n.n)}
    elif isinstance(k, ec.EllipticCurvePublicKey):
        n = k.public_numbers()
        assert k.curve.name == "secp256r1"
        members = {"crv": "P-256", "kty": "EC", "x": int_b64(n.x, 32), "y": int_b64(n.y, 32)}
    else:
        assert isinstance(k, ed25519.Ed25519PublicKey)
        raw = k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64(raw)}
    canon = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canon.encode()).digest())


def manifest(tmp_path):
    return json.loads((key_dir(tmp_path) / "keys.json").read_text())


def test_first_rotate_makes_a_private_directory(tmp_path):
    r = keys(tmp_path, "list", check=False)
    assert r.returncode == 1 and "no keys in" in r.stderr
    r = keys(tmp_path, "rotate")
    kid = r.stdout.strip()
    assert "made the first key (ES256)" in r.stderr
    d = key_dir(tmp_path)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    pem = d / f"{kid}.pem"
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d / "keys.json").st_mode) == 0o600
    assert thumbprint(pem.read_bytes()) == kid
    m = manifest(tmp_path)
    assert [k["kid"] for k in m["keys"]] == [kid]
    k = m["keys"][0]
    now = time.time()
    assert abs(k["publish_at"] - now) < 60 and k["sign_from"] == k["publish_at"]
    assert k["sign_until"] == 0 and k["retire_at"] == 0
    lst = json.loads(keys(tmp_path, "list", "--json").stdout)
    assert lst["keys"][0]["state"] == "signing"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_each_alg_verifies_with_pyjwt_against_the_published_jwks(tmp_path, alg):
    keys(tmp_path, "rotate")  # the first key, ES256
    r = keys(tmp_path, "rotate", "--alg", alg, "--lead", "10m", "--json")
    out = json.loads(r.stdout)
    new, prev = out["added"], out["previous"]
    assert new["alg"] == alg and new["state"] == "published"
    assert new["sign_from"] == new["publish_at"] + 600
    assert prev["sign_until"] == new["sign_from"]
    # Retires the longest token lifetime (1h) + leeway (60s) after it stops.
    assert prev["retire_at"] == prev["sign_until"] + 3600 + 60
    assert prev["state"] == "signing"
    jwks = json.loads(keys(tmp_path, "jwks").stdout)
    assert sorted(k["kid"] for k in jwks["keys"]) == sorted([new["kid"], prev["kid"]])
    for k in jwks["keys"]:
        assert k["use"] == "sig"
        assert not ({"d", "p", "q", "dp", "dq", "qi"} & set(k)), "a private member was published"
    pyjwks = jwt.PyJWKSet.from_dict(jwks)
    for entry in (new, prev):
        pem = (key_dir(tmp_path) / f"{entry['kid']}.pem").read_bytes()
        assert thumbprint(pem) == entry["kid"]
        priv = serialization.load_pem_private_key(pem, None)
        tok = jwt.encode({"sub": "svc", "exp": int(time.time()) + 60}, priv, algorithm=entry["alg"],
                         headers={"kid": entry["kid"], "typ": "at+jwt"})
        key = next(k for k in pyjwks.keys if k.key_id == entry["kid"])
        claims = jwt.decode(tok, key.key, algorithms=[entry["alg"]])
        assert claims["sub"] == "svc"
        # A token under the other kid's key is refused: the JWKS keys are
        # not interchangeable.
        other = next(k for k in pyjwks.keys if k.key_id != entry["kid"])
        with pytest.raises(jwt.InvalidTokenError):
            other_alg = next(k["alg"] for k in jwks["keys"] if k["kid"] == other.key_id)
            jwt.decode(tok, other.key, algorithms=[other_alg])


def test_emergency_rotation_deletes_every_other_key(tmp_path):
    first = keys(tmp_path, "rotate").stdout.strip()
    second = keys(tmp_path, "rotate").stdout.strip()
    r = keys(tmp_path, "rotate", "--now")
    kid = r.stdout.strip()
    assert "every other key was deleted (2)" in r.stderr
    names = sorted(os.listdir(key_dir(tmp_path)))
    assert names == sorted([f"{kid}.pem", "keys.json", "lock"])
    assert not (key_dir(tmp_path) / f"{first}.pem").exists()
    assert not (key_dir(tmp_path) / f"{second}.pem").exists()
    m = manifest(tmp_path)
    assert len(m["keys"]) == 1 and m["keys"][0]["sign_from"] == m["keys"][0]["publish_at"]
    assert [k["kid"] for k in json.loads(keys(tmp_path, "jwks").stdout)["keys"]] == [kid]


def test_refusals(tmp_path):
    r = keys(tmp_path, "rotate", "--lead", "1m", check=False)
    assert r.returncode == 2 and "shorter than the JWKS max-age" in r.stderr
    assert not (tmp_path / "state").exists()  # refused before anything was made
    r = keys(tmp_path, "rotate", "--alg", "HS256", check=False)
    assert r.returncode == 2 and "--alg must be" in r.stderr
    r = keys(tmp_path, "rotate", "--bits", "4096", check=False)
    assert r.returncode == 2 and "--bits is for RS256" in r.stderr
    r = keys(tmp_path, "rotate", "--now", "--lead", "10m", check=False)
    assert r.returncode == 2
    r = keys(tmp_path, "list", "--now", check=False)
    assert r.returncode == 2 and "does not apply" in r.stderr
    r = keys(tmp_path, "frobnicate", check=False)
    assert r.returncode == 2
    kid = keys(tmp_path, "rotate", "--alg", "RS256", "--bits", "3072").stdout.strip()
    pem = key_dir(tmp_path) / f"{kid}.pem"
    # A key file others can read: refused as ssh refuses it.
    os.chmod(pem, 0o644)
    r = keys(tmp_path, "list", check=False)
    assert r.returncode == 1 and "chmod 600" in r.stderr and kid in r.stdout
    r = keys(tmp_path, "jwks", check=False)
    assert r.returncode == 1 and "open to group or others (mode 0644)" in r.stderr
    os.chmod(pem, 0o600)
    keys(tmp_path, "jwks")
    # A manifest naming a file that is gone.
    pem.rename(key_dir(tmp_path) / "elsewhere")
    r = keys(tmp_path, "jwks", check=False)
    assert r.returncode == 1 and "is missing" in r.stderr
    (key_dir(tmp_path) / "elsewhere").rename(pem)
    # A corrupt manifest: refused, and a rotation does not write over it.
    mf = key_dir(tmp_path) / "keys.json"
    good = mf.read_text()
    mf.write_text(good.replace('"leeway": 60', '"leeway": "60"'))
    r = keys(tmp_path, "rotate", check=False)
    assert r.returncode == 1 and "leeway must be an integer" in r.stderr
    assert mf.read_text() != good and len(os.listdir(key_dir(tmp_path))) == 3
    mf.write_text(good)
    keys(tmp_path, "list")


def test_concurrent_rotations_lose_nothing(tmp_path):
    keys(tmp_path, "rotate")
    procs = [subprocess.Popen([gatehouse_bin(), "keys", "rotate", "--state-dir",
                               str(tmp_path / "state")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(5)]
    kids = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        kids.append(out.strip())
    m = manifest(tmp_path)
    assert len(m["keys"]) == 6
    assert set(kids) <= {k["kid"] for k in m["keys"]}
    assert sum(1 for k in m["keys"] if k["sign_until"] == 0) == 1
    for a, b in zip(m["keys"], m["keys"][1:]):
        assert a["sign_until"] == max(b["sign_from"], a["sign_from"])
    assert len([n for n in os.listdir(key_dir(tmp_path)) if n.endswith(".pem")]) == 6
    keys(tmp_path, "list")


def test_concurrent_first_rotations_make_one_first_key(tmp_path):
    procs = [subprocess.Popen([gatehouse_bin(), "keys", "rotate", "--state-dir",
                               str(tmp_path / "state")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    firsts = 0
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        firsts += "made the first key" in err
    assert firsts == 1
    assert len(manifest(tmp_path)["keys"]) == 4


# ---- the admin API ----


def start(gatehouse, upstream, tmp_path, token=True, issuer=True):
    up = upstream()
    cfg = {
        "listeners": [{"name": "edge", "routes": [{"match": {"path": {"prefix": "/"}}, "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "state_dir": str(tmp_path / "state"),
    }
    if issuer:
        cfg["issuer"] = {"issuer": "http://127.0.0.1:8080"}
    if token:
        tf = tmp_path / "admin-token"
        tf.write_text(TOKEN + "\n")
        cfg["admin"]["token_file"] = str(tf)
    g = gatehouse(cfg)
    g.admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    wait_admin(g.admin)
    return g


def admin(g, method, path, body=None, ctype="application/json", token=TOKEN, headers=()):
    hs = list(headers)
    if token is not None:
        hs.append(("Authorization", f"Bearer {token}"))
    if body is not None:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if ctype is not None:
            hs.append(("Content-Type", ctype))
    return fetch(g.admin, method, path, headers=hs, body=body, host=f"127.0.0.1:{g.admin}")


def refused(r, status, code, text=""):
    assert r.status == status, (r.status, r.body)
    d = json.loads(r.body)
    assert d["error"] == code and text in d["detail"], d


def test_admin_rotate_and_list(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    # The server made the first key when it started (the config has an issuer).
    r = admin(g, "GET", "/issuer/keys")
    assert r.status == 200, r.body
    lst = json.loads(r.body)
    assert [k["state"] for k in lst["keys"]] == ["signing"]
    first = lst["keys"][0]
    r = admin(g, "POST", "/issuer/keys/rotate", {"alg": "EdDSA", "lead": "10m"})
    assert r.status == 201, r.body
    second = json.loads(r.body)
    assert second["added"]["alg"] == "EdDSA" and second["added"]["state"] == "published"
    assert second["previous"]["kid"] == first["kid"]
    r = admin(g, "GET", "/issuer/keys")
    assert r.status == 200 and r.header("cache-control") == "no-store"
    lst = json.loads(r.body)
    assert [k["kid"] for k in lst["keys"]] == [first["kid"], second["added"]["kid"]]
    assert [k["state"] for k in lst["keys"]] == ["signing", "published"]
    # The CLI sees the same directory, and the admin API what the CLI did.
    cli = json.loads(keys(tmp_path, "list", "--json").stdout)
    assert cli["keys"] == lst["keys"]
    third = keys(tmp_path, "rotate", "--alg", "RS256").stdout.strip()
    lst = json.loads(admin(g, "GET", "/issuer/keys").body)
    assert lst["keys"][-1]["kid"] == third
    r = admin(g, "HEAD", "/issuer/keys")
    assert r.status == 200 and r.body == b""
    # Emergency over the API.
    r = admin(g, "POST", "/issuer/keys/rotate", {"now": True})
    assert r.status == 201 and json.loads(r.body)["pruned"] == 3
    assert len(json.loads(admin(g, "GET", "/issuer/keys").body)["keys"]) == 1


def test_admin_refusals(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    r = admin(g, "GET", "/issuer/keys", token=None)
    assert r.status == 401
    r = admin(g, "POST", "/issuer/keys/rotate", token="wrong")
    assert r.status == 401
    assert len(manifest(tmp_path)["keys"]) == 1, "only the key the server made at start"
    refused(admin(g, "GET", "/issuer/keys/rotate"), 405, "method_not_allowed")
    refused(admin(g, "DELETE", "/issuer/keys"), 405, "method_not_allowed")
    refused(admin(g, "GET", "/issuer/keys/x"), 404, "not_found")
    refused(admin(g, "GET", "/issuer/keysx"), 404, "not_found")
    refused(admin(g, "POST", "/issuer/keys/rotate", {"alg": "HS256"}), 400, "bad_request", "alg")
    refused(admin(g, "POST", "/issuer/keys/rotate", {"algo": "ES256"}), 400, "bad_request",
            "unknown member")
    refused(admin(g, "POST", "/issuer/keys/rotate", {"lead": "1m"}), 400, "bad_request", "max-age")
    refused(admin(g, "POST", "/issuer/keys/rotate", {"lead": 600}), 400, "bad_request", "lead")
    refused(admin(g, "POST", "/issuer/keys/rotate", {"now": "yes"}), 400, "bad_request", "now")
    refused(admin(g, "POST", "/issuer/keys/rotate", {"now": True, "lead": "10m"}), 400,
            "bad_request")
    refused(admin(g, "POST", "/issuer/keys/rotate", {"bits": 4096}), 400, "bad_request", "RS256")
    refused(admin(g, "POST", "/issuer/keys/rotate", '{"alg":"ES256","alg":"RS256"}'), 400,
            "bad_request")
    refused(admin(g, "POST", "/issuer/keys/rotate", "[]"), 400, "bad_request")
    refused(admin(g, "POST", "/issuer/keys/rotate", "{}", ctype="text/plain"), 415,
            "unsupported_media_type")
    refused(admin(g, "POST", "/issuer/keys/rotate", "{" + " " * 5000 + "}"), 413,
            "payload_too_large")
    refused(admin(g, "POST", "/issuer/keys/rotate?now=1"), 400, "bad_request", "no query")
    refused(admin(g, "GET", "/issuer/keys", body="{}"), 400, "bad_request", "no body")
    # Nothing of that made a key.
    assert len(manifest(tmp_path)["keys"]) == 1
    # A body split across reads is read whole (Content-Length, no chunking).
    from harness import RawConn
    with RawConn(g.admin) as c:
        body = json.dumps({"alg": "ES256"}).encode()
        head = (f"POST /issuer/keys/rotate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        c.send(head + body[:3])
        time.sleep(0.05)
        c.send(body[3:])
        r = c.read_response()
        assert r.status == 201, r.body
    assert len(manifest(tmp_path)["keys"]) == 2


def test_admin_without_an_issuer_section_has_no_keys(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path, issuer=False)
    refused(admin(g, "GET", "/issuer/keys"), 404, "not_found", "no issuer section")
    refused(admin(g, "POST", "/issuer/keys/rotate"), 404, "not_found", "no issuer section")
    assert not (tmp_path / "state" / "issuer").exists()


def test_admin_without_token_is_forbidden(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path, token=False, issuer=False)
    refused(admin(g, "POST", "/issuer/keys/rotate", token=None), 403, "forbidden", "admin token")
    refused(admin(g, "GET", "/issuer/keys", token=None), 403, "forbidden")
    assert not (tmp_path / "state" / "issuer").exists()
