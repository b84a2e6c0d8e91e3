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
import json
import os
import socket
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

from harness import RawConn, Upstream, fetch, free_port
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
