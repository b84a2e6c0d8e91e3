"""Rate limits (route key `rate_limits`) through the real binary: keys by
client address (after trusted_proxies: a spoofed X-Forwarded-For from an
untrusted peer changes nothing), by header (case of the name, repeated
fields, missing and empty values), by a verified JWT claim (real tokens,
nested claims); several limits on one route (a request refused by one
counts in none); the 429 (JSON body, Retry-After, the RateLimit fields of
draft-ietf-httpapi-ratelimit-headers-11 checked by a Structured Field
parser written here); the fields on allowed responses; metrics and the
access log; exact counts across workers with parallel clients; counts
kept over a reload; and calendar quotas crossing their UTC boundary under
libfaketime (the wall clock only: the monotonic clock libuv and the token
buckets run on is left alone, FAKETIME_DONT_FAKE_MONOTONIC).

Usage plans need an identity with a plan (the API-key provider, later):
they are tested in-process, tests/unit/filters/test_ratelimit.c."""

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import RawConn, assert_refusal, fetch, free_port, gatehouse_bin, make_config
from jwt_util import ec_key, mint, provider
from ops_util import metrics, sighup, wait_for, wait_lines, wait_metric, write_config

EVENTS = "gatehouse_filter_events_total"
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")

# --------------------------------------------------------------------------
# The RateLimit fields: a strict parser for the Structured Field lists the
# draft defines (RFC 9651 lists of items: an sf-string with integer
# parameters), written from the grammar, not from gatehouse's output.

_ITEM = re.compile(r'"((?:[^"\\\x00-\x1f\x7f]|\\["\\])*)"((?:;[a-z*][a-z0-9_.*-]*(?:=-?[0-9]{1,15})?)*)')
_PARAM = re.compile(r";([a-z*][a-z0-9_.*-]*)(?:=(-?[0-9]{1,15}))?")


def sf_list(value):
    """[(name, {param: int})] of a list of string items with integer
    parameters; raises on anything else (no OWS but after commas)."""
    out, pos = [], 0
    while True:
        m = _ITEM.match(value, pos)
        assert m, f"not an sf-string item at {pos}: {value!r}"
        params = {}
        for pm in _PARAM.finditer(m.group(2)):
            assert pm.group(1) not in params, f"parameter {pm.group(1)} twice: {value!r}"
            params[pm.group(1)] = int(pm.group(2)) if pm.group(2) is not None else True
        out.append((m.group(1), params))
        pos = m.end()
        if pos == len(value):
            return out
        assert value[pos] == ",", f"expected ',' at {pos}: {value!r}"
        pos += 1
        while pos < len(value) and value[pos] in " \t":
            pos += 1
        assert pos < len(value), f"trailing comma: {value!r}"


def fields(r):
    """{name: {r, t}} and {name: {q, w}} from a response's RateLimit and
    RateLimit-Policy fields (each at most once)."""
    rl = r.headers_all("ratelimit")
    pol = r.headers_all("ratelimit-policy")
    assert len(rl) <= 1 and len(pol) <= 1, r
    limits = dict(sf_list(rl[0])) if rl else {}
    policies = dict(sf_list(pol[0])) if pol else {}
    for name, p in limits.items():
        assert set(p) == {"r", "t"} and p["r"] >= 0 and p["t"] >= 0, (name, p)
    for name, p in policies.items():
        assert set(p) == {"q", "w"} and p["q"] >= 0 and p["w"] > 0, (name, p)
    assert set(limits) == set(policies), r
    return limits, policies


def test_sf_parser_refuses_what_the_draft_does_not_allow():
    assert sf_list('"a";r=1;t=2, "b.c";r=0;t=0') == [("a", {"r": 1, "t": 2}), ("b.c", {"r": 0, "t": 0})]
    for bad in ('a;r=1', '"a";r=1,', '"a";R=1', '"a";r=1.5', '"a" ;r=1', '"a";r=1;r=2', '"a\x01";r=1',
                '"a";r=1234567890123456'):
        with pytest.raises(AssertionError):
            sf_list(bad)


