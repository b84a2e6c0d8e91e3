"""Lambda functions as upstreams (docs/lambda.md): routes `to` clusters of
type lambda, called through the local Invoke endpoint (aws_lambda_server.py)
that verifies every request's Signature Version 4 with botocore, running
handlers written the way Lambda functions are written.

Each test asserts on what the function received (the event) and on what
the client got, and that every call that reached the endpoint was signed
correctly (the server refuses anything else)."""

import base64
import hashlib
import json
import socket
import subprocess
import threading
import time

import pytest

import harness
from aws_lambda_server import LambdaServer
from harness import RawConn, assert_refusal, fetch, free_port, gatehouse_bin, to_yaml

AK, SK = "AKIDLAMBDAUP", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYLAMBDAKEY"
TK_AK, TOKEN = "ASIALAMBDAUP", "FwoGZXIvYXdzEXAMPLEtoken/+="


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """gatehouse (a child process) inherits this environment: static keys,
    and no shared files to fall back on."""
    for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
              "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SK)
    return monkeypatch


@pytest.fixture
def srv(aws_env):
    with LambdaServer(credentials={AK: (SK, None), TK_AK: (SK, TOKEN)}) as s:
        yield s


def echo(event, context):
    """Answers with the event it got, as a structured 2.0 result."""
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(event)}


def lambda_config(srv, function="fn", route=None, clusters=None, **block):
    lam = {"function": function, "region": "us-east-1", "endpoint": "lambda-api"}
    lam.update(block)
    r = {"name": "fn", "match": {"path": {"prefix": "/"}}, "to": "fn"}
    r.update(route or {})
    cl = {"fn": {"type": "lambda", "lambda": lam},
          "lambda-api": {"endpoints": [f"127.0.0.1:{srv.port}"]}}
    cl.update(clusters or {})
    return {"listeners": [{"name": "edge", "routes": [r]}], "clusters": cl}


def start(gatehouse, srv, **kw):
    return gatehouse(lambda_config(srv, **kw))


def event_of(resp):
    assert resp.status == 200, resp
    return json.loads(resp.body)


def only_call(srv, function="fn"):
    calls = srv.calls(function)
    assert len(calls) == 1, srv.requests
    rec = calls[0]
    assert rec.verified and rec.invocation_type == "RequestResponse"
    return rec


# ---- the event


def test_get_event_v2(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/items/42?a=1&a=2&b=x%20y&c",
              headers=[("X-Multi", "one"), ("User-Agent", "ua/1"), ("x-multi", "two"),
                       ("Cookie", "a=1; b=2"), ("Cookie", "c=3")])
    ev = event_of(r)
    assert ev["version"] == "2.0"
    assert ev["routeKey"] == "$default"
    assert ev["rawPath"] == "/items/42"
    assert ev["rawQueryString"] == "a=1&a=2&b=x%20y&c"
    assert ev["queryStringParameters"] == {"a": "1,2", "b": "x y", "c": ""}
    assert ev["headers"]["x-multi"] == "one,two"
    assert ev["headers"]["user-agent"] == "ua/1"
    assert ev["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in ev["headers"]
    assert ev["isBase64Encoded"] is False and "body" not in ev
    http = ev["requestContext"]["http"]
    assert http["method"] == "GET" and http["path"] == "/items/42"
    assert http["sourceIp"] == "127.0.0.1" and http["userAgent"] == "ua/1"
    assert ev["requestContext"]["domainName"] == "gatehouse.test"
    # the request id is the one gatehouse gives the request (and logs)
    assert ev["requestContext"]["requestId"] == ev["headers"]["x-request-id"]
    rec = only_call(srv)
    assert rec.function == "fn" and rec.qualifier is None
    assert rec.target == "/2015-03-31/functions/fn/invocations"
    assert "host" in rec.signed_headers and "x-amz-date" in rec.signed_headers
    assert rec.header("Host") == "lambda.us-east-1.amazonaws.com"


def test_event_is_what_the_router_would_forward(gatehouse, srv):
    """Fields a client may not pass to an upstream (hop-by-hop ones, named
    in Connection, forged forwarding and request-id fields) do not reach a
    function either: the event is built from the forwarded request."""
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/a/../b/./c",
              headers=[("Connection", "x-hop"), ("X-Hop", "1"), ("X-Forwarded-For", "6.6.6.6"),
                       ("X-Real-IP", "6.6.6.6"), ("X-Request-Id", "forged"),
                       ("Keep-Alive", "timeout=5"), ("TE", "trailers")])
    ev = event_of(r)
    h = ev["headers"]
    assert "x-hop" not in h and "connection" not in h and "keep-alive" not in h and "te" not in h
    assert h["x-forwarded-for"] == "127.0.0.1" and h["x-real-ip"] == "127.0.0.1"
    assert h["x-request-id"] != "forged"
    assert ev["rawPath"] == "/b/c"  # the normalized path the route matched


