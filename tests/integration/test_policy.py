"""Authorization policies end to end (docs/authorization.md): a real
gatehouse with real JWTs (PyJWT) in front of an upstream that logs what it
got. Each policy field on its own route, a listener's policies on every
route of it, the 403 (body, access log note, metric), dry run, path
spellings that must not get around a DENY of /admin or out of an ALLOW of
/public/, repeated header fields, a reload that changes a policy, and
config errors at file:line:col. Exhaustive cases are the unit tests'
(tests/unit/filters/test_policy.c); here every field is crossed once over
a socket."""

import json
import subprocess
import time

from harness import RawConn, fetch, free_port, gatehouse_bin, make_config, to_yaml
from jwt_util import ISS, jwks_text, mint, rsa_key
from ops_util import admin_conf, admin_port_of, config_errors, metrics, read_json_lines, sighup, wait_admin, \
    wait_for, wait_lines, write_config

KEY = rsa_key(kid="pol-1", slot="policy")


def pol(action="ALLOW", rules=None, **kw):
    p = {"action": action}
    if rules is not None:
        p["rules"] = rules
    p.update(kw)
    return p


def to(**op):
    return {"to": [{"operation": op}]}


def frm(**src):
    return {"from": [{"source": src}]}


def when(*conds):
    return {"when": [dict(key=k, **v) for k, v in conds]}


def config(up, port, admin_port, log_path, policies=None):
    authn = {"optional": ["corp"]}

    def r(name, prefix, policies=None, auth=False):
        d = {"name": name, "match": {"path": {"prefix": prefix}}}
        if auth:
            d["authn"] = authn
        if policies:
            d["policies"] = policies
        d["to"] = "app"
        return d

    if policies is None:
        policies = {
            "deny-admin": pol("DENY", [to(paths=["/admin", "/admin/*"])]),
            "allow-host": pol(rules=[to(hosts=["api.example.com"])]),
            "allow-get": pol(rules=[to(methods=["GET", "HEAD"], not_paths=["/methods/no"])]),
            "allow-port": pol(rules=[to(ports=[port])]),
            "allow-other-port": pol(rules=[to(ports=[1])]),
            "allow-peer": pol(rules=[frm(ip_blocks=["127.0.0.1/32"], not_ip_blocks=["::1"])]),
            "allow-remote": pol(rules=[frm(remote_ip_blocks=["203.0.113.0/24"])]),
            "allow-alice": pol(rules=[frm(request_principals=[f"{ISS}/alice", "*/carol"])]),
            "deny-anonymous": pol("DENY", [frm(not_request_principals=["*"])]),
            "allow-consumer": pol(rules=[frm(consumers=["acme"])]),
            "allow-admins": pol(rules=[when(("request.auth.claims[groups]", {"values": ["admin"]}),
                                            ("request.auth.claims[org][team]", {"values": ["core"]}))]),
            "allow-readers": pol(rules=[when(("request.auth.scopes", {"values": ["orders.read"]}))]),
            "allow-role": pol(rules=[when(("request.headers[X-Role]", {"values": ["admin"]}))]),
            "allow-token": pol(rules=[when(("request.auth.audiences", {"values": ["orders"]}),
                                           ("request.auth.presenter", {"values": ["web-*"]}),
                                           ("request.auth.principal", {"not_values": [f"{ISS}/mallory"]}),
                                           ("source.ip", {"values": ["127.0.0.0/8"]}),
                                           ("remote.ip", {"not_values": ["198.51.100.0/24"]}),
                                           ("destination.port", {"values": [port]}))]),
            "dry-deny": pol("DENY", [to(paths=["/dry/*"])], dry_run=True),
            "dry-allow": pol(rules=[to(paths=["/dry/yes"])], dry_run=True),
            "allow-public": pol(rules=[to(paths=["/public/*"])]),
        }
    routes = [
        r("hosts", "/hosts", ["allow-host"]),
        r("methods", "/methods", ["allow-get"]),
        r("ports", "/ports", ["allow-port"]),
        r("badport", "/badport", ["allow-other-port"]),
        r("peer", "/peer", ["allow-peer"]),
        r("remote", "/remote", ["allow-remote"]),
        r("principal", "/principal", ["allow-alice"], auth=True),
        r("anon", "/anon", ["deny-anonymous"], auth=True),
        r("consumer", "/consumer", ["allow-consumer"]),
        r("claims", "/claims", ["allow-admins"], auth=True),
        r("scopes", "/scopes", ["allow-readers"], auth=True),
        r("role", "/role", ["allow-role"]),
        r("token", "/token", ["allow-token"], auth=True),
        r("dry", "/dry", ["dry-deny", "dry-allow"]),
        r("plain", "/plain"),
        r("admin", "/admin"),
        r("catchall", "/", ["allow-public"]),
    ]
    cfg = make_config([up], routes=routes,
                      listener={"listen": f"127.0.0.1:{port}", "trusted_proxies": ["127.0.0.1/32"],
                                "policies": ["deny-admin"]})
    cfg["providers"] = {"jwt": {"corp": {"issuer": ISS, "audiences": ["orders"],
                                         "jwks": {"inline": jwks_text(KEY)}}}}
    cfg["policies"] = policies
    cfg["admin"] = admin_conf(port=admin_port)
    cfg["access_log"] = {"path": str(log_path)}
    return cfg


