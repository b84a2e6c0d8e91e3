"""Key sets over time: JWKS fetched from a URI (jwks_server.py, a process
the tests rotate, break and take down), OpenID Connect discovery, a JWKS
file that changes, /ready and the JWKS metrics, provider isolation, and the
verified-token cache never outliving a removed key.

Waits poll with deadlines; nothing asserts on durations. Counts of fetches
are only compared where the configured intervals leave a wide margin."""

import json
import os
import signal
import socket
import threading
import time

from harness import free_port
from jwt_util import (JwksServer, ec_key, expect_invalid, expect_ok, expect_unavailable, get, metric,
                      mint, provider, route, rsa_key, start, wait_ready)
from ops_util import admin_get, metrics, wait_for


def k1():
    return rsa_key(kid="k1", slot="life-1")


def k2():
    return rsa_key(kid="k2", slot="life-2")


def k3():
    return ec_key("P-256", kid="k3", slot="life-3")


def jwks(*keys):
    return {"keys": [k.jwk() for k in keys]}


def uri_provider(srv_or_uri, **jw):
    uri = srv_or_uri if isinstance(srv_or_uri, str) else srv_or_uri.uri
    return provider(jwks={"uri": uri, **jw})


def ready_doc(g):
    r = admin_get(g.admin, "/ready")
    try:
        doc = json.loads(r.body)
    except ValueError:
        raise AssertionError(f"/ready body is not JSON: {r.status} {r.body!r}")
    return r.status, doc


def wait_status(g, token, status, target="/echo", timeout=10.0, what=None):
    box = {}

    def check():
        r = get(g, target, token)
        box["r"] = r
        return r.status == status

    try:
        wait_for(check, timeout, what or f"{target} to answer {status}", interval=0.1)
    except AssertionError as e:
        r = box.get("r")
        raise AssertionError(f"{e}; last answer {r.status if r else None} {r.body[:200] if r else b''!r}")
    return box["r"]


def wait_count(srv, n, timeout=10.0, key="jwks"):
    return wait_for(lambda: srv.stats()[key] >= n, timeout, f"{n} {key} fetches (have {srv.stats()[key]})",
                    interval=0.1)


def fetches(g, outcome, prov="corp"):
    return metric(g, "gatehouse_jwks_fetches_total", provider=prov, outcome=outcome)


def test_uri_keys_load(gatehouse, upstream, tmp_path):
    t0 = time.monotonic()
    srv = JwksServer(tmp_path, jwks=jwks(k1(), k3()))
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(srv)}, admin=True, workers=2)
        wait_ready(g)
        expect_ok(get(g, "/echo", mint(k1())))
        expect_ok(get(g, "/echo", mint(k3())))
        expect_invalid(get(g, "/echo", mint(k2())), "unknown key")
        m = metrics(g.admin)
        assert m.value("gatehouse_jwks_fetches_total", provider="corp", outcome="ok") >= 1
        assert m.value("gatehouse_jwks_fetches_total", provider="corp", outcome="failed") == 0
        assert m.value("gatehouse_jwks_fetches_total", provider="corp", outcome="invalid") == 0
        assert m.value("gatehouse_jwks_keys", provider="corp") == 2
        # The keys were fetched during this test: their age cannot exceed it.
        age = m.value("gatehouse_jwks_age_seconds", provider="corp")
        assert 0 <= age <= time.monotonic() - t0 + 1, age
        assert m.types.get("gatehouse_jwks_fetches_total") == "counter"
        assert m.types.get("gatehouse_jwks_keys") == "gauge"
        assert m.types.get("gatehouse_jwks_age_seconds") == "gauge"
        # Fetched once (default refresh 5 m), shared by both workers and
        # every request.
        for i in range(20):
            expect_ok(get(g, "/echo", mint(k1(), sub=f"u{i}")))
        assert srv.stats()["jwks"] == 1, srv.stats()
    finally:
        srv.stop()


