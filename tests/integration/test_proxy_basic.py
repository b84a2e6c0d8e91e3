"""Forwarding: headers added and removed, request ids, HEAD/204/304, HTTP/1.0,
keep-alive, pipelining, upstream connection reuse, Expect: 100-continue,
trailers, body framing."""

import hashlib
import threading
import time

import pytest

from harness import RawConn, chunked, fetch, hdr, pattern_bytes, pattern_sha256


def sentinel(g, up):
    """A fresh, valid request; returns the complete requests the upstream has
    seen once it has been answered (so anything gatehouse forwarded earlier is
    in the list)."""
    r = fetch(g.port, "GET", "/echo?sentinel=1")
    assert r.status == 200, r
    return up.targets()


def conn_tokens(values):
    return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


# -- headers added ----------------------------------------------------------


def test_forwarding_headers_added(proxy):
    g, up = proxy()
    r = fetch(g.port, "GET", "/echo/a%20b?x=%2F&y=1",
              [("Host", "example.test"), ("X-Custom", "foo"), ("X-Multi", "a"), ("X-Multi", "b")])
    e = r.json()
    assert e["method"] == "GET"
    assert e["target"] == "/echo/a%20b?x=%2F&y=1"
    h = e["headers"]
    assert len(hdr(h, "host")) == 1, h
    assert hdr(h, "x-custom") == ["foo"]
    assert hdr(h, "x-multi") == ["a", "b"], "repeated headers must be forwarded in order"
    assert hdr(h, "x-forwarded-for") == ["127.0.0.1"], h
    assert hdr(h, "x-forwarded-proto") == ["http"], h
    assert hdr(h, "x-forwarded-host") == ["example.test"], h
    assert hdr(h, "via") == ["1.1 gatehouse"], h
    rid = hdr(h, "x-request-id")
    assert len(rid) == 1 and rid[0].strip(), h
    assert not hdr(h, "transfer-encoding")


def test_x_forwarded_host_keeps_port(proxy):
    g, up = proxy()
    e = fetch(g.port, "GET", "/echo", [("Host", "example.test:8443")]).json()
    assert hdr(e["headers"], "x-forwarded-host") == ["example.test:8443"]


def test_x_forwarded_for_from_untrusted_peer_is_replaced(proxy):
    g, up = proxy()
    e = fetch(g.port, "GET", "/echo", [("X-Forwarded-For", "10.1.2.3")]).json()
    assert hdr(e["headers"], "x-forwarded-for") == ["127.0.0.1"], e["headers"]


def test_x_forwarded_for_from_trusted_proxy_is_appended(proxy):
    g, up = proxy(listener={"trusted_proxies": ["127.0.0.0/8"]})
    e = fetch(g.port, "GET", "/echo", [("X-Forwarded-For", "10.1.2.3")]).json()
    assert hdr(e["headers"], "x-forwarded-for") == ["10.1.2.3, 127.0.0.1"], e["headers"]
    assert hdr(e["headers"], "x-real-ip") == ["10.1.2.3"], e["headers"]


