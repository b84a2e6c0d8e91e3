"""The admin API on its own listener: /live, /ready, /metrics, /config,
/clusters; bearer-token protection; refusal to listen on a non-loopback
address without a token."""

import json
import subprocess

import pytest

from harness import RawConn, fetch, free_port, gatehouse_bin, make_config, to_yaml
from ops_util import (Metrics, admin_conf, admin_get, admin_port_of, config_text, sighup,
                      wait_admin, wait_for, write_config)

TOKEN = "s3cr3t-admin-token-0123456789abcdef"


def ctype(r):
    return (r.header("content-type") or "").lower()


def is_json(r):
    return ctype(r).split(";")[0].strip() == "application/json"


def start(gatehouse, up, workers=1, **admin):
    cfg = make_config([up], cluster={"lb": "round_robin"})
    cfg["admin"] = admin_conf(**admin)
    g = gatehouse(cfg, workers=workers)
    g.admin = admin_port_of(cfg)
    wait_admin(g.admin)
    return g


def test_live_and_ready(gatehouse, upstream):
    g = start(gatehouse, upstream())
    r = admin_get(g.admin, "/live")
    assert r.status == 200 and is_json(r), r
    assert r.json().get("status") == "live", r
    r = admin_get(g.admin, "/ready")
    assert r.status == 200 and is_json(r), r
    assert r.json().get("status") == "ready", r
    r = admin_get(g.admin, "/live", method="HEAD")
    assert r.status == 200 and r.body == b"", r


def test_metrics_endpoint(gatehouse, upstream):
    g = start(gatehouse, upstream())
    r = admin_get(g.admin, "/metrics")
    assert r.status == 200, r
    ct = ctype(r).replace(" ", "")
    assert ct.startswith("text/plain") and "version=0.0.4" in ct, r.headers
    m = Metrics(r.body.decode())
    assert m.value("gatehouse_config_generation") == 1


def test_admin_is_separate_from_data_listener(gatehouse):
    cfg = make_config(routes=[{"name": "app", "direct_response": {"body": "app"}}])
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    wait_admin(admin_port_of(cfg))
    for path in ("/metrics", "/live", "/config"):
        r = fetch(g.port, "GET", path)
        assert r.status == 200 and r.body == b"app", r


