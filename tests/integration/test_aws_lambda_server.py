"""The local Lambda Invoke endpoint (aws_lambda_server.py) itself, judged by
botocore's own Lambda client: what botocore signs and sends passes and is
answered in the shapes botocore parses; what is signed wrongly, tampered
with, expired or unsigned is refused with AWS's error codes. gatehouse's
Lambda calls (authorizers, lambda clusters) will be tested against it, so
it must be able to say no.
"""

import json
import time

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import harness
from aws_lambda_server import LambdaServer

AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TK_AK, TOKEN = "ASIATEMP", "FwoGZXIvYXdzEXAMPLEtoken/+="


@pytest.fixture
def srv(monkeypatch, tmp_path):
    # botocore's session reads the environment and ~/.aws: give it nothing.
    for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
              "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with LambdaServer(credentials={AK: (SK, None), TK_AK: (SK, TOKEN)}) as s:
        s.register("echo", lambda event, context: {
            "event": event, "name": context.function_name, "version": context.function_version,
            "arn": context.invoked_function_arn,
        }, versions={"prod": "3", "7": "7"})

        def fails(event, context):
            raise ValueError(event.get("why", "boom"))

        s.register("fails", fails)
        s.register("garbage", lambda body, rec: (200, [], b"\x00not json"), raw=True)
        yield s


def client(srv, ak=AK, sk=SK, token=None, region="us-east-1"):
    return botocore.session.Session().create_client(
        "lambda", region_name=region, endpoint_url=srv.endpoint, aws_access_key_id=ak,
        aws_secret_access_key=sk, aws_session_token=token,
        config=Config(retries={"max_attempts": 0}, connect_timeout=5, read_timeout=10))


def error_code(e):
    return e.value.response["Error"]["Code"]


