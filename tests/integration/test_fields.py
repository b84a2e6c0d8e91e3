"""Fields gatehouse relies on (docs/http.md, "Field classes"): Connection
never removes them, framing is gatehouse's own both ways, absolute-form
authorities and Host are validated, Authorization is a singleton, upgrades
and CONNECT are refused, forwarding fields are believed only from
trusted_proxies, and a filter's header edits are never lost. Every case
asserts on what the upstream received, not only on the status."""

import socket
import subprocess
import threading

import h11
import pytest

from harness import RawConn, assert_refusal, fetch, free_port, gatehouse_bin, make_config, to_yaml
from jwt_util import mint, provider, route, rsa_key, start as jwt_start
from ops_util import wait_lines


def one(up, marker):
    reqs = [r for r in up.complete_requests() if marker in r.target]
    assert len(reqs) == 1, reqs
    return reqs[0]


def refused(g, up, raw, status, code):
    """raw is refused with status and the connection closed; a sentinel then
    shows the upstream got nothing from raw."""
    with RawConn(g.port) as c:
        c.send(raw)
        assert_refusal(c.read_response(), status, code)
        assert c.is_closed(5)
    assert fetch(g.port, "GET", "/echo?sentinel=1").status == 200
    assert up.targets(complete_only=False) == ["/echo?sentinel=1"], up.requests


# -- Connection ---------------------------------------------------------------


def test_connection_never_removes_fields_gatehouse_relies_on(proxy):
    """Connection naming host, framing, credentials or forwarding fields is
    ignored for them: the upstream gets the request gatehouse checked."""
    g, up = proxy()
    names = "host, content-length, transfer-encoding, authorization, cookie, x-request-id, x-a"
    raw = RawConn.build("POST", "/echo?m=conn", host="a.test", body=b"hello",
                        headers=[("Connection", names), ("Authorization", "Basic dTpw"),
                                 ("Cookie", "s=1"), ("X-A", "gone"), ("X-B", "kept")])
    with RawConn(g.port) as c:
        c.send(raw)
        assert c.read_response().status == 200
    r = one(up, "m=conn")
    assert r.header("host") == "a.test"
    assert r.header("authorization") == "Basic dTpw"
    assert r.header("cookie") == "s=1"
    assert (r.framing, r.body) == ("length", b"hello")
    assert r.header("content-length") == "5"
    assert not r.has("x-a") and r.header("x-b") == "kept"
    assert not r.has("connection")


def test_every_connection_token_is_hop_by_hop(proxy):
    """No cap: with 40 listed fields (over two Connection lines) none
    reaches the upstream; the 17th used to."""
    g, up = proxy()
    names = [f"x-h{i}" for i in range(40)]
    hs = [("Connection", ", ".join(names[:20])), ("Connection", ",".join(names[20:]))]
    hs += [(n, "v") for n in names] + [("X-Keep", "1")]
    assert fetch(g.port, "GET", "/echo?m=many", hs).status == 200
    r = one(up, "m=many")
    assert [k for k, _ in r.headers if k.lower().startswith("x-h")] == []
    assert r.header("x-keep") == "1"


@pytest.mark.parametrize("value", ["x-a x-b", "close/1", '"x-a"', "x-a;q=1"])
def test_malformed_connection_refused(proxy, value):
    """One tokenizer: a list two readers could split differently is 400."""
    g, up = proxy()
    refused(g, up, RawConn.build("GET", "/echo", host="a", headers=[("Connection", value), ("X-A", "1")]),
            400, "bad_request")


class FixedUpstream:
    """Answers every request on a connection with the same raw bytes, then
    closes. Records the raw request heads."""

    def __init__(self, response):
        self.response = response
        self.heads = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with s:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.heads.append(data)
                s.sendall(self.response)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass

    def close(self):
        self.lsock.close()


