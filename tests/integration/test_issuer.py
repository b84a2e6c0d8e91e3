"""The OAuth 2.0 token service (`issuer` section, `issuer: {}` routes)
through the real binary, judged by implementations gatehouse did not write:

- interop: requests-oauthlib (BackendApplicationClient; client_secret_basic
  and client_secret_post) and authlib (client_secret_basic,
  client_secret_post, private_key_jwt) obtain tokens, introspect and revoke
  them; PyJWT validates every token against the published JWKS (ES256,
  RS256, EdDSA); gatehouse's JWT filter (`issuer: self`) takes them, and
  refuses a revoked one at once here and, within the poll, at a second
  gatehouse sharing the state directory;
- discovery: RFC 8414 and OpenID metadata parse (authlib's validators),
  their URLs work, and a second gatehouse's JWT provider with
  `jwks: {discovery: true}` verifies the issued tokens;
- rotation: tokens issued before, during and after `gatehouse keys rotate`
  verify at two gatehouses sharing the keys and with PyJWT;
- every RFC 6749 section 5.2 error, with its status, body, no-store and
  challenge;
- attacks: repeated parameters in every spelling, content types, bodies
  over 32 KiB, requests split across reads, odd client ids, client
  assertions replayed or wrong, and the failed-authentication throttle
  (on a wall clock frozen by libfaketime, so that its one-minute window
  is not crossed mid-test).

The secret comparison's constant time is not measured here (a timing
assertion would be flaky on a shared machine): src/issuer/auth.c compares
with CRYPTO_memcmp, always against two hashes."""

import base64
import calendar
import json
import os
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, quote

import jwt as pyjwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2.rfc6749 import errors as oauth_errors
from requests_oauthlib import OAuth2Session

from harness import RawConn, Upstream, assert_refusal, fetch, free_port
from issuer_util import (AUD, FORM, GRANT, SCOPES, api, basic, cli, create_client, expect_error,
                         expect_token_reply, jwks, post, start, start_standalone, token, verify)
from jwt_util import expect_invalid
from ops_util import wait_for

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


