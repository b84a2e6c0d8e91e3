#!/usr/bin/python3
"""Deterministic load helpers for bench/run. Standard library only.

  client.py requests PORT N [CONNS] [--tokens FILE [--from K]] [--header LINE]
      Sends exactly N `GET /` requests to 127.0.0.1:PORT over CONNS (default 4)
      persistent keep-alive connections, strictly one request in flight at a
      time (round-robin over the connections), so the proxy does the same work
      for every request whatever the timing. Exits 1 if any answer is not 200
      or a connection is closed early. Prints "ok N".
      With --tokens, each request carries `Authorization: Bearer TOKEN`: a
      FILE of one line repeats that token; otherwise request i sends line
      K + i (from 0), each line once (exits 2 if FILE has too few lines).
      With --header, each request also carries LINE ("x-api-key: KEY").
      With --post BODY, each request is `POST /oauth2/token` with BODY as an
      application/x-www-form-urlencoded body (bench/issuer's token rows).

  client.py status PORT [TOKEN]
      Sends one `GET /` (with `Authorization: Bearer TOKEN` when given) and
      prints the answer's status code.

  client.py idle PORT COUNT
      Opens COUNT connections to 127.0.0.1:PORT, sends one `GET /` on each
      (at most 64 in flight), reads the 200 answer and keeps the connection
      open and idle. Prints "ready OPEN FAILED" once all are done, then holds
      every connection until stdin is closed, then closes them and exits.
"""
import selectors
import socket
import sys

REQ = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: gatehouse-bench\r\n\r\n"


def req_with(token):
    return REQ[:-2] + b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"


def load_requests(path, first, n):
    """The request bytes for --tokens: a list of n, or of 1 for a one-line file."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    if len(lines) == 1:
        return [req_with(lines[0])]
    if first + n > len(lines):
        print(f"{path}: {len(lines)} tokens, {first + n} needed", file=sys.stderr)
        sys.exit(2)
    return [req_with(t) for t in lines[first:first + n]]


class Conn:
    __slots__ = ("sock", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""


def response_complete(buf):
    """Returns (status, total_length) once a whole response is in buf, else None.
    The bench upstream always answers with a Content-Length."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, total


def read_response(c):
    while True:
        got = response_complete(c.buf)
        if got is not None:
            status, total = got
            c.buf = c.buf[total:]
            return status
        data = c.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by the proxy")
        c.buf += data


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def cmd_requests(port, n, nconns, reqs=None):
    reqs = reqs or [REQ]
    conns = [Conn(connect(port)) for _ in range(nconns)]
    bad = 0
    for i in range(n):
        c = conns[i % nconns]
        c.sock.sendall(reqs[i % len(reqs)])
        if read_response(c) != 200:
            bad += 1
    for c in conns:
        c.sock.close()
    if bad:
        print(f"non-200 answers: {bad} of {n}", file=sys.stderr)
        return 1
    print(f"ok {n}")
    return 0


def cmd_idle(port, count):
    sel = selectors.DefaultSelector()
    held = []
    started = failed = 0
    inflight = 0
    while started < count or inflight:
        while started < count and inflight < 64:
            started += 1
            try:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
            except OSError as e:
                print(f"connect: {e}", file=sys.stderr)
                failed += 1
                continue
            c = Conn(s)
            sel.register(s, selectors.EVENT_WRITE, c)
            inflight += 1
        for key, ev in sel.select(timeout=30):
            c = key.data
            try:
                if ev & selectors.EVENT_WRITE:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect failed")
                    c.sock.send(REQ)  # tiny: fits the empty send buffer
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                data = c.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                c.buf += data
                got = response_complete(c.buf)
                if got is None:
                    continue
                sel.unregister(c.sock)
                inflight -= 1
                if got[0] == 200:
                    held.append(c.sock)
                else:
                    failed += 1
                    c.sock.close()
            except OSError:
                sel.unregister(c.sock)
                c.sock.close()
                inflight -= 1
                failed += 1
    print(f"ready {len(held)} {failed}", flush=True)
    sys.stdin.read()
    for s in held:
        s.close()
    return 0


def cmd_status(port, token):
    c = Conn(connect(port))
    c.sock.sendall(req_with(token) if token else REQ)
    print(read_response(c))
    c.sock.close()
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "requests":
        opts = {}
        while len(argv) >= 2 and argv[-2] in ("--tokens", "--from", "--header", "--post"):
            opts[argv[-2]] = argv[-1]
            argv = argv[:-2]
        n = int(argv[2])
        reqs = None
        if "--tokens" in opts:
            reqs = load_requests(opts["--tokens"], int(opts.get("--from", 0)), n)
        if "--post" in opts:
            body = opts["--post"].encode()
            reqs = [b"POST /oauth2/token HTTP/1.1\r\nHost: bench\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body]
            if "--header" in opts:
                reqs = [reqs[0].replace(b"\r\n\r\n", b"\r\n" + opts["--header"].encode() +
                                        b"\r\n\r\n", 1)]
        elif "--header" in opts:
            line = opts["--header"].encode() + b"\r\n\r\n"
            reqs = [r[:-2] + line for r in (reqs or [REQ])]
        return cmd_requests(int(argv[1]), n, int(argv[3]) if len(argv) > 3 else 4, reqs)
    if len(argv) in (2, 3) and argv[0] == "status":
        return cmd_status(int(argv[1]), argv[2] if len(argv) == 3 else None)
    if len(argv) == 3 and argv[0] == "idle":
        return cmd_idle(int(argv[1]), int(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