# --------------------------------------------------------------------------
# Setup


def limits_cfg(up, limits, tmp_path=None, listener=None, extra_routes=(), authn=None, providers=None,
               admin=False):
    """Route "r" (prefix /) with the given rate_limits, to cluster app."""
    route = {"name": "r", "match": {"path": {"prefix": "/"}}, "to": "app", "rate_limits": limits}
    if authn is not None:
        route["authn"] = authn
    cfg = make_config([up], routes=list(extra_routes) + [route], listener=listener)
    if providers:
        cfg["providers"] = {"jwt": providers}
    if admin:
        cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    if tmp_path is not None:
        cfg["access_log"] = {"path": str(tmp_path / "access.log")}
    return cfg


def admin_port(cfg):
    return int(cfg["admin"]["listen"].rsplit(":", 1)[1])


def get(g, target="/x", headers=()):
    return fetch(g.port, "GET", target, headers=list(headers))


def expect_429(r, name, retry):
    doc = assert_refusal(r, 429, "rate_limited")
    assert doc["detail"] == f"rate limit '{name}' exceeded; retry after {retry} s", doc
    assert r.header("retry-after") == str(retry), r
    return doc


# --------------------------------------------------------------------------
# Address


def test_address_limit_answers_429_with_the_draft_fields(gatehouse, upstream, tmp_path):
    up = upstream()
    cfg = limits_cfg(up, [{"name": "per-address", "key": "address", "rate": "3/min"}], tmp_path, admin=True)
    g = gatehouse(cfg)
    t0 = time.monotonic()
    for left in (2, 1, 0):
        r = get(g)
        assert r.status == 200, r
        limits, policies = fields(r)
        # One unit comes back every 20 s; t counts down with the seconds
        # that passed since the first take.
        gone = int(time.monotonic() - t0) + 1
        assert limits["per-address"]["r"] == left, r
        assert 20 - gone <= limits["per-address"]["t"] <= 20, r
        assert policies == {"per-address": {"q": 3, "w": 60}}, r
    r = get(g)
    gone = int(time.monotonic() - t0) + 1
    retry = int(r.header("retry-after"))
    assert 20 - gone <= retry <= 20, r
    expect_429(r, "per-address", retry)
    limits, policies = fields(r)
    assert limits == {"per-address": {"r": 0, "t": retry}}, r
    assert policies == {"per-address": {"q": 3, "w": 60}}, r
    # The upstream saw the three that passed, nothing else.
    assert len(up.wait_requests(3)) == 3
    time.sleep(0.2)
    assert len(up.complete_requests()) == 3
    # Counted and logged by name, never by key.
    wait_metric(admin_port(cfg), EVENTS, 1.0, filter="rate_limits", route="r", event="limited:per-address")
    recs = wait_lines(tmp_path / "access.log", lambda rs: len(rs) >= 4, what="4 log lines")
    assert [x["status"] for x in recs] == [200, 200, 200, 429]
    assert recs[3]["filter"] == "limit=per-address"
    m = metrics(admin_port(cfg))
    assert "127.0.0.1" not in json.dumps(m.series(EVENTS))
    assert m.value("gatehouse_rate_limit_capacity") == 131072
    assert m.value("gatehouse_rate_limit_keys") == 1
    assert m.value("gatehouse_rate_limit_evictions_total", state="counting") == 0


def test_spoofed_forwarded_for_from_untrusted_peer_shares_the_peer_bucket(gatehouse, upstream):
    up = upstream()
    g = gatehouse(limits_cfg(up, [{"name": "a", "key": "address", "rate": "2/h"}]))
    spoofs = [("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2, 10.0.0.3"),
              ("Forwarded", "for=10.0.0.4"), ("X-Real-IP", "10.0.0.5")]
    statuses = [get(g, headers=[h]).status for h in spoofs]
    assert statuses == [200, 200, 429, 429]


