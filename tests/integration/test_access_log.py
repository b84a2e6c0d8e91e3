"""Access log: one JSON object per request per line, to a file or stdout;
field selection; secrets (Authorization, cookies, secret query values) never
written; request_id equals the upstream's x-request-id; SIGUSR1 reopens the
file for rotation."""

import os
import re
import signal
import threading

from harness import RawConn, fetch, free_port, make_config
from ops_util import read_json_lines, wait_for, wait_lines

DEFAULT_FIELDS = {"time", "request_id", "listener", "route", "method", "path", "query", "status",
                  "bytes_in", "bytes_out", "duration_ms", "upstream", "upstream_duration_ms", "client",
                  "user_agent", "principal", "consumer", "trace_id", "error", "filter"}

AUTH = "Bearer sekrit-bearer-value-Zq81"
COOKIE = "session=sekrit-cookie-value-Qx42; theme=dark"
API_KEY = "sekrit-apikey-value-Wm55"


def empty(v):
    return v is None or v == "" or v == "-"


def start(gatehouse, tmp_path, up=None, workers=1, dead=None, **log):
    routes = [{"name": "dr", "match": {"path": {"prefix": "/dr"}},
               "direct_response": {"status": 201, "body": "direct"}}]
    clusters = {}
    if up is not None:
        # The test upstream acts on these paths (it sees the path unchanged).
        routes.append({"name": "app", "match": {"path": {"regex": "^/(echo|status|hash|slow|bytes|a$)"}},
                       "to": "app"})
        clusters["app"] = {"endpoints": [f"127.0.0.1:{up.port}"]}
    if dead is not None:
        routes.append({"name": "dead", "match": {"path": {"prefix": "/dead"}}, "to": "dead"})
        clusters["dead"] = {"endpoints": [f"127.0.0.1:{dead}"]}
    cfg = make_config(routes=routes, clusters=clusters)
    if "path" not in log:
        log["path"] = str(tmp_path / "access.log")
    if log["path"] is None:
        del log["path"]
    cfg["access_log"] = log
    g = gatehouse(cfg, workers=workers)
    g.log_path = log.get("path", "stdout")
    if g.log_path == "stdout":
        g.log_path = g.stdout_path
    return g


def by_query_id(recs):
    out = {}
    for r in recs:
        m = re.search(r"(?:^|&)id=([^&]+)", r.get("query") or "")
        if m:
            out[m.group(1)] = r
    return out


