"""Hot reload: SIGHUP and config-file changes (in place and by rename) build
and validate a new config; only a valid one replaces the running one. The
load test reloads 30 times (good and bad configs) under 20 keep-alive client
connections and checks that no request fails or is answered by a config
that was not live."""

import os
import threading
import time
from pathlib import Path

import pytest

from harness import RawConn, fetch, free_port, make_config
from ops_util import (IdentityUpstream, config_errors, config_text, connect_refused, sighup,
                      wait_for, write_config)


def dr(body, status=200):
    return {"status": status, "headers": {"content-type": "text/plain"}, "body": body}


def probe_route(tag):
    return {"name": "probe", "match": {"path": {"exact": "/probe"}}, "direct_response": dr(tag)}


def probe(g):
    r = fetch(g.port, "GET", "/probe", timeout=5)
    return r.body.decode() if r.status == 200 else f"status {r.status}"


def wait_probe(g, tag, timeout=10.0):
    wait_for(lambda: probe(g) == tag, timeout, f"/probe to answer {tag!r} (stderr: {g.stderr_tail(5)})")


def simple_cfg(tag, extra_routes=(), listeners_extra=()):
    routes = [probe_route(tag)] + list(extra_routes) + [
        {"name": "rest", "match": {"path": {"prefix": "/"}}, "direct_response": dr("rest-" + tag)}]
    cfg = make_config(routes=routes)
    cfg["listeners"] += list(listeners_extra)
    return cfg


# --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["inplace", "rename"])
def test_file_change_reloads(gatehouse, how):
    g = gatehouse(simple_cfg("one"))
    assert probe(g) == "one"
    # Twice: the watch must survive the first change (a rename replaces the inode).
    for tag in ("two", "three"):
        write_config(g, config_text(g, simple_cfg(tag)), how)
        wait_probe(g, tag)
    r = fetch(g.port, "GET", "/anything")
    assert r.status == 200 and r.body == b"rest-three", r


def test_sighup_reloads(gatehouse, tmp_path):
    """SIGHUP alone: the config path is turned into a symlink to a file in a
    directory gatehouse does not watch, so only the signal can pick up the
    change."""
    g = gatehouse(simple_cfg("one"))
    other = tmp_path / "elsewhere"
    other.mkdir()
    real = other / "real.yaml"
    real.write_text(Path(g.config_path).read_text())
    link = Path(g.config_path).with_name("link.tmp")
    os.symlink(real, link)
    os.rename(link, g.config_path)  # same content: nothing changes
    assert probe(g) == "one"
    real.write_text(config_text(g, simple_cfg("two")))
    sighup(g)
    wait_probe(g, "two")
    real.write_text(config_text(g, simple_cfg("three")))
    sighup(g)
    wait_probe(g, "three")


def test_bad_configs_keep_old_config(gatehouse):
    g = gatehouse(simple_cfg("good1"))
    good_text = config_text(g, simple_cfg("good1"))
    n0 = len(config_errors(g))
    bad_texts = [
        # YAML syntax error
        good_text.replace("routes:", "routes: [", 1),
        # a route naming an unknown cluster
        config_text(g, simple_cfg("bad", extra_routes=[
            {"name": "x", "match": {"path": {"prefix": "/x"}}, "to": "nosuch"}])),
        # unknown key
        config_text(g, {**simple_cfg("bad"), "bogus_key": 1}),
    ]
    for i, text in enumerate(bad_texts):
        write_config(g, text, "rename" if i % 2 else "inplace")
        wait_for(lambda: len(config_errors(g)) > n0, 10,
                 f"a file:line:col error on stderr for bad config #{i}\n{g.stderr_tail(10)}")
        errs = config_errors(g)
        assert str(Path(g.config_path).name) in errs[-1], errs[-1]
        n0 = len(errs)
        assert g.alive()
        assert probe(g) == "good1"
        assert fetch(g.port, "GET", "/x").body == b"rest-good1"
    assert any("nosuch" in l for l in config_errors(g)), config_errors(g)
    write_config(g, config_text(g, simple_cfg("good2")), "inplace")
    wait_probe(g, "good2")


def test_sighup_with_bad_file_keeps_serving(gatehouse):
    g = gatehouse(simple_cfg("good1"))
    n0 = len(config_errors(g))
    # Content-identical rewrites are ignored by the watcher; SIGHUP must still
    # re-read and refuse the bad file.
    write_config(g, "listeners: [ {name: edge, listen: 127.0.0.1:1, routes: [] ] }\n", "inplace")
    sighup(g)
    wait_for(lambda: len(config_errors(g)) > n0, 10, "an error on stderr")
    assert g.alive()
    assert probe(g) == "good1"


