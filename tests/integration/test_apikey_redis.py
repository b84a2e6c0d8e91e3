"""API keys in a Redis store shared by a fleet (docs/api-keys.md#the-store,
docs/internals/store.md#redis): two gatehouse processes in front of one real
redis-server see the same keys, the same revocations and add up to the same
usage counts, with the keys made, revoked and read through the real CLI
(`gatehouse apikey ... -c CONFIG`, the store section saying kind: redis).

Redis going away is part of the contract: a request whose key is not cached
gets 503 (store_unavailable) without waiting on the dead Redis, a cached key
keeps working until its cache_ttl, a stopped Redis (SIGSTOP: accepts, never
answers) costs a request at most the store's timeout, and when Redis is back
(restarted, empty) both gatehouses use it again without a restart. A server
also starts while its Redis is down. Nothing here asserts a duration: waits
have deadlines, statuses are asserted."""

import json
import re
import subprocess

from harness import echo_of, fetch, gatehouse_bin, hdr
from ops_util import wait_for

KEY_RE = re.compile(r"\bgh_[a-z2-7]{12}_[A-Za-z0-9]{43}\b")
PREFIX = "fleet:"


def config(up, redis, cache_ttl="0s", timeout="250ms"):
    return {
        "listeners": [{"name": "edge", "routes": [
            {"name": "api", "match": {"path": {"prefix": "/"}}, "authn": "keys", "to": "app"}]}],
        "clusters": {"app": {"endpoints": [f"127.0.0.1:{up.port}"]}},
        "providers": {"apikeys": {"keys": {"cache_ttl": cache_ttl, "negative_cache_ttl": "0s"}}},
        "plans": {"gold": {}},
        "store": {"kind": "redis", "address": f"127.0.0.1:{redis.port}", "prefix": PREFIX,
                  "timeout": timeout, "usage_flush": "100ms"},
    }


