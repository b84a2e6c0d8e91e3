#!/usr/bin/python3
"""A JWKS / OpenID Connect metadata server for gatehouse's tests, run as its
own process so that a test can take it down for real.

    jwks_server.py [--port N] [--port-file F] [--jwks FILE] [--issuer URL] [--max-age S]

Listens on 127.0.0.1 (port 0 picks one); writes the port and a newline to
--port-file (and prints it) once it accepts connections.

  GET  /jwks.json                          the current key set (per mode)
  GET  [/PATH]/.well-known/openid-configuration        OpenID Connect metadata
  GET  /.well-known/oauth-authorization-server[/PATH]   RFC 8414 metadata
       both {"issuer": ..., "jwks_uri": ...}, each served only as "metadata"
       says (404 otherwise)
  POST /control  JSON, every member optional:
       jwks      a new key set to serve (rotation)
       mode      "ok" | "garbage" (not JSON) | "invalid" (JSON, not a JWKS)
                 | "500" | "empty" (200, no body) | "huge" (2 MiB)
                 | "hang" (headers, then no body for 20 s)
       max_age   seconds for Cache-Control: max-age, or null for none
       issuer    the issuer the metadata document names
       jwks_uri  the jwks_uri it names (default: this server's /jwks.json)
       metadata  "oidc" (the default) | "oauth" (RFC 8414 only) | "both"
       reset     true zeroes the fetch counters
  GET  /stats    {"jwks": n, "discovery": n, "other": n, "last_jwks": unix time or null,
                  "metadata_paths": [paths of the metadata requests, served or not]}
Requests to /control and /stats are not counted.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, jwks, issuer, max_age):
        self.lock = threading.Lock()
        self.jwks = jwks
        self.mode = "ok"
        self.max_age = max_age
        self.issuer = issuer
        self.jwks_uri = None
        self.metadata = "oidc"
        self.metadata_paths = []
        self.counts = {"jwks": 0, "discovery": 0, "other": 0}
        self.last_jwks = None


STATE = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "jwks-test/1"
    timeout = 10  # per-connection socket timeout

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def _send(self, status, body, ctype="application/json", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        st = STATE
        if path == "/stats":
            with st.lock:
                doc = dict(st.counts, last_jwks=st.last_jwks, metadata_paths=list(st.metadata_paths))
            return self._send(200, json.dumps(doc))
        if path == "/jwks.json":
            with st.lock:
                st.counts["jwks"] += 1
                st.last_jwks = time.time()
                mode, jwks, max_age = st.mode, st.jwks, st.max_age
            extra = [("Cache-Control", f"public, max-age={max_age}")] if max_age is not None else []
            if mode == "500":
                return self._send(500, '{"error":"boom"}', extra=extra)
            if mode == "garbage":
                return self._send(200, "<html>this is not a key set {{{", "text/html", extra)
            if mode == "invalid":
                return self._send(200, '{"keys": "nope"}', extra=extra)
            if mode == "empty":
                return self._send(200, "", extra=extra)
            if mode == "huge":
                pad = "x" * (2 * 1024 * 1024)
                return self._send(200, '{"keys":[],"pad":"%s"}' % pad, extra=extra)
            if mode == "hang":
                # Headers sent, body never: the client's timeout must fire.
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.flush()
                time.sleep(20)
                return None
            return self._send(200, json.dumps(jwks), "application/jwk-set+json", extra)
        oidc = path.endswith("/.well-known/openid-configuration")
        oauth = path == "/.well-known/oauth-authorization-server" or path.startswith(
            "/.well-known/oauth-authorization-server/")
        if oidc or oauth:
            with st.lock:
                st.metadata_paths.append(path)
                served = st.metadata == "both" or st.metadata == ("oidc" if oidc else "oauth")
            if not served:
                return self._send(404, '{"error":"not found"}')
            with st.lock:
                st.counts["discovery"] += 1
                port = self.server.server_address[1]
                doc = {
                    "issuer": st.issuer or f"http://127.0.0.1:{port}",
                    "jwks_uri": st.jwks_uri or f"http://127.0.0.1:{port}/jwks.json",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            return self._send(200, json.dumps(doc))
        with st.lock:
            st.counts["other"] += 1
        return self._send(404, '{"error":"not found"}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b"{}"
        if self.path != "/control":
            return self._send(404, '{"error":"not found"}')
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            return self._send(400, '{"error":"bad json"}')
        st = STATE
        with st.lock:
            if "jwks" in doc:
                st.jwks = doc["jwks"]
            if "mode" in doc:
                st.mode = str(doc["mode"])
            if "max_age" in doc:
                st.max_age = doc["max_age"]
            if "issuer" in doc:
                st.issuer = doc["issuer"]
            if "jwks_uri" in doc:
                st.jwks_uri = doc["jwks_uri"]
            if "metadata" in doc:
                st.metadata = str(doc["metadata"])
            if doc.get("reset"):
                st.counts = {k: 0 for k in st.counts}
                st.metadata_paths = []
                st.last_jwks = None
            out = {"mode": st.mode, "max_age": st.max_age, "counts": dict(st.counts)}
        return self._send(200, json.dumps(out))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global STATE
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--jwks")
    ap.add_argument("--issuer")
    ap.add_argument("--max-age", type=int)
    a = ap.parse_args()
    jwks = {"keys": []}
    if a.jwks:
        with open(a.jwks) as f:
            jwks = json.load(f)
    STATE = State(jwks, a.issuer, a.max_age)
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.timeout = 1
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.rename(tmp, a.port_file)
    print(port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    main()
