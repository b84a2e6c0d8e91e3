"""Streaming: 100 MiB up and down, checked by sha256 on the fly, while
gatehouse's RSS (VmRSS) stays bounded; slow readers and slow upstream readers
must exert back-pressure instead of making gatehouse buffer.

The bound is $GATEHOUSE_RSS_LIMIT_MIB (default 64 MiB; not judged for a
sanitized build, GH_SANITIZED=1, unless that variable is set)."""

import hashlib
import socket
import struct
import threading
import time

import h11
import pytest

from harness import (
    MiB,
    RawConn,
    RssSampler,
    fetch,
    make_config,
    pattern_chunks,
    pattern_sha256,
    rss_limit_kib,
)

N = 100 * MiB


def assert_rss(g, rss):
    limit = rss_limit_kib()
    assert rss.samples > 0, "no RSS samples"
    if limit is None:
        return
    assert rss.max_kib < limit, f"gatehouse RSS peaked at {rss.max_kib} KiB (limit {limit} KiB)"


def upload(c, n, framing):
    if framing == "length":
        c.send(RawConn.build("POST", "/hash", [("Content-Length", str(n))]))
        for piece in pattern_chunks(n):
            c.send(piece)
    else:
        c.send(RawConn.build("POST", "/hash", [("Transfer-Encoding", "chunked")]))
        sizes = [65536, 1000, 30000, 65536, 7]
        i = 0
        off = 0
        while off < n:
            k = min(sizes[i % len(sizes)], n - off)
            data = b"".join(bytes(p) for p in pattern_chunks(k, start=off))
            c.send(b"%x\r\n" % k + data + b"\r\n")
            off += k
            i += 1
        c.send(b"0\r\n\r\n")


def download(c, r):
    h = hashlib.sha256()
    n = 0
    for piece in c.iter_body(r):
        h.update(piece)
        n += len(piece)
    return n, h.hexdigest()


def test_upload_100mib_content_length(proxy):
    g, up = proxy()
    with RssSampler(g) as rss, RawConn(g.port, timeout=30) as c:
        upload(c, N, "length")
        r = c.read_response("POST")
    assert r.status == 200, r
    assert r.json() == {"sha256": pattern_sha256(N), "length": N, "framing": "length"}
    assert_rss(g, rss)


def test_upload_100mib_chunked(proxy):
    g, up = proxy()
    with RssSampler(g) as rss, RawConn(g.port, timeout=30) as c:
        upload(c, N, "chunked")
        r = c.read_response("POST")
    assert r.status == 200, r
    assert r.json() == {"sha256": pattern_sha256(N), "length": N, "framing": "chunked"}
    assert_rss(g, rss)


def _download(g, mode, n, expect_framing):
    with RssSampler(g) as rss, RawConn(g.port, timeout=30) as c:
        c.request("GET", f"/bytes/{n}?mode={mode}")
        r = c.read_response(collect=False)
        assert r.status == 200, r
        assert r.framing == expect_framing, r.headers
        got, sha = download(c, r)
        assert r.complete, f"response ended early after {got} bytes"
        # The connection stays usable afterwards.
        if expect_framing != "close":
            c.request("GET", "/echo")
            assert c.read_response().status == 200
    assert got == n
    assert sha == pattern_sha256(n)
    return rss


def test_download_100mib_content_length(proxy):
    g, up = proxy()
    rss = _download(g, "cl", N, "length")
    assert_rss(g, rss)


def test_download_100mib_chunked(proxy):
    g, up = proxy()
    rss = _download(g, "chunked", N, "chunked")
    assert_rss(g, rss)


def test_download_close_delimited_rechunked(proxy):
    g, up = proxy()
    rss = _download(g, "close", 32 * MiB, "chunked")
    assert_rss(g, rss)


def test_slow_reader_backpressure(proxy):
    """The client stops reading for 3 s: gatehouse must stop reading from the
    upstream rather than buffer the rest of the 100 MiB."""
    g, up = proxy()
    with RssSampler(g) as rss:
        c = RawConn(g.port, timeout=30, rcvbuf=65536)
        c.request("GET", f"/bytes/{N}?mode=cl")
        r = c.read_head()
        assert r.status == 200, r
        time.sleep(3)
        sent_while_stalled = up.bytes_sent
        rss_while_stalled = rss.max_kib
        c._decide_framing(r, "GET")
        got, sha = download(c, r)
        c.close()
    assert got == N and sha == pattern_sha256(N)
    if rss_limit_kib() is not None:
        assert rss_while_stalled < rss_limit_kib(), f"RSS {rss_while_stalled} KiB while the client was stalled"
    assert sent_while_stalled < N, "the upstream could send everything while the client read nothing"
    assert_rss(g, rss)


def test_slow_upstream_reader_backpressure(proxy):
    """The upstream waits 3 s before reading a 100 MiB body: gatehouse must
    stop reading from the client rather than buffer it."""
    g, up = proxy()
    with RssSampler(g) as rss, RawConn(g.port, timeout=30) as c:
        c.send(RawConn.build("POST", "/hash?delay_body=3", [("Content-Length", str(N))]))
        for piece in pattern_chunks(N):
            c.send(piece)
        r = c.read_response("POST")
    assert r.status == 200, r
    assert r.json() == {"sha256": pattern_sha256(N), "length": N, "framing": "length"}
    assert_rss(g, rss)


