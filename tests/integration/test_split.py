"""Framing with the bytes split anywhere.

Every request and response of a small corpus (Content-Length, chunked with
extensions and trailers, several chunks, zero-length, close-delimited,
100-continue, HEAD, 204/304) goes through one gatehouse with its bytes cut
at every position (and in a few random pieces), each piece its own send with
a pause so that gatehouse reads them apart. What arrives on the other side
is parsed by h11 (an independent, strict parser) and must mean what was
sent; the next pipelined message must come through intact.

The exhaustive versions live in-process (tests/unit/proxy/test_body.c); this
file proves the real read paths (conn.c, stream.c, router.c) keep no stale
framing between reads.
"""

import queue
import random
import re
import socket
import threading
import time

import h11
import pytest

from harness import make_config

PAUSE = 0.002  # between pieces: long enough that gatehouse reads them apart
TIMEOUT = 10.0

NEXT_REQ = b"GET /next HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n"
OK_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"

# ---- corpus ----

REQUESTS = {
    "content-length": (
        b"POST /up HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Length: 11\r\n"
        b"X-Note: a\r\n\r\nhello world"
    ),
    "chunked": (
        b"POST /up HTTP/1.1\r\nHost: gatehouse.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=\"v a\"\r\nhello\r\n"
        b"1\r\n \r\n"
        b"11;x\r\n0123456789abcdefg\r\n"
        b"0\r\nX-Check: yes\r\nX-Other: no\r\nAuthorization: Bearer x\r\n\r\n"
    ),
    "chunked-empty": (
        b"POST /up HTTP/1.1\r\nHost: gatehouse.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "no-body": b"GET /up?a=1 HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n",
    "expect-100": (
        b"PUT /up HTTP/1.1\r\nHost: gatehouse.test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 5\r\n\r\nabcde"
    ),
    "head": b"HEAD /up HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n",
}

# (response bytes, the client's request method)
RESPONSES = {
    "content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-R: 1\r\n\r\nhello", "GET"),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;e=1\r\nabc\r\n"
        b"10\r\n0123456789abcdef\r\n"
        b"1\r\nz\r\n"
        b"0\r\nX-T: 1\r\nSet-Cookie: a=b\r\n\r\n",
        "GET",
    ),
    "chunked-empty": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET"),
    "close-delimited": (b"HTTP/1.1 200 OK\r\nX-R: 2\r\n\r\nuntil the end", "GET"),
    "no-content": (b"HTTP/1.1 204 No Content\r\nX-R: 3\r\n\r\n", "GET"),
    "not-modified": (b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", "GET"),
    "head": (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD"),
    "interim": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET"),
}


def h11_events(role, data):
    """Every event h11 finds in data (a whole message plus maybe more)."""
    c = h11.Connection(role)
    c.receive_data(data)
    out = []
    while True:
        e = c.next_event()
        if e is h11.NEED_DATA or e is h11.PAUSED:
            break
        out.append(e)
        if isinstance(e, h11.EndOfMessage):
            break
    return out


def meaning(events):
    """What a message means: start line, body, trailers (framing aside)."""
    head = events[0]
    body = b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))
    eom = [e for e in events if isinstance(e, h11.EndOfMessage)]
    assert eom, f"message incomplete: {events}"
    trailers = sorted((bytes(n), bytes(v)) for n, v in eom[0].headers)
    if isinstance(head, h11.Request):
        return (bytes(head.method), bytes(head.target), body, trailers)
    return (head.status_code, body, trailers)


def head_fields(events):
    return {(bytes(n), bytes(v)) for n, v in events[0].headers}


def pieces_at(data, cuts):
    out, at = [], 0
    for c in sorted(cuts):
        out.append(data[at:c])
        at = c
    out.append(data[at:])
    return [p for p in out if p]


def send_pieces(sock, pieces):
    for i, p in enumerate(pieces):
        if i:
            time.sleep(PAUSE)
        sock.sendall(p)


def split_plans(msg, rng, randoms=4):
    """Every single cut; the head alone and then the rest cut at every
    position (a body read that holds only framing, once the head went on,
    is what used to go wrong); a byte at a time; a few random pieces."""
    n = len(msg)
    head_end = msg.index(b"\r\n\r\n") + 4
    plans = [[k] for k in range(1, n)]
    plans += [[head_end, k] for k in range(head_end + 1, n)]
    plans.append(list(range(1, n)))
    for _ in range(randoms):
        plans.append(rng.sample(range(1, n), min(n - 1, rng.randint(2, 8))))
    return plans


# ---- an h11 upstream that answers by script ----


