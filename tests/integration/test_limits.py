"""Bounded sizes and times: 414, 431 (size and count), 413 (by Content-Length
and by chunked body), 408 (header timeout), idle and body timeouts."""

import threading
import time

import pytest

from harness import ConnectionClosed, RawConn, assert_refusal, chunked, fetch, send_in_background

LIMITS = {"max_uri": "1KiB", "max_head": "4KiB", "max_headers": 10}


@pytest.fixture
def limited(proxy):
    return proxy(listener=LIMITS, route={"max_body": "1KiB"})


def sentinel_only(g, up, also=()):
    assert fetch(g.port, "GET", "/echo?sentinel=1").status == 200
    assert up.targets() == list(also) + ["/echo?sentinel=1"], up.requests


def test_uri_too_long(limited):
    g, up = limited
    r = fetch(g.port, "GET", "/echo?" + "a" * 2000)
    assert_refusal(r, 414, "uri_too_long")
    sentinel_only(g, up)


def test_uri_at_limit_accepted(limited):
    g, up = limited
    target = "/echo?" + "a" * (1024 - len("/echo?"))
    assert len(target) == 1024
    r = fetch(g.port, "GET", target)
    assert r.status == 200 and r.json()["target"] == target, r


def test_uri_one_past_limit_refused(limited):
    g, up = limited
    r = fetch(g.port, "GET", "/echo?" + "a" * (1025 - len("/echo?")))
    assert_refusal(r, 414, "uri_too_long")


def test_head_too_large(limited):
    g, up = limited
    r = fetch(g.port, "GET", "/echo", [("X-Big", "b" * 5000)])
    assert_refusal(r, 431, "header_too_large")
    sentinel_only(g, up)


def test_head_too_large_many_small_lines(limited):
    g, up = limited
    # 9 fields of ~600 bytes: within the count, over 4 KiB in total.
    r = fetch(g.port, "GET", "/echo", [(f"X-H{i}", "c" * 600) for i in range(8)])
    assert_refusal(r, 431, "header_too_large")
    sentinel_only(g, up)


def test_head_under_limit_accepted(limited):
    g, up = limited
    r = fetch(g.port, "GET", "/echo", [("X-Big", "b" * 3000)])
    assert r.status == 200, r


def test_too_many_headers(limited):
    g, up = limited
    r = fetch(g.port, "GET", "/echo", [(f"X-H{i}", "v") for i in range(20)])
    assert_refusal(r, 431, "header_too_large")
    sentinel_only(g, up)


def test_too_many_headers_by_one(limited):
    g, up = limited
    r = fetch(g.port, "GET", "/echo", [(f"X-H{i}", "v") for i in range(10)])  # + Host = 11
    assert_refusal(r, 431, "header_too_large")


def test_header_count_at_limit_accepted(limited):
    g, up = limited
    r = fetch(g.port, "GET", "/echo", [(f"X-H{i}", "v") for i in range(9)])  # + Host = 10
    assert r.status == 200, r


def test_body_too_large_by_content_length(limited):
    g, up = limited
    with RawConn(g.port) as c:
        # Only the head: the refusal must not wait for the body.
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n")
        r = c.read_response("POST")
    assert_refusal(r, 413, "payload_too_large")
    sentinel_only(g, up)


def test_body_at_limit_accepted(limited):
    g, up = limited
    r = fetch(g.port, "POST", "/echo", body=b"x" * 1024)
    assert r.status == 200 and r.json()["body_len"] == 1024, r


