"""Signature Version 4 from both sides, for the tests:

- gatehouse_sign(cases): runs build/aws_sigv4_driver (tests/unit/aws/
  sigv4_driver.c, beside $GATEHOUSE_BIN) on a list of cases and returns what
  gatehouse's signer made of each (canonical request, string to sign,
  Authorization, the header lines to add), or its refusal;
- botocore_sign(case): the same request signed by botocore.auth.SigV4Auth,
  the independent implementation;
- send(port, case, signed): the request on the wire, signed by gatehouse.

A case is a dict: method (str), path (bytes, as on the request line), query
(bytes, after '?'), headers ([(bytes, bytes)]), payload (bytes), region,
service, time (seconds), access_key, secret_key, token (str or None).
"""

import json
import subprocess
import time
from urllib.parse import unquote_to_bytes

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import harness

AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
T0 = 1440938160  # 2015-08-30T12:36:00Z, the time of AWS's test suite


def case(method="POST", path=b"/", query=b"", headers=(), payload=b"", region="us-east-1",
         service="lambda", t=T0, access_key=AK, secret_key=SK, token=None):
    hs = [(n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v)
          for n, v in headers]
    if not any(n.lower() == b"host" for n, _ in hs):
        hs.insert(0, (b"Host", f"lambda.{region}.amazonaws.com".encode()))
    return dict(method=method, path=path, query=query, headers=hs, payload=payload,
                region=region, service=service, time=t, access_key=access_key,
                secret_key=secret_key, token=token)


def driver_bin():
    p = harness.gatehouse_bin().parent / "aws_sigv4_driver"
    assert p.exists(), f"{p} is missing: build the unit tests (make build-tests)"
    return p


def gatehouse_sign(cases):
    lines = []
    for c in cases:
        lines.append(json.dumps({
            "method": c["method"], "path": c["path"].hex(), "query": c["query"].hex(),
            "headers": [[n.hex(), v.hex()] for n, v in c["headers"]],
            "payload": c["payload"].hex(), "region": c["region"], "service": c["service"],
            "time": c["time"], "access_key": c["access_key"], "secret_key": c["secret_key"],
            "token": c["token"],
        }))
    p = subprocess.run([str(driver_bin())], input="\n".join(lines) + "\n", capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(out) == len(cases)
    return out


def query_params(query):
    """The query's parameters decoded the RFC 3986 way ('+' is a plus)."""
    pairs = []
    for part in query.split(b"&"):
        k, _, v = part.partition(b"=")
        pairs.append((unquote_to_bytes(k).decode("utf-8"), unquote_to_bytes(v).decode("utf-8")))
    return pairs


# The headers gatehouse never signs: hop-by-hop ones and those proxies
# rewrite. This is current botocore's list (botocore.auth's
# SIGNED_HEADERS_BLACKLIST since 2023); Debian's older botocore leaves out
# the hop-by-hop ones, so they are taken out before it signs.
UNSIGNED = {"connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization",
            "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id"}


def botocore_sign(c):
    """(canonical request, string to sign, Authorization) by botocore."""
    req = AWSRequest(method=c["method"], url="http://h.invalid" + c["path"].decode("utf-8"),
                     data=c["payload"])
    for n, v in c["headers"]:
        if n.decode("ascii").lower() not in UNSIGNED:
            req.headers[n.decode("ascii")] = v.decode("ascii")
    if c["query"]:
        req.params = query_params(c["query"])
    req.context["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(c["time"]))
    auth = SigV4Auth(Credentials(c["access_key"], c["secret_key"], c["token"]), c["service"],
                     c["region"])
    # add_auth without its clock: the same steps, at the case's time.
    auth._modify_request_before_signing(req)
    creq = auth.canonical_request(req)
    sts = auth.string_to_sign(req, creq)
    sig = auth.signature(sts, req)
    auth._inject_signature_to_request(req, sig)
    return creq, sts, req.headers["Authorization"]


def send(port, c, signed, extra=()):
    """Sends c signed by gatehouse (signed: gatehouse_sign's result) on a new
    connection; returns the harness Response. extra: headers added after
    signing (unsigned)."""
    target = c["path"] + (b"?" + c["query"] if c["query"] else b"")
    head = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in c["headers"]]
    for line in signed["headers"].split("\r\n"):
        if line:
            n, _, v = line.partition(": ")
            head.append((n, v))
    head += list(extra)
    if not any(n.lower() == "content-length" for n, _ in head):
        head.append(("Content-Length", str(len(c["payload"]))))
    head.append(("Connection", "close"))
    with harness.RawConn(port) as conn:
        conn.send(harness.RawConn.build(c["method"], target.decode("latin-1"), head,
                                        c["payload"], host=None))
        return conn.read_response(c["method"])
