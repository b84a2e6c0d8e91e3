"""TLS to upstreams (docs/tls.md): a cluster's `tls` against real TLS servers
on loopback (Python's ssl module, OpenSSL underneath, with certificates made
by the `openssl` command line): proxying, keep-alive reuse, session
resumption, every certificate check (wrong CA, wrong name, expired, IP
endpoints), the minimum version, client certificates, peers that stall or
reset mid-handshake or close without close_notify, large bodies both ways,
and refusals of bad `tls` settings at load."""

import hashlib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from harness import RawConn, assert_refusal, fetch, free_port, gatehouse_bin, make_config, pattern_bytes, pattern_sha256, to_yaml
from ops_util import wait_for
from tls_util import Pki, StallServer, TlsUpstream


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.server = p.issue("server", dns=("localhost", "up.test"), ips=("127.0.0.1",))
    p.wrong_host = p.issue("wronghost", dns=("elsewhere.test",), ips=())
    p.expired = p.issue("expired", expired=True)
    p.foreign = p.issue("foreign", ca="other-ca")
    p.client = p.issue("client", dns=(), ips=(), client=True)
    return p


@pytest.fixture
def tls_upstream(pki):
    servers = []

    def make(cert=None, **kw):
        cert = cert or pki.server
        u = TlsUpstream(cert[0], cert[1], **kw)
        servers.append(u)
        return u

    yield make
    for u in servers:
        u.stop()


def tls_config(up, pki, endpoint=None, **tls):
    t = {"ca_file": pki.ca}
    t.update(tls)
    ep = endpoint or f"localhost:{up.port}"
    return make_config([ep], cluster={"tls": t, "connect_timeout": "2s"})


def test_proxies_over_tls_with_keepalive_reuse(gatehouse, tls_upstream, pki):
    up = tls_upstream()
    g = gatehouse(tls_config(up, pki))
    with RawConn(g.port) as c:
        for i in range(5):
            c.request("GET", f"/echo?i={i}")
            r = c.read_response()
            assert r.status == 200, r
            assert r.json()["target"] == f"/echo?i={i}"
    # One TLS connection carried all five.
    assert up.connections == 1, up.handshakes
    hs = up.done_handshakes()
    assert len(hs) == 1 and hs[0].alpn == "http/1.1" and hs[0].sni == "localhost", hs
    assert hs[0].version == "TLSv1.3"


def test_sni_setting_is_sent_and_verified(gatehouse, tls_upstream, pki):
    up = tls_upstream()
    g = gatehouse(tls_config(up, pki, endpoint=f"127.0.0.1:{up.port}", sni="up.test"))
    assert fetch(g.port, "GET", "/echo").status == 200
    assert up.done_handshakes()[0].sni == "up.test"


def test_ip_endpoint_sends_no_sni_and_checks_the_address(gatehouse, tls_upstream, pki):
    up = tls_upstream()
    g = gatehouse(tls_config(up, pki, endpoint=f"127.0.0.1:{up.port}"))
    assert fetch(g.port, "GET", "/echo").status == 200
    assert up.done_handshakes()[0].sni is None
    # A certificate without that address is refused.
    up2 = tls_upstream(pki.wrong_host)
    g2 = gatehouse(tls_config(up2, pki, endpoint=f"127.0.0.1:{up2.port}"))
    r = fetch(g2.port, "GET", "/echo")
    doc = assert_refusal(r, 502, "bad_gateway")
    assert "certificate verify failed" in doc["detail"], doc
    assert up2.complete_requests() == []


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_session_resumption(gatehouse, tls_upstream, pki, version):
    v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    up = tls_upstream(max_version=v)
    g = gatehouse(tls_config(up, pki))
    # close=1: the upstream ends each connection, so each request makes a
    # new one, which offers the session the previous one got.
    for i in range(4):
        r = fetch(g.port, "GET", f"/echo?close=1&i={i}")
        assert r.status == 200, r
    up.wait_closed(4)
    hs = up.done_handshakes()
    assert len(hs) == 4, up.handshakes
    assert all(h.version == f"TLSv{version}" for h in hs), hs
    assert hs[0].reused is False
    assert all(h.reused for h in hs[1:]), hs