class ScriptedUpstream:
    """Parses each request with h11 and records what it meant. /r is answered
    with the current script's bytes, cut into the script's pieces (closing
    when the response is close-delimited); anything else gets OK_RESP."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.seen = queue.Queue()
        self.script = None  # (pieces, close_after)
        self.errors = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            while True:
                p = h11.Connection(h11.SERVER)
                if buf:  # b"" would tell h11 the peer closed
                    p.receive_data(buf)
                events = []
                while True:
                    e = p.next_event()
                    if e is h11.NEED_DATA:
                        d = conn.recv(65536)
                        if not d:
                            return
                        p.receive_data(d)
                        continue
                    events.append(e)
                    if isinstance(e, h11.EndOfMessage):
                        break
                buf = p.trailing_data[0]
                self.seen.put(events)
                if events[0].target == b"/r" and self.script is not None:
                    pieces, close_after = self.script
                    send_pieces(conn, pieces)
                    if close_after:
                        return
                elif events[0].method == b"HEAD":
                    conn.sendall(OK_RESP[: OK_RESP.index(b"\r\n\r\n") + 4])
                else:
                    conn.sendall(OK_RESP)
        except h11.RemoteProtocolError as e:
            self.errors.append(repr(e))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.t.join(5)
        self.lsock.close()


@pytest.fixture(scope="module")
def split_proxy(tmp_path_factory):
    # One gatehouse for the whole module: the corpus is long and a
    # process per case would dominate the time.
    from harness import Gatehouse

    up = ScriptedUpstream()
    cfg = make_config([f"127.0.0.1:{up.port}"], route={"forward_trailers": ["x-check"]})
    cfg["workers"] = 1
    g = Gatehouse(cfg, tmp_path_factory.mktemp("split"), workers=1)
    g.wait_ready()
    yield g, up
    rc = g.stop()
    up.close()
    assert rc == 0, g.stderr_tail()
    assert not up.errors, up.errors


def client(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(sock, cl, label):
    """Reads one final response with the h11 client cl; returns its events."""
    events = []
    while True:
        e = cl.next_event()
        if e is h11.NEED_DATA:
            d = sock.recv(65536)
            cl.receive_data(d)  # b"" tells h11 of the close
            continue
        if isinstance(e, h11.InformationalResponse):
            continue
        if isinstance(e, h11.ConnectionClosed):
            raise AssertionError(f"{label}: connection closed mid-response: {events}")
        events.append(e)
        if isinstance(e, h11.EndOfMessage):
            return events


def client_state(raw):
    """An h11 client that believes it sent the request raw."""
    cl = h11.Connection(h11.CLIENT)
    for e in h11_events(h11.SERVER, raw):
        if isinstance(e, h11.Request):
            # h11 refuses Expect handling on its own: the headers only
            # matter for its choice of framing.
            cl.send(h11.Request(method=e.method, target=e.target, headers=list(e.headers)))
        elif isinstance(e, h11.Data):
            cl.send(e)
        elif isinstance(e, h11.EndOfMessage):
            cl.send(h11.EndOfMessage(headers=list(e.headers)))
    return cl


def expected_request(raw):
    method, target, body, trailers = meaning(h11_events(h11.SERVER, raw))
    # Trailers: only the route's forward_trailers (x-check) pass.
    trailers = [t for t in trailers if t[0] == b"x-check"]
    return (method, target, body, trailers)


def take_seen(up, label):
    try:
        return up.seen.get(timeout=TIMEOUT)
    except queue.Empty:
        raise AssertionError(f"{label}: the upstream saw no request") from None


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_split_everywhere(split_proxy, name):
    g, up = split_proxy
    raw = REQUESTS[name]
    want = expected_request(raw)
    sent_fields = head_fields(h11_events(h11.SERVER, raw))
    up.script = None
    rng = random.Random(name)
    for cuts in split_plans(raw, rng):
        label = f"{name} cut at {cuts}"
        with client(g.port) as s:
            cl = client_state(raw)
            send_pieces(s, pieces_at(raw + NEXT_REQ, cuts))
            got = take_seen(up, label)
            assert meaning(got) == want, label
            # End-to-end fields arrive as sent (framing may be re-made).
            fields = head_fields(got)
            for n, v in sent_fields:
                if n not in (b"transfer-encoding", b"content-length", b"expect", b"host"):
                    assert (n, v) in fields, f"{label}: {n!r} lost"
            res = read_response(s, cl, label)
            assert res[0].status_code == 200, label
            assert meaning(res)[1] == (b"" if name == "head" else b"next"), label
            # The pipelined request behind it is intact.
            nxt = take_seen(up, label + " (next)")
            assert meaning(nxt) == (b"GET", b"/next", b"", []), label
            cl.start_next_cycle()
            cl.send(h11.Request(method="GET", target="/next", headers=[("Host", "gatehouse.test")]))
            cl.send(h11.EndOfMessage())
            res = read_response(s, cl, label + " (next)")
            assert meaning(res) == (200, b"next", []), label
    assert up.seen.empty()


def expected_response(raw, method):
    c = h11.Connection(h11.CLIENT)
    c.send(h11.Request(method=method, target="/r", headers=[("Host", "u")]))
    c.send(h11.EndOfMessage())
    c.receive_data(raw)
    c.receive_data(b"")  # a close-delimited body ends at the close
    events = []
    while True:
        e = c.next_event()
        if isinstance(e, h11.InformationalResponse):
            continue
        events.append(e)
        if isinstance(e, h11.EndOfMessage):
            break
    status, body, trailers = meaning(events)
    # Response trailers pass, except names never forwarded as trailers.
    trailers = [t for t in trailers if t[0] != b"set-cookie"]
    return (status, body, trailers), events


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_response_split_everywhere(split_proxy, name):
    g, up = split_proxy
    raw, method = RESPONSES[name]
    want, oracle = expected_response(raw, method)
    close_after = name == "close-delimited"
    rng = random.Random(name)
    req = f"{method} /r HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n".encode()
    for cuts in split_plans(raw, rng):
        label = f"{name} cut at {cuts}"
        up.script = (pieces_at(raw, cuts), close_after)
        with client(g.port) as s:
            cl = client_state(req)
            s.sendall(req)
            take_seen(up, label)
            res = read_response(s, cl, label)
            assert meaning(res) == want, label
            for n, v in head_fields(oracle):
                if n not in (b"transfer-encoding", b"content-length", b"connection"):
                    assert (n, v) in head_fields(res), f"{label}: {n!r} lost"
            # The connection carries the next exchange intact.
            cl.start_next_cycle()
            cl.send(h11.Request(method="GET", target="/next", headers=[("Host", "gatehouse.test")]))
            cl.send(h11.EndOfMessage())
            s.sendall(NEXT_REQ)
            take_seen(up, label + " (next)")
            res = read_response(s, cl, label + " (next)")
            assert meaning(res) == (200, b"next", []), label
    up.script = None
    assert up.seen.empty()


# ---- trailers and the fields filters set ----


def test_trailer_named_like_a_filter_field_is_refused_at_load(tmp_path):
    """forward_trailers may not name a field the route's JWT provider sets
    (claims_to_headers, payload_header) or takes a token from: a client's
    trailer of that name would reach an upstream that merges trailers as a
    forged identity. The error names the place in the file."""
    import subprocess

    from harness import free_port, gatehouse_bin, to_yaml
    from jwt_util import provider, route, rsa_key

    def validate(trailers):
        p = provider(keys=[rsa_key()], claims_to_headers={"sub": "x-user"}, payload_header="x-jwt",
                     **{"from": [{"header": "x-token"}]})
        cfg = make_config(["127.0.0.1:9"], routes=[route("r", "/", {"any": ["corp"]},
                                                         forward_trailers=trailers)])
        cfg["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
        cfg["providers"] = {"jwt": {"corp": p}}
        f = tmp_path / "gatehouse.yaml"
        f.write_text(to_yaml(cfg) + "\n")
        r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(f)], capture_output=True,
                           text=True, timeout=20, stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout + r.stderr

    assert validate(["x-check"])[0] == 0
    # Underscore spellings too: CGI-style upstreams read x_user as x-user.
    for name in ("X-User", "x-jwt", "x-token", "x_user", "X_Jwt", "x_token"):
        rc, out = validate(["x-check", name])
        assert rc == 1, out
        assert re.search(r"gatehouse\.yaml:\d+:\d+: trailer '%s' names a field provider 'corp'" % name,
                         out), out


# ---- heads in pieces ----


def test_head_in_small_pieces(split_proxy):
    """An 18 KiB head in 47-byte pieces arrives whole."""
    g, up = split_proxy
    up.script = None
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 190) for i in range(90))
    raw = b"GET /up HTTP/1.1\r\nHost: gatehouse.test\r\n" + fields + b"\r\n"
    with client(g.port) as s:
        cl = client_state(raw)
        send_pieces(s, [raw[i : i + 47] for i in range(0, len(raw), 47)])
        got = take_seen(up, "small pieces")
        assert meaning(got) == (b"GET", b"/up", b"", [])
        assert (b"x-f89", b"v" * 190) in head_fields(got)
        assert read_response(s, cl, "small pieces")[0].status_code == 200


def test_long_target_refused_before_the_head_ends(split_proxy):
    """A request-target past max_uri is a 414 as soon as it passes the
    limit, without the rest of the head (the parser is not left waiting
    for a blank line)."""
    g, up = split_proxy
    with client(g.port) as s:
        s.sendall(b"GET /" + b"a" * 9000)  # default max_uri: 8 KiB; no line end yet
        cl = h11.Connection(h11.CLIENT)
        cl.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        res = read_response(s, cl, "long target")
        assert res[0].status_code == 414, res


def test_not_http_refused_at_once(split_proxy):
    """Bytes that are no HTTP (a TLS ClientHello) are a 400 at once, not a
    408 once the header timeout passed (the parser waiting for a blank
    line that never comes)."""
    g, up = split_proxy
    with client(g.port) as s:
        s.sendall(bytes.fromhex("16030100a5010000a10303") + bytes(32))
        cl = h11.Connection(h11.CLIENT)
        cl.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        res = read_response(s, cl, "tls hello")
        assert res[0].status_code == 400, res