def test_config_endpoint(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    r = admin_get(g.admin, "/config")
    assert r.status == 200 and is_json(r), r
    doc = r.json()
    text = r.body.decode()
    for key in ("listeners", "clusters", "generation"):
        assert key in text, f"/config lacks {key}: {text[:500]}"
    assert doc.get("generation") == 1, doc.get("generation")
    assert "edge" in text and f"127.0.0.1:{up.port}" in text and "app" in text, text[:1000]


def test_config_generation_follows_reload(gatehouse, upstream):
    up = upstream()
    g = start(gatehouse, up)
    sighup(g)
    wait_for(lambda: admin_get(g.admin, "/config").json().get("generation") == 2, 10,
             "/config generation 2 after SIGHUP")


def test_clusters_endpoint(gatehouse, upstream):
    u1, u2 = upstream(), upstream()
    cfg = make_config(clusters={"app": {"endpoints": [f"127.0.0.1:{u1.port}",
                                                      {"address": f"127.0.0.1:{u2.port}", "weight": 3}],
                                        "lb": "least_request"},
                                "other": {"endpoints": [f"127.0.0.1:{u1.port}"]}})
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    ap = admin_port_of(cfg)
    wait_admin(ap)
    r = admin_get(ap, "/clusters")
    assert r.status == 200 and is_json(r), r
    doc = r.json()
    cl = {c["name"]: c for c in doc["clusters"]}
    assert set(cl) == {"app", "other"}, doc
    assert cl["app"]["lb"] == "least_request"
    assert cl["other"]["lb"] == "round_robin"
    eps = {e["address"]: e for e in cl["app"]["endpoints"]}
    assert set(eps) == {f"127.0.0.1:{u1.port}", f"127.0.0.1:{u2.port}"}, eps
    assert eps[f"127.0.0.1:{u1.port}"]["weight"] == 1
    assert eps[f"127.0.0.1:{u2.port}"]["weight"] == 3
    for e in eps.values():
        for k in ("active_requests", "idle_connections"):
            assert isinstance(e[k], int) and e[k] == 0, e

    # A request in flight shows as active; afterwards its connection is idle in the pool.
    c = RawConn(g.port, timeout=20)
    c.request("GET", "/slow/2")

    def active():
        d = admin_get(ap, "/clusters").json()
        app = [x for x in d["clusters"] if x["name"] == "app"][0]
        return sum(e["active_requests"] for e in app["endpoints"]) == 1

    wait_for(active, 10, "active_requests 1 during a slow request")
    r = c.read_response()
    assert r.status == 200
    c.close()

    def idle():
        d = admin_get(ap, "/clusters").json()
        app = [x for x in d["clusters"] if x["name"] == "app"][0]
        return (sum(e["active_requests"] for e in app["endpoints"]) == 0
                and sum(e["idle_connections"] for e in app["endpoints"]) == 1)

    wait_for(idle, 10, "no active request and one idle pooled connection")


def test_unknown_path_and_method(gatehouse, upstream):
    g = start(gatehouse, upstream())
    r = admin_get(g.admin, "/nope")
    assert r.status == 404 and is_json(r), r
    json.loads(r.body)
    for method in ("POST", "PUT", "DELETE"):
        with RawConn(g.admin) as c:
            c.request(method, "/metrics", body=b"")
            r = c.read_response(method)
        assert r.status == 405, (method, r)


@pytest.fixture
def token_file(tmp_path):
    p = tmp_path / "admin.token"
    p.write_text(TOKEN + "\n")
    return p


def check_token_protection(ap, token):
    for path in ("/live", "/ready"):
        r = admin_get(ap, path)
        assert r.status == 200, (path, r)
    for path in ("/metrics", "/config", "/clusters"):
        for bad in (None, "wrong-token-wrong-token-wrong", token + "x", token[:-1]):
            r = admin_get(ap, path, token=bad)
            assert r.status == 401, (path, bad, r)
            wa = r.header("www-authenticate") or ""
            assert wa.lower().startswith("bearer"), r.headers
            assert token.encode() not in r.body
        # Other schemes are refused too.
        r = admin_get(ap, path, headers=[("Authorization", f"Basic {token}")])
        assert r.status == 401, (path, r)
    for path in ("/metrics", "/config", "/clusters"):
        r = admin_get(ap, path, token=token)
        assert r.status == 200, (path, r)
    r = admin_get(ap, "/config", token=token)
    assert token.encode() not in r.body, "admin token appears in /config"
    assert b"listeners" in r.body and b"clusters" in r.body and b"generation" in r.body
    m = admin_get(ap, "/metrics", token=token)
    assert token.encode() not in m.body


def test_token_file(gatehouse, upstream, token_file):
    g = start(gatehouse, upstream(), token_file=str(token_file))
    check_token_protection(g.admin, TOKEN)


def test_token_env(gatehouse, upstream, monkeypatch):
    tok = "env-token-ABCDEFGHIJKLMNOPQRSTUV"
    monkeypatch.setenv("GH_TEST_ADMIN_TOKEN", tok)
    g = start(gatehouse, upstream(), token_env="GH_TEST_ADMIN_TOKEN")
    check_token_protection(g.admin, tok)


def test_token_required_for_unknown_paths(gatehouse, upstream, token_file):
    """Only /live and /ready are open: an unknown path without the token is
    401, not a 404 that lists the admin paths."""
    g = start(gatehouse, upstream(), token_file=str(token_file))
    for path in ("/nope", "/metrics/x", "/"):
        r = admin_get(g.admin, path)
        assert r.status == 401, (path, r)
        assert (r.header("www-authenticate") or "").lower().startswith("bearer"), r.headers
    assert admin_get(g.admin, "/nope", token=TOKEN).status == 404


def test_token_not_in_stderr_or_config(gatehouse, upstream, token_file):
    g = start(gatehouse, upstream(), token_file=str(token_file))
    admin_get(g.admin, "/config", token="wrong-token-wrong-token-wrong")
    admin_get(g.admin, "/config", token=TOKEN)
    assert TOKEN not in g.stderr


def validate(tmp_path, cfg, env=None):
    p = tmp_path / "validate.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    return subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True,
                          timeout=20, env=env)


