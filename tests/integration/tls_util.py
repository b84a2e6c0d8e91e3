"""TLS peers for the upstream TLS tests (docs/tls.md).

- Pki: a test CA (and a second, unrelated one) with server and client
  certificates, made by the `openssl` command line into a temp dir; an
  expired certificate is signed under `faketime` (both from scripts/deps).
- TlsUpstream: harness.Upstream (every path: /echo, /bytes, /hash, /die-mid,
  ...) behind Python's ssl module. It records each connection's handshake
  (version, resumed session, ALPN, SNI, client certificate) or the error
  that ended it. The harness closes connections without close_notify (a
  plain socket shutdown); with ?notify=1 on a request whose answer ends the
  connection, close_notify is sent first.
"""

import socket
import ssl
import subprocess
import threading
from pathlib import Path

from harness import Upstream


def _run(args, cwd, faketime=None):
    cmd = (["faketime", faketime] if faketime else []) + args
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")


class Pki:
    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self._ca("ca", "gatehouse test CA")
        self.other_ca = self._ca("other-ca", "an unrelated CA")

    def path(self, name):
        return str(self.dir / name)

    def _ca(self, name, cn):
        _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30", "-subj", f"/CN={cn}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], self.dir)
        return self.path(f"{name}.pem")

    def issue(self, name, dns=("localhost",), ips=("127.0.0.1",), client=False, ca="ca", expired=False):
        """Returns (cert_path, key_path) of a certificate signed by ca."""
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        ext = ["basicConstraints=CA:FALSE",
               "extendedKeyUsage=" + ("clientAuth" if client else "serverAuth")]
        if sans:
            ext.append("subjectAltName=" + ",".join(sans))
        (self.dir / f"{name}.ext").write_text("\n".join(ext) + "\n")
        _run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"], self.dir)
        _run(["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
              "-CAcreateserial", "-out", f"{name}.pem", "-days", "1" if expired else "30",
              "-extfile", f"{name}.ext"], self.dir, faketime="2020-01-01 00:00:00" if expired else None)
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


class Handshake:
    def __init__(self, cid):
        self.cid = cid
        self.ok = False
        self.error = None
        self.version = None
        self.reused = None
        self.alpn = None
        self.sni = None
        self.peer_cn = None

    def __repr__(self):
        return (f"<Handshake conn={self.cid} ok={self.ok} err={self.error} {self.version} "
                f"reused={self.reused} alpn={self.alpn} sni={self.sni} peer={self.peer_cn}>")


class TlsUpstream(Upstream):
    def __init__(self, cert, key, min_version=None, max_version=None, client_ca=None, name="tls"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if min_version:
            ctx.minimum_version = min_version
        if max_version:
            ctx.maximum_version = max_version
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        ctx.set_alpn_protocols(["http/1.1"])
        self._sni = threading.local()

        def on_sni(sock, server_name, c):
            self._sni.name = server_name

        ctx.sni_callback = on_sni
        self.ctx = ctx
        self.handshakes = []
        super().__init__(name=name)

    def done_handshakes(self):
        with self.lock:
            return [h for h in self.handshakes if h.ok]

    def failed_handshakes(self):
        with self.lock:
            return [h for h in self.handshakes if h.error is not None]

    def _serve(self, conn, cid):
        hs = Handshake(cid)
        with self.lock:
            self.handshakes.append(hs)
        self._sni.name = None
        conn.settimeout(20)
        try:
            s = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.cond:
                hs.error = repr(e)
                self._conns.discard(conn)
                self.closed_conns += 1
                self.cond.notify_all()
            conn.close()
            return
        hs.version = s.version()
        hs.reused = s.session_reused
        hs.alpn = s.selected_alpn_protocol()
        hs.sni = self._sni.name
        peer = s.getpeercert()
        if peer:
            hs.peer_cn = dict(x[0] for x in peer["subject"]).get("commonName")
        with self.cond:
            hs.ok = True
            self._conns.discard(conn)
            self._conns.add(s)
            self.cond.notify_all()
        super()._serve(s, cid)

    def _respond(self, conn, req):
        keep = super()._respond(conn, req)
        if not keep and req.query.get("notify") == "1":
            try:
                conn.settimeout(5)
                conn.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
        return keep


class StallServer:
    """Accepts and reads, never answers (a TLS server stuck mid-handshake);
    or, with reset=True, resets each connection once it got the
    ClientHello's first bytes."""

    def __init__(self, reset=False):
        self.reset = reset
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.accepts = 0
        self.hello_bytes = 0
        self._stop = threading.Event()
        self._conns = []
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepts += 1
            c.settimeout(5)
            try:
                d = c.recv(5)
                self.hello_bytes += len(d)
            except OSError:
                pass
            if self.reset:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()
            else:
                self._conns.append(c)

    def stop(self):
        self._stop.set()
        self._t.join(5)
        self.lsock.close()
        for c in self._conns:
            c.close()
