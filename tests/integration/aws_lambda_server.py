"""A local AWS Lambda Invoke endpoint for gatehouse's tests (loopback only).

It speaks the Invoke API as AWS documents it and as botocore's Lambda client
expects it:

    POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q]
    X-Amz-Invocation-Type: RequestResponse (default) | Event | DryRun
    X-Amz-Log-Type: None | Tail

FunctionName is a name, "name:qualifier", a partial ARN
("123456789012:function:name") or a full ARN, percent-encoded in the path.
A RequestResponse call runs the registered Python handler, written the way
Lambda functions are written (``def handler(event, context)``), and answers
200 with its JSON result and ``X-Amz-Executed-Version``; a handler that
raises answers 200 with ``X-Amz-Function-Error: Unhandled`` and the
``errorMessage`` / ``errorType`` / ``stackTrace`` body of Lambda's Python
runtime. Event answers 202 (the handler still runs, before the answer, so
tests need not wait), DryRun 204.

Every request's Signature Version 4 is VERIFIED the way AWS verifies it:
the Authorization header is parsed, the access key, session token, scope
(date, region, service "lambda") and clock skew are checked, and the
signature is recomputed with botocore (botocore.auth.SigV4Auth over an
AWSRequest holding exactly the headers named in SignedHeaders, the path as
received and the query's decoded parameters). A mismatch is refused with
AWS's error shape: status 403, ``x-amzn-ErrorType`` and a JSON body with
``message`` (InvalidSignatureException, UnrecognizedClientException,
MissingAuthenticationTokenException, IncompleteSignatureException). Service
errors use Lambda's shape (``{"Type": "User", "message": ...}``:
ResourceNotFoundException, InvalidRequestContentException ...).

Every request is recorded (``server.requests``) with what was verified, so
tests assert on what arrived, not only on status codes.

    with LambdaServer(credentials={"AKIDEXAMPLE": ("secret", None)}) as srv:
        srv.register("echo", lambda event, context: event)
        ... srv.endpoint is "http://127.0.0.1:PORT"
"""

import base64
import datetime
import hmac
import json
import os
import re
import ssl
import subprocess
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_to_bytes

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

INVOKE_RE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/, ]+)/(\d{8})/([^/, ]+)/([^/, ]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9!#$%&'*+.^_`|~;-]+), Signature=([0-9a-f]{64})$"
)
FUNCTION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUALIFIER_RE = re.compile(r"^(\$LATEST|[A-Za-z0-9_-]{1,128})$")
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024


class AwsError(Exception):
    def __init__(self, status, code, message, kind="auth"):
        super().__init__(message)
        self.status, self.code, self.message, self.kind = status, code, message, kind


class NodeFunctionError(Exception):
    """A Node.js handler's error: answer is the runtime's error body."""

    def __init__(self, answer):
        super().__init__(answer.get("errorMessage", ""))
        self.answer = answer