def test_down_at_start_then_recovers(gatehouse, upstream, tmp_path):
    port = free_port()
    g = start(gatehouse, upstream(), {"corp": uri_provider(f"http://127.0.0.1:{port}/jwks.json")}, admin=True)
    tok = mint(k1())
    # No keys yet: 503 with a JSON body, not 401 (the caller did nothing wrong).
    wait_for(lambda: fetches(g, "failed") >= 1, 10, "a failed fetch")
    doc = expect_unavailable(get(g, "/echo", tok))
    assert "corp" in json.dumps(doc) or "key" in json.dumps(doc).lower(), doc
    # Without a token as well: the route cannot judge anything yet.
    expect_unavailable(get(g, "/echo"))
    status, rd = ready_doc(g)
    assert status == 503, rd
    assert "corp" in json.dumps(rd), f"/ready does not say which provider: {rd}"
    assert fetches(g, "ok") == 0
    srv = JwksServer(tmp_path, port=port, jwks=jwks(k1()))
    try:
        # Backoff starts at 1 s and doubles: within 15 s it must have retried.
        wait_ready(g, timeout=20)
        wait_status(g, tok, 200, timeout=5)
        assert fetches(g, "ok") >= 1
        status, rd = ready_doc(g)
        assert status == 200, rd
    finally:
        srv.stop()


def test_rotation_unknown_kid_triggers_refetch(gatehouse, upstream, tmp_path):
    srv = JwksServer(tmp_path, jwks=jwks(k1()))
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(srv, refresh_interval="5m",
                                                               min_refresh_interval="1s")}, admin=True)
        wait_ready(g)
        expect_ok(get(g, "/echo", mint(k1())))
        before = srv.stats()["jwks"]
        srv.control(jwks=jwks(k1(), k2()))
        # The first k2 tokens may be refused (unknown key) until the refetch
        # they trigger lands; with a 5 m interval only the unknown kid can
        # cause that refetch.
        wait_status(g, mint(k2()), 200, timeout=10, what="k2 accepted after rotation")
        assert srv.stats()["jwks"] > before
        expect_ok(get(g, "/echo", mint(k1())))
    finally:
        srv.stop()


def test_unknown_kid_refetch_is_rate_limited(gatehouse, upstream, tmp_path):
    srv = JwksServer(tmp_path, jwks=jwks(k1()))
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(srv, refresh_interval="10m",
                                                               min_refresh_interval="5m")}, admin=True)
        wait_ready(g)
        n = srv.stats()["jwks"]
        for i in range(40):
            expect_invalid(get(g, "/echo", mint(k2(), kid=f"unknown-{i}")), "unknown key")
        # Give a (wrong) refetch time to happen, then count: the last fetch
        # was moments ago, far inside min_refresh_interval.
        time.sleep(1.0)
        assert srv.stats()["jwks"] == n, f"unknown kids caused {srv.stats()['jwks'] - n} refetches"
    finally:
        srv.stop()


def test_removed_key_refused_after_refresh_despite_cache(gatehouse, upstream, tmp_path):
    """A token verified (and cached) under a key that the JWKS then drops is
    refused after the next refresh; two workers, so both caches count."""
    srv = JwksServer(tmp_path, jwks=jwks(k1(), k2()))
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(srv, refresh_interval="1s",
                                                               min_refresh_interval="1s")},
                  admin=True, workers=2)
        wait_ready(g)
        t1, t2 = mint(k1(), sub="one"), mint(k2(), sub="two")
        for _ in range(10):
            expect_ok(get(g, "/echo", t2))
            expect_ok(get(g, "/echo", t1))
        srv.control(jwks=jwks(k1()))
        wait_status(g, t2, 401, timeout=10, what="the k2 token refused after k2 left the JWKS")
        for _ in range(10):
            expect_invalid(get(g, "/echo", t2), "unknown key")
            expect_ok(get(g, "/echo", t1))
    finally:
        srv.stop()


def test_bad_fetches_keep_last_good_keys(gatehouse, upstream, tmp_path):
    srv = JwksServer(tmp_path, jwks=jwks(k1()))
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(srv, refresh_interval="1s",
                                                               min_refresh_interval="1s", timeout="1s")},
                  admin=True)
        wait_ready(g)
        tok = mint(k1())
        expect_ok(get(g, "/echo", tok))
        ok0 = fetches(g, "ok")
        for mode, outcome in (("garbage", "invalid"), ("500", "failed"), ("invalid", "invalid"),
                              ("huge", "failed"), ("hang", "failed")):
            base = fetches(g, outcome)
            srv.control(mode=mode)
            need = 1 if mode in ("huge", "hang") else 2
            wait_for(lambda: fetches(g, outcome) >= base + need, 15, f"{need} {outcome} fetches in mode {mode}")
            expect_ok(get(g, "/echo", tok))
            expect_ok(get(g, "/echo", mint(k1(), sub=f"fresh-{mode}")))  # not just the cache
            expect_invalid(get(g, "/echo", mint(k2())), "unknown key")
            status, rd = ready_doc(g)
            assert status == 200, f"/ready went to {status} after a bad fetch ({mode}): {rd}"
            assert metric(g, "gatehouse_jwks_keys", provider="corp") == 1
            # At least two failures, >= 1 s apart, since the last good load.
            assert metric(g, "gatehouse_jwks_age_seconds", provider="corp") >= 1.0
        # Killed outright: still the last good keys.
        srv.kill()
        base = fetches(g, "failed")
        wait_for(lambda: fetches(g, "failed") >= base + 1, 15, "a failed fetch with the server down")
        expect_ok(get(g, "/echo", mint(k1(), sub="after-kill")))
        assert ready_doc(g)[0] == 200
        assert fetches(g, "ok") >= ok0
    finally:
        srv.stop()


