"""gatehouse's Signature Version 4 signer (src/aws/sigv4.c) judged by
botocore: every request of a table and a few hundred generated ones is
signed by both, and the canonical request, the string to sign and the
Authorization value must be equal byte for byte. Requests gatehouse refuses
to sign are listed, each with the reason, and checked to be refused.

Then the signatures are sent: requests signed by gatehouse must pass the
local Lambda endpoint's verification (aws_lambda_server.py, which recomputes
them with botocore as AWS would), and any change after signing must not.
"""

import json
import random

import pytest

from aws_lambda_server import LambdaServer
from aws_sigv4_util import AK, SK, T0, botocore_sign, case, gatehouse_sign, send

INVOKE = b"/2015-03-31/functions/echo/invocations"
ARN = b"arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aecho"
TOKEN = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRX"

TABLE = {
    "lambda-invoke": case(path=INVOKE, headers=[
        ("Content-Type", "application/json"), ("X-Amz-Invocation-Type", "RequestResponse"),
        ("Content-Length", "11")], payload=b'{"a": "b"}\n'),
    "lambda-arn-qualifier": case(path=b"/2015-03-31/functions/" + ARN + b"/invocations",
                                 query=b"Qualifier=prod", payload=b"{}"),
    "lambda-arn-with-qualifier-in-name": case(
        path=b"/2015-03-31/functions/" + ARN + b"%3A%24LATEST/invocations"),
    "session-token": case(path=INVOKE, token=TOKEN, payload=b"{}"),
    "odd-spacing": case(headers=[("X-Odd", "  a   b\t\tc  "), ("X-Tabs", "\t\tx\t"),
                                 ("X-Spaces", "   ")]),
    "duplicate-names": case(headers=[("X-Dup", "2"), ("x-dup", " 1 "), ("X-DUP", "3"),
                                     ("X-Other", "o")]),
    "empty-values": case(headers=[("X-Empty", ""), ("X-Empty", ""), ("X-E2", "")]),
    "unicode-path-raw": case(path="/\u1234/caf\u00e9/\U0001f600".encode()),
    "unicode-path-encoded": case(path=b"/%E1%88%B4/caf%C3%A9"),
    "reserved-in-path": case(path=b"/a;b=c/$d/@e/!f/'g'/(h)/*/+/,/:/[x]"),
    "space-in-path": case(path=b"/example space/"),
    "dot-segments": case(path=b"/a/./b/../c/./d/.."),
    "slashes": case(path=b"//a///b//"),
    "dots-above-root": case(path=b"/../../x/../../y"),
    "encoded-dots-stay": case(path=b"/%2e%2e/%2E/x"),
    "empty-payload": case(method="GET", payload=b""),
    "binary-payload": case(payload=bytes(range(256)) * 4),
    "large-payload": case(payload=bytes(random.Random(7).randbytes(1 << 20))),
    "query-lowercase-escapes": case(query=b"a=%7e%2f%3a&b=%e1%88%b4"),
    "query-needless-escapes": case(query=b"%41%42=%61%62%2D%2E%5F%7E"),
    "query-raw-utf8": case(query="k\u00e9y=v\u1234".encode()),
    "query-duplicates": case(query=b"a=2&a=1&a=10&A=0&b&a="),
    "query-plus": case(query=b"a=b+c&d=%2B"),
    "query-equals-in-value": case(query=b"a=b=c"),
    "query-reserved": case(query=b"x=!'()*;:@$,/?"),
    "query-name-order": case(query=b"a-b=1&a=2&a_b=3&a.b=4&a~b=5&%41=6"),
    "unsigned-headers": case(headers=[("User-Agent", "gatehouse/0.1"), ("Connection", "close"),
                                      ("X-Amzn-Trace-Id", "Root=1"), ("Expect", "100-continue"),
                                      ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
                                      ("Upgrade", "h2c"), ("X-Signed", "yes")]),
    "tchar-names": case(headers=[("X-!#$%&'*+.^_`|~", "v"), ("x-0", "0")]),
    "host-with-port": case(headers=[("Host", "127.0.0.1:9000")]),
    "other-service-region": case(region="eu-central-1", service="execute-api"),
    "epoch": case(t=0),
    "year-9999": case(t=253402300799),
    "secret-with-specials": case(secret_key="a+/=b" * 8, access_key="AKIA_1"),
    "lowercase-host": case(headers=[("host", "EXAMPLE.com")]),
    "visible-ascii-value": case(headers=[("X-All", bytes(range(0x21, 0x7f)).decode())]),
    "many-headers": case(headers=[(f"X-H{i}", str(i)) for i in range(31)]),
    "get-with-query": case(method="GET", path=b"/2015-03-31/functions", query=b"MaxItems=10"),
}