def tok(**claims):
    return mint(KEY, **claims)


def req(g, target, token=None, headers=(), method="GET", host="gatehouse.test"):
    hs = list(headers)
    if token is not None:
        hs.append(("Authorization", f"Bearer {token}"))
    return fetch(g.port, method, target, headers=hs, host=host)


def expect_denied(r, policy, detail=None):
    assert r.status == 403, f"expected 403 by {policy}, got {r.status}: {r.body[:300]!r}"
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    doc = json.loads(r.body)
    assert doc["error"] == "forbidden", doc
    assert doc["policy"] == policy, doc
    if detail is not None:
        assert doc["detail"] == detail, doc
    assert not r.has("www-authenticate"), r.headers
    return doc


def expect_ok(r):
    assert r.status == 200, f"expected 200, got {r.status}: {r.body[:300]!r}"


def start(gatehouse, upstream, tmp_path):
    up = upstream()
    port, admin = free_port(), free_port()
    log = tmp_path / "access.log"
    cfg = config(up, port, admin, log)
    g = gatehouse(cfg)
    wait_admin(admin)
    g.admin, g.log, g.up, g.cfg = admin, log, up, cfg
    return g


def test_each_field(gatehouse, upstream, tmp_path):
    g = start(gatehouse, upstream, tmp_path)
    no_allow = lambda name: f"no ALLOW policy matched: {name}"  # noqa: E731

    # operation: hosts (case and port and a trailing dot are the routing's)
    for host in ("api.example.com", "API.Example.COM:8080", "api.example.com."):
        expect_ok(req(g, "/hosts", host=host))
    expect_denied(req(g, "/hosts", host="other.example.com"), "allow-host", no_allow("allow-host"))
    # methods and not_paths
    expect_ok(req(g, "/methods"))
    expect_ok(req(g, "/methods", method="HEAD"))
    expect_denied(req(g, "/methods", method="POST"), "allow-get")
    expect_denied(req(g, "/methods/no"), "allow-get")
    # ports: the listener's
    expect_ok(req(g, "/ports"))
    expect_denied(req(g, "/badport"), "allow-other-port")

    # source: the direct peer, and the client behind the trusted proxy
    expect_ok(req(g, "/peer"))
    expect_ok(req(g, "/peer", headers=[("X-Forwarded-For", "198.51.100.7")]))
    expect_ok(req(g, "/remote", headers=[("X-Forwarded-For", "203.0.113.5")]))
    expect_denied(req(g, "/remote", headers=[("X-Forwarded-For", "198.51.100.7")]), "allow-remote")
    expect_denied(req(g, "/remote"), "allow-remote")
    # request principals: iss/sub of the verified token
    expect_ok(req(g, "/principal", tok(sub="alice")))
    expect_ok(req(g, "/principal", tok(sub="carol")))
    expect_denied(req(g, "/principal", tok(sub="bob")), "allow-alice")
    expect_denied(req(g, "/principal"), "allow-alice")
    expect_denied(req(g, "/anon"), "deny-anonymous", "denied by policy deny-anonymous")
    expect_ok(req(g, "/anon", tok()))
    # consumers: no API key on this route, so no consumer matches (with
    # keys: test_api_key_consumers_and_scopes)
    expect_denied(req(g, "/consumer"), "allow-consumer")

    # conditions: claims (array element, nested), scopes (scope and scp)
    expect_ok(req(g, "/claims", tok(groups=["eng", "admin"], org={"team": "core"})))
    expect_denied(req(g, "/claims", tok(groups=["eng"], org={"team": "core"})), "allow-admins")
    expect_denied(req(g, "/claims", tok(groups="admin", org={"team": "edge"})), "allow-admins")
    expect_denied(req(g, "/claims", tok(groups=["admin"], org="core")), "allow-admins")
    expect_denied(req(g, "/claims"), "allow-admins")
    expect_ok(req(g, "/scopes", tok(scope="orders.write orders.read")))
    expect_ok(req(g, "/scopes", tok(scp=["orders.read"])))
    expect_denied(req(g, "/scopes", tok(scope="orders.readonly")), "allow-readers")
    expect_denied(req(g, "/scopes", tok(scp=["orders.write"])), "allow-readers")
    # audiences, presenter, principal, source.ip, remote.ip, destination.port
    good = tok(azp="web-frontend")
    expect_ok(req(g, "/token", good))
    expect_denied(req(g, "/token", tok(azp="cli")), "allow-token")
    expect_denied(req(g, "/token", tok(azp="web-frontend", sub="mallory")), "allow-token")
    expect_denied(req(g, "/token", good, headers=[("X-Forwarded-For", "198.51.100.9")]), "allow-token")
    expect_denied(req(g, "/token"), "allow-token")

    # request.headers: case-insensitive name; repeated fields are one value
    # joined with "," (Istio's documented normalization), so two
    # "X-Role: admin" fields are "admin,admin", which is not "admin".
    expect_ok(req(g, "/role", headers=[("x-role", "admin")]))
    expect_denied(req(g, "/role", headers=[("X-Role", "Admin")]), "allow-role")
    expect_denied(req(g, "/role", headers=[("X-Role", "admin"), ("X-Role", "admin")]), "allow-role")
    expect_denied(req(g, "/role", headers=[("X-Role", "user"), ("x-role", "admin")]), "allow-role")
    expect_denied(req(g, "/role"), "allow-role")

    # Only allowed requests reached the upstream, each once.
    allowed = [t for t in g.up.targets()]
    assert allowed.count("/principal") == 2 and allowed.count("/hosts") == 3, allowed
    assert "/remote" in allowed and "/badport" not in allowed and "/consumer" not in allowed, allowed
    assert sum(t.startswith("/claims") for t in allowed) == 1, allowed
    assert sum(t.startswith("/role") for t in allowed) == 1, allowed


