"""providers.authorizers checked by `gatehouse validate` (docs/authorizers.md):
each refusal names the file, its line and what is wrong; the valid forms of
each format load."""

import subprocess

import pytest

from harness import free_port, gatehouse_bin, make_config, to_yaml
from jwt_util import route


def validate(tmp_path, authorizers, routes=None, extra_clusters=None):
    cfg = make_config(["127.0.0.1:9"], routes=routes or [route("all", "/")])
    cfg["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    cfg["clusters"]["authz"] = {"endpoints": ["127.0.0.1:9"]}
    cfg["clusters"]["lambda-api"] = {"endpoints": ["127.0.0.1:9"]}
    cfg["providers"] = {"authorizers": authorizers}
    p = tmp_path / "gatehouse.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def bad(tmp_path, authorizers, *words, routes=None):
    rc, out = validate(tmp_path, authorizers, routes)
    assert rc == 1, f"config accepted, expected an error naming {words}:\n{out}"
    assert "gatehouse.yaml:" in out, out
    low = out.lower()
    assert all(w.lower() in low for w in words), f"error does not name {words}:\n{out}"


def good(tmp_path, authorizers):
    rc, out = validate(tmp_path, authorizers)
    assert rc == 0, out


HTTP = {"cluster": "authz", "path": "/authorize"}
LAMBDA = {"function": "arn:aws:lambda:eu-west-1:123456789012:function:auth", "endpoint": "lambda-api"}


def test_each_format_loads(tmp_path):
    good(tmp_path, {
        "v2": {"format": "aws-v2", "http": HTTP, "simple_responses": True},
        "v1t": {"format": "aws-v1-token", "lambda": LAMBDA, "token_validation": "^Bearer [-0-9a-zA-Z._]+$"},
        "v1r": {"format": "aws-v1-request", "lambda": dict(LAMBDA, qualifier="live"),
                "identity_sources": ["method.request.header.X-Tenant", "method.request.querystring.token"],
                "ttl": "60s", "headers": {"x-user": "principalId", "x-tenant": "context.tenant"},
                "api": {"account_id": "123456789012", "api_id": "orders", "stage": "prod"}},
        "ext": {"format": "envoy", "http": {"cluster": "authz", "path": "/ext"}, "ttl": 0,
                "envoy": {"allowed_headers": ["authorization", "x-tenant"],
                          "upstream_headers": ["x-user"], "client_headers": ["www-authenticate"],
                          "max_request_body": "4KiB"}},
        "nocache": {"format": "aws-v1-request", "http": HTTP, "ttl": "0s"},
        "cookie": {"format": "aws-v2", "http": HTTP,
                   "identity_sources": ["$request.cookie.session", "$request.header.authorization"],
                   "on_error": "503", "timeout": "2s", "max_response": "64KiB", "cache_entries": 100},
        "allow": {"format": "aws-v2", "lambda": {"function": "auth", "region": "us-east-2",
                                                 "endpoint": "lambda-api", "profile": "prod"},
                  "on_error": "allow"},
    })


@pytest.mark.parametrize("conf,words", [
    ({"http": HTTP}, ["format"]),
    ({"format": "aws-v3", "http": HTTP}, ["format", "aws-v2"]),
    ({"format": "aws-v2"}, ["exactly one of http or lambda"]),
    ({"format": "aws-v2", "http": HTTP, "lambda": LAMBDA}, ["exactly one of http or lambda"]),
    ({"format": "aws-v2", "http": {"cluster": "nope"}}, ["unknown cluster", "nope"]),
    ({"format": "aws-v2", "http": {"cluster": "authz", "path": "authorize"}}, ["starts with '/'"]),
    ({"format": "aws-v2", "http": {"cluster": "authz", "path": "/a b"}}, ["http.path"]),
    ({"format": "envoy", "http": {"cluster": "authz", "path": "/x?y=1"}}, ["prefix", "no query"]),
    ({"format": "envoy", "lambda": LAMBDA}, ["envoy", "lambda"]),
    ({"format": "aws-v2", "lambda": {"function": "auth", "endpoint": "lambda-api",
                                     "region": "eu-west-1"}}, []),
    # No region anywhere (config, ARN, environment, profile): refused, as
    # for lambda clusters; the implicit endpoint is test_lambda_upstream's.
    ({"format": "aws-v2", "lambda": {"function": "auth", "endpoint": "lambda-api"}},
     ["authorizer 'a': no region"]),
    ({"format": "aws-v2", "lambda": {"function": "auth"}}, ["authorizer 'a': no region"]),
    ({"format": "aws-v2", "lambda": {"function": "auth", "endpoint": "nope"}}, ["unknown cluster"]),
    ({"format": "aws-v2", "lambda": {"function": "a/b", "endpoint": "lambda-api"}}, ["lambda.function"]),
    ({"format": "aws-v2", "lambda": {"function": "arn:aws:s3:eu-west-1:1:function:x", "endpoint": "lambda-api"}},
     ["not a lambda function arn"]),
    ({"format": "aws-v2", "lambda": dict(LAMBDA, region="us-east-1")}, ["region", "eu-west-1"]),
    ({"format": "aws-v2", "lambda": dict(LAMBDA, region="US EAST")}, ["region"]),
    ({"format": "aws-v2", "lambda": dict(LAMBDA, qualifier="a/b")}, ["qualifier"]),
    ({"format": "aws-v2", "http": HTTP, "identity_sources": ["header.authorization"]}, ["identity source"]),
    ({"format": "aws-v2", "http": HTTP, "identity_sources": ["$request.header."]}, ["names nothing"]),
    ({"format": "aws-v2", "http": HTTP, "identity_sources": ["$request.header.a b"]}, ["identity source"]),
    ({"format": "aws-v2", "http": HTTP, "identity_sources": ["$request.header.A", "$request.header.a"]},
     ["listed twice"]),
    ({"format": "aws-v1-token", "http": HTTP, "identity_sources": ["method.request.querystring.t"]},
     ["one header"]),
    ({"format": "aws-v1-token", "http": HTTP,
      "identity_sources": ["method.request.header.a", "method.request.header.b"]}, ["one header"]),
    ({"format": "aws-v1-request", "http": HTTP}, ["identity_sources", "ttl: 0"]),
    ({"format": "aws-v2", "http": HTTP, "ttl": "2h"}, ["ttl"]),
    ({"format": "aws-v1-request", "http": HTTP, "simple_responses": True, "ttl": 0}, ["simple_responses"]),
    ({"format": "aws-v2", "http": HTTP, "token_validation": "x"}, ["token_validation"]),
    ({"format": "aws-v1-token", "http": HTTP, "token_validation": "("}, ["token_validation", "regex"]),
    ({"format": "aws-v2", "http": HTTP, "on_error": "404"}, ["on_error"]),
    ({"format": "aws-v2", "http": HTTP, "headers": {"content-length": "principalId"}}, ["content-length"]),
    ({"format": "aws-v2", "http": HTTP, "headers": {"x_forwarded_for": "principalId"}}, ["x_forwarded_for"]),
    ({"format": "aws-v2", "http": HTTP, "headers": {"content-type": "principalId"}}, ["content-type"]),
    ({"format": "aws-v2", "http": HTTP, "headers": {"x-user": "context."}}, ["context"]),
    ({"format": "aws-v2", "http": HTTP, "headers": {"x-user": "sub"}}, ["principalId"]),
    ({"format": "envoy", "http": HTTP, "ttl": 0, "headers": {"x-user": "principalId"}}, ["upstream_headers"]),
    ({"format": "envoy", "http": HTTP, "ttl": 0, "envoy": {"upstream_headers": ["host"]}}, ["host"]),
    ({"format": "envoy", "http": HTTP, "ttl": 0, "envoy": {"client_headers": ["content-length"]}},
     ["content-length"]),
    ({"format": "envoy", "http": HTTP, "ttl": 0, "envoy": {"max_request_body": "2MiB"}}, ["max_request_body"]),
    ({"format": "aws-v2", "http": HTTP, "envoy": {}}, ["envoy authorizers"]),
    ({"format": "envoy", "http": HTTP, "ttl": 0, "api": {"api_id": "x"}}, ["aws formats"]),
    ({"format": "aws-v2", "http": HTTP, "api": {"stage": "a/b"}}, ["api.stage"]),
    ({"format": "aws-v2", "http": HTTP, "api": {"account_id": "1:2"}}, ["api.account_id"]),
    ({"format": "aws-v2", "http": HTTP, "realm": 'a"b'}, ["realm"]),
    ({"format": "aws-v2", "http": HTTP, "color": "red"}, ["unknown key", "color"]),
    ({"format": "aws-v1-token", "http": HTTP, "usage_key_cache_ttl": "0s",
      "usage_key_negative_cache_ttl": "1h"}, []),
    ({"format": "aws-v1-token", "http": HTTP, "usage_key_cache_ttl": "2h"}, ["usage_key_cache_ttl"]),
    ({"format": "aws-v1-token", "http": HTTP, "usage_key_negative_cache_ttl": "-1s"},
     ["usage_key_negative_cache_ttl"]),
    ({"format": "aws-v2", "http": HTTP, "usage_key_cache_ttl": "10s"}, ["aws-v1-token"]),
    ({"format": "envoy", "http": HTTP, "ttl": 0, "usage_key_negative_cache_ttl": "1s"},
     ["usageIdentifierKey"]),
    ({"format": "aws-v2", "http": HTTP, "cache_scope": "process"}, []),
    ({"format": "aws-v2", "http": HTTP, "cache_scope": "worker", "cache_entries": 1}, []),
    ({"format": "envoy", "http": HTTP, "ttl": 0, "cache_scope": "process"}, []),
    ({"format": "aws-v2", "http": HTTP, "cache_scope": "shared"}, ["cache_scope is worker or process"]),
    ({"format": "aws-v2", "http": HTTP, "cache_scope": "Process"}, ["cache_scope is worker or process"]),
    ({"format": "aws-v2", "http": HTTP, "cache_scope": ""}, ["cache_scope"]),
    ({"format": "aws-v2", "http": HTTP, "cache_scope": ["process"]}, ["cache_scope"]),
    ({"format": "aws-v2", "http": HTTP, "cache_scope": {"process": True}}, ["cache_scope"]),
])
def test_refusals(tmp_path, conf, words):
    if not words:
        good(tmp_path, {"a": conf})
        return
    bad(tmp_path, {"a": conf}, *words)


def test_names_are_one_namespace_with_other_providers(tmp_path):
    cfg = make_config(["127.0.0.1:9"], routes=[route("all", "/")])
    cfg["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    cfg["clusters"]["authz"] = {"endpoints": ["127.0.0.1:9"]}
    cfg["providers"] = {"apikeys": {"keys": {}}, "authorizers": {"keys": {"format": "aws-v2", "http": HTTP}}}
    p = tmp_path / "gatehouse.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "both an apikeys provider and an authorizer" in r.stderr + r.stdout


def test_routes_name_authorizers(tmp_path):
    r = route("all", "/", "a")
    r["authn"] = {"any": ["orders"]}
    rc, out = validate(tmp_path, {"orders": {"format": "aws-v2", "http": HTTP}}, routes=[r])
    assert rc == 0, out
    r["authn"] = {"any": ["orders", "orders"]}
    bad(tmp_path, {"orders": {"format": "aws-v2", "http": HTTP}}, "named twice", routes=[r])


def test_cache_scope_error_names_line_and_column(tmp_path):
    """The refusal points at the value, file:line:col."""
    rc, out = validate(tmp_path, {"a": {"format": "aws-v2", "http": HTTP, "cache_scope": "global"}})
    assert rc == 1, out
    text = (tmp_path / "gatehouse.yaml").read_text().splitlines()
    line = next(i for i, l in enumerate(text, 1) if "cache_scope:" in l)
    col = text[line - 1].index("global") + 1
    assert f"gatehouse.yaml:{line}:{col}:" in out, out
    assert "cache_scope is worker or process" in out, out