def test_invoke_round_trip(srv):
    c = client(srv)
    r = c.invoke(FunctionName="echo", Payload=b'{"a": [1, "\\u00e9"]}')
    assert r["StatusCode"] == 200
    assert r["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in r
    out = json.loads(r["Payload"].read())
    assert out == {"event": {"a": [1, "\u00e9"]}, "name": "echo", "version": "$LATEST",
                   "arn": srv.arn("echo")}
    # A second call on the same (kept-alive) connection.
    r = c.invoke(FunctionName="echo", Payload=b"{}")
    assert json.loads(r["Payload"].read())["event"] == {}
    recs = srv.wait_requests(2)
    assert all(x.verified and x.status == 200 for x in recs)
    assert recs[0].function == "echo" and recs[0].qualifier is None
    assert recs[0].invocation_type == "RequestResponse"
    assert "host" in recs[0].signed_headers and "x-amz-date" in recs[0].signed_headers


@pytest.mark.parametrize("name,qualifier,version", [
    ("echo", "prod", "3"),
    ("echo:prod", None, "3"),
    ("echo:7", "7", "7"),
    ("123456789012:function:echo", "prod", "3"),
    ("arn:aws:lambda:us-east-1:123456789012:function:echo", None, "$LATEST"),
    ("arn:aws:lambda:us-east-1:123456789012:function:echo:prod", None, "3"),
])
def test_names_and_qualifiers(srv, name, qualifier, version):
    args = {"FunctionName": name, "Payload": b"{}"}
    if qualifier:
        args["Qualifier"] = qualifier
    r = client(srv).invoke(**args)
    out = json.loads(r["Payload"].read())
    assert r["ExecutedVersion"] == version == out["version"]
    want_q = qualifier or (name.split(":")[-1] if name.split(":")[-1] in ("prod", "7") else None)
    assert out["arn"] == srv.arn("echo", want_q)
    rec = srv.wait_requests(1)[0]
    assert rec.verified and rec.function == "echo" and rec.qualifier == want_q
    if ":" in name:  # the name went percent-encoded, and was signed double-encoded
        assert "%3A" in rec.target
        assert "%253A" in rec.canonical_request


def test_function_error(srv):
    r = client(srv).invoke(FunctionName="fails", Payload=b'{"why": "Unauthorized"}')
    assert r["StatusCode"] == 200
    assert r["FunctionError"] == "Unhandled"
    body = json.loads(r["Payload"].read())
    assert body["errorMessage"] == "Unauthorized"
    assert body["errorType"] == "ValueError"
    assert isinstance(body["stackTrace"], list)


def test_invocation_types(srv):
    c = client(srv)
    r = c.invoke(FunctionName="echo", InvocationType="Event", Payload=b"{}")
    assert r["StatusCode"] == 202
    r = c.invoke(FunctionName="echo", InvocationType="DryRun")
    assert r["StatusCode"] == 204
    recs = srv.wait_requests(2)
    assert [x.invocation_type for x in recs] == ["Event", "DryRun"]


def test_service_errors(srv):
    c = client(srv)
    with pytest.raises(ClientError) as e:
        c.invoke(FunctionName="nope", Payload=b"{}")
    assert error_code(e) == "ResourceNotFoundException"
    assert "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope" in str(e.value)
    with pytest.raises(ClientError) as e:
        c.invoke(FunctionName="echo", Qualifier="beta", Payload=b"{}")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        c.invoke(FunctionName="echo", Payload=b"{not json")
    assert error_code(e) == "InvalidRequestContentException"
    with pytest.raises(ClientError) as e:
        c.invoke(FunctionName="echo:prod", Qualifier="7", Payload=b"{}")
    assert error_code(e) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as e:
        c.invoke(FunctionName="arn:aws:lambda:us-east-1:999999999999:function:echo")
    assert error_code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        c.invoke(FunctionName="echo", Payload=b"x" * (6 * 1024 * 1024 + 1))
    assert error_code(e) == "RequestTooLargeException"
    # Every one of them was signed right: the refusals are the service's.
    assert all(x.verified for x in srv.wait_requests(6))


def test_raw_handler(srv):
    r = client(srv).invoke(FunctionName="garbage", Payload=b"{}")
    assert r["Payload"].read() == b"\x00not json"


def test_session_token(srv):
    r = client(srv, ak=TK_AK, token=TOKEN).invoke(FunctionName="echo", Payload=b"{}")
    assert r["StatusCode"] == 200
    rec = srv.wait_requests(1)[0]
    assert rec.header("X-Amz-Security-Token") == TOKEN and rec.verified
    for ak, tok in ((TK_AK, None), (TK_AK, TOKEN + "x"), (AK, TOKEN)):
        with pytest.raises(ClientError) as e:
            client(srv, ak=ak, token=tok).invoke(FunctionName="echo", Payload=b"{}")
        assert error_code(e) == "UnrecognizedClientException"


def test_wrong_credentials_refused(srv):
    with pytest.raises(ClientError) as e:
        client(srv, sk=SK + "x").invoke(FunctionName="echo", Payload=b"{}")
    assert error_code(e) == "InvalidSignatureException"
    assert "The Canonical String for this request should have been" in str(e.value)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as e:
        client(srv, ak="AKIDUNKNOWN").invoke(FunctionName="echo", Payload=b"{}")
    assert error_code(e) == "UnrecognizedClientException"
    with pytest.raises(ClientError) as e:
        client(srv, region="us-west-2").invoke(FunctionName="echo", Payload=b"{}")
    assert error_code(e) == "InvalidSignatureException"
    assert "Credential should be scoped to a valid region" in str(e.value)
    recs = srv.wait_requests(3)
    assert not any(x.verified for x in recs)
    assert srv.calls() == []


def test_expired_signature(srv):
    srv.now = lambda: time.time() + 3600
    with pytest.raises(ClientError) as e:
        client(srv).invoke(FunctionName="echo", Payload=b"{}")
    assert error_code(e) == "InvalidSignatureException"
    assert "Signature expired" in str(e.value)
    srv.now = lambda: time.time() - 301
    with pytest.raises(ClientError) as e:
        client(srv).invoke(FunctionName="echo", Payload=b"{}")
    assert "Signature expired" in str(e.value)


# ---- raw requests


def signed_raw(srv, body=b'{"k": "v"}', target="/2015-03-31/functions/echo/invocations",
               extra=(), ak=AK, sk=SK):
    """A request signed by botocore's SigV4Auth, as (method, target, headers, body)."""
    req = AWSRequest(method="POST", url=srv.endpoint + target, data=body,
                     headers={"Content-Type": "application/json"})
    for n, v in extra:
        req.headers[n] = v
    SigV4Auth(Credentials(ak, sk), "lambda", srv.region).add_auth(req)
    host = f"127.0.0.1:{srv.port}"
    headers = [("Host", host)] + [(n, v) for n, v in req.headers.items()]
    headers.append(("Content-Length", str(len(body))))
    return "POST", target, headers, body


def send_raw(srv, method, target, headers, body):
    with harness.RawConn(srv.port) as conn:
        conn.send(harness.RawConn.build(method, target, headers, body, host=None))
        return conn.read_response(method)


def test_raw_signed_passes_and_tampered_fails(srv):
    m, t, h, b = signed_raw(srv)
    r = send_raw(srv, m, t, h, b)
    assert r.status == 200, r.body
    assert json.loads(r.body)["event"] == {"k": "v"}
    changes = {
        "body": (m, t, h, b'{"k": "w"}'),
        "target": (m, "/2015-03-31/functions/echo/invocations?Qualifier=prod", h, b),
        "content-type": (m, t, [(n, "text/plain" if n == "Content-Type" else v) for n, v in h],
                         b),
        "host": (m, t, [(n, "127.0.0.2" if n == "Host" else v) for n, v in h], b),
        "no-x-amz-date": (m, t, [(n, v) for n, v in h if n != "X-Amz-Date"], b),
        "second-content-type": (m, t, h + [("Content-Type", "x")], b),
    }
    for name, (m2, t2, h2, b2) in changes.items():
        h2 = [(n, str(len(b2)) if n == "Content-Length" else v) for n, v in h2]
        r = send_raw(srv, m2, t2, h2, b2)
        assert r.status == 403, f"{name}: {r.status} {r.body!r}"
        assert r.header("x-amzn-ErrorType") in ("InvalidSignatureException",
                                                "IncompleteSignatureException"), name
        assert "message" in json.loads(r.body)
    recs = srv.wait_requests(1 + len(changes))
    assert [x.verified for x in recs] == [True] + [False] * len(changes)
    assert len(srv.calls("echo")) == 1


def test_missing_or_malformed_authorization(srv):
    m, t, h, b = signed_raw(srv)
    no_auth = [(n, v) for n, v in h if n != "Authorization"]
    r = send_raw(srv, m, t, no_auth, b)
    assert r.status == 403
    assert r.header("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    for bad in ("AWS4-HMAC-SHA256", "Bearer x", "AWS4-HMAC-SHA256 Credential=AKID/2015/x"):
        r = send_raw(srv, m, t, no_auth + [("Authorization", bad)], b)
        assert r.status == 403
        assert r.header("x-amzn-ErrorType") == "IncompleteSignatureException"
    auth = next(v for n, v in h if n == "Authorization")
    r = send_raw(srv, m, t, h + [("Authorization", auth)], b)
    assert r.header("x-amzn-ErrorType") == "IncompleteSignatureException"
    # Host taken out of SignedHeaders: refused by name, before any HMAC.
    nohost = auth.replace("SignedHeaders=content-type;host;", "SignedHeaders=content-type;")
    assert nohost != auth
    r = send_raw(srv, m, t, no_auth + [("Authorization", nohost)], b)
    assert r.header("x-amzn-ErrorType") == "InvalidSignatureException"
    assert b"'Host' or ':authority' must be a 'SignedHeader'" in r.body


def test_unsigned_extra_header_passes(srv):
    """Like AWS, headers outside SignedHeaders are not judged."""
    m, t, h, b = signed_raw(srv)
    r = send_raw(srv, m, t, h + [("X-Later", "1"), ("User-Agent", "changed")], b)
    assert r.status == 200



NODE_HANDLERS = r"""
exports.asyncEcho = async (event, context) => ({ event, name: context.functionName,
                                                 left: context.getRemainingTimeInMillis() > 0 });
exports.callbackDeny = (event, context, callback) => { callback("Unauthorized"); };
exports.callbackAllow = (event, context, callback) => {
  callback(null, { principalId: "user|a1", context: { tenant: "t1" } });
};
exports.throws = async (event) => { throw new TypeError("bad " + event.why); };
exports.nothing = async () => {};
"""


def test_node_handlers(srv, tmp_path):
    js = tmp_path / "handlers.js"
    js.write_text(NODE_HANDLERS)
    for export in ("asyncEcho", "callbackDeny", "callbackAllow", "throws", "nothing"):
        srv.register_node("node-" + export.lower(), js, export=export)
    c = client(srv)
    for _ in range(2):  # the same node process answers again
        r = c.invoke(FunctionName="node-asyncecho", Payload=b'{"a": 1}')
        assert json.loads(r["Payload"].read()) == {"event": {"a": 1}, "name": "node-asyncecho",
                                                    "left": True}
    r = c.invoke(FunctionName="node-callbackdeny", Payload=b"{}")
    assert r["FunctionError"] == "Unhandled"
    body = json.loads(r["Payload"].read())
    assert body["errorMessage"] == "Unauthorized" and body["errorType"] == "string"
    r = c.invoke(FunctionName="node-callbackallow", Payload=b"{}")
    assert json.loads(r["Payload"].read()) == {"principalId": "user|a1", "context": {"tenant": "t1"}}
    r = c.invoke(FunctionName="node-throws", Payload=b'{"why": "input"}')
    body = json.loads(r["Payload"].read())
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "TypeError" and body["errorMessage"] == "bad input"
    assert any("TypeError" in line for line in body["trace"])
    r = c.invoke(FunctionName="node-nothing", Payload=b"{}")
    assert "FunctionError" not in r and json.loads(r["Payload"].read()) is None