def test_default_fields_proxied(gatehouse, upstream, tmp_path):
    up = upstream()
    g = start(gatehouse, tmp_path, up, secret_query=["api_key"])
    body = b"hello body 12345"
    r = fetch(g.port, "POST", f"/echo?id=one&api_key={API_KEY}&x=1", body=body,
              headers=[("User-Agent", "ua-test/1.0"), ("Authorization", AUTH), ("Cookie", COOKIE)])
    assert r.status == 200
    seen = up.complete_requests()[-1]
    rid = seen.header("x-request-id")
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 1, what="one access log line")
    assert len(recs) == 1, recs
    rec = recs[0]
    assert set(rec) == DEFAULT_FIELDS, f"fields: extra {set(rec) - DEFAULT_FIELDS}, missing {DEFAULT_FIELDS - set(rec)}"
    assert rec["listener"] == "edge"
    assert rec["route"] == "app"
    assert rec["method"] == "POST"
    assert rec["path"] == "/echo"
    assert "id=one" in rec["query"] and "x=1" in rec["query"], rec["query"]
    assert rec["status"] == 200
    assert rec["bytes_in"] >= len(body), rec
    assert rec["bytes_out"] >= len(r.body), rec
    assert isinstance(rec["duration_ms"], (int, float)) and rec["duration_ms"] >= 0
    assert rec["upstream"] == f"127.0.0.1:{up.port}", rec["upstream"]
    assert isinstance(rec["upstream_duration_ms"], (int, float)) and rec["upstream_duration_ms"] >= 0
    assert rec["upstream_duration_ms"] <= rec["duration_ms"] + 1, rec
    assert str(rec["client"]).startswith("127.0.0.1"), rec["client"]
    assert rec["user_agent"] == "ua-test/1.0"
    assert rid and rec["request_id"] == rid, (rec["request_id"], rid)
    assert empty(rec["error"]), rec["error"]
    assert empty(rec["principal"]) and empty(rec["consumer"]), rec
    assert empty(rec["trace_id"]), rec  # tracing is off
    assert isinstance(rec["time"], str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", rec["time"]), rec["time"]
    raw = open(g.log_path).read()
    for secret in ("sekrit-bearer-value", "sekrit-cookie-value", API_KEY):
        assert secret not in raw, f"{secret} written to the access log: {raw}"


def test_secret_query_variants(gatehouse, upstream, tmp_path):
    up = upstream()
    g = start(gatehouse, tmp_path, up, secret_query=["api_key", "token"])
    targets = [
        f"/a?id=1&api_key={API_KEY}",
        f"/a?api_key={API_KEY}&id=2",
        f"/a?id=3&token={API_KEY}&api_key={API_KEY}x",
        f"/a?id=4&api_key={API_KEY}&api_key={API_KEY}2",
        f"/dr?id=5&api_key={API_KEY}",
        f"/nowhere?id=6&api_key={API_KEY}",
        # The application decodes the name, so the log must too.
        f"/a?id=7&api%5Fkey={API_KEY}",
        f"/a?id=8&%74oken={API_KEY}",
        # nginx reads $arg_api_key ignoring case: so does the mask.
        f"/a?id=9&API_KEY={API_KEY}",
        # ';' separates parameters too (Tomcat, Spring and others read it so).
        f"/a?x=1;api_key={API_KEY}&id=10",
    ]
    for t in targets:
        fetch(g.port, "GET", t)
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= len(targets), what="10 lines")
    raw = open(g.log_path).read()
    assert API_KEY not in raw, raw
    ids = by_query_id(recs)
    assert set(ids) == {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}, recs
    assert ids["10"]["query"] == "x=1;api_key=[redacted]&id=10", ids["10"]
    # The non-secret parameter keeps its value.
    assert "id=2" in ids["2"]["query"]


def test_fields_restricted(gatehouse, upstream, tmp_path):
    up = upstream()
    g = start(gatehouse, tmp_path, up, fields=["time", "request_id", "status"])
    fetch(g.port, "GET", "/echo")
    fetch(g.port, "GET", "/dr")
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 2, what="2 lines")
    assert len(recs) == 2
    for rec in recs:
        assert set(rec) == {"time", "request_id", "status"}, rec
    assert sorted(r["status"] for r in recs) == [200, 201]


def test_stdout(gatehouse, upstream, tmp_path):
    up = upstream()
    g = start(gatehouse, tmp_path, up, path=None)
    fetch(g.port, "GET", "/echo?id=s1")
    fetch(g.port, "GET", "/dr?id=s2")
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 2, what="2 lines on stdout")
    ids = by_query_id(recs)
    assert set(ids) == {"s1", "s2"}
    assert ids["s2"]["status"] == 201


def test_stdout_explicit(gatehouse, tmp_path):
    g = start(gatehouse, tmp_path, None, path="stdout")
    fetch(g.port, "GET", "/dr?id=x")
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 1, what="1 line on stdout")
    assert recs[0]["route"] == "dr"


def test_local_replies_and_errors(gatehouse, upstream, tmp_path):
    up = upstream()
    g = start(gatehouse, tmp_path, up, dead=free_port())
    fetch(g.port, "GET", "/dr?id=d")
    fetch(g.port, "GET", "/nomatch?id=n")
    fetch(g.port, "GET", "/dead?id=x")
    fetch(g.port, "GET", "/status/500?id=s")
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 4, what="4 lines")
    ids = by_query_id(recs)
    d, n, x, s = ids["d"], ids["n"], ids["x"], ids["s"]
    assert d["status"] == 201 and d["route"] == "dr" and empty(d["upstream"]) and empty(d["error"]), d
    assert n["status"] == 404 and empty(n["route"]) and empty(n["upstream"]), n
    assert x["status"] == 502 and x["route"] == "dead", x
    assert isinstance(x["error"], str) and x["error"], f"a 502 from a refused connect has no error: {x}"
    # An upstream's own 500 is not a gatehouse error.
    assert s["status"] == 500 and s["upstream"] == f"127.0.0.1:{up.port}" and empty(s["error"]), s
    for rec in recs:
        assert rec["request_id"], rec