def test_cache_control_max_age_within_bounds(gatehouse, upstream, tmp_path):
    """Three providers fed by three servers, observed together:
    long   refresh 1 s, max-age 3600, max 24 h  -> no refetch for a while
    capped refresh 5 m, max-age 3600, max 1 s   -> refetches (upper bound)
    short  refresh 5 m, max-age 1,    min 1 s   -> refetches (max-age honoured)
    huge   refresh 5 m, max-age 2^64/1000, max 24 h -> no refetch (no wrap-around)
    """
    servers = {}
    try:
        issuers = {}
        provs = {}
        for name, max_age, jw in (("long", 3600, {"refresh_interval": "1s", "min_refresh_interval": "1s"}),
                                  ("capped", 3600, {"refresh_interval": "5m", "min_refresh_interval": "1s",
                                                    "max_refresh_interval": "1s"}),
                                  ("short", 1, {"refresh_interval": "5m", "min_refresh_interval": "1s"}),
                                  # 2^64 / 1000, rounded up: in milliseconds it wrapped to 384.
                                  ("huge", 18446744073709552, {"refresh_interval": "5m",
                                                               "min_refresh_interval": "1s"})):
            srv = JwksServer(tmp_path, jwks=jwks(k1()), max_age=max_age)
            servers[name] = srv
            issuers[name] = f"https://{name}.example.com"
            provs[name] = provider(jwks={"uri": srv.uri, **jw}, issuer=issuers[name])
        g = start(gatehouse, upstream(), provs, routes=[route(n, f"/{n}", n) for n in provs], admin=True)
        wait_ready(g)
        wait_count(servers["capped"], 3, timeout=15)
        wait_count(servers["short"], 3, timeout=15)
        # With a 1 s refresh_interval, "long" would have fetched about as
        # often as the others; max-age 3600 held it at its first fetch.
        assert servers["long"].stats()["jwks"] == 1, servers["long"].stats()
        assert servers["huge"].stats()["jwks"] == 1, servers["huge"].stats()
        for n in provs:
            expect_ok(get(g, f"/{n}", mint(k1(), iss=issuers[n])))
    finally:
        for s in servers.values():
            s.stop()


def test_max_age_below_min_refresh_interval(gatehouse, upstream, tmp_path):
    """max-age 0 does not make gatehouse hammer the server: the wait is at
    least min_refresh_interval (5 s here, observed for about 2 s)."""
    srv = JwksServer(tmp_path, jwks=jwks(k1()), max_age=0)
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(srv, refresh_interval="1s",
                                                               min_refresh_interval="5s")}, admin=True)
        wait_ready(g)
        time.sleep(2.0)
        assert srv.stats()["jwks"] == 1, srv.stats()
        expect_ok(get(g, "/echo", mint(k1())))
    finally:
        srv.stop()


def test_discovery(gatehouse, upstream, tmp_path):
    keys_srv = JwksServer(tmp_path, jwks=jwks(k1()))
    meta = JwksServer(tmp_path, jwks=jwks(k2()))  # its own /jwks.json holds a different key
    try:
        meta.control(jwks_uri=keys_srv.uri)
        issuer = meta.base
        g = start(gatehouse, upstream(), {"corp": provider(issuer=issuer, jwks={"discovery": True})}, admin=True)
        wait_ready(g)
        expect_ok(get(g, "/echo", mint(k1(), iss=issuer)))
        expect_invalid(get(g, "/echo", mint(k2(), iss=issuer)), "unknown key")
        expect_invalid(get(g, "/echo", mint(k1())), "issuer")
        assert meta.stats()["discovery"] >= 1
        assert keys_srv.stats()["jwks"] >= 1
        assert meta.stats()["jwks"] == 0, "the metadata's jwks_uri was not used"
    finally:
        keys_srv.stop()
        meta.stop()