@pytest.fixture
def insecure_ok(monkeypatch):
    """The issuer is plain http on loopback: both libraries refuse that
    unless told (their own switch, as their docs say for tests)."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def up(upstream):
    return upstream()


def jwk_file(tmp_path, pub, kid, alg):
    """The public key as a JWK Set file for `client create --jwks`."""
    k = json.loads(pyjwt.algorithms.get_default_algorithms()[alg].to_jwk(pub))
    k.update(kid=kid, alg=alg, use="sig")
    p = tmp_path / f"{kid}.jwks.json"
    p.write_text(json.dumps({"keys": [k]}))
    return p


def pem(priv):
    return priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def revoked_at(g, tok):
    r = api(g, tok)
    return r.status == 401 and "revoked" in (r.header("www-authenticate") or "")


# --------------------------------------------------------------------------
# Interop


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_requests_oauthlib_gets_tokens_the_jwt_filter_takes(gatehouse, up, insecure_ok, method):
    g = start(gatehouse, up)
    cid, secret = create_client(g)
    sent = []
    s = OAuth2Session(client=BackendApplicationClient(client_id=cid, scope=["orders.read"]))
    s.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
    if method == "client_secret_basic":
        tok = s.fetch_token(g.token_url, client_id=cid, client_secret=secret)
    else:
        tok = s.fetch_token(g.token_url, include_client_id=True, client_secret=secret)
    req = sent[-1]
    body = parse_qs(req.body)
    assert body["grant_type"] == ["client_credentials"] and body["scope"] == ["orders.read"]
    if method == "client_secret_basic":
        assert req.headers["Authorization"].startswith("Basic ") and "client_secret" not in body
    else:
        assert "Authorization" not in req.headers
        assert body["client_id"] == [cid] and body["client_secret"] == [secret]
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 3600
    assert tok["scope"] == ["orders.read"]
    c = verify(tok["access_token"], jwks(g), g.url, cid, scope="orders.read")
    assert c["exp"] - c["iat"] == 3600 and c["aud"] == AUD
    # The session carries the token to the protected route itself.
    r = s.get(g.url + "/orders/7")
    assert r.status_code == 200, r.text
    assert up.complete_requests()[-1].path == "/orders/7"
    assert secret not in g.stderr


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_authlib_each_method_then_introspect_and_revoke(gatehouse, up, insecure_ok, tmp_path,
                                                         method):
    # authlib's assertions live an hour (its default, kept here): the
    # issuer must allow that much (assertion_lifetime, default 5m).
    g = start(gatehouse, up, issuer={"assertion_lifetime": "1h"})
    # A second gatehouse sharing the state directory (keys and store),
    # only verifying.
    g2 = start(gatehouse, up, routes=False,
               issuer={"issuer": g.url, "revocation_poll": "1s"})
    sent = []
    if method == "private_key_jwt":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cid, secret = create_client(g, "--jwks", str(jwk_file(tmp_path, key.public_key(), "k1",
                                                              "RS256")))
        assert secret is None
        s = AuthlibSession(cid, pem(key), token_endpoint_auth_method=method,
                           revocation_endpoint_auth_method=method)
        s.register_client_auth_method(PrivateKeyJWT(g.token_url))
    else:
        cid, secret = create_client(g)
        s = AuthlibSession(cid, secret, token_endpoint_auth_method=method,
                           revocation_endpoint_auth_method=method)
    s.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))

    def sent_with_method():
        body = parse_qs(sent[-1].body)
        assert ("Authorization" in sent[-1].headers) == (method == "client_secret_basic")
        assert ("client_secret" in body) == (method == "client_secret_post")
        assert (body.get("client_assertion_type") == [ASSERTION_TYPE]) == (method == "private_key_jwt")

    tok = s.fetch_token(g.token_url, grant_type="client_credentials")
    sent_with_method()
    at = tok["access_token"]
    c = verify(at, jwks(g), g.url, cid)
    assert tok["scope"] == SCOPES
    assert api(g, at).status == 200
    assert api(g2, at).status == 200  # and now in g2's verified-token cache

    r = s.introspect_token(g.introspect_url, token=at)
    sent_with_method()
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    doc = r.json()
    assert doc == {"active": True, "scope": SCOPES, "client_id": cid, "sub": cid, "aud": AUD,
                   "iss": g.url, "exp": c["exp"], "iat": c["iat"], "jti": c["jti"],
                   "token_type": "Bearer"}

    r = s.revoke_token(g.revoke_url, token=at, token_type_hint="access_token")
    sent_with_method()
    assert r.status_code == 200 and r.text == ""
    expect_invalid(api(g, at), "revoked")  # here at once
    wait_for(lambda: revoked_at(g2, at), 15, "the second gatehouse refuses the revoked token")
    expect_invalid(api(g2, at), "revoked")
    assert s.introspect_token(g.introspect_url, token=at).json() == {"active": False}
    # Revoking again is fine (RFC 7009 section 2.2); a new token works.
    assert s.revoke_token(g.revoke_url, token=at).status_code == 200
    at2 = s.fetch_token(g.token_url, grant_type="client_credentials")["access_token"]
    assert api(g, at2).status == 200 and api(g2, at2).status == 200
    if secret is not None:
        assert secret not in g.stderr and secret not in g2.stderr


@pytest.mark.parametrize("alg,kty", [("ES256", "EC"), ("RS256", "RSA"), ("EdDSA", "OKP")])
def test_tokens_of_each_algorithm_verify_with_pyjwt(gatehouse, up, alg, kty):
    g = start(gatehouse, up, issuer={"alg": alg})
    cid, secret = create_client(g, scopes="orders.read orders.write admin",
                                audiences=f"{AUD} https://billing.test")
    doc = jwks(g)
    assert [(k["kty"], k["alg"], k["use"]) for k in doc["keys"]] == [(kty, alg, "sig")]
    assert all("d" not in k and "p" not in k for k in doc["keys"]), "a private member published"
    t = token(g, cid, secret, "&scope=orders.read+orders.write")
    assert t["scope"] == SCOPES
    verify(t["access_token"], doc, g.url, cid)
    assert api(g, t["access_token"]).status == 200
    # Two audiences: an array; the JWT filter takes it for AUD.
    t = token(g, cid, secret, "&audience=https%3A%2F%2Fbilling.test&resource=https%3A%2F%2Forders.test")
    c = verify(t["access_token"], doc, g.url, cid, audience=AUD, scope="orders.read orders.write admin")
    assert sorted(c["aud"]) == sorted([AUD, "https://billing.test"])
    assert api(g, t["access_token"]).status == 200
    # Only billing: not for this route.
    t = token(g, cid, secret, "&audience=https%3A%2F%2Fbilling.test")
    with pytest.raises(pyjwt.InvalidAudienceError):
        verify(t["access_token"], doc, g.url, cid, scope="orders.read orders.write admin")
    expect_invalid(api(g, t["access_token"]), "audience")


# --------------------------------------------------------------------------
# Discovery

# What authlib's validators refuse that gatehouse does on purpose: it has no
# authorization endpoint, so no response type (RFC 8414 makes the member
# REQUIRED; gatehouse sends it empty, authlib wants one), and it issues no
# ID tokens (OpenID Discovery wants RS256 among their algorithms).
KNOWN_DEVIATIONS = {
    "oauth-authorization-server": {"response_types_supported"},
    "openid-configuration": {"response_types_supported", "id_token_signing_alg_values_supported"},
}


def validate_metadata(doc, cls, skip):
    m = cls(doc)
    for key in m.REGISTRY_KEYS:
        if key not in skip:
            getattr(m, "validate_" + key)()


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_discovery_documents_and_their_urls(gatehouse, up, insecure_ok, alg):
    g = start(gatehouse, up, issuer={"alg": alg})
    cid, secret = create_client(g)
    docs = {}
    for name, cls in (("oauth-authorization-server", AuthorizationServerMetadata),
                      ("openid-configuration", OpenIDProviderMetadata)):
        r = fetch(g.port, "GET", "/.well-known/" + name)
        assert r.status == 200 and r.header("content-type") == "application/json", r
        doc = json.loads(r.body)
        validate_metadata(doc, cls, KNOWN_DEVIATIONS[name])
        assert doc["issuer"] == g.url
        assert doc["grant_types_supported"] == ["client_credentials"]
        assert doc["access_token_signing_alg_values_supported"] == [alg]
        docs[name] = doc
        h = fetch(g.port, "HEAD", "/.well-known/" + name)
        assert h.status == 200 and h.body == b"", h
    meta = docs["oauth-authorization-server"]
    assert {k: v for k, v in docs["openid-configuration"].items()
            if k not in ("subject_types_supported", "id_token_signing_alg_values_supported")} == meta
    assert meta["token_endpoint"] == g.token_url and meta["jwks_uri"] == g.jwks_url
    assert meta["introspection_endpoint"] == g.introspect_url
    assert meta["revocation_endpoint"] == g.revoke_url
    # Each URL does what the document says, with a method it lists.
    for m in meta["token_endpoint_auth_methods_supported"]:
        assert m in ("client_secret_basic", "client_secret_post", "private_key_jwt")
    keys = requests.get(meta["jwks_uri"], timeout=10)
    assert keys.status_code == 200 and keys.headers["Cache-Control"] == "public, max-age=300"
    s = AuthlibSession(cid, secret, token_endpoint_auth_method="client_secret_post",
                       revocation_endpoint_auth_method="client_secret_post")
    at = s.fetch_token(meta["token_endpoint"], grant_type="client_credentials")["access_token"]
    verify(at, keys.json(), meta["issuer"], cid)
    assert s.introspect_token(meta["introspection_endpoint"], token=at).json()["active"] is True
    assert s.revoke_token(meta["revocation_endpoint"], token=at).status_code == 200
    assert s.introspect_token(meta["introspection_endpoint"], token=at).json() == {"active": False}
    # The GET endpoints take GET and HEAD only.
    for path in ("/oauth2/jwks", "/.well-known/openid-configuration"):
        r = post(g, path, GRANT, auth=(cid, secret))
        assert r.status == 405 and r.header("allow") == "GET, HEAD", r
    r = fetch(g.port, "GET", "/oauth2/nothing")
    assert r.status == 404, r


def test_a_jwt_provider_with_discovery_verifies_issued_tokens(gatehouse, up, tmp_path):
    g = start(gatehouse, up)
    cid, secret = create_client(g)
    # Another gatehouse, its own state, knowing the issuer by its URL only.
    g2 = start(gatehouse, up, state_dir=tmp_path / "other", routes=False,
               jwt={"issuer": g.url, "jwks": {"discovery": True, "insecure_http": True}})
    at = token(g, cid, secret)["access_token"]
    wait_for(lambda: api(g2, at).status != 503, 15, "the discovered keys are loaded")
    r = api(g2, at, "/discovered")
    assert r.status == 200, r
    assert up.complete_requests()[-1].path == "/discovered"
    # A token of another issuer's key (same claims) is refused there.
    forged = pyjwt.encode(dict(pyjwt.decode(at, options={"verify_signature": False})),
                          ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                          headers={"typ": "at+jwt",
                                   "kid": pyjwt.get_unverified_header(at)["kid"]})
    expect_invalid(api(g2, forged), "signature")


# --------------------------------------------------------------------------
# Rotation (docs/issuer-keys.md: the timeline)


def kid_of(tok):
    return pyjwt.get_unverified_header(tok)["kid"]


def kids(g):
    return {k["kid"] for k in jwks(g)["keys"]}


def key_times(g):
    r = cli("keys", "list", "--json", "-c", str(g.config_path))
    return {k["kid"]: k for k in json.loads(r.stdout)["keys"]}


def test_rotation_tokens_before_during_and_after_verify_everywhere(gatehouse, up):
    """Two gatehouses on one state directory; a rotation by the CLI with a
    short lead (the JWKS max-age is 1s here, so a 3s lead is allowed)."""
    iss = {"publish_lead": "3s", "jwks_max_age": "1s"}
    g = start(gatehouse, up, issuer=iss)
    g2 = start(gatehouse, up, issuer=dict(iss, issuer=g.url))
    cid, secret = create_client(g)
    r = fetch(g.port, "GET", "/oauth2/jwks")
    assert r.header("cache-control") == "public, max-age=1", r
    before = token(g, cid, secret)["access_token"]
    k1 = kid_of(before)
    assert kids(g) == kids(g2) == {k1}

    # No --lead: the CLI takes the config's publish_lead, as the server does.
    k2 = cli("keys", "rotate", "-c", str(g.config_path)).stdout.strip()
    times = key_times(g)
    assert times[k2]["sign_from"] - times[k2]["publish_at"] == 3, times[k2]
    # Published at once (each server notices within a second) ...
    wait_for(lambda: kids(g) == kids(g2) == {k1, k2}, 10, "both keys published at both")
    # ... and not signing yet: tokens issued now are the old key's.
    during = [token(gx, cid, secret) for gx in (g, g2)]
    during = [t["access_token"] for t in during]
    for t in during:
        claims = pyjwt.decode(t, options={"verify_signature": False})
        assert claims["iat"] < times[k2]["sign_from"], "the test was too slow to see the lead"
        assert kid_of(t) == k1, (kid_of(t), k1, k2)
    # After the lead the new key signs, at both.
    wait_for(lambda: kid_of(token(g, cid, secret)["access_token"]) == k2, 15, "the new key signs")
    wait_for(lambda: kid_of(token(g2, cid, secret)["access_token"]) == k2, 15, "the new key signs")
    after = token(g, cid, secret)["access_token"]
    assert kids(g) == {k1, k2}, "the old key stays published until its tokens expired"
    for t in [before, *during, after]:
        for gx in (g, g2):
            verify(t, jwks(gx), g.url, cid)
            assert api(gx, t).status == 200, (kid_of(t), gx.port)
    listed = key_times(g)
    assert listed[k1]["state"] == "retiring" and listed[k2]["state"] == "signing", listed
    assert listed[k1]["retire_at"] >= listed[k2]["sign_from"] + 3600, "the old key outlives its tokens"

    # An emergency rotation (--now) stops every older key's tokens at both
    # gatehouses (their verified-token caches held them) and the new key signs.
    k3 = cli("keys", "rotate", "-c", str(g.config_path), "--now").stdout.strip()
    wait_for(lambda: kids(g) == kids(g2) == {k3}, 10, "only the new key published")
    for t in [before, *during, after]:
        for gx in (g, g2):
            wait_for(lambda: api(gx, t).status == 401, 10, "old tokens refused")
            expect_invalid(api(gx, t))
    now = token(g, cid, secret)["access_token"]
    assert kid_of(now) == k3
    verify(now, jwks(g2), g.url, cid)
    assert api(g, now).status == 200 and api(g2, now).status == 200


# --------------------------------------------------------------------------
# One token service for the error cases and the attacks below (the throttle
# is out of the way: its own tests have their own servers).


class Svc:
    pass


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    d = tmp_path_factory.mktemp("issuer-svc")
    up = Upstream(name="svc-up")
    g = start_standalone(d, up, "gh", issuer={"failed_auth_limit": 100000}, workers=2)
    s = Svc()
    s.g, s.up, s.dir = g, up, d
    s.cid, s.secret = create_client(g)
    s.basic_cid, s.basic_secret = create_client(g, "--auth-methods", "client_secret_basic")
    s.other_cid, s.other_secret = create_client(g, name="other")
    s.gone_cid, s.gone_secret = create_client(g, name="gone")
    cli("client", "revoke", s.gone_cid, "-c", str(g.config_path))
    s.key = ec.generate_private_key(ec.SECP256R1())
    s.jwt_cid, _ = create_client(g, "--jwks", str(jwk_file(d, s.key.public_key(), "c1", "ES256")),
                                 name="keyed")
    # Keys and a secret: for HS256-with-the-secret.
    s.both_cid, s.both_secret = create_client(
        g, "--jwks", str(jwk_file(d, s.key.public_key(), "c2", "ES256")),
        "--auth-methods", "client_secret_basic private_key_jwt", name="both")
    yield s
    rc = g.stop(timeout=15)
    up.stop()
    assert rc == 0, g.stderr_tail(40)
    for secret in (s.secret, s.basic_secret, s.other_secret, s.gone_secret, s.both_secret):
        assert secret not in g.stderr, "a client secret in the log"


def still_serves(s):
    """A fresh, valid request still gets its own correct answer."""
    t = token(s.g, s.cid, s.secret)
    verify(t["access_token"], jwks(s.g), s.g.url, s.cid)


def tok(s, extra=""):
    return token(s.g, s.cid, s.secret, extra)["access_token"]


def b64(raw):
    return base64.b64encode(raw if isinstance(raw, bytes) else raw.encode("utf-8")).decode()


def raw_basic(raw):
    return [("Authorization", "Basic " + b64(raw))]


# (id, request(s) -> Response, status, error, words in error_description)
ERRORS = [
    # invalid_client (401, with a Basic challenge)
    ("unknown-id-basic", lambda s: post(s.g, "/oauth2/token", GRANT, auth=("ghc_aaaaaaaaaaaaaaaa", s.secret)),
     401, "invalid_client", "authentication failed"),
    ("unknown-id-post", lambda s: post(s.g, "/oauth2/token", [("grant_type", "client_credentials"),
                                                               ("client_id", "ghc_aaaaaaaaaaaaaaaa"),
                                                               ("client_secret", s.secret)]),
     401, "invalid_client", "authentication failed"),
    ("wrong-secret-basic", lambda s: post(s.g, "/oauth2/token", GRANT, auth=(s.cid, s.other_secret)),
     401, "invalid_client", "authentication failed"),
    ("wrong-secret-post", lambda s: post(s.g, "/oauth2/token", [("grant_type", "client_credentials"),
                                                                 ("client_id", s.cid),
                                                                 ("client_secret", s.secret[:-1])]),
     401, "invalid_client", "authentication failed"),
    ("secret-of-a-keys-only-client", lambda s: post(s.g, "/oauth2/token", GRANT, auth=(s.jwt_cid, s.secret)),
     401, "invalid_client", "authentication failed"),
    ("revoked-client", lambda s: post(s.g, "/oauth2/token", GRANT, auth=(s.gone_cid, s.gone_secret)),
     401, "invalid_client", "revoked"),
    ("method-not-allowed", lambda s: post(s.g, "/oauth2/token", [("grant_type", "client_credentials"),
                                                                  ("client_id", s.basic_cid),
                                                                  ("client_secret", s.basic_secret)]),
     401, "invalid_client", "may not use client_secret_post"),
    ("no-authentication", lambda s: post(s.g, "/oauth2/token", GRANT + "&client_id=" + s.cid),
     401, "invalid_client", "required"),
    ("bearer-scheme", lambda s: post(s.g, "/oauth2/token", GRANT, headers=[("Authorization", "Bearer x")]),
     401, "invalid_client", "Basic"),
    ("basic-not-base64", lambda s: post(s.g, "/oauth2/token", GRANT, headers=[("Authorization", "Basic a*b=")]),
     401, "invalid_client", "malformed"),
    ("basic-no-colon", lambda s: post(s.g, "/oauth2/token", GRANT, headers=raw_basic(s.cid)),
     401, "invalid_client", "malformed"),
    ("basic-empty-secret", lambda s: post(s.g, "/oauth2/token", GRANT, headers=raw_basic(s.cid + ":")),
     401, "invalid_client", "empty"),
    # client ids with odd bytes
    ("id-nul-basic", lambda s: post(s.g, "/oauth2/token", GRANT, headers=raw_basic(s.cid + "\0x:" + s.secret)),
     401, "invalid_client", "malformed"),
    ("id-pct00-basic", lambda s: post(s.g, "/oauth2/token", GRANT, headers=raw_basic(s.cid + "%00:" + s.secret)),
     401, "invalid_client", "malformed"),
    ("id-crlf-basic", lambda s: post(s.g, "/oauth2/token", GRANT,
                                     headers=raw_basic(s.cid + "\r\nX-Injected: 1:" + s.secret)),
     401, "invalid_client", "malformed"),
    ("id-unicode-basic", lambda s: post(s.g, "/oauth2/token", GRANT, auth=(s.cid + "\u00e9", s.secret)),
     401, "invalid_client", "malformed client_id"),
    ("id-10k-basic", lambda s: post(s.g, "/oauth2/token", GRANT, auth=("g" * 10240, s.secret)),
     401, "invalid_client", "too long"),
    ("id-nul-post", lambda s: post(s.g, "/oauth2/token", GRANT + f"&client_id={s.cid}%00&client_secret={s.secret}"),
     400, "invalid_request", "control character"),
    ("id-crlf-post", lambda s: post(s.g, "/oauth2/token", GRANT + f"&client_id={s.cid}%0D%0A&client_secret={s.secret}"),
     400, "invalid_request", "control character"),
    ("id-unicode-post", lambda s: post(s.g, "/oauth2/token", [("grant_type", "client_credentials"),
                                                               ("client_id", "ghc_\u0430aaaaaaaaaaaaaaa"),
                                                               ("client_secret", s.secret)]),
     401, "invalid_client", "malformed client_id"),
    ("id-10k-post", lambda s: post(s.g, "/oauth2/token", [("grant_type", "client_credentials"),
                                                           ("client_id", "g" * 10240),
                                                           ("client_secret", s.secret)]),
     401, "invalid_client", "malformed client_id"),
    ("id-with-colon-post", lambda s: post(s.g, "/oauth2/token", [("grant_type", "client_credentials"),
                                                                  ("client_id", s.cid + ":x"),
                                                                  ("client_secret", s.secret)]),
     401, "invalid_client", "malformed client_id"),
    ("id-other-case", lambda s: post(s.g, "/oauth2/token", GRANT, auth=(s.cid.upper(), s.secret)),
     401, "invalid_client", "authentication failed"),
    # invalid_request (400)
    ("no-grant-type", lambda s: post(s.g, "/oauth2/token", "scope=orders.read", auth=(s.cid, s.secret)),
     400, "invalid_request", "grant_type is missing"),
    ("empty-grant-type", lambda s: post(s.g, "/oauth2/token", "grant_type=", auth=(s.cid, s.secret)),
     400, "invalid_request", "grant_type is missing"),
    ("request-error-before-client", lambda s: post(s.g, "/oauth2/token", "scope=x",
                                                   auth=("ghc_aaaaaaaaaaaaaaaa", "nope")),
     400, "invalid_request", "grant_type is missing"),
    ("grant-type-twice", lambda s: post(s.g, "/oauth2/token", GRANT + "&" + GRANT, auth=(s.cid, s.secret)),
     400, "invalid_request", "grant_type is repeated"),
    ("scope-twice", lambda s: post(s.g, "/oauth2/token", GRANT + "&scope=orders.read&scope=orders.read",
                                   auth=(s.cid, s.secret)),
     400, "invalid_request", "scope is repeated"),
    ("client-id-twice", lambda s: post(s.g, "/oauth2/token", GRANT + f"&client_id={s.cid}&client_id={s.cid}"
                                       f"&client_secret={s.secret}"),
     400, "invalid_request", "client_id is repeated"),
    ("basic-and-post", lambda s: post(s.g, "/oauth2/token", GRANT + f"&client_id={s.cid}&client_secret={s.secret}",
                                      auth=(s.cid, s.secret)),
     400, "invalid_request", "more than one"),
    ("basic-and-assertion", lambda s: post(s.g, "/oauth2/token", GRANT + "&client_assertion_type=" +
                                           quote(ASSERTION_TYPE, safe="") + "&client_assertion=a.b.c",
                                           auth=(s.cid, s.secret)),
     400, "invalid_request", "more than one"),
    ("client-id-not-basic", lambda s: post(s.g, "/oauth2/token", GRANT + "&client_id=" + s.other_cid,
                                           auth=(s.cid, s.secret)),
     400, "invalid_request", "does not match"),
    ("secret-without-id", lambda s: post(s.g, "/oauth2/token", GRANT + "&client_secret=" + s.secret),
     400, "invalid_request", "without client_id"),
    ("assertion-without-type", lambda s: post(s.g, "/oauth2/token", GRANT + "&client_assertion=a.b.c"),
     400, "invalid_request", "go together"),
    ("no-content-type", lambda s: post(s.g, "/oauth2/token", GRANT, ctype=None, auth=(s.cid, s.secret)),
     400, "invalid_request", "Content-Type is missing"),
    ("json", lambda s: post(s.g, "/oauth2/token", '{"grant_type":"client_credentials"}',
                            ctype="application/json", auth=(s.cid, s.secret)),
     400, "invalid_request", "x-www-form-urlencoded"),
    ("two-content-types", lambda s: post(s.g, "/oauth2/token", GRANT, auth=(s.cid, s.secret),
                                         headers=[("Content-Type", FORM)]),
     400, "invalid_request", "Content-Type is repeated"),
    ("bad-percent", lambda s: post(s.g, "/oauth2/token", GRANT + "&scope=%zz", auth=(s.cid, s.secret)),
     400, "invalid_request", "percent"),
    ("get", lambda s: fetch(s.g.port, "GET", "/oauth2/token?grant_type=client_credentials",
                            headers=[basic(s.cid, s.secret)]),
     405, "invalid_request", "POST"),
    ("put", lambda s: post(s.g, "/oauth2/token", GRANT) if False else
     fetch(s.g.port, "PUT", "/oauth2/token", headers=[("Content-Type", FORM), basic(s.cid, s.secret)],
           body=GRANT),
     405, "invalid_request", "POST"),
    ("introspect-get", lambda s: fetch(s.g.port, "GET", "/oauth2/introspect"), 405, "invalid_request", "POST"),
    ("introspect-no-token", lambda s: post(s.g, "/oauth2/introspect", "token_type_hint=access_token",
                                           auth=(s.cid, s.secret)),
     400, "invalid_request", "token is missing"),
    ("revoke-token-twice", lambda s: post(s.g, "/oauth2/revoke", "token=a&token=b", auth=(s.cid, s.secret)),
     400, "invalid_request", "token is repeated"),
    # invalid_scope
    ("scope-not-granted", lambda s: post(s.g, "/oauth2/token", GRANT + "&scope=orders.read+admin",
                                         auth=(s.cid, s.secret)),
     400, "invalid_scope", None),
    ("scope-other-case", lambda s: post(s.g, "/oauth2/token", GRANT + "&scope=Orders.Read",
                                        auth=(s.cid, s.secret)),
     400, "invalid_scope", None),
    ("scope-two-spaces", lambda s: post(s.g, "/oauth2/token", GRANT + "&scope=orders.read++orders.write",
                                        auth=(s.cid, s.secret)),
     400, "invalid_scope", "malformed"),
    ("scope-quote", lambda s: post(s.g, "/oauth2/token", GRANT + "&scope=%22orders.read%22",
                                   auth=(s.cid, s.secret)),
     400, "invalid_scope", "malformed"),
    # unauthorized_client: RFC 7009 section 2.1, another client's token
    ("revoke-others-token", lambda s: post(s.g, "/oauth2/revoke", "token=" + tok(s),
                                           auth=(s.other_cid, s.other_secret)),
     400, "unauthorized_client", "not issued to this client"),
    ("revoke-unknown-hint", lambda s: post(s.g, "/oauth2/revoke", "token_type_hint=id_token&token=" + tok(s),
                                           auth=(s.cid, s.secret)),
     400, "unsupported_token_type", None),
    # unsupported_grant_type
    ("password", lambda s: post(s.g, "/oauth2/token", "grant_type=password&username=u&password=p",
                                auth=(s.cid, s.secret)),
     400, "unsupported_grant_type", None),
    ("authorization-code", lambda s: post(s.g, "/oauth2/token", "grant_type=authorization_code&code=c"
                                          "&redirect_uri=https%3A%2F%2Fa.test%2Fcb", auth=(s.cid, s.secret)),
     400, "unsupported_grant_type", None),
    ("refresh-token", lambda s: post(s.g, "/oauth2/token", "grant_type=refresh_token&refresh_token=r",
                                     auth=(s.cid, s.secret)),
     400, "unsupported_grant_type", None),
    ("grant-other-case", lambda s: post(s.g, "/oauth2/token", "grant_type=Client_Credentials",
                                        auth=(s.cid, s.secret)),
     400, "unsupported_grant_type", None),
    ("jwt-bearer-grant", lambda s: post(s.g, "/oauth2/token", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3A"
                                        "grant-type%3Ajwt-bearer&assertion=a.b.c", auth=(s.cid, s.secret)),
     400, "unsupported_grant_type", None),
    # invalid_target (RFC 8707)
    ("unknown-audience", lambda s: post(s.g, "/oauth2/token", GRANT + "&audience=https%3A%2F%2Fother.test",
                                        auth=(s.cid, s.secret)),
     400, "invalid_target", None),
    ("unknown-resource", lambda s: post(s.g, "/oauth2/token", GRANT + "&resource=https%3A%2F%2Forders.test%2F",
                                        auth=(s.cid, s.secret)),
     400, "invalid_target", None),
    ("resource-not-a-uri", lambda s: post(s.g, "/oauth2/token", GRANT + "&resource=orders",
                                          auth=(s.cid, s.secret)),
     400, "invalid_target", "absolute URI"),
    ("resource-fragment", lambda s: post(s.g, "/oauth2/token", GRANT + "&resource=https%3A%2F%2Forders.test%23x",
                                         auth=(s.cid, s.secret)),
     400, "invalid_target", "absolute URI"),
    ("one-known-one-unknown", lambda s: post(s.g, "/oauth2/token", GRANT + "&audience=https%3A%2F%2Forders.test"
                                             "&audience=https%3A%2F%2Fother.test", auth=(s.cid, s.secret)),
     400, "invalid_target", None),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_rfc6749_error_answers(svc, case):
    _, send, status, code, says = case
    expect_error(send(svc), status, code, says)
    still_serves(svc)


def test_two_authorization_fields_never_reach_the_endpoint(svc):
    """The HTTP layer refuses them for every route (400, and the connection
    closed) before the token service could answer invalid_client."""
    r = post(svc.g, "/oauth2/token", GRANT, auth=(svc.cid, svc.secret),
             headers=[basic(svc.cid, svc.secret)])
    assert_refusal(r, 400, "bad_request")
    assert r.header("connection") == "close"
    still_serves(svc)


def test_oauthlib_reads_the_errors_as_their_codes(svc, insecure_ok):
    """The same answers as a client library reads them: its error class."""
    def fetch_with(scope=None, secret=svc.secret):
        s = OAuth2Session(client=BackendApplicationClient(client_id=svc.cid, scope=scope))
        return s.fetch_token(svc.g.token_url, client_id=svc.cid, client_secret=secret)

    with pytest.raises(oauth_errors.InvalidClientError):
        fetch_with(secret=svc.other_secret)
    with pytest.raises(oauth_errors.InvalidScopeError):
        fetch_with(scope=["admin"])
    assert fetch_with(scope=["orders.write"])["scope"] == ["orders.write"]


# --------------------------------------------------------------------------
# Attacks: repeated parameters, content types, sizes, splits


def spellings(name):
    """The name %-encoded in several ways (the same name once decoded), and
    near misses that decode to another name."""
    same = {name, f"%{ord(name[0]):02x}{name[1:]}", "".join(f"%{ord(c):02X}" for c in name),
            name.replace("_", "%5f"), f"{name[:-1]}%{ord(name[-1]):02X}"}
    other = {name + "+", name.upper(), name + "%00", "+" + name, name.replace("_", "-"),
             name + "%20", name[:-1]}
    return sorted(same) + sorted(other)


REPEATABLE = [
    # (endpoint, name, value, the rest of a request that works, auth)
    ("token", "grant_type", "client_credentials", "scope=orders.read", "basic"),
    ("token", "scope", "orders.read", GRANT, "basic"),
    ("token", "client_id", "CID", GRANT, "basic"),
    ("token", "client_secret", "SECRET", GRANT + "&client_id=CID", None),
    ("token", "audience", AUD, GRANT, "basic"),
    ("token", "resource", AUD, GRANT, "basic"),
    ("introspect", "token", "TOKEN", "", "basic"),
    ("introspect", "token_type_hint", "access_token", "token=TOKEN", "basic"),
    ("revoke", "token_type_hint", "access_token", "token=TOKEN", "basic"),
]


@pytest.mark.parametrize("case", REPEATABLE, ids=[f"{c[0]}-{c[1]}" for c in REPEATABLE])
def test_repeated_parameters_in_every_spelling(svc, case):
    """Python's form parser is the oracle: when it reads a parameter the
    endpoint reads twice, the answer is invalid_request (RFC 6749 section
    3.2), unless the parameter is a list (audience, resource: RFC 8707)."""
    ep, name, value, rest, auth = case
    t = tok(svc)
    subst = {"CID": svc.cid, "SECRET": svc.secret, "TOKEN": t}
    for k, v in subst.items():
        value, rest = value.replace(k, v), rest.replace(k, v)
    for sp in spellings(name):
        body = "&".join(x for x in (rest, f"{name}={quote(value, safe='')}",
                                    f"{sp}={quote(value, safe='')}") if x)
        pairs = parse_qs(body)
        r = post(svc.g, "/oauth2/" + ep, body, auth=(svc.cid, svc.secret) if auth else None)
        if len(pairs.get(name, [])) > 1 and name not in ("audience", "resource"):
            expect_error(r, 400, "invalid_request", f"{name} is repeated")
        else:
            assert r.status == 200, (sp, body, r)
    still_serves(svc)


@pytest.mark.parametrize("ctype,body,ok", [
    ("application/x-www-form-urlencoded; charset=utf-8", None, True),
    ("Application/X-WWW-Form-URLEncoded;Charset=\"UTF-8\"", None, True),
    ("application/x-www-form-urlencoded ; charset=UTF-8 ;", None, True),
    ("application/x-www-form-urlencoded; charset=latin1", None, False),
    ("application/x-www-form-urlencoded; charset=ISO-8859-1", None, False),
    ("application/x-www-form-urlencoded; charset=utf-8; charset=utf-8", None, False),
    ("application/x-www-form-urlencoded; charset=\"utf-8", None, False),
    ("application/x-www-form-urlencoded, application/json", None, False),
    ("application/x-www-form-urlencodedx", None, False),
    ("application/x-www-form-urlencoded\tx", None, False),
    ("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"grant_type\""
     "\r\n\r\nclient_credentials\r\n--b--\r\n", False),
    ("application/json", '{"grant_type": "client_credentials"}', False),
    ("text/plain", None, False),
    ("", None, False),
])
def test_content_types(svc, ctype, body, ok):
    r = post(svc.g, "/oauth2/token", body or GRANT, ctype=ctype, auth=(svc.cid, svc.secret))
    if ok:
        expect_token_reply(r)
    else:
        expect_error(r, 400, "invalid_request")
    still_serves(svc)


def padded(size, s):
    """A valid token request body of exactly size bytes (an ignored pad)."""
    body = GRANT + "&scope=orders.read"
    i = 0
    while len(body) < size:
        pad = f"&pad{i}="
        body += pad + "x" * min(16000, size - len(body) - len(pad))
        i += 1
    assert len(body) == size
    return body


def test_bodies_up_to_32k_are_read_and_over_it_refused(svc):
    hs = [("Content-Type", FORM), basic(svc.cid, svc.secret)]
    r = fetch(svc.g.port, "POST", "/oauth2/token", headers=hs, body=padded(32768, svc))
    assert expect_token_reply(r)["scope"] == "orders.read"
    r = fetch(svc.g.port, "POST", "/oauth2/token", headers=hs, body=padded(32769, svc))
    expect_error(r, 413, "invalid_request", "too large")
    # Chunked: the same bound, but the body's size is known only once it
    # passed the bound, and the refusal is the stream's own (gatehouse's
    # generic 413, docs/http.md), not the token service's.
    for size, ok in ((32768, True), (32769, False)):
        body = padded(size, svc).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                          for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
        r = fetch(svc.g.port, "POST", "/oauth2/token",
                  headers=hs + [("Transfer-Encoding", "chunked")], body=chunks)
        if ok:
            expect_token_reply(r)
        else:
            assert_refusal(r, 413, "payload_too_large")
            assert r.header("connection") == "close"
    still_serves(svc)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_over_large_body_is_never_read_as_a_request(svc, framing):
    """A 413 on a connection whose body was not read: the body (which here
    holds whole requests) must not be taken for the next request: the
    connection closes, with no answer to what the body holds."""
    smuggled = (b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\n\r\n" * 700)[:33000]
    hs = [("Content-Type", FORM), basic(svc.cid, svc.secret)]
    if framing == "chunked":
        hs.append(("Transfer-Encoding", "chunked"))
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    else:
        body = smuggled
    with RawConn(svc.g.port) as c:
        c.request("POST", "/oauth2/token", hs, body)
        r = c.read_response("POST")
        if framing == "chunked":
            assert_refusal(r, 413, "payload_too_large")
        else:
            expect_error(r, 413, "invalid_request")
        assert r.header("connection") == "close", r
        # Closed: the body, never read, cannot be taken for requests.
        assert c.is_closed(), "the connection stays open after an unread body"
        assert not c.buf
    still_serves(svc)


@pytest.mark.parametrize("length", [32769, 1 << 20, 1 << 40])
def test_a_declared_body_over_32k_is_refused_without_waiting_for_it(svc, length):
    """Only the head and a few bytes are sent: the answer must not wait for
    the rest. Past the route's own bound (1 GiB) the stream refuses before
    any filter, with gatehouse's generic 413."""
    with RawConn(svc.g.port) as c:
        c.send(RawConn.build("POST", "/oauth2/token",
                             [("Content-Type", FORM), basic(svc.cid, svc.secret),
                              ("Content-Length", str(length))]) + GRANT.encode())
        r = c.read_response("POST")
        if length > 1 << 30:
            assert_refusal(r, 413, "payload_too_large")
        else:
            expect_error(r, 413, "invalid_request", "too large")
        assert c.is_closed(), "the unread body would be read as requests"
    still_serves(svc)