def test_client_supplied_forwarded_proto_and_host_are_replaced(proxy):
    g, up = proxy()
    e = fetch(g.port, "GET", "/echo",
              [("Host", "real.test"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test")]).json()
    assert hdr(e["headers"], "x-forwarded-proto") == ["http"], e["headers"]
    assert hdr(e["headers"], "x-forwarded-host") == ["real.test"], e["headers"]


def test_via_is_appended_to_existing(proxy):
    g, up = proxy()
    e = fetch(g.port, "GET", "/echo", [("Via", "1.0 corp-proxy")]).json()
    via = ", ".join(hdr(e["headers"], "via"))
    assert "1.0 corp-proxy" in via and via.rstrip().endswith("1.1 gatehouse"), via


def test_request_id_passed_through_from_trusted_proxy(proxy):
    g, up = proxy(listener={"trusted_proxies": ["127.0.0.1", "::1"]})
    e = fetch(g.port, "GET", "/echo", [("X-Request-Id", "abc-123-def")]).json()
    assert hdr(e["headers"], "x-request-id") == ["abc-123-def"]


def test_request_id_from_untrusted_peer_is_replaced(proxy):
    g, up = proxy(listener={"trusted_proxies": ["10.0.0.0/8"]})
    e = fetch(g.port, "GET", "/echo", [("X-Request-Id", "abc-123-def")]).json()
    rid = hdr(e["headers"], "x-request-id")
    assert len(rid) == 1 and rid[0] != "abc-123-def" and len(rid[0]) == 32, rid


def test_request_id_generated_and_unique(proxy):
    g, up = proxy()
    ids = []
    for _ in range(5):
        e = fetch(g.port, "GET", "/echo").json()
        rid = hdr(e["headers"], "x-request-id")
        assert len(rid) == 1 and rid[0].strip(), e["headers"]
        ids.append(rid[0])
    assert len(set(ids)) == 5, ids


# -- hop-by-hop -------------------------------------------------------------


def test_hop_by_hop_request_headers_removed(proxy):
    g, up = proxy()
    r = fetch(g.port, "GET", "/echo", [
        ("Connection", "keep-alive, X-Foo-Hop"),
        ("Connection", "x-bar-hop"),
        ("X-Foo-Hop", "1"),
        ("X-Bar-Hop", "2"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "x-t"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Foo", "bar"),
        ("X-Keep", "yes"),
    ])
    h = r.json()["headers"]
    for name in ("x-foo-hop", "x-bar-hop", "keep-alive", "te", "trailer", "proxy-connection",
                 "proxy-authorization", "proxy-foo"):
        assert not hdr(h, name), f"{name} forwarded: {h}"
    assert hdr(h, "x-keep") == ["yes"]
    assert conn_tokens(hdr(h, "connection")) <= {"keep-alive", "close"}, h


def test_upgrade_is_refused(proxy):
    """docs/http.md: an Upgrade other than h2c is 501 until upgrades are
    supported, and nothing reaches the upstream."""
    g, up = proxy()
    r = fetch(g.port, "GET", "/echo", [("Connection", "Upgrade"), ("Upgrade", "websocket")])
    assert r.status == 501, r
    assert r.json()["error"] == "not_implemented"
    assert sentinel(g, up) == ["/echo?sentinel=1"]
    assert up.targets(complete_only=False) == ["/echo?sentinel=1"]


def test_hop_by_hop_response_headers_removed(proxy):
    g, up = proxy()
    r = fetch(g.port, "GET", "/resp-hop")
    assert r.status == 200 and r.body == b"ok", r
    for name in ("x-resp-hop", "keep-alive", "proxy-authenticate", "proxy-foo", "upgrade", "trailer"):
        assert not r.has(name), f"{name} passed to the client: {r.headers}"
    assert r.header("x-resp-keep") == "yes"
    assert conn_tokens(r.headers_all("connection")) <= {"keep-alive", "close"}, r.headers


# -- status codes and HEAD ---------------------------------------------------


@pytest.mark.parametrize("status", [201, 404, 418, 500, 503])
def test_upstream_status_passed_through(proxy, status):
    g, up = proxy()
    r = fetch(g.port, "GET", f"/status/{status}")
    assert r.status == status, r
    assert r.body == f"status {status}\n".encode()
    assert r.header("x-status") == str(status)


@pytest.mark.parametrize("mode", ["cl", "chunked"])
def test_head_has_no_body_and_keeps_framing(proxy, mode):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("HEAD", f"/head-ok?mode={mode}")
        r = c.read_response("HEAD")
        assert r.status == 200 and r.header("x-head-ok") == "1", r
        # The next response on this connection must parse: no body bytes were sent.
        c.request("GET", "/echo?after=head")
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["target"] == "/echo?after=head", r2
    assert up.complete_requests()[0].method == "HEAD"


@pytest.mark.parametrize("status", [204, 304])
def test_204_304_have_no_body(proxy, status):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", f"/status/{status}")
        r = c.read_response()
        assert r.status == status and r.body == b"", r
        assert not r.has("transfer-encoding"), r.headers
        if status == 204:
            assert not r.has("content-length"), r.headers
        else:
            assert r.header("etag") == '"v1"'
        c.request("GET", "/echo?after=1")
        r2 = c.read_response()
        assert r2.status == 200 and r2.json()["target"] == "/echo?after=1", r2


# -- HTTP/1.0 ----------------------------------------------------------------


def test_http10_gets_11_status_line_and_close(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(b"GET /echo HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.version == "HTTP/1.1" and r.status == 200, r
        assert r.complete
        assert r.json()["target"] == "/echo"
        assert c.is_closed(5), "HTTP/1.0 without keep-alive must be closed after the response"


def test_http10_keep_alive(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        for i in range(3):
            c.send(f"GET /echo?i={i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/echo?i={i}", r
            assert r.framing == "length", "a kept-alive 1.0 response needs a Content-Length"
            assert "keep-alive" in conn_tokens(r.headers_all("connection")), r.headers
        assert not c.is_closed(0.3)


@pytest.mark.parametrize("upmode", ["close", "chunked"])
@pytest.mark.parametrize("keepalive", [False, True], ids=["plain", "keepalive"])
def test_http10_unknown_length_is_close_delimited(proxy, upmode, keepalive):
    g, up = proxy()
    with RawConn(g.port) as c:
        extra = "Connection: keep-alive\r\n" if keepalive else ""
        c.send(f"GET /bytes/50000?mode={upmode} HTTP/1.0\r\n{extra}\r\n".encode())
        r = c.read_response()
        assert r.status == 200, r
        assert not r.has("transfer-encoding"), "chunked must not be sent to an HTTP/1.0 client"
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(50000)
        if r.framing == "close" or not keepalive:
            assert c.is_closed(5)


def test_http11_unknown_length_becomes_chunked(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", "/bytes/50000?mode=close")
        r = c.read_response()
        assert r.status == 200 and r.complete, r
        assert r.framing == "chunked", r.headers
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(50000)
        c.request("GET", "/echo?after=1")
        assert c.read_response().json()["target"] == "/echo?after=1"


# -- keep-alive, pipelining, reuse ---------------------------------------------


def test_keep_alive_sequential_requests(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        for i in range(10):
            c.request("GET", f"/echo?i={i}")
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/echo?i={i}"
        c.request("GET", "/echo?last=1", [("Connection", "close")])
        r = c.read_response()
        assert r.status == 200
        assert c.is_closed(5), "Connection: close from the client must close after the response"


def test_pipelined_requests_answered_in_order(proxy):
    g, up = proxy()
    body5 = chunked([b"five-", b"chunked"])
    reqs = [
        ("GET", "/slow/0.3?n=1", RawConn.build("GET", "/slow/0.3?n=1")),
        ("POST", "/echo?n=2", RawConn.build("POST", "/echo?n=2", body=b"two")),
        ("GET", "/bytes/20000?mode=chunked&n=3", RawConn.build("GET", "/bytes/20000?mode=chunked&n=3")),
        ("HEAD", "/head-ok?n=4", RawConn.build("HEAD", "/head-ok?n=4")),
        ("POST", "/echo?n=5", RawConn.build("POST", "/echo?n=5", [("Transfer-Encoding", "chunked")], body=body5)),
        ("GET", "/status/204?n=6", RawConn.build("GET", "/status/204?n=6")),
        ("GET", "/echo?n=7", RawConn.build("GET", "/echo?n=7")),
    ]
    with RawConn(g.port) as c:
        c.send(b"".join(x[2] for x in reqs))
        rs = [c.read_response(m) for m, _, _ in reqs]
    assert rs[0].status == 200 and rs[0].json()["target"] == "/slow/0.3?n=1"
    assert rs[1].json()["target"] == "/echo?n=2" and rs[1].json()["body"] == "two"
    assert hashlib.sha256(rs[2].body).hexdigest() == pattern_sha256(20000)
    assert rs[3].status == 200 and rs[3].body == b"" and rs[3].header("x-head-ok") == "1"
    assert rs[4].json()["target"] == "/echo?n=5" and rs[4].json()["body"] == "five-chunked"
    assert rs[5].status == 204
    assert rs[6].json()["target"] == "/echo?n=7"
    assert sorted(up.targets()) == sorted(t for _, t, _ in reqs)


def test_pipelined_after_connection_close_is_not_served(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(RawConn.build("GET", "/echo?n=1")
               + RawConn.build("GET", "/echo?n=2", [("Connection", "close")])
               + RawConn.build("GET", "/echo?n=3"))
        assert c.read_response().json()["target"] == "/echo?n=1"
        assert c.read_response().json()["target"] == "/echo?n=2"
        assert c.is_closed(5), "nothing may be answered after a Connection: close request"
    assert sentinel(g, up) == ["/echo?n=1", "/echo?n=2", "/echo?sentinel=1"]


def test_upstream_connection_reused_one_client(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        for i in range(5):
            c.request("GET", f"/echo?i={i}")
            assert c.read_response().status == 200
    ids = up.conn_ids()
    assert len(ids) == 5 and len(set(ids)) == 1, f"upstream connection ids {ids}"
    assert up.connections == 1


def test_upstream_connection_reused_many_clients(proxy):
    g, up = proxy()
    for i in range(5):
        r = fetch(g.port, "GET", f"/echo?i={i}")
        assert r.status == 200
    ids = up.conn_ids()
    assert len(ids) == 5 and len(set(ids)) == 1, f"upstream connection ids {ids}"


def test_upstream_reuse_after_bodies_both_ways(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("POST", "/echo", body=b"x" * 10000)
        assert c.read_response().json()["body_len"] == 10000
        c.request("POST", "/echo", [("Transfer-Encoding", "chunked")], body=chunked([b"a" * 5000, b"b" * 5000]))
        assert c.read_response().json()["body_len"] == 10000
        c.request("GET", "/bytes/100000?mode=chunked")
        assert len(c.read_response().body) == 100000
        c.request("GET", "/bytes/100000?mode=cl")
        assert len(c.read_response().body) == 100000
        c.request("GET", "/echo")
        assert c.read_response().status == 200
    assert len(set(up.conn_ids())) == 1, up.conn_ids()


def test_concurrent_clients_get_their_own_responses(proxy):
    g, up = proxy(workers=2)
    errors = []

    def client(k):
        try:
            with RawConn(g.port) as c:
                for i in range(10):
                    body = f"client {k} request {i}".encode() * (i + 1)
                    c.request("POST", f"/echo?k={k}&i={i}", body=body)
                    e = c.read_response().json()
                    if e["target"] != f"/echo?k={k}&i={i}" or e["body"].encode() != body:
                        errors.append((k, i, e["target"]))
        except Exception as ex:  # noqa: BLE001
            errors.append((k, repr(ex)))

    ts = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    assert len(up.complete_requests()) == 160


def test_cli_workers_two(proxy):
    g, up = proxy(workers=None, cli_workers=2)
    for i in range(20):
        assert fetch(g.port, "GET", f"/echo?i={i}").status == 200


# -- Expect: 100-continue -------------------------------------------------------


def test_expect_100_continue(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100, f"expected 100 Continue before the body, got {interim}"
        assert interim.version == "HTTP/1.1"
        c.send(b"hello world")
        r = c.read_response("POST")
        assert r.status == 200, r
        e = r.json()
        assert e["body"] == "hello world"
        assert not hdr(e["headers"], "expect"), "Expect must not be forwarded"


def test_expect_100_continue_chunked(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100, interim
        c.send(chunked([b"abc", b"def"]))
        e = c.read_response("POST").json()
        assert e["body"] == "abcdef" and not hdr(e["headers"], "expect")


def test_expect_100_continue_body_sent_without_waiting(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
        r = c.read_response("POST")
        assert r.status == 200 and r.json()["body"] == "hello", r
        assert all(i.status == 100 for i in r.interim) and len(r.interim) <= 1
        c.request("GET", "/echo?after=1")
        assert c.read_response().json()["target"] == "/echo?after=1"


# -- trailers and body framing --------------------------------------------------


def test_request_trailers_dropped_by_default(proxy):
    g, up = proxy()
    body = chunked([b"hello ", b"trailers"], trailers=[("X-Trailer-A", "1"), ("X-Trailer-B", "two")])
    e = fetch(g.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body=body).json()
    assert e["body"] == "hello trailers" and e["framing"] == "chunked"
    assert e["trailers"] == [], e["trailers"]


def test_request_trailers_forwarded_when_listed(proxy):
    g, up = proxy(route={"forward_trailers": ["X-Trailer-A"]})
    body = chunked([b"hello ", b"trailers"],
                   trailers=[("X-Trailer-A", "1"), ("X-Trailer-B", "two"), ("Cookie", "a=b")])
    e = fetch(g.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body=body).json()
    assert e["body"] == "hello trailers" and e["framing"] == "chunked"
    assert e["trailers"] == [["X-Trailer-A", "1"]], e["trailers"]


def test_response_trailers_forwarded(proxy):
    g, up = proxy()
    r = fetch(g.port, "GET", "/trailers")
    assert r.status == 200 and r.framing == "chunked" and r.complete, r
    assert r.body == b"hello world"
    assert hdr(r.trailers, "x-checksum") == ["abc123"], r.trailers
    assert hdr(r.trailers, "x-trailer-two") == ["2"], r.trailers


def test_content_length_body_forwarded_with_length(proxy):
    g, up = proxy()
    body = pattern_bytes(300000)
    e = fetch(g.port, "POST", "/echo", body=body).json()
    assert e["framing"] == "length" and hdr(e["headers"], "content-length") == ["300000"]
    assert not hdr(e["headers"], "transfer-encoding")
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_body_reframed_chunked(proxy):
    g, up = proxy()
    pieces = [pattern_bytes(n, start=n) for n in (1, 17, 4096, 65536, 3)]
    wire = b""
    for p in pieces:
        wire += f"{len(p):X};ext=1\r\n".encode() + p + b"\r\n"
    wire += b"0\r\n\r\n"
    e = fetch(g.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body=wire).json()
    assert e["framing"] == "chunked", e
    assert not hdr(e["headers"], "content-length")
    assert e["body_sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_empty_chunked_body(proxy):
    g, up = proxy()
    e = fetch(g.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body=b"0\r\n\r\n").json()
    assert e["body_len"] == 0 and e["framing"] == "chunked", e


def test_zero_content_length(proxy):
    g, up = proxy()
    e = fetch(g.port, "POST", "/echo", body=b"").json()
    assert e["body_len"] == 0 and e["method"] == "POST"


def test_large_header_value_forwarded(proxy):
    g, up = proxy()
    v = "v" * 8000
    e = fetch(g.port, "GET", "/echo", [("X-Big", v)]).json()
    assert hdr(e["headers"], "x-big") == [v]


def test_response_body_sizes(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        for n, mode in [(0, "cl"), (1, "cl"), (65537, "cl"), (0, "chunked"), (1, "chunked"), (200001, "chunked")]:
            c.request("GET", f"/bytes/{n}?mode={mode}&chunk=1000")
            r = c.read_response()
            assert r.status == 200 and r.complete, r
            assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n), (n, mode)


@pytest.mark.parametrize("code", [100, 103])
def test_upstream_interim_response_then_final(proxy, code):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.request("GET", f"/echo?interim={code}")
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == f"/echo?interim={code}", r
        assert all(i.status == code for i in r.interim), r.interim
        c.request("GET", "/echo?after=1")
        assert c.read_response().json()["target"] == "/echo?after=1"


def test_http10_requests_still_reuse_upstream_connection(proxy):
    g, up = proxy()
    for i in range(3):
        with RawConn(g.port) as c:
            c.send(f"GET /echo?i={i} HTTP/1.0\r\n\r\n".encode())
            assert c.read_response().status == 200
    ids = up.conn_ids()
    assert len(ids) == 3 and len(set(ids)) == 1, ids


def test_many_concurrent_connections(proxy):
    g, up = proxy()
    conns = [RawConn(g.port) for _ in range(200)]
    try:
        for i, c in enumerate(conns):
            c.request("GET", f"/echo?c={i}")
        for i, c in enumerate(conns):
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/echo?c={i}", r
    finally:
        for c in conns:
            c.close()


def test_client_abort_mid_upload(proxy):
    g, up = proxy()
    c = RawConn(g.port)
    c.send(b"POST /hash HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n" + pattern_bytes(100000))
    c.close()
    r = fetch(g.port, "GET", "/echo?sentinel=1")
    assert r.status == 200, r
    assert up.targets() == ["/echo?sentinel=1"], up.requests
    assert g.alive()


def test_client_abort_mid_download(proxy):
    g, up = proxy()
    c = RawConn(g.port)
    c.request("GET", "/bytes/104857600?mode=cl")
    r = c.read_head()
    assert r.status == 200
    while len(c.buf) < 100000 and c._recv():
        pass
    c.close()
    for i in range(3):
        r = fetch(g.port, "GET", f"/echo?after={i}")
        assert r.status == 200 and r.json()["target"] == f"/echo?after={i}", r
        aborted = [x for x in up.requests if x.target.startswith("/bytes/")][0]
        assert r.json()["conn_id"] != aborted.conn_id, "reused the connection of an unfinished response"
    assert g.alive()


def test_deep_pipeline(proxy):
    g, up = proxy()
    n = 100
    with RawConn(g.port) as c:
        c.send(b"".join(RawConn.build("GET", f"/echo?p={i}") for i in range(n)))
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/echo?p={i}", (i, r)


def test_pool_idle_timeout_closes_upstream_connection(proxy):
    g, up = proxy(cluster={"idle_timeout": "1s"})
    r1 = fetch(g.port, "GET", "/echo?n=1")
    assert r1.status == 200
    assert up.wait_closed(1, timeout=8) >= 1, "pooled connection still open well after idle_timeout"
    r2 = fetch(g.port, "GET", "/echo?n=2")
    assert r2.status == 200 and r2.json()["conn_id"] != r1.json()["conn_id"]


def test_pool_max_idle(proxy):
    g, up = proxy(cluster={"max_idle": 1})
    conns = [RawConn(g.port) for _ in range(3)]
    for i, c in enumerate(conns):
        c.request("GET", f"/slow/0.5?c={i}")
    for c in conns:
        assert c.read_response().status == 200
    assert up.connections == 3, "three concurrent requests need three upstream connections"
    assert up.wait_closed(2, timeout=8) >= 2, "more than max_idle connections kept"
    time.sleep(0.3)
    assert up.closed_conns == 2, "the one idle connection allowed must stay open"
    for i in range(3):
        assert fetch(g.port, "GET", f"/echo?after={i}").status == 200
    assert up.connections == 3, "later sequential requests must reuse the kept connection"


def test_pool_per_worker_bounds_upstream_connections(proxy):
    """With two workers and sequential requests, at most one upstream
    connection per worker is ever needed."""
    g, up = proxy(workers=2)
    for i in range(20):
        assert fetch(g.port, "GET", f"/echo?i={i}").status == 200
    assert 1 <= up.connections <= 2, f"{up.connections} upstream connections for 20 sequential requests"
