"""A client-credentials token endpoint for tests, built on oauthlib's own
server (BackendApplicationServer: RFC 6749 section 4.4 as oauthlib reads
it), minting JWT access tokens with PyJWT. An independent implementation
for gatehouse's token clients to talk to.

    srv = TokenServer(clients={"batch": "s3cret"}, scopes={"batch": ["a", "b"]})
    srv.start(); ... srv.url ... srv.issued ... srv.stop()

Client authentication: client_secret_basic (RFC 6749 section 2.3.1: id and
secret form-decoded after Base64) and client_secret_post. `ttl` is each
token's expires_in; `mode` makes the answers misbehave ("garbage",
"spaces", "mac", "down" (503), "slow" (sleep 10 s))."""

import base64
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus

import jwt as pyjwt
from oauthlib.oauth2 import BackendApplicationServer, RequestValidator

os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http on loopback

ISSUER = "https://idp.test"


class _Client:
    def __init__(self, client_id):
        self.client_id = client_id


class _Validator(RequestValidator):
    def __init__(self, srv):
        self.srv = srv

    def client_authentication_required(self, request, *args, **kwargs):
        return True

    def authenticate_client(self, request, *args, **kwargs):
        auth = request.headers.get("Authorization")
        if auth is not None:
            if not auth.startswith("Basic "):
                return False
            raw = base64.b64decode(auth[6:], validate=True).decode()
            cid, _, sec = raw.partition(":")
            cid, sec, how = unquote_plus(cid), unquote_plus(sec), "client_secret_basic"
        else:
            cid, sec, how = request.client_id, request.client_secret, "client_secret_post"
        ok = cid in self.srv.clients and self.srv.clients[cid] == sec
        self.srv.auth_methods.append((cid, how, ok))
        if ok:
            request.client = _Client(cid)
            request.client_id = cid
        return ok

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        return grant_type == "client_credentials"

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        return set(scopes) <= set(self.srv.scopes.get(client_id, []))

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return list(self.srv.scopes.get(client_id, []))

    def save_bearer_token(self, token, request, *args, **kwargs):
        pass


class TokenServer:
    def __init__(self, key, clients, scopes=None, ttl=60, audience="https://orders.test"):
        """key: a jwt_util Key that signs the tokens."""
        self.key = key
        self.clients = dict(clients)
        self.scopes = dict(scopes or {})
        self.ttl = ttl
        self.audience = audience
        self.mode = None
        self.issued = []        # the tokens' claims, in order
        self.requests = []      # (headers, body) of every request
        self.auth_methods = []  # (client_id, method, ok)
        self._lock = threading.Lock()
        self.oauth = BackendApplicationServer(_Validator(self), token_generator=self._mint,
                                              token_expires_in=lambda req: self.ttl)
        server = self

        class Handler(_Handler):
            srv = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/oauth2/token"
        self._thread = None

    def _mint(self, request, refresh_token=False):
        now = int(time.time())
        c = {"iss": ISSUER, "sub": request.client_id, "aud": self.audience, "iat": now,
             "exp": now + self.ttl, "jti": uuid.uuid4().hex, "client_id": request.client_id,
             "scope": " ".join(request.scopes or [])}
        with self._lock:
            self.issued.append(c)
        return pyjwt.encode(c, self.key.mint_key(), algorithm=self.key.alg,
                            headers={"kid": self.key.kid, "typ": "at+jwt"})

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    srv = None

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode()
        srv = self.srv
        srv.requests.append((dict(self.headers.items()), body))
        mode = srv.mode
        if mode == "slow":
            time.sleep(10)
        if mode == "down":
            return self._answer(503, {"error": "temporarily_unavailable"})
        if mode == "garbage":
            return self._answer(200, None, b"<html>not json</html>")
        if mode == "spaces":
            return self._answer(200, {"access_token": "a b", "token_type": "Bearer",
                                      "expires_in": 60})
        if mode == "mac":
            return self._answer(200, {"access_token": "abc", "token_type": "mac",
                                      "expires_in": 60})
        headers = {k: v for k, v in self.headers.items()}
        h, b, status = srv.oauth.create_token_response(
            f"http://127.0.0.1:{srv.port}{self.path}", http_method="POST", body=body,
            headers=headers)
        self._answer(status, None, b.encode(), h)

    def _answer(self, status, doc, raw=None, headers=None):
        data = raw if raw is not None else json.dumps(doc).encode()
        self.send_response(status)
        hs = dict(headers or {})
        hs.setdefault("Content-Type", "application/json")
        for k, v in hs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