def test_body_too_large_chunked(limited):
    g, up = limited
    with RawConn(g.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for i in range(8):
                c.send(b"100\r\n" + bytes([65 + i]) * 256 + b"\r\n")
                time.sleep(0.02)
            c.send(b"0\r\n\r\n")
        except OSError:
            pass  # gatehouse may close as soon as it has answered
        r = c.read_response("POST")
    assert_refusal(r, 413, "payload_too_large")
    assert fetch(g.port, "GET", "/echo?sentinel=1").status == 200
    assert up.targets() == ["/echo?sentinel=1"], f"an over-limit body reached the upstream complete: {up.requests}"


def test_chunked_body_at_limit_accepted(limited):
    g, up = limited
    body = chunked([b"y" * 512, b"z" * 512])
    r = fetch(g.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body=body)
    assert r.status == 200 and r.json()["body_len"] == 1024, r


def test_expect_continue_over_limit_gets_413_not_100(limited):
    g, up = limited
    with RawConn(g.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response("POST")
    assert_refusal(r, 413, "payload_too_large")
    assert not r.interim, "100 Continue invites a body that will be refused"
    sentinel_only(g, up)


@pytest.fixture
def timeouts(proxy):
    return proxy(listener={"header_timeout": "1s", "idle_timeout": "1s", "body_timeout": "1s"})


def test_header_timeout_408(timeouts):
    g, up = timeouts
    with RawConn(g.port, timeout=10) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
        r = c.read_response()
        assert_refusal(r, 408, "request_timeout")
        assert c.is_closed(5)
    sentinel_only(g, up)


def test_header_timeout_is_total_not_per_read(timeouts):
    """A client trickling header lines (slowloris) still gets its 408."""
    g, up = timeouts
    c = RawConn(g.port, timeout=8)
    stop = threading.Event()

    def trickle():
        try:
            c.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
            for i in range(60):
                if stop.wait(0.2):
                    return
                c.send(f"X-Trickle-{i}: v\r\n".encode())
        except OSError:
            pass

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        r = c.read_response()
    finally:
        stop.set()
        t.join(5)
    assert_refusal(r, 408, "request_timeout")
    c.close()
    sentinel_only(g, up)


def test_idle_keepalive_connection_closed_silently(timeouts):
    g, up = timeouts
    with RawConn(g.port) as c:
        c.request("GET", "/echo")
        assert c.read_response().status == 200
        assert c.is_closed(8), "an idle keep-alive connection must be closed after idle_timeout"
        assert not c.buf, f"nothing may be sent on an idle connection: {bytes(c.buf)!r}"


def test_silent_new_connection_closed_after_header_timeout(proxy):
    """A connection that never sends a byte owes its first request within
    header_timeout: silent sockets cannot hold max_connections slots for
    the (much longer) idle_timeout."""
    g, up = proxy(listener={"header_timeout": "1s", "idle_timeout": "60s", "max_connections": 2})
    silent = [RawConn(g.port) for _ in range(2)]
    try:
        for c in silent:
            assert c.is_closed(8), "a silent new connection must be closed after header_timeout"
            assert not c.buf, f"nothing may be sent to it: {bytes(c.buf)!r}"
    finally:
        for c in silent:
            c.close()
    assert fetch(g.port, "GET", "/echo?sentinel=1").status == 200
    assert up.targets() == ["/echo?sentinel=1"], up.requests


def test_body_timeout(timeouts):
    g, up = timeouts
    with RawConn(g.port, timeout=8) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        try:
            r = c.read_response("POST")
        except ConnectionClosed:
            r = None
        if r is not None:
            assert r.status == 408, r
            assert_refusal(r, 408, "request_timeout")
        assert c.is_closed(5)
    assert fetch(g.port, "GET", "/echo?sentinel=1").status == 200
    assert up.targets() == ["/echo?sentinel=1"], up.requests


def _refused_or_cut(c, method="POST"):
    """A refusal in {400, 413, 431} followed by close, or a plain close."""
    try:
        r = c.read_response(method)
    except ConnectionClosed:
        return None
    assert r.status in (400, 413, 431), r
    assert c.is_closed(5)
    return r


@pytest.mark.parametrize("what", ["chunk_extension", "chunk_size_line", "trailers"])
def test_chunked_metadata_is_bounded(limited, what):
    """Chunk extensions, chunk-size lines and trailer sections are not
    buffered without limit."""
    g, up = limited
    big = b"a" * 200000
    body = {
        "chunk_extension": b"5;ext=" + big + b"\r\nhello\r\n0\r\n\r\n",
        "chunk_size_line": b"0" * 200000 + b"5\r\nhello\r\n0\r\n\r\n",
        "trailers": b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 1000) for i in range(200)) + b"\r\n",
    }[what]
    with RawConn(g.port) as c:
        try:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        except OSError:
            pass
        _refused_or_cut(c)
    assert fetch(g.port, "GET", "/echo?sentinel=1").status == 200
    assert up.targets() == ["/echo?sentinel=1"], up.requests


