"""API keys on requests (providers.apikeys, docs/api-keys.md): where the key
is read, what a valid key gives the upstream and the access log, every
refusal (missing, malformed, unknown, revoked, disabled, expired, replaced
by a rotation, two keys), the key's lifecycle through the CLI while the
server runs, keys with JWTs (any, all, optional), and a store that cannot
be opened. Keys are made with the real CLI in the real SQLite store; the
store file is edited directly (python's sqlite3) only to move a key's
expiry into the past without waiting."""

import json
import re
import sqlite3
import subprocess
import time

from harness import echo_of, fetch, free_port, gatehouse_bin, hdr
from jwt_util import ISS, mint, provider, raw_token, rsa_key
from ops_util import read_json_lines, wait_for

KEY_RE = re.compile(r"\bgh_[a-z2-7]{12}_[A-Za-z0-9]{43}\b")


def config(up, db, apikeys=None, routes=None, jwt=None, access_log=None, store=True):
    cfg = {
        "listeners": [{"name": "edge", "routes": routes or [
            {"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "keys", "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "providers": {"apikeys": apikeys if apikeys is not None else {"keys": {"cache_ttl": "0s",
                                                                              "negative_cache_ttl": "0s"}}},
    }
    if store:
        cfg["store"] = {"kind": "sqlite", "path": str(db)}
    if jwt:
        cfg["providers"]["jwt"] = jwt
    if access_log:
        cfg["access_log"] = {"path": str(access_log),
                             "fields": ["route", "method", "path", "status", "consumer", "principal"]}
    return cfg


def cli(cfg_path, *args, check=True):
    r = subprocess.run([str(gatehouse_bin()), "apikey", *args, "--config", str(cfg_path)],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def create(g, consumer, *extra):
    r = cli(g.config_path, "create", "--consumer", consumer, *extra)
    m = KEY_RE.search(r.stdout)
    assert m, r.stdout
    key = m.group(0)
    return key, key[3:15]


def get(g, target="/echo", key=None, headers=()):
    hs = list(headers)
    if key is not None:
        hs.append(("x-api-key", key))
    return fetch(g.port, "GET", target, headers=hs)


def body(r):
    return json.loads(r.body)


def refused(r, status, code, text):
    assert r.status == status, (r.status, r.body)
    b = body(r)
    assert b["error"] == code, b
    assert text in b["detail"], b
    if status == 401:
        assert hdr(r.headers, "www-authenticate") == ['ApiKey realm="gatehouse"'], r.headers


def start(gatehouse, upstream, tmp_path, **kw):
    up = upstream()
    g = gatehouse(config(up, tmp_path / "gh.db", **kw))
    return g, up


def test_valid_key_gives_the_consumer_and_is_not_forwarded(gatehouse, upstream, tmp_path):
    log = tmp_path / "access.log"
    g, _ = start(gatehouse, upstream, tmp_path, access_log=log)
    key, kid = create(g, "alice", "--scopes", "orders:read,orders:write")
    for _ in range(3):
        r = get(g, key=key, headers=[("x-consumer", "mallory"), ("x_consumer", "mallory")])
        assert r.status == 200, r.body
        seen = echo_of(r)["headers"]
        assert hdr(seen, "x-consumer") == ["alice"], seen
        assert hdr(seen, "x_consumer") == [], seen
        assert hdr(seen, "x-api-key") == [], seen
    lines = wait_for(lambda: (lambda v: v if len(v) >= 3 else None)(read_json_lines(log)), 5, "log lines")
    assert all(line["consumer"] == "alice" for line in lines), lines
    text = log.read_text()
    assert key not in text and key[16:] not in text


def test_refusals(gatehouse, upstream, tmp_path):
    g, _ = start(gatehouse, upstream, tmp_path)
    key, _ = create(g, "alice")
    refused(get(g), 401, "missing_api_key", "no API key")
    refused(get(g, key=""), 401, "missing_api_key", "no API key")
    unknown = "gh_" + "a" * 12 + "_" + "B" * 43
    refused(get(g, key=unknown), 401, "invalid_api_key", "unknown API key")
    # The right id with a wrong secret reads exactly like an unknown key.
    wrong = key[:16] + ("A" if key[16] != "A" else "B") + key[17:]
    refused(get(g, key=wrong), 401, "invalid_api_key", "unknown API key")
    for bad in ("short", key[:10] + " " + key[11:], key + "\xe9", "k" * 129):
        refused(get(g, key=bad), 401, "invalid_api_key", "malformed API key")
    # Two fields, equal or not, are refused; one valid key still passes.
    two = fetch(g.port, "GET", "/echo", headers=[("x-api-key", key), ("x-api-key", key)])
    refused(two, 401, "invalid_api_key", "more than one")
    two = fetch(g.port, "GET", "/echo", headers=[("X-Api-Key", key), ("x-api-key", unknown)])
    refused(two, 401, "invalid_api_key", "more than one")
    assert get(g, key=key).status == 200


def test_underscore_spelling_is_a_second_key_when_cached(gatehouse, upstream, tmp_path):
    # The default cache: a key seen once is decided by the short path after
    # (one provider, one field); a '_' spelling beside it is still a second
    # key there, as on a miss, and alone it is the key.
    g, _ = start(gatehouse, upstream, tmp_path, apikeys={"keys": {}})
    key, _ = create(g, "alice")
    unknown = "gh_" + "a" * 12 + "_" + "B" * 43
    for _ in range(2):
        assert get(g, key=key).status == 200
        for other in (unknown, key):
            for first, second in (("x-api-key", "x_api_key"), ("x_api_key", "X-API-KEY")):
                two = fetch(g.port, "GET", "/echo", headers=[(first, key), (second, other)])
                refused(two, 401, "invalid_api_key", "more than one")
        r = fetch(g.port, "GET", "/echo", headers=[("X_API_KEY", key)])
        assert r.status == 200, r.body
        assert hdr(echo_of(r)["headers"], "x_api_key") == []


def test_lifecycle_while_running(gatehouse, upstream, tmp_path):
    g, _ = start(gatehouse, upstream, tmp_path)
    key, kid = create(g, "alice")
    assert get(g, key=key).status == 200
    # Rotation with a grace: both keys work; the new one names the consumer.
    r = cli(g.config_path, "rotate", kid, "--grace", "1h")
    new = KEY_RE.search(r.stdout).group(0)
    assert new != key
    assert get(g, key=key).status == 200
    assert echo_of(get(g, key=new))["headers"] and hdr(echo_of(get(g, key=new))["headers"],
                                                       "x-consumer") == ["alice"]
    # Rotation without a grace: the old key is replaced at once.
    r = cli(g.config_path, "rotate", new[3:15], "--grace", "0s")
    newer = KEY_RE.search(r.stdout).group(0)
    refused(get(g, key=new), 401, "invalid_api_key", "replaced")
    assert get(g, key=newer).status == 200
    # Revocation (cache_ttl 0: at the next request).
    cli(g.config_path, "revoke", newer[3:15])
    refused(get(g, key=newer), 401, "invalid_api_key", "revoked API key")
    # Expiry and disabling, written into the store's file.
    key2, kid2 = create(g, "bob")
    assert get(g, key=key2).status == 200
    db = sqlite3.connect(str(tmp_path / "gh.db"), timeout=10)
    cols = [c[1] for c in db.execute("PRAGMA table_info(api_keys)")]
    assert "expires_at" in cols and "enabled" in cols, cols
    db.execute("UPDATE api_keys SET expires_at = ? WHERE id = ?", (int(time.time()) - 5, kid2))
    db.commit()
    refused(get(g, key=key2), 401, "invalid_api_key", "expired API key")
    db.execute("UPDATE api_keys SET expires_at = 0, enabled = 0 WHERE id = ?", (kid2,))
    db.commit()
    refused(get(g, key=key2), 401, "invalid_api_key", "disabled API key")
    db.close()


def test_keys_survive_a_restart(gatehouse, upstream, tmp_path):
    up = upstream()
    cfg = config(up, tmp_path / "gh.db")
    g = gatehouse(cfg)
    key, _ = create(g, "alice")
    assert get(g, key=key).status == 200
    assert g.stop() == 0
    g2 = gatehouse(cfg)
    assert get(g2, key=key).status == 200


def test_cached_key_and_revocation_bound(gatehouse, upstream, tmp_path):
    """With a cache_ttl, a revocation takes effect once the worker's entry
    is older than it; negative entries are remembered for
    negative_cache_ttl (a key created meanwhile waits that long)."""
    g, _ = start(gatehouse, upstream, tmp_path,
                 apikeys={"keys": {"cache_ttl": "1s", "negative_cache_ttl": "1s"}})
    key, kid = create(g, "alice")
    assert get(g, key=key).status == 200
    cli(g.config_path, "revoke", kid)
    t0 = time.monotonic()
    wait_for(lambda: get(g, key=key).status == 401, 5, "revocation after cache_ttl", interval=0.05)
    assert time.monotonic() - t0 < 4


def test_query_parameter_key(gatehouse, upstream, tmp_path):
    log = tmp_path / "access.log"
    up = upstream()
    cfg = config(up, tmp_path / "gh.db", apikeys={"keys": {"query": "api_key", "header": "x-api-key",
                                                           "cache_ttl": "0s"}}, access_log=log)
    cfg["access_log"]["fields"].append("query")
    g = gatehouse(cfg)
    key, _ = create(g, "alice")
    r = get(g, f"/echo?a=1&api_key={key}&b=2")
    assert r.status == 200, r.body
    assert echo_of(r)["target"] == "/echo?a=1&b=2", echo_of(r)
    # The same key in the field and the parameter is one key; two different ones are refused.
    assert get(g, f"/echo?api_key={key}", key=key).status == 200
    refused(get(g, f"/echo?api_key={key}", key="gh_" + "a" * 12 + "_" + "B" * 43), 401,
            "invalid_api_key", "more than one")
    refused(get(g, f"/echo?api_key={key}&API_KEY={key}"), 401, "invalid_api_key", "more than one")
    wait_for(lambda: len(read_json_lines(log)) >= 4, 5, "log lines")
    assert key not in log.read_text()


def test_forward_key_true_keeps_it(gatehouse, upstream, tmp_path):
    g, _ = start(gatehouse, upstream, tmp_path,
                 apikeys={"keys": {"forward_key": True, "consumer_header": "x-who", "cache_ttl": "0s"}})
    key, _ = create(g, "alice")
    seen = echo_of(get(g, key=key, headers=[("x-who", "root")]))["headers"]
    assert hdr(seen, "x-api-key") == [key] and hdr(seen, "x-who") == ["alice"], seen


def test_keys_with_jwts(gatehouse, upstream, tmp_path):
    rsa = rsa_key()
    jwt = {"corp": provider(keys=[rsa])}
    routes = [
        {"name": "any", "match": {"path": {"prefix": "/any"}}, "authn": {"any": ["corp", "keys"]}, "to": "app"},
        {"name": "all", "match": {"path": {"prefix": "/all"}}, "authn": {"all": ["keys", "corp"]}, "to": "app"},
        {"name": "opt", "match": {"path": {"prefix": "/opt"}}, "authn": {"optional": ["keys"]}, "to": "app"},
    ]
    g, _ = start(gatehouse, upstream, tmp_path, routes=routes, jwt=jwt)
    key, _ = create(g, "alice")
    tok = mint(rsa, sub="svc")
    bearer = [("Authorization", f"Bearer {tok}")]
    unknown = "gh_" + "a" * 12 + "_" + "B" * 43
    # any: either credential; a key that is there decides.
    assert get(g, "/any", key=key).status == 200
    assert get(g, "/any", headers=bearer).status == 200
    assert get(g, "/any").status == 401
    refused(get(g, "/any", key=unknown, headers=bearer), 401, "invalid_api_key", "unknown")
    # all: both.
    r = get(g, "/all", key=key, headers=bearer)
    assert r.status == 200, r.body
    seen = echo_of(r)["headers"]
    assert hdr(seen, "x-consumer") == ["alice"], seen
    refused(get(g, "/all", headers=bearer), 401, "missing_api_key", "no API key")
    assert get(g, "/all", key=key).status == 401
    # optional: nothing passes, an invalid key never does.
    assert get(g, "/opt").status == 200
    refused(get(g, "/opt", key=unknown), 401, "invalid_api_key", "unknown")
    assert get(g, "/opt", key=key).status == 200


def test_store_that_cannot_be_opened_is_503_and_not_ready(gatehouse, upstream, tmp_path):
    up = upstream()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    cfg = config(up, blocker / "gh.db")
    cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    g = gatehouse(cfg)
    r = get(g, key="gh_" + "a" * 12 + "_" + "B" * 43)
    assert r.status == 503, r.body
    assert body(r)["error"] == "service_unavailable"
    assert "store" in body(r)["detail"]


def test_config_errors(gatehouse, tmp_path):
    import harness
    bad = [
        ({"keys": {"header": "content-length"}}, "header 'content-length'"),
        ({"keys": {"consumer_header": "host"}}, "consumer_header 'host'"),
        ({"keys": {"query": "a&b"}}, "not a plain parameter name"),
        ({"keys": {"cache_ttl": "2h"}}, "cache_ttl is at most 1h"),
        ({"keys": {"bogus": 1}}, "bogus"),
    ]
    for apikeys, msg in bad:
        text = harness.to_yaml({
            "listeners": [{"name": "e", "listen": "127.0.0.1:1", "routes": [
                {"match": {"path": {"prefix": "/"}}, "authn": "keys", "direct_response": {"status": 200}}]}],
            "providers": {"apikeys": apikeys}})
        p = tmp_path / "bad.yaml"
        p.write_text(text)
        r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True, text=True)
        assert r.returncode != 0 and msg in r.stderr, (apikeys, r.stderr)
    # A name that is both a jwt and an apikeys provider.
    text = harness.to_yaml({
        "listeners": [{"name": "e", "listen": "127.0.0.1:1", "routes": [
            {"match": {"path": {"prefix": "/"}}, "direct_response": {"status": 200}}]}],
        "providers": {"jwt": {"k": provider(keys=[rsa_key()])}, "apikeys": {"k": {}}}})
    p.write_text(text)
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode != 0 and "both a jwt and an apikeys provider" in r.stderr, r.stderr
    assert ISS


def test_usage_plans_with_real_keys(gatehouse, upstream, tmp_path):
    """A key's plan (from its record in the store) is enforced by the
    rate_limits filter on every authenticated route: its quota per
    consumer, a rotated key sharing it, its routes (403 elsewhere), and a
    plan the config does not have (403)."""
    up = upstream()
    routes = [
        {"name": "api", "match": {"path": {"prefix": "/api"}}, "authn": "keys", "to": "app"},
        {"name": "other", "match": {"path": {"prefix": "/other"}}, "authn": "keys", "to": "app"},
    ]
    cfg = config(up, tmp_path / "gh.db", routes=routes)
    cfg["plans"] = {
        "bronze": {"quota": {"limit": 3, "period": "day"}},
        "gold": {"routes": {"api": {}}},
    }
    g = gatehouse(cfg)
    bronze, bid = create(g, "alice", "--plan", "bronze")
    for _ in range(2):
        assert get(g, "/api/x", key=bronze).status == 200
    # A rotated key counts against its consumer's quota, not a fresh one.
    r = cli(g.config_path, "rotate", bid, "--grace", "1h")
    newer = KEY_RE.search(r.stdout).group(0)
    assert get(g, "/other/x", key=newer).status == 200
    r = get(g, "/api/x", key=bronze)
    assert r.status == 429, r.body
    assert body(r)["error"] == "rate_limited"
    assert int(hdr(r.headers, "retry-after")[0]) > 0
    assert hdr(r.headers, "ratelimit") and hdr(r.headers, "ratelimit-policy"), r.headers
    assert get(g, "/api/x", key=newer).status == 429
    # Another consumer has its own quota.
    other, _ = create(g, "bob", "--plan", "bronze")
    assert get(g, "/api/x", key=other).status == 200
    # A plan's routes: others are 403, valid but not allowed here.
    gold, _ = create(g, "carol", "--plan", "gold")
    assert get(g, "/api/x", key=gold).status == 200
    r = get(g, "/other/x", key=gold)
    assert r.status == 403, r.body
    assert body(r)["error"] == "forbidden"
    # A plan the config does not have: 403, not unlimited.
    ghost, _ = create(g, "dave", "--plan", "platinum")
    assert get(g, "/api/x", key=ghost).status == 403
    # No plan: no plan limits.
    free, _ = create(g, "erin")
    for _ in range(5):
        assert get(g, "/api/x", key=free).status == 200


def test_all_route_with_two_key_providers(gatehouse, upstream, tmp_path):
    """`all` with two API-key providers, each key looked up in the store
    (no cache): the second lookup must not send the first provider back
    to the store (a request that never ends), and each provider's edits
    are made once."""
    up = upstream()
    routes = [{"name": "all", "match": {"path": {"prefix": "/"}}, "authn": {"all": ["ka", "kb"]}, "to": "app"}]
    for ttl in ("0s", "30s"):
        cfg = config(up, tmp_path / f"gh{ttl}.db", routes=routes, apikeys={
            "ka": {"header": "x-a", "cache_ttl": ttl, "consumer_header": "x-ca"},
            "kb": {"header": "x-b", "cache_ttl": ttl, "consumer_header": "x-cb"}})
        g = gatehouse(cfg)
        a, _ = create(g, "alice")
        b, _ = create(g, "bob")
        for _ in range(2):
            r = fetch(g.port, "GET", "/echo", headers=[("x-a", a), ("x-b", b)], timeout=10)
            assert r.status == 200, r.body
            seen = echo_of(r)["headers"]
            assert hdr(seen, "x-ca") == ["alice"] and hdr(seen, "x-cb") == ["bob"], seen
        refused(fetch(g.port, "GET", "/echo", headers=[("x-a", a)]), 401, "missing_api_key", "no API key")
        g.stop()


def test_key_decided_route_forwards_no_unverified_token(gatehouse, upstream, tmp_path):
    """On an any/optional route a key decides, whatever token comes with
    it: that token was never verified, so it must not reach the upstream,
    which (forward_token: true) trusts what gatehouse forwards as checked.
    A forged token beside one's own valid key would otherwise pass as a
    verified identity."""
    rsa = rsa_key()
    jwt = {"corp": provider(keys=[rsa], forward_token=True)}
    routes = [
        {"name": "any", "match": {"path": {"prefix": "/any"}}, "authn": {"any": ["corp", "keys"]}, "to": "app"},
        {"name": "opt", "match": {"path": {"prefix": "/opt"}}, "authn": {"optional": ["keys", "corp"]},
         "to": "app"},
    ]
    g, _ = start(gatehouse, upstream, tmp_path, routes=routes, jwt=jwt)
    key, _ = create(g, "alice")
    forged = raw_token({"alg": "RS256", "kid": rsa.kid}, {"iss": ISS, "sub": "admin", "aud": "x"}, b"junk")
    for target in ("/any", "/opt"):
        for scheme in ("Bearer", "bearer"):
            r = get(g, target, key=key, headers=[("Authorization", f"{scheme} {forged}")])
            assert r.status == 200, r.body
            seen = echo_of(r)["headers"]
            assert hdr(seen, "authorization") == [], seen
            assert hdr(seen, "x-consumer") == ["alice"], seen
        # Another scheme is no token: it goes on as it came.
        r = get(g, target, key=key, headers=[("Authorization", "Basic YTpi")])
        assert hdr(echo_of(r)["headers"], "authorization") == ["Basic YTpi"]
    # A token that decides (no key) is verified and forwarded as before.
    tok = mint(rsa, sub="bob")
    r = get(g, "/any", headers=[("Authorization", f"Bearer {tok}")])
    assert r.status == 200 and hdr(echo_of(r)["headers"], "authorization") == [f"Bearer {tok}"]


def test_all_route_identity_has_the_tokens_principal(gatehouse, upstream, tmp_path):
    """`all` with a key and a token: the policies after authn see the
    token's principal and claims, not only the key's consumer. A DENY on a
    principal or a claim must not be stepped around by adding a key."""
    rsa = rsa_key()
    jwt = {"corp": provider(keys=[rsa])}
    routes = [
        {"name": "all", "match": {"path": {"prefix": "/all"}}, "authn": {"all": ["corp", "keys"]},
         "policies": ["deny-mallory", "deny-banned", "allow-alice-consumer"], "to": "app"},
        {"name": "rev", "match": {"path": {"prefix": "/rev"}}, "authn": {"all": ["keys", "corp"]},
         "policies": ["deny-mallory"], "to": "app"},
    ]
    up = upstream()
    log = tmp_path / "access.log"
    cfg = config(up, tmp_path / "gh.db", routes=routes, jwt=jwt, access_log=log)
    cfg["policies"] = {
        "deny-mallory": {"action": "DENY",
                         "rules": [{"from": [{"source": {"request_principals": [f"{ISS}/mallory"]}}]}]},
        "deny-banned": {"action": "DENY",
                        "rules": [{"when": [{"key": "request.auth.claims[role]", "values": ["banned"]}]}]},
        "allow-alice-consumer": {"action": "ALLOW", "rules": [{"from": [{"source": {"consumers": ["alice"]}}]}]},
    }
    g = gatehouse(cfg)
    key, _ = create(g, "alice")
    for target in ("/all", "/rev"):
        r = get(g, target, key=key, headers=[("Authorization", f"Bearer {mint(rsa, sub='mallory')}")])
        assert r.status == 403 and body(r)["policy"] == "deny-mallory", (target, r.status, r.body)
    r = get(g, "/all", key=key, headers=[("Authorization", f"Bearer {mint(rsa, sub='bob', role='banned')}")])
    assert r.status == 403 and body(r)["policy"] == "deny-banned", r.body
    r = get(g, "/all", key=key, headers=[("Authorization", f"Bearer {mint(rsa, sub='bob', role='user')}")])
    assert r.status == 200, r.body
    line = wait_for(lambda: (lambda v: v[-1] if len(v) >= 4 else None)(read_json_lines(log)), 5, "log")
    assert line["consumer"] == "alice" and line["principal"] == "bob", line


def test_key_field_spelled_with_underscores(gatehouse, upstream, tmp_path):
    """CGI-style upstreams (WSGI, PHP, Rack) read x_api_key as X-Api-Key:
    the field is compared as they read it, so a second spelling is a second
    key (refused), never a key gatehouse did not check going upstream with
    forward_key: true."""
    g, _ = start(gatehouse, upstream, tmp_path,
                 apikeys={"keys": {"forward_key": True, "cache_ttl": "0s"}})
    key, _ = create(g, "alice")
    other = "gh_" + "a" * 12 + "_" + "B" * 43
    for name in ("x_api_key", "X_Api-Key", "x-api_key"):
        refused(fetch(g.port, "GET", "/echo", headers=[("x-api-key", key), (name, other)]),
                401, "invalid_api_key", "more than one")
        r = fetch(g.port, "GET", "/echo", headers=[(name, key)])
        assert r.status == 200, (name, r.body)
        assert hdr(echo_of(r)["headers"], "x-consumer") == ["alice"]



def test_each_provider_keeps_its_own_cache_ttl(gatehouse, upstream, tmp_path):
    """Two providers share each worker's cache of keys: a key one of them
    cached for a minute must not be served for a minute by the other,
    whose cache_ttl 0s says "ask the store on every request" (its bound on
    a revocation), nor a key it found unknown be unknown there longer than
    its own negative_cache_ttl."""
    up = upstream()
    routes = [{"name": "slow", "match": {"path": {"prefix": "/slow"}}, "authn": "ka", "to": "app"},
              {"name": "fast", "match": {"path": {"prefix": "/fast"}}, "authn": "kb", "to": "app"}]
    cfg = config(up, tmp_path / "gh.db", routes=routes, apikeys={
        "ka": {"cache_ttl": "60s", "negative_cache_ttl": "60s"},
        "kb": {"cache_ttl": "0s", "negative_cache_ttl": "0s"}})
    g = gatehouse(cfg)
    key, kid = create(g, "alice")
    assert get(g, "/slow", key=key).status == 200
    cli(g.config_path, "revoke", kid)
    refused(get(g, "/fast", key=key), 401, "invalid_api_key", "revoked API key")
    assert get(g, "/slow", key=key).status == 200  # its own bound: a minute
    # A key looked up before it existed (unknown, remembered a minute by
    # ka), then imported: kb asks the store again at once.
    aws = "apikey4242abcdefghij0123456789"
    refused(get(g, "/slow", key=aws), 401, "invalid_api_key", "unknown")
    csv = tmp_path / "keys.csv"
    csv.write_text(f"Name,Key\nbob,{aws}\n")
    cli(g.config_path, "import", str(csv))
    r = get(g, "/fast", key=aws)
    assert r.status == 200, r.body
    refused(get(g, "/slow", key=aws), 401, "invalid_api_key", "unknown")


def test_key_with_a_plan_and_no_plans_configured(gatehouse, upstream, tmp_path):
    """A key naming a plan on a gatehouse whose config has no `plans` is
    refused like a plan the config does not have (403), not served without
    limits; a key without a plan passes."""
    g, _ = start(gatehouse, upstream, tmp_path)
    planned, _ = create(g, "alice", "--plan", "gold")
    for _ in range(2):  # a lookup, then the cached entry
        r = get(g, key=planned)
        assert r.status == 403, r.body
        assert body(r)["error"] == "forbidden" and "plan" in body(r)["detail"], body(r)
    free, _ = create(g, "bob")
    assert get(g, key=free).status == 200


def test_every_one_byte_change_of_a_cached_key_is_refused(gatehouse, upstream, tmp_path):
    # The cache compares whole keys (sixteen bytes at a time): a key one
    # byte off anywhere, id or secret, same length, is not the cached key.
    g, _ = start(gatehouse, upstream, tmp_path, apikeys={"keys": {}})
    key, _ = create(g, "alice")
    assert get(g, key=key).status == 200
    for i in range(len(key)):
        c = key[i]
        other = "b" if c != "b" else "c"
        if i >= 16:
            other = "Q" if c != "Q" else "R"
        near = key[:i] + other + key[i + 1:]
        r = get(g, key=near)
        assert r.status == 401, (i, r.status, r.body)
    assert get(g, key=key).status == 200


def test_field_names_of_every_length_in_any_case_on_the_cached_path(gatehouse, upstream, tmp_path):
    # The cached-key path compares the key's field name eight bytes at a
    # time for names of 8 to 16 bytes; shorter and longer names the plain
    # way. Every spelling of each (any case, '_' for '-') is the key; a name
    # one byte off is not.
    names = ["k9", "api-key", "x-api-k1", "x-gateway-key-01", "x-gateway-key-012", "x-9-0-key"]
    provs = {f"p{i}": {"header": n} for i, n in enumerate(names)}
    routes = [{"name": f"r{i}", "match": {"path": {"prefix": f"/r{i}/"}}, "authn": f"p{i}", "to": "app"}
              for i in range(len(names))]
    g, _ = start(gatehouse, upstream, tmp_path, apikeys=provs, routes=routes)
    key, _ = create(g, "alice")
    for i, n in enumerate(names):
        spellings = [n, n.upper(), n.title(), n.replace("-", "_"), n.upper().replace("-", "_")]
        for _ in range(2):
            for sp in spellings:
                r = fetch(g.port, "GET", f"/r{i}/echo", headers=[(sp, key)])
                assert r.status == 200, (n, sp, r.status, r.body)
                assert hdr(echo_of(r)["headers"], sp) == [], (n, sp)
            off = n[:-1] + ("q" if n[-1] != "q" else "r")
            r = fetch(g.port, "GET", f"/r{i}/echo", headers=[(off, key)])
            refused(r, 401, "missing_api_key", "no API key")
            off = ("q" if n[0] != "q" else "r") + n[1:]
            r = fetch(g.port, "GET", f"/r{i}/echo", headers=[(off, key)])
            refused(r, 401, "missing_api_key", "no API key")