# Refused by gatehouse, with the reason (gatehouse's error text contains it).
REFUSED = {
    "lowercase-method": (case(method="post"), "upper-case token"),
    "non-ascii-header-value": (case(headers=[("X-A", "caf\u00e9")]), "non-ASCII"),
    "cr-in-value": (case(headers=[("X-A", "a\r\nX-B: b")]), "control byte"),
    "obs-fold": (case(headers=[("X-A", "a\r\n b")]), "control byte"),
    "nul-in-value": (case(headers=[("X-A", "a\0b")]), "control byte"),
    "space-in-name": (case(headers=[("X A", "a")]), "not a token"),
    "no-host": (dict(case(), headers=[]), "exactly one Host"),
    "two-hosts": (case(headers=[("Host", "a"), ("host", "b")]), "exactly one Host"),
    "caller-authorization": (case(headers=[("Authorization", "x")]), "signer's"),
    "caller-date": (case(headers=[("X-Amz-Date", "20150830T123600Z")]), "signer's"),
    "caller-token": (case(headers=[("X-Amz-Security-Token", "t")]), "signer's"),
    "empty-query-pair": (case(query=b"a=1&&b=2"), "empty parameter"),
    "trailing-ampersand": (case(query=b"a=1&"), "ends with '&'"),
    "nameless-param": (case(query=b"=1"), "without a name"),
    "bad-escape": (case(query=b"a=%zz"), "two hex digits"),
    "short-escape": (case(query=b"a=%4"), "two hex digits"),
    "space-in-query": (case(query=b"a=b c"), "space"),
    "fragment": (case(query=b"a=b#c"), "'#'"),
    "question-in-path": (case(path=b"/a?b"), "'?'"),
    "relative-path": (case(path=b"a/b"), "start with '/'"),
    "bad-region": (case(region="US-EAST-1"), "region"),
    "bad-service": (case(service="lambda.x"), "service"),
    "too-many-headers": (case(headers=[(f"X-H{i}", "v") for i in range(32)]), "too many"),
}


def assert_same(name, c, mine):
    assert mine["rc"] == 0, f"{name}: gatehouse refused: {mine['error']}"
    creq, sts, authz = botocore_sign(c)
    assert mine["creq"] == creq, f"{name}: canonical request\n{mine['creq']}\n!=\n{creq}"
    assert mine["sts"] == sts, f"{name}: string to sign"
    assert mine["authorization"] == authz, f"{name}: Authorization"
    assert (mine["token"] is not None) == (c["token"] is not None)


def test_table_matches_botocore():
    names = list(TABLE)
    results = gatehouse_sign([TABLE[n] for n in names])
    for name, mine in zip(names, results):
        assert_same(name, TABLE[name], mine)
    unsigned = results[names.index("unsigned-headers")]["authorization"]
    assert "SignedHeaders=host;x-amz-date;x-signed," in unsigned


def test_refusals():
    names = list(REFUSED)
    results = gatehouse_sign([REFUSED[n][0] for n in names])
    for name, mine in zip(names, results):
        assert mine["rc"] != 0, f"{name} was signed"
        assert REFUSED[name][1] in mine["error"], f"{name}: {mine['error']}"


# ---- generated requests

UNRESERVED = "ABCXYZabcxyz0189-._~"
SUB = "!$&'()*+,;=:@"