# ---- connection limits ----------------------------------------------------


def _limited_conns(gatehouse, upstream, **listener):
    from harness import make_config
    from ops_util import admin_conf, admin_port_of, metrics, wait_admin, wait_metric
    up = upstream()
    cfg = make_config([up], listener=listener)
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    g.admin = admin_port_of(cfg)
    wait_admin(g.admin)
    # wait_ready's probe connection must be gone before counting.
    wait_metric(g.admin, "gatehouse_downstream_connections_active", 0, listener="edge")
    g.base_total = metrics(g.admin).value("gatehouse_downstream_connections_total", listener="edge")
    return g, up


def _served(c, tag):
    c.request("GET", f"/echo?c={tag}")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == f"/echo?c={tag}", r


def _no_bytes_yet(c):
    c.sock.setblocking(False)
    try:
        d = c.sock.recv(1)
    except BlockingIOError:
        d = None
    finally:
        c.sock.setblocking(True)
        c.sock.settimeout(c.timeout)
    assert d is None, f"the connection over the limit got {d!r}"


def test_max_connections_holds_the_next_in_the_backlog(gatehouse, upstream):
    """At max_connections the listener stops accepting: a third client is
    neither served nor closed while two are open, and is served as soon as
    one of them goes."""
    from ops_util import metrics, wait_metric
    g, up = _limited_conns(gatehouse, upstream, max_connections=2)
    a, b = RawConn(g.port), RawConn(g.port)
    _served(a, "a")
    _served(b, "b")
    c = RawConn(g.port)  # the kernel completes the handshake: the backlog
    c.request("GET", "/echo?c=c")
    wait_metric(g.admin, "gatehouse_downstream_accept_pauses_total", 1, listener="edge")
    m = metrics(g.admin)
    assert m.value("gatehouse_downstream_connections_active", listener="edge") == 2
    _no_bytes_yet(c)
    assert "/echo?c=c" not in up.targets()
    a.close()
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?c=c", r
    _served(b, "b2")
    m = metrics(g.admin)
    assert m.value("gatehouse_downstream_connections_refused_total", listener="edge") == 0
    assert m.value("gatehouse_downstream_connections_total", listener="edge") == g.base_total + 3
    b.close()
    c.close()


def test_max_connections_per_address_accepts_and_closes(gatehouse, upstream):
    """One address over its limit is refused (accepted and closed); another
    address still gets in; the first gets in again once below the limit."""
    from ops_util import metrics, wait_metric
    g, up = _limited_conns(gatehouse, upstream, max_connections_per_address=1)
    a = RawConn(g.port)
    _served(a, "a")
    extra = RawConn(g.port)
    extra.request("GET", "/echo?c=extra")
    with pytest.raises(ConnectionClosed):
        extra.read_response()
    extra.close()
    m = metrics(g.admin)
    assert m.value("gatehouse_downstream_connections_refused_total", listener="edge") == 1
    # The same listener from another client address (127.0.0.2 is loopback too).
    import socket as _s
    s2 = _s.socket()
    s2.settimeout(10)
    s2.bind(("127.0.0.2", 0))
    s2.connect(("127.0.0.1", g.port))
    s2.sendall(RawConn.build("GET", "/echo?c=other"))
    data = b""
    while b"/echo?c=other" not in data:
        d = s2.recv(65536)
        assert d, f"the other address was refused: {data!r}"
        data += d
    assert data.startswith(b"HTTP/1.1 200 "), data
    s2.close()
    a.close()
    # Once a's connection is gone the address is below its limit again.
    wait_metric(g.admin, "gatehouse_downstream_connections_active", 0, listener="edge")
    again = RawConn(g.port)
    again.request("GET", "/echo?c=again")
    r = again.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?c=again", r
    assert "/echo?c=extra" not in up.targets()
    again.close()


# ---- upstream connections: max_connections, max_pending ------------------


