"""Tracing: W3C trace context (and B3) in, gatehouse's span as the parent
upstream, spans exported as OTLP/HTTP JSON to a collector stand-in,
sampling honouring the parent's flag, and a down or slow collector never
failing or stalling requests (drops counted)."""

import re
import secrets
import threading

import pytest

from harness import RawConn, fetch, free_port, make_config
from ops_util import (Collector, admin_conf, admin_port_of, attrs, metrics, wait_for,
                      wait_lines)

TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@pytest.fixture
def collector(tmp_path):
    started = []

    def make(**kw):
        c = Collector(tmp_path, **kw)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


def start(gatehouse, up, collector_url, workers=1, access_log=None, trusted=None, **tracing):
    t = {"collector": collector_url, "sampling": 1.0, "flush_interval": "100ms"}
    t.update(tracing)
    cfg = make_config([up], listener={"trusted_proxies": trusted} if trusted else None)
    cfg["tracing"] = t
    cfg["admin"] = admin_conf()
    if access_log:
        cfg["access_log"] = {"path": access_log}
    g = gatehouse(cfg, workers=workers)
    g.admin = admin_port_of(cfg)
    return g


def upstream_tp(up, marker):
    """The traceparent the upstream saw on the request whose target holds marker."""
    reqs = [r for r in up.complete_requests() if marker in r.target]
    assert len(reqs) == 1, reqs
    return reqs[0]


def new_ids():
    return secrets.token_hex(16), secrets.token_hex(8)


def spans_of(col, trace_id):
    return [s for s in col.spans() if s.get("traceId") == trace_id]


def wait_span(col, trace_id, timeout=10):
    wait_for(lambda: spans_of(col, trace_id), timeout, f"a span of trace {trace_id} at the collector")
    return spans_of(col, trace_id)


def server_span(spans):
    srv = [s for s in spans if s.get("kind") == 2]
    assert len(srv) == 1, f"expected one server span (kind 2): {spans}"
    return srv[0]


def check_records_valid(col):
    bad = [r for r in col.records() if r.get("errors")]
    assert not bad, f"collector found OTLP shape errors: {bad[:3]}"


def test_new_trace_when_absent(gatehouse, upstream, collector):
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url, service_name="gw-test")
    r = fetch(g.port, "GET", "/echo?m=new", headers=[("User-Agent", "tracer/1")])
    assert r.status == 200
    tp = upstream_tp(up, "m=new").header("traceparent")
    m = TP.match(tp or "")
    assert m, f"upstream got traceparent {tp!r}"
    trace_id, parent, flags = m.groups()
    assert flags == "01"
    assert trace_id != "0" * 32 and parent != "0" * 16
    spans = wait_span(col, trace_id)
    s = server_span(spans)
    assert parent in {x["spanId"] for x in spans}, "upstream's parent is not an exported span"
    assert s.get("parentSpanId", "") == "", s
    a = attrs(s)
    assert a.get("http.request.method") == "GET", a
    assert a.get("url.path") == "/echo", a
    assert a.get("http.response.status_code") == 200, a
    assert isinstance(a.get("http.route"), str) and a["http.route"], a
    assert a.get("server.address"), a
    assert a.get("client.address") == "127.0.0.1", a
    assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 10 ** 18
    rec = [x for x in col.records() if x.get("span", {}).get("traceId") == trace_id][0]
    assert rec["resource"].get("service.name") == "gw-test", rec["resource"]
    check_records_valid(col)


def test_incoming_traceparent(gatehouse, upstream, collector):
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url)
    t, p = new_ids()
    state = "vendor1=abc,vendor2=x-y_z"
    r = fetch(g.port, "GET", "/echo?m=in", headers=[("traceparent", f"00-{t}-{p}-01"), ("tracestate", state)])
    assert r.status == 200
    seen = upstream_tp(up, "m=in")
    m = TP.match(seen.header("traceparent") or "")
    assert m, seen.headers
    assert m.group(1) == t, "trace id not kept"
    assert m.group(2) != p, "gatehouse forwarded the caller's span id instead of its own"
    assert m.group(3) == "01"
    assert seen.header("tracestate") == state
    spans = wait_span(col, t)
    s = server_span(spans)
    assert s["traceId"] == t and s.get("parentSpanId") == p, s
    assert m.group(2) in {x["spanId"] for x in spans}
    assert s["spanId"] != p
    check_records_valid(col)


