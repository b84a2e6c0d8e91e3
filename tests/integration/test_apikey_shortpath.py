"""The cached-key short path (apikey.c gh_jwtf_ak_fast) against the general
path (gh_jwtf_decide), on the real binary: two routes with the same key
provider settings, one whose keys are looked up in the store on every
request (cache_ttl 0s: always the general path) and one whose keys are
cached (a key seen once goes the short way after). Every probe must get
the same answer and the upstream the same fields on both, whatever the
spelling of the key's field, empty or repeated fields, whitespace around
the key, or fields named like the identity field."""

import json
import time

from harness import RawConn, fetch, free_port
from ops_util import wait_for, wait_metric
from test_apikey_auth import cli, create

UNKNOWN = "gh_" + "a" * 12 + "_" + "B" * 43


def config(up, db, header="x-api-key", forward_key=False, consumer_header="x-consumer"):
    common = {"header": header, "forward_key": forward_key, "consumer_header": consumer_header}
    return {
        "listeners": [{"name": "edge", "routes": [
            {"name": "slow", "match": {"path": {"prefix": "/gen/"}}, "authn": "slow", "to": "app"},
            {"name": "fast", "match": {"path": {"prefix": "/cached/"}}, "authn": "fast", "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "providers": {"apikeys": {
            "slow": dict(common, cache_ttl="0s", negative_cache_ttl="0s"),
            "fast": dict(common, cache_ttl="60s", negative_cache_ttl="0s")}},
        "store": {"kind": "sqlite", "path": str(db)},
    }


def answer(r):
    """What a client and the upstream see of one exchange."""
    if r.status != 200:
        return (r.status, json.loads(r.body).get("detail"))
    seen = r.json()["headers"]
    drop = {"x-request-id", "x-forwarded-for", "x-real-ip", "x-forwarded-host", "host", "via",
            "x-forwarded-proto"}
    return (200, sorted((k.lower(), v) for k, v in seen if k.lower() not in drop))


def same_on_both(g, probe, name):
    slow = answer(fetch(g.port, "GET", "/gen/echo", headers=probe))
    for _ in range(2):  # the second is surely decided from the cache
        fast = answer(fetch(g.port, "GET", "/cached/echo", headers=probe))
        assert fast == slow, (name, probe, slow, fast)
    return slow


def probes(field, key):
    up, us = field.upper(), field.replace("-", "_")
    return {
        "plain": [(field, key)],
        "upper": [(up, key)],
        "underscores": [(us, key)],
        "empty then key": [(field, ""), (field, key)],
        "key then empty": [(field, key), (field, "")],
        "empty other spelling": [(field, key), (us, "")],
        "same key twice, two spellings": [(up, key), (us, key)],
        "unknown beside": [(field, key), (us, UNKNOWN)],
        "spaces around": [(field, f"  {key}  ")],
        "tab before": [(field, f"\t{key}")],
        "name one longer": [(field + "x", key)],
        "name one shorter": [(field[:-1], key)],
        "identity sent": [(field, key), ("x-consumer", "mallory"), ("X_Consumer", "m2"),
                          ("X-CONSUMER", "m3")],
        "key as identity": [(field, key), ("x-consumer", key)],
        "listed in connection": [("Connection", field), (field, key)],
        "key with a trailing byte": [(field, key + "A")],
        "key one short": [(field, key[:-1])],
    }


def test_short_path_decides_as_the_general_path(gatehouse, upstream, tmp_path):
    up = upstream()
    for header, forward_key in (("x-api-key", False), ("x-api-key", True), ("k", False),
                                ("x-gateway-key-01", False), ("x-a-very-long-key-field", False)):
        g = gatehouse(config(up, tmp_path / f"{header}{forward_key}.db", header=header,
                             forward_key=forward_key))
        key, _ = create(g, "alice")
        long_consumer, _ = create(g, "c" * 256)
        for k in (key, long_consumer):
            assert fetch(g.port, "GET", "/cached/echo", headers=[(header, k)]).status == 200
            for name, probe in probes(header, k).items():
                same_on_both(g, probe, (header, forward_key, name))
        g.stop()


def test_short_path_after_expiry_rotation_and_plan(gatehouse, upstream, tmp_path):
    """A cached key whose lifetime ends while cached, the old key of a
    rotation whose grace ends while cached, and a key naming a plan the
    config does not have: refused the same on both routes, from the moment
    the store's answer says so (the entries hold the times)."""
    up = upstream()
    g = gatehouse(config(up, tmp_path / "gh.db"))
    short, _ = create(g, "alice", "--expires", "2s")
    old, kid = create(g, "bob")
    planned, _ = create(g, "carol", "--plan", "gold")
    r = cli(g.config_path, "rotate", kid, "--grace", "2s")
    for k in (short, old):
        assert fetch(g.port, "GET", "/cached/echo", headers=[("x-api-key", k)]).status == 200
    for k in (short, old):
        wait_for(lambda: fetch(g.port, "GET", "/gen/echo", headers=[("x-api-key", k)]).status == 401,
                 10, "the end of the key's life", interval=0.1)
        same_on_both(g, [("x-api-key", k)], k)
    assert same_on_both(g, [("x-api-key", planned)], "plan")[0] == 403
    assert r.returncode == 0


def test_pipelined_keys_on_one_connection(gatehouse, upstream, tmp_path):
    """Requests on one connection, each taking a recycled stream: a key,
    then none, then another key, then a plain route. No identity, drop or
    field of one reaches the next."""
    up = upstream()
    cfg = config(up, tmp_path / "gh.db")
    cfg["listeners"][0]["routes"].append(
        {"name": "open", "match": {"path": {"prefix": "/open/"}}, "to": "app"})
    g = gatehouse(cfg)
    a, _ = create(g, "alice")
    b, _ = create(g, "b" * 200)
    seq = [("/cached/echo", [("x-api-key", a)]), ("/open/echo", [("x-consumer", "mallory"),
                                                                ("x-api-key", "k")]),
           ("/cached/echo", [("x-api-key", b)]), ("/cached/echo", []),
           ("/open/echo", [("x_consumer", "m")]), ("/gen/echo", [("x-api-key", a)])]
    data = b"".join(RawConn.build("GET", t, headers=h) for t, h in seq * 3)
    for split in (len(data), 1, 7, 100):
        with RawConn(g.port) as c:
            for i in range(0, len(data), split):
                c.send(data[i:i + split])
            for i, (target, hs) in enumerate(seq * 3):
                r = c.read_response()
                if target.startswith("/cached") and not hs:
                    assert r.status == 401, (i, r)
                    continue
                assert r.status == 200, (i, r)
                seen = r.json()["headers"]
                cons = [v for k, v in seen if k.lower() in ("x-consumer", "x_consumer")]
                keys = [v for k, v in seen if k.lower() == "x-api-key"]
                if target.startswith("/open"):
                    assert cons == [hs[0][1]], (i, seen)
                    assert keys == ([hs[1][1]] if len(hs) > 1 else []), (i, seen)
                else:
                    want = "alice" if hs[0][1] == a else "b" * 200
                    assert cons == [want] and keys == [], (i, seen)


def test_each_provider_counts_its_own_cached_decisions(gatehouse, upstream, tmp_path):
    """The short path counts an accepted key in its provider's series of
    gatehouse_auth_decisions_total, as the general path does, not in the
    series of the provider it counted for first on the worker."""
    up = upstream()
    cfg = {
        "listeners": [{"name": "edge", "routes": [
            {"name": "a", "match": {"path": {"prefix": "/a/"}}, "authn": "ka", "to": "app"},
            {"name": "b", "match": {"path": {"prefix": "/b/"}}, "authn": "kb", "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "providers": {"apikeys": {"ka": {}, "kb": {}}},
        "store": {"kind": "sqlite", "path": str(tmp_path / "gh.db")},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
    }
    g = gatehouse(cfg)
    key, _ = create(g, "alice")
    admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    for path, n in (("/a/echo", 2), ("/b/echo", 5), ("/a/echo", 1)):
        for _ in range(n):
            assert fetch(g.port, "GET", path, headers=[("x-api-key", key)]).status == 200
    m = wait_metric(admin, "gatehouse_auth_decisions_total", 5, provider="kb", decision="allow",
                    reason="ok")
    assert m.value("gatehouse_auth_decisions_total", provider="ka", decision="allow", reason="ok") == 3