def test_trusted_proxy_forwarded_for_keys_by_the_client(gatehouse, upstream):
    up = upstream()
    g = gatehouse(limits_cfg(up, [{"name": "a", "key": "address", "rate": "2/h"}],
                             listener={"trusted_proxies": ["127.0.0.1/32"]}))
    for client in ("10.0.0.1", "10.0.0.2"):
        assert [get(g, headers=[("X-Forwarded-For", client)]).status for _ in range(3)] == [200, 200, 429]
    # A client cannot pick its entry: the right-most address a trusted
    # proxy did not add is the client, whatever comes before it.
    assert get(g, headers=[("X-Forwarded-For", "192.0.2.9, 10.0.0.1")]).status == 429
    # The peer itself, without the field, is a key of its own.
    assert [get(g).status for _ in range(3)] == [200, 200, 429]


def test_ipv6_clients_are_keyed_by_their_64(gatehouse, upstream):
    """One subscriber holds a whole /64: every address of it is one key;
    another /64 is another; an IPv4-mapped address is the IPv4 client; a
    textual variant of an address is the same address."""
    up = upstream()
    g = gatehouse(limits_cfg(up, [{"name": "a", "key": "address", "rate": "2/h"}],
                             listener={"trusted_proxies": ["127.0.0.1/32"]}))

    def via(client):
        return get(g, headers=[("X-Forwarded-For", client)]).status

    assert [via("2001:db8:1:2::1"), via("2001:db8:1:2:ffff::9"), via("2001:DB8:1:2:0:0:0:7")] == [200, 200, 429]
    assert [via("2001:db8:1:3::1"), via("2001:db8:1:3::2"), via("2001:db8:1:3::3")] == [200, 200, 429]
    assert [via("192.0.2.7"), via("::ffff:192.0.2.7"), via("192.0.2.7")] == [200, 200, 429]


# --------------------------------------------------------------------------
# Header


def test_header_key_name_case_value_case_repeats_and_whitespace(gatehouse, upstream):
    up = upstream()
    g = gatehouse(limits_cfg(up, [{"name": "tenant", "key": "header:X-Tenant", "rate": "2/h"}]))
    assert get(g, headers=[("X-Tenant", "a")]).status == 200
    assert get(g, headers=[("x-tenant", "a")]).status == 200
    # Any case of the name is the same field (RFC 9110 5.1).
    r = get(g, headers=[("X-TENANT", "a")])
    assert r.status == 429, r
    # Values are compared as sent: "A" is another tenant; spaces around a
    # value are not part of it (RFC 9110 5.5).
    assert get(g, headers=[("X-Tenant", "A")]).status == 200
    assert get(g, headers=[("X-Tenant", "b")]).status == 200
    assert get(g, headers=[("X-Tenant", "  b\t")]).status == 200
    assert get(g, headers=[("X-Tenant", "b")]).status == 429
    # Two fields: refused, and counted in no bucket (a decoy first field
    # must not put a request in another tenant's bucket, or out of its own).
    # A '_' spelling is the same field to a CGI-style upstream (WSGI, PHP,
    # Rack read X_Tenant as X-Tenant): a second field, and alone the key.
    for pair in ([("X-Tenant", "c"), ("X-Tenant", "d")], [("X-Tenant", "a"), ("x-tenant", "zz")],
                 [("X-Tenant", "e"), ("X-Tenant", "e")], [("X-Tenant", "f"), ("X_Tenant", "g")],
                 [("x_tenant", "a"), ("X-Tenant", "h")]):
        r = get(g, headers=pair)
        assert_refusal(r, 400, "bad_request")
    assert [get(g, headers=[("X-Tenant", t)]).status for t in ("c", "d", "e", "zz", "f", "g", "h")] == [200] * 7
    assert get(g, headers=[("X_TENANT", "a")]).status == 429
    assert len(up.complete_requests()) == 12