def gen_segment(rng):
    parts = []
    for _ in range(rng.randint(0, 6)):
        k = rng.random()
        if k < 0.4:
            parts.append(rng.choice(UNRESERVED))
        elif k < 0.55:
            parts.append(rng.choice(SUB))
        elif k < 0.7:
            parts.append("%%%02X" % rng.randrange(256) if rng.random() < 0.5
                         else "%%%02x" % rng.randrange(256))
        elif k < 0.8:
            parts.append(rng.choice(["\u00e9", "\u1234", "\U0001f600", " "]))
        else:
            parts.append(rng.choice([".", ".."]))
    return "".join(parts)


def encode_text(rng, s, reserved_too):
    """s (text) as a query part, escaped in a random but valid way."""
    out = []
    for ch in s:
        b = ch.encode()
        must = ch in "&=#%+ " or ord(ch) < 0x21 or ord(ch) == 0x7f or \
            (reserved_too and ch in "?")
        if len(b) > 1 and not must and rng.random() < 0.5:
            out.append(ch)  # raw UTF-8 on the wire
        elif must or rng.random() < 0.3:
            out.append("".join(("%%%02X" if rng.random() < 0.5 else "%%%02x") % x for x in b))
        else:
            out.append(ch)
    return "".join(out)


def gen_text(rng, nonempty):
    alphabet = UNRESERVED + SUB + "/? %#\u00e9\u1234"
    n = rng.randint(1 if nonempty else 0, 8)
    return "".join(rng.choice(alphabet) for _ in range(n))


def gen_case(rng):
    path = "/" + "/".join(gen_segment(rng) for _ in range(rng.randint(0, 5)))
    params = []
    for _ in range(rng.randint(0, 6)):
        name = gen_text(rng, True)
        value = gen_text(rng, False)
        params.append(encode_text(rng, name, True) + "=" + encode_text(rng, value, True))
        if rng.random() < 0.2:  # repeat a name
            params.append(params[-1].split("=")[0] + "=" + encode_text(rng, gen_text(rng, False),
                                                                        True))
    rng.shuffle(params)
    pool = ["X-A", "x-a", "X-B", "Content-Type", "X-Amz-Invocation-Type", "x-z", "User-Agent"]
    headers = []
    for _ in range(rng.randint(0, 8)):
        n = rng.choice(pool)
        v = "".join(rng.choice("ab \t,;=\"") for _ in range(rng.randint(0, 10)))
        headers.append((n, v))
    payload = rng.randbytes(rng.choice([0, 1, 100, 511, 512, 513, 5000]))
    return case(method=rng.choice(["GET", "POST", "PUT", "DELETE"]), path=path.encode(),
                query="&".join(params).encode(), headers=headers, payload=payload,
                token=TOKEN if rng.random() < 0.3 else None,
                t=rng.randrange(0, 253402300800))


def test_generated_match_botocore():
    rng = random.Random(20261206)
    cases = [gen_case(rng) for _ in range(400)]
    results = gatehouse_sign(cases)
    for i, (c, mine) in enumerate(zip(cases, results)):
        assert_same(f"generated #{i} {c}", c, mine)


# ---- on the wire, against the verifying endpoint


@pytest.fixture
def lam():
    with LambdaServer(credentials={AK: (SK, None), "AKIATOKEN": (SK, TOKEN)},
                      now=lambda: T0) as s:
        s.register("echo", lambda event, context: {"event": event,
                                                   "version": context.function_version},
                   versions={"prod": "7"})
        yield s


def invoke_case(path=INVOKE, query=b"", token=None, access_key=AK, payload=b'{"x": 1}',
                headers=()):
    return case(path=path, query=query, token=token, access_key=access_key, payload=payload,
                headers=[("Host", "lambda.us-east-1.amazonaws.com"),
                         ("Content-Type", "application/json"),
                         ("X-Amz-Invocation-Type", "RequestResponse"), *headers])