def test_upload_and_download_same_connection(proxy):
    """Bodies both ways on one keep-alive connection: framing stays in sync."""
    g, up = proxy()
    n = 8 * MiB
    with RawConn(g.port, timeout=30) as c:
        for framing in ("length", "chunked"):
            upload(c, n, framing)
            assert c.read_response("POST").json()["sha256"] == pattern_sha256(n)
            c.request("GET", f"/bytes/{n}?mode={'cl' if framing == 'length' else 'chunked'}")
            r = c.read_response(collect=False)
            assert download(c, r) == (n, pattern_sha256(n))


# ---- half-close and cut-short bodies ----

HALF_CLOSE_BODIES = {
    "length": ([("Content-Length", "11")], b"hello world"),
    "chunked": ([("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("framing", sorted(HALF_CLOSE_BODIES))
@pytest.mark.parametrize("when", ["same-send", "after-body"])
def test_half_close_after_body_gets_response(proxy, framing, when):
    """shutdown(SHUT_WR) after a complete request with a body: the response
    still comes. same-send: the FIN leaves with the last body bytes, so
    gatehouse reads the EOF while the upstream connect is still under way
    and nothing of the body was pumped yet."""
    g, up = proxy()
    headers, body = HALF_CLOSE_BODIES[framing]
    c = RawConn(g.port)
    head = RawConn.build("POST", "/hash", headers)
    if when == "same-send":
        c.send(head + body)
    else:
        c.send(head + body[:-3])
        up.wait_requests(1, complete=False)
        c.send(body[-3:])
    c.sock.shutdown(socket.SHUT_WR)
    r = c.read_response("POST")
    assert r.status == 200, r
    assert r.json() == {"sha256": hashlib.sha256(b"hello world").hexdigest(), "length": 11, "framing": framing}
    assert c.is_closed()
    c.close()


@pytest.mark.parametrize("framing", sorted(HALF_CLOSE_BODIES))
def test_half_close_mid_body_is_not_forwarded_as_complete(proxy, framing):
    """A client that half-closes before its body is complete: the upstream
    never sees a complete request, and the client gets no response."""
    g, up = proxy()
    headers, body = HALF_CLOSE_BODIES[framing]
    c = RawConn(g.port)
    c.send(RawConn.build("POST", "/hash", headers) + body[:-4])
    c.sock.shutdown(socket.SHUT_WR)
    assert c.is_closed()
    assert bytes(c.buf) == b"", c.buf
    c.close()
    reqs = up.wait_requests(1, complete=False)
    assert not reqs[0].complete
    # Nothing was poisoned.
    assert fetch(g.port, "GET", "/echo").status == 200


def test_close_delimited_response_reset_is_truncated(gatehouse):
    """An upstream that sends a close-delimited body and then resets the
    connection (not a clean FIN): the client connection is cut; it never
    gets the last chunk that would make the body look complete."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(10)
    g = gatehouse(make_config([lsock.getsockname()[1]]))
    c = RawConn(g.port)
    c.request("GET", "/")
    u, _ = lsock.accept()
    u.settimeout(10)
    u.recv(65536)
    u.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial")
    r = c.read_head()
    assert r.status == 200 and r.header("transfer-encoding") == "chunked", r
    while b"partial" not in bytes(c.buf):  # the body bytes reached the client first
        assert c._recv(), c.buf
    u.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    u.close()  # RST
    while c._recv():  # to the end: gatehouse must close, not wait for more
        pass
    assert c.eof
    assert not bytes(c.buf).endswith(b"0\r\n\r\n"), c.buf
    # h11, judging what the client got, finds the body cut short.
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    parser.send(h11.EndOfMessage())
    parser.receive_data(r.raw_head + b"\r\n\r\n" + bytes(c.buf))
    parser.receive_data(b"")
    with pytest.raises(h11.RemoteProtocolError):
        while not isinstance(parser.next_event(), h11.EndOfMessage):
            pass
    c.close()
    lsock.close()


def test_close_delimited_response_reset_at_once_is_truncated(gatehouse):
    """The same with the reset right behind the data (one write, then the
    reset): libuv may report the end of such a connection as a clean EOF,
    and a close-delimited body must still not end with the last chunk. (A
    reset that discards the data before gatehouse reads it looks like no
    answer: a GET is then retried once, then 502.)"""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    stop = threading.Event()

    def serve():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                u, _ = lsock.accept()
            except socket.timeout:
                continue
            u.settimeout(10)
            try:
                u.recv(65536)
                u.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                u.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 3000)
            except OSError:
                pass
            u.close()  # RST right behind the bytes

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    g = gatehouse(make_config([lsock.getsockname()[1]]))
    try:
        for _ in range(30):
            c = RawConn(g.port)
            c.request("GET", "/")
            while c._recv():
                pass
            assert c.eof
            got = bytes(c.buf)
            assert not got.endswith(b"0\r\n\r\n"), got[:80] + b"..." + got[-40:]
            c.close()
    finally:
        stop.set()
        t.join()
        lsock.close()
