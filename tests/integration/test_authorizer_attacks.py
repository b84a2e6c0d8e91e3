"""An outside review of custom authorizers (docs/authorizers.md), as an
attacker would: requests that mean one thing to the authorizer (or its
cached answer) and another to the upstream."""

import pytest

from authz_server import AuthzServer, allow_policy
from harness import echo_of, fetch
from test_authorizers import ARN_PREFIX, az, config


@pytest.fixture
def authz():
    servers = []

    def make(handler, raw=False):
        s = AuthzServer(handler, raw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def deny_delete(ev):
    out = allow_policy("u", ARN_PREFIX + "*")
    out["policyDocument"]["Statement"].append(
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN_PREFIX + "DELETE/*"})
    return out


@pytest.mark.parametrize("ttl", [0, "300s"])
def test_lower_case_method_is_the_method_upstreams_read(gatehouse, upstream, authz, ttl):
    """Werkzeug (Flask) and Django upper-case the method: "delete" is
    DELETE to them, so an IAM Deny on DELETE must match it (fresh and from
    the cache), and the event says DELETE as API Gateway's would."""
    up = upstream()
    srv = authz(deny_delete)
    g = gatehouse(config(up, srv.port, {"az": az("aws-v1-request", ttl=ttl,
                                                  identity_sources=["$request.header.Authorization"])}))
    tok = [("authorization", "t")]
    assert fetch(g.port, "GET", "/x", headers=tok).status == 200
    for m in ("DELETE", "delete", "Delete"):
        r = fetch(g.port, m, "/x", headers=tok)
        assert r.status == 403, (m, r)
    assert all(r.json()["httpMethod"].isupper() for r in srv.requests)
    assert all("/x" in r.json()["methodArn"] and "/GET/" in r.json()["methodArn"] or
               "/DELETE/" in r.json()["methodArn"] for r in srv.requests)
    assert [r.method for r in up.complete_requests()] == ["GET"]