def _refused(gatehouse, up, pki, *words, **tls):
    g = gatehouse(tls_config(up, pki, **tls))
    r = fetch(g.port, "GET", "/echo")
    doc = assert_refusal(r, 502, "bad_gateway")
    for w in words:
        assert w in doc["detail"], doc
        assert w in g.stderr, g.stderr_tail()
    assert up.complete_requests() == [], "a request went to an unverified upstream"
    return doc


def test_unknown_ca_refused(gatehouse, tls_upstream, pki):
    up = tls_upstream(pki.foreign)
    _refused(gatehouse, up, pki, "certificate verify failed", "unable to get local issuer certificate")
    # The server's thread records its side of the failed handshake when its
    # read fails, which may be after gatehouse has answered the client.
    wait_for(lambda: len(up.failed_handshakes()) >= 1 or None, 5, "the server's failed handshake")


def test_wrong_host_name_refused(gatehouse, tls_upstream, pki):
    up = tls_upstream(pki.wrong_host)
    _refused(gatehouse, up, pki, "certificate verify failed", "hostname mismatch")


def test_sni_mismatch_refused(gatehouse, tls_upstream, pki):
    up = tls_upstream()
    _refused(gatehouse, up, pki, "hostname mismatch", sni="other.test")


def test_expired_certificate_refused(gatehouse, tls_upstream, pki):
    up = tls_upstream(pki.expired)
    _refused(gatehouse, up, pki, "certificate verify failed", "certificate has expired")


def test_system_store_does_not_trust_test_ca(gatehouse, tls_upstream, pki):
    """No ca_file: OpenSSL's default paths (the system store), which do not
    hold the test CA."""
    up = tls_upstream()
    g = gatehouse(make_config([f"localhost:{up.port}"], cluster={"tls": {}}))
    doc = assert_refusal(fetch(g.port, "GET", "/echo"), 502, "bad_gateway")
    assert "certificate verify failed" in doc["detail"]


def test_insecure_skip_verify_accepts_any_certificate(gatehouse, tls_upstream, pki):
    up = tls_upstream(pki.foreign)
    g = gatehouse(make_config([f"localhost:{up.port}"],
                              cluster={"tls": {"verify": False, "insecure_skip_verify": True}}))
    assert fetch(g.port, "GET", "/echo").status == 200
    assert "verify: false" in g.stderr


def test_min_version_13_refuses_a_12_server(gatehouse, tls_upstream, pki):
    up = tls_upstream(max_version=ssl.TLSVersion.TLSv1_2)
    _refused(gatehouse, up, pki, "TLS handshake", min_version="1.3")


def test_min_version_12_default_takes_a_12_server(gatehouse, tls_upstream, pki):
    up = tls_upstream(max_version=ssl.TLSVersion.TLSv1_2)
    g = gatehouse(tls_config(up, pki))
    assert fetch(g.port, "GET", "/echo").status == 200
    assert up.done_handshakes()[0].version == "TLSv1.2"


def test_client_certificate(gatehouse, tls_upstream, pki):
    up = tls_upstream(client_ca=pki.ca)
    g = gatehouse(tls_config(up, pki, cert_file=pki.client[0], key_file=pki.client[1]))
    assert fetch(g.port, "GET", "/echo").status == 200
    assert up.done_handshakes()[0].peer_cn == "client"


def test_server_requiring_a_client_certificate_refuses_none(gatehouse, tls_upstream, pki):
    up = tls_upstream(client_ca=pki.ca)
    g = gatehouse(tls_config(up, pki))
    r = fetch(g.port, "GET", "/echo")
    # TLS 1.3: the client's handshake is done before the server checks its
    # certificate; the refusal (an alert) comes as the request is read.
    assert_refusal(r, 502, "bad_gateway")
    assert up.complete_requests() == []
    assert up.done_handshakes() == []