def test_b3_single_header(gatehouse, upstream, collector):
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url)
    t, sid = new_ids()
    r = fetch(g.port, "GET", "/echo?m=b3", headers=[("b3", f"{t}-{sid}-1")])
    assert r.status == 200
    m = TP.match(upstream_tp(up, "m=b3").header("traceparent") or "")
    assert m and m.group(1) == t and m.group(2) != sid and m.group(3) == "01", m
    s = server_span(wait_span(col, t))
    assert s.get("parentSpanId") == sid, s


def test_b3_multi_headers(gatehouse, upstream, collector):
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url)
    t, sid = new_ids()
    r = fetch(g.port, "GET", "/echo?m=b3m",
              headers=[("X-B3-TraceId", t), ("X-B3-SpanId", sid), ("X-B3-Sampled", "1")])
    assert r.status == 200
    m = TP.match(upstream_tp(up, "m=b3m").header("traceparent") or "")
    assert m and m.group(1) == t and m.group(3) == "01", m
    s = server_span(wait_span(col, t))
    assert s.get("parentSpanId") == sid, s


@pytest.mark.parametrize("bad", [
    "00-" + "0" * 32 + "-1111111111111111-01",
    "00-" + "a" * 32 + "-" + "0" * 16 + "-01",
    "zz-not-a-traceparent",
    "00-" + "A" * 32 + "-1111111111111111-01",
    "ff-" + "a" * 32 + "-1111111111111111-01",
], ids=["zero-trace", "zero-span", "garbage", "uppercase", "version-ff"])
def test_invalid_traceparent_starts_new_trace(gatehouse, upstream, collector, bad):
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url)
    r = fetch(g.port, "GET", "/echo?m=bad", headers=[("traceparent", bad)])
    assert r.status == 200
    tp = upstream_tp(up, "m=bad").header("traceparent")
    m = TP.match(tp or "")
    assert m, f"upstream got {tp!r} for incoming {bad!r}"
    assert m.group(1) not in bad.lower(), f"invalid incoming trace id was kept: {tp}"
    s = server_span(wait_span(col, m.group(1)))
    assert s.get("parentSpanId", "") == ""


def test_sampling_zero_honours_parent(gatehouse, upstream, collector):
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url, sampling=0.0, trusted=["127.0.0.1"])
    for i in range(5):
        assert fetch(g.port, "GET", f"/echo?m=none{i}").status == 200
        tp = upstream_tp(up, f"m=none{i}").header("traceparent")
        if tp is not None:
            assert TP.match(tp) and tp.endswith("-00"), tp
    t0, p0 = new_ids()
    assert fetch(g.port, "GET", "/echo?m=zero", headers=[("traceparent", f"00-{t0}-{p0}-00")]).status == 200
    m = TP.match(upstream_tp(up, "m=zero").header("traceparent") or "")
    assert m and m.group(1) == t0 and m.group(3) == "00", m
    t1, p1 = new_ids()
    assert fetch(g.port, "GET", "/echo?m=one", headers=[("traceparent", f"00-{t1}-{p1}-01")]).status == 200
    s = server_span(wait_span(col, t1))
    assert s.get("parentSpanId") == p1
    # The sampled span came after the unsampled ones on the same worker, so
    # had any of them been queued it would have been exported by now.
    others = [x for x in col.spans() if x.get("traceId") != t1]
    assert not others, f"unsampled requests were exported: {others}"


def test_sampled_flag_zero_not_exported_at_full_sampling(gatehouse, upstream, collector):
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url, sampling=1.0, trusted=["127.0.0.1"])
    t0, p0 = new_ids()
    assert fetch(g.port, "GET", "/echo?m=a", headers=[("traceparent", f"00-{t0}-{p0}-00")]).status == 200
    m = TP.match(upstream_tp(up, "m=a").header("traceparent") or "")
    assert m and m.group(1) == t0 and m.group(3) == "00", m
    t1, p1 = new_ids()
    assert fetch(g.port, "GET", "/echo?m=b", headers=[("traceparent", f"00-{t1}-{p1}-01")]).status == 200
    wait_span(col, t1)
    assert not spans_of(col, t0), "a request whose parent said not-sampled was exported"