def test_missing_key_shared_bucket_skip_and_deny(gatehouse, upstream):
    up = upstream()
    routes = [
        {"name": "skip", "match": {"path": {"prefix": "/skip"}}, "to": "app",
         "rate_limits": [{"name": "t", "key": "header:x-tenant", "rate": "1/h", "missing": "skip"}]},
        {"name": "deny", "match": {"path": {"prefix": "/deny"}}, "to": "app",
         "rate_limits": [{"name": "t", "key": "header:x-tenant", "rate": "1/h", "missing": "deny"}]},
    ]
    g = gatehouse(limits_cfg(up, [{"name": "t", "key": "header:x-tenant", "rate": "2/h"}], extra_routes=routes))
    # Default (shared): every request without the key, or with an empty
    # value, counts in one bucket; a tenant's bucket is apart.
    assert [get(g).status, get(g, headers=[("x-tenant", "")]).status, get(g).status] == [200, 200, 429]
    assert get(g, headers=[("x-tenant", "t1")]).status == 200
    # skip: the limit does not apply to requests without the key.
    assert [get(g, "/skip").status for _ in range(4)] == [200] * 4
    assert [get(g, "/skip", [("x-tenant", "t1")]).status for _ in range(2)] == [200, 429]
    # deny: a request without the key is refused.
    assert_refusal(get(g, "/deny"), 400, "bad_request")
    assert [get(g, "/deny", [("x-tenant", "t1")]).status for _ in range(2)] == [200, 429]


# --------------------------------------------------------------------------
# Claims


def test_claim_keys_from_verified_tokens(gatehouse, upstream):
    up = upstream()
    key = ec_key(kid="k1")
    providers = {"corp": provider(keys=[key])}
    routes = [{"name": "org", "match": {"path": {"prefix": "/org"}}, "to": "app", "authn": "corp",
               "rate_limits": [{"name": "org", "key": "claim:org.id", "rate": "2/h"}]}]
    g = gatehouse(limits_cfg(up, [{"name": "sub", "key": "claim:sub", "rate": "2/h"}], authn="corp",
                             providers=providers, extra_routes=routes))

    def call(target, token):
        return get(g, target, [("Authorization", f"Bearer {token}")])

    alice, bob = mint(key, sub="alice"), mint(key, sub="bob")
    assert [call("/x", alice).status for _ in range(3)] == [200, 200, 429]
    assert call("/x", bob).status == 200
    # Another token of the same subject is the same caller.
    assert call("/x", mint(key, sub="alice", jti="other")).status == 429
    # A forged token is refused before any limit counts it.
    forged = alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB")
    assert call("/x", forged).status == 401
    assert call("/x", bob).status == 200
    # Nested claim: org.id; a member named "org.id" itself wins over the
    # path, as claims_to_headers reads it.
    acme1 = mint(key, sub="u1", org={"id": "acme"})
    acme2 = mint(key, sub="u2", org={"id": "acme"})
    other = mint(key, sub="u3", org={"id": "other"})
    assert [call("/org", acme1).status, call("/org", acme2).status, call("/org", acme1).status] == [200, 200, 429]
    assert call("/org", other).status == 200
    dotted = mint(key, sub="u4", org={"id": "acme"}, **{"org.id": "dotted"})
    assert call("/org", dotted).status == 200
    # Without the claim: the shared bucket of requests without the key.
    none1, none2 = mint(key, sub="u5"), mint(key, sub="u6")
    assert [call("/org", none1).status, call("/org", none2).status, call("/org", none1).status] == [200, 200, 429]


# --------------------------------------------------------------------------
# Several limits