@pytest.mark.parametrize("size", [0, 2000, 30000])
def test_requests_split_across_reads(svc, size):
    """One connection, the same request sent in two pieces cut at a handful
    of places (in the request line, at the end of the head, across a %XX,
    in the body), then a byte at a time, then two pipelined: each answered
    alone and alike."""
    body = GRANT + "&scope=orders.read&audience=" + quote(AUD, safe="")
    if size:
        body += "&pad=" + "x%41" * (size // 4)
    req = RawConn.build("POST", "/oauth2/token", [("Content-Type", FORM), basic(svc.cid, svc.secret)],
                        body=body)
    he = req.index(b"\r\n\r\n") + 4
    pct = req.index(b"%3A", he)
    cuts = sorted({1, 5, he // 2, he - 3, he - 2, he - 1, he, he + 1, pct + 1, pct + 2,
                   (he + len(req)) // 2, len(req) - 1})

    def check(r):
        doc = expect_token_reply(r)
        c = verify(doc["access_token"], keys, svc.g.url, svc.cid, scope="orders.read")
        assert c["aud"] == AUD

    keys = jwks(svc.g)
    with RawConn(svc.g.port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for k in cuts:
            c.send(req[:k])
            time.sleep(0.01)
            c.send(req[k:])
            check(c.read_response("POST"))
        if size <= 2000:
            for i in range(len(req)):
                c.send(req[i:i + 1])
            check(c.read_response("POST"))
        c.send(req + req)
        check(c.read_response("POST"))
        check(c.read_response("POST"))
    still_serves(svc)


# --------------------------------------------------------------------------
# Attacks: client assertions (private_key_jwt, RFC 7523)


def assertion(s, key=None, alg="ES256", cid=None, headers=None, **over):
    """A client assertion signed by PyJWT (claims overridden by keyword,
    None to leave one out)."""
    cid = cid or s.jwt_cid
    now = int(time.time())
    c = {"iss": cid, "sub": cid, "aud": s.g.token_url, "iat": now, "exp": now + 60,
         "jti": uuid.uuid4().hex}
    c.update(over)
    c = {k: v for k, v in c.items() if v is not None}
    return pyjwt.encode(c, key if key is not None else s.key, algorithm=alg,
                        headers=headers if headers is not None else {"kid": "c1"})


def with_assertion(s, a, path="/oauth2/token", extra=GRANT):
    return post(s.g, path, f"{extra}&client_assertion_type={quote(ASSERTION_TYPE, safe='')}"
                f"&client_assertion={a}")


def test_a_client_assertion_is_good_once(svc):
    a = assertion(svc)
    expect_token_reply(with_assertion(svc, a))
    # The same assertion again, on new connections (either worker), at any
    # endpoint: refused for its whole lifetime.
    for path, extra in (("/oauth2/token", GRANT), ("/oauth2/token", GRANT),
                        ("/oauth2/introspect", "token=x")):
        expect_error(with_assertion(svc, a, path, extra), 401, "invalid_client", "jti was used before")
    # Its jti in a new assertion (another signature): still refused.
    jti = pyjwt.decode(a, options={"verify_signature": False})["jti"]
    expect_error(with_assertion(svc, assertion(svc, jti=jti, exp=int(time.time()) + 90)), 401,
                 "invalid_client", "jti was used before")
    # A refused assertion does not use its jti up.
    jti = uuid.uuid4().hex
    expect_error(with_assertion(svc, assertion(svc, jti=jti, aud="https://other.test/token")), 401,
                 "invalid_client")
    expect_token_reply(with_assertion(svc, assertion(svc, jti=jti)))
    # The issuer identifier is an audience too (RFC 7523 section 3).
    expect_token_reply(with_assertion(svc, assertion(svc, aud=svc.g.url)))


def now_s():
    return int(time.time())


BAD_ASSERTIONS = [
    ("aud-of-another-server", lambda s: assertion(s, aud="https://login.other.test/oauth2/token"), "aud"),
    ("aud-the-introspection-url", lambda s: assertion(s, aud=s.g.introspect_url), "aud"),
    ("no-aud", lambda s: assertion(s, aud=None), "aud"),
    ("expired", lambda s: assertion(s, iat=now_s() - 600, exp=now_s() - 300), "expired"),
    ("no-exp", lambda s: assertion(s, exp=None), None),
    ("exp-too-far", lambda s: assertion(s, exp=now_s() + 3 * 3600), "too far ahead"),
    ("not-yet-valid", lambda s: assertion(s, nbf=now_s() + 600, exp=now_s() + 700), None),
    ("issued-in-the-future", lambda s: assertion(s, iat=now_s() + 600, exp=now_s() + 700), None),
    ("no-jti", lambda s: assertion(s, jti=None), "jti"),
    ("empty-jti", lambda s: assertion(s, jti=""), "jti"),
    ("number-jti", lambda s: assertion(s, jti=12345), "jti"),
    ("long-jti", lambda s: assertion(s, jti="j" * 300), "jti"),
    ("iss-not-sub", lambda s: assertion(s, sub=s.cid), "iss and sub"),
    ("iss-another-client", lambda s: assertion(s, iss=s.cid, sub=s.cid), None),
    ("hs256-with-the-secret", lambda s: assertion(s, key=s.both_secret, alg="HS256", cid=s.both_cid),
     "symmetric"),
    ("another-key-same-kid", lambda s: assertion(s, key=ec.generate_private_key(ec.SECP256R1())),
     "signature"),
    ("alg-none", lambda s: pyjwt.encode({"iss": s.jwt_cid, "sub": s.jwt_cid, "aud": s.g.token_url,
                                         "exp": now_s() + 60, "jti": uuid.uuid4().hex}, None,
                                        algorithm="none"), None),
    ("not-a-jwt", lambda s: "not.a.jwt", None),
    ("unknown-client", lambda s: assertion(s, cid="ghc_aaaaaaaaaaaaaaaa"), "authentication failed"),
    ("odd-client-id", lambda s: assertion(s, cid="ghc_\u00e9\u0000x"), None),
]


@pytest.mark.parametrize("case", BAD_ASSERTIONS, ids=[c[0] for c in BAD_ASSERTIONS])
def test_bad_client_assertions_are_invalid_client(svc, case):
    _, make, says = case
    expect_error(with_assertion(svc, make(svc)), 401, "invalid_client", says)
    still_serves(svc)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_each_advertised_assertion_algorithm_works(gatehouse, up, tmp_path, alg):
    """token_endpoint_auth_signing_alg_values_supported says what works."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    g = start(gatehouse, up)
    meta = json.loads(fetch(g.port, "GET", "/.well-known/oauth-authorization-server").body)
    assert alg in meta["token_endpoint_auth_signing_alg_values_supported"]
    key = {"ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
           "EdDSA": ed25519.Ed25519PrivateKey.generate}.get(
        alg, lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))()
    cid, _ = create_client(g, "--jwks", str(jwk_file(tmp_path, key.public_key(), "k", alg)))
    s = Svc()
    s.g, s.key, s.jwt_cid = g, key, cid
    a = assertion(s, alg=alg, headers={"kid": "k"})
    t = expect_token_reply(with_assertion(s, a))
    verify(t["access_token"], jwks(g), g.url, cid)
    expect_error(with_assertion(s, a), 401, "invalid_client", "jti was used before")


# --------------------------------------------------------------------------
# Attacks: the failed-authentication throttle, on a frozen wall clock


@pytest.fixture
def frozen(monkeypatch, tmp_path):
    """set(text): gatehouse's wall clock (and the CLI's) stands at text
    ("YYYY-MM-DD hh:mm:ss", UTC) from its next call on; the monotonic clock
    runs (as in test_ratelimit.py)."""
    if not FAKETIME_LIB.exists():
        pytest.fail(f"{FAKETIME_LIB} missing: run scripts/deps test (package faketime)")
    stamp = tmp_path / "faketime"

    def set_time(text):
        stamp.write_text(text + "\n")

    set_time("2026-12-06 00:00:10")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("LD_PRELOAD", str(FAKETIME_LIB))
    monkeypatch.setenv("FAKETIME_TIMESTAMP_FILE", str(stamp))
    monkeypatch.setenv("FAKETIME_NO_CACHE", "1")
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    return set_time


def unknown_id(i):
    return "ghc_" + "abcdefghijklmnopqrstuvwxyz234567"[i % 32] * 16


def expect_throttled(r, retry_after):
    expect_error(r, 429, "temporarily_unavailable", "too many failed")
    assert r.header("retry-after") == str(retry_after), r


def test_throttle_per_address(gatehouse, up, frozen):
    """An address that failed ten times the limit (it may speak for many
    clients) is refused, right credentials or not, until the minute ends."""
    g = start(gatehouse, up, issuer={"failed_auth_limit": 3}, workers=2)
    cid, secret = create_client(g)
    a = "127.0.0.2"
    # 30 failures from one address, each with another client id (so that no
    # pair reaches the limit), at different endpoints.
    for i in range(29):
        expect_error(post(g, "/oauth2/token", GRANT, auth=(unknown_id(i), "x"), source=a), 401,
                     "invalid_client")
    token(g, cid, secret, source=a)  # 29: under the address's limit of 30
    expect_error(post(g, "/oauth2/token", GRANT, headers=[("Authorization", "Basic !!")],
                      source=a), 401, "invalid_client")
    # The address is refused now, even with good credentials, until the
    # minute ends (the clock stands at :10, so 50 s).
    expect_throttled(post(g, "/oauth2/token", GRANT, auth=(cid, secret), source=a), 50)
    expect_throttled(post(g, "/oauth2/revoke", "token=x", auth=(cid, secret), source=a), 50)
    # Another address is not, nor is the client.
    token(g, cid, secret, source="127.0.0.3")
    frozen("2026-12-06 00:00:59")
    expect_throttled(post(g, "/oauth2/token", GRANT, auth=(cid, secret), source=a), 1)
    frozen("2026-12-06 00:01:00")
    token(g, cid, secret, source=a)


def test_throttle_per_client_and_address(gatehouse, up, frozen):
    """A client id guessed at from one address is refused there at the
    limit; the same client from another address is not (a client id is
    public: a limit on the id alone would let anyone lock it out)."""
    g = start(gatehouse, up, issuer={"failed_auth_limit": 3}, workers=2)
    cid, secret = create_client(g)
    other, other_secret = create_client(g, name="other")
    a = "127.0.0.2"
    for i in range(3):
        r = post(g, "/oauth2/token", [("grant_type", "client_credentials"), ("client_id", cid),
                                      ("client_secret", f"wrong-{i}")], source=a)
        expect_error(r, 401, "invalid_client")
    # The pair is refused, by either method; another client from that
    # address is not, nor this client from another address.
    expect_throttled(post(g, "/oauth2/token", GRANT, auth=(cid, secret), source=a), 50)
    expect_throttled(post(g, "/oauth2/token", GRANT + f"&client_id={cid}&client_secret={secret}",
                          source=a), 50)
    token(g, other, other_secret, source=a)
    token(g, cid, secret, source="127.0.0.5")
    # Failures spread over addresses lock no one out.
    for i, b in enumerate(("127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9")):
        expect_error(post(g, "/oauth2/token", GRANT, auth=(other, f"bad-{i}"), source=b), 401,
                     "invalid_client")
    token(g, other, other_secret, source="127.0.0.10")
    frozen("2026-12-06 00:01:00")
    token(g, cid, secret, source=a)
    assert secret not in g.stderr


def test_throttle_counts_failed_authentications_only(gatehouse, up, frozen):
    g = start(gatehouse, up, issuer={"failed_auth_limit": 3})
    cid, secret = create_client(g)
    a = "127.0.0.2"
    for _ in range(10):  # successes are not counted
        token(g, cid, secret, source=a)
    for _ in range(5):  # nor malformed requests, nor other refusals
        expect_error(post(g, "/oauth2/token", "scope=x", auth=(cid, secret), source=a), 400,
                     "invalid_request")
        expect_error(post(g, "/oauth2/token", GRANT + "&scope=admin", auth=(cid, secret), source=a),
                     400, "invalid_scope")
    for i in range(2):
        expect_error(post(g, "/oauth2/token", GRANT, auth=(cid, f"wrong-{i}"), source=a), 401,
                     "invalid_client")
    token(g, cid, secret, source=a)  # two failures: under the limit
    expect_error(post(g, "/oauth2/token", GRANT, auth=(cid, "wrong-2"), source=a), 401,
                 "invalid_client")
    expect_throttled(post(g, "/oauth2/token", GRANT, auth=(cid, secret), source=a), 50)


# --------------------------------------------------------------------------
# Clients, revocation and introspection across the store


def test_a_rotated_secret_keeps_working_for_its_grace_only(svc):
    g = svc.g
    cid, old = create_client(g, name="rotating")
    new = cli("client", "rotate-secret", cid, "--grace", "1h", "-c", str(g.config_path)).stdout
    new = dict(line.split("=", 1) for line in new.splitlines())["client_secret"]
    token(g, cid, old)  # within the grace, both
    token(g, cid, new)
    newer = cli("client", "rotate-secret", cid, "--grace", "0", "-c", str(g.config_path)).stdout
    newer = dict(line.split("=", 1) for line in newer.splitlines())["client_secret"]
    for gone in (old, new):
        expect_error(post(g, "/oauth2/token", GRANT, auth=(cid, gone)), 401, "invalid_client",
                     "authentication failed")
    token(g, cid, newer)


def test_introspection_is_for_the_tokens_own_client(svc):
    t = tok(svc)
    r = post(svc.g, "/oauth2/introspect", "token=" + t, auth=(svc.other_cid, svc.other_secret))
    assert r.status == 200 and json.loads(r.body) == {"active": False}, r
    assert r.header("cache-control") == "no-store"
    r = post(svc.g, "/oauth2/introspect", "token_type_hint=refresh_token&token=" + t,
             auth=(svc.cid, svc.secret))
    assert json.loads(r.body)["active"] is True, r
    for junk in ("x", t[:-4] + "AAAA", t.replace(".", "..", 1), "e30.e30.", "%00"):
        r = post(svc.g, "/oauth2/introspect", "token=" + quote(junk, safe="%"), auth=(svc.cid, svc.secret))
        if junk == "%00":
            expect_error(r, 400, "invalid_request", "control character")
        else:
            assert r.status == 200 and json.loads(r.body) == {"active": False}, (junk, r)
        # Revoking what is not a token of ours is fine (RFC 7009 section 2.2).
        r = post(svc.g, "/oauth2/revoke", "token=" + quote(junk, safe="%"), auth=(svc.cid, svc.secret))
        assert r.status == (400 if junk == "%00" else 200), (junk, r)


def test_a_gatehouse_started_after_a_revocation_knows_it(gatehouse, up, insecure_ok):
    g = start(gatehouse, up)
    cid, secret = create_client(g)
    t = token(g, cid, secret)["access_token"]
    r = post(g, "/oauth2/revoke", "token=" + t, auth=(cid, secret))
    assert r.status == 200 and r.body == b"" and r.header("cache-control") == "no-store", r
    g3 = start(gatehouse, up, routes=False, issuer={"issuer": g.url})
    wait_for(lambda: revoked_at(g3, t), 15, "a new gatehouse refuses the revoked token")
    assert api(g3, token(g, cid, secret)["access_token"]).status == 200


def test_credentials_in_the_query_are_not_read(svc):
    """RFC 6749 section 2.3.1: never in the request URI. The body is what
    counts; parameters in the query change nothing."""
    q = f"?grant_type=client_credentials&client_id={svc.cid}&client_secret={svc.secret}"
    expect_error(post(svc.g, "/oauth2/token" + q, ""), 400, "invalid_request", "grant_type is missing")
    expect_error(post(svc.g, "/oauth2/token" + q, GRANT), 401, "invalid_client", "required")
    t = token(svc.g, svc.cid, svc.secret, "&scope=orders.read")
    r = post(svc.g, "/oauth2/token?scope=admin", GRANT + "&scope=orders.read", auth=(svc.cid, svc.secret))
    assert expect_token_reply(r)["scope"] == "orders.read"
    assert t


def test_head_and_other_paths_keep_the_connection_framed(svc):
    with RawConn(svc.g.port) as c:
        c.request("HEAD", "/oauth2/token", [basic(svc.cid, svc.secret)])
        r = c.read_response("HEAD")
        assert r.status == 405 and r.header("allow") == "POST", r
        # Spellings gatehouse's path normalizer makes /oauth2/token are
        # the token endpoint (the connection goes on); other paths under
        # /oauth2/ are nothing, answered before the body is read (the
        # connection closes, saying so).
        for path in ("/oauth2//token", "/oauth2/%74oken", "/oauth2/./token", "/oauth2/x/../token"):
            c.request("POST", path, [("Content-Type", FORM), basic(svc.cid, svc.secret)], GRANT)
            expect_token_reply(c.read_response("POST"))
    for path in ("/oauth2/token/", "/oauth2/tokens", "/oauth2/TOKEN"):
        with RawConn(svc.g.port) as c:
            c.request("POST", path, [("Content-Type", FORM), basic(svc.cid, svc.secret)], GRANT)
            r = c.read_response("POST")
            assert_refusal(r, 404, "not_found")
            assert r.header("connection") == "close" and c.is_closed(), r
    with RawConn(svc.g.port) as c:
        c.request("HEAD", "/oauth2/jwks")
        assert c.read_response("HEAD").status == 200
        c.request("GET", "/oauth2/jwks")
        assert "keys" in json.loads(c.read_response("GET").body)


def keyed_fleet(gatehouse, up, tmp_path, **kw):
    """Two issuer gatehouses sharing the store (and the keys) and one
    private_key_jwt client: (g, g2, s) with s ready for fa()."""
    g = start(gatehouse, up, **kw)
    kw["issuer"] = {"issuer": g.url, **kw.get("issuer", {})}
    g2 = start(gatehouse, up, **kw)
    s = Svc()
    s.g, s.key = g, ec.generate_private_key(ec.SECP256R1())
    s.jwt_cid, _ = create_client(g, "--jwks", str(jwk_file(tmp_path, s.key.public_key(), "c1", "ES256")))
    s.aud = g.token_url  # the fleet's one token endpoint (g2's issuer is g's)
    return g, g2, s


def fa(s, **over):
    """A client assertion for the fleet's token endpoint."""
    return assertion(s, **{"aud": s.aud, **over})


def test_a_replayed_assertion_is_refused_across_the_fleet(gatehouse, up, tmp_path):
    """The in-process replay cache cannot see another gatehouse's: the jti
    is claimed in the store they share (SQLite here)."""
    g, g2, s = keyed_fleet(gatehouse, up, tmp_path)
    a = fa(s)
    expect_token_reply(with_assertion(s, a))
    s.g = g2
    expect_error(with_assertion(s, a), 401, "invalid_client", "jti was used before")
    # The other way round, and at the other endpoints: an assertion is
    # good once, anywhere.
    b = fa(s)
    expect_token_reply(with_assertion(s, b))
    s.g = g
    for path, extra in (("/oauth2/token", GRANT), ("/oauth2/introspect", "token=x"),
                        ("/oauth2/revoke", "token=x")):
        expect_error(with_assertion(s, b, path, extra), 401, "invalid_client", "jti was used before")
    c = fa(s)
    assert with_assertion(s, c, "/oauth2/introspect", "token=x").status == 200
    s.g = g2
    expect_error(with_assertion(s, c), 401, "invalid_client", "jti was used before")
    # A jti that is not printable ASCII is claimed too (by its digest).
    for jti in ("caf\u00e9-" + uuid.uuid4().hex, "tab\there", "x" * 256):
        d = fa(s, jti=jti)
        s.g = g
        expect_token_reply(with_assertion(s, d))
        s.g = g2
        expect_error(with_assertion(s, d), 401, "invalid_client", "jti was used before")
    # Another client's jti of the same text is its own.
    other, _ = create_client(g, "--jwks", str(jwk_file(tmp_path, s.key.public_key(), "c1", "ES256")),
                             name="other")
    e = fa(s)
    expect_token_reply(with_assertion(s, e))
    jti = pyjwt.decode(e, options={"verify_signature": False})["jti"]
    expect_token_reply(with_assertion(s, fa(s, cid=other, jti=jti)))
    assert jti not in g.stderr + g2.stderr


def test_a_fleet_claim_lasts_the_assertions_lifetime(gatehouse, up, tmp_path, frozen):
    """A claim holds until the assertion's exp + leeway (60s), on the
    gatehouses' clock: a jti is refused everywhere until then, even in a
    new assertion, and may be used again after."""
    g, g2, s = keyed_fleet(gatehouse, up, tmp_path)
    t0 = calendar.timegm(time.strptime("2026-12-06 00:00:10", "%Y-%m-%d %H:%M:%S"))
    jti = uuid.uuid4().hex
    expect_token_reply(with_assertion(s, fa(s, jti=jti, iat=t0, exp=t0 + 60)))
    s.g = g2
    frozen("2026-12-06 00:02:10")  # t0 + 120 = exp + leeway: the old assertion still counts
    expect_error(with_assertion(s, fa(s, jti=jti, iat=t0 + 120, exp=t0 + 180)), 401,
                 "invalid_client", "jti was used before")
    # Past it the jti is free again. (At g2 the refused assertion holds
    # it in g2's own cache until that assertion's end: the in-process
    # check comes first and remembers what it saw.)
    frozen("2026-12-06 00:02:11")
    s.g = g
    expect_token_reply(with_assertion(s, fa(s, jti=jti, iat=t0 + 121, exp=t0 + 181)))
    s.g = g2
    expect_error(with_assertion(s, fa(s, jti=jti, iat=t0 + 121, exp=t0 + 181)), 401,
                 "invalid_client", "jti was used before")


def test_a_claim_the_store_cannot_write_fails_closed(gatehouse, up, tmp_path):
    """SQLite's write lock held by another process past busy_timeout: the
    token request is refused with 503 (never a token without the claim),
    the assertion is spent; once the store writes again, a new one works.
    A client secret needs no claim and is not held up."""
    g, g2, s = keyed_fleet(gatehouse, up, tmp_path, store={"busy_timeout": "1s"})
    cid, secret = create_client(g)
    db = sqlite3.connect(tmp_path / "state" / "gatehouse.db", isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        a = fa(s)
        expect_error(with_assertion(s, a), 503, "temporarily_unavailable",
                     "could not be recorded")
        token(g, cid, secret)
        # The client leaves while its claim waits for the lock: nothing
        # breaks (on_cancel drops the claim's answer).
        with RawConn(g.port) as c:
            body = (f"{GRANT}&client_assertion_type={quote(ASSERTION_TYPE, safe='')}"
                    f"&client_assertion={fa(s)}").encode()
            c.send(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: " + FORM.encode() +
                   b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.1)  # well within busy_timeout: gone while its claim waits
        wait_for(lambda: g.stderr.count("claiming a client assertion") == 2, 20,
                 "the abandoned request's claim failed on the lock")
        db.execute("ROLLBACK")
    finally:
        db.close()
    expect_error(with_assertion(s, a), 401, "invalid_client", "jti was used before")
    expect_token_reply(with_assertion(s, fa(s)))
    # Spent at g only: the store never had it and no token was issued for
    # it, so the fleet takes it once more (at g2), and then never again.
    s.g = g2
    expect_token_reply(with_assertion(s, a))
    expect_error(with_assertion(s, a), 401, "invalid_client", "jti was used before")
    s.g = g
    expect_error(with_assertion(s, a), 401, "invalid_client", "jti was used before")


def test_a_replayed_assertion_is_refused_across_a_redis_fleet(gatehouse, up, tmp_path, redis_server):
    """Two gatehouses on one Redis: the claim is one SET NX PX there,
    expiring with the assertion; Redis refusing the write fails closed."""
    store = {"kind": "redis", "address": f"127.0.0.1:{redis_server.port}", "prefix": "ghj:"}
    g, g2, s = keyed_fleet(gatehouse, up, tmp_path, store=store)
    a = fa(s)
    expect_token_reply(with_assertion(s, a))
    jti = pyjwt.decode(a, options={"verify_signature": False})["jti"]
    key = f"ghj:jti:{s.jwt_cid}:{jti}"
    exp = pyjwt.decode(a, options={"verify_signature": False})["exp"]
    assert redis_server.cmd("GET", key) == str(exp + 60 + 1).encode()
    assert 0 < redis_server.cmd("PTTL", key) <= (60 + 60 + 1) * 1000
    s.g = g2
    expect_error(with_assertion(s, a), 401, "invalid_client", "jti was used before")
    b = fa(s)
    expect_token_reply(with_assertion(s, b))
    s.g = g
    expect_error(with_assertion(s, b), 401, "invalid_client", "jti was used before")
    # Redis refuses the claim's write (an ACL without SET): 503, no token;
    # the lookup (HMGET) still works, so it is the claim that failed.
    redis_server.cmd("ACL", "SETUSER", "default", "-set")
    c = fa(s)
    expect_error(with_assertion(s, c), 503, "temporarily_unavailable", "could not be recorded")
    redis_server.cmd("ACL", "SETUSER", "default", "+set")
    expect_error(with_assertion(s, c), 401, "invalid_client", "jti was used before")
    s.g = g2
    expect_token_reply(with_assertion(s, c))  # never claimed in Redis: g2 takes it once
    expect_error(with_assertion(s, c), 401, "invalid_client", "jti was used before")
    expect_token_reply(with_assertion(s, fa(s)))


def test_a_revoked_token_stays_refused_while_any_jwt_filter_would_take_it(gatehouse, up, frozen):
    """A JWT filter may allow up to 5 minutes of clock skew past exp
    (clock_skew), more than the issuer's leeway (60s): the revocation must
    be kept until no filter takes the token any more."""
    g = start(gatehouse, up, jwt={"clock_skew": "5m"})
    cid, secret = create_client(g, "--ttl", "10s")
    kept, gone = (token(g, cid, secret)["access_token"] for _ in range(2))
    assert api(g, gone).status == 200
    assert post(g, "/oauth2/revoke", "token=" + gone, auth=(cid, secret)).status == 200
    expect_invalid(api(g, gone), "revoked")
    frozen("2026-12-06 00:01:30")  # exp (00:00:20) + 70 s: past exp + leeway
    assert api(g, kept).status == 200, "within the filter's clock_skew"
    expect_invalid(api(g, gone), "revoked")
    frozen("2026-12-06 00:05:21")  # exp + 301 s: past every filter's skew
    expect_invalid(api(g, kept), "expired")
    expect_invalid(api(g, gone))


def test_introspectors_may_introspect_every_token(gatehouse, up):
    """A resource server introspects tokens issued to other clients once the
    issuer lists it in `introspectors` (RFC 7662's usual caller); others see
    only their own."""
    from issuer_util import issuer_config
    from ops_util import config_text, sighup, wait_for, write_config

    g = start(gatehouse, up)
    cid, secret = create_client(g)
    rs, rs_secret = create_client(g, name="resource-server")
    t = token(g, cid, secret)["access_token"]
    r = post(g, "/oauth2/introspect", "token=" + t, auth=(rs, rs_secret))
    assert json.loads(r.body) == {"active": False}, r
    port = int(g.url.rsplit(":", 1)[1])
    import re
    state = re.search(r"^state_dir: (.+)$", g.config_text, re.M).group(1).strip('"')
    cfg = issuer_config(port, up, issuer={"introspectors": [rs]}, state_dir=state)
    write_config(g, config_text(g, cfg))
    sighup(g)
    wait_for(lambda: "generation 2 serving" in g.stderr)
    r = post(g, "/oauth2/introspect", "token=" + t, auth=(rs, rs_secret))
    doc = json.loads(r.body)
    assert doc.get("active") is True and doc["client_id"] == cid, (r, g.stderr[-2000:])
    # The token's own client still may; a third client still may not.
    assert json.loads(post(g, "/oauth2/introspect", "token=" + t, auth=(cid, secret)).body)["active"]
    third, third_secret = create_client(g, name="third")
    r = post(g, "/oauth2/introspect", "token=" + t, auth=(third, third_secret))
    assert json.loads(r.body) == {"active": False}, r