class _GatedUpstream:
    """A keep-alive upstream that answers each request only when the test
    opens its gate: gate(target). Logs (connection number, target)."""

    def __init__(self):
        import socket as _s
        self.lsock = _s.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.cond = threading.Condition()
        self.log = []
        self.gates = set()
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket as _s
        while not self._stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except _s.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c, n):
        c.settimeout(60)
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                target = head.split(b" ")[1].decode()
                with self.cond:
                    self.log.append((n, target))
                    self.cond.notify_all()
                    while target not in self.gates and not self._stop.is_set():
                        self.cond.wait(0.2)
                body = target.encode()
                close = b"close" in body
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (
                    len(body), b"Connection: close\r\n" if close else b"") + body)
                if close:
                    return
        except OSError:
            return
        finally:
            c.close()

    def wait_for(self, target, timeout=10):
        with self.cond:
            ok = self.cond.wait_for(lambda: any(t == target for _, t in self.log), timeout)
        assert ok, f"upstream never got {target}: {self.log}"

    def gate(self, target):
        with self.cond:
            self.gates.add(target)
            self.cond.notify_all()

    def targets(self):
        with self.cond:
            return [t for _, t in self.log]

    def close(self):
        self._stop.set()
        with self.cond:
            self.cond.notify_all()
        self.lsock.close()


@pytest.fixture
def gated(gatehouse):
    from harness import make_config
    from ops_util import admin_conf, admin_port_of, wait_admin
    ups = []

    def make(**cluster):
        up = _GatedUpstream()
        ups.append(up)
        cfg = make_config([up.port], cluster=cluster)
        cfg["admin"] = admin_conf()
        g = gatehouse(cfg)
        g.admin = admin_port_of(cfg)
        wait_admin(g.admin)
        return g, up

    yield make
    for up in ups:
        up.close()


def _pending_is(g, n):
    from ops_util import wait_metric
    wait_metric(g.admin, "gatehouse_upstream_pending_requests", n, cluster="app")


def test_upstream_max_connections_queues_then_503_when_full(gated):
    """One connection allowed, one request may wait: the second waits for
    the first's connection, the third is refused at once (503, JSON), and
    the waiting one goes out on the released connection."""
    from ops_util import metrics
    g, up = gated(max_connections=1, max_pending=1, connect_timeout="30s")
    a, b, c = RawConn(g.port, timeout=30), RawConn(g.port, timeout=30), RawConn(g.port, timeout=30)
    a.request("GET", "/a")
    up.wait_for("/a")
    b.request("GET", "/b")
    _pending_is(g, 1)
    c.request("GET", "/c")
    r = c.read_response()
    doc = assert_refusal(r, 503, "service_unavailable")
    assert "busy" in doc["detail"], doc
    up.gate("/a")
    ra = a.read_response()
    assert ra.status == 200 and ra.body == b"/a", ra
    up.wait_for("/b")
    _pending_is(g, 0)
    up.gate("/b")
    rb = b.read_response()
    assert rb.status == 200 and rb.body == b"/b", rb
    assert up.targets() == ["/a", "/b"], up.log
    assert up.connections == 1, f"max_connections 1 but the upstream saw {up.connections}"
    m = metrics(g.admin)
    assert m.value("gatehouse_upstream_pending_failures_total", cluster="app", reason="overflow") == 1
    assert m.value("gatehouse_upstream_pending_failures_total", cluster="app", reason="timeout") == 0
    for x in (a, b, c):
        x.close()


def test_upstream_pending_request_times_out_503(gated):
    """A waiting request has the connect timeout as its deadline."""
    from ops_util import metrics
    g, up = gated(max_connections=1, connect_timeout="1s")
    a, b = RawConn(g.port, timeout=30), RawConn(g.port, timeout=30)
    a.request("GET", "/a")
    up.wait_for("/a")
    b.request("GET", "/b")
    r = b.read_response()
    doc = assert_refusal(r, 503, "service_unavailable")
    assert "became free" in doc["detail"], doc
    up.gate("/a")
    assert a.read_response().body == b"/a"
    assert up.targets() == ["/a"], up.log
    m = metrics(g.admin)
    assert m.value("gatehouse_upstream_pending_failures_total", cluster="app", reason="timeout") == 1
    assert m.value("gatehouse_upstream_pending_requests", cluster="app") == 0
    a.close()
    b.close()