def test_qualifier_and_arn(gatehouse, srv):
    srv.register("fn", echo, versions={"live": "7"})
    g = start(gatehouse, srv, function="arn:aws:lambda:us-east-1:123456789012:function:fn",
              qualifier="live")
    event_of(fetch(g.port, "GET", "/"))
    rec = only_call(srv)
    assert rec.function == "fn" and rec.qualifier == "live"
    assert rec.target == ("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012"
                          "%3Afunction%3Afn/invocations?Qualifier=live")


def test_session_token_is_sent_and_signed(gatehouse, srv, aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", TK_AK)
    aws_env.setenv("AWS_SESSION_TOKEN", TOKEN)
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    event_of(fetch(g.port, "GET", "/"))
    rec = only_call(srv)
    assert rec.access_key == TK_AK and "x-amz-security-token" in rec.signed_headers


def test_text_body(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    body = "h\u00e9llo \u2603".encode()
    ev = event_of(fetch(g.port, "POST", "/t", headers=[("Content-Type", "text/plain; charset=utf-8")],
                        body=body))
    assert ev["isBase64Encoded"] is False
    assert ev["body"] == body.decode()
    assert ev["headers"]["content-length"] == str(len(body))


@pytest.mark.parametrize("ctype", [None, "application/octet-stream", "image/png",
                                   "application/x-www-form-urlencoded"])
def test_binary_body(gatehouse, srv, ctype):
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    body = bytes(range(256)) * 3
    hs = [("Content-Type", ctype)] if ctype else []
    ev = event_of(fetch(g.port, "PUT", "/b", headers=hs, body=body))
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"], validate=True) == body


def test_text_type_with_invalid_utf8_goes_base64(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    body = b"\xff\xfe not utf-8"
    ev = event_of(fetch(g.port, "POST", "/", headers=[("Content-Type", "text/plain")], body=body))
    assert ev["isBase64Encoded"] is True and base64.b64decode(ev["body"]) == body


def test_chunked_request_body(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    with RawConn(g.port) as c:
        c.send(b"POST /c HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + harness.chunked([b'{"a":', b" 1}"]))
        ev = event_of(c.read_response())
    assert ev["body"] == '{"a": 1}' and "transfer-encoding" not in ev["headers"]
    assert ev["headers"]["content-length"] == "8"


def test_non_utf8_header_is_400(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    with RawConn(g.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: gatehouse.test\r\nX-Name: caf\xe9\r\n\r\n")
        assert_refusal(c.read_response(), 400, "bad_request")
    assert srv.calls() == []


# ---- the result


def test_structured_result(gatehouse, srv):
    def handler(event, context):
        return {"statusCode": 201,
                "headers": {"x-a": "1", "Content-Type": "text/plain", "Content-Length": "999",
                            "Transfer-Encoding": "chunked", "Connection": "close",
                            "x-n": 5, "x-b": True},
                "cookies": ["s=1; Path=/; HttpOnly", "t=2"],
                "body": "created"}
    srv.register("fn", handler)
    g = start(gatehouse, srv)
    with RawConn(g.port) as c:
        c.request("POST", "/", body=b"{}")
        r = c.read_response()
        assert r.status == 201 and r.body == b"created"
        assert r.header("x-a") == "1" and r.header("content-type") == "text/plain"
        assert r.header("x-n") == "5" and r.header("x-b") == "true"
        assert r.headers_all("set-cookie") == ["s=1; Path=/; HttpOnly", "t=2"]
        assert r.headers_all("content-length") == ["7"]
        assert not r.has("transfer-encoding") and r.header("connection") is None
        # the function's Connection: close is not gatehouse's: the client
        # connection stays open for the next request
        c.request("GET", "/")
        assert c.read_response().status == 201


def test_binary_result(gatehouse, srv):
    data = bytes(range(256)) * 40
    srv.register("fn", lambda e, c: {"statusCode": 200, "isBase64Encoded": True,
                                     "headers": {"content-type": "application/octet-stream"},
                                     "body": base64.b64encode(data).decode()})
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/")
    assert r.status == 200 and r.body == data
    assert r.header("content-length") == str(len(data))


@pytest.mark.parametrize("result,body", [
    ({"a": 1}, b'{"a": 1}'),
    ("Hello, world!", b'"Hello, world!"'),
    (5, b"5"),
    ([1, "x"], b'[1, "x"]'),
    ({"body": "no status code", "headers": {"x": "y"}},
     b'{"body": "no status code", "headers": {"x": "y"}}'),
])
def test_inferred_result_v2(gatehouse, srv, result, body):
    """Anything but an object with statusCode is API Gateway's inferred
    form: 200, application/json, the result verbatim."""
    srv.register("fn", lambda e, c: result)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/")
    assert r.status == 200 and r.body == body
    assert r.header("content-type") == "application/json"
    assert not r.has("x")


def test_head_request(gatehouse, srv):
    srv.register("fn", lambda e, c: {"statusCode": 200, "body": "hello " + e["requestContext"]
                                     ["http"]["method"]})
    g = start(gatehouse, srv)
    with RawConn(g.port) as c:
        c.request("HEAD", "/")
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b"" and r.header("content-length") == "10"
        c.request("GET", "/")
        assert c.read_response().body == b"hello GET"


def test_payload_v1(gatehouse, srv):
    def handler(event, context):
        assert event["version"] == "1.0"
        return {"statusCode": "202", "multiValueHeaders": {"x-m": ["1", "2"]},
                "headers": {"x-s": "s"},
                "body": json.dumps({k: event[k] for k in (
                    "httpMethod", "path", "headers", "multiValueHeaders", "queryStringParameters",
                    "multiValueQueryStringParameters", "body", "isBase64Encoded")})}
    srv.register("fn", handler)
    g = start(gatehouse, srv, payload="1.0")
    r = fetch(g.port, "POST", "/v1/x?q=1&q=2", headers=[("X-Rep", "a"), ("X-Rep", "b"),
                                                       ("Content-Type", "application/json")],
              body=b'{"k":"v"}')
    assert r.status == 202, r
    assert r.headers_all("x-m") == ["1", "2"] and r.header("x-s") == "s"
    ev = json.loads(r.body)
    assert ev["httpMethod"] == "POST" and ev["path"] == "/v1/x"
    assert ev["headers"]["X-Rep"] == "b" and ev["multiValueHeaders"]["X-Rep"] == ["a", "b"]
    assert ev["queryStringParameters"] == {"q": "2"}
    assert ev["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert ev["body"] == '{"k":"v"}' and ev["isBase64Encoded"] is False


def test_payload_v1_needs_status_code(gatehouse, srv):
    srv.register("fn", lambda e, c: "just a string")
    g = start(gatehouse, srv, payload="1.0")
    doc = assert_refusal(fetch(g.port, "GET", "/"), 502, "bad_gateway")
    assert "malformed" in doc["detail"]


@pytest.mark.parametrize("result", [
    {"statusCode": 99},
    {"statusCode": 200, "headers": {"x": {"nested": 1}}},
    {"statusCode": 200, "body": 5},
    {"statusCode": 200, "headers": {"bad name": "v"}},
    {"statusCode": 200, "headers": {"x": "a\r\nx-injected: 1"}},
    {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
])
def test_malformed_result_is_502(gatehouse, srv, result):
    srv.register("fn", lambda e, c: result)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/")
    assert_refusal(r, 502, "bad_gateway")
    assert not r.has("x-injected")


def test_result_not_json_is_502(gatehouse, srv):
    srv.register("fn", lambda body, rec: (200, [], b"{not json"), raw=True)
    g = start(gatehouse, srv)
    assert_refusal(fetch(g.port, "GET", "/"), 502, "bad_gateway")


def test_huge_result(gatehouse, srv):
    text = "0123456789abcdef" * (5 * 1024 * 1024 // 16 // 4 * 3)  # ~3.75 MiB as text
    srv.register("fn", lambda e, c: {"statusCode": 200, "body": text})
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/", timeout=30)
    assert r.status == 200 and len(r.body) == len(text)
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(text.encode()).hexdigest()


def test_result_over_lambda_limit_is_502(gatehouse, srv):
    big = b'{"statusCode":200,"body":"' + b"x" * (6 * 1024 * 1024) + b'"}'
    srv.register("fn", lambda body, rec: (200, [], big), raw=True)
    g = start(gatehouse, srv)
    doc = assert_refusal(fetch(g.port, "GET", "/", timeout=30), 502, "bad_gateway")
    assert "6 MB" in doc["detail"]


@pytest.mark.parametrize("mode", ["bytewise", "chunked"])
def test_endpoint_answers_in_pieces(gatehouse, srv, mode):
    srv.answer_mode = mode
    srv.register("fn", lambda e, c: {"statusCode": 200, "headers": {"x-p": mode},
                                     "body": "pieces " + e["rawPath"]})
    g = start(gatehouse, srv)
    for i in range(3):
        r = fetch(g.port, "GET", f"/p{i}")
        assert r.status == 200 and r.body == f"pieces /p{i}".encode() and r.header("x-p") == mode


# ---- failures


def test_function_error_is_502(gatehouse, srv):
    def fails(event, context):
        raise ValueError("database password is hunter2")
    srv.register("fn", fails)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/")
    doc = assert_refusal(r, 502, "bad_gateway")
    assert "X-Amz-Function-Error: Unhandled" in doc["detail"] and "'fn'" in doc["detail"]
    assert b"hunter2" not in r.body and b"ValueError" not in r.body


def test_unauthorized_message_means_nothing_special(gatehouse, srv):
    def fails(event, context):
        raise Exception("Unauthorized")
    srv.register("fn", fails)
    g = start(gatehouse, srv)
    assert_refusal(fetch(g.port, "GET", "/"), 502, "bad_gateway")


def test_wrong_secret_is_refused_by_the_service(gatehouse, srv, aws_env):
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", SK + "x")
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/")
    doc = assert_refusal(r, 502, "bad_gateway")
    assert "403 InvalidSignatureException" in doc["detail"]
    # the service's own body (it quotes the canonical request) stays inside
    assert b"Canonical" not in r.body and b"signature we calculated" not in r.body
    assert srv.requests[0].error == "InvalidSignatureException" and not srv.calls()


def test_unknown_access_key(gatehouse, srv, aws_env):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    doc = assert_refusal(fetch(g.port, "GET", "/"), 502, "bad_gateway")
    assert "UnrecognizedClientException" in doc["detail"]


def test_function_not_found(gatehouse, srv):
    g = start(gatehouse, srv, function="missing")
    r = fetch(g.port, "GET", "/")
    doc = assert_refusal(r, 502, "bad_gateway")
    assert "404 ResourceNotFoundException" in doc["detail"] and b"123456789012" not in r.body


def test_throttled_is_503(gatehouse, srv):
    srv.register("fn", lambda body, rec: (429, [("x-amzn-ErrorType", "TooManyRequestsException")],
                                          b'{"Type":"User","message":"Rate Exceeded."}'), raw=True)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/")
    doc = assert_refusal(r, 503, "service_unavailable")
    assert "TooManyRequestsException" in doc["detail"] and b"Rate Exceeded" not in r.body


def test_service_error_type_is_sanitized(gatehouse, srv):
    srv.register("fn", lambda body, rec: (500, [("x-amzn-ErrorType", "Bad<script>Type")],
                                          b"{}"), raw=True)
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/")
    doc = assert_refusal(r, 502, "bad_gateway")
    assert "(500)" in doc["detail"] and b"script" not in r.body


def test_endpoint_down_is_502(gatehouse, aws_env):
    port = free_port()  # nothing listens there
    cfg = lambda_config(type("S", (), {"port": port})())
    g = gatehouse(cfg)
    doc = assert_refusal(fetch(g.port, "GET", "/"), 502, "bad_gateway")
    assert "connect" in doc["detail"]


def test_endpoint_slow_is_504(gatehouse, srv):
    release = threading.Event()

    def slow(body, rec):
        release.wait(20)
        return 200, [], b'{"statusCode":200}'
    srv.register("fn", slow, raw=True)
    g = start(gatehouse, srv, route={"timeout": "500ms"})
    try:
        doc = assert_refusal(fetch(g.port, "GET", "/"), 504, "gateway_timeout")
        assert "did not answer within 500ms" in doc["detail"]
    finally:
        release.set()
    # the connection that timed out was not given back to the pool
    srv.register("fn", echo)
    assert fetch(g.port, "GET", "/after").status == 200


def metric(port, line_prefix):
    for line in fetch(port, "GET", "/metrics").body.decode().splitlines():
        if line.startswith(line_prefix):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_client_leaves_mid_invoke(gatehouse, srv):
    """A client that resets its connection while the function runs: the
    call is cancelled (its connection closed, never pooled), nothing
    answers into the freed stream, and the next request is served."""
    started, release = threading.Event(), threading.Event()

    def slow(body, rec):
        started.set()
        release.wait(20)
        return 200, [], b'{"statusCode":200,"body":"late"}'
    srv.register("fn", slow, raw=True)
    cfg = lambda_config(srv)
    cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    g = gatehouse(cfg)
    admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    cancelled = 'gatehouse_callouts_total{cluster="lambda-api",outcome="cancelled"}'
    for n, (method, body) in enumerate((("GET", None), ("POST", b"x" * 5000)), 1):
        started.clear()
        c = RawConn(g.port)
        c.request(method, "/", body=body)
        assert started.wait(10)
        # RST, not FIN: the client is gone at once
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        deadline = time.monotonic() + 10
        while metric(admin, cancelled) < n:
            assert time.monotonic() < deadline, "the call was not cancelled"
            time.sleep(0.02)
        release.set()
        release = threading.Event()
    srv.register("fn", lambda e, c: {"statusCode": 200, "body": "fresh"})
    r = fetch(g.port, "GET", "/")
    assert r.status == 200 and r.body == b"fresh"
    assert g.alive()


def test_body_over_limit_is_413(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv, max_body="1KiB")
    assert_refusal(fetch(g.port, "POST", "/", body=b"x" * 1025), 413, "payload_too_large")
    with RawConn(g.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: gatehouse.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
               harness.chunked([b"x" * 600, b"y" * 600]))
        assert_refusal(c.read_response(), 413, "payload_too_large")
    assert srv.calls() == []
    ev = event_of(fetch(g.port, "POST", "/", body=b"x" * 1024))
    assert base64.b64decode(ev["body"]) == b"x" * 1024


def test_route_max_body_applies_too(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv, route={"max_body": "100"})
    assert_refusal(fetch(g.port, "POST", "/", body=b"x" * 101), 413, "payload_too_large")


# ---- routing, observability


def test_weighted_lambda_targets(gatehouse, srv):
    srv.register("fn", lambda e, c: {"statusCode": 200, "body": "one"})
    srv.register("two", lambda e, c: {"statusCode": 200, "body": "two"})
    cfg = lambda_config(srv, route={"to": [{"cluster": "fn", "weight": 1},
                                           {"cluster": "fn2", "weight": 1}]},
                        clusters={"fn2": {"type": "lambda", "lambda": {
                            "function": "two", "region": "us-east-1", "endpoint": "lambda-api"}}})
    g = gatehouse(cfg)
    seen = {fetch(g.port, "GET", "/").body for _ in range(40)}
    assert seen == {b"one", b"two"}


def test_access_log_and_metrics(gatehouse, srv, tmp_path):
    srv.register("fn", echo)
    cfg = lambda_config(srv)
    cfg["access_log"] = {"path": str(tmp_path / "access.log")}
    cfg["admin"] = {"listen": f"127.0.0.1:{free_port()}"}
    g = gatehouse(cfg)
    assert fetch(g.port, "GET", "/ok").status == 200
    srv.register("fn", lambda e, c: 1 / 0)
    assert fetch(g.port, "GET", "/fails").status == 502
    admin = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(x) for x in (tmp_path / "access.log").read_text().splitlines()
                 if x.strip()] if (tmp_path / "access.log").exists() else []
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ok, bad = lines[0], lines[1]
    assert ok["status"] == 200 and ok["upstream"] == "lambda:fn"
    assert isinstance(ok["upstream_duration_ms"], (int, float))
    assert bad["status"] == 502 and "Unhandled" in bad["error"]
    m = fetch(admin, "GET", "/metrics").body.decode()
    assert 'cluster="fn"' in m
    assert 'gatehouse_filter_events_total{filter="lambda",route="fn",event="function_error"} 1' in m
    view = json.loads(fetch(admin, "GET", "/config", host=f"127.0.0.1:{admin}").body)
    assert view["clusters"]["fn"] == {"type": "lambda", "lambda": {
        "function": "fn", "region": "us-east-1", "endpoint": "lambda-api", "payload": "2.0",
        "max_body": 1048576, "qualifier": None, "profile": None}}
    assert SK not in json.dumps(view) and AK not in json.dumps(view)


# ---- config


def validate(tmp_path, cfg, env=None):
    cfg["listeners"][0]["listen"] = f"127.0.0.1:{free_port()}"
    p = tmp_path / "gatehouse.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([str(gatehouse_bin()), "validate", "-c", str(p)], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


FAKE = type("S", (), {"port": 9})()


@pytest.mark.parametrize("change,words", [
    (lambda c: c["clusters"]["fn"]["lambda"].update(endpoint="nope"), ["unknown cluster 'nope'"]),
    (lambda c: c["clusters"]["fn"]["lambda"].update(endpoint="fn"), ["is a lambda cluster"]),
    (lambda c: c["clusters"]["fn"]["lambda"].update(payload="3.0"), ["payload"]),
    (lambda c: c["clusters"]["fn"]["lambda"].update(max_body="5MiB"), ["max_body"]),
    (lambda c: c["clusters"]["fn"]["lambda"].update(function="bad name"), ["lambda.function"]),
    (lambda c: c["clusters"]["fn"]["lambda"].update(
        function="arn:aws:lambda:eu-west-1:1:function:f"), ["region"]),
    (lambda c: c["clusters"]["fn"]["lambda"].update(qualifier="a/b"), ["qualifier"]),
    (lambda c: c["clusters"]["fn"]["lambda"].update(colour="red"), ["colour"]),
    (lambda c: c["clusters"]["fn"].update(endpoints=["127.0.0.1:1"]), ["no endpoints"]),
    (lambda c: c["clusters"]["fn"].update(lb="random"), ["lb"]),
    (lambda c: c["clusters"]["fn"].update(type="grpc"), ["type"]),
    (lambda c: c["clusters"]["fn"].pop("lambda"), ["lambda"]),
    (lambda c: c["clusters"].update(http={"endpoints": ["127.0.0.1:1"]}) or
     c["listeners"][0]["routes"][0].update(to=[{"cluster": "fn"}, {"cluster": "http"}]),
     ["mixes lambda and HTTP"]),
    (lambda c: c["listeners"][0]["routes"][0].update(lambda_={}) or
     c["listeners"][0]["routes"][0].update({"lambda": {"x": 1}}), ["not a route key"]),
])
def test_config_refusals(tmp_path, aws_env, change, words):
    cfg = lambda_config(FAKE)
    change(cfg)
    cfg["listeners"][0]["routes"][0].pop("lambda_", None)
    if "lambda" in cfg["listeners"][0]["routes"][0]:
        cfg["listeners"][0]["routes"][0].pop("to")
    rc, out = validate(tmp_path, cfg)
    assert rc == 1, out
    assert "gatehouse.yaml:" in out, out
    assert all(w.lower() in out.lower() for w in words), out


def test_config_needs_a_region_and_loads_without_credentials(tmp_path, aws_env):
    # No credentials: the config loads (validate and the CLI need no AWS
    # keys); requests are answered 503 (test_no_credentials_is_503).
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    rc, out = validate(tmp_path, lambda_config(FAKE))
    assert rc == 0, out
    aws_env.setenv("AWS_ACCESS_KEY_ID", AK)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", SK)
    cfg = lambda_config(FAKE)
    del cfg["clusters"]["fn"]["lambda"]["region"]
    rc, out = validate(tmp_path, cfg)
    assert rc == 1 and "region" in out.lower(), out
    aws_env.setenv("AWS_REGION", "eu-central-1")
    rc, out = validate(tmp_path, cfg)
    assert rc == 0, out


def test_config_profile(tmp_path, aws_env):
    creds = tmp_path / "credentials"
    creds.write_text(f"[fnprof]\naws_access_key_id = {AK}\naws_secret_access_key = {SK}\n")
    aws_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    cfg = lambda_config(FAKE, profile="fnprof")
    assert validate(tmp_path, cfg)[0] == 0
    cfg = lambda_config(FAKE, profile="other")
    rc, out = validate(tmp_path, cfg)
    assert rc == 0, out


def test_no_credentials_is_503(gatehouse, srv, aws_env):
    srv.register("fn", echo)
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    g = start(gatehouse, srv)
    r = fetch(g.port, "GET", "/x")
    assert r.status == 503, r
    assert "no AWS credentials" in json.loads(r.body)["detail"]
    assert "no AWS credentials" in g.stderr
    assert srv.requests == [], "nothing unsigned went to the Invoke API"


def test_no_credentials_is_not_ready(gatehouse, srv, aws_env):
    """/ready says which lambda cluster cannot sign (its requests get 503)."""
    from ops_util import admin_conf, admin_get, admin_port_of, wait_admin

    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    cfg = lambda_config(srv)
    cfg["admin"] = admin_conf()
    g = gatehouse(cfg)
    port = admin_port_of(cfg)
    wait_admin(port)
    r = admin_get(port, "/ready")
    assert r.status == 503, r
    reasons = r.json()["reasons"]
    assert len(reasons) == 1 and reasons[0].startswith("lambda cluster 'fn': no AWS credentials"), r
    assert fetch(g.port, "GET", "/x").status == 503


# ---- the endpoint when lambda.endpoint names none


def implicit_config(srv):
    cfg = lambda_config(srv)
    del cfg["clusters"]["fn"]["lambda"]["endpoint"]
    del cfg["clusters"]["lambda-api"]
    return cfg


@pytest.mark.parametrize("var", ["AWS_ENDPOINT_URL_LAMBDA", "AWS_ENDPOINT_URL"])
def test_endpoint_from_the_aws_sdk_variables(gatehouse, srv, aws_env, var):
    """Without lambda.endpoint the Invoke API is where the AWS SDKs would
    send it: AWS_ENDPOINT_URL_LAMBDA, else AWS_ENDPOINT_URL; the Host signed
    is that URL's authority."""
    aws_env.setenv(var, srv.endpoint + "/")
    if var == "AWS_ENDPOINT_URL":
        aws_env.delenv("AWS_ENDPOINT_URL_LAMBDA", raising=False)
    else:
        aws_env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # the service one wins
    srv.register("fn", echo)
    g = gatehouse(implicit_config(srv))
    assert event_of(fetch(g.port, "GET", "/x"))["rawPath"] == "/x"
    rec = only_call(srv)
    assert rec.header("host") == f"127.0.0.1:{srv.port}"


def test_authorizer_and_clusters_share_the_implicit_endpoint(gatehouse, srv, aws_env):
    """Two lambda clusters and a Lambda authorizer, none naming an endpoint:
    all reach the one endpoint (one cluster made for the URL)."""
    aws_env.setenv("AWS_ENDPOINT_URL_LAMBDA", srv.endpoint)
    srv.register("fn", echo)
    srv.register("fn2", echo)
    srv.register("az", lambda ev, ctx: {"isAuthorized": ev["headers"].get("authorization") == "ok"})
    cfg = implicit_config(srv)
    cfg["clusters"]["fn2"] = {"type": "lambda", "lambda": {"function": "fn2", "region": "us-east-1"}}
    cfg["listeners"][0]["routes"].insert(0, {"name": "two", "match": {"path": {"prefix": "/two"}},
                                             "to": "fn2", "authn": "az"})
    cfg["providers"] = {"authorizers": {"az": {
        "format": "aws-v2", "simple_responses": True, "ttl": 0,
        "identity_sources": ["$request.header.Authorization"],
        "lambda": {"function": "az", "region": "us-east-1"}}}}
    g = gatehouse(cfg)
    assert fetch(g.port, "GET", "/one").status == 200
    assert fetch(g.port, "GET", "/two", headers=[("authorization", "no")]).status == 403
    assert fetch(g.port, "GET", "/two", headers=[("authorization", "ok")]).status == 200
    assert [len(srv.calls(f)) for f in ("fn", "fn2", "az")] == [1, 1, 2]
    assert all(r.verified for r in srv.requests)


@pytest.fixture(scope="module")
def lambda_pki(tmp_path_factory):
    from tls_util import Pki

    p = Pki(tmp_path_factory.mktemp("pki"))
    p.server = p.issue("server", dns=("localhost",), ips=("127.0.0.1",))
    return p


@pytest.mark.parametrize("trusted", [True, False])
def test_https_endpoint_is_verified_against_the_system_trust(gatehouse, aws_env, lambda_pki,
                                                             trusted):
    """An https endpoint (AWS's own is one) is verified against the
    system's trusted certificates, which OpenSSL's SSL_CERT_FILE moves: a
    certificate from an unknown CA is refused before anything is sent."""
    with LambdaServer(credentials={AK: (SK, None)}, tls=lambda_pki.server) as s:
        s.register("fn", echo)
        aws_env.setenv("AWS_ENDPOINT_URL_LAMBDA", f"https://localhost:{s.port}")
        if trusted:
            aws_env.setenv("SSL_CERT_FILE", lambda_pki.ca)
        else:
            aws_env.setenv("SSL_CERT_FILE", lambda_pki.other_ca)
        g = gatehouse(implicit_config(s))
        r = fetch(g.port, "GET", "/x")
        if trusted:
            assert event_of(r)["rawPath"] == "/x"
            assert only_call(s).header("host") == f"localhost:{s.port}"
        else:
            assert r.status == 502, r
            assert "certificate verify failed" in r.json()["detail"], r.json()
            assert s.requests == []


def test_default_endpoint_is_aws_regional_https(tmp_path, aws_env):
    """No endpoint anywhere: https://lambda.REGION.amazonaws.com, the region
    the function's (resolved at load; here DNS is off, so the error shows
    the URL it would use)."""
    for v in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA"):
        aws_env.delenv(v, raising=False)
    aws_env.setenv("GH_CONFIG_NO_DNS", "1")
    cfg = implicit_config(FAKE)
    cfg["clusters"]["fn"]["lambda"]["region"] = "eu-west-3"
    rc, out = validate(tmp_path, cfg)
    assert rc == 1, out
    assert "cannot resolve the Lambda endpoint 'https://lambda.eu-west-3.amazonaws.com'" in out, out
    aws_env.setenv("AWS_ENDPOINT_URL_LAMBDA", "https://127.0.0.1:9443")
    assert validate(tmp_path, cfg) == (0, validate(tmp_path, cfg)[1])


@pytest.mark.parametrize("url,words", [
    ("ftp://127.0.0.1:1", ["AWS_ENDPOINT_URL_LAMBDA", "http:// or https://"]),
    ("http://127.0.0.1:1/2015-03-31", ["no path"]),
    ("http://127.0.0.1:1?x=1", ["no path"]),
    ("http://user@127.0.0.1:1", ["user information"]),
    ("http://127.0.0.1:99999", ["port"]),
    ("http://", ["empty"]),
    ("http://bad host:1", ["invalid host name"]),
])
def test_endpoint_variable_refusals(tmp_path, aws_env, url, words):
    aws_env.setenv("GH_CONFIG_NO_DNS", "1")
    aws_env.setenv("AWS_ENDPOINT_URL_LAMBDA", url)
    rc, out = validate(tmp_path, implicit_config(FAKE))
    assert rc == 1, out
    assert all(w in out for w in words), out


def test_a_cluster_named_like_the_implicit_endpoint_is_refused(tmp_path, aws_env):
    aws_env.setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")
    cfg = implicit_config(FAKE)
    cfg["clusters"]["http://127.0.0.1:9"] = {"endpoints": ["127.0.0.1:10"]}
    rc, out = validate(tmp_path, cfg)
    assert rc == 1 and "the name of the implicit Lambda endpoint" in out, out
    # The same cluster written out is that cluster.
    cfg["clusters"]["http://127.0.0.1:9"] = {"endpoints": ["127.0.0.1:9"]}
    rc, out = validate(tmp_path, cfg)
    assert rc == 0, out


def test_authorizer_needs_a_region_as_clusters_do(tmp_path, aws_env):
    cfg = lambda_config(FAKE)
    cfg["providers"] = {"authorizers": {"a": {"format": "aws-v2", "lambda": {
        "function": "f", "endpoint": "lambda-api"}}}}
    rc, out = validate(tmp_path, cfg)
    assert rc == 1 and "authorizer 'a': no region" in out, out
    aws_env.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    rc, out = validate(tmp_path, cfg)
    assert rc == 0, out


def test_authorizer_cannot_call_a_lambda_cluster(tmp_path, aws_env):
    cfg = lambda_config(FAKE)
    cfg["providers"] = {"authorizers": {"a": {"format": "aws-v2", "http": {"cluster": "fn"}}}}
    rc, out = validate(tmp_path, cfg)
    assert rc == 1 and "lambda cluster" in out, out
    cfg["providers"] = {"authorizers": {"a": {"format": "aws-v2", "lambda": {
        "function": "f", "region": "us-east-1", "endpoint": "fn"}}}}
    rc, out = validate(tmp_path, cfg)
    assert rc == 1 and "lambda cluster" in out, out


def test_example_serves(gatehouse, srv, tmp_path):
    """examples/lambda.yaml, with its endpoint and port replaced, loads and
    serves each of its routes."""
    text = (harness.REPO / "examples/lambda.yaml").read_text()
    text = text.replace("127.0.0.1:9000", f"127.0.0.1:{srv.port}")
    text = text.replace("127.0.0.1:8080", "127.0.0.1:$PORT").replace("access_log: {}\n", "")
    srv.region = "eu-west-1"
    srv.register("hello", lambda e, c: {"statusCode": 200, "body": f"hello {e['version']}"},
                 versions={"1": "1", "2": "2"})
    srv.register("legacy", lambda e, c: {"statusCode": 200, "body": f"legacy {e['version']}"},
                 versions={"live": "3"})
    g = gatehouse(text)
    assert fetch(g.port, "GET", "/hello").body == b"hello 2.0"
    assert fetch(g.port, "GET", "/legacy").body == b"legacy 1.0"
    assert fetch(g.port, "GET", "/split").body == b"hello 2.0"
    assert {r.qualifier for r in srv.calls("hello")} >= {None}
    assert [r.qualifier for r in srv.calls("legacy")] == ["live"]
    assert_refusal(fetch(g.port, "POST", "/hello", body=b"x" * (256 * 1024 + 1)), 413,
                   "payload_too_large")


def test_http10_without_host(gatehouse, srv):
    srv.register("fn", echo)
    g = start(gatehouse, srv)
    ev = event_of(fetch(g.port, "GET", "/ten", version="HTTP/1.0", host=None))
    assert "host" not in ev["headers"] and ev["rawPath"] == "/ten"
    assert ev["requestContext"]["http"]["method"] == "GET"


def test_identity_headers_from_filters_not_from_the_client(gatehouse, srv):
    """A JWT route: the function gets the verified claim as the header the
    provider sets, never the client's forged copy of it, and no token when
    forward_token is off: the event is the forwarded request, not the
    received one."""
    import jwt_util
    key = jwt_util.ec_key(kid="lam-1")
    srv.register("fn", echo)
    cfg = lambda_config(srv, route={"authn": "corp"})
    cfg["providers"] = {"jwt": {"corp": jwt_util.provider(
        keys=[key], claims_to_headers={"sub": "x-user"}, forward_token=False)}}
    g = gatehouse(cfg)
    token = jwt_util.mint(key, sub="alice")
    r = fetch(g.port, "GET", "/me", headers=[("Authorization", f"Bearer {token}"),
                                             ("X-User", "admin"), ("x-user", "root")])
    h = event_of(r)["headers"]
    assert h["x-user"] == "alice"
    assert "authorization" not in h
    assert fetch(g.port, "GET", "/me", headers=[("X-User", "admin")]).status == 401
    assert len(srv.calls()) == 1
