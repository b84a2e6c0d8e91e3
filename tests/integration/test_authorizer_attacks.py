"""An outside review of custom authorizers (docs/authorizers.md), as an
attacker would: requests that mean one thing to the authorizer (or its
cached answer) and another to the upstream."""

import socket

import pytest

from authz_server import AuthzServer, allow_policy
from harness import echo_of, fetch
from test_authorizers import ARN_PREFIX, az, config


@pytest.fixture
def authz():
    servers = []

    def make(handler, raw=False):
        s = AuthzServer(handler, raw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def deny_delete(ev):
    out = allow_policy("u", ARN_PREFIX + "*")
    out["policyDocument"]["Statement"].append(
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN_PREFIX + "DELETE/*"})
    return out


@pytest.mark.parametrize("ttl", [0, "300s"])
def test_lower_case_method_is_the_method_upstreams_read(gatehouse, upstream, authz, ttl):
    """Werkzeug (Flask) and Django upper-case the method: "delete" is
    DELETE to them, so it must never get around an IAM Deny on DELETE: a
    method with lower-case letters is refused (400) before the authorizer,
    and events say methods as API Gateway's do."""
    up = upstream()
    srv = authz(deny_delete)
    g = gatehouse(config(up, srv.port, {"az": az("aws-v1-request", ttl=ttl,
                                                  identity_sources=["$request.header.Authorization"])}))
    tok = [("authorization", "t")]
    assert fetch(g.port, "GET", "/x", headers=tok).status == 200
    assert fetch(g.port, "DELETE", "/x", headers=tok).status == 403
    calls = len(srv.requests)
    for m in ("delete", "Delete"):
        r = fetch(g.port, m, "/x", headers=tok)
        assert r.status == 400, (m, r)
    assert len(srv.requests) == calls, "refused before the authorizer"
    assert all(r.json()["httpMethod"].isupper() for r in srv.requests)
    assert all("/x" in r.json()["methodArn"] and "/GET/" in r.json()["methodArn"] or
               "/DELETE/" in r.json()["methodArn"] for r in srv.requests)
    assert [r.method for r in up.complete_requests()] == ["GET"]


def envoy_by_path(req):
    """An ext_authz service as OPA policies are written: the answer is
    about the method, the path and the headers, not only the token."""
    ok = (req.header("authorization") == "alice" and req.method == "GET" and
          req.target == "/check/public" and req.header("x-tenant") in (None, "t1"))
    if ok:
        return (200, [("x-user", "alice")], b"")
    return (403, [("content-type", "text/plain")], b"no")


@pytest.mark.parametrize("second", [
    ("GET", "/admin", []),
    ("DELETE", "/public", []),
    ("GET", "/public?as=admin", []),
    ("GET", "/public", [("x-tenant", "t2")]),
])
def test_envoy_cached_allow_is_not_an_answer_for_another_request(gatehouse, upstream, authz,
                                                                 second):
    """A cached envoy allow decides only the request the service was asked
    about: its method, path, query and allowed headers are part of the key
    (Envoy itself caches nothing)."""
    up = upstream()
    srv = authz(envoy_by_path, raw=True)
    a = {"format": "envoy", "http": {"cluster": "authz", "path": "/check"},
         "identity_sources": ["$request.header.Authorization"], "ttl": "300s",
         "envoy": {"allowed_headers": ["x-tenant"], "upstream_headers": ["x-user"]}}
    g = gatehouse(config(up, srv.port, {"az": a}))
    tok = [("authorization", "alice")]
    for _ in range(2):
        assert fetch(g.port, "GET", "/public", headers=tok + [("x-tenant", "t1")]).status == 200
    assert srv.calls == 1, "the same request is answered from the cache"
    m, t, extra = second
    r = fetch(g.port, m, t, headers=tok + (extra or [("x-tenant", "t1")]))
    assert r.status == 403, r
    assert srv.calls == 2
    assert [(q.method, q.target) for q in up.complete_requests()] == [("GET", "/public")] * 2


def test_envoy_is_asked_about_the_method_upstreams_read(gatehouse, upstream, authz):
    """Envoy's parser refuses a lower-case method, so ext_authz services
    compare "DELETE"; Werkzeug and Django read "delete" as DELETE: such a
    method is refused (400) before the service is asked."""
    def h(req):
        if req.method == "DELETE":
            return (403, [("content-type", "text/plain")], b"no deletes")
        return (200, [], b"")

    up = upstream()
    srv = authz(h, raw=True)
    a = {"format": "envoy", "http": {"cluster": "authz", "path": "/check"}, "ttl": 0}
    g = gatehouse(config(up, srv.port, {"az": a}))
    assert fetch(g.port, "GET", "/x").status == 200
    assert fetch(g.port, "DELETE", "/x").status == 403
    calls = srv.calls
    for m in ("delete", "dElete"):
        assert fetch(g.port, m, "/x").status == 400, m
    assert srv.calls == calls, "refused before the authorizer"
    assert [q.method for q in up.complete_requests()] == ["GET"]


