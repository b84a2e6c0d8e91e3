"""Upstream failures: refused (502), closed before the response (502), slow
(504), dying mid-response (must never look complete), malformed responses
(502), and connections the upstream closes not being reused."""

import hashlib
import os
import socket
import threading
import time

import pytest

from harness import ConnectionClosed, RawConn, assert_refusal, fetch, free_port, make_config, pattern_bytes, send_in_background


def test_connection_refused_502(gatehouse):
    g = gatehouse(make_config([free_port()]))
    for _ in range(2):
        r = fetch(g.port, "GET", "/echo")
        assert_refusal(r, 502, "bad_gateway")


def test_all_endpoints_refused_502(gatehouse):
    g = gatehouse(make_config([free_port(), free_port()]))
    for _ in range(4):
        r = fetch(g.port, "GET", "/echo")
        assert_refusal(r, 502, "bad_gateway")


def test_upstream_stopped_502(gatehouse, upstream):
    up = upstream()
    g = gatehouse(make_config([up]))
    assert fetch(g.port, "GET", "/echo").status == 200
    up.stop()
    time.sleep(0.3)  # let gatehouse see its pooled connection close
    r = fetch(g.port, "GET", "/echo")
    assert_refusal(r, 502, "bad_gateway")


def test_upstream_closes_on_accept_502(gatehouse, upstream):
    up = upstream(accept_mode="close")
    g = gatehouse(make_config([up]))
    r = fetch(g.port, "GET", "/echo")
    assert_refusal(r, 502, "bad_gateway")


def test_upstream_closes_after_request_502(proxy):
    g, up = proxy()
    r = fetch(g.port, "GET", "/drop")
    assert_refusal(r, 502, "bad_gateway")
    assert "/drop" in up.targets()
    r = fetch(g.port, "GET", "/echo?after=1")
    assert r.status == 200 and r.json()["target"] == "/echo?after=1"


def test_slow_upstream_504(proxy):
    g, up = proxy(route={"timeout": "1s"})
    with RawConn(g.port, timeout=10) as c:
        c.request("GET", "/slow/4")
        r = c.read_response()
        assert_refusal(r, 504, "gateway_timeout")
        # The timed-out upstream connection must not carry the next request
        # (its late response would be taken for this one's).
        if not c.is_closed(0.2):
            c.request("GET", "/echo?after=1")
            r2 = c.read_response()
        else:
            r2 = fetch(g.port, "GET", "/echo?after=1")
    e = r2.json()
    assert e["target"] == "/echo?after=1"
    slow = [x for x in up.requests if x.target == "/slow/4"][0]
    assert e["conn_id"] != slow.conn_id, "request sent on the connection that timed out"


def test_slow_upstream_within_timeout(proxy):
    g, up = proxy(route={"timeout": "2s"})
    r = fetch(g.port, "GET", "/slow/0.3")
    assert r.status == 200 and r.json()["target"] == "/slow/0.3"


def _check_incomplete(c, r, framing):
    """The upstream sent its head and 1000 body bytes, waited, then closed:
    the head reached the client before the upstream died, so the client sees
    that 200 cut short (never completed), then the connection's end."""
    assert r.status == 200, r
    assert not r.complete, f"an upstream that died mid-response looked complete: {r!r}"
    assert r.framing == framing, r
    assert r.body == pattern_bytes(len(r.body)), "the bytes that did arrive must be the upstream's"
    assert c.eof, "the connection must end"


