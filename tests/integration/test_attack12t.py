"""Attacks on the token service (issue 12) that found something, each with
the fix it led to (the branch's report lists what else was tried):

- a reload that moves a gatehouse to another store kept reading that
  store's revocations after the sequence number it had reached in the old
  one: a token revoked early in the new store was taken for good;
- a client secret (or an assertion, or a token) that a client put in the
  query string was written to the access log;
- a key directory, manifest or key file owned by another user was loaded
  (that user could put its own key there and mint tokens).

In-process tests beside these: tests/unit/filters/test_issuer_throttle.c
(others' failures locked out clients that never failed) and
tests/unit/config/test_config.c (http:// issuers on "localhost.example").
"""

import json
import os
import signal
import subprocess

import pytest

from harness import free_port, gatehouse_bin, to_yaml
from issuer_util import (GRANT, api, create_client, decorate, issuer_config, post, start,
                         token)
from ops_util import wait_for


def revoke(g, cid, secret, tok):
    r = post(g, "/oauth2/revoke", "token=" + tok, auth=(cid, secret))
    assert r.status == 200, r


def test_a_reload_to_another_store_reads_its_revocations_from_the_start(gatehouse, upstream,
                                                                       tmp_path):
    """Two gatehouses share the keys and the issuer identifier. B revokes in
    store S1 until A's cursor is at 5, then both move to S2, where B had
    revoked T first (number 1) and five more after it. A must refuse T."""
    up = upstream()
    state = tmp_path / "shared"
    ports = {"a": free_port(), "b": free_port()}

    def cfg(name, db):
        c = issuer_config(ports[name], up, state_dir=state,
                          issuer={"issuer": f"http://127.0.0.1:{ports['a']}"})
        c["store"] = {"kind": "sqlite", "path": str(tmp_path / db)}
        return c

    a = decorate(gatehouse(cfg("a", "s1.db")), f"http://127.0.0.1:{ports['a']}")
    b = gatehouse(cfg("b", "s1.db"))
    cid, secret = create_client(a)
    # B's revocations in S1, learnt by A's poll: A's cursor reaches 5.
    s1 = [token(b, cid, secret)["access_token"] for _ in range(5)]
    for t in s1:
        revoke(b, cid, secret, t)
    wait_for(lambda: api(a, s1[-1]).status == 401, timeout=15)

    def move(g, name, db):
        before = g.stderr.count("reload (SIGHUP): generation")
        g.config_path.write_text(to_yaml({"workers": 1, "drain_timeout": "5s", **cfg(name, db)}))
        g.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: g.stderr.count("reload (SIGHUP): generation") > before, timeout=15)

    move(b, "b", "s2.db")
    cid2, secret2 = create_client(b)
    t = token(b, cid2, secret2)["access_token"]
    revoke(b, cid2, secret2, t)  # number 1 in S2
    for _ in range(5):
        revoke(b, cid2, secret2, token(b, cid2, secret2)["access_token"])
    assert api(a, t).status == 200  # A still reads S1, where t is not revoked
    move(a, "a", "s2.db")
    # A has polled S2 once it refuses a token revoked there after the move.
    u = token(b, cid2, secret2)["access_token"]
    revoke(b, cid2, secret2, u)
    wait_for(lambda: api(a, u).status == 401, timeout=15)
    r = api(a, t)
    assert r.status == 401 and "revoked" in (r.header("www-authenticate") or ""), r


def test_credentials_in_the_query_never_reach_the_access_log(gatehouse, upstream, tmp_path):
    """A client that puts its secret, its assertion or a token in the query
    (RFC 6749 section 2.3.1 says not to; the endpoints ignore it) does not
    have it written to the access log, in any spelling of the name."""
    log = tmp_path / "access.log"
    g = start(gatehouse, upstream(), access_log={"path": str(log)})
    cid, secret = create_client(g)
    tok = token(g, cid, secret)["access_token"]
    post(g, f"/oauth2/token?client_secret={secret}", GRANT, auth=(cid, secret))
    post(g, f"/oauth2/token?client%5Fsecret={secret}&x=1", GRANT, auth=(cid, secret))
    post(g, f"/oauth2/token?client_assertion={tok}", GRANT, auth=(cid, secret))
    post(g, f"/oauth2/introspect?token={tok}", "token=" + tok, auth=(cid, secret))
    post(g, f"/oauth2/revoke?TOKEN={tok}", "token=" + tok, auth=(cid, secret))
    wait_for(lambda: log.exists() and log.read_text().count('"path":"/oauth2/') >= 6, timeout=10)
    text = log.read_text()
    assert secret not in text and tok not in text and tok.split(".")[2] not in text
    queries = [json.loads(l)["query"] for l in text.splitlines() if "/oauth2/" in l]
    assert "client_secret=[redacted]" in queries, queries
    assert "client%5Fsecret=[redacted]&x=1" in queries, queries
    assert "TOKEN=[redacted]" in queries, queries


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_keys_owned_by_another_user_are_refused(gatehouse, upstream, tmp_path):
    """As ssh's StrictModes: a key directory, manifest or key file that
    another user owns is that user's to change (to put its own key in and
    mint tokens), mode bits or not. gatehouse (here root) refuses it; files
    of root or of the user gatehouse runs as are taken."""
    def keys(*args):
        return subprocess.run([str(gatehouse_bin()), "keys", *args, "--state-dir",
                               str(tmp_path / "state")], capture_output=True, text=True,
                              timeout=60)

    kid = keys("rotate").stdout.strip()
    d = tmp_path / "state" / "issuer"
    nobody = 65534
    for path in (d, d / "keys.json", d / f"{kid}.pem"):
        os.chown(path, nobody, -1)
        r = keys("jwks")
        assert r.returncode == 1 and "belongs to uid 65534" in r.stderr, (path, r.stderr)
        os.chown(path, 0, -1)
        assert keys("jwks").returncode == 0
    os.chown(d / f"{kid}.pem", nobody, -1)
    port = free_port()
    cfg = issuer_config(port, upstream(), state_dir=tmp_path / "state")
    g = gatehouse(cfg, wait=False)
    g.expect_exit = True
    assert g.proc.wait(timeout=30) != 0
    assert "belongs to uid 65534" in g.stderr, g.stderr_tail()
