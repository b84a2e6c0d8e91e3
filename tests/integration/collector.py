#!/usr/bin/env python3
"""An OpenTelemetry collector stand-in for the tracing integration tests.

    python3 collector.py PORT OUTFILE [--slow SECONDS] [--status N]

Serves POST /v1/traces on 127.0.0.1:PORT. Each body is checked against the
OTLP/HTTP JSON shape (ExportTraceServiceRequest); each span received is
appended to OUTFILE as one JSON line:

    {"resource": {...attributes as a dict...}, "scope": "gatehouse",
     "span": {...the span as received...}, "errors": [...shape errors...]}

Bodies that are not JSON at all are recorded as {"errors": [...], "raw": ...}.
The answer is 200 `{}` (or --status N), after sleeping --slow SECONDS.

validate_otlp(body) is importable: it returns a list of error strings, empty
when the body is a well-formed request.
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
DECIMAL = re.compile(r"^[0-9]+$")
SPAN_KINDS = {0, 1, 2, 3, 4, 5}
STATUS_CODES = {0, 1, 2}


def _check_any_value(v, where, errors):
    if not isinstance(v, dict) or len(v) != 1:
        errors.append(f"{where}: value must be an object with exactly one field")
        return
    (kind, val), = v.items()
    if kind == "stringValue":
        if not isinstance(val, str):
            errors.append(f"{where}: stringValue must be a string")
    elif kind == "intValue":
        # proto3 JSON: int64 is a decimal string (a number is also accepted
        # by parsers, but gatehouse promises strings).
        if not (isinstance(val, str) and re.match(r"^-?[0-9]+$", val)):
            errors.append(f"{where}: intValue must be a decimal string, not {val!r}")
    elif kind == "boolValue":
        if not isinstance(val, bool):
            errors.append(f"{where}: boolValue must be a boolean")
    elif kind == "doubleValue":
        if not isinstance(val, (int, float)) or isinstance(val, bool):
            errors.append(f"{where}: doubleValue must be a number")
    elif kind in ("arrayValue", "kvlistValue", "bytesValue"):
        pass
    else:
        errors.append(f"{where}: unknown value kind {kind!r}")


def _check_attributes(attrs, where, errors):
    if not isinstance(attrs, list):
        errors.append(f"{where}: attributes must be an array")
        return
    seen = set()
    for i, a in enumerate(attrs):
        w = f"{where}.attributes[{i}]"
        if not isinstance(a, dict):
            errors.append(f"{w}: must be an object")
            continue
        key = a.get("key")
        if not isinstance(key, str) or not key:
            errors.append(f"{w}: key must be a non-empty string")
        elif key in seen:
            errors.append(f"{w}: duplicate key {key!r}")
        else:
            seen.add(key)
        _check_any_value(a.get("value"), f"{w}({key})", errors)


def _check_span(s, where, errors):
    if not isinstance(s, dict):
        errors.append(f"{where}: span must be an object")
        return
    if not isinstance(s.get("traceId"), str) or not HEX32.match(s["traceId"]):
        errors.append(f"{where}: traceId must be 32 lower-case hex digits")
    elif s["traceId"] == "0" * 32:
        errors.append(f"{where}: traceId must not be all zero")
    if not isinstance(s.get("spanId"), str) or not HEX16.match(s["spanId"]):
        errors.append(f"{where}: spanId must be 16 lower-case hex digits")
    elif s["spanId"] == "0" * 16:
        errors.append(f"{where}: spanId must not be all zero")
    if "parentSpanId" in s and s["parentSpanId"] != "":
        if not isinstance(s["parentSpanId"], str) or not HEX16.match(s["parentSpanId"]):
            errors.append(f"{where}: parentSpanId must be 16 lower-case hex digits")
    if "traceState" in s and not isinstance(s["traceState"], str):
        errors.append(f"{where}: traceState must be a string")
    if not isinstance(s.get("name"), str) or not s["name"]:
        errors.append(f"{where}: name must be a non-empty string")
    if s.get("kind") not in SPAN_KINDS or isinstance(s.get("kind"), bool):
        errors.append(f"{where}: kind must be an integer 0..5")
    times = []
    for f in ("startTimeUnixNano", "endTimeUnixNano"):
        v = s.get(f)
        if not isinstance(v, str) or not DECIMAL.match(v):
            errors.append(f"{where}: {f} must be a decimal string (fixed64 in proto3 JSON)")
        else:
            times.append(int(v))
    if len(times) == 2:
        if times[0] > times[1]:
            errors.append(f"{where}: ends before it starts")
        # Nanoseconds since the epoch: after 2001 in ns is > 1e18. Catches
        # seconds or milliseconds sent by mistake.
        if times[0] < 10**18:
            errors.append(f"{where}: startTimeUnixNano {times[0]} is not in nanoseconds")
    if "attributes" in s:
        _check_attributes(s["attributes"], where, errors)
    if "status" in s:
        st = s["status"]
        if not isinstance(st, dict):
            errors.append(f"{where}: status must be an object")
        else:
            code = st.get("code", 0)
            if code not in STATUS_CODES or isinstance(code, bool):
                errors.append(f"{where}: status.code must be 0, 1 or 2")
            if "message" in st and not isinstance(st["message"], str):
                errors.append(f"{where}: status.message must be a string")


def validate_otlp(body):
    """Errors in an OTLP/HTTP JSON ExportTraceServiceRequest (bytes, str or
    an already parsed object); an empty list when it is well formed."""
    errors = []
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as e:
            return [f"body is not UTF-8: {e}"]
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as e:
            return [f"body is not JSON: {e}"]
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    rs = body.get("resourceSpans")
    if not isinstance(rs, list) or not rs:
        return ["resourceSpans must be a non-empty array"]
    for i, r in enumerate(rs):
        w = f"resourceSpans[{i}]"
        if not isinstance(r, dict):
            errors.append(f"{w}: must be an object")
            continue
        res = r.get("resource")
        if not isinstance(res, dict):
            errors.append(f"{w}.resource must be an object")
        else:
            _check_attributes(res.get("attributes", []), f"{w}.resource", errors)
            names = [a.get("key") for a in res.get("attributes", []) if isinstance(a, dict)]
            if "service.name" not in names:
                errors.append(f"{w}.resource: service.name attribute missing")
        ss = r.get("scopeSpans")
        if not isinstance(ss, list) or not ss:
            errors.append(f"{w}.scopeSpans must be a non-empty array")
            continue
        for j, s in enumerate(ss):
            ws = f"{w}.scopeSpans[{j}]"
            if not isinstance(s, dict):
                errors.append(f"{ws}: must be an object")
                continue
            scope = s.get("scope")
            if scope is not None and (not isinstance(scope, dict)
                                      or not isinstance(scope.get("name", ""), str)):
                errors.append(f"{ws}.scope must be an object with a string name")
            spans = s.get("spans")
            if not isinstance(spans, list):
                errors.append(f"{ws}.spans must be an array")
                continue
            for k, sp in enumerate(spans):
                _check_span(sp, f"{ws}.spans[{k}]", errors)
    return errors


def _attr_dict(attrs):
    out = {}
    for a in attrs or []:
        if isinstance(a, dict) and isinstance(a.get("value"), dict) and a["value"]:
            (_, v), = list(a["value"].items())[:1]
            out[a.get("key")] = v
    return out


def records(body):
    """The lines written to OUTFILE for one request body."""
    errors = validate_otlp(body)
    try:
        doc = json.loads(body)
        rs = doc["resourceSpans"]
        assert isinstance(rs, list)
    except Exception:  # noqa: BLE001 - anything unreadable is recorded raw
        return [{"errors": errors, "raw": body.decode("utf-8", "replace")}]
    out = []
    for r in rs:
        if not isinstance(r, dict):
            continue
        resource = _attr_dict((r.get("resource") or {}).get("attributes"))
        for s in r.get("scopeSpans") or []:
            if not isinstance(s, dict):
                continue
            scope = (s.get("scope") or {}).get("name")
            for sp in s.get("spans") or []:
                out.append({"resource": resource, "scope": scope, "span": sp,
                            "errors": errors})
    if not out and errors:
        out.append({"errors": errors})
    return out


class _Handler(BaseHTTPRequestHandler):
    server_version = "collector-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read OUTFILE, not stderr
        pass

    def _answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        if self.path != "/v1/traces":
            self._answer(404, '{"error":"not found"}')
            return
        ctype = self.headers.get("Content-Type", "")
        lines = records(body)
        if not ctype.startswith("application/json"):
            for rec in lines:
                rec.setdefault("errors", []).append(f"Content-Type is {ctype!r}")
        cfg = self.server.cfg
        with cfg["lock"]:
            with open(cfg["outfile"], "a", encoding="utf-8") as f:
                for rec in lines:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")
        if cfg["slow"] > 0:
            time.sleep(cfg["slow"])
        self._answer(cfg["status"], "{}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("outfile")
    ap.add_argument("--slow", type=float, default=0.0, help="sleep before answering")
    ap.add_argument("--status", type=int, default=200, help="answer with this status")
    args = ap.parse_args(argv)
    open(args.outfile, "a", encoding="utf-8").close()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    srv.daemon_threads = True
    srv.cfg = {"outfile": args.outfile, "slow": args.slow, "status": args.status,
               "lock": threading.Lock()}
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