@pytest.mark.parametrize("incoming,trusted,honoured", [
    (None, None, False),                       # default: trusted_proxies, and there are none
    (None, ["10.0.0.0/8"], False),             # a peer outside the list
    (None, ["127.0.0.0/8"], True),             # a trusted proxy
    ("any", None, True),
    ("none", ["127.0.0.0/8"], False),
])
def test_sampled_flag_honoured_only_as_configured(gatehouse, upstream, collector, incoming, trusted,
                                                  honoured):
    """A client that sets the sampled flag on every request must not get
    every request exported: unless its flag is honoured, the trace id and
    parent are kept and the sampling ratio (here 0 or 1, against the flag)
    decides. The decision is what gatehouse sends upstream."""
    up = upstream()
    col = collector()
    kw = {"incoming_sampled": incoming} if incoming else {}
    g = start(gatehouse, up, col.url, sampling=0.0, trusted=trusted, **kw)
    t1, p1 = new_ids()
    hs = [("traceparent", f"00-{t1}-{p1}-01")]
    assert fetch(g.port, "GET", "/echo?m=w3c", headers=hs).status == 200
    m = TP.match(upstream_tp(up, "m=w3c").header("traceparent") or "")
    assert m and m.group(1) == t1, m
    assert m.group(3) == ("01" if honoured else "00"), m.group(0)
    t2, p2 = new_ids()
    assert fetch(g.port, "GET", "/echo?m=b3", headers=[("b3", f"{t2}-{p2}-1")]).status == 200
    m = TP.match(upstream_tp(up, "m=b3").header("traceparent") or "")
    assert m and m.group(1) == t2, m
    assert m.group(3) == ("01" if honoured else "00"), m.group(0)
    if honoured:
        assert server_span(wait_span(col, t1)).get("parentSpanId") == p1


def test_exported_count_and_access_log_trace_id(gatehouse, upstream, collector, tmp_path):
    up = upstream()
    col = collector()
    log = tmp_path / "access.log"
    g = start(gatehouse, up, col.url, workers=2, access_log=str(log), batch_size=4)
    n = 12
    for i in range(n):
        assert fetch(g.port, "GET", f"/echo?id={i}").status == 200
    wait_for(lambda: len([s for s in col.spans() if s.get("kind") == 2]) >= n, 10, f"{n} server spans")
    spans = col.spans()
    assert len({s["traceId"] for s in spans if s.get("kind") == 2}) == n
    wait_for(lambda: metrics(g.admin).get("gatehouse_tracing_spans_exported_total") == len(spans), 10,
             f"spans_exported_total == {len(spans)} (spans received)")
    m = metrics(g.admin)
    assert m.types.get("gatehouse_tracing_spans_exported_total") == "counter"
    assert m.types.get("gatehouse_tracing_spans_dropped_total") == "counter"
    assert m.sum("gatehouse_tracing_spans_dropped_total") == 0
    recs = wait_lines(log, lambda rs: len(rs) >= n)
    upstream_traces = {}
    for r in up.complete_requests():
        mm = TP.match(r.header("traceparent") or "")
        upstream_traces[r.target] = mm.group(1)
    for rec in recs:
        target = rec["path"] + "?" + rec["query"]
        assert rec["trace_id"] == upstream_traces[target], (rec, upstream_traces.get(target))
    check_records_valid(col)


def run_load(port, n_threads=4, per_thread=50):
    errors, statuses = [], []

    def run(k):
        try:
            with RawConn(port, timeout=10) as c:
                for i in range(per_thread):
                    c.request("GET", f"/echo?k={k}&i={i}")
                    r = c.read_response()
                    statuses.append(r.status)
                    if not r.complete:
                        errors.append(f"incomplete {r!r}")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts), "requests hung"
    assert not errors, errors[:5]
    assert len(statuses) == n_threads * per_thread and set(statuses) == {200}, set(statuses)


def test_collector_down(gatehouse, upstream):
    up = upstream()
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"
    g = start(gatehouse, up, dead, workers=2, queue_size=64, batch_size=16, export_timeout="1s")
    run_load(g.port)
    wait_for(lambda: metrics(g.admin).sum("gatehouse_tracing_spans_dropped_total") > 0, 15,
             "dropped spans counted with the collector down")
    m = metrics(g.admin)
    for l, _ in m.series("gatehouse_tracing_spans_dropped_total"):
        assert l.get("reason") in ("queue_full", "export_failed"), l
    assert m.get("gatehouse_tracing_spans_exported_total", 0) == 0