def test_listener_attachment_and_denial_record(gatehouse, upstream, tmp_path):
    """The listener's DENY governs every route, those without a policies key
    too; a denial is a 403 naming the policy, a note in the access log and
    a count; dry-run policies are logged and counted, never enforced."""
    g = start(gatehouse, upstream, tmp_path)
    expect_ok(req(g, "/plain"))
    expect_denied(req(g, "/admin"), "deny-admin", "denied by policy deny-admin")
    expect_denied(req(g, "/admin/users"), "deny-admin")
    # DENY before the route's ALLOW: /hosts/.. would be allowed by allow-host
    expect_denied(req(g, "/hosts/../admin", host="api.example.com"), "deny-admin")
    # the catch-all's ALLOW applies with the listener's DENY
    expect_ok(req(g, "/public/x"))
    expect_denied(req(g, "/secret"), "allow-public", "no ALLOW policy matched: allow-public")
    # dry run: both would deny /dry/no, neither is enforced
    expect_ok(req(g, "/dry/no?id=dry1"))
    expect_ok(req(g, "/dry/yes?id=dry2"))

    recs = wait_lines(g.log, lambda rs: len(rs) >= 8)
    by_path = {}
    for rec in recs:
        by_path.setdefault((rec["path"], rec.get("query")), rec)
    admin = by_path[("/admin", None)]
    assert admin["status"] == 403 and admin["filter"] == "policy=deny:deny-admin", admin
    assert admin["error"] == "denied by policy deny-admin", admin
    assert by_path[("/public/x", None)]["filter"] == "policy=allow:allow-public"
    assert by_path[("/secret", None)]["filter"] == "policy=no_allow:allow-public"
    assert by_path[("/plain", None)]["filter"] in (None, "", "-")
    d1 = by_path[("/dry/no", "id=dry1")]
    assert d1["status"] == 200 and d1["filter"] == "dry_run=deny:dry-deny dry_run=no_allow:dry-allow", d1
    d2 = by_path[("/dry/yes", "id=dry2")]
    assert d2["status"] == 200 and d2["filter"] == "dry_run=deny:dry-deny dry_run=allow:dry-allow", d2

    m = metrics(g.admin)
    name = "gatehouse_policy_decisions_total"
    assert m.types.get(name) == "counter"
    assert m.value(name, policy="deny-admin", action="DENY", decision="deny", dry_run="false") == 3
    assert m.value(name, policy="allow-public", action="ALLOW", decision="allow", dry_run="false") == 1
    assert m.value(name, policy="allow-public", action="ALLOW", decision="deny", dry_run="false") == 1
    assert m.value(name, policy="dry-deny", action="DENY", decision="deny", dry_run="true") == 2
    assert m.value(name, policy="dry-allow", action="ALLOW", decision="allow", dry_run="true") == 1
    assert m.value(name, policy="dry-allow", action="ALLOW", decision="deny", dry_run="true") == 1
    assert g.up.targets().count("/admin") == 0


