"""Custom authorizer services for gatehouse's tests (loopback only).

AuthzServer is a threaded HTTP/1.1 server that answers every request with
its handler, the way users run an authorizer behind an HTTP endpoint:

- aws formats: the handler gets the JSON event gatehouse POSTed and returns
  the answer: a dict (sent as JSON, 200), or (status, headers, body bytes);
  raising FunctionError(msg) answers 200 with X-Amz-Function-Error and
  Lambda's {errorMessage, errorType} body.
- envoy (ext_authz HTTP protocol): the handler gets the Request (method,
  target, headers, body) and returns (status, headers, body).

Every request is recorded (server.requests) and counted before the handler
runs, so a test asserts how often gatehouse called. A handler may return
HANG (accept, read, never answer until the server stops) to test timeouts;
`closed` records connections the peer closed while a handler was hanging.
"""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = object()


class FunctionError(Exception):
    pass


class Request:
    def __init__(self, method, target, headers, body):
        self.method, self.target, self.headers, self.body = method, target, headers, body

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def json(self):
        return json.loads(self.body)


class AuthzServer:
    def __init__(self, handler, raw=False):
        self.handler = handler
        self.raw = raw
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.peer_closed = 0
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(self.command, self.path, list(self.headers.items()), body)
                with srv.lock:
                    srv.requests.append(req)
                try:
                    out = srv.handler(req if srv.raw else req.json())
                except FunctionError as e:
                    out = (200, [("X-Amz-Function-Error", "Unhandled")],
                           json.dumps({"errorMessage": str(e), "errorType": "Exception"}).encode())
                if out is HANG:
                    # Wait until gatehouse gives up on the call (closes) or
                    # the test ends.
                    self.connection.settimeout(0.05)
                    while not srv.stopping.is_set():
                        try:
                            if self.connection.recv(1) == b"":
                                with srv.lock:
                                    srv.peer_closed += 1
                                break
                        except socket.timeout:
                            continue
                        except OSError:
                            with srv.lock:
                                srv.peer_closed += 1
                            break
                    self.close_connection = True
                    return
                if isinstance(out, (dict, list, str)) and not isinstance(out, tuple):
                    out = (200, [("Content-Type", "application/json")], json.dumps(out).encode())
                status, headers, data = out
                if isinstance(data, str):
                    data = data.encode()
                if isinstance(status, bytes):  # a raw answer, sent as is
                    self.wfile.write(status)
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                self.handle_one()

            do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def calls(self):
        with self.lock:
            return len(self.requests)

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def allow_policy(principal, resource="*", effect="Allow", context=None, usage=None):
    out = {"principalId": principal,
           "policyDocument": {"Version": "2012-10-17",
                              "Statement": [{"Action": "execute-api:Invoke", "Effect": effect,
                                             "Resource": resource}]}}
    if context is not None:
        out["context"] = context
    if usage is not None:
        out["usageIdentifierKey"] = usage
    return out