def test_collector_slow(gatehouse, upstream, collector):
    up = upstream()
    col = collector(slow=5)
    g = start(gatehouse, up, col.url, workers=2, queue_size=16, batch_size=4, export_timeout="1s")
    run_load(g.port)
    wait_for(lambda: metrics(g.admin).sum("gatehouse_tracing_spans_dropped_total") > 0, 15,
             "dropped spans counted with a slow collector")


def test_collector_error_status(gatehouse, upstream, collector):
    up = upstream()
    col = collector(status=500)
    g = start(gatehouse, up, col.url, workers=1, batch_size=4)
    run_load(g.port, n_threads=2, per_thread=10)
    wait_for(lambda: metrics(g.admin).get("gatehouse_tracing_spans_dropped_total", 0,
                                          reason="export_failed") > 0, 15,
             "spans refused with 500 counted as export_failed")


def test_tracing_enabled_and_moved_by_reload(gatehouse, upstream, collector):
    from ops_util import config_text, write_config
    up = upstream()
    c1, c2 = collector(), collector()
    cfg = make_config([up])
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    assert fetch(g.port, "GET", "/echo?m=off").status == 200
    assert upstream_tp(up, "m=off").header("traceparent") is None
    cfg["tracing"] = {"collector": c1.url, "sampling": 1.0, "flush_interval": "100ms"}
    write_config(g, config_text(g, cfg), "rename")
    n = [0]

    def traced():
        n[0] += 1
        # "m=on1" would also match "m=on10": end the marker.
        fetch(g.port, "GET", f"/echo?m=on{n[0]}.")
        return upstream_tp(up, f"m=on{n[0]}.").header("traceparent")

    tp = wait_for(traced, 10, "traceparent upstream after enabling tracing by reload", interval=0.1)
    wait_span(c1, TP.match(tp).group(1))
    cfg["tracing"]["collector"] = c2.url
    write_config(g, config_text(g, cfg), "rename")

    def at_c2():
        n[0] += 1
        fetch(g.port, "GET", f"/echo?m=on{n[0]}.")
        return bool(c2.spans())

    wait_for(at_c2, 10, "spans at the second collector after the reload", interval=0.2)
    check_records_valid(c1)
    check_records_valid(c2)


def test_many_reloads_changing_tracing(gatehouse, upstream, collector):
    """Tracing keeps working after many reloads that each change the tracing
    section (every change builds a new exporter; none may run out)."""
    from ops_util import config_text, sighup, write_config
    up = upstream()
    col = collector()
    cfg = make_config([up])
    cfg["admin"] = admin_conf()
    cfg["tracing"] = {"collector": col.url, "sampling": 1.0, "flush_interval": "100ms"}
    g = gatehouse(cfg)
    ap = admin_port_of(cfg)
    n = 70
    for i in range(n):
        cfg["tracing"]["flush_interval"] = f"{100 + (i % 2) * 50}ms"
        cfg["tracing"]["batch_size"] = 10 + i
        write_config(g, config_text(g, cfg), "rename")
        sighup(g)
        # The watcher may reload the same content once more; wait for at
        # least one reload per step.
        wait_for(lambda: metrics(ap).value("gatehouse_config_generation") >= i + 2, 10,
                 f"reload {i + 1}")
    assert g.alive()
    t, p = new_ids()
    assert fetch(g.port, "GET", "/echo?m=late", headers=[("traceparent", f"00-{t}-{p}-01")]).status == 200
    s = server_span(wait_span(col, t))
    assert s.get("parentSpanId") == p
    wait_for(lambda: metrics(ap).get("gatehouse_tracing_spans_exported_total", 0) >= 1, 10,
             "exported counter")