def test_one_line_per_request_two_workers(gatehouse, upstream, tmp_path):
    up = upstream()
    g = start(gatehouse, tmp_path, up, workers=2)
    errors = []

    def run(k):
        try:
            with RawConn(g.port) as c:
                for i in range(25):
                    c.request("GET", f"/echo?id={k}-{i}&pad={'p' * 300}")
                    assert c.read_response().status == 200
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 200, what="200 lines")
    assert len(recs) == 200
    ids = by_query_id(recs)
    assert len(ids) == 200
    rids = {r["request_id"] for r in recs}
    assert len(rids) == 200, "request ids are not unique"
    upstream_ids = {r.header("x-request-id") for r in up.complete_requests()}
    assert rids == upstream_ids


def test_sigusr1_reopens(gatehouse, upstream, tmp_path):
    up = upstream()
    g = start(gatehouse, tmp_path, up, workers=2)
    for i in range(5):
        fetch(g.port, "GET", f"/echo?id=a{i}")
    wait_lines(g.log_path, lambda rs: len(rs) >= 5, what="5 lines before rotation")
    rotated = str(g.log_path) + ".1"
    os.rename(g.log_path, rotated)
    g.proc.send_signal(signal.SIGUSR1)
    n = [0]

    def new_file_has_lines():
        fetch(g.port, "GET", f"/echo?id=b{n[0]}")
        n[0] += 1
        return os.path.exists(g.log_path) and len(read_json_lines(g.log_path)) > 0

    wait_for(new_file_has_lines, 10, "lines in a new file at the configured path after SIGUSR1", interval=0.1)
    for i in range(5):
        fetch(g.port, "GET", f"/echo?id=c{i}")
    total = 5 + n[0] + 5
    wait_for(lambda: len(read_json_lines(rotated)) + len(read_json_lines(g.log_path)) >= total, 10,
             f"{total} lines over both files")
    old, new = read_json_lines(rotated), read_json_lines(g.log_path)
    assert len(old) + len(new) == total
    old_ids, new_ids = by_query_id(old), by_query_id(new)
    assert {f"a{i}" for i in range(5)} <= set(old_ids), old_ids
    assert {f"c{i}" for i in range(5)} <= set(new_ids), "requests after the reopen went elsewhere"
    assert not any(i.startswith("a") for i in new_ids)
    # Both files end in a complete line.
    for p in (rotated, g.log_path):
        data = open(p, "rb").read()
        assert data.endswith(b"\n"), p
    assert g.alive()


def test_log_survives_reload(gatehouse, upstream, tmp_path):
    """A reload that keeps the access_log section keeps logging (one line
    per request, nothing lost around the reload)."""
    from ops_util import sighup
    up = upstream()
    g = start(gatehouse, tmp_path, up)
    fetch(g.port, "GET", "/echo?id=before")
    wait_lines(g.log_path, lambda rs: len(rs) >= 1)
    sighup(g)
    wait_for(lambda: "generation 2" in g.stderr or "reload" in g.stderr.lower(), 10, "the reload")
    fetch(g.port, "GET", "/echo?id=after")
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 2, what="2 lines")
    assert set(by_query_id(recs)) == {"before", "after"}
    assert len(recs) == 2


def test_json_escaping(gatehouse, upstream, tmp_path):
    """Header values with quotes, backslashes, control-free obs-text bytes
    still give one valid JSON line (UTF-8) per request."""
    up = upstream()
    g = start(gatehouse, tmp_path, up)
    ua = 'evil "quoted" \\back\\slash\t{"json":1}'
    fetch(g.port, "GET", "/echo?id=q1", headers=[("User-Agent", ua)])
    fetch(g.port, "GET", "/echo?id=q2", headers=[("User-Agent", "caf\xe9 \xff\xfe bytes")])
    fetch(g.port, "GET", "/echo?id=q3&x=%22%5C%00%0A", headers=[("User-Agent", "x")])
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 3, what="3 lines")
    assert len(recs) == 3
    ids = by_query_id(recs)
    assert ids["q1"]["user_agent"] == ua
    # Bytes from 0x7f up are written as \u00XX: each decodes to U+00XX.
    assert ids["q2"]["user_agent"] == "caf\xe9 \xff\xfe bytes", ids["q2"]
    # The raw query, as sent (not decoded).
    assert ids["q3"]["query"] == "id=q3&x=%22%5C%00%0A", ids["q3"]
    assert len(open(g.log_path, "rb").read().split(b"\n")) == 4


