#!/usr/bin/python3
"""A tiny upstream for the quickstart: answers every request with a JSON
echo of what it received (method, path, headers, body size), so you can
see what gatehouse forwards. A header name received more than once shows
all its values, as a list. Standard library only."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def headers_seen(msg):
    """The request's headers as a dict; a repeated name maps to the list of
    its values in arrival order, so no copy is hidden."""
    out = {}
    for name, value in msg.items():
        if name not in out:
            out[name] = value
        elif isinstance(out[name], list):
            out[name].append(value)
        else:
            out[name] = [out[name], value]
    return out


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are two writes: without this, Nagle's algorithm
    # holds the body until the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        out = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": headers_seen(self.headers),
            "body_bytes": len(body),
        }, indent=2).encode() + b"\n"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    host, port = sys.argv[1].rsplit(":", 1) if len(sys.argv) > 1 else ("127.0.0.1", "8081")
    try:
        ThreadingHTTPServer((host, int(port)), Echo).serve_forever()
    except KeyboardInterrupt:  # Ctrl-C in `make run`
        pass