def test_discovery_rfc8414_path_form(gatehouse, upstream, tmp_path):
    """An authorization server with only RFC 8414 metadata and an issuer with
    a path: the OpenID Connect document is tried first (404), then the
    path-inserted /.well-known/oauth-authorization-server/tenant-1."""
    keys_srv = JwksServer(tmp_path, jwks=jwks(k1()))
    meta = JwksServer(tmp_path, jwks=jwks(k2()))
    try:
        issuer = meta.base + "/tenant-1"
        meta.control(jwks_uri=keys_srv.uri, issuer=issuer, metadata="oauth")
        g = start(gatehouse, upstream(), {"corp": provider(issuer=issuer, jwks={"discovery": True})}, admin=True)
        wait_ready(g)
        expect_ok(get(g, "/echo", mint(k1(), iss=issuer)))
        expect_invalid(get(g, "/echo", mint(k2(), iss=issuer)), "unknown key")
        paths = meta.stats()["metadata_paths"]
        assert paths[:2] == ["/tenant-1/.well-known/openid-configuration",
                             "/.well-known/oauth-authorization-server/tenant-1"], paths
        assert meta.stats()["jwks"] == 0, "the metadata's jwks_uri was not used"
    finally:
        keys_srv.stop()
        meta.stop()


def test_discovery_oidc_first(gatehouse, upstream, tmp_path):
    """When both documents exist, OpenID Connect's is used and RFC 8414's is
    never fetched."""
    keys_srv = JwksServer(tmp_path, jwks=jwks(k1()))
    meta = JwksServer(tmp_path, jwks=jwks(k2()))
    try:
        meta.control(jwks_uri=keys_srv.uri, metadata="both")
        g = start(gatehouse, upstream(), {"corp": provider(issuer=meta.base, jwks={"discovery": True})}, admin=True)
        wait_ready(g)
        expect_ok(get(g, "/echo", mint(k1(), iss=meta.base)))
        assert meta.stats()["metadata_paths"] == ["/.well-known/openid-configuration"]
    finally:
        keys_srv.stop()
        meta.stop()


def test_discovery_neither_document(gatehouse, upstream, tmp_path):
    """No metadata at either place: 503 and /ready names both attempts."""
    meta = JwksServer(tmp_path, jwks=jwks(k1()))
    try:
        meta.control(metadata="none")
        g = start(gatehouse, upstream(), {"corp": provider(issuer=meta.base, jwks={"discovery": True})}, admin=True)
        wait_for(lambda: fetches(g, "failed") >= 1, 10, "a failed discovery")
        expect_unavailable(get(g, "/echo", mint(k1(), iss=meta.base)))
        status, doc = ready_doc(g)
        text = json.dumps(doc)
        assert status == 503, doc
        assert "openid-configuration" in text and "oauth-authorization-server" in text, doc
        assert "404" in text, doc
    finally:
        meta.stop()


def test_discovery_issuer_mismatch_never_loads(gatehouse, upstream, tmp_path):
    """OIDC Discovery section 4.3: the metadata's issuer must equal ours, or
    its keys are not ours."""
    meta = JwksServer(tmp_path, jwks=jwks(k1()))
    try:
        meta.control(issuer="https://evil.example.com")
        issuer = meta.base
        g = start(gatehouse, upstream(), {"corp": provider(issuer=issuer, jwks={"discovery": True})}, admin=True)
        wait_for(lambda: meta.stats()["discovery"] >= 1, 10, "a discovery fetch")
        wait_for(lambda: fetches(g, "failed") + fetches(g, "invalid") >= 1, 10, "a failed discovery")
        expect_unavailable(get(g, "/echo", mint(k1(), iss=issuer)))
        assert meta.stats()["jwks"] == 0, "keys fetched although the issuer did not match"
        status, doc = ready_doc(g)
        assert status == 503, doc
        assert "corp" in json.dumps(doc) and "issuer" in json.dumps(doc), doc
        # Fixed metadata: keys load.
        meta.control(issuer=issuer)
        wait_ready(g, timeout=20)
        expect_ok(get(g, "/echo", mint(k1(), iss=issuer)))
    finally:
        meta.stop()