@pytest.mark.parametrize("fmt,ttl", [("aws-v2", 0), ("aws-v2", "300s"), ("envoy", 0),
                                     ("envoy", "300s")])
def test_identity_headers_survive_and_forgeries_do_not(gatehouse, upstream, authz, fmt, ttl):
    """The headers an authorizer sets reach the upstream once, with its
    values: never a client's copy (any spelling), and a Connection option
    naming them removes neither gatehouse's value nor lets the client's
    through. With a ttl the later requests are answered from the cache
    (aws-v2: the route's short path, gh_azr_apply_cached), which must drop
    the copies as the call does."""
    from harness import hdr

    if fmt == "envoy":
        srv_handler = lambda req: (200, [("x-user", "alice")], b"")  # noqa: E731
        a = {"format": "envoy", "http": {"cluster": "authz", "path": "/check"}, "ttl": ttl,
             "envoy": {"upstream_headers": ["x-user"]}}
        if ttl:
            a["identity_sources"] = ["$request.header.Authorization"]
        raw = True
    else:
        srv_handler = lambda ev: {"isAuthorized": True, "context": {"u": "alice"}}  # noqa: E731
        a = az(simple_responses=True, ttl=ttl, headers={"x-user": "context.u"})
        raw = False
    up = upstream()
    srv = authz(srv_handler, raw=raw)
    g = gatehouse(config(up, srv.port, {"az": a}))
    spellings = [[("X-User", "root")], [("x_user", "root")], [("X_USER", "root")],
                 [("x-user", "root"), ("X-USER", "root2")], []]
    for i, forged in enumerate(spellings):
        hs = [("authorization", "t")] + forged + [("connection", "x-user, keep-alive")]
        e = echo_of(fetch(g.port, "GET", "/x", headers=hs))
        assert hdr(e["headers"], "x-user") == ["alice"], (i, e["headers"])
        assert not [h for h in e["headers"] if h[0].lower().replace("_", "-") == "x-user" and
                    h[1] != "alice"], (i, e["headers"])
    if fmt == "aws-v2":
        assert srv.calls == (1 if ttl else len(spellings))
    else:
        # envoy: the key holds the headers the service is sent, which
        # differ here; what matters is that no copy got through.
        assert 1 <= srv.calls <= len(spellings)


def test_authorizers_see_the_host_the_upstream_gets(gatehouse, upstream, authz):
    """An absolute-form target's authority replaces Host (RFC 9112 section
    3.2.2) for routing and upstream: the authorizer must be told that host,
    not the Host field the client also sent."""
    seen = []

    def h(req):
        seen.append(req.header("host"))
        return (200, [], b"") if req.header("host") == "public.example" else \
            (403, [("content-type", "text/plain")], b"no")

    up = upstream()
    srv = authz(h, raw=True)
    a = {"format": "envoy", "http": {"cluster": "authz", "path": "/check"}, "ttl": 0}
    g = gatehouse(config(up, srv.port, {"az": a}))
    assert fetch(g.port, "GET", "/x", host="public.example").status == 200
    r = fetch(g.port, "GET", "http://admin.example/x", host="public.example")
    got = [q.header("host") for q in up.complete_requests()]
    assert r.status == 403 or got[-1] == seen[-1], (r, seen, got)
    assert seen[-1] == "admin.example"


@pytest.mark.parametrize("fmt", ["aws-v2", "aws-v1-request"])
def test_aws_events_name_the_host_the_upstream_gets(gatehouse, upstream, authz, fmt):
    up = upstream()
    srv = authz(lambda ev: {"isAuthorized": True} if fmt == "aws-v2" else allow_policy("u"))
    a = az(fmt, ttl=0, identity_sources=["$request.header.Authorization"],
           **({"simple_responses": True} if fmt == "aws-v2" else {}))
    g = gatehouse(config(up, srv.port, {"az": a}))
    r = fetch(g.port, "GET", "http://admin.example:8080/x", host="public.example",
              headers=[("authorization", "t")])
    assert r.status == 200, r
    ev = srv.requests[-1].json()
    hosts = {k: v for k, v in ev["headers"].items() if k.lower() == "host"}
    assert list(hosts.values()) == ["admin.example:8080"], ev["headers"]
    assert ev["requestContext"]["domainName"] == "admin.example"
    assert up.complete_requests()[-1].header("host") == "admin.example:8080"


