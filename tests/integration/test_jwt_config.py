"""Provider and authn config checked by `gatehouse validate`: the errors
the issue names (same issuer with overlapping audiences, HS* without
allow_symmetric, a shared secret fetched over the network, not exactly one
JWKS source, unknown providers) each give file:line:col; a JWKS that
cannot be fetched never makes the config invalid."""

import subprocess

import pytest

from harness import free_port, gatehouse_bin, make_config, to_yaml
from jwt_util import jwks_text, oct_key, provider, route, rsa_key


def validate(tmp_path, providers, routes=None):
    cfg = make_config(["127.0.0.1:9"], routes=routes or [route("all", "/", "a")])
    cfg["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    cfg["providers"] = {"jwt": providers}
    p = tmp_path / "gatehouse.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def bad(tmp_path, providers, *words, routes=None):
    rc, out = validate(tmp_path, providers, routes)
    assert rc == 1, f"config accepted, expected an error naming {words}:\n{out}"
    assert "gatehouse.yaml:" in out, out
    low = out.lower()
    assert all(w.lower() in low for w in words), f"error does not name {words}:\n{out}"


def good(tmp_path, providers, routes=None):
    rc, out = validate(tmp_path, providers, routes)
    assert rc == 0, out


def test_valid_providers(tmp_path):
    good(tmp_path, {"a": provider(keys=[rsa_key()])})
    good(tmp_path, {"a": provider(keys=[rsa_key()], audiences=["x"]),
                    "b": provider(keys=[rsa_key()], audiences=["y"])},
         routes=[route("all", "/", {"any": ["a", "b"], "exempt": [{"prefix": "/health"}]})])
    # A JWKS URI nobody answers is not a config error.
    good(tmp_path, {"a": provider(jwks={"uri": "http://127.0.0.1:9/jwks.json"})})
    good(tmp_path, {"a": provider(jwks={"discovery": True})})


def test_same_issuer_overlapping_audiences(tmp_path):
    bad(tmp_path, {"a": provider(keys=[rsa_key()], audiences=["x", "y"]),
                   "b": provider(keys=[rsa_key()], audiences=["y", "z"])}, "issuer", "audience")
    bad(tmp_path, {"a": provider(keys=[rsa_key()], audiences="any"),
                   "b": provider(keys=[rsa_key()], audiences=["z"])}, "issuer")


def test_symmetric_rules(tmp_path):
    bad(tmp_path, {"a": provider(keys=[oct_key()], algorithms=["HS256"])}, "allow_symmetric")
    bad(tmp_path, {"a": provider(jwks={"uri": "http://127.0.0.1:9/jwks.json"}, allow_symmetric=True)},
        "allow_symmetric")
    good(tmp_path, {"a": provider(keys=[oct_key()], allow_symmetric=True, algorithms=["HS256"])})


@pytest.mark.parametrize("jwks,word", [
    ({}, "jwks"),
    ({"inline": jwks_text(rsa_key()), "uri": "http://127.0.0.1:9/jwks.json"}, "jwks"),
    ({"file": "/tmp/x.json", "discovery": True}, "jwks"),
    ({"uri": "ftp://127.0.0.1/jwks.json"}, "uri"),
    ({"uri": "http://127.0.0.1:9/jwks.json", "refresh_intervl": "1s"}, "refresh_intervl"),
])
def test_jwks_sources(tmp_path, jwks, word):
    bad(tmp_path, {"a": provider(jwks=jwks)}, word)


def test_route_authn_errors(tmp_path):
    p = {"a": provider(keys=[rsa_key()])}
    bad(tmp_path, p, "unknown provider", routes=[route("all", "/", "nope")])
    bad(tmp_path, p, "any", routes=[route("all", "/", {"any": ["a"], "all": ["a"]})])
    bad(tmp_path, p, "exempt", routes=[route("all", "/", {"any": ["a"], "exempt": [{"prefix": "health"}]})])
    bad(tmp_path, {"a": provider(keys=[rsa_key()], algorithms=["none"])}, "none")
    bad(tmp_path, {"a": provider(keys=[rsa_key()], algorithms=["RS257"])}, "RS257")
    bad(tmp_path, {"a": {"audiences": ["x"], "jwks": {"inline": jwks_text(rsa_key())}}}, "issuer")


def test_audiences_required(tmp_path):
    """A provider without audiences would take a token minted for any other
    service of its issuer: the key is required, "any" says so on purpose."""
    bad(tmp_path, {"a": provider(keys=[rsa_key()], audiences=None)}, "audiences", "any")
    good(tmp_path, {"a": provider(keys=[rsa_key()], audiences="any")})
    bad(tmp_path, {"a": provider(keys=[rsa_key()], audiences=[])}, "audiences")


def test_plain_http_keys_need_insecure_http(tmp_path):
    uri = "http://127.0.0.1:9/jwks.json"
    bad(tmp_path, {"a": provider(jwks={"uri": uri, "insecure_http": False})}, "insecure_http", "http")
    bad(tmp_path, {"a": provider(jwks={"discovery": True, "insecure_http": False},
                                 issuer="http://127.0.0.1:9")}, "insecure_http")
    good(tmp_path, {"a": provider(jwks={"uri": uri, "insecure_http": True})})
    good(tmp_path, {"a": provider(jwks={"uri": "https://127.0.0.1:9/jwks.json"})})
    bad(tmp_path, {"a": provider(jwks={"uri": uri, "insecure_http": "yes please"})}, "insecure_http")


@pytest.mark.parametrize("extra,jwks_extra,words", [
    ({"clock_skew": "301s"}, {}, ("clock_skew", "5m")),
    ({"clock_skew": "1h"}, {}, ("clock_skew",)),
    ({"max_token_age": "500ms"}, {}, ("max_token_age",)),
    ({}, {"timeout": "61s"}, ("timeout", "60s")),
    ({}, {"timeout": "0s"}, ("timeout",)),
])
def test_time_bounds(tmp_path, extra, jwks_extra, words):
    jw = {"uri": "https://127.0.0.1:9/jwks.json", **jwks_extra}
    bad(tmp_path, {"a": provider(jwks=jw, **extra)}, *words)


def test_time_bounds_edges_accepted(tmp_path):
    good(tmp_path, {"a": provider(keys=[rsa_key()], clock_skew="5m", max_token_age="1s")})
    good(tmp_path, {"a": provider(jwks={"uri": "https://127.0.0.1:9/jwks.json", "timeout": "60s"})})
