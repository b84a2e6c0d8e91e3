"""Self-tests of the test harness: the raw client against the Python upstream
directly (no gatehouse), so that a failure elsewhere is gatehouse's, not the
harness's."""

import hashlib

import pytest

from harness import (
    MiB,
    RawConn,
    chunked,
    fetch,
    make_config,
    pattern_bytes,
    pattern_chunks,
    pattern_sha256,
    to_yaml,
)


def test_pattern_is_deterministic_and_chunk_independent():
    a = b"".join(bytes(c) for c in pattern_chunks(200000, 65536))
    b = b"".join(bytes(c) for c in pattern_chunks(200000, 1000))
    assert a == b == pattern_bytes(200000)
    assert hashlib.sha256(a).hexdigest() == pattern_sha256(200000)
    assert pattern_bytes(10) != pattern_bytes(10, start=5)


def test_yaml_emitter_shapes():
    y = to_yaml(make_config(["127.0.0.1:1"], route={"match": {"host": ["*.a.org", "b"], "query": [{"name": "d", "exact": "1"}]}}))
    assert '- "*.a.org"' in y
    assert 'exact: "1"' in y
    assert "- 127.0.0.1:1" in y
    assert "    routes:\n      - name: all\n" in y


def test_echo_keepalive_and_records(upstream):
    up = upstream()
    with RawConn(up.port) as c:
        c.request("GET", "/echo?a=1", [("X-A", "1"), ("X-A", "2")])
        r1 = c.read_response()
        c.request("POST", "/echo", [("Content-Type", "text/plain")], body=b"hello")
        r2 = c.read_response()
    e1, e2 = r1.json(), r2.json()
    assert e1["target"] == "/echo?a=1"
    assert [v for k, v in e1["headers"] if k == "X-A"] == ["1", "2"]
    assert e2["body"] == "hello" and e2["framing"] == "length"
    assert e1["conn_id"] == e2["conn_id"] and (e1["index"], e2["index"]) == (0, 1)
    assert up.targets() == ["/echo?a=1", "/echo"]


def test_chunked_request_with_trailers(upstream):
    up = upstream()
    body = chunked([b"abc", b"defg"], trailers=[("X-T", "1")])
    r = fetch(up.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], body=body)
    e = r.json()
    assert e["body"] == "abcdefg" and e["framing"] == "chunked"
    assert e["trailers"] == [["X-T", "1"]]


@pytest.mark.parametrize("mode", ["cl", "chunked", "close"])
def test_bytes_modes(upstream, mode):
    up = upstream()
    r = fetch(up.port, "GET", f"/bytes/300000?mode={mode}&chunk=7000")
    assert r.status == 200 and r.complete
    assert r.framing == {"cl": "length", "chunked": "chunked", "close": "close"}[mode]
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(300000) == r.header("x-sha256")


def test_hash_large_upload_streaming(upstream):
    up = upstream()
    n = 20 * MiB
    with RawConn(up.port) as c:
        c.send(RawConn.build("POST", "/hash", [("Content-Length", str(n))]))
        for piece in pattern_chunks(n):
            c.send(piece)
        r = c.read_response()
    assert r.json() == {"sha256": pattern_sha256(n), "length": n, "framing": "length"}


@pytest.mark.parametrize("mode,framing", [("cl", "length"), ("chunked", "chunked")])
def test_die_mid_is_incomplete(upstream, mode, framing):
    up = upstream()
    with RawConn(up.port) as c:
        c.request("GET", f"/die-mid?mode={mode}")
        r = c.read_response()
    assert r.framing == framing and r.complete is False and len(r.body) == 1000


def test_trailers_head_status(upstream):
    up = upstream()
    with RawConn(up.port) as c:
        c.request("GET", "/trailers")
        r = c.read_response()
        assert r.body == b"hello world" and ("x-checksum", "abc123") in r.trailers
        c.request("HEAD", "/head-ok")
        r = c.read_response("HEAD")
        assert r.body == b"" and r.header("content-length") == "1234"
        c.request("HEAD", "/head-ok?mode=chunked")
        r = c.read_response("HEAD")
        assert r.body == b"" and r.header("transfer-encoding") == "chunked"
        for st in (204, 304):
            c.request("GET", f"/status/{st}")
            r = c.read_response()
            assert r.status == st and r.body == b""
        c.request("GET", "/echo")
        assert c.read_response().status == 200


def test_pipelined_and_drop_and_close(upstream):
    up = upstream()
    with RawConn(up.port) as c:
        c.send(RawConn.build("GET", "/slow/0.2?n=1") + RawConn.build("GET", "/echo?n=2"))
        assert c.read_response().json()["target"] == "/slow/0.2?n=1"
        assert c.read_response().json()["target"] == "/echo?n=2"
        c.request("GET", "/echo?close=1")
        r = c.read_response()
        assert r.header("connection") == "close"
        assert c.is_closed(2)
    with RawConn(up.port) as c:
        c.request("GET", "/drop")
        with pytest.raises(AssertionError):
            c.read_response()
    close_up = upstream(accept_mode="close")
    with RawConn(close_up.port) as c:
        assert c.is_closed(2)


def test_is_closed_detects_open_connection(upstream):
    up = upstream()
    with RawConn(up.port) as c:
        assert c.is_closed(0.3) is False


def test_bad_response_kinds_are_sent(upstream):
    up = upstream()
    with RawConn(up.port) as c:
        c.request("GET", "/bad-response?kind=garbage")
        with pytest.raises(AssertionError):
            c.read_response()
