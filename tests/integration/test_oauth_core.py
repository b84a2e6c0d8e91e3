"""The token service's core (src/issuer/) judged by independent
implementations, through build/oauth_driver (tests/unit/issuer/
oauth_driver.c, beside $GATEHOUSE_BIN):

- tokens minted with ES256, RS256 and EdDSA verify with PyJWT against the
  published JWKS, with RFC 9068's typ, issuer, audience and claims;
- oauthlib's client reads the token response and the RFC 6749 §5.2 error
  responses (its error classes by code);
- request bodies made by oauthlib's client (client_secret_post, scope as a
  list) and Basic credentials encoded per RFC 6749 §2.3.1 with Python's
  urllib are read back as the same client id, secret and scopes, for
  secrets holding every printable ASCII byte and non-ASCII text.
"""
import base64
import json
import string
import subprocess
import time
import urllib.parse

import jwt
import pytest
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2.rfc6749 import errors

import harness

ISSUER = "https://gw.example.com"
CT = ("Content-Type", "application/x-www-form-urlencoded")


def driver(reqs):
    p = harness.gatehouse_bin().parent / "oauth_driver"
    assert p.exists(), f"{p} is missing: build the unit tests (make build-tests)"
    out = subprocess.run([str(p)], input="".join(json.dumps(r) + "\n" for r in reqs),
                         capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == len(reqs)
    return [json.loads(l) for l in lines]


def parse(body, headers=(CT,), endpoint="token", method="POST"):
    if isinstance(body, str):
        body = body.encode()
    hs = [[n.encode().hex(), v.encode("utf-8", "surrogateescape").hex()] for n, v in headers]
    return driver([{"op": "parse", "endpoint": endpoint, "method": method, "headers": hs,
                    "body": body.hex()}])[0]


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_minted_tokens_verify_with_pyjwt(alg):
    now = int(time.time())
    [m] = driver([{"op": "mint", "alg": alg, "issuer": ISSUER, "client_id": "svc-a",
                   "scopes": ["orders.read", "orders.write"],
                   "audiences": ["orders", "https://api.example.com/"],
                   "lifetime": 300, "now": now}])
    assert "error" not in m, m
    keys = json.loads(m["jwks"])["keys"]
    assert len(keys) == 1
    key = jwt.PyJWK(keys[0])
    header = jwt.get_unverified_header(m["token"])
    assert header == {"alg": alg, "kid": "k1", "typ": "at+jwt"}
    claims = jwt.decode(m["token"], key.key, algorithms=[alg], audience="orders",
                        issuer=ISSUER, options={"require": ["exp", "iat", "jti", "sub"]})
    assert claims["sub"] == claims["client_id"] == "svc-a"
    assert claims["aud"] == ["orders", "https://api.example.com/"]
    assert claims["exp"] == now + 300 and claims["iat"] == now
    assert claims["scope"] == "orders.read orders.write"
    assert len(base64.urlsafe_b64decode(claims["jti"] + "==")) == 16
    # One byte of the signature changed: PyJWT refuses it.
    head, payload, sig = m["token"].split(".")
    bad = sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(".".join([head, payload, bad]), key.key, algorithms=[alg], audience="orders")
    # The response, as oauthlib's client reads it.
    client = BackendApplicationClient("svc-a")
    tok = client.parse_request_body_response(m["body"], scope=["orders.read", "orders.write"])
    assert tok["access_token"] == m["token"]
    assert tok["token_type"] == "Bearer"
    assert tok["expires_in"] == 300
    assert tok["scope"] == ["orders.read", "orders.write"]


SECRETS = [
    "7Fjfp0ZBr1KtDRbnfVdmIw",
    string.punctuation + " ",
    "p@ss w+rd/%é&=ü€😀",
    "%41%2541+%2B",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_oauthlib_post_body_reads_back(secret):
    client = BackendApplicationClient("svc-a")
    body = client.prepare_request_body(include_client_id=True, client_secret=secret,
                                       scope=["orders.read", "a:b"],
                                       resource="https://api.example.com/x")
    r = parse(body)
    assert r["ok"], r
    assert r["auth_method"] == "client_secret_post"
    assert r["client_id"] == "svc-a"
    assert bytes.fromhex(r["secret"]).decode() == secret
    assert r["scopes"] == ["orders.read", "a:b"]
    assert r["targets"] == ["https://api.example.com/x"]


@pytest.mark.parametrize("secret", SECRETS)
def test_basic_per_rfc6749_reads_back(secret):
    # RFC 6749 §2.3.1: each part form-urlencoded, then RFC 7617 Basic.
    cred = urllib.parse.quote_plus("svc-a") + ":" + urllib.parse.quote_plus(secret)
    authz = "Basic " + base64.b64encode(cred.encode()).decode()
    r = parse("grant_type=client_credentials", headers=(CT, ("Authorization", authz)))
    assert r["ok"], r
    assert r["auth_method"] == "client_secret_basic"
    assert r["client_id"] == "svc-a"
    assert bytes.fromhex(r["secret"]).decode() == secret


def test_rfc6749_basic_example():
    r = parse("grant_type=client_credentials",
              headers=(CT, ("Authorization", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW")))
    assert r["client_id"] == "s6BhdRkqt3"
    assert bytes.fromhex(r["secret"]) == b"gX1fBat3bV"


@pytest.mark.parametrize("body,headers,status,error,exc", [
    ("grant_type=client_credentials&grant_type=client_credentials&client_id=a&client_secret=s",
     (CT,), 400, "invalid_request", errors.InvalidRequestError),
    ("grant_type=password&client_id=a&client_secret=s", (CT,), 400, "unsupported_grant_type",
     errors.UnsupportedGrantTypeError),
    ("grant_type=client_credentials&client_id=a&client_secret=s&scope=a++b", (CT,), 400,
     "invalid_scope", errors.InvalidScopeError),
    ("grant_type=client_credentials", (CT,), 401, "invalid_client", errors.InvalidClientError),
    ("grant_type=client_credentials&client_id=a&client_secret=s",
     (("Content-Type", "application/json"),), 400, "invalid_request",
     errors.InvalidRequestError),
])
def test_error_responses_read_by_oauthlib(body, headers, status, error, exc):
    r = parse(body, headers=headers)
    assert not r["ok"]
    assert r["status"] == status
    fields = {n.lower(): v for n, v in r["headers"]}
    assert fields["cache-control"] == "no-store"
    assert fields["pragma"] == "no-cache"
    assert fields["content-type"] == "application/json"
    assert ("www-authenticate" in fields) == (status == 401)
    if status == 401:
        assert fields["www-authenticate"] == 'Basic realm="gatehouse"'
    assert json.loads(r["body"])["error"] == error
    # oauthlib raises the first of its classes whose code matches; the
    # code and description are what a client sees.
    with pytest.raises(errors.OAuth2Error) as ei:
        BackendApplicationClient("a").parse_request_body_response(r["body"])
    assert ei.value.error == error
    assert ei.value.description == json.loads(r["body"])["error_description"]
    assert exc.error == error