def test_several_limits_refused_request_counts_in_none(gatehouse, upstream):
    up = upstream()
    g = gatehouse(limits_cfg(up, [
        {"name": "daily", "key": "address", "quota": {"limit": 5, "period": "day"}},
        {"name": "per-tenant", "key": "header:x-tenant", "rate": "1/h"},
    ]))

    def call(tenant):
        return get(g, headers=[("x-tenant", tenant)])

    r = call("a")
    assert r.status == 200
    limits, policies = fields(r)
    assert limits["daily"]["r"] == 4 and limits["per-tenant"]["r"] == 0, r
    assert policies["daily"] == {"q": 5, "w": 86400} and policies["per-tenant"] == {"q": 1, "w": 3600}
    # Refused by the second limit: the first gives its unit back.
    r = call("a")
    expect_429(r, "per-tenant", int(r.header("retry-after")))
    assert set(fields(r)[0]) == {"per-tenant"}
    r = call("b")
    assert r.status == 200 and fields(r)[0]["daily"]["r"] == 3, r
    assert [call(t).status for t in ("c", "d", "e")] == [200, 200, 200]
    # The quota is spent (5 passed): refused by it, and the tenant's
    # bucket keeps its unit for tomorrow.
    r = call("f")
    assert r.status == 429 and set(fields(r)[0]) == {"daily"}, r
    assert len(up.complete_requests()) == 5


def test_headers_false_hides_the_fields_not_retry_after(gatehouse, upstream):
    up = upstream()
    g = gatehouse(limits_cfg(up, [{"name": "quiet", "key": "address", "rate": "1/h", "headers": False},
                                  {"name": "loud", "key": "route", "rate": "100/h"}]))
    r = get(g)
    assert r.status == 200
    limits, _ = fields(r)
    assert set(limits) == {"loud"}, r
    r = get(g)
    expect_429(r, "quiet", int(r.header("retry-after")))
    assert not r.has("ratelimit") and not r.has("ratelimit-policy"), r


# --------------------------------------------------------------------------
# Exactness across workers


def hammer(port, threads, per_thread, headers=()):
    """threads clients at once, each per_thread requests on its own
    keep-alive connection; returns the statuses."""
    out, lock, start = [], threading.Lock(), threading.Barrier(threads)

    def run():
        got = []
        with RawConn(port, timeout=30) as c:
            start.wait()
            for _ in range(per_thread):
                c.request("GET", "/x", list(headers))
                got.append(c.read_response().status)
        with lock:
            out.extend(got)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


@pytest.mark.parametrize("limit", [
    {"name": "q", "key": "route", "quota": {"limit": 300, "period": "day"}},
    {"name": "b", "key": "address", "rate": "1/h", "burst": 300},
])
def test_exact_across_workers(gatehouse, upstream, limit):
    up = upstream()
    g = gatehouse(limits_cfg(up, [limit]), workers=4)
    statuses = hammer(g.port, 16, 40)
    assert len(statuses) == 640
    assert statuses.count(200) == 300, sorted(set(statuses))
    assert statuses.count(429) == 340
    assert len(up.wait_requests(300)) == 300
    time.sleep(0.2)
    assert len(up.complete_requests()) == 300


# --------------------------------------------------------------------------
# Reload


def test_reload_keeps_the_counts_of_an_unchanged_limit(gatehouse, upstream):
    up = upstream()
    cfg = limits_cfg(up, [{"name": "a", "key": "address", "rate": "2/h"}], admin=True)
    ap = admin_port(cfg)
    g = gatehouse(cfg)
    assert [get(g).status for _ in range(3)] == [200, 200, 429]
    # The same limit after a reload: still spent (the counters outlive
    # snapshots, and the limit's id is what it is, not when it was loaded).
    text = g.config_path.read_text()
    write_config(g, text + "\n# reloaded\n")
    sighup(g)
    wait_for(lambda: metrics(ap).value("gatehouse_config_generation") == 2, 10, "reload 1")
    assert get(g).status == 429
    # A changed limit (another rate) starts afresh.
    write_config(g, text.replace("2/h", "3/h"))
    sighup(g)
    wait_for(lambda: metrics(ap).value("gatehouse_config_generation") == 3, 10, "reload 2")
    assert [get(g).status for _ in range(4)] == [200, 200, 200, 429]