def test_listener_added_and_removed(gatehouse):
    g = gatehouse(simple_cfg("one"))
    p2 = free_port()
    second = {"name": "second", "listen": f"127.0.0.1:{p2}",
              "routes": [{"name": "s", "direct_response": dr("from-second")}]}
    assert connect_refused(p2)
    write_config(g, config_text(g, simple_cfg("two", listeners_extra=[second])), "rename")
    wait_probe(g, "two")

    def second_answers():
        r = fetch(p2, "GET", "/", timeout=3)
        return r.status == 200 and r.body == b"from-second"

    wait_for(second_answers, 10, "the added listener to answer")
    # Several fresh connections (with several workers, each one's socket).
    for _ in range(10):
        assert second_answers()
    write_config(g, config_text(g, simple_cfg("three")), "rename")
    wait_probe(g, "three")
    wait_for(lambda: connect_refused(p2), 10, f"port {p2} to refuse connections after removal")
    assert probe(g) == "three"
    # Re-adding it works again (the old socket was really closed).
    write_config(g, config_text(g, simple_cfg("four", listeners_extra=[second])), "inplace")
    wait_probe(g, "four")
    wait_for(second_answers, 10, "the re-added listener to answer")


def test_inflight_request_keeps_its_snapshot(gatehouse, upstream):
    """A request in flight when the config changes finishes against the cluster
    it was routed to; the next request on the same keep-alive connection uses
    the new config."""
    u1, u2 = upstream(name="old"), upstream(name="new")

    def cfg(tag, up):
        c = make_config([up], routes=[probe_route(tag),
                                      {"name": "all", "match": {"path": {"prefix": "/"}}, "to": "app"}])
        return c

    g = gatehouse(cfg("one", u1), workers=2)
    with RawConn(g.port, timeout=20) as c:
        c.request("GET", "/slow/1.5?id=inflight")
        u1.wait_requests(1)
        write_config(g, config_text(g, cfg("two", u2)), "rename")
        wait_probe(g, "two")
        r = c.read_response()
        assert r.status == 200 and r.complete, r
        assert r.json()["target"] == "/slow/1.5?id=inflight"
        assert "/slow/1.5?id=inflight" in u1.targets()
        c.request("GET", "/echo?id=after")
        r = c.read_response()
        assert r.status == 200, r
    assert "/echo?id=after" in u2.targets(), (u1.targets(), u2.targets())
    assert "/echo?id=after" not in u1.targets()


# --------------------------------------------------------------------------
# The load test


N_THREADS = 20
N_STEPS = 30
MIN_REQUESTS = 4000


class LoadConfigs:
    """Good config k (k = 0 initial, 1.. reloads): /probe answers P<k>; /v
    alternates direct responses A<k>/B<k> and two clusters (renamed every
    time) on two identity upstreams U1/U2; /extra exists when k % 3 == 0."""

    def __init__(self, u1, u2):
        self.u1, self.u2 = u1, u2
        self.admin_port = free_port()

    def cfg(self, k):
        routes = [probe_route(f"P{k}")]
        clusters = {}
        kind = k % 4
        if kind == 0:
            v = {"direct_response": dr(f"A{k}")}
        elif kind == 2:
            v = {"direct_response": dr(f"B{k}")}
        else:
            name, up = (f"one-{k}", self.u1) if kind == 1 else (f"two-{k}", self.u2)
            clusters[name] = {"endpoints": [f"127.0.0.1:{up.port}"]}
            v = {"to": name}
        # Keep both clusters defined in some configs so that an unused
        # cluster comes and goes as well.
        if k % 5 == 0:
            clusters[f"spare-{k}"] = {"endpoints": [f"127.0.0.1:{self.u1.port}"]}
        routes.append({"name": "v", "match": {"path": {"prefix": "/v"}}, **v})
        if k % 3 == 0:
            routes.append({"name": "extra", "match": {"path": {"exact": "/extra"}},
                           "direct_response": dr(f"X{k}")})
        cfg = make_config(routes=routes, clusters=clusters)
        cfg["admin"] = {"listen": f"127.0.0.1:{self.admin_port}"}
        return cfg

    def answers(self, k):
        kind = k % 4
        v = {0: f"A{k}", 1: "U1", 2: f"B{k}", 3: "U2"}[kind]
        extra = (200, f"X{k}") if k % 3 == 0 else (404, None)
        return {"/v": (200, v), "/extra": extra}

    def bad(self, g, k, i):
        good = config_text(g, self.cfg(k))
        kind = i % 3
        if kind == 0:
            return good.replace("routes:", "routes: [", 1)
        bad = self.cfg(k)
        bad["listeners"][0]["routes"][0]["direct_response"]["body"] = "PBAD"
        for r in bad["listeners"][0]["routes"]:
            if r["name"] == "v":
                r.pop("direct_response", None)
                r["to"] = "nosuch-cluster" if kind == 1 else "one-bad"
        bad["clusters"] = {"one-bad": {"endpoints": [f"127.0.0.1:{self.u1.port}"]}}
        if kind == 2:
            bad["listeners"][0]["misspelt_key"] = 5
        return config_text(g, bad)