def evil_discovery(gatehouse, upstream, tmp_path, issuer):
    meta = JwksServer(tmp_path, jwks=jwks(k1()))
    meta.control(issuer=issuer)
    g = start(gatehouse, upstream(), {"corp": provider(issuer=meta.base, jwks={"discovery": True})}, admin=True)
    wait_for(lambda: fetches(g, "failed") + fetches(g, "invalid") >= 1, 10, "a failed discovery")
    return meta, g


def test_ready_reason_is_json_escaped(gatehouse, upstream, tmp_path):
    """The not-ready reason quotes text from the network (here a metadata
    issuer holding a double quote and a backslash); /ready must stay JSON."""
    meta, g = evil_discovery(gatehouse, upstream, tmp_path, 'https://evil.example.com/"x\\y')
    try:
        r = admin_get(g.admin, "/ready")
        assert r.status == 503, r
        try:
            doc = json.loads(r.body)
        except ValueError:
            raise AssertionError(f"/ready body is not valid JSON: {r.body!r}")
        assert "corp" in json.dumps(doc), doc
    finally:
        meta.stop()


def test_network_text_cannot_forge_log_lines(gatehouse, upstream, tmp_path):
    """A newline in a metadata issuer must not start a new log line."""
    meta, g = evil_discovery(gatehouse, upstream, tmp_path,
                             "https://evil.example.com/\nFORGED-LOG-LINE error admin: x")
    try:
        wait_for(lambda: "evil.example.com" in g.stderr, 5, "the discovery error in the log")
        forged = [l for l in g.stderr.splitlines() if l.startswith("FORGED-LOG-LINE")]
        assert not forged, f"a newline from the network started a log line: {forged}"
    finally:
        meta.stop()


def test_providers_isolated(gatehouse, upstream, tmp_path):
    good = JwksServer(tmp_path, jwks=jwks(k1()))
    bad = JwksServer(tmp_path, jwks=jwks(k1()))
    bad.control(mode="garbage")
    dead_port = free_port()
    try:
        provs = {
            "good": provider(issuer="https://good.example.com", jwks={"uri": good.uri}),
            "bad": provider(issuer="https://bad.example.com", jwks={"uri": bad.uri}),
            "dead": provider(issuer="https://dead.example.com",
                             jwks={"uri": f"http://127.0.0.1:{dead_port}/jwks.json"}),
            "inline": provider(issuer="https://inline.example.com", keys=[k1()]),
        }
        g = start(gatehouse, upstream(), provs, routes=[route(n, f"/{n}", n) for n in provs], admin=True)
        wait_for(lambda: fetches(g, "ok", "good") >= 1 and fetches(g, "invalid", "bad") >= 1
                 and fetches(g, "failed", "dead") >= 1, 10, "first fetches of every provider")
        tok = lambda n: mint(k1(), iss=f"https://{n}.example.com")  # noqa: E731
        expect_ok(get(g, "/good", tok("good")))
        expect_ok(get(g, "/inline", tok("inline")))
        expect_unavailable(get(g, "/bad", tok("bad")))
        expect_unavailable(get(g, "/dead", tok("dead")))
        status, rd = ready_doc(g)
        assert status == 503, rd
        # The broken providers recover on their own.
        bad.control(mode="ok")
        wait_status(g, tok("bad"), 200, target="/bad", timeout=20)
        expect_ok(get(g, "/good", tok("good")))
    finally:
        good.stop()
        bad.stop()


def write_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def test_file_jwks_reloaded(gatehouse, upstream, tmp_path):
    path = tmp_path / "jwks.json"
    write_atomic(path, json.dumps(jwks(k1())))
    g = start(gatehouse, upstream(), {"corp": provider(jwks={"file": str(path)})}, admin=True)
    wait_ready(g)
    t1, t2 = mint(k1()), mint(k2())
    expect_ok(get(g, "/echo", t1))
    expect_invalid(get(g, "/echo", t2), "unknown key")
    # Added key: picked up by the 1 s poll.
    write_atomic(path, json.dumps(jwks(k1(), k2())))
    wait_status(g, t2, 200, timeout=10, what="k2 accepted after the file gained it")
    # Removed key: its (cached) token is refused after the reload.
    for _ in range(5):
        expect_ok(get(g, "/echo", t1))
    write_atomic(path, json.dumps(jwks(k2())))
    wait_status(g, t1, 401, timeout=10, what="k1 token refused after the file lost k1")
    expect_ok(get(g, "/echo", t2))
    # A broken file keeps the last good keys; so does a vanished one.
    inv = fetches(g, "invalid")
    write_atomic(path, "{ not json")
    wait_for(lambda: fetches(g, "invalid") > inv, 10, "the broken file to be read")
    expect_ok(get(g, "/echo", mint(k2(), sub="after-garbage")))
    os.unlink(path)
    time.sleep(1.5)
    expect_ok(get(g, "/echo", mint(k2(), sub="after-unlink")))
    # And it comes back.
    write_atomic(path, json.dumps(jwks(k1(), k2())))
    wait_status(g, t1, 200, timeout=10, what="k1 back after the file returned")
    assert ready_doc(g)[0] == 200