def test_die_mid_content_length(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", "/die-mid?mode=cl")
        r = c.read_response()
        _check_incomplete(c, r, "length")
        assert r.header("content-length") == "100000"
        assert len(r.body) < 100000
    assert fetch(g.port, "GET", "/echo?after=1").status == 200


def test_die_mid_chunked(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", "/die-mid?mode=chunked")
        r = c.read_response()
        _check_incomplete(c, r, "chunked")
    assert fetch(g.port, "GET", "/echo?after=1").status == 200


def test_die_mid_chunked_on_keepalive_connection_with_pipelined_request(proxy):
    """A second pipelined request must not be answered on a connection whose
    previous response was cut short (the client could not tell them apart)."""
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(RawConn.build("GET", "/die-mid?mode=chunked") + RawConn.build("GET", "/echo?n=2"))
        r = c.read_response()
        _check_incomplete(c, r, "chunked")
        assert c.eof and not c.buf


BAD_RESPONSES = ["cl_te", "dup_cl", "bad_cl", "status", "garbage", "obs_fold", "bare_lf", "space_colon",
                 "te_gzip_chunked", "nul_value", "huge_head", "many_headers"]


@pytest.mark.parametrize("kind", BAD_RESPONSES)
def test_malformed_response_502(proxy, kind):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", f"/bad-response?kind={kind}")
        r = c.read_response()
    assert_refusal(r, 502, "bad_gateway")
    r = fetch(g.port, "GET", "/echo?after=1")
    assert r.status == 200 and r.json()["target"] == "/echo?after=1"
    bad = [x for x in up.requests if x.target.startswith("/bad-response")][0]
    assert r.json()["conn_id"] != bad.conn_id


def test_malformed_chunk_in_response_never_looks_complete(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", "/bad-response?kind=bad_chunk")
        try:
            r = c.read_response()
        except ConnectionClosed:
            r = None  # closed without a response: not complete either
    if r is not None:
        assert not (r.status == 200 and r.complete), r
        if r.status == 502:
            assert_refusal(r, 502, "bad_gateway")
        else:
            assert c.eof
    assert fetch(g.port, "GET", "/echo?after=1").status == 200


def test_upstream_connection_close_not_reused(proxy):
    g, up = proxy()
    r1 = fetch(g.port, "GET", "/echo?close=1")
    assert r1.status == 200
    r2 = fetch(g.port, "GET", "/echo?n=2")
    assert r2.status == 200
    assert r1.json()["conn_id"] != r2.json()["conn_id"]


def test_pooled_connection_closed_by_upstream_while_idle(proxy):
    g, up = proxy()
    r1 = fetch(g.port, "GET", "/echo?close_after=1")
    assert r1.status == 200
    time.sleep(0.5)  # let gatehouse see the EOF on its idle pooled connection
    r2 = fetch(g.port, "GET", "/echo?n=2")
    assert r2.status == 200, r2
    assert r2.json()["conn_id"] != r1.json()["conn_id"]


def test_connect_timeout(gatehouse):
    """An endpoint whose accept queue is full never completes the handshake."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(s)
        time.sleep(0.2)
        g = gatehouse(make_config([port], cluster={"connect_timeout": "1s"}, route={"timeout": "5s"}))
        r = fetch(g.port, "GET", "/echo", timeout=10)
        # The kernel drops SYNs to a full accept queue (no RST): the connect
        # never completes, which is connect_timeout's 504 (docs/architecture.md).
        assert_refusal(r, 504, "gateway_timeout")
    finally:
        for s in fillers:
            s.close()
        lsock.close()


def test_large_response_then_reuse(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", "/bytes/3000000?mode=cl")
        r = c.read_response()
        assert r.complete and hashlib.sha256(r.body).hexdigest() == r.header("x-sha256")
        c.request("GET", "/echo")
        assert c.read_response().status == 200


@pytest.mark.parametrize("method,target", [
    ("GET", "/echo?poison=1"),
    ("GET", "/status/204?poison=1"),
    ("GET", "/status/304?poison=1"),
    ("HEAD", "/head-ok?poison=1"),
    ("GET", "/bytes/1000?mode=chunked&poison=1"),
], ids=["after_length", "after_204", "after_304", "after_head", "after_chunked"])
@pytest.mark.parametrize("delayed", [False, True], ids=["at_once", "while_idle"])
def test_unsolicited_upstream_bytes_never_reach_another_request(proxy, method, target, delayed):
    """Bytes an upstream sends after a complete response (response-queue
    poisoning) must not be served as the response to the next request."""
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request(method, target + ("&poison_delay=0.2" if delayed else ""))
        r1 = c.read_response(method)
        assert r1.status in (200, 204, 304, 502), r1
        assert not r1.has("x-poison")
    # Only bytes that arrive before the next request is sent can be told
    # apart from its response: wait until the upstream has sent them (on
    # loopback they are then in gatehouse's socket buffer), and give the
    # event loop a moment to see them.
    up.wait_poisons(1)
    time.sleep(0.05)
    for i in range(3):
        r = fetch(g.port, "GET", f"/echo?next={i}")
        assert not r.has("x-poison") and r.body != b"poison!", f"poisoned response served: {r!r}"
        assert r.status == 200 and r.json()["target"] == f"/echo?next={i}", r


# ---- retries: never replay what the upstream may have acted on ----------


def _pooled(g, up):
    """Leaves one idle pooled connection to up behind; returns its id."""
    r = fetch(g.port, "GET", "/echo?warm=1")
    assert r.status == 200, r
    return r.json()["conn_id"]


def _arrivals(up, method, path):
    # Requests the upstream saw start (head read, complete or not).
    return [x for x in up.requests if x.method == method and x.target is not None and x.path == path]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_request_never_replayed(proxy, method):
    """The upstream reads the request on a pooled connection and closes
    without answering: it may have acted on it, so it must not get it a
    second time, and the client learns of the failure."""
    g, up = proxy()
    warm = _pooled(g, up)
    r = fetch(g.port, method, "/drop")
    assert_refusal(r, 502, "bad_gateway")
    got = _arrivals(up, method, "/drop")
    assert len(got) == 1, f"{method} sent {len(got)} times: {got}"
    assert got[0].conn_id == warm, "the request should have gone on the pooled connection"


def test_non_idempotent_request_with_body_never_replayed(proxy):
    g, up = proxy()
    _pooled(g, up)
    r = fetch(g.port, "POST", "/drop", body=b"pay once")
    assert_refusal(r, 502, "bad_gateway")
    assert len(_arrivals(up, "POST", "/drop")) == 1, up.requests


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_idempotent_request_retried_once_after_pooled_connection_died(proxy, method):
    """docs/architecture.md: an idempotent request without a body whose
    pooled connection ends without a byte of response is sent once more, on
    a new connection; so at most twice."""
    g, up = proxy()
    warm = _pooled(g, up)
    r = fetch(g.port, method, "/drop")
    assert_refusal(r, 502, "bad_gateway")
    got = _arrivals(up, method, "/drop")
    assert len(got) == 2, got
    assert got[0].conn_id == warm and got[1].conn_id != warm, got


def test_request_on_a_fresh_connection_is_not_retried(proxy):
    g, up = proxy()
    r = fetch(g.port, "GET", "/drop")
    assert_refusal(r, 502, "bad_gateway")
    assert len(_arrivals(up, "GET", "/drop")) == 1, up.requests


class _ScriptedUpstream:
    """A raw upstream: the n-th accepted connection (from 0) runs
    scripts[n](sock, log) in its own thread; log is a list for what the
    script wants to report."""

    def __init__(self, scripts):
        self.scripts = scripts
        self.logs = [[] for _ in scripts]
        self.done = [threading.Event() for _ in scripts]
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            n = self.accepted
            self.accepted += 1
            if n >= len(self.scripts):
                c.close()
                continue
            threading.Thread(target=self._serve, args=(n, c), daemon=True).start()

    def _serve(self, n, c):
        c.settimeout(10)
        try:
            self.scripts[n](c, self.logs[n])
        except OSError as e:
            self.logs[n].append(("error", repr(e)))
        finally:
            c.close()
            self.done[n].set()

    def close(self):
        self._stop.set()
        self._t.join(5)
        self.lsock.close()


def _read_head(c, buf=b""):
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            raise OSError(f"EOF inside a head: {buf!r}")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _read_until_eof(c):
    out = b""
    while True:
        try:
            d = c.recv(65536)
        except ConnectionResetError:
            return out
        if not d:
            return out
        out += d


def test_stale_pooled_connection_is_transparent_for_post(gatehouse):
    """The upstream answers and closes the connection (its FIN rides on the
    response's last segment), and the client's next request, a POST with a
    body, is already waiting behind the first: gatehouse picks the pooled
    connection before its loop has seen the close. Not a byte may go on
    it; the POST goes, once, on a new connection."""

    def first(c, log):
        head, _ = _read_head(c)
        log.append(("head", head))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        c.shutdown(socket.SHUT_WR)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        log.append(("after", _read_until_eof(c)))

    def second(c, log):
        head, rest = _read_head(c)
        while len(rest) < 5:
            rest += c.recv(65536)
        log.append(("head", head))
        log.append(("body", rest))
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        _read_until_eof(c)

    up = _ScriptedUpstream([first, second])
    try:
        g = gatehouse(make_config([up.port]))
        with RawConn(g.port) as c:
            c.send(RawConn.build("GET", "/one") + RawConn.build("POST", "/two", body=b"hello"))
            r1 = c.read_response()
            assert r1.status == 200 and r1.body == b"first", r1
            r2 = c.read_response("POST")
            assert r2.status == 200 and r2.body == b"second", r2
        assert up.done[0].wait(10), "gatehouse did not close the stale connection"
        assert up.logs[0][0][1].startswith(b"GET /one "), up.logs
        assert up.logs[0][1] == ("after", b""), f"bytes sent on the closed connection: {up.logs[0]}"
        assert up.logs[1][0][1].startswith(b"POST /two "), up.logs
        assert up.logs[1][1] == ("body", b"hello"), up.logs
        assert up.accepted == 2, up.accepted
    finally:
        up.close()


def _sockets_to(pid, port):
    """How many of process pid's TCP sockets are connected to port on
    127.0.0.1 (from /proc: an orphaned socket still sending its last bytes
    belongs to no process)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    n = 0
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[2] == f"0100007F:{port:04X}" and parts[9] in inodes:
                n += 1
    return n


def _wait_for(pred, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_upstream_that_stops_reading_the_body_is_timed_out_504(gatehouse):
    """The upstream reads the head and then no more while a large body is
    on its way. The client's body stops flowing because of the upstream, so
    the answer is 504 (not 408), and both connections are let go."""
    release = threading.Event()

    def stall(c, log):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        head, _ = _read_head(c)
        log.append(("head", head))
        release.wait(60)  # reads nothing more

    up = _ScriptedUpstream([stall])
    size = 256 * 1024 * 1024
    try:
        g = gatehouse(make_config([up.port], listener={"body_timeout": "1s"}))
        c = RawConn(g.port, timeout=30)
        c.send(f"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n".encode())
        t = send_in_background(c.sock, size)
        _wait_for(lambda: up.logs[0], "the upstream to read the head")
        assert _sockets_to(g.pid, up.port) == 1
        r = c.read_response("POST")
        assert_refusal(r, 504, "gateway_timeout")
        assert "stopped reading" in r.json()["detail"], r
        assert r.header("connection") == "close", r
        assert up.logs[0] and up.logs[0][0][1].startswith(b"POST /upload "), up.logs
        # gatehouse let go of its upstream connection (the upstream still
        # holds its end, reading nothing), and of the client's.
        _wait_for(lambda: _sockets_to(g.pid, up.port) == 0, "gatehouse to close the upstream connection")
        assert not up.done[0].is_set()
        try:
            c.sock.shutdown(socket.SHUT_WR)  # stops the sender
        except OSError:
            pass  # the lingering close already ended with a reset
        t.join(30)
        assert c.is_closed(10), "the client connection was kept open"
        c.close()
    finally:
        release.set()
        up.close()


def test_early_response_says_connection_close(gatehouse):
    """An upstream that answers before the request body is complete: the
    client gets that answer with `connection: close` (the connection ends
    after it, since the rest of the body will not be read)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]
    got = []

    def serve():
        conn, _ = lsock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                d = conn.recv(65536)
                if not d:
                    return
                data += d
            got.append(data)
            conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nnope")
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        g = gatehouse(make_config([port]))
        with RawConn(g.port, timeout=10) as c:
            c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
            r = c.read_response("POST")
            assert r.status == 413 and r.body == b"nope", r
            assert r.header("connection") == "close", r.headers
            assert c.is_closed(10)
        assert got and got[0].startswith(b"POST /up HTTP/1.1"), got
    finally:
        lsock.close()
        t.join(5)