class Client(threading.Thread):
    def __init__(self, port, stop, idx):
        super().__init__(daemon=True, name=f"load-{idx}")
        self.port, self.stop_ev, self.idx = port, stop, idx
        self.results = []  # (target, ts, tr, status, body)
        self.failures = []
        self.conns = 0

    def run(self):
        c = None
        i = 0
        while not self.stop_ev.is_set():
            target = "/extra" if i % 10 == self.idx % 10 else "/v"
            i += 1
            try:
                if c is None:
                    c = RawConn(self.port, timeout=10)
                    self.conns += 1
                ts = time.monotonic()
                c.request("GET", target)
                r = c.read_response()
                tr = time.monotonic()
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.failures.append(f"{target}: {type(e).__name__}: {e}")
                if c is not None:
                    c.close()
                c = None
                continue
            if not r.complete:
                self.failures.append(f"{target}: incomplete response {r!r}")
            self.results.append((target, ts, tr, r.status, r.body.decode("latin-1")))
            if any(v.lower() == "close" for v in r.headers_all("connection")):
                c.close()
                c = None
        if c is not None:
            c.close()


def test_reload_under_load(gatehouse, tmp_path):
    u1, u2 = IdentityUpstream("U1"), IdentityUpstream("U2")
    try:
        _reload_under_load(gatehouse, u1, u2)
    finally:
        u1.stop()
        u2.stop()


