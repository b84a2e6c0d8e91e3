"""Upstream failures: refused (502), closed before the response (502), slow
(504), dying mid-response (must never look complete), malformed responses
(502), and connections the upstream closes not being reused."""

import hashlib
import socket
import time

import pytest

from harness import ConnectionClosed, RawConn, assert_refusal, fetch, free_port, make_config, pattern_bytes


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
    assert not (r.status == 200 and r.complete), f"an upstream that died mid-response looked complete: {r!r}"
    if r.status == 502:
        assert_refusal(r, 502, "bad_gateway")
        return
    assert r.status == 200, r
    assert r.framing == framing, r
    assert r.body == pattern_bytes(len(r.body)), "the bytes that did arrive must be the upstream's"
    assert c.eof, "the connection must end"


def test_die_mid_content_length(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", "/die-mid?mode=cl")
        r = c.read_response()
        _check_incomplete(c, r, "length")
        if r.status == 200:
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
        if r.status == 502:
            return
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
        assert r.status in (502, 503, 504), r
        assert_refusal(r, r.status, {502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout"}[r.status])
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