def test_stall_mid_handshake_times_out(gatehouse):
    s = StallServer()
    try:
        g = gatehouse(make_config([f"localhost:{s.port}"],
                                  cluster={"tls": {}, "connect_timeout": "500ms"}))
        doc = assert_refusal(fetch(g.port, "GET", "/echo"), 504, "gateway_timeout")
        assert "timed out" in doc["detail"]
        assert s.hello_bytes > 0, "no ClientHello reached the server"
    finally:
        s.stop()


def test_reset_mid_handshake(gatehouse):
    s = StallServer(reset=True)
    try:
        g = gatehouse(make_config([f"localhost:{s.port}"], cluster={"tls": {}}))
        doc = assert_refusal(fetch(g.port, "GET", "/echo"), 502, "bad_gateway")
        assert "TLS handshake" in doc["detail"], doc
    finally:
        s.stop()


def test_plain_http_server_is_a_handshake_failure(gatehouse):
    """A plain HTTP server answers the ClientHello with a 400 and closes."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(10)

    def serve():
        try:
            c, _ = lsock.accept()
            c.recv(65536)
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            c.close()
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        g = gatehouse(make_config([f"localhost:{lsock.getsockname()[1]}"], cluster={"tls": {}}))
        doc = assert_refusal(fetch(g.port, "GET", "/echo"), 502, "bad_gateway")
        assert "TLS handshake" in doc["detail"], doc
    finally:
        t.join(10)
        lsock.close()


def test_close_delimited_body_without_close_notify_is_truncated(gatehouse, tls_upstream, pki):
    up = tls_upstream()
    g = gatehouse(tls_config(up, pki))
    with RawConn(g.port) as c:
        c.request("GET", "/bytes/300000?mode=close")
        r = c.read_response()
        assert r.status == 200, r
        assert not r.complete, "a body cut without close_notify looked complete"
        assert c.eof
    assert "closed the connection without close_notify" in g.stderr, g.stderr_tail()
    # With close_notify the same body ends cleanly.
    with RawConn(g.port) as c:
        c.request("GET", "/bytes/300000?mode=close&notify=1")
        r = c.read_response()
        assert r.status == 200 and r.complete, r
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(300000)


def test_die_mid_content_length_over_tls(gatehouse, tls_upstream, pki):
    up = tls_upstream()
    g = gatehouse(tls_config(up, pki))
    with RawConn(g.port) as c:
        c.request("GET", "/die-mid?mode=cl")
        r = c.read_response()
        assert r.status == 200 and not r.complete and c.eof, r
    assert fetch(g.port, "GET", "/echo?after=1").status == 200


@pytest.mark.parametrize("mode", ["cl", "chunked"])
def test_large_bodies_both_ways(gatehouse, tls_upstream, pki, mode):
    up = tls_upstream()
    g = gatehouse(tls_config(up, pki))
    n = 5 * 1024 * 1024 + 7
    with RawConn(g.port, timeout=60) as c:
        c.request("GET", f"/bytes/{n}?mode={mode}&chunk=10000")
        r = c.read_response()
        assert r.status == 200 and r.complete, r
        assert len(r.body) == n and hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)
        body = pattern_bytes(n)
        c.request("POST", "/hash", body=body)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["sha256"] == pattern_sha256(n) and r.json()["length"] == n
    assert up.connections == 1


def test_slow_client_backpressure_over_tls(gatehouse, tls_upstream, pki):
    """A response larger than the upstream read buffer to a client that
    reads slowly: plaintext held back by the TLS layer while the buffer is
    full must come out, whole and in order."""
    up = tls_upstream()
    g = gatehouse(tls_config(up, pki))
    n = 1024 * 1024
    with RawConn(g.port, timeout=60, rcvbuf=8192) as c:
        c.request("GET", f"/bytes/{n}?mode=chunked&chunk=7000")
        time.sleep(0.5)  # let every buffer on the way fill up
        r = c.read_response()
        assert r.status == 200 and r.complete, r
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)


# ---- config ----


def validate(tmp_path, tls):
    cfg = make_config(["localhost:9"], cluster={"tls": tls})
    cfg["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    p = tmp_path / "gatehouse.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("tls,words", [
    ({"ca_file": "/nonexistent/ca.pem"}, ["ca_file", "/nonexistent/ca.pem"]),
    ({"verify": False}, ["insecure_skip_verify"]),
    ({"insecure_skip_verify": True}, ["verify: false"]),
    ({"min_version": "1.1"}, ["min_version"]),
    ({"min_version": "1.4"}, ["min_version"]),
    ({"sni": "127.0.0.1"}, ["sni"]),
    ({"sni": "a b"}, ["sni"]),
    ({"sni": "host:443"}, ["sni"]),
    ({"cert_file": "x.pem"}, ["cert_file and key_file"]),
    ({"key_file": "x.pem"}, ["cert_file and key_file"]),
    ({"alpn": "h2"}, ["unknown key 'alpn'"]),
    ("yes", ["'tls'"]),
])
def test_bad_tls_settings_refused(tmp_path, tls, words):
    rc, out = validate(tmp_path, tls)
    assert rc == 1, out
    assert "gatehouse.yaml:" in out, out
    for w in words:
        assert w in out, out


def test_unreadable_and_mismatched_certificates_refused(tmp_path, pki):
    rc, out = validate(tmp_path, {"cert_file": "/nonexistent.pem", "key_file": pki.client[1]})
    assert rc == 1 and "cert_file" in out and "gatehouse.yaml:" in out, out
    rc, out = validate(tmp_path, {"cert_file": pki.client[0], "key_file": "/nonexistent.key"})
    assert rc == 1 and "key_file" in out, out
    rc, out = validate(tmp_path, {"cert_file": pki.client[0], "key_file": pki.server[1]})
    assert rc == 1 and "key_file" in out and "key values mismatch" in out, out
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    rc, out = validate(tmp_path, {"ca_file": str(garbage)})
    assert rc == 1 and "ca_file" in out, out
    rc, out = validate(tmp_path, {"ca_file": pki.ca, "cert_file": pki.client[0], "key_file": pki.client[1],
                                  "sni": "Up.Test", "min_version": "1.3"})
    assert rc == 0, out


def test_close_notify_sent_when_an_idle_connection_is_closed(gatehouse, pki):
    """gatehouse closes a pooled connection at idle_timeout with a
    close_notify: the server's read ends cleanly (b""), not with an EOF
    that TLS calls a truncation (SSLEOFError)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pki.server)
    # Debian's Python sets this by default: an EOF without close_notify
    # would then read as a clean end too.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(10)
    seen = {}

    def serve():
        try:
            c, _ = lsock.accept()
            c.settimeout(10)
            s = ctx.wrap_socket(c, server_side=True, suppress_ragged_eofs=False)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            try:
                seen["end"] = s.recv(65536)
            except ssl.SSLError as e:  # UNEXPECTED_EOF: no close_notify
                seen["end"] = e
            s.close()
        except OSError as e:
            seen["error"] = e

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        g = gatehouse(make_config([f"localhost:{lsock.getsockname()[1]}"],
                                  cluster={"tls": {"ca_file": pki.ca}, "idle_timeout": "300ms"}))
        r = fetch(g.port, "GET", "/echo")
        assert r.status == 200 and r.body == b"ok", r
        t.join(15)
        assert "error" not in seen, seen
        assert seen.get("end") == b"", f"no close_notify before the close: {seen}"
    finally:
        lsock.close()