def _reload_under_load(gatehouse, u1, u2):
    confs = LoadConfigs(u1, u2)
    g = gatehouse(confs.cfg(0), workers=2)
    wait_probe(g, "P0")
    # config k: (initiated, observed) monotonic times. Config 0 is live from the start.
    live = {0: (0.0, 0.0)}
    bad_seen = 0
    stop = threading.Event()
    clients = [Client(g.port, stop, i) for i in range(N_THREADS)]
    for t in clients:
        t.start()
    k = 0
    hows = ["inplace", "rename", "sighup"]
    try:
        for step in range(1, N_STEPS + 1):
            time.sleep(0.05)  # let some traffic run on each config
            how = hows[step % 3]
            if step % 3 == 0:
                n0 = len(config_errors(g))
                text = confs.bad(g, k + 1, step // 3)
                write_config(g, text, "rename" if how == "sighup" else how)
                if how == "sighup":
                    sighup(g)
                wait_for(lambda: len(config_errors(g)) > n0, 10,
                         f"step {step}: bad config refused with a file:line:col error\n{g.stderr_tail(10)}")
                bad_seen += 1
                assert g.alive(), g.stderr_tail()
                assert probe(g) == f"P{k}", f"step {step}: bad config replaced the running one"
                continue
            k += 1
            t0 = time.monotonic()
            write_config(g, config_text(g, confs.cfg(k)), "rename" if how == "sighup" else how)
            if how == "sighup":
                sighup(g)
            wait_probe(g, f"P{k}")
            # Live means live on every worker: each logs when it switches (a
            # probe only shows that the worker which answered it has).
            wait_for(lambda: all(g.stderr.count(f"worker={w} serving generation") >= k
                                 for w in range(2)), 10,
                     f"step {step}: both workers serving config {k}\n{g.stderr_tail(10)}")
            live[k] = (t0, time.monotonic())
        # Keep the load running on the last config until enough requests were made.
        wait_for(lambda: sum(len(t.results) for t in clients) >= MIN_REQUESTS, 60,
                 f"{MIN_REQUESTS} requests")
    finally:
        stop.set()
        for t in clients:
            t.join(30)
    assert g.alive(), g.stderr_tail()
    assert bad_seen == N_STEPS // 3
    assert len(live) - 1 == N_STEPS - N_STEPS // 3

    failures = [f for t in clients for f in t.failures]
    results = [r for t in clients for r in t.results]
    total = len(results) + len(failures)
    assert total >= MIN_REQUESTS

    answers = {j: confs.answers(j) for j in live}
    misrouted = []
    for target, ts, tr, status, body in results:
        if target == "/v" and status != 200:
            failures.append(f"/v answered {status} {body[:200]!r}")
            continue
        got = (status, body if status == 200 else None)
        # Newest config observed live before the request was sent.
        lo = max(j for j, (_, obs) in live.items() if obs <= ts)
        # Configs written before the response arrived.
        ok = [j for j, (ini, _) in live.items() if j >= lo and ini <= tr]
        if not any(answers[j][target] == got for j in ok):
            # Which config (if any) would have given this answer?
            from_cfg = [j for j in live if answers[j][target] == got]
            misrouted.append(f"{target} -> {got} sent at {ts:.3f} (config {lo} observed live by then, "
                             f"allowed configs {ok}); answer belongs to configs {from_cfg or 'none'}")
    summary = (f"{total} requests on {sum(t.conns for t in clients)} connections, "
               f"{len(live) - 1} good and {bad_seen} bad reloads")
    assert not failures, f"{len(failures)} failed requests ({summary}):\n" + "\n".join(failures[:30])
    assert not misrouted, f"{len(misrouted)} mis-routed ({summary}):\n" + "\n".join(misrouted[:30])
    # Both upstream clusters were really used.
    assert u1.requests > 0 and u2.requests > 0
    # Every good step reloaded at least once (the watcher and SIGHUP may both
    # fire for one step), every bad one failed at least once, and the
    # generation counts the successful reloads.
    from ops_util import metrics
    m = metrics(confs.admin_port)
    ok = m.value("gatehouse_config_reloads_total", result="ok")
    failed = m.value("gatehouse_config_reloads_total", result="failed")
    assert ok >= len(live) - 1 and failed >= bad_seen, (ok, failed)
    assert m.value("gatehouse_config_generation") == 1 + ok
    print(summary)


def test_inflight_on_removed_listener_completes(gatehouse, upstream):
    """A request in flight on a listener that a reload removes still gets its
    whole response."""
    up = upstream()
    p1 = free_port()
    p2 = free_port()
    while p2 == p1:  # the kernel may hand the same free port out twice
        p2 = free_port()

    def cfg(tag, with_second):
        c = make_config([up], routes=[probe_route(tag),
                                      {"name": "all", "match": {"path": {"prefix": "/"}}, "to": "app"}])
        c["listeners"][0]["listen"] = f"127.0.0.1:{p1}"
        if with_second:
            c["listeners"].append({"name": "second", "listen": f"127.0.0.1:{p2}",
                                   "routes": [{"name": "s", "to": "app"}]})
        return c

    g = gatehouse(cfg("one", True))
    wait_for(lambda: fetch(p2, "GET", "/echo", timeout=3).status == 200, 10, "second listener")
    with RawConn(p2, timeout=20) as c:
        c.request("GET", "/slow/1.5?id=onsecond")
        wait_for(lambda: "/slow/1.5?id=onsecond" in up.targets(), 10, "slow request upstream")
        write_config(g, config_text(g, cfg("two", False)), "rename")
        wait_probe(g, "two")
        wait_for(lambda: connect_refused(p2), 10, "removed listener to refuse")
        r = c.read_response()
        assert r.status == 200 and r.complete, r
        assert r.json()["target"] == "/slow/1.5?id=onsecond"


def test_config_deleted_then_recreated(gatehouse):
    """While the file is missing gatehouse keeps serving (a SIGHUP then is a
    failed reload); writing it again (not by rename) reloads."""
    g = gatehouse(simple_cfg("one"))
    os.unlink(g.config_path)
    sighup(g)
    wait_for(lambda: "refused" in g.stderr or "cannot" in g.stderr.lower(), 10,
             f"a logged failed reload for the missing file\n{g.stderr_tail(5)}")
    assert g.alive()
    assert probe(g) == "one"
    write_config(g, config_text(g, simple_cfg("two")), "inplace")
    wait_probe(g, "two")


def test_kubernetes_configmap_symlink_swap(gatehouse, tmp_path):
    """Beyond the two write modes in the brief: a Kubernetes ConfigMap volume
    is `file -> ..data/file`, `..data -> ..<timestamp>/`, and an update
    swaps `..data` by rename; no event names the config file itself."""
    g = gatehouse(simple_cfg("one"))
    name = Path(g.config_path).name
    d1 = tmp_path / "..2026_01"
    d1.mkdir()
    (d1 / name).write_text(Path(g.config_path).read_text())
    os.symlink(d1.name, tmp_path / "..data")
    tmp_link = tmp_path / (name + ".lnk")
    os.symlink(f"..data/{name}", tmp_link)
    os.rename(tmp_link, g.config_path)
    assert probe(g) == "one"
    d2 = tmp_path / "..2026_02"
    d2.mkdir()
    (d2 / name).write_text(config_text(g, simple_cfg("two")))
    os.symlink(d2.name, tmp_path / "..data_tmp")
    os.rename(tmp_path / "..data_tmp", tmp_path / "..data")
    wait_probe(g, "two")


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def test_reloads_do_not_leak(gatehouse, upstream, tmp_path):
    """100 reloads (with admin, access log and a second listener) leave the
    number of descriptors and threads where it was."""
    from ops_util import admin_conf, metrics
    up = upstream()
    p2 = free_port()
    cfg = make_config([up], routes=[probe_route("x"), {"name": "all", "to": "app"}])
    cfg["listeners"].append({"name": "second", "listen": f"127.0.0.1:{p2}",
                             "routes": [{"name": "s", "direct_response": dr("s")}]})
    cfg["admin"] = admin_conf()
    cfg["access_log"] = {"path": str(tmp_path / "acc.log")}
    g = gatehouse(cfg, workers=2)
    ap = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    wait_for(lambda: metrics(ap).value("gatehouse_config_generation") == 1, 10, "admin")
    assert fetch(g.port, "GET", "/echo").status == 200
    fds0, th0 = proc_fds(g.pid), proc_threads(g.pid)
    for i in range(100):
        sighup(g)
        wait_for(lambda: metrics(ap).value("gatehouse_config_generation") >= i + 2, 10, f"reload {i + 1}")
        if i % 10 == 0:
            assert fetch(g.port, "GET", "/echo").status == 200
    assert fetch(p2, "GET", "/").body == b"s"
    fds1, th1 = proc_fds(g.pid), proc_threads(g.pid)
    assert fds1 - fds0 < 10, f"descriptors grew from {fds0} to {fds1} over 100 reloads"
    assert th1 - th0 < 4, f"threads grew from {th0} to {th1} over 100 reloads"


def _start_and_signal_at_once(gatehouse, cfg, sig):
    """Starts gatehouse and sends sig the moment its port accepts a
    connection (the earliest a supervisor could consider it up)."""
    import socket
    g = gatehouse(cfg, wait=False)
    deadline = time.monotonic() + 10
    while True:
        assert g.alive(), g.stderr_tail()
        try:
            socket.create_connection(("127.0.0.1", g.port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "never listened"
    g.proc.send_signal(sig)
    return g


@pytest.mark.parametrize("signame", ["SIGHUP", "SIGUSR1"])
def test_signal_right_after_start(gatehouse, tmp_path, signame):
    """SIGHUP (reload) or SIGUSR1 (log reopen) sent as soon as the port
    accepts must not take the default action (terminate)."""
    import signal as _signal
    sig = getattr(_signal, signame)
    cfg = simple_cfg("one")
    cfg["access_log"] = {"path": str(tmp_path / "a.log")}
    deaths = []
    for i in range(8):
        g = _start_and_signal_at_once(gatehouse, cfg, sig)
        try:
            wait_for(lambda: not g.alive() or probe(g) == "one", 5, "serving or dead")
        except AssertionError:
            pass
        if not g.alive():
            g.expect_exit = True
            deaths.append(g.proc.poll())
        else:
            assert probe(g) == "one"
            g.stop()
    assert not deaths, f"{signame} right after start killed gatehouse {len(deaths)}/8 times (exit statuses {deaths})"


def test_reload_with_unbindable_listener_refused(gatehouse):
    """A new listener whose address is taken makes the whole reload fail:
    logged, counted, and the old config keeps serving."""
    import socket
    from ops_util import admin_conf, metrics
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    try:
        cfg = simple_cfg("one")
        cfg["admin"] = admin_conf()
        ap = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
        g = gatehouse(cfg)
        bad = simple_cfg("two", listeners_extra=[{"name": "taken", "listen": f"127.0.0.1:{taken}",
                                                   "routes": [{"name": "t", "direct_response": dr("t")}]}])
        bad["admin"] = cfg["admin"]
        write_config(g, config_text(g, bad), "rename")
        wait_for(lambda: metrics(ap).value("gatehouse_config_reloads_total", result="failed") == 1, 10,
                 "a failed reload")
        assert probe(g) == "one"
        assert metrics(ap).value("gatehouse_config_generation") == 1
        assert "taken" in g.stderr
    finally:
        blocker.close()


def test_reload_storm(gatehouse, tmp_path):
    """Back-to-back reloads (no waiting between them) under load, with an
    access log and a scraper: no failed request, no answer from a config
    never written, counters never go backwards between scrapes, and the
    access log has exactly one line per request."""
    import signal as _signal
    from ops_util import Metrics, admin_get, read_json_lines
    u1, u2 = IdentityUpstream("U1"), IdentityUpstream("U2")
    try:
        aport = free_port()
        log = tmp_path / "storm.log"

        def cfg(k):
            up, name = (u1, f"c{k}") if k % 2 else (u2, f"d{k}")
            c = make_config(routes=[probe_route(f"P{k}"),
                                    {"name": "v", "match": {"path": {"prefix": "/v"}}, "to": name}],
                            clusters={name: {"endpoints": [f"127.0.0.1:{up.port}"]}})
            c["admin"] = {"listen": f"127.0.0.1:{aport}"}
            c["access_log"] = {"path": str(log), "fields": ["request_id", "status", "path"]}
            return c

        g = gatehouse(cfg(0), workers=2)
        stop = threading.Event()
        clients = [Client(g.port, stop, i) for i in range(10)]
        scrape_errors = []
        scrapes = [0]

        def scraper():
            last = 0
            while not stop.is_set():
                try:
                    m = Metrics(admin_get(aport, "/metrics", timeout=10).body.decode())
                    v = m.sum("gatehouse_requests_total")
                    if v < last:
                        scrape_errors.append(f"requests_total went from {last} to {v}")
                    last = v
                    scrapes[0] += 1
                except Exception as e:  # noqa: BLE001
                    scrape_errors.append(repr(e))

        sc = threading.Thread(target=scraper, daemon=True)
        for t in clients:
            t.start()
        sc.start()
        try:
            for k in range(1, 61):
                write_config(g, config_text(g, cfg(k)), "rename")
                g.proc.send_signal(_signal.SIGHUP)
                if k % 20 == 0:
                    g.proc.send_signal(_signal.SIGUSR1)
                time.sleep(0.01)
            wait_probe(g, "P60")
            wait_for(lambda: sum(len(t.results) for t in clients) >= 3000, 60, "3000 requests")
        finally:
            stop.set()
            for t in clients:
                t.join(30)
            sc.join(30)
        assert g.alive(), g.stderr_tail()
        failures = [f for t in clients for f in t.failures]
        results = [r for t in clients for r in t.results]
        # /extra has no route in these configs: 404 is its right answer.
        wrong_extra = [r for r in results if r[0] == "/extra" and r[3] != 404]
        assert not wrong_extra, wrong_extra[:20]
        bad = [r for r in results if r[0] == "/v" and (r[3] != 200 or r[4] not in ("U1", "U2"))]
        assert not failures, failures[:20]
        assert not bad, bad[:20]
        assert not scrape_errors, scrape_errors[:10]
        assert scrapes[0] > 0
        n = len(results)
        wait_for(lambda: len(read_json_lines(log)) >= n, 10, f"{n} access log lines")
        # Probe requests from wait_probe are logged too.
        lines = read_json_lines(log)
        v_lines = [l for l in lines if l["path"] in ("/v", "/extra")]
        assert len(v_lines) == n, f"{len(v_lines)} access log lines for {n} requests"
        assert len({l["request_id"] for l in v_lines}) == n
    finally:
        u1.stop()
        u2.stop()


# --------------------------------------------------------------------------
# A reload is a transaction: what would fail when applied refuses it whole.


def _admin_cfg(tag, aport, **extra):
    cfg = simple_cfg(tag)
    cfg["admin"] = {"listen": f"127.0.0.1:{aport}"}
    cfg.update(extra)
    return cfg


def _reloads(aport):
    from ops_util import metrics
    m = metrics(aport)
    return (m.value("gatehouse_config_reloads_total", result="ok"),
            m.value("gatehouse_config_reloads_total", result="failed"),
            m.value("gatehouse_config_generation"))


def test_admin_section_removed_then_restored(gatehouse):
    """A config without `admin`, then one with it again: the second reload
    used to compare the admin address with the previous config's (NULL)
    and crash. The running admin listener stays, with its token."""
    from ops_util import admin_get
    aport = free_port()
    g = gatehouse(_admin_cfg("one", aport))
    write_config(g, config_text(g, simple_cfg("two")), "rename")
    wait_probe(g, "two")
    assert admin_get(aport, "/live").status == 200
    write_config(g, config_text(g, _admin_cfg("three", aport)), "rename")
    wait_probe(g, "three")
    assert g.alive(), g.stderr_tail()
    wait_for(lambda: _reloads(aport) == (2, 0, 3), 10, "two ok reloads, generation 3")
    # Another address than the bound one: logged, the bound one keeps serving.
    write_config(g, config_text(g, _admin_cfg("four", free_port())), "rename")
    wait_probe(g, "four")
    assert admin_get(aport, "/live").status == 200
    assert "admin listen address changes need a restart" in g.stderr


def _jwt_route_cfg(tag, aport, jwks):
    from jwt_util import provider
    cfg = _admin_cfg(tag, aport)
    cfg["listeners"][0]["routes"].insert(1, {
        "name": "secure", "match": {"path": {"prefix": "/secure"}},
        "authn": "corp", "direct_response": dr("secure")})
    cfg["providers"] = {"jwt": {"corp": provider(jwks=jwks)}}
    return cfg


def _wait_refused(g, aport, reason_part):
    wait_for(lambda: _reloads(aport)[1] == 1, 10, "a failed reload")
    assert _reloads(aport) == (0, 1, 1)
    refused = [l for l in g.stderr.splitlines() if "refused" in l]
    assert refused and reason_part in refused[-1], refused


def _assert_still_ready(g, aport, tag):
    from ops_util import admin_get
    r = admin_get(aport, "/ready")
    assert r.status == 200 and r.json() == {"status": "ready", "generation": 1}, r
    assert probe(g) == tag


@pytest.mark.parametrize("broken", ["missing", "garbage", "inline"])
def test_reload_refused_when_jwks_does_not_load(gatehouse, tmp_path, broken):
    """A new provider whose JWKS file is missing or not a key set, or whose
    inline set does not load, refuses the reload: it used to count as ok
    and leave /ready 503 on every replica at once."""
    aport = free_port()
    g = gatehouse(_admin_cfg("one", aport))
    path = tmp_path / "jwks.json"
    if broken == "garbage":
        path.write_text("{ not json")
    jwks = {"inline": '{"keys": []}'} if broken == "inline" else {"file": str(path)}
    write_config(g, config_text(g, _jwt_route_cfg("two", aport, jwks)), "rename")
    _wait_refused(g, aport, "jwt provider 'corp'")
    _assert_still_ready(g, aport, "one")
    assert fetch(g.port, "GET", "/secure").body == b"rest-one"


def test_reload_with_good_jwks_file_applies(gatehouse, tmp_path):
    from jwt_util import jwks_text, rsa_key
    aport = free_port()
    g = gatehouse(_admin_cfg("one", aport))
    path = tmp_path / "jwks.json"
    path.write_text(jwks_text(rsa_key(kid="r1", slot="reload-1")))
    write_config(g, config_text(g, _jwt_route_cfg("two", aport, {"file": str(path)})), "rename")
    wait_probe(g, "two")
    assert _reloads(aport) == (1, 0, 2)
    assert fetch(g.port, "GET", "/secure").status == 401


def test_reload_refused_when_access_log_cannot_open(gatehouse, tmp_path):
    """An access log in a directory that does not exist refuses the reload;
    the old log keeps receiving lines."""
    from ops_util import read_json_lines
    aport = free_port()
    old_log = tmp_path / "old.log"
    g = gatehouse(_admin_cfg("one", aport, access_log={"path": str(old_log)}))
    bad = _admin_cfg("two", aport, access_log={"path": str(tmp_path / "nosuch" / "a.log")})
    write_config(g, config_text(g, bad), "rename")
    _wait_refused(g, aport, "access_log: cannot open")
    _assert_still_ready(g, aport, "one")
    assert fetch(g.port, "GET", "/after-refusal").status == 200
    wait_for(lambda: any(l["path"] == "/after-refusal" for l in read_json_lines(old_log)), 10,
             "the old access log to get the line")
    assert not (tmp_path / "nosuch").exists()


@pytest.mark.parametrize("what", ["jwks", "access_log", "token_file"])
def test_reload_refused_when_a_file_is_a_named_pipe(gatehouse, tmp_path, what):
    """A named pipe where the config names a file (a JWKS file, the access
    log, the admin token file) used to block the main loop in open() until
    a peer came: /live stopped answering and SIGTERM waited. Now it is
    opened without blocking and refused as not a regular file; the old
    config keeps serving."""
    import os
    from ops_util import admin_get
    aport = free_port()
    g = gatehouse(_admin_cfg("one", aport))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    if what == "jwks":
        bad = _jwt_route_cfg("two", aport, {"file": str(fifo)})
    elif what == "access_log":
        bad = _admin_cfg("two", aport, access_log={"path": str(fifo)})
    else:
        bad = _admin_cfg("two", aport)
        bad["admin"]["token_file"] = str(fifo)
    write_config(g, config_text(g, bad), "rename")
    wait_for(lambda: "not a regular file" in g.stderr, 10, "the refusal naming the reason")
    assert admin_get(aport, "/live").status == 200
    _assert_still_ready(g, aport, "one")
    assert _reloads(aport)[2] == 1


def test_sighup_with_jwks_file_replaced_by_a_named_pipe(gatehouse, tmp_path):
    """The JWKS file of a running provider replaced by a named pipe, then
    SIGHUP: the reload's key check used to block in open() (no /live, SIGTERM
    ignored); now the reload is refused with the reason at once."""
    import os
    from jwt_util import jwks_text, rsa_key
    from ops_util import admin_get
    aport = free_port()
    path = tmp_path / "jwks.json"
    path.write_text(jwks_text(rsa_key(kid="r1", slot="fifo-1")))
    g = gatehouse(_jwt_route_cfg("one", aport, {"file": str(path)}))
    wait_for(lambda: admin_get(aport, "/ready").status == 200, 10, "ready")
    path.unlink()
    os.mkfifo(path)
    sighup(g)
    wait_for(lambda: _reloads(aport)[1] == 1, 10, "the reload to be refused")
    refused = [l for l in g.stderr.splitlines() if "refused" in l]
    assert refused and "not a regular file" in refused[-1], refused
    assert admin_get(aport, "/live").status == 200
    assert _reloads(aport) == (0, 1, 1)
    assert probe(g) == "one"


def test_refused_reload_keeps_new_listener_port_free(gatehouse, tmp_path):
    """A reload refused after it bound a new listener (the access log fails
    later) releases that address again."""
    import socket
    aport = free_port()
    g = gatehouse(_admin_cfg("one", aport))
    p2 = free_port()
    bad = _admin_cfg("two", aport, access_log={"path": str(tmp_path / "nosuch" / "a.log")})
    bad["listeners"].append({"name": "second", "listen": f"127.0.0.1:{p2}",
                             "routes": [{"name": "s", "direct_response": dr("s")}]})
    write_config(g, config_text(g, bad), "rename")
    _wait_refused(g, aport, "access_log")
    assert connect_refused(p2)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p2))  # nobody holds it
    finally:
        s.close()


# --------------------------------------------------------------------------
# validate --apply-checks


def _validate(tmp_path, cfg, *flags):
    import subprocess
    from harness import gatehouse_bin, to_yaml
    p = tmp_path / "v.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    return subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p), *flags],
                          capture_output=True, timeout=30)


