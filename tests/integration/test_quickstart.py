"""`make run`'s quickstart, as shipped: scripts/quickstart, the echo upstream
and examples/quickstart.yaml, copied unchanged into a temp tree and started
on free loopback ports (GH_QUICKSTART_*_PORT). On first run it makes the
signing key and, with `gatehouse token jwks`, its JWKS in state/quickstart/;
the curls it prints are run exactly as printed (with sh, in that tree)
and their outcomes checked: 401 with a Bearer challenge, 200 with the
identity headers, a forged identity header dropped, an API key made with
`gatehouse apikey create` passing with its consumer and then meeting its
plan's quota. A second run keeps the
key. The printed block, with the default ports put back, is in README.md."""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from harness import REPO, free_port, gatehouse_bin
from ops_util import admin_get, wait_for

SHIPPED = ("scripts/quickstart", "scripts/echo-upstream.py", "examples/quickstart.yaml")
DEFAULTS = {"listen": 8080, "upstream": 8081, "admin": 9901}


class Quickstart:
    """scripts/quickstart running in its own process group (as Ctrl-C would
    reach it), its stdout and stderr in files."""

    def __init__(self, tree, ports):
        self.tree = tree
        self.ports = ports
        env = dict(os.environ, GH_QUICKSTART_PORT=str(ports["listen"]),
                   GH_QUICKSTART_UPSTREAM_PORT=str(ports["upstream"]), GH_QUICKSTART_ADMIN_PORT=str(ports["admin"]))
        self.out_path = tree / "quickstart.out"
        self.err_path = tree / "quickstart.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([str(tree / "scripts/quickstart"), str(gatehouse_bin())], cwd=tree, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)

    def out(self):
        return self.out_path.read_text()

    def err(self):
        return self.err_path.read_text()

    def wait_ready(self):
        def up():
            assert self.proc.poll() is None, f"scripts/quickstart exited {self.proc.returncode}: {self.err()}"
            with socket.create_connection(("127.0.0.1", self.ports["upstream"]), timeout=1):
                pass
            return admin_get(self.ports["admin"], "/ready").status == 200 and "Ctrl-C stops it." in self.out()

        wait_for(up, 30, "the quickstart's upstream, gatehouse /ready and its banner")

    def stop(self):
        """SIGTERM to the whole group: gatehouse drains and exits 0, and so
        does the script; returns the script's status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            return None


@pytest.fixture
def tree(tmp_path):
    for rel in SHIPPED:
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst)
    return tmp_path


@pytest.fixture
def start(tree):
    running = []

    def make():
        ports = {name: free_port() for name in DEFAULTS}
        q = Quickstart(tree, ports)
        running.append(q)
        q.wait_ready()
        return q

    yield make
    problems = []
    for q in running:
        rc = q.stop()
        if rc != 0:
            problems.append(f"scripts/quickstart exited {rc} after SIGTERM:\n{q.err()[-3000:]}")
    assert not problems, "\n".join(problems)


def steps(banner):
    """The numbered steps the banner prints: {1: text, ..., 4: text},
    each the lines (comment and commands) up to the next blank line."""
    found = {}
    lines = banner.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^  # (\d)\. ", line)
        if m:
            block = []
            for j in range(i, len(lines)):
                if not lines[j].strip():
                    break
                block.append(lines[j])
            found[int(m.group(1))] = "\n".join(block) + "\n"
    assert sorted(found) == [1, 2, 3, 4], banner
    return found


def sh(tree, script):
    p = subprocess.run(["sh", "-ec", script], cwd=tree, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert p.returncode == 0, f"{script}\nexit {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p.stdout


def parse_curl_i(raw):
    """curl -i output: (status, [(name lower, value)], body bytes)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, raw
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.1 (\d{3}) ", lines[0])
    assert m, lines[0]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.lower(), value.strip()))
    return int(m.group(1)), headers, body


def values(headers, name):
    return [v for n, v in headers if n == name]


def echoed(echo, name):
    """Every value the echo upstream received for header name (any case)."""
    out = []
    for n, v in echo["headers"].items():
        if n.lower() == name:
            out.extend(v if isinstance(v, list) else [v])
    return out