class SplitAuthz:
    """A raw HTTP/1.1 authorizer service: answers each event with
    isAuthorized for the token "good" only, written one byte per send
    (TCP_NODELAY), optionally followed by a second, allowing response
    nobody asked for (a smuggling attempt into the next pooled call), and
    any number of 1xx interim responses first."""

    def __init__(self, smuggle=False, interim=0, chunked=False):
        import socket
        import threading

        self.smuggle, self.interim, self.chunked = smuggle, interim, chunked
        self.calls = 0
        self.conns = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading

        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        import json as _json
        import socket

        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v)
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                ev, buf = _json.loads(buf[:n]), buf[n:]
                with self.lock:
                    self.calls += 1
                ok = ev["identitySource"] == ["good"]
                body = _json.dumps({"isAuthorized": ok}).encode()
                out = b"HTTP/1.1 100 Continue\r\n\r\n" * self.interim
                if self.chunked:
                    out += (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                            b"transfer-encoding: chunked\r\n\r\n")
                    out += b"".join(b"%x\r\n%s\r\n" % (1, body[i:i + 1]) for i in range(len(body)))
                    out += b"0\r\nx-t: 1\r\n\r\n"
                else:
                    out += (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                            b"content-length: %d\r\n\r\n%s" % (len(body), body))
                extra = b""
                if self.smuggle:
                    # In the same segment as the answer's last byte: read
                    # with it, so the connection has unread bytes.
                    evil = b'{"isAuthorized": true}'
                    extra = (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" %
                             (len(evil), evil))
                for i in range(len(out) - 1):
                    c.sendall(out[i:i + 1])
                c.sendall(out[-1:] + extra)
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


@pytest.mark.parametrize("mode", [dict(), dict(smuggle=True), dict(interim=5),
                                  dict(chunked=True), dict(chunked=True, smuggle=True)])
def test_callout_answers_split_interim_and_smuggled(gatehouse, upstream, mode):
    """Every answer written a byte at a time means the same; an extra
    response after the answer is never read as the next call's answer."""
    srv = SplitAuthz(**mode)
    try:
        up = upstream()
        g = gatehouse(config(up, srv.port, {"az": az(simple_responses=True, ttl=0)}))
        for i in range(3):
            assert fetch(g.port, "GET", "/x", headers=[("authorization", "bad")]).status == 403
            assert fetch(g.port, "GET", "/x", headers=[("authorization", "good")]).status == 200
        assert srv.calls == 6, "every request asked the service, each answered once"
        assert len(up.complete_requests()) == 3
        if mode.get("smuggle"):
            assert srv.conns == 6, "a connection with unread bytes is never reused"
    finally:
        srv.stop()


# ---- Lambda upstream: results that try to frame the response ----