def test_non_loopback_needs_token(tmp_path, token_file):
    base = make_config(routes=[{"name": "a", "direct_response": {"body": "x"}}])
    base["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    cfg = dict(base, admin={"listen": f"0.0.0.0:{free_port()}"})
    r = validate(tmp_path, cfg)
    assert r.returncode == 1, r
    assert b"admin" in r.stderr, r.stderr
    cfg = dict(base, admin={"listen": f"0.0.0.0:{free_port()}", "token_file": str(token_file)})
    r = validate(tmp_path, cfg)
    assert r.returncode == 0, r
    # loopback without a token is fine
    cfg = dict(base, admin={"listen": f"127.0.0.1:{free_port()}"})
    assert validate(tmp_path, cfg).returncode == 0


def test_short_token_refused(tmp_path):
    short = tmp_path / "short.token"
    short.write_text("tooshort\n")
    base = make_config(routes=[{"name": "a", "direct_response": {"body": "x"}}])
    base["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    cfg = dict(base, admin={"listen": f"127.0.0.1:{free_port()}", "token_file": str(short)})
    r = validate(tmp_path, cfg)
    assert r.returncode == 1, r
    assert b"tooshort" not in r.stdout + r.stderr, "token value echoed in an error"


def test_admin_token_change_on_reload(gatehouse, upstream, tmp_path, token_file):
    """A reload that changes the token file takes effect for the admin API."""
    up = upstream()
    cfg = make_config([up])
    cfg["admin"] = admin_conf(token_file=str(token_file))
    g = gatehouse(cfg)
    ap = admin_port_of(cfg)
    wait_admin(ap)
    assert admin_get(ap, "/metrics", token=TOKEN).status == 200
    new_tok = "second-token-0123456789-abcdefgh"
    tf2 = tmp_path / "admin2.token"
    tf2.write_text(new_tok)
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["admin"]["token_file"] = str(tf2)
    write_config(g, config_text(g, cfg2), "rename")
    wait_for(lambda: admin_get(ap, "/metrics", token=new_tok).status == 200, 10,
             "the new token to be accepted")
    assert admin_get(ap, "/metrics", token=TOKEN).status == 401


def test_bearer_scheme_case_insensitive(gatehouse, upstream, token_file):
    """RFC 9110 11.1: the auth scheme is case-insensitive."""
    g = start(gatehouse, upstream(), token_file=str(token_file))
    for scheme in ("bearer", "BEARER"):
        r = admin_get(g.admin, "/metrics", headers=[("Authorization", f"{scheme} {TOKEN}")])
        assert r.status == 200, (scheme, r)


def test_keep_alive_and_malformed(gatehouse, upstream):
    g = start(gatehouse, upstream())
    with RawConn(g.admin) as c:
        for path in ("/live", "/metrics", "/config", "/clusters", "/ready", "/nope"):
            c.request("GET", path, host="127.0.0.1")
            r = c.read_response()
            assert r.status in (200, 404) and r.complete, (path, r)
    for junk in (b"garbage\r\n\r\n", b"GET /live HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                 b"GET /live HTTP/1.1\r\n" + b"X-Big: " + b"a" * 200000 + b"\r\n\r\n", b"\x00\xff" * 100):
        with RawConn(g.admin, timeout=5) as c:
            try:
                c.send(junk)
                r = c.read_response()
                assert 400 <= r.status < 500, r
            except (OSError, AssertionError) as e:
                if isinstance(e, AssertionError) and "connection closed" not in str(e) and \
                        not isinstance(e, ConnectionError):
                    raise
    assert g.alive()
    assert admin_get(g.admin, "/live").status == 200


# --------------------------------------------------------------------------
# Hardening: reason phrases, slowloris, connection cap, descriptor exhaustion


@pytest.mark.parametrize("junk,status,reason", [
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI Too Long"),
    (b"GET /live HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(70)) + b"\r\n",
     431, "Request Header Fields Too Large"),
    (b"GET /live HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "Bad Request"),
    (b"GET /live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Not Implemented"),
], ids=["414", "431", "400", "501"])
def test_error_reason_phrases(gatehouse, upstream, junk, status, reason):
    g = start(gatehouse, upstream())
    with RawConn(g.admin, timeout=5) as c:
        c.send(junk)
        r = c.read_response()
        assert (r.status, r.reason) == (status, reason), r.raw_head
        assert c.is_closed(timeout=5)


def test_head_deadline_not_extended_by_trickle(gatehouse, upstream):
    """A head that trickles in a byte at a time used to restart the 30 s
    idle timer with every read, holding the connection forever. The head
    deadline (5 s) runs from the first byte. The client here keeps
    trickling (a byte per 0.1 s, 1000 bytes); the server must close first."""
    g = start(gatehouse, upstream())
    head = b"GET /live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    with RawConn(g.admin, timeout=5) as c:
        closed = False
        for i in range(len(head)):
            try:
                c.send(head[i:i + 1])
            except OSError:
                closed = True
                break
            if c.is_closed(timeout=0.1):
                closed = True
                break
        assert closed, "a trickled head kept the admin connection open"
    assert admin_get(g.admin, "/live").status == 200


def test_connection_cap_evicts_oldest_waiting(gatehouse, upstream):
    """At 64 open admin connections a new one evicts the oldest one, so 80 idle connections cannot lock probes out
    and do not all stay open."""
    import socket
    g = start(gatehouse, upstream())
    socks = [socket.create_connection(("127.0.0.1", g.admin), timeout=5) for _ in range(80)]
    try:
        r = admin_get(g.admin, "/live")
        assert r.status == 200, r

        def closed_by_server():
            n = 0
            for s in socks:
                s.settimeout(0.01)
                try:
                    if s.recv(1) == b"":
                        n += 1
                except socket.timeout:
                    pass
                except OSError:
                    n += 1
            return n >= 80 + 1 - 64

        wait_for(closed_by_server, 10, "the oldest admin connections to be evicted")
        # The newest ones are still open.
        socks[-1].settimeout(0.2)
        with pytest.raises(socket.timeout):
            socks[-1].recv(1)
    finally:
        for s in socks:
            s.close()


def test_never_reading_pipeliners_do_not_lock_out_probes(gatehouse, upstream):
    """80 clients each pipeline 20,000 /ready requests in one go and never
    read. Every one of them fills its answers into a full socket and used to
    hold its slot (a writing connection could not be evicted, and had no
    deadline): with all 64 slots writing, a new /live was closed at once.
    Now the oldest connection of any state is evicted, so /live answers."""
    import socket
    import threading
    g = start(gatehouse, upstream())
    burst = b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n" * 20000
    socks = []
    try:
        for _ in range(80):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Small buffers so that the server's answers fill them quickly.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            s.settimeout(5)
            s.connect(("127.0.0.1", g.admin))
            socks.append(s)

        def flood(s):
            # Blocks once the server stops reading (it is stuck writing
            # answers nobody takes); then the send times out. A connection
            # the server dropped ends with a reset.
            s.settimeout(3)
            try:
                s.sendall(burst)
            except (socket.timeout, ConnectionResetError, BrokenPipeError):
                pass

        threads = [threading.Thread(target=flood, args=(s,)) for s in socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(3):
            r = admin_get(g.admin, "/live")
            assert r.status == 200, r
    finally:
        for s in socks:
            s.close()


def test_peer_that_never_reads_is_closed(gatehouse, upstream):
    """A connection whose answer is not taken (the peer pipelines requests
    and never reads) used to hold its slot forever: there was no write
    deadline. Now it is closed; the client sees the reset when it sends."""
    import socket
    g = start(gatehouse, upstream())
    chunk = b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n" * 2000
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.settimeout(5)
    s.connect(("127.0.0.1", g.admin))
    s.setblocking(False)

    def closed_by_server():
        try:
            s.send(chunk)
        except BlockingIOError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False

    try:
        wait_for(closed_by_server, 60, "the server to close a peer that never reads", interval=0.1)
    finally:
        s.close()
    assert admin_get(g.admin, "/live").status == 200


def test_live_answers_when_out_of_descriptors(gatehouse, upstream):
    """With the process out of descriptors (a low RLIMIT_NOFILE and many
    idle client connections), libuv used to accept and drop the probe's
    connection. A descriptor held in reserve lets /live through, more than
    once; and once the admin API ran out, the data plane leaves a freed
    descriptor alone."""
    import resource
    import socket
    # Long header and idle timeouts: the idle connections must stay open.
    cfg = make_config([upstream()], listener={"header_timeout": "10m", "idle_timeout": "1h"})
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    g.admin = admin_port_of(cfg)
    wait_admin(g.admin)
    assert admin_get(g.admin, "/live").status == 200
    import os
    nfds = len(os.listdir(f"/proc/{g.pid}/fd"))
    limit = nfds + 12
    old = resource.prlimit(g.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(g.pid, resource.RLIMIT_NOFILE, (limit, old[1]))
    conns = []

    def fds():
        return len(os.listdir(f"/proc/{g.pid}/fd"))

    def closed_by_server(s):
        s.setblocking(False)
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    try:
        # More connections than descriptors: libuv accepts and closes the
        # ones it has no descriptor for, all that are pending at once. After
        # that the process is out of descriptors with nothing pending.
        for _ in range(40):
            conns.append(socket.create_connection(("127.0.0.1", g.port), timeout=2))
        wait_for(lambda: any(closed_by_server(s) for s in conns), 10,
                 "a connection closed for want of a descriptor")

        def exhausted():
            # A descriptor freed meanwhile (a closing probe connection) is
            # taken by one more client connection.
            if fds() >= limit:
                return True
            conns.append(socket.create_connection(("127.0.0.1", g.port), timeout=2))
            return False

        wait_for(exhausted, 10, "the process to run out of descriptors", interval=0.05)
        for i in range(3):
            r = admin_get(g.admin, "/live", timeout=10)
            # (Normally on the reserved descriptor, with connection: close;
            # not asserted, since libuv's own EMFILE handling in a worker can
            # free a descriptor for a moment.)
            assert r.status == 200 and r.json() == {"status": "live"}, (i, r)

        # The admin API ran out. A descriptor freed now (a client of the data
        # plane leaves) must not go to a new client of the data plane: the
        # worker's accept would keep it, and an admin API that lost its
        # reserve in a race (close, then accept) would then find none. The
        # new client is accepted and closed at once instead.
        # The first client was accepted before the process ran out.
        held = conns[0]
        assert not closed_by_server(held)
        conns.remove(held)
        held.close()
        wait_for(lambda: fds() < limit, 10, "the server to close the connection that left")
        newcomer = socket.create_connection(("127.0.0.1", g.port), timeout=2)
        conns.append(newcomer)
        wait_for(lambda: closed_by_server(newcomer), 10,
                 "the new data-plane connection closed, its descriptor kept free")
        wait_for(lambda: "too few descriptors left, kept for the admin API" in g.stderr, 10,
                 "the worker's log line")
        assert fds() < limit
        for i in range(3):
            r = admin_get(g.admin, "/live", timeout=10)
            assert r.status == 200 and r.json() == {"status": "live"}, (i, r)
    finally:
        for s in conns:
            s.close()
        resource.prlimit(g.pid, resource.RLIMIT_NOFILE, old)
    wait_for(lambda: fetch(g.port, "GET", "/echo").status == 200, 10, "the data plane again")
    assert admin_get(g.admin, "/metrics").status == 200


def test_live_answers_under_a_flood_when_out_of_descriptors(gatehouse, upstream):
    """The process out of descriptors while clients keep connecting to the
    data plane: the worker's accept loop then takes any descriptor that
    comes free, and used to take the one the admin API had just freed from
    its reserve to accept a probe; /live then waited for good. Every probe
    gets its answer. (The race is narrow: without the fix this failed in
    one run in ten to four; the deterministic checks are in
    test_live_answers_when_out_of_descriptors and the fdlimit unit test.)"""
    import os
    import resource
    import socket
    import threading
    cfg = make_config([upstream()], listener={"header_timeout": "10m", "idle_timeout": "1h"})
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    g.admin = admin_port_of(cfg)
    wait_admin(g.admin)
    # A round trip: the admin API has taken wait_admin's connection too, so
    # it does not run out (and make the data plane leave room) before the
    # flood has taken every descriptor.
    assert admin_get(g.admin, "/live").status == 200
    limit = len(os.listdir(f"/proc/{g.pid}/fd")) + 12
    old = resource.prlimit(g.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(g.pid, resource.RLIMIT_NOFILE, (limit, old[1]))
    stop = threading.Event()
    held = []

    def flood():
        # Connections are held, so that none frees a descriptor; once the
        # backlog is full a connect times out and the next one is tried.
        while not stop.is_set():
            try:
                held.append(socket.create_connection(("127.0.0.1", g.port), timeout=2))
            except OSError:
                pass

    threads = [threading.Thread(target=flood) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(os.listdir(f"/proc/{g.pid}/fd")) >= limit, 10,
                 "the process to run out of descriptors")
        for i in range(100):
            r = admin_get(g.admin, "/live", timeout=10)
            assert r.status == 200 and r.json() == {"status": "live"}, (i, r)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for s in held:
            s.close()
        resource.prlimit(g.pid, resource.RLIMIT_NOFILE, old)
    wait_for(lambda: fetch(g.port, "GET", "/echo").status == 200, 10, "the data plane again")


def test_ready_without_token_hides_details(gatehouse, upstream, token_file):
    """/ready is open to anyone who reaches the port: without the token its
    reasons name the provider but no URL or path."""
    from jwt_util import provider
    up = upstream()
    dead = free_port()
    cfg = make_config([up], route={"authn": "corp"})
    cfg["providers"] = {"jwt": {"corp": provider(jwks={"uri": f"http://127.0.0.1:{dead}/secret-path/jwks.json"})}}
    cfg["admin"] = admin_conf(token_file=str(token_file))
    g = gatehouse(cfg)
    ap = admin_port_of(cfg)
    wait_admin(ap)
    wait_for(lambda: "fetch failed" in g.stderr, 10, "a failed JWKS fetch")
    r = admin_get(ap, "/ready")
    assert r.status == 503, r
    doc = r.json()
    text = json.dumps(doc)
    assert "corp" in text and "secret-path" not in text and "127.0.0.1" not in text, doc
    r = admin_get(ap, "/ready", token=TOKEN)
    assert r.status == 503 and "secret-path" in json.dumps(r.json()), r


def test_collector_userinfo_redacted(gatehouse, upstream, token_file):
    up = upstream()
    cfg = make_config([up])
    cfg["tracing"] = {"collector": f"http://tracer:pa55w0rd-XYZ@127.0.0.1:{free_port()}/v1/traces"}
    cfg["admin"] = admin_conf(token_file=str(token_file))
    g = gatehouse(cfg)
    ap = admin_port_of(cfg)
    wait_admin(ap)
    r = admin_get(ap, "/config", token=TOKEN)
    assert r.status == 200
    tr = r.json()["tracing"]
    assert tr["collector"].startswith("http://[redacted]@127.0.0.1:"), tr
    assert fetch(g.port, "GET", "/echo").status == 200
    wait_for(lambda: "export to http://[redacted]@" in g.stderr, 10, "the failed export logged")
    assert "pa55w0rd" not in g.stderr and "pa55w0rd" not in r.body.decode()