def check_no_token(raw):
    status, headers, body = parse_curl_i(raw)
    assert status == 401, raw
    assert values(headers, "www-authenticate") == ['Bearer realm="gatehouse"'], headers
    assert json.loads(body) == {"error": "unauthorized", "detail": "missing token"}


def check_identity(raw):
    status, headers, body = parse_curl_i(raw)
    assert status == 200, raw
    echo = json.loads(body)
    assert echo["path"] == "/orders/42"
    assert echoed(echo, "x-user") == ["alice"], echo["headers"]
    assert echoed(echo, "x-scopes") == ["orders.read orders.write"], echo["headers"]
    assert b"mallory" not in body, body
    return echo


def run_steps(q):
    s = steps(q.out())
    check_no_token(sh(q.tree, s[1]))
    # Steps 2 and 3 in one shell: step 3 uses the TOKEN step 2 minted.
    split = "@@quickstart-step-3@@"
    raw = sh(q.tree, s[2] + f"printf '%s' '{split}'\n" + s[3])
    second, third = raw.split(split.encode())
    assert "x-user: mallory" in s[3], s[3]
    check_identity(second)
    check_identity(third)
    # Step 4: a key made with the CLI in the store the server reads, its
    # consumer upstream, then its plan's daily quota of five.
    out = sh(q.tree, s[4]).decode()
    assert "x-consumer" in out and "acme" in out, out
    assert out.rstrip().endswith("200 200 200 200 429"), out


def b64u_int(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def test_quickstart_as_shipped(tree, start):
    q = start()
    state = tree / "state/quickstart"
    assert "made a signing key in state/quickstart/key.pem (first run)" in q.out()

    # The key is the user's own; the JWKS is its public half (P-256, kid
    # quickstart-1), made by gatehouse token jwks.
    assert (state / "key.pem").stat().st_mode & 0o077 == 0
    assert state.stat().st_mode & 0o077 == 0
    priv = serialization.load_pem_private_key((state / "key.pem").read_bytes(), password=None)
    pub = priv.public_key().public_numbers()
    keys = json.loads((state / "jwks.json").read_text())["keys"]
    assert len(keys) == 1 and "d" not in keys[0]
    k = keys[0]
    assert (k["kty"], k["crv"], k["alg"], k["kid"]) == ("EC", "P-256", "ES256", "quickstart-1")
    assert (b64u_int(k["x"]), b64u_int(k["y"])) == (pub.x, pub.y)

    # The config it serves is the shipped one, only the addresses moved.
    shipped = (tree / "examples/quickstart.yaml").read_text()
    for name, port in DEFAULTS.items():
        assert shipped.count(f"127.0.0.1:{port}") >= 1, name
    expect = shipped
    for name, port in DEFAULTS.items():
        expect = expect.replace(f"127.0.0.1:{port}", f"@{name}@")
    for name, port in q.ports.items():
        expect = expect.replace(f"@{name}@", f"127.0.0.1:{port}")
    assert (state / "quickstart.yaml").read_text() == expect
    assert "config: state/quickstart/quickstart.yaml" in q.out()

    run_steps(q)

    # A second run keeps the key (tokens minted before stay good) and prints
    # curls that work the same.
    key = (state / "key.pem").read_bytes()
    assert q.stop() == 0, q.err()[-3000:]
    q2 = start()
    assert "made a signing key" not in q2.out()
    assert (state / "key.pem").read_bytes() == key
    run_steps(q2)


def test_readme_shows_the_banner(tree, start):
    """README.md shows what `make run` prints: the banner with the default
    ports, the shipped config and build/gatehouse."""
    q = start()
    banner = q.out()
    begin = banner.index("gatehouse quickstart: listening on")
    end = banner.index("Ctrl-C stops it.") + len("Ctrl-C stops it.")
    block = banner[begin:end]
    for name, port in q.ports.items():
        block = block.replace(f"127.0.0.1:{port}", f"127.0.0.1:{DEFAULTS[name]}")
    block = block.replace(str(gatehouse_bin()), "build/gatehouse")
    block = block.replace("config: state/quickstart/quickstart.yaml", "config: examples/quickstart.yaml")
    block = block.replace("-c state/quickstart/quickstart.yaml", "-c examples/quickstart.yaml")
    readme = (REPO / "README.md").read_text()
    assert block in readme, block