LAMBDA_RESULTS = [
    {"statusCode": 204, "body": "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"},
    {"statusCode": 304, "body": "smuggled"},
    {"statusCode": "204", "headers": {"content-length": "5"}, "body": "abcde"},
    {"statusCode": 200, "headers": {"content_length": "0", "transfer_encoding": "chunked"},
     "body": "x"},
    {"statusCode": 200, "multiValueHeaders": {"content-length": ["1", "2"]}, "body": "xy"},
    {"statusCode": 200, "cookies": ["a=1\r\nx-injected: 1"], "body": "x"},
    {"statusCode": 200, "headers": {"x-a": "1\r\n\r\nHTTP/1.1 200 OK"}, "body": "x"},
    {"statusCode": 200, "headers": {"x a": "1"}, "body": "x"},
    {"statusCode": 200, "headers": {"x-a:": "1"}, "body": "x"},
    {"statusCode": 101, "headers": {"upgrade": "websocket"}, "body": ""},
    {"statusCode": 100, "body": "x"},
    {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
    {"statusCode": 200, "isBase64Encoded": "true", "body": "aGk="},
]


@pytest.mark.parametrize("result", LAMBDA_RESULTS)
def test_lambda_result_never_frames_the_response(gatehouse, result):
    """Whatever a function returns, the client reads exactly one response
    per request, framed by gatehouse (h11 parses it strictly), and the
    connection's next request gets its own answer."""
    import h11
    from test_lambda_upstream import AK, SK, lambda_config
    from aws_lambda_server import LambdaServer
    import os

    env = {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK,
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with LambdaServer(credentials={AK: (SK, None)}) as srv:
            srv.register("fn", lambda e, c: result if e["rawPath"] == "/evil" else
                         {"statusCode": 200, "body": "fine"})
            g = gatehouse(lambda_config(srv))
            s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
            conn = h11.Connection(h11.CLIENT)
            got = []
            for path in ("/evil", "/next"):
                s.sendall(conn.send(h11.Request(method="GET", target=path,
                                                headers=[("host", "gatehouse.test")])))
                s.sendall(conn.send(h11.EndOfMessage()))
                body = b""
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        d = s.recv(65536)
                        conn.receive_data(d)
                        continue
                    if isinstance(ev, h11.Response):
                        status, headers = ev.status_code, ev.headers
                    elif isinstance(ev, h11.Data):
                        body += ev.data
                    elif isinstance(ev, h11.EndOfMessage):
                        break
                got.append((status, headers, body))
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
            s.close()
            st, hs, b = got[0]
            names = [n.lower() for n, _ in hs]
            assert b"x-injected" not in b"".join(n for n in names)
            assert names.count(b"content-length") <= 1 and b"transfer-encoding" not in names
            assert st >= 200
            if st in (204, 304):
                assert b == b""
            if len(got) > 1:
                assert got[1][0] == 200 and got[1][2] == b"fine"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_envoy_cached_allow_is_keyed_by_the_body_it_was_shown(gatehouse, upstream, authz):
    """with max_request_body the service decides on the body (a GraphQL
    query, a transfer amount): another body is another question."""
    def h(req):
        ok = req.header("authorization") == "alice" and req.body == b'{"amount": 1}'
        return (200, [], b"") if ok else (403, [("content-type", "text/plain")], b"no")

    up = upstream()
    srv = authz(h, raw=True)
    a = {"format": "envoy", "http": {"cluster": "authz", "path": "/check"},
         "identity_sources": ["$request.header.Authorization"], "ttl": "300s",
         "envoy": {"max_request_body": 1024}}
    g = gatehouse(config(up, srv.port, {"az": a}))
    tok = [("authorization", "alice"), ("content-type", "application/json")]
    for _ in range(2):
        assert fetch(g.port, "POST", "/pay", headers=tok, body=b'{"amount": 1}').status == 200
    assert srv.calls == 1
    r = fetch(g.port, "POST", "/pay", headers=tok, body=b'{"amount": 1000000}')
    assert r.status == 403, r
    assert srv.calls == 2
    assert [q.body for q in up.complete_requests()] == [b'{"amount": 1}'] * 2


@pytest.mark.parametrize("source,req", [
    ("$request.querystring.token", lambda v: ("/x?" + "&".join("token=" + t for t in v), [])),
    ("$request.cookie.session",
     lambda v: ("/x", [("cookie", "; ".join("session=" + t for t in v))])),
])
def test_repeated_query_or_cookie_sources_key_the_cache_by_every_copy(gatehouse, upstream, authz,
                                                                      source, req):
    """An authorizer that reads another copy than the first (v1 keeps the
    last query value, v2 joins them) must not find an answer cached for a
    request it never saw: every copy is part of the cache key."""
    up = upstream()
    seen = []

    def last_copy_decides(ev):
        seen.append(ev)
        qs = ev.get("multiValueQueryStringParameters") or {}
        vals = qs.get("token") or []
        cookie = (ev.get("headers") or {}).get("cookie", "")
        last = vals[-1] if vals else cookie.rsplit("session=", 1)[-1]
        if last == "good":
            return allow_policy("u", ARN_PREFIX + "*")
        return {"principalId": "u", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN_PREFIX + "*"}]}}

    srv = authz(last_copy_decides)
    g = gatehouse(config(up, srv.port, {"az": az("aws-v1-request", ttl="300s",
                                                  identity_sources=[source])}))
    t, h = req(["good"])
    assert fetch(g.port, "GET", t, headers=h).status == 200
    t, h = req(["good", "evil"])
    assert fetch(g.port, "GET", t, headers=h).status == 403
    t, h = req(["evil", "good"])
    assert fetch(g.port, "GET", t, headers=h).status == 200
    assert len(seen) == 3, "each set of copies is its own cache key"
    t, h = req(["good", "evil"])
    assert fetch(g.port, "GET", t, headers=h).status == 403
    assert len(seen) == 3, "the same copies again come from the cache"