@dataclass
class Recorded:
    """One request as it arrived, and what the server made of it."""

    method: str
    target: str
    headers: list  # [(name, value)] in order
    body: bytes
    status: int = 0
    error: str = None  # the AWS error code answered, None on success
    verified: bool = False  # the signature matched
    access_key: str = None
    signed_headers: list = field(default_factory=list)
    function: str = None
    qualifier: str = None
    invocation_type: str = None
    canonical_request: str = None  # what botocore computed (on a mismatch too)

    def header(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[0] if len(vals) == 1 else (vals or None)


class Context:
    """The parts of Lambda's Python context object handlers use."""

    def __init__(self, fn, version, arn, request_id, deadline_ms):
        self.function_name = fn
        self.function_version = version
        self.invoked_function_arn = arn
        self.aws_request_id = request_id
        self.memory_limit_in_mb = "128"
        self.log_group_name = f"/aws/lambda/{fn}"
        self.log_stream_name = "local"
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


@dataclass
class Function:
    name: str
    handler: object
    versions: dict  # qualifier -> executed version
    raw: bool = False  # handler(body: bytes, recorded) -> (status, headers, body)


class LambdaServer:
    def __init__(self, region="us-east-1", account="123456789012", credentials=None, now=None,
                 max_skew=300, tls=None):
        """credentials: {access_key_id: (secret_access_key, session_token or None)}.
        now: a callable giving the server's time (seconds), for fixed-time tests.
        tls: (cert_file, key_file) to answer over HTTPS, as AWS's endpoint does."""
        self.region = region
        self.account = account
        self.credentials = dict(credentials or {})
        self.now = now or time.time
        self.max_skew = max_skew
        self.functions = {}
        self._procs = []
        self.requests = []
        # How answers are written: None (one write), "bytewise" (one byte
        # per send, Nagle off: a reader sees them cut everywhere) or
        # "chunked" (Transfer-Encoding: chunked, a chunk per 7 bytes).
        self.answer_mode = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        server = self

        class Handler(_Handler):
            srv = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.endpoint = f"https://127.0.0.1:{self.port}"
        self._thread = None

    # -- lifecycle

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        for p in self._procs:
            p.stdin.close()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- functions

    def register(self, name, handler, versions=None, raw=False):
        """versions: {qualifier: executed version}; "$LATEST" is always there."""
        v = {"$LATEST": "$LATEST"}
        v.update(versions or {})
        self.functions[name] = Function(name, handler, v, raw)

    def register_node(self, name, script, export="handler", versions=None):
        """A Node.js handler (exports.handler = async (event, context) => ...,
        or the (event, context, callback) form) in script, run by one node
        process for this function (lambda_node_runner.js), calls one at a
        time. Its errors reach the caller as Lambda's Node.js runtime
        reports them (errorType, errorMessage, trace)."""
        runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lambda_node_runner.js")
        proc = subprocess.Popen(["node", runner, str(script), export], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, bufsize=1)
        self._procs.append(proc)
        lock = threading.Lock()

        def handler(event, context):
            req = {"event": event, "context": {
                "functionName": context.function_name, "functionVersion": context.function_version,
                "invokedFunctionArn": context.invoked_function_arn,
                "awsRequestId": context.aws_request_id, "deadlineMs": context._deadline_ms}}
            with lock:
                proc.stdin.write(json.dumps(req) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
            if not line:
                raise NodeFunctionError({"errorType": "Runtime.ExitError",
                                         "errorMessage": "the node process exited", "trace": []})
            ans = json.loads(line)
            if "error" in ans:
                raise NodeFunctionError(ans["error"])
            return ans["ok"]

        self.register(name, handler, versions)

    def arn(self, name, qualifier=None):
        a = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{a}:{qualifier}" if qualifier else a

    # -- records

    def _record(self, rec):
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()

    def wait_requests(self, n, timeout=10.0):
        """Waits until n requests were answered; returns them."""
        end = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.requests)} of {n} requests arrived")
                self._cond.wait(left)
            return list(self.requests)

    def calls(self, function=None):
        """Successful, verified invocations (of one function)."""
        with self._lock:
            return [r for r in self.requests if r.verified and r.error is None and
                    (function is None or r.function == function)]

    # -- verification

    def verify(self, rec, method, path, query, headers, body):
        """Checks rec's SigV4 signature as AWS would. Raises AwsError."""
        authz = [v for n, v in headers if n.lower() == "authorization"]
        if not authz:
            raise AwsError(403, "MissingAuthenticationTokenException",
                           "Missing Authentication Token")
        if len(authz) > 1:
            raise AwsError(403, "IncompleteSignatureException",
                           "Authorization header appears more than once.")
        m = AUTH_RE.match(authz[0])
        if m is None:
            raise AwsError(403, "IncompleteSignatureException",
                           "Authorization header requires 'Credential', 'SignedHeaders' and "
                           "'Signature' parameters.")
        ak, date, region, service, signed, sig = m.groups()
        rec.access_key = ak
        rec.signed_headers = signed.split(";")
        if ak not in self.credentials:
            raise AwsError(403, "UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        secret, token = self.credentials[ak]
        sent_tokens = [v for n, v in headers if n.lower() == "x-amz-security-token"]
        if token is not None and sent_tokens != [token] or token is None and sent_tokens:
            raise AwsError(403, "UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        dates = [v for n, v in headers if n.lower() == "x-amz-date"]
        if len(dates) != 1:
            raise AwsError(403, "IncompleteSignatureException",
                           "Authorization header requires existence of either a 'X-Amz-Date' or "
                           "a 'Date' header.")
        try:
            t = datetime.datetime.strptime(dates[0], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            raise AwsError(403, "IncompleteSignatureException",
                           f"Date must be in ISO-8601 'basic format'. Got '{dates[0]}'.")
        if date != dates[0][:8] or region != self.region or service != "lambda":
            raise AwsError(403, "InvalidSignatureException",
                           f"Credential should be scoped to a valid region, date and service "
                           f"('{dates[0][:8]}/{self.region}/lambda'), not "
                           f"'{date}/{region}/{service}'.")
        if abs(t.timestamp() - self.now()) > self.max_skew:
            raise AwsError(403, "InvalidSignatureException",
                           f"Signature expired: {dates[0]} is now earlier or later than the "
                           f"server's time by more than {self.max_skew} seconds.")
        if "host" not in rec.signed_headers:
            raise AwsError(403, "InvalidSignatureException",
                           "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                           "Authorization.")
        if rec.signed_headers != sorted(set(rec.signed_headers)):
            raise AwsError(403, "InvalidSignatureException",
                           "SignedHeaders must be sorted, lower-case and unique.")
        # The request as the server sees it, limited to what was signed.
        req = AWSRequest(method=method, url=f"http://{self.region}.invalid{path}", data=body)
        for n, v in headers:
            if n.lower() in rec.signed_headers:
                req.headers[n] = v
        missing = set(rec.signed_headers) - {n.lower() for n, _ in headers}
        if missing:
            raise AwsError(403, "InvalidSignatureException",
                           f"Signed header(s) {sorted(missing)} not in the request.")
        if query:
            pairs = []
            for part in query.split("&"):
                k, _, v = part.partition("=")
                # percent-decoded, '+' left a plus (RFC 3986; botocore
                # re-encodes the decoded text).
                pairs.append((unquote_to_bytes(k).decode("utf-8", "replace"),
                              unquote_to_bytes(v).decode("utf-8", "replace")))
            req.params = pairs
        req.context["timestamp"] = dates[0]
        auth = SigV4Auth(Credentials(ak, secret, token), "lambda", self.region)
        creq = auth.canonical_request(req)
        rec.canonical_request = creq
        sts = auth.string_to_sign(req, creq)
        want = auth.signature(sts, req)
        if auth.signed_headers(auth.headers_to_sign(req)) != signed:
            raise AwsError(403, "InvalidSignatureException",
                           "The request signature we calculated does not match the signature "
                           "you provided: botocore does not sign some of the SignedHeaders "
                           f"({signed}).")
        if not hmac.compare_digest(want, sig):
            raise AwsError(403, "InvalidSignatureException",
                           "The request signature we calculated does not match the signature "
                           "you provided. Check your AWS Secret Access Key and signing method. "
                           "Consult the service documentation for details.\n\n"
                           f"The Canonical String for this request should have been\n'{creq}'\n\n"
                           f"The String-to-Sign should have been\n'{sts}'\n")
        rec.verified = True

    # -- invocation

    def invoke(self, rec, path, query, headers, body):
        m = INVOKE_RE.match(path)
        if m is None:
            raise AwsError(404, "UnknownOperationException", "Unknown operation", "service")
        name = unquote_to_bytes(m.group(1)).decode("utf-8", "replace")
        qualifier = None
        for part in query.split("&") if query else []:
            k, _, v = part.partition("=")
            if unquote_to_bytes(k) == b"Qualifier":
                qualifier = unquote_to_bytes(v).decode("utf-8", "replace")
        fn, derived = self._parse_name(name)
        if derived is not None and qualifier is not None and derived != qualifier:
            raise AwsError(400, "InvalidParameterValueException",
                           "The derived qualifier from the function name does not match the "
                           "specified qualifier.", "service")
        qualifier = qualifier or derived
        rec.function, rec.qualifier = fn, qualifier
        if qualifier is not None and not QUALIFIER_RE.match(qualifier):
            raise AwsError(400, "ValidationException",
                           "1 validation error detected: Value at 'qualifier' failed to satisfy "
                           "constraint", "service")
        f = self.functions.get(fn)
        if f is None or (qualifier or "$LATEST") not in f.versions:
            raise AwsError(404, "ResourceNotFoundException",
                           f"Function not found: {self.arn(fn, qualifier)}", "service")
        itype = next((v for n, v in headers if n.lower() == "x-amz-invocation-type"),
                     "RequestResponse")
        rec.invocation_type = itype
        if itype not in ("RequestResponse", "Event", "DryRun"):
            raise AwsError(400, "InvalidParameterValueException",
                           f"Unsupported invocation type {itype}", "service")
        limit = MAX_SYNC_PAYLOAD if itype == "RequestResponse" else MAX_ASYNC_PAYLOAD
        if len(body) > limit:
            raise AwsError(413, "RequestTooLargeException",
                           "Request must be smaller than %d bytes for the InvokeFunction operation"
                           % limit, "service")
        version = f.versions[qualifier or "$LATEST"]
        if itype == "DryRun":
            return 204, [], b""
        if f.raw:
            return f.handler(body, rec)
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            raise AwsError(400, "InvalidRequestContentException",
                           "Could not parse request body into json: Could not parse payload "
                           "into json", "service")
        request_id = str(uuid.uuid4())
        ctx = Context(fn, version, self.arn(fn, qualifier), request_id,
                      time.time() * 1000 + 3000)
        hdrs = [("X-Amz-Executed-Version", version)]
        if any(n.lower() == "x-amz-log-type" and v == "Tail" for n, v in headers):
            hdrs.append(("X-Amz-Log-Result", base64.b64encode(b"").decode()))
        try:
            result = f.handler(event, ctx)
            out = json.dumps(result).encode()
        except NodeFunctionError as e:  # as Lambda's Node.js runtime reports it
            hdrs.append(("X-Amz-Function-Error", "Unhandled"))
            out = json.dumps(e.answer).encode()
        except Exception as e:  # the function's error, as Lambda's Python runtime reports it
            hdrs.append(("X-Amz-Function-Error", "Unhandled"))
            out = json.dumps({
                "errorMessage": str(e),
                "errorType": type(e).__name__,
                "requestId": request_id,
                "stackTrace": traceback.format_tb(e.__traceback__),
            }).encode()
        if itype == "Event":
            return 202, [], b""
        return 200, hdrs, out

    def _parse_name(self, name):
        """(function, qualifier derived from the name or None)."""
        parts = name.split(":")
        if name.startswith("arn:"):
            # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
            if len(parts) not in (7, 8) or parts[1] != "aws" or parts[2] != "lambda" or \
                    parts[5] != "function":
                raise AwsError(400, "ValidationException",
                               "1 validation error detected: Value at 'functionName' failed to "
                               "satisfy constraint", "service")
            if parts[3] != self.region or parts[4] != self.account:
                raise AwsError(403, "AccessDeniedException",
                               "The function's region or account is not this endpoint's.",
                               "service")
            fn, q = parts[6], parts[7] if len(parts) == 8 else None
        elif len(parts) in (3, 4) and parts[1] == "function":
            if parts[0] != self.account:
                raise AwsError(403, "AccessDeniedException",
                               "The function's account is not this endpoint's.", "service")
            fn, q = parts[2], parts[3] if len(parts) == 4 else None
        elif len(parts) in (1, 2):
            fn, q = parts[0], parts[1] if len(parts) == 2 else None
        else:
            fn, q = None, None
        if fn is None or not FUNCTION_RE.match(fn):
            raise AwsError(400, "ValidationException",
                           "1 validation error detected: Value at 'functionName' failed to "
                           "satisfy constraint", "service")
        return fn, q


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    srv = None  # set by LambdaServer

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        self._handle()

    def do_GET(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def _handle(self):
        srv = self.srv
        headers = list(self.headers.items())
        if any(n.lower() == "transfer-encoding" for n, _ in headers):
            self._answer(411, [], b"")  # gatehouse sends Content-Length
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = Recorded(self.command, self.path, headers, body)
        path, _, query = self.path.partition("?")
        try:
            srv.verify(rec, self.command, path, query, headers, body)
            if self.command != "POST":
                raise AwsError(405, "MethodNotAllowedException", "Method not allowed", "service")
            status, hdrs, out = srv.invoke(rec, path, query, headers, body)
        except AwsError as e:
            rec.error = e.code
            msg = {"message": e.message} if e.kind == "auth" else \
                {"Type": "User", "message": e.message}
            status, hdrs, out = e.status, [("x-amzn-ErrorType", e.code)], \
                json.dumps(msg).encode()
        rec.status = status
        # Recorded before the answer: a client that sends its next request
        # after reading this answer finds this one recorded first.
        srv._record(rec)
        self._answer(status, hdrs, out)

    def _answer(self, status, hdrs, body):
        mode = self.srv.answer_mode
        if mode is not None:
            self._answer_cut(status, hdrs, body, mode)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for n, v in hdrs:
            self.send_header(n, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer_cut(self, status, hdrs, body, mode):
        import socket as _socket
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                 "Content-Type: application/json", f"x-amzn-RequestId: {uuid.uuid4()}"]
        lines += [f"{n}: {v}" for n, v in hdrs]
        if mode == "chunked":
            lines.append("Transfer-Encoding: chunked")
            out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                           for i in range(0, len(body), 7)) + b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            out = body
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + out
        self.connection.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        step = 1 if mode == "bytewise" else len(data)
        for i in range(0, len(data), step):
            self.connection.sendall(data[i:i + step])