def test_validate_apply_checks(tmp_path):
    import os
    import socket
    from jwt_util import provider
    base = simple_cfg("v")
    base["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    cases = []
    c = json_copy(base)
    c["providers"] = {"jwt": {"corp": provider(jwks={"file": str(tmp_path / "missing.json")})}}
    cases.append((c, b"jwt provider 'corp': cannot read jwks file"))
    c = json_copy(base)
    c["access_log"] = {"path": str(tmp_path / "nosuch" / "a.log")}
    cases.append((c, b"access_log: cannot open"))
    fifo = tmp_path / "jwks.pipe"
    os.mkfifo(fifo)  # open() on it without a writer used to hang validate
    c = json_copy(base)
    c["providers"] = {"jwt": {"corp": provider(jwks={"file": str(fifo)})}}
    cases.append((c, b"cannot read jwks file " + bytes(fifo) + b": not a regular file"))
    # A named pipe as the access log: reload refuses it, so validate does too.
    logfifo = tmp_path / "access.pipe"
    os.mkfifo(logfifo)
    c = json_copy(base)
    c["access_log"] = {"path": str(logfifo)}
    cases.append((c, b"access_log: cannot open " + bytes(logfifo) + b": not a regular file"))
    c = json_copy(base)
    c["tracing"] = {"collector": "http://[::1/v1/traces"}
    cases.append((c, b"collector URL does not parse"))
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        c = json_copy(base)
        c["listeners"][0]["listen"] = f"127.0.0.1:{blocker.getsockname()[1]}"
        cases.append((c, b"cannot bind"))
        for cfg, want in cases:
            r = _validate(tmp_path, cfg)
            assert r.returncode == 0, (cfg, r)  # without the flag: the file alone
            r = _validate(tmp_path, cfg, "--apply-checks")
            assert r.returncode == 1 and want in r.stderr, (cfg, r)
    finally:
        blocker.close()
    assert not (tmp_path / "nosuch").exists()
    r = _validate(tmp_path, base, "--apply-checks")
    assert r.returncode == 0 and r.stdout.endswith(b": ok\n"), r


def json_copy(d):
    import json
    return json.loads(json.dumps(d))