def test_tracing_reloads_do_not_leak_threads(gatehouse, upstream, collector):
    from ops_util import config_text, sighup, write_config
    up = upstream()
    col = collector()
    cfg = make_config([up])
    cfg["admin"] = admin_conf()
    cfg["tracing"] = {"collector": col.url, "sampling": 1.0, "flush_interval": "100ms"}
    g = gatehouse(cfg)
    ap = admin_port_of(cfg)

    def threads():
        with open(f"/proc/{g.pid}/status") as f:
            return int([l for l in f if l.startswith("Threads:")][0].split()[1])

    th0 = threads()
    for i in range(30):
        cfg["tracing"]["batch_size"] = 100 + i
        write_config(g, config_text(g, cfg), "rename")
        sighup(g)
        wait_for(lambda: metrics(ap).value("gatehouse_config_generation") >= i + 2, 10, f"reload {i + 1}")
    # Old exporters finish their queue and stop; give them a moment.
    wait_for(lambda: threads() - th0 < 4, 10, f"threads back near {th0} (now {threads()})")


def test_secrets_not_in_spans(gatehouse, upstream, collector, tmp_path):
    """Span attributes follow the access log's masking: no Authorization,
    no cookie, no value of a secret_query parameter."""
    up = upstream()
    col = collector()
    cfg = make_config([up])
    cfg["tracing"] = {"collector": col.url, "sampling": 1.0, "flush_interval": "100ms"}
    cfg["access_log"] = {"path": str(tmp_path / "a.log"), "secret_query": ["api_key"]}
    g = gatehouse(cfg)
    t, p = new_ids()
    r = fetch(g.port, "GET", "/echo?x=1&api_key=sekrit-key-in-query-77",
              headers=[("traceparent", f"00-{t}-{p}-01"), ("Authorization", "Bearer sekrit-auth-88"),
                       ("Cookie", "sid=sekrit-cookie-99")])
    assert r.status == 200
    wait_span(col, t)
    raw = open(col.outfile).read()
    for s in ("sekrit-key-in-query-77", "sekrit-auth-88", "sekrit-cookie-99"):
        assert s not in raw, f"{s} exported in a span: {raw}"


def test_span_status_follows_http_status(gatehouse, upstream, collector):
    """OTel HTTP semantic conventions: a server span is Error (code 2) for a
    5xx response and left unset for a 4xx."""
    up = upstream()
    col = collector()
    g = start(gatehouse, up, col.url)
    ids = {}
    for target in ("/status/404", "/status/503", "/drop"):
        t, p = new_ids()
        ids[target] = t
        fetch(g.port, "GET", target, headers=[("traceparent", f"00-{t}-{p}-01")])
    got = {}
    for target, t in ids.items():
        s = server_span(wait_span(col, t))
        got[target] = (attrs(s).get("http.response.status_code"), (s.get("status") or {}).get("code", 0))
    assert got["/status/404"] == (404, 0), got
    assert got["/status/503"] == (503, 2), got
    assert got["/drop"] == (502, 2), got


def test_reload_does_not_wait_for_a_stuck_export(gatehouse, upstream, collector):
    """A reload that replaces the tracer used to join the old export thread
    on the main loop; with the collector holding a request, /live and the
    reload itself waited for export_timeout. Here the collector holds its
    answer for longer than the whole test: the reload must complete and
    /live answer while the export is still in flight."""
    from ops_util import admin_get, config_text, wait_metric, write_config
    up = upstream()
    col = collector(slow=600)
    g = start(gatehouse, up, col.url, batch_size=1, export_timeout="1m")
    assert fetch(g.port, "GET", "/echo?stuck=1").status == 200
    wait_for(lambda: len(col.spans()) >= 1, 10, "the collector to hold the first export")
    cfg = make_config([up])
    cfg["tracing"] = {"collector": col.url, "sampling": 1.0, "flush_interval": "100ms",
                      "batch_size": 1, "export_timeout": "1m", "service_name": "renamed"}
    cfg["admin"] = {"listen": f"127.0.0.1:{g.admin}"}
    write_config(g, config_text(g, cfg), "rename")
    wait_metric(g.admin, "gatehouse_config_reloads_total", 1, result="ok")
    assert admin_get(g.admin, "/live").status == 200
    # The held export has not finished: nothing exported, nothing failed.
    m = metrics(g.admin)
    assert m.value("gatehouse_tracing_spans_exported_total") == 0
    assert m.value("gatehouse_tracing_spans_dropped_total", reason="export_failed") == 0
    col.stop()  # lets the stuck export fail, so shutdown does not wait for it
