"""Helpers for the JWT tests: keys and JWKs built with python3-cryptography,
tokens minted by PyJWT (an implementation independent of gatehouse's) or
assembled by hand for the attacks PyJWT refuses to produce, provider and
route configs, refusal checks, and a client for jwks_server.py.

Every socket operation has a timeout and every wait a deadline."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from harness import fetch, free_port, make_config
from ops_util import admin_conf, admin_get, admin_port_of, metrics, wait_admin, wait_for

HERE = Path(__file__).resolve().parent
ISS = "https://login.example.com"
AUD = "orders"

# --------------------------------------------------------------------------
# base64url and raw tokens


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def b64u_int(n, size=None):
    if size is None:
        size = max(1, (n.bit_length() + 7) // 8)
    return b64u(n.to_bytes(size, "big"))


def split(token):
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p))),
            base64.urlsafe_b64decode(pad(s)) if s else b"")


def raw_token(header, payload, sig=b""):
    """header/payload as dicts (or already-encoded str segments), sig as bytes
    or a callable(signing_input_bytes) -> bytes."""
    h = header if isinstance(header, str) else b64u_json(header)
    p = payload if isinstance(payload, str) else b64u_json(payload)
    si = f"{h}.{p}".encode()
    s = sig(si) if callable(sig) else sig
    return f"{h}.{p}.{b64u(s)}"


def hs_sign(secret, alg="HS256"):
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return lambda si: hmac.new(secret, si, digest).digest()


# --------------------------------------------------------------------------
# Keys


class Key:
    """A private key with its public JWK. kind: RSA, EC, OKP, oct."""

    def __init__(self, kind, priv, kid, alg=None, crv=None):
        self.kind, self.priv, self.kid, self.alg, self.crv = kind, priv, kid, alg, crv

    @property
    def public(self):
        return self.priv.public_key() if self.kind != "oct" else None

    def public_pem(self):
        return self.public.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)

    def private_pem(self):
        return self.priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    def jwk(self, with_alg=True, kid=True, use=None):
        if self.kind == "RSA":
            nums = self.public.public_numbers()
            d = {"kty": "RSA", "n": b64u_int(nums.n), "e": b64u_int(nums.e)}
        elif self.kind == "EC":
            nums = self.public.public_numbers()
            size = (self.public.curve.key_size + 7) // 8
            d = {"kty": "EC", "crv": self.crv, "x": b64u_int(nums.x, size), "y": b64u_int(nums.y, size)}
        elif self.kind == "OKP":
            raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            d = {"kty": "OKP", "crv": self.crv, "x": b64u(raw)}
        else:
            d = {"kty": "oct", "k": b64u(self.priv)}
        if kid and self.kid is not None:
            d["kid"] = self.kid if kid is True else kid
        if with_alg and self.alg:
            d["alg"] = self.alg
        if use:
            d["use"] = use
        return d

    def mint_key(self):
        """The key object PyJWT signs with."""
        return self.priv


_cache = {}


def rsa_key(kid="rsa-1", alg="RS256", bits=2048, slot=None):
    """RSA keys are slow to make: one per slot, cached for the session."""
    slot = slot or kid
    k = ("RSA", slot, bits)
    if k not in _cache:
        _cache[k] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return Key("RSA", _cache[k], kid, alg)


def ec_key(crv="P-256", kid=None, alg=None, slot=None):
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}[crv]
    alg = alg or {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[crv]
    slot = slot or kid or crv
    k = ("EC", slot, crv)
    if k not in _cache:
        _cache[k] = ec.generate_private_key(curve)
    return Key("EC", _cache[k], kid or f"ec-{crv}", alg, crv)


def okp_key(crv="Ed25519", kid=None, slot=None):
    slot = slot or kid or crv
    k = ("OKP", slot, crv)
    if k not in _cache:
        _cache[k] = (ed25519.Ed25519PrivateKey if crv == "Ed25519" else ed448.Ed448PrivateKey).generate()
    return Key("OKP", _cache[k], kid or f"okp-{crv}", "EdDSA", crv)


def oct_key(kid="hmac-1", alg="HS256", size=64, slot=None):
    slot = slot or kid
    k = ("oct", slot, size)
    if k not in _cache:
        _cache[k] = os.urandom(size)
    return Key("oct", _cache[k], kid, alg)


def jwks_doc(*keys, **kw):
    return {"keys": [k.jwk(**kw) if isinstance(k, Key) else k for k in keys]}


def jwks_text(*keys, **kw):
    return json.dumps(jwks_doc(*keys, **kw), separators=(",", ":"))


# --------------------------------------------------------------------------
# Tokens


def claims(iss=ISS, aud=AUD, sub="alice", ttl=300, now=None, **extra):
    now = int(time.time()) if now is None else now
    c = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + ttl}
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return {k: v for k, v in c.items() if v is not None}


def mint(key, alg=None, payload=None, headers=None, kid=True, **claim_kw):
    """A token signed by PyJWT with key (a Key). kid=True puts key.kid in the
    header, False leaves it out, a string puts that string."""
    alg = alg or key.alg
    payload = claims(**claim_kw) if payload is None else payload
    hs = dict(headers or {})
    if kid is True and key.kid is not None:
        hs.setdefault("kid", key.kid)
    elif isinstance(kid, str):
        hs["kid"] = kid
    return pyjwt.encode(payload, key.mint_key(), algorithm=alg, headers=hs or None)


def rs256_sig(key, si, alg="RS256"):
    h = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}[alg]
    return key.priv.sign(si, padding.PKCS1v15(), h)


# --------------------------------------------------------------------------
# Config


def provider(jwks=None, keys=(), issuer=ISS, audiences=(AUD,), **kw):
    """A providers.jwt entry. jwks: a dict for the jwks section, or None to
    put keys inline. audiences: a list, "any", or None to leave the
    (required) key out. The test key servers are plain http on loopback:
    a jwks with an http:// uri, or discovery for an http:// issuer, gets
    insecure_http: true unless the dict says otherwise."""
    p = {"issuer": issuer}
    if audiences is not None:
        p["audiences"] = audiences if isinstance(audiences, str) else list(audiences)
    if jwks is None:
        jwks = {"inline": jwks_text(*keys)}
    plain = str(jwks.get("uri", "")).startswith("http://") or (
        jwks.get("discovery") and issuer.startswith("http://"))
    if plain and "insecure_http" not in jwks:
        jwks = dict(jwks, insecure_http=True)
    p["jwks"] = jwks
    p.update(kw)
    return p


def route(name, prefix, authn=None, to="app", **kw):
    r = {"name": name, "match": {"path": {"prefix": prefix}}}
    if authn is not None:
        r["authn"] = authn
    r.update(kw)
    r["to"] = to
    return r


def build_config(up, providers, routes=None, admin_port=None, access_log=None, authn="corp"):
    """The config dict start() uses: one listener, cluster "app" on up."""
    if routes is None:
        routes = [route("all", "/", authn)]
    cfg = make_config([up], routes=routes)
    cfg["providers"] = {"jwt": providers}
    if admin_port:
        cfg["admin"] = admin_conf(port=admin_port)
    if access_log:
        cfg["access_log"] = {"path": str(access_log)}
    return cfg


def start(gatehouse, up, providers, routes=None, admin=False, access_log=None, workers=1, authn="corp",
          wait_keys=False):
    """A gatehouse with the given providers ({name: provider dict}) and
    routes (default: one catch-all route with authn). Returns it with
    .admin set (the admin port) when admin is true, else None."""
    cfg = build_config(up, providers, routes, free_port() if admin else None, access_log, authn)
    g = gatehouse(cfg, workers=workers)
    g.admin = None
    if admin:
        g.admin = admin_port_of(cfg)
        wait_admin(g.admin)
        if wait_keys:
            wait_ready(g)
    return g


def wait_ready(g, timeout=10.0):
    def ready():
        r = admin_get(g.admin, "/ready")
        return r.status == 200

    wait_for(ready, timeout, "/ready == 200", interval=0.05)


def get(g, target="/echo", token=None, headers=(), scheme="Bearer", timeout=5.0):
    hs = list(headers)
    if token is not None:
        hs.append(("Authorization", f"{scheme} {token}"))
    return fetch(g.port, "GET", target, headers=hs, timeout=timeout)


# --------------------------------------------------------------------------
# Refusal checks


def body_json(r):
    ct = (r.header("content-type") or "").split(";")[0].strip().lower()
    assert ct == "application/json", f"refusal content-type {ct!r}: {r!r} {r.body[:300]!r}"
    return json.loads(r.body)


def www_auth(r):
    vals = [v for k, v in r.headers if k.lower() == "www-authenticate"]
    assert len(vals) == 1, f"expected one WWW-Authenticate, got {vals}; {r!r}"
    return vals[0]


def auth_params(value):
    """'Bearer realm="x", error="y"' -> ('Bearer', {'realm': 'x', 'error': 'y'})."""
    import re

    scheme, _, rest = value.partition(" ")
    params = dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', rest))
    return scheme, params


def expect_missing(r, realm="gatehouse"):
    assert r.status == 401, f"expected 401 missing token, got {r.status}: {r.body[:300]!r}"
    scheme, params = auth_params(www_auth(r))
    assert scheme == "Bearer", www_auth(r)
    assert params.get("realm") == realm, www_auth(r)
    assert "error" not in params, f"missing token must not carry error=: {www_auth(r)}"
    doc = body_json(r)
    assert doc.get("error") == "unauthorized", doc
    assert "missing token" in doc.get("detail", ""), doc
    return doc


def expect_invalid(r, *reasons):
    """401 invalid_token whose error_description (and body) contains one of
    reasons (any reason when none are given)."""
    assert r.status == 401, f"expected 401 invalid_token ({reasons}), got {r.status}: {r.body[:300]!r}"
    hdr = www_auth(r)
    scheme, params = auth_params(hdr)
    assert scheme == "Bearer" and params.get("error") == "invalid_token", hdr
    desc = params.get("error_description", "")
    if reasons:
        assert any(x in desc for x in reasons), f"error_description {desc!r} names none of {reasons}"
    doc = body_json(r)
    assert doc.get("error") == "invalid_token", doc
    if reasons:
        assert any(x in doc.get("detail", "") for x in reasons), doc
    return desc


def expect_forbidden(r, scope=None):
    assert r.status == 403, f"expected 403 insufficient_scope, got {r.status}: {r.body[:300]!r}"
    hdr = www_auth(r)
    scheme, params = auth_params(hdr)
    assert scheme == "Bearer" and params.get("error") == "insufficient_scope", hdr
    if scope is not None:
        assert params.get("scope") == scope, f"scope={params.get('scope')!r}, wanted {scope!r}: {hdr}"
    doc = body_json(r)
    assert doc.get("error") == "insufficient_scope", doc
    return params


def expect_ok(r):
    assert r.status == 200, f"expected 200, got {r.status}: {r.headers} {r.body[:400]!r}"
    return r


def expect_unavailable(r):
    assert r.status == 503, f"expected 503 (keys not loaded), got {r.status}: {r.body[:300]!r}"
    doc = body_json(r)
    assert doc.get("error"), doc
    assert not any(k.lower() == "www-authenticate" for k, _ in r.headers), r.headers
    return doc


# --------------------------------------------------------------------------
# JWKS server process


class JwksServer:
    """jwks_server.py in its own process. port=None picks one (the server
    binds port 0 and reports it); a given port lets a test start the server
    after gatehouse already points at it."""

    def __init__(self, tmp_path, port=None, jwks=None, issuer=None, max_age=None):
        self.tmp_path = Path(tmp_path)
        self.port = port
        self.proc = None
        self.start(jwks=jwks, issuer=issuer, max_age=max_age)

    def start(self, jwks=None, issuer=None, max_age=None):
        portfile = self.tmp_path / f"jwks-{time.monotonic_ns()}.port"
        cmd = [sys.executable or "/usr/bin/python3", str(HERE / "jwks_server.py"), "--port",
               str(self.port or 0), "--port-file", str(portfile)]
        if jwks is not None:
            jf = self.tmp_path / f"jwks-init-{time.monotonic_ns()}.json"
            jf.write_text(json.dumps(jwks))
            cmd += ["--jwks", str(jf)]
        if issuer is not None:
            cmd += ["--issuer", issuer]
        if max_age is not None:
            cmd += ["--max-age", str(max_age)]
        self.errpath = self.tmp_path / f"jwks-server-{time.monotonic_ns()}.log"
        self._err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"jwks_server exited: {self.errpath.read_text()}")
            txt = portfile.read_text() if portfile.exists() else ""
            return txt.endswith("\n") and int(txt)

        self.port = wait_for(up, 10, "jwks_server to listen")
        return self

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def uri(self):
        return f"{self.base}/jwks.json"

    def _call(self, method, path, doc=None):
        body = json.dumps(doc).encode() if doc is not None else None
        hs = [("Content-Type", "application/json")] if body is not None else []
        r = fetch(self.port, method, path, headers=hs, body=body, host=f"127.0.0.1:{self.port}", timeout=5)
        assert r.status == 200, r
        return json.loads(r.body)

    def control(self, **kw):
        """jwks=<dict>, mode="ok"|"garbage"|"500"|"empty", max_age=<int or None>,
        issuer=<str>, jwks_uri=<str>, metadata="oidc"|"oauth"|"both", reset=True."""
        return self._call("POST", "/control", kw)

    def stats(self):
        return self._call("GET", "/stats")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self._err.close()
        self.proc = None

    def kill(self):
        """Down hard: SIGKILL, the port then refuses connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            self._err.close()
        self.proc = None


def metric(g, name, **labels):
    return metrics(g.admin).get(name, default=0.0, **labels)