def test_reload_swaps_inline_keys_and_drops_cached_tokens(gatehouse, upstream, tmp_path):
    from jwt_util import build_config
    from ops_util import config_text, write_config

    up = upstream()
    g = start(gatehouse, up, {"corp": provider(keys=[k1()])}, admin=True)
    t1 = mint(k1())
    for _ in range(5):
        expect_ok(get(g, "/echo", t1))  # cached
    cfg = build_config(up, {"corp": provider(keys=[k2()])}, admin_port=g.admin)
    write_config(g, config_text(g, cfg), "rename")
    wait_for(lambda: metric(g, "gatehouse_config_generation") >= 2, 10, "the reload")
    expect_ok(get(g, "/echo", mint(k2())))
    expect_invalid(get(g, "/echo", t1), "unknown key")


def test_reload_keeps_fetched_keys(gatehouse, upstream, tmp_path):
    """A reload that keeps the provider keeps its keys: requests right after
    it are answered with the keys already held, never 503."""
    from jwt_util import build_config
    from ops_util import config_text, write_config

    srv = JwksServer(tmp_path, jwks=jwks(k1()))
    try:
        up = upstream()
        p = {"corp": uri_provider(srv)}
        g = start(gatehouse, up, p, admin=True)
        wait_ready(g)
        tok = mint(k1())
        expect_ok(get(g, "/echo", tok))
        srv.kill()  # from now on a refetch could only fail
        cfg = build_config(up, p, routes=[route("all", "/", "corp"), route("x", "/x", None)], admin_port=g.admin)
        write_config(g, config_text(g, cfg), "rename")
        wait_for(lambda: metric(g, "gatehouse_config_generation") >= 2, 10, "the reload")
        for i in range(10):
            expect_ok(get(g, "/echo", mint(k1(), sub=f"after-reload-{i}")))
        assert ready_doc(g)[0] == 200
    finally:
        srv.stop()