def test_stdout_sigusr1_harmless(gatehouse, tmp_path):
    g = start(gatehouse, tmp_path, None, path=None)
    fetch(g.port, "GET", "/dr?id=a")
    wait_lines(g.log_path, lambda rs: len(rs) >= 1)
    g.proc.send_signal(signal.SIGUSR1)
    fetch(g.port, "GET", "/dr?id=b")
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 2, what="logging goes on after SIGUSR1")
    assert set(by_query_id(recs)) == {"a", "b"}
    assert g.alive()


def test_reload_changes_fields(gatehouse, upstream, tmp_path):
    from ops_util import write_config
    up = upstream()
    g = start(gatehouse, tmp_path, up)
    fetch(g.port, "GET", "/echo?id=1")
    wait_lines(g.log_path, lambda rs: len(rs) >= 1)
    text = g.config_text
    assert "access_log:" in text
    new = text.replace("access_log:\n", "access_log:\n  fields:\n    - status\n    - query\n", 1)
    write_config(g, new, "rename")

    def narrowed():
        fetch(g.port, "GET", "/echo?id=probe")
        return set(read_json_lines(g.log_path)[-1]) == {"status", "query"}

    wait_for(narrowed, 10, "the reloaded field list to apply", interval=0.1)
    fetch(g.port, "GET", "/echo?id=last")
    rec = wait_lines(g.log_path, lambda rs: rs[-1].get("query") == "id=last")[-1]
    assert set(rec) == {"status", "query"}


def test_reload_changes_path(gatehouse, upstream, tmp_path):
    from ops_util import write_config
    up = upstream()
    g = start(gatehouse, tmp_path, up)
    fetch(g.port, "GET", "/echo?id=1")
    wait_lines(g.log_path, lambda rs: len(rs) >= 1)
    new_path = tmp_path / "second.log"
    write_config(g, g.config_text.replace(str(g.log_path), str(new_path)), "rename")

    def moved():
        fetch(g.port, "GET", "/echo?id=probe")
        return len(read_json_lines(new_path)) > 0

    wait_for(moved, 10, "lines in the new access log path after reload", interval=0.1)
    before = len(read_json_lines(g.log_path))
    fetch(g.port, "GET", "/echo?id=last")
    wait_lines(new_path, lambda rs: rs[-1].get("query") == "id=last")
    assert len(read_json_lines(g.log_path)) == before



def test_long_user_agent_capped_not_dropped(gatehouse, upstream, tmp_path):
    """A client could hide its request: a long non-ASCII User-Agent escaped
    past the line buffer and the whole line was dropped. Now the field is
    capped and the line says so."""
    from ops_util import admin_conf, admin_port_of, metrics
    up = upstream()
    routes = [{"name": "app", "match": {"path": {"prefix": "/"}}, "to": "app"}]
    cfg = make_config(routes=routes, clusters={"app": {"endpoints": [f"127.0.0.1:{up.port}"]}})
    cfg["access_log"] = {"path": str(tmp_path / "access.log")}
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    ua = "\xff" * 30000
    r = fetch(g.port, "GET", "/echo?id=hidden", headers=[("User-Agent", ua)])
    assert r.status == 200
    fetch(g.port, "GET", "/echo?id=after")
    recs = wait_lines(cfg["access_log"]["path"], lambda rs: len(rs) >= 2, what="2 lines")
    ids = by_query_id(recs)
    assert set(ids) == {"hidden", "after"}, recs
    assert ids["hidden"]["user_agent"] == "\xff" * 1024
    assert ids["hidden"]["truncated"] == ["user_agent"]
    assert "truncated" not in ids["after"]
    m = metrics(admin_port_of(cfg))
    assert m.value("gatehouse_access_log_lines_truncated_total") == 1