def h11_response(data, method=b"GET"):
    """The response as a strict HTTP/1.1 client reads it: (status, headers,
    body, complete)."""
    c = h11.Connection(h11.CLIENT)
    c.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    c.send(h11.EndOfMessage())
    c.receive_data(data)
    status, headers, body, done = None, None, b"", False
    while True:
        ev = c.next_event()
        if isinstance(ev, h11.Response):
            status, headers = ev.status_code, ev.headers
        elif isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            done = True
            break
        elif ev is h11.NEED_DATA or isinstance(ev, h11.ConnectionClosed):
            break
    return status, headers, body, done


@pytest.mark.parametrize("framing,body", [
    (b"Content-Length: 5\r\n", b"hello"),
    (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    (b"Content-Length: 0\r\n", b""),
])
@pytest.mark.parametrize("conn", [b"content-length", b"transfer-encoding", b"content-length, transfer-encoding"])
def test_response_framing_survives_connection(gatehouse, framing, body, conn):
    """An upstream's Connection naming its framing field must not leave the
    client without one: gatehouse always writes Content-Length or chunked,
    so the client's reading ends where the body does and the connection
    stays usable."""
    up = FixedUpstream(b"HTTP/1.1 200 OK\r\nConnection: " + conn + b"\r\n" + framing + b"\r\n" + body)
    try:
        g = gatehouse(make_config([up.port]))
        with RawConn(g.port) as c:
            c.send(RawConn.build("GET", "/x", host="a"))
            raw = b""
            want = b"hello" if b"hello" in body else b""
            status = None
            while True:
                chunk = c.sock.recv(65536)
                assert chunk, f"connection closed before the response ended: {raw!r}"
                raw += chunk
                status, headers, got, done = h11_response(raw)
                if done:
                    break
            assert status == 200 and got == want, raw
            names = [k for k, _ in headers]
            assert (b"content-length" in names) != (b"transfer-encoding" in names), raw
            assert (dict(headers).get(b"connection") or b"") != b"close", raw
            # The connection still works: the next request gets its answer.
            c.send(RawConn.build("GET", "/y", host="a"))
            assert c.read_response().status == 200
    finally:
        up.close()


# -- Content-Length: 0, upgrades, CONNECT ------------------------------------


@pytest.mark.parametrize("method,headers,want", [
    ("POST", [("Content-Length", "0")], "0"),
    ("PUT", [("Content-Length", "0")], "0"),
    ("PATCH", [], "0"),
    ("POST", [], "0"),
    ("GET", [("Content-Length", "0")], "0"),
    ("GET", [], None),
    ("DELETE", [], None),
])
def test_empty_body_framing_forwarded(proxy, method, headers, want):
    g, up = proxy()
    raw = RawConn.build(method, "/echo?m=empty", host="a", headers=headers)
    with RawConn(g.port) as c:
        c.send(raw)
        assert c.read_response(method=method).status == 200
    r = one(up, "m=empty")
    assert r.headers_all("content-length") == ([want] if want else [])
    assert not r.has("transfer-encoding") and r.body_len == 0


def test_h2c_upgrade_is_ignored(proxy):
    """RFC 9113 3.1: the server may answer in HTTP/1.1. Upgrade and
    HTTP2-Settings never reach the upstream, even when Connection does not
    name HTTP2-Settings."""
    g, up = proxy()
    hs = [("Connection", "Upgrade"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA")]
    r = fetch(g.port, "GET", "/echo?m=h2c", hs)
    assert r.status == 200 and r.header("upgrade") is None
    u = one(up, "m=h2c")
    assert not u.has("upgrade") and not u.has("http2-settings") and not u.has("connection")


@pytest.mark.parametrize("upgrade", ["websocket", "h2c, websocket", "WebSocket/13", "h2"])
def test_other_upgrades_refused(proxy, upgrade):
    g, up = proxy()
    raw = RawConn.build("GET", "/echo", host="a",
                        headers=[("Connection", "Upgrade"), ("Upgrade", upgrade),
                                 ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                 ("Sec-WebSocket-Version", "13")])
    refused(g, up, raw, 501, "not_implemented")


def test_connect_refused(proxy):
    g, up = proxy()
    refused(g, up, b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n", 501, "not_implemented")


# -- targets and Host ---------------------------------------------------------


@pytest.mark.parametrize("target", [
    "http://user:pw@a.test/echo",
    "http://@a.test/echo",
    "http://a.test@evil.test/echo",
    "http:///echo",
    "http://a%2etest/echo",
    "http://a.test:99999/echo",
    "http://a.test:8x/echo",
    "http://[::1/echo",
    "http://[zz]/echo",
    "ftp://a.test/echo",
    "foo:bar",
])
def test_bad_absolute_form_refused(proxy, target):
    g, up = proxy()
    refused(g, up, f"GET {target} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode(), 400, "bad_request")


@pytest.mark.parametrize("host", ["a.test:65536", "a.test:123456", "a%2etest", "[::1"])
def test_bad_host_refused(proxy, host):
    g, up = proxy()
    refused(g, up, f"GET /echo HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), 400, "bad_request")


def test_absolute_form_authority_overrides_host(proxy):
    """RFC 9112 3.2.2: the authority replaces Host; the upstream gets one
    Host built from it and an origin-form target."""
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(b"GET HTTP://API.test:8080/echo?m=abs HTTP/1.1\r\nHost: other.test\r\n\r\n")
        assert c.read_response().status == 200
    r = one(up, "m=abs")
    assert r.target == "/echo?m=abs"
    assert r.headers_all("host") == ["API.test:8080"]
    assert r.header("x-forwarded-host") == "API.test:8080"


@pytest.mark.parametrize("host", ["[::1]:80", "127.0.0.1", "a-b.c_d~e:1"])
def test_valid_hosts_forwarded(proxy, host):
    g, up = proxy()
    assert fetch(g.port, "GET", "/echo?m=host", [("Host", host)]).status == 200
    assert one(up, "m=host").headers_all("host") == [host]


def test_http10_without_host_gets_endpoint_host(proxy):
    g, up = proxy()
    with RawConn(g.port) as c:
        c.send(b"GET /echo?m=h10 HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200
    r = one(up, "m=h10")
    assert r.version == "HTTP/1.1"
    assert r.headers_all("host") == [f"127.0.0.1:{up.port}"]


def test_http10_without_host_gets_cluster_default_host(proxy):
    g, up = proxy(cluster={"default_host": "app.internal:8443"})
    with RawConn(g.port) as c:
        c.send(b"GET /echo?m=dh1 HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200
        c2 = RawConn(g.port)
        c2.send(b"GET /echo?m=dh2 HTTP/1.0\r\nHost: given.test\r\n\r\n")
        assert c2.read_response().status == 200
        c2.close()
    assert one(up, "m=dh1").headers_all("host") == ["app.internal:8443"]
    assert one(up, "m=dh2").headers_all("host") == ["given.test"]


# -- Authorization ------------------------------------------------------------


@pytest.mark.parametrize("pair", [
    ("Bearer a", "Basic YWRtaW46YWRtaW4="),
    ("Basic YWRtaW46YWRtaW4=", "Basic YWRtaW46YWRtaW4="),
    ("Bearer a", ""),
])
def test_two_authorization_fields_refused_without_authn(proxy, pair):
    g, up = proxy()
    raw = RawConn.build("GET", "/echo", host="a", headers=[("Authorization", pair[0]), ("authorization", pair[1])])
    refused(g, up, raw, 400, "bad_request")


@pytest.mark.parametrize("pair", [
    ("AUTHORIZATION", "authorization"),
    ("aUtHoRiZaTiOn", "Authorization"),
    ("authorizatioN", "AUTHORIZATION"),
])
def test_two_authorization_fields_in_any_case_refused(proxy, pair):
    """The singleton check reads the name in any ASCII case (two words
    compared with bit 5 set: every spelling must still count)."""
    g, up = proxy()
    raw = RawConn.build("GET", "/echo", host="a",
                        headers=[(pair[0], "Bearer a"), (pair[1], "Basic YWRtaW46YWRtaW4=")])
    refused(g, up, raw, 400, "bad_request")


@pytest.mark.parametrize("name", ["authorizatiom", "Authorisation", "authorization_",
                                  "authorizatio~", "authorizationn", "Authorizatio"])
def test_names_near_authorization_are_not_it(proxy, name):
    """Thirteen-byte names one bit away from "authorization" (and names one
    byte longer or shorter) are other fields: beside an Authorization they
    are forwarded, not refused as a second one."""
    g, up = proxy()
    r = fetch(g.port, "GET", "/echo", [("Authorization", "Bearer a"), (name, "x")])
    assert r.status == 200, r
    got = up.complete_requests()[-1]
    names = [n.lower() for n, _ in got.headers]
    assert name.lower() in names and names.count("authorization") == 1, got.headers


def test_valid_bearer_and_basic_refused_on_authn_route(gatehouse, upstream):
    """Bearer <valid> + Basic admin:admin used to be authenticated on the
    Bearer token while the upstream received the Basic one."""
    key = rsa_key()
    up = upstream()
    g = jwt_start(gatehouse, up, {"corp": provider(keys=[key])})
    tok = mint(key)
    assert fetch(g.port, "GET", "/echo?m=ok", [("Authorization", f"Bearer {tok}")]).status == 200
    for hs in ([("Authorization", f"Bearer {tok}"), ("Authorization", "Basic YWRtaW46YWRtaW4=")],
               [("Authorization", "Basic YWRtaW46YWRtaW4="), ("Authorization", f"Bearer {tok}")]):
        r = fetch(g.port, "GET", "/echo?m=two", hs)
        assert_refusal(r, 400, "bad_request")
    assert up.targets(complete_only=False) == ["/echo?m=ok"]


# -- filter header edits -----------------------------------------------------


def test_more_than_64_dropped_headers_are_all_dropped(gatehouse, upstream):
    """The drop list had 64 entries; the 65th name (a forged identity
    header) reached the upstream."""
    key = rsa_key()
    up = upstream()
    c2h = {f"c{i}": f"x-id-{i}" for i in range(80)}
    g = jwt_start(gatehouse, up, {"corp": provider(keys=[key], claims_to_headers=c2h)})
    tok = mint(key, c5="five", c79="seventy-nine")
    forged = [(f"X-Id-{i}", "forged") for i in range(80)]
    assert fetch(g.port, "GET", "/echo?m=drop", forged + [("Authorization", f"Bearer {tok}")]).status == 200
    r = one(up, "m=drop")
    ids = {k.lower(): v for k, v in r.headers if k.lower().startswith("x-id-")}
    assert ids == {"x-id-5": "five", "x-id-79": "seventy-nine"}, ids


def validate(tmp_path, text):
    p = tmp_path / "gatehouse.yaml"
    p.write_text(text)
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("key,name", [
    ("claims_to_headers", "content-length"), ("claims_to_headers", "Transfer-Encoding"),
    ("claims_to_headers", "host"), ("claims_to_headers", "x-forwarded-for"),
    ("claims_to_headers", "authorization"), ("claims_to_headers", "cookie"),
    ("claims_to_headers", "connection"), ("claims_to_headers", "te"), ("claims_to_headers", "trailer"),
    ("claims_to_headers", "upgrade"), ("claims_to_headers", "proxy-authorization"),
    ("claims_to_headers", "forwarded"), ("claims_to_headers", "x-real-ip"), ("claims_to_headers", "via"),
    ("payload_header", "content-length"), ("payload_header", "x-forwarded-host"),
])
def test_header_setting_options_refuse_owned_names(tmp_path, key, name):
    """`sub: content-length` used to validate and send two Content-Length
    fields upstream. The error points at the name: file:line:col."""
    value = f"{{ sub: {name} }}" if key == "claims_to_headers" else name
    text = f"""listeners:
  - name: edge
    listen: 127.0.0.1:{free_port()}
    routes: [ {{ name: all, match: {{ path: {{ prefix: / }} }}, to: app, authn: corp }} ]
clusters:
  app: {{ endpoints: [127.0.0.1:9] }}
providers:
  jwt:
    corp:
      issuer: https://issuer.test
      audiences: [api]
      jwks: {{ uri: "http://127.0.0.1:9/jwks.json", insecure_http: true }}
      {key}: {value}
"""
    rc, out = validate(tmp_path, text)
    assert rc == 1, out
    line = 13
    col = text.splitlines()[line - 1].index(name) + 1
    assert f"gatehouse.yaml:{line}:{col}:" in out, out
    assert name.lower() in out.lower(), out


# -- forwarding fields and trusted_proxies ------------------------------------

FORGED = [("X-Forwarded-For", "10.9.9.9"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test"),
          ("Forwarded", "for=10.9.9.9;proto=https"), ("X-Real-IP", "10.9.9.9"), ("X-Request-Id", "forged-id")]


def test_forwarding_fields_from_untrusted_peer_are_replaced(gatehouse, upstream, tmp_path):
    up = upstream()
    log = tmp_path / "access.log"
    cfg = make_config([up], listener={"trusted_proxies": ["10.0.0.0/8", "::1"]})
    cfg["access_log"] = {"path": str(log)}
    g = gatehouse(cfg)
    assert fetch(g.port, "GET", "/echo?m=untrusted", [("Host", "real.test")] + FORGED).status == 200
    r = one(up, "m=untrusted")
    assert r.headers_all("x-forwarded-for") == ["127.0.0.1"]
    assert r.headers_all("x-forwarded-proto") == ["http"]
    assert r.headers_all("x-forwarded-host") == ["real.test"]
    assert r.headers_all("x-real-ip") == ["127.0.0.1"]
    assert not r.has("forwarded")
    rid = r.headers_all("x-request-id")
    assert len(rid) == 1 and rid[0] != "forged-id"
    recs = wait_lines(log, lambda rs: len(rs) >= 1)
    assert recs[0]["client"] == "127.0.0.1" and recs[0]["request_id"] == rid[0], recs


TRACE_FORGED = [("traceparent", "zz-forged"), ("tracestate", "forged=1"), ("b3", "1"),
                ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
                ("X-B3-SpanId", "a2fb4a1d1a96d312"), ("X-B3-Sampled", "1"), ("X-B3-Flags", "1"),
                ("X-B3-ParentSpanId", "0020000000000001"), ("x_b3_flags", "1"), ("X-B3-Debug", "1")]


def trace_names(r):
    return sorted(k.lower() for k, _ in r.headers
                  if k.lower() in ("traceparent", "tracestate", "b3")
                  or k.lower().replace("_", "-").startswith("x-b3-"))


@pytest.mark.parametrize("tracing", [False, True], ids=["tracing-off", "tracing-on"])
def test_trace_fields_from_untrusted_peer_never_forwarded(gatehouse, upstream, tracing):
    """Every trace-context field from a peer outside trusted_proxies is
    gatehouse's: X-B3-Flags (debug, forces sampling in a B3-aware upstream)
    and X-B3-ParentSpanId used to get through, and with tracing off every
    one of them did."""
    up = upstream()
    cfg = make_config([up], listener={"trusted_proxies": ["10.0.0.0/8"]})
    if tracing:
        cfg["tracing"] = {"collector": f"http://127.0.0.1:{free_port()}/v1/traces", "sampling": 0}
    g = gatehouse(cfg)
    assert fetch(g.port, "GET", "/echo?m=trace", TRACE_FORGED).status == 200
    r = one(up, "m=trace")
    if tracing:
        assert trace_names(r) == ["traceparent"], r.headers
        # gatehouse's own context: its span id, and its sampling decision
        # (sampling 0: the client's sampled and debug flags are not believed).
        tp = r.header("traceparent").split("-")
        assert len(tp) == 4 and tp[0] == "00" and tp[2] != "a2fb4a1d1a96d312" and tp[3] == "00", tp
    else:
        assert trace_names(r) == [], r.headers


def test_trace_fields_from_trusted_proxy_pass_with_tracing_off(gatehouse, upstream):
    """Without tracing, a trusted proxy's trace context reaches the upstream
    as it was sent (gatehouse adds no span of its own)."""
    up = upstream()
    g = gatehouse(make_config([up], listener={"trusted_proxies": ["127.0.0.1/32"]}))
    assert fetch(g.port, "GET", "/echo?m=trace", TRACE_FORGED).status == 200
    r = one(up, "m=trace")
    assert [(k.lower(), v) for k, v in r.headers if k.lower() in dict(
        (n.lower(), 1) for n, _ in TRACE_FORGED)] == [(k.lower(), v) for k, v in TRACE_FORGED]


@pytest.mark.parametrize("xff,client", [
    ("10.9.9.9", "10.9.9.9"),
    ("203.0.113.7, 10.1.1.1", "10.1.1.1"),          # 10.1.1.1 is not trusted: it is the client
    ("203.0.113.7, 192.168.0.5", "203.0.113.7"),    # 192.168.0.5 is a trusted hop: skipped
    ("192.168.0.1, 192.168.0.5", "192.168.0.1"),    # all trusted: the leftmost
    ("junk, 192.168.0.5", "192.168.0.5"),           # not an address: stop right of it
    ("2001:db8::1", "2001:db8::1"),
])
def test_forwarding_fields_from_trusted_proxy(gatehouse, upstream, tmp_path, xff, client):
    up = upstream()
    log = tmp_path / "access.log"
    cfg = make_config([up], listener={"trusted_proxies": ["127.0.0.1/32", "192.168.0.0/16"]})
    cfg["access_log"] = {"path": str(log)}
    g = gatehouse(cfg)
    hs = [("Host", "real.test"), ("X-Forwarded-For", xff), ("X-Forwarded-Proto", "https"),
          ("X-Forwarded-Host", "front.test"), ("Forwarded", "for=10.9.9.9"), ("X-Request-Id", "from-lb-1")]
    assert fetch(g.port, "GET", "/echo?m=trusted", hs).status == 200
    r = one(up, "m=trusted")
    assert r.headers_all("x-forwarded-for") == [f"{xff}, 127.0.0.1"]
    assert r.headers_all("x-forwarded-proto") == ["https"]
    assert r.headers_all("x-forwarded-host") == ["front.test"]
    assert r.headers_all("forwarded") == ["for=10.9.9.9"]
    assert r.headers_all("x-real-ip") == [client]
    assert r.headers_all("x-request-id") == ["from-lb-1"]
    recs = wait_lines(log, lambda rs: len(rs) >= 1)
    assert recs[0]["client"] == client, recs


def test_trusted_proxy_empty_x_forwarded_for(gatehouse, upstream):
    """An empty X-Forwarded-For from a trusted proxy is an empty list: the
    peer is appended without a leading ", "."""
    up = upstream()
    g = gatehouse(make_config([up], listener={"trusted_proxies": ["127.0.0.1"]}))
    assert fetch(g.port, "GET", "/echo?m=exff", [("X-Forwarded-For", "")]).status == 200
    assert one(up, "m=exff").headers_all("x-forwarded-for") == ["127.0.0.1"]


def test_trusted_proxy_x_real_ip_kept(gatehouse, upstream):
    up = upstream()
    g = gatehouse(make_config([up], listener={"trusted_proxies": ["127.0.0.1"]}))
    assert fetch(g.port, "GET", "/echo?m=rip", [("X-Real-IP", "10.2.3.4")]).status == 200
    r = one(up, "m=rip")
    assert r.headers_all("x-real-ip") == ["10.2.3.4"]
    assert r.headers_all("x-forwarded-for") == ["127.0.0.1"]


def test_underscore_and_other_forwarding_spellings_dropped(gatehouse, upstream):
    """CGI-style upstreams (WSGI, PHP, Rack) read x_user and x-user as one
    HTTP_X_USER: a client's underscore spelling of an identity or forwarding
    field must not arrive next to gatehouse's. Every X-Forwarded-* from an
    untrusted peer goes, not only the three gatehouse writes."""
    key = rsa_key()
    up = upstream()
    g = jwt_start(gatehouse, up, {"corp": provider(keys=[key], claims_to_headers={"sub": "x-user"})})
    tok = mint(key, sub="alice")
    forged = [("X_User", "admin"), ("x_forwarded_for", "10.9.9.9"), ("X-Forwarded-Port", "443"),
              ("X-Forwarded-Prefix", "/admin"), ("X_Real_IP", "10.9.9.9"), ("x_request_id", "forged"),
              ("X-Userx", "kept")]
    assert fetch(g.port, "GET", "/echo?m=us", forged + [("Authorization", f"Bearer {tok}")]).status == 200
    r = one(up, "m=us")
    names = [k.lower() for k, _ in r.headers]
    assert [v for k, v in r.headers if k.lower().replace("_", "-") == "x-user"] == ["alice"], r.headers
    assert not any("_" in n for n in names), r.headers
    assert "x-forwarded-port" not in names and "x-forwarded-prefix" not in names
    assert r.header("x-userx") == "kept"
    assert r.headers_all("x-forwarded-for") == ["127.0.0.1"]


def test_override_and_client_address_fields(gatehouse, upstream):
    """Fields that make an upstream serve another path or method than the one
    routed and authenticated (X-Original-URL, X-Rewrite-URL for IIS and
    Symfony; X-HTTP-Method-Override) and httpoxy's Proxy never go upstream;
    True-Client-IP and X-Client-IP are believed only from trusted proxies."""
    up = upstream()
    g = gatehouse(make_config([up], listener={"trusted_proxies": ["10.0.0.0/8"]}))
    forged = [("X-Original-URL", "/admin"), ("X_Rewrite_URL", "/admin"), ("Proxy", "http://evil.test:1"),
              ("X-HTTP-Method-Override", "DELETE"), ("True-Client-IP", "10.9.9.9"),
              ("X-Client-IP", "10.9.9.9"), ("X-Keep", "1")]
    assert fetch(g.port, "GET", "/echo?m=ov", forged).status == 200
    r = one(up, "m=ov")
    names = [k.lower().replace("_", "-") for k, _ in r.headers]
    for gone in ("x-original-url", "x-rewrite-url", "proxy", "x-http-method-override", "true-client-ip",
                 "x-client-ip"):
        assert gone not in names, (gone, r.headers)
    assert r.header("x-keep") == "1"
    # From a trusted proxy the client-address fields stay; the others never do.
    g2 = gatehouse(make_config([up], listener={"trusted_proxies": ["127.0.0.1"]}))
    assert fetch(g2.port, "GET", "/echo?m=ov2", forged).status == 200
    r = one(up, "m=ov2")
    names = [k.lower().replace("_", "-") for k, _ in r.headers]
    assert r.header("true-client-ip") == "10.9.9.9" and r.header("x-client-ip") == "10.9.9.9"
    for gone in ("x-original-url", "x-rewrite-url", "proxy", "x-http-method-override"):
        assert gone not in names, (gone, r.headers)


def test_connection_cannot_remove_a_field_a_filter_sets(gatehouse, upstream):
    """Connection naming x-user (set by claims_to_headers) removes only the
    client's x-user, which the filter drops anyway: the filter's value
    arrives."""
    key = rsa_key()
    up = upstream()
    g = jwt_start(gatehouse, up, {"corp": provider(keys=[key], claims_to_headers={"sub": "x-user"})})
    tok = mint(key, sub="alice")
    hs = [("Connection", "x-user, X_User"), ("X-User", "admin"), ("Authorization", f"Bearer {tok}")]
    assert fetch(g.port, "GET", "/echo?m=cf", hs).status == 200
    assert one(up, "m=cf").headers_all("x-user") == ["alice"]