class SilentHost:
    """A key host that accepts connections and never answers (nor closes)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            self.accepted.set()

    def close(self):
        self.stopping = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_sigterm_cancels_a_hung_fetch(gatehouse, upstream):
    """SIGTERM while a JWKS fetch hangs on a host that never answers: the
    fetch is cancelled and gatehouse exits 0, long before the fetch's own
    60 s timeout (the stop below waits 50 s; the ordering of the log lines
    is what shows the cancel, not the time taken)."""
    host = SilentHost()
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(f"http://127.0.0.1:{host.port}/jwks.json",
                                                               timeout="60s")}, admin=True)
        assert host.accepted.wait(10), "gatehouse never connected to the key host"
        rc = g.stop(signal.SIGTERM, timeout=50)
        err = g.stderr
        assert rc == 0, f"gatehouse did not exit 0 after SIGTERM (rc {rc}):\n{g.stderr_tail()}"
        i = err.find("cancelling the running fetch")
        j = err.find("fetch cancelled: shutting down")
        k = err.find("server: stopped") if "server: stopped" in err else err.find("stopped")
        assert 0 <= i < j < k, f"expected cancel, cancelled, stopped in that order:\n{g.stderr_tail()}"
        assert "fetch failed" not in err, err
    finally:
        host.close()


def test_refresh_with_same_keys_keeps_generation(gatehouse, upstream, tmp_path):
    """A refetch that returns the keys already loaded (here: every second)
    keeps the key set's generation, so no worker's verified-token cache is
    emptied; new keys bump it once."""
    srv = JwksServer(tmp_path, jwks=jwks(k1()), max_age=1)
    try:
        g = start(gatehouse, upstream(), {"corp": uri_provider(srv, min_refresh_interval="1s")}, admin=True)
        wait_ready(g)
        wait_count(srv, 3, timeout=15)
        wait_for(lambda: g.stderr.count("keys unchanged (generation 1)") >= 2, 10, "two unchanged refetches")
        assert g.stderr.count("keys loaded") == 1, g.stderr_tail()
        # insecure_http (the test server is plain http): a warning at every load.
        assert g.stderr.count("keys fetched over plain http") >= 3, g.stderr_tail()
        expect_ok(get(g, "/echo", mint(k1())))
        srv.control(jwks=jwks(k1(), k2()))
        wait_for(lambda: "keys loaded (generation 2)" in g.stderr, 10, "the new keys")
        expect_ok(get(g, "/echo", mint(k2())))
        assert "generation 3" not in g.stderr, g.stderr_tail()
    finally:
        srv.stop()


def test_ready_lists_every_provider_without_keys(gatehouse, upstream, tmp_path):
    """Every provider without keys is a reason of its own (not only the
    first), up to 32, then a count of the rest."""
    closed = f"http://127.0.0.1:{free_port()}/jwks.json"

    def without_keys(n):
        return {f"p{i:02d}": provider(issuer=f"https://issuer-{i}.example", jwks={"uri": closed})
                for i in range(n)}

    box = {}

    def not_starting(g):
        def check():
            box["doc"] = ready_doc(g)
            return box["doc"][1].get("reasons") != ["starting"]
        wait_for(check, 10, "/ready past 'starting'", interval=0.05)
        return box["doc"]

    g = start(gatehouse, upstream(), without_keys(5), routes=[route("all", "/", "p00")], admin=True)
    status, rd = not_starting(g)
    assert status == 503, rd
    named = [r.split(":", 1)[0] for r in rd["reasons"]]
    assert named == [f"jwt provider 'p{i:02d}'" for i in range(5)], rd

    g = start(gatehouse, upstream(), without_keys(35), routes=[route("all", "/", "p00")], admin=True)
    status, rd = not_starting(g)
    assert status == 503, rd
    named = [r.split(":", 1)[0] for r in rd["reasons"][:32]]
    assert named == [f"jwt provider 'p{i:02d}'" for i in range(32)], rd
    assert rd["reasons"][32:] == ["and 3 more jwt providers without keys"], rd


def test_jwks_url_credentials_never_shown(gatehouse, upstream, tmp_path):
    """A JWKS URI, a discovery URL (from the issuer) and a jwks_uri from a
    metadata document may hold a credential as userinfo or in the query:
    failed fetches log them, and /ready (detailed) shows them, with the
    userinfo and every query value as [redacted]."""
    closed = free_port()
    meta = JwksServer(tmp_path)
    try:
        meta.control(jwks_uri=f"http://juser:jpass-secret@127.0.0.1:{closed}/keys?sig=jq-secret&x=1")
        g = start(gatehouse, upstream(), {
            "direct": provider(jwks={"uri": f"http://user:u-secret@127.0.0.1:{closed}/jwks?key=q-secret"}),
            "disc": provider(issuer=meta.base, jwks={"discovery": True}),
            "disc2": provider(issuer=f"http://iuser:i-secret@127.0.0.1:{closed}/t?tenant=t-secret",
                              jwks={"discovery": True}),
        }, routes=[route("all", "/", "direct")], admin=True)
        box = {}

        def all_failed():
            box["rd"] = ready_doc(g)[1]
            reasons = box["rd"].get("reasons", [])
            return len(reasons) == 3 and all("[redacted]" in r for r in reasons) and all(
                f"provider '{p}': fetch failed" in g.stderr for p in ("direct", "disc", "disc2"))
        wait_for(all_failed, 15, "a failed fetch of each provider, in /ready and the log", interval=0.1)
        rd = json.dumps(box["rd"])
        log = g.stderr
        for where, text in (("/ready", rd), ("log", log)):
            assert "secret" not in text, f"a credential in the {where}: {text}"
        assert f"http://[redacted]@127.0.0.1:{closed}/jwks?key=[redacted]" in rd, rd
        assert f"http://[redacted]@127.0.0.1:{closed}/keys?sig=[redacted]&x=[redacted]" in rd, rd
        assert f"http://[redacted]@127.0.0.1:{closed}/t" in rd, rd
    finally:
        meta.stop()