ADMIN_SPELLINGS = [
    "/admin", "/admin/", "/admin/x", "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2e/admin",
    "/public/.%2E/admin", "//admin", "///admin/x", "/./admin", "/%61dmin", "/%61%64%6d%69%6e",
    "/admin;x", "/admin;jsessionid=1/x", "/public/..;/admin", "/public/./../admin", "/x/y/../../admin",
    "/admin/./", "/public/%2e%2e/%61dmin/x",
]
REFUSED_SPELLINGS = ["/public/..%2Fadmin", "/public%2F..%2Fadmin", "/public/%2e%2e%2fadmin",
                     "/public\\..\\admin", "/%2e%2e/admin%00", "/public/%c0%ae%c0%ae/admin"]


def test_path_spellings(gatehouse, upstream, tmp_path):
    """The policies see the path the router and the upstream see: every
    spelling of /admin is denied by the listener's DENY, none slips out of
    the catch-all's ALLOW of /public/*, and those the normalizer cannot
    read the same way as an origin would are refused before any policy."""
    g = start(gatehouse, upstream, tmp_path)
    for target in ADMIN_SPELLINGS:
        with RawConn(g.port) as c:
            c.send(f"GET {target} HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n".encode())
            expect_denied(c.read_response(), "deny-admin")
    for target in REFUSED_SPELLINGS:
        with RawConn(g.port) as c:
            c.send(f"GET {target} HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 400, f"{target}: {r.status} {r.body[:200]!r}"
    # The absolute form (RFC 9112 section 3.2.2) is normalized the same way.
    for target in ("http://gatehouse.test/public/../admin", "http://API.example.com:80//admin/x?q=1"):
        with RawConn(g.port) as c:
            c.send(f"GET {target} HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n".encode())
            expect_denied(c.read_response(), "deny-admin")
    # Case is part of the path (RFC 3986): /ADMIN is not /admin, and the
    # ALLOW of /public/* does not let it through either.
    for target in ("/ADMIN", "/Admin/x", "/PUBLIC/x", "/public/../secret", "/publicx", "/public"):
        expect_denied(req(g, target), "allow-public")
    expect_ok(req(g, "/public/%41"))
    assert g.up.targets() == ["/public/A"], g.up.targets()


def test_reload_recompiles(gatehouse, upstream, tmp_path):
    """Policies are compiled per snapshot: a reload that widens an ALLOW
    takes effect; one with an unknown name is refused and the old stays."""
    g = start(gatehouse, upstream, tmp_path)
    expect_denied(req(g, "/secret"), "allow-public")
    cfg = json.loads(json.dumps(g.cfg))
    cfg["policies"]["allow-public"]["rules"][0]["to"][0]["operation"]["paths"].append("/secret")
    write_config(g, to_yaml(cfg) + "\n")
    sighup(g)
    wait_for(lambda: req(g, "/secret").status == 200, 10, "the reloaded policy")
    bad = json.loads(json.dumps(cfg))
    bad["listeners"][0]["policies"] = ["nope"]
    write_config(g, to_yaml(bad) + "\n")
    sighup(g)
    wait_for(lambda: any("unknown policy 'nope'" in l for l in config_errors(g)), 10, "the refusal")
    expect_ok(req(g, "/secret"))
    expect_denied(req(g, "/admin"), "deny-admin")


def validate(tmp_path, text):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


BASE = """clusters:
  app: {endpoints: ["127.0.0.1:9"]}
policies:
  ok: {action: DENY}
%s
listeners:
  - name: edge
    listen: 127.0.0.1:18099
%s
    routes:
      - to: app
%s
"""


def test_config_errors(tmp_path):
    cases = [
        ("  custom: {action: CUSTOM}", "", "", "policy.yaml:5:11: a CUSTOM policy names its provider"),
        ("  custom: {action: CUSTOM, provider: {name: nope}}", "", "",
         "policy.yaml:5:45: provider 'nope' is not an authorizer"),
        ("  m: {rules: [{from: [{source: {principals: [a]}}]}]}", "", "",
         "policy.yaml:5:33: 'principals' (the peer's mTLS identity) is not supported yet"),
        ("  s: {rules: [{when: [{key: connection.sni, values: [a]}]}]}", "", "",
         "policy.yaml:5:29: condition key 'connection.sni' is not supported yet"),
        ("  u: {rules: [{to: [{operation: {pathz: [/a]}}]}]}", "", "",
         "policy.yaml:5:34: unknown key 'pathz' in 'operation'"),
        ("", "    policies: [ok, nope]", "", "policy.yaml:9:20: unknown policy 'nope'"),
        ("", "", "        policies: []", "policy.yaml:12:19: 'policies' is empty"),
        ("", "    policies: [ok]", "        policies: [ok]", "policy.yaml:12:20: policy 'ok' is attached to "
                                                            "listener 'edge' already"),
        ("  e: {rules: [{to: [{operation: {paths: [\"/a/../b\"]}}]}]}", "", "",
         "policy.yaml:5:42: path '/a/../b' is not in normalized form"),
    ]
    for extra_policy, lpol, rpol, want in cases:
        rc, out = validate(tmp_path, BASE % (extra_policy, lpol, rpol))
        assert rc != 0 and want in out, f"want {want!r}, got rc={rc}: {out}"
    rc, out = validate(tmp_path, BASE % ("", "    policies: [ok]", ""))
    assert rc == 0, out


def test_api_key_consumers_and_scopes(gatehouse, upstream, tmp_path):
    """consumers and request.auth.scopes over real API keys (the apikey
    provider, keys made by the CLI in the SQLite store)."""
    from test_apikey_auth import config as key_config, create, get as key_get

    up = upstream()
    routes = [
        {"name": "acme", "match": {"path": {"prefix": "/acme"}}, "authn": "keys",
         "policies": ["acme-only"], "to": "app"},
        {"name": "readers", "match": {"path": {"prefix": "/read"}}, "authn": "keys",
         "policies": ["no-bob", "readers"], "to": "app"},
    ]
    cfg = key_config(up, tmp_path / "gh.db", routes=routes)
    cfg["policies"] = {
        "acme-only": pol(rules=[frm(consumers=["acme-*"])]),
        "no-bob": pol("DENY", [frm(not_consumers=["acme-*", "carol"])]),
        "readers": pol(rules=[when(("request.auth.scopes", {"values": ["orders.read"]}))]),
    }
    g = gatehouse(cfg)
    acme, _ = create(g, "acme-corp", "--scopes", "orders.read,orders.write")
    bob, _ = create(g, "bob", "--scopes", "orders.read")
    carol, _ = create(g, "carol", "--scopes", "orders.write")
    assert key_get(g, "/acme", acme).status == 200
    expect_denied(key_get(g, "/acme", bob), "acme-only")
    assert key_get(g, "/acme").status == 401  # no key: authn refuses before any policy
    assert key_get(g, "/read", acme).status == 200
    expect_denied(key_get(g, "/read", bob), "no-bob")
    expect_denied(key_get(g, "/read", carol), "readers")
    # A forged consumer header is not the consumer.
    expect_denied(key_get(g, "/acme", bob, headers=[("x-consumer", "acme-corp")]), "acme-only")