def test_upstream_pending_client_that_leaves_is_dequeued(gated):
    """A client that goes away while its request waits leaves the queue:
    its place is free for the next one, and its request is never sent."""
    g, up = gated(max_connections=1, max_pending=1, connect_timeout="30s")
    a, b = RawConn(g.port, timeout=30), RawConn(g.port, timeout=30)
    a.request("GET", "/a")
    up.wait_for("/a")
    b.request("GET", "/b")
    _pending_is(g, 1)
    # Gone for good: a reset. (A FIN alone is a half-close, which still
    # gets its response.)
    import socket as _s
    import struct
    b.sock.setsockopt(_s.SOL_SOCKET, _s.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()
    _pending_is(g, 0)
    c = RawConn(g.port, timeout=30)
    c.request("GET", "/c")
    _pending_is(g, 1)  # queued (the place b left), not refused
    up.gate("/a")
    assert a.read_response().body == b"/a"
    up.wait_for("/c")
    up.gate("/c")
    assert c.read_response().body == b"/c"
    assert up.targets() == ["/a", "/c"], up.log
    a.close()
    c.close()


def test_upstream_pending_request_gets_the_place_of_a_closed_connection(gated):
    """The busy connection is closed after its response (Connection:
    close): the waiting request goes out on a new one."""
    g, up = gated(max_connections=1, connect_timeout="30s")
    a, b = RawConn(g.port, timeout=30), RawConn(g.port, timeout=30)
    a.request("GET", "/a?close")
    up.wait_for("/a?close")
    b.request("GET", "/b")
    _pending_is(g, 1)
    up.gate("/a?close")
    assert a.read_response().body == b"/a?close"
    up.wait_for("/b")
    up.gate("/b")
    assert b.read_response().body == b"/b"
    assert up.log == [(1, "/a?close"), (2, "/b")], up.log
    a.close()
    b.close()


def test_body_waiting_for_an_upstream_connection_is_not_a_client_timeout(gatehouse):
    """A request whose body cannot flow because it waits for an upstream
    connection gets the queue's answer (503) at connect_timeout, not a 408
    at the listener's body_timeout: the client did nothing wrong."""
    from harness import make_config
    up = _GatedUpstream()
    try:
        g = gatehouse(make_config([up.port], listener={"body_timeout": "1s"},
                                  cluster={"max_connections": 1, "connect_timeout": "3s"}))
        a = RawConn(g.port, timeout=30)
        a.request("GET", "/a")
        up.wait_for("/a")
        b = RawConn(g.port, timeout=30)
        size = 64 * 1024 * 1024
        b.send(f"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n".encode())
        t = send_in_background(b.sock, size)
        r = b.read_response("POST")
        doc = assert_refusal(r, 503, "service_unavailable")
        assert "became free" in doc["detail"], doc
        up.gate("/a")
        assert a.read_response().body == b"/a"
        assert up.targets() == ["/a"], up.log
        b.close()
        t.join(10)
        a.close()
    finally:
        up.close()


def test_saturated_endpoint_spills_over_to_one_with_room(gatehouse):
    """Round robin picks an endpoint whose only connection is busy (and no
    request may wait): the other endpoint, which has room, takes the
    request instead of a 503."""
    from harness import make_config
    x, y = _GatedUpstream(), _GatedUpstream()
    try:
        g = gatehouse(make_config([x.port, y.port], cluster={"max_connections": 1, "max_pending": 0}))
        a = RawConn(g.port, timeout=30)
        a.request("GET", "/a")  # round robin: the first endpoint
        x.wait_for("/a")
        y.gate("/b")
        b = RawConn(g.port, timeout=30)
        b.request("GET", "/b")  # the second
        assert b.read_response().body == b"/b"
        c = RawConn(g.port, timeout=30)
        c.request("GET", "/c")  # the first again: busy, so the second
        y.gate("/c")
        r = c.read_response()
        assert r.status == 200 and r.body == b"/c", r
        assert x.targets() == ["/a"] and y.targets() == ["/b", "/c"], (x.log, y.log)
        x.gate("/a")
        assert a.read_response().body == b"/a"
        for k in (a, b, c):
            k.close()
    finally:
        x.close()
        y.close()