def test_lines_lost_to_write_errors_counted(gatehouse, upstream, tmp_path):
    """/dev/full fails every write with ENOSPC, as a full disk does: the
    requests are served and the lost lines counted."""
    from ops_util import admin_conf, admin_port_of, wait_metric
    up = upstream()
    cfg = make_config([up])
    cfg["access_log"] = {"path": "/dev/full"}
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg, workers=2)
    for i in range(9):
        assert fetch(g.port, "GET", f"/echo?i={i}").status == 200
    wait_metric(admin_port_of(cfg), "gatehouse_access_log_lines_lost_total", 9)


REFUSED_HEADS = [
    # (raw head, status, error, method, path)
    (b"GET /bad?id=1 HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n", 400, "bad_request", "GET", "/bad"),
    (b"POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400, "bad_request", "POST", "/smuggle"),
    (b"GET /twohosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request", "GET", "/twohosts"),
    (b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "uri_too_long", "GET", None),
    (b"GET /big HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: " + b"p" * 70000 + b"\r\n\r\n",
     431, "header_too_large", "GET", "/big"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_request", None, None),
]


def test_refused_heads_are_logged(gatehouse, tmp_path):
    """A request refused while its head is read (bad bytes, CL with TE, two
    Host, 414, 431, no HTTP at all) used to leave no line, so smuggling
    probes left no trace. Each gets one line: the TCP peer, status, error,
    and the method and path when the request line got that far."""
    g = start(gatehouse, tmp_path, None)
    for head, status, _, _, _ in REFUSED_HEADS:
        with RawConn(g.port) as c:
            c.send(head)
            r = c.read_response()
            assert r.status == status, (head[:40], r)
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= len(REFUSED_HEADS),
                      what=f"{len(REFUSED_HEADS)} lines")
    assert len(recs) == len(REFUSED_HEADS), recs
    for rec, (head, status, error, method, path) in zip(recs, REFUSED_HEADS):
        assert set(rec) - {"truncated"} == DEFAULT_FIELDS, rec  # the 414's path is capped
        assert (rec["status"], rec["error"], rec["client"]) == (status, error, "127.0.0.1"), rec
        assert rec["method"] == method, (head[:40], rec)
        if path is not None:
            assert rec["path"] == path, (head[:40], rec)
        assert rec["listener"] == "edge" and rec["route"] is None and rec["upstream"] is None, rec


def test_two_user_agents_both_logged(gatehouse, upstream, tmp_path):
    """A request with two User-Agent fields used to be logged with the
    first only; the upstream may read either."""
    up = upstream()
    g = start(gatehouse, tmp_path, up)
    r = fetch(g.port, "GET", "/a?id=ua", [("User-Agent", "first/1"), ("User-Agent", "second/2")])
    assert r.status == 200
    recs = wait_lines(g.log_path, lambda rs: len(rs) >= 1, what="1 line")
    assert recs[0]["user_agent"] == "first/1, second/2", recs[0]


def test_head_timeout_is_logged(gatehouse, tmp_path):
    """A head that does not complete in header_timeout is answered 408; that
    answer gets its line too, with the request line as far as it came."""
    log = tmp_path / "access.log"
    cfg = make_config(routes=[{"name": "dr", "direct_response": {"body": "x"}}],
                      listener={"header_timeout": "1s"})
    cfg["access_log"] = {"path": str(log)}
    g = gatehouse(cfg)
    with RawConn(g.port) as c:
        c.send(b"GET /slow?id=t HTTP/1.1\r\nHost: a\r\n")
        r = c.read_response()
        assert r.status == 408, r
    recs = wait_lines(log, lambda rs: len(rs) >= 1, what="1 line")
    assert len(recs) == 1, recs
    rec = recs[0]
    assert (rec["status"], rec["error"], rec["method"], rec["path"], rec["query"]) == \
        (408, "request_timeout", "GET", "/slow", "id=t"), rec