def cli(cfg_path, *args, check=True):
    r = subprocess.run([str(gatehouse_bin()), "apikey", *args, "-c", str(cfg_path)],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def create(cfg_path, consumer, *extra):
    r = cli(cfg_path, "create", "--consumer", consumer, *extra)
    m = KEY_RE.search(r.stdout)
    assert m, r.stdout
    return m.group(0), m.group(0)[3:15]


def get(g, key):
    return fetch(g.port, "GET", "/echo", headers=[("x-api-key", key)])


def status(g, key):
    return get(g, key).status


def refused(r, st, code, text):
    assert r.status == st, (r.status, r.body)
    b = json.loads(r.body)
    assert b["error"] == code, b
    assert text in b["detail"], b


def fleet(gatehouse, upstream, redis, workers=2, args=(), **kw):
    up = upstream()
    cfg = config(up, redis, **kw)
    return gatehouse(cfg, workers=workers, args=args), gatehouse(cfg, workers=workers, args=args)


def test_two_gatehouses_share_keys_revocations_and_usage(gatehouse, upstream, redis_server):
    g1, g2 = fleet(gatehouse, upstream, redis_server, args=("--log-level", "debug"))
    key, kid = create(g1.config_path, "alice", "--plan", "gold")
    # The CLI wrote it to Redis, under the prefix: nothing on disk.
    assert redis_server.cmd("EXISTS", f"{PREFIX}key:{kid}") == 1
    assert redis_server.cmd("HGET", f"{PREFIX}key:{kid}", "consumer") == b"alice"
    for g in (g1, g2):
        r = get(g, key)
        assert r.status == 200, r.body
        assert hdr(echo_of(r)["headers"], "x-consumer") == ["alice"]
    for _ in range(3):
        assert status(g1, key) == 200
    for _ in range(4):
        assert status(g2, key) == 200
    # Usage from both processes adds up in one count per day.
    wait_for(lambda: json.loads(cli(g2.config_path, "usage", kid, "--json").stdout)["today"] == 9,
             15, "usage from both gatehouses")
    shown = json.loads(cli(g1.config_path, "show", kid, "--json").stdout)
    assert shown["consumer"] == "alice" and shown["plan"] == "gold", shown
    listed = cli(g1.config_path, "list", "--json").stdout
    assert kid in listed
    # Rotated through one gatehouse's config: both accept the new key and,
    # within the grace, the old one.
    new = KEY_RE.search(cli(g2.config_path, "rotate", kid, "--grace", "1h").stdout).group(0)
    for g in (g1, g2):
        assert status(g, new) == 200
        assert status(g, key) == 200
    # Revoked through the CLI: with cache_ttl 0s both refuse it at once.
    cli(g1.config_path, "revoke", new[3:15])
    for g in (g1, g2):
        refused(get(g, new), 401, "invalid_api_key", "revoked API key")
        assert status(g, key) == 200  # the rotated one, in its grace
    r = cli(g1.config_path, "revoke", new[3:15], check=False)
    assert r.returncode != 0 and "revoked before" in r.stderr, (r.returncode, r.stderr)
    unknown = "gh_" + "a" * 12 + "_" + "B" * 43
    for g in (g1, g2):
        refused(get(g, unknown), 401, "invalid_api_key", "unknown API key")
    # A clean stop: each worker's Redis client is released after the worker
    # ended (the sanitized build also checks that nothing leaks or is used
    # after it is freed).
    for g in (g1, g2):
        assert g.stop() == 0, g.stderr_tail()
        assert "released the Redis client of a loop that ended" in g.stderr, g.stderr_tail()


def test_redis_killed_and_restarted(gatehouse, upstream, redis_server):
    # One worker each, so that "cached" means cached where the request goes.
    g1, g2 = fleet(gatehouse, upstream, redis_server, workers=1, cache_ttl="5s")
    cached, _ = create(g1.config_path, "alice")
    uncached, _ = create(g1.config_path, "bob")
    for g in (g1, g2):
        assert status(g, cached) == 200
    redis_server.kill()
    # A cached key keeps working without Redis...
    for g in (g1, g2):
        assert status(g, cached) == 200
    # ...an uncached one finds the store unavailable, answered without
    # waiting on the dead Redis (the fetch's own timeout bounds the test)...
    for g in (g1, g2):
        for _ in range(4):
            refused(get(g, uncached), 503, "service_unavailable", "key store is unavailable")
    # ...and the cached one needs the store again once its cache_ttl is over.
    for g in (g1, g2):
        wait_for(lambda g=g: status(g, cached) == 503, 20, "the cached key's entry to expire")
        assert "store lookup failed: no connection to the store" in g.stderr, g.stderr_tail()
    # The CLI says what is wrong, and fails.
    r = cli(g1.config_path, "list", check=False)
    assert r.returncode != 0 and "cannot connect to Redis" in r.stderr, (r.returncode, r.stderr)
    # Back, empty: no restart of either gatehouse.
    redis_server.restart()
    key, _ = wait_for(lambda: (lambda r: KEY_RE.search(r.stdout) and (KEY_RE.search(r.stdout).group(0), 0))(
        cli(g1.config_path, "create", "--consumer", "carol", check=False)), 20, "the CLI to reach Redis")
    for g in (g1, g2):
        wait_for(lambda g=g: all(status(g, key) == 200 for _ in range(4)), 30,
                 "both gatehouses to use Redis again")
        refused(get(g, uncached), 401, "invalid_api_key", "unknown API key")  # the old data is gone


def test_stopped_redis_costs_at_most_the_timeout(gatehouse, upstream, redis_server):
    g1, g2 = fleet(gatehouse, upstream, redis_server, timeout="200ms")
    key, _ = create(g1.config_path, "alice")
    for g in (g1, g2):
        assert status(g, key) == 200
    redis_server.pause()
    try:
        for g in (g1, g2):
            for _ in range(3):
                refused(get(g, key), 503, "service_unavailable", "key store is unavailable")
    finally:
        redis_server.resume()
    for g in (g1, g2):
        wait_for(lambda g=g: all(status(g, key) == 200 for _ in range(4)), 30, "recovery")


def test_server_starts_while_redis_is_down(gatehouse, upstream, redis_server):
    redis_server.kill()
    up = upstream()
    cfg = config(up, redis_server)
    g = gatehouse(cfg, workers=2)
    some = "gh_" + "a" * 12 + "_" + "B" * 43
    refused(get(g, some), 503, "service_unavailable", "key store is unavailable")
    redis_server.restart()
    key, _ = wait_for(lambda: (lambda r: KEY_RE.search(r.stdout) and (KEY_RE.search(r.stdout).group(0), 0))(
        cli(g.config_path, "create", "--consumer", "alice", check=False)), 20, "the CLI to reach Redis")
    wait_for(lambda: all(status(g, key) == 200 for _ in range(4)), 30, "the server to use Redis")
