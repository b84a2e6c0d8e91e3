"""Streaming: 100 MiB up and down, checked by sha256 on the fly, while
gatehouse's RSS (VmRSS) stays bounded; slow readers and slow upstream readers
must exert back-pressure instead of making gatehouse buffer.

The bound is $GATEHOUSE_RSS_LIMIT_MIB (default 64 MiB; not judged for a
sanitized build, GH_SANITIZED=1, unless that variable is set)."""

import hashlib
import time

from harness import MiB, RawConn, RssSampler, pattern_chunks, pattern_sha256, rss_limit_kib

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