# --------------------------------------------------------------------------
# Calendar quotas at their boundary, on a faked wall clock


@pytest.fixture
def faketime(monkeypatch, tmp_path):
    """set(text) freezes gatehouse's wall clock at text ("YYYY-MM-DD
    hh:mm:ss", UTC) from the next call on; the monotonic clock runs."""
    if not FAKETIME_LIB.exists():
        pytest.fail(f"{FAKETIME_LIB} missing: run scripts/deps test (package faketime)")
    stamp = tmp_path / "faketime"

    def set_time(text):
        stamp.write_text(text + "\n")

    set_time("2026-12-06 00:00:00")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("LD_PRELOAD", str(FAKETIME_LIB))
    monkeypatch.setenv("FAKETIME_TIMESTAMP_FILE", str(stamp))
    monkeypatch.setenv("FAKETIME_NO_CACHE", "1")
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    # An ASan build would refuse a preloaded library before its runtime.
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    return set_time


def test_daily_quota_resets_at_the_offset_boundary(gatehouse, upstream, faketime):
    up = upstream()
    faketime("2026-12-06 01:59:58")
    g = gatehouse(limits_cfg(up, [{"name": "d", "key": "address",
                                   "quota": {"limit": 2, "period": "day", "offset": "2h"}}]))
    r = get(g)
    assert r.status == 200 and fields(r)[0]["d"] == {"r": 1, "t": 2}, r
    assert get(g).status == 200
    faketime("2026-12-06 01:59:59")
    expect_429(get(g), "d", 1)
    faketime("2026-12-06 02:00:00")
    r = get(g)
    assert r.status == 200 and fields(r)[0]["d"] == {"r": 1, "t": 86400}, r
    assert get(g).status == 200
    expect_429(get(g), "d", 86400)


def test_monthly_quota_at_a_leap_february_end(gatehouse, upstream, faketime):
    up = upstream()
    faketime("2028-02-29 23:59:59")
    g = gatehouse(limits_cfg(up, [{"name": "m", "key": "route", "quota": {"limit": 1, "period": "month"}}]))
    r = get(g)
    assert r.status == 200, r
    assert fields(r)[1]["m"] == {"q": 1, "w": 29 * 86400}, r
    expect_429(get(g), "m", 1)
    faketime("2028-03-01 00:00:00")
    r = get(g)
    assert r.status == 200 and fields(r) == ({"m": {"r": 0, "t": 31 * 86400}}, {"m": {"q": 1, "w": 31 * 86400}}), r


def test_weekly_quota_starts_on_monday_with_offset_1d(gatehouse, upstream, faketime):
    up = upstream()
    faketime("2026-12-06 12:00:00")  # a Sunday
    g = gatehouse(limits_cfg(up, [{"name": "w", "key": "route",
                                   "quota": {"limit": 1, "period": "week", "offset": "1d"}}]))
    assert get(g).status == 200
    expect_429(get(g), "w", 12 * 3600)  # until Monday 00:00
    faketime("2026-12-07 00:00:00")
    assert get(g).status == 200


# --------------------------------------------------------------------------
# Config


def test_fleet_mode_is_a_load_error(tmp_path, upstream):
    up = upstream()
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        "listeners:\n"
        "  - name: edge\n"
        "    listen: 127.0.0.1:1\n"
        "    routes:\n"
        "      - name: r\n"
        "        to: app\n"
        "        rate_limits: [ { key: address, rate: 1/s, mode: fleet } ]\n"
        f"clusters: {{ app: {{ endpoints: [127.0.0.1:{up.port}] }} }}\n")
    p = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert f"{cfg}:7:57: 'mode: fleet' needs a shared store (store.kind: redis)" in p.stderr, p.stderr