def test_gatehouse_signed_requests_pass(lam):
    cases = [
        invoke_case(),
        invoke_case(query=b"Qualifier=prod"),
        invoke_case(path=b"/2015-03-31/functions/" + ARN + b"/invocations",
                    query=b"Qualifier=prod"),
        invoke_case(path=b"/2015-03-31/functions/" + ARN + b"%3Aprod/invocations"),
        invoke_case(path=b"/2015-03-31/functions/123456789012%3Afunction%3Aecho/invocations"),
        invoke_case(token=TOKEN, access_key="AKIATOKEN"),
        invoke_case(payload=b""),
        invoke_case(headers=[("X-Odd", "  a   b  "), ("X-Odd", "c"), ("User-Agent", "gh")]),
    ]
    signed = gatehouse_sign(cases)
    for i, (c, s) in enumerate(zip(cases, signed)):
        assert s["rc"] == 0, s
        r = send(lam.port, c, s)
        assert r.status == 200, f"case {i}: {r.status} {r.body!r}"
        want = "7" if b"prod" in c["path"] + c["query"] else "$LATEST"
        assert r.header("X-Amz-Executed-Version") == want
        assert json.loads(r.body) == {
            "event": json.loads(c["payload"] or b"{}"), "version": want}
    recs = lam.wait_requests(len(cases))
    assert all(r.verified and r.error is None for r in recs)
    assert [r.function for r in recs] == ["echo"] * len(cases)
    assert recs[5].header("X-Amz-Security-Token") == TOKEN


def tampered(c, s, how):
    """(case, signed) changed after signing, the way `how` says."""
    c0, s0 = c, s
    c = dict(c, headers=list(c["headers"]))
    s = dict(s)
    if how == "body":
        c["payload"] = c["payload"][:-1] + b"2}"
    elif how == "path":
        c["path"] = c["path"].replace(b"echo", b"echO")
    elif how == "query":
        c["query"] = b"Qualifier=$LATEST"
    elif how == "header-value":
        c["headers"][2] = (b"X-Amz-Invocation-Type", b"Event")
    elif how == "header-dropped":
        del c["headers"][1]
    elif how == "header-repeated":
        c["headers"].append((b"Content-Type", b"text/plain"))
    elif how == "date":
        s["headers"] = s["headers"].replace("T123600Z", "T123601Z")
    elif how == "signature":
        i = s["headers"].index("Signature=") + 10
        flip = "0" if s["headers"][i] != "0" else "1"
        s["headers"] = s["headers"][:i] + flip + s["headers"][i + 1:]
    elif how == "scope-region":
        s["headers"] = s["headers"].replace("/us-east-1/", "/us-west-2/")
    elif how == "access-key":
        s["headers"] = s["headers"].replace("Credential=" + c["access_key"], "Credential=AKIDOTHER")
    elif how == "token-dropped":
        s["headers"] = "\r\n".join(x for x in s["headers"].split("\r\n")
                                   if not x.startswith("X-Amz-Security-Token"))
    else:
        raise AssertionError(how)
    assert (c, s) != (c0, s0), f"{how} changed nothing"
    return c, s


@pytest.mark.parametrize("how,code", [
    ("body", "InvalidSignatureException"),
    ("path", "InvalidSignatureException"),
    ("query", "InvalidSignatureException"),
    ("header-value", "InvalidSignatureException"),
    ("header-dropped", "InvalidSignatureException"),
    ("header-repeated", "InvalidSignatureException"),
    ("date", "InvalidSignatureException"),
    ("signature", "InvalidSignatureException"),
    ("scope-region", "InvalidSignatureException"),
    ("access-key", "UnrecognizedClientException"),
    ("token-dropped", "UnrecognizedClientException"),
])
def test_changed_after_signing_is_refused(lam, how, code):
    c = invoke_case(query=b"Qualifier=prod", token=TOKEN, access_key="AKIATOKEN")
    s = gatehouse_sign([c])[0]
    assert send(lam.port, c, s).status == 200  # unchanged, it passes
    c2, s2 = tampered(c, s, how)
    r = send(lam.port, c2, s2)
    assert r.status == 403, r.body
    assert r.header("x-amzn-ErrorType") == code
    assert "message" in json.loads(r.body)
    recs = lam.wait_requests(2)
    assert recs[0].verified and not recs[1].verified and recs[1].error == code
    assert lam.calls("echo") == [recs[0]]


def test_unsigned_header_added_after_signing_passes(lam):
    """Headers outside SignedHeaders are not covered, as at AWS."""
    c = invoke_case()
    s = gatehouse_sign([c])[0]
    r = send(lam.port, c, s, extra=[("X-Not-Signed", "anything"), ("User-Agent", "other")])
    assert r.status == 200
