"""gatehouse client: the built binary's subcommands against real stores.

create prints the client id and secret once (nothing prints the secret
again, and neither the SQLite file nor Redis holds it: only its SHA-256,
checked here with Python's hashlib), list/show hide hashes, revoke,
rotate-secret with and without grace, a JWKS for private_key_jwt (made by
python3-cryptography, a private key refused), refusals of odd input (names
with control bytes, ids with odd bytes, absurd numbers, a bad JWKS file),
the same store found by --config as the server would, a store of schema
version 1 migrated, and a Redis store shared by two configs."""

import hashlib
import json
import os
import re
import sqlite3
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from harness import gatehouse_bin

ID_RE = re.compile(r"^ghc_[a-z2-7]{16}$")
SECRET_RE = re.compile(r"^ghs_[0-9A-Za-z]{43}$")


def run(*args, cwd, timeout=30):
    binary = gatehouse_bin()
    if not binary.exists():
        pytest.fail(f"gatehouse binary not found at {binary}")
    return subprocess.run([str(binary), "client", *args], capture_output=True, cwd=cwd, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "GH_CONFIG_NO_DNS": "1"})


def ok(*args, cwd):
    p = run(*args, cwd=cwd)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout.decode(), p.stderr.decode()


def refused(*args, cwd, code=1, says=""):
    p = run(*args, cwd=cwd)
    assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
    assert p.stdout == b"", p.stdout
    assert says in p.stderr.decode(), p.stderr
    return p.stderr.decode()


def create(cwd, *extra):
    out, err = ok("create", *extra, cwd=cwd)
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert ID_RE.match(lines["client_id"]), out
    if "client_secret" in lines:
        assert SECRET_RE.match(lines["client_secret"]), out
    return lines["client_id"], lines.get("client_secret"), err


def store_bytes(cwd):
    data = b""
    for name in ("gatehouse.db", "gatehouse.db-wal"):
        p = cwd / "state" / name
        if p.exists():
            data += p.read_bytes()
    return data


def db_row(cwd, cid):
    with sqlite3.connect(cwd / "state" / "gatehouse.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM oauth_clients WHERE id = ?", (cid,)).fetchone()


def show(cwd, cid):
    out, _ = ok("show", cid, "--json", cwd=cwd)
    return json.loads(out)


def write_config(path, store):
    """A configuration the server would run with (YAML is a superset of JSON)."""
    path.write_text(json.dumps({
        "listeners": [{"name": "edge", "listen": "127.0.0.1:8080",
                       "routes": [{"match": {"path": {"prefix": "/"}}, "to": "app"}]}],
        "clusters": {"app": {"endpoints": ["127.0.0.1:9"]}},
        "store": store}))
    return str(path)


def jwk_of(key):
    nums = key.public_key().public_numbers()

    def b64(n):
        import base64
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
    return {"kty": "EC", "crv": "P-256", "x": b64(nums.x), "y": b64(nums.y), "kid": "k1"}


def test_create_prints_the_secret_once_and_the_store_keeps_its_hash(tmp_path):
    cid, secret, err = create(tmp_path, "--name", "Orders service", "--audiences",
                              "https://api.example.com/orders,orders", "--scopes", "orders.read orders.write",
                              "--ttl", "5m")
    assert "shown this once" in err and cid in err and secret not in err, err
    st = tmp_path / "state"
    assert (st / "gatehouse.db").stat().st_mode & 0o777 == 0o600
    # the file holds SHA-256 of the secret, never the secret
    assert secret.encode() not in store_bytes(tmp_path)
    assert secret[4:20].encode() not in store_bytes(tmp_path)
    row = db_row(tmp_path, cid)
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert row["prev_secret_hash"] is None
    d = show(tmp_path, cid)
    assert d["client_id"] == cid
    assert d["name"] == "Orders service"
    assert d["scopes"] == ["orders.read", "orders.write"]
    assert d["audiences"] == ["https://api.example.com/orders", "orders"]
    assert d["auth_methods"] == ["client_secret_basic", "client_secret_post"]
    assert d["token_ttl"] == 300 and d["state"] == "active" and d["has_secret"] is True
    assert d["jwks"] is None and d["revoked"] is None
    # nothing shows the secret or a hash again
    for args in (("show", cid), ("show", cid, "--json"), ("list",), ("list", "--json")):
        out, e = ok(*args, cwd=tmp_path)
        text = out + e
        assert secret not in text and "secret_hash" not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
    out, _ = ok("show", cid, cwd=tmp_path)
    assert "client_secret_basic client_secret_post" in out and "active" in out
    # --json: the secret in the document, once
    out, _ = ok("create", "--name", "b", "--audiences", "x", "--json", cwd=tmp_path)
    d = json.loads(out)
    assert SECRET_RE.match(d["client_secret"]) and ID_RE.match(d["client_id"])
    assert bytes(db_row(tmp_path, d["client_id"])["secret_hash"]) == \
        hashlib.sha256(d["client_secret"].encode()).digest()


def test_list_revoke_and_rotate_secret(tmp_path):
    a, sa, _ = create(tmp_path, "--name", "a", "--audiences", "x")
    b, sb, _ = create(tmp_path, "--name", "b", "--audiences", "y")
    out, _ = ok("list", "--json", cwd=tmp_path)
    got = json.loads(out)
    assert {c["client_id"] for c in got} == {a, b}
    # oldest first; clients made in one second by id
    assert got == sorted(got, key=lambda c: (c["created"], c["client_id"]))
    out, _ = ok("list", cwd=tmp_path)
    assert a in out and b in out and "CLIENT_ID" in out

    # rotate with the default grace: the old hash kept, valid for 24h
    out, err = ok("rotate-secret", a, cwd=tmp_path)
    lines = dict(line.split("=", 1) for line in out.splitlines())
    s2 = lines["client_secret"]
    assert lines["client_id"] == a and SECRET_RE.match(s2) and s2 != sa
    assert "keeps working until" in err and "86400" in err
    row = db_row(tmp_path, a)
    assert bytes(row["secret_hash"]) == hashlib.sha256(s2.encode()).digest()
    assert bytes(row["prev_secret_hash"]) == hashlib.sha256(sa.encode()).digest()
    assert row["prev_valid_until"] - row["secret_rotated_at"] == 86400
    assert show(tmp_path, a)["previous_secret_until"] is not None
    # grace 0: the previous secret stops at once
    out, err = ok("rotate-secret", a, "--grace", "0", "--json", cwd=tmp_path)
    s3 = json.loads(out)["client_secret"]
    row = db_row(tmp_path, a)
    assert bytes(row["secret_hash"]) == hashlib.sha256(s3.encode()).digest()
    assert row["prev_secret_hash"] is None and row["prev_valid_until"] is None
    refused("rotate-secret", a, "--grace", "31d", cwd=tmp_path, code=2, says="--grace")
    refused("rotate-secret", a, "--grace", "-1s", cwd=tmp_path, code=2, says="--grace")

    out, _ = ok("revoke", b, cwd=tmp_path)
    assert out == f"revoked client {b}\n"
    refused("revoke", b, cwd=tmp_path, says="revoked before")
    refused("rotate-secret", b, cwd=tmp_path, says="is revoked")
    d = show(tmp_path, b)
    assert d["state"] == "revoked" and d["revoked"] is not None
    assert bytes(db_row(tmp_path, b)["secret_hash"]) == hashlib.sha256(sb.encode()).digest()
    refused("show", "ghc_aaaaaaaaaaaaaaaa", cwd=tmp_path, says="no client")


def test_jwks_for_private_key_jwt(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "client.jwks"
    pub.write_text(json.dumps({"keys": [jwk_of(key)]}))
    cid, secret, err = create(tmp_path, "--name", "signer", "--audiences", "x", "--jwks", str(pub))
    assert secret is None and "private_key_jwt" in err
    d = show(tmp_path, cid)
    assert d["auth_methods"] == ["private_key_jwt"] and d["has_secret"] is False
    assert d["jwks"]["keys"][0]["x"] == jwk_of(key)["x"]
    assert db_row(tmp_path, cid)["secret_hash"] is None
    refused("rotate-secret", cid, cwd=tmp_path, says="no secret")
    # both kinds at once when asked
    cid2, s2, _ = create(tmp_path, "--name", "both", "--audiences", "x", "--jwks", str(pub),
                         "--auth-methods", "private_key_jwt,client_secret_basic")
    assert SECRET_RE.match(s2)
    assert show(tmp_path, cid2)["auth_methods"] == ["client_secret_basic", "private_key_jwt"]
    # a private key is a mistake to point out, not to register
    priv = dict(jwk_of(key), d="870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE")
    bad = tmp_path / "private.jwks"
    bad.write_text(json.dumps({"keys": [jwk_of(key), priv]}))
    refused("create", "--name", "x", "--audiences", "x", "--jwks", str(bad), cwd=tmp_path, says="JWKS")
    for content, says in ((b"{", "JWKS is refused"), (b"{\"keys\":[]}", "JWKS is refused"),
                          (b"{\"a\":1}\0", "NUL"), (b" " * (33 * 1024), "larger than"),
                          (json.dumps({"kty": "oct", "k": "AAAA"}).encode(), "JWKS")):
        bad.write_bytes(content)
        refused("create", "--name", "x", "--audiences", "x", "--jwks", str(bad), cwd=tmp_path, says=says)
    refused("create", "--name", "x", "--audiences", "x", "--jwks", str(tmp_path / "missing"), cwd=tmp_path)
    refused("create", "--name", "x", "--audiences", "x", "--jwks", str(tmp_path), cwd=tmp_path)
    refused("create", "--name", "x", "--audiences", "x", "--auth-methods", "private_key_jwt",
            cwd=tmp_path, says="needs the client's public keys")
    refused("create", "--name", "x", "--audiences", "x", "--jwks", str(pub), "--auth-methods",
            "client_secret_post", cwd=tmp_path, says="only for private_key_jwt")
    out, _ = ok("list", "--json", cwd=tmp_path)
    assert len(json.loads(out)) == 2  # nothing else was made


@pytest.mark.parametrize("args,says", [
    (("--name", "", "--audiences", "x"), "name must not be empty"),
    (("--name", "a\x1b[2Jb", "--audiences", "x"), "control"),
    (("--name", "=cmd|' /C calc'!A0", "--audiences", "x"), "formula"),
    (("--name", "x" * 129, "--audiences", "x"), "at most 128"),
    (("--name", "a", "--audiences", ""), "at least one audience"),
    (("--name", "a", "--audiences", "https://x/#f"), "fragment"),
    (("--name", "a", "--audiences", "x x"), "twice"),
    (("--name", "a", "--audiences", "x", "--scopes", "a\"b"), "scope"),
    (("--name", "a", "--audiences", "x", "--scopes", " ".join(f"s{i}" for i in range(65))), "more than 64"),
])
def test_create_refusals(tmp_path, args, says):
    refused("create", *args, cwd=tmp_path, says=says)
    assert not (tmp_path / "state" / "gatehouse.db").exists() or \
        json.loads(ok("list", "--json", cwd=tmp_path)[0]) == []


def test_misuse_and_odd_ids(tmp_path):
    create(tmp_path, "--name", "a", "--audiences", "x")
    for args, says in ((("create", "--audiences", "x"), "--name"),
                       (("create", "--name", "a"), "--audiences"),
                       (("create", "--name", "a", "--audiences", "x", "--ttl", "0"), "--ttl"),
                       (("create", "--name", "a", "--audiences", "x", "--ttl", "2d"), "--ttl"),
                       (("create", "--name", "a", "--audiences", "x", "--ttl", "99999999999999999999s"), "--ttl"),
                       (("create", "--name", "a", "--audiences", "x", "--auth-methods", "none"), "--auth-methods"),
                       (("create", "--name", "a", "--name", "b", "--audiences", "x"), "twice"),
                       (("list", "--grace", "1h"), "does not apply"),
                       (("revoke",), "needs a client ID"),
                       (("frobnicate",), "unknown command"),
                       (("list", "--bogus"), "unknown option")):
        refused(*args, cwd=tmp_path, code=2, says=says)
    for cid in ("", "ghc_", "ghc_AAAAAAAAAAAAAAAA", "ghc_aaaaaaaaaaaaaaa1", "ghc_aaaaaaaaaaaaaaaaa",
                "ghc_aaaaaaaaaaaaaaa\n", "ghc_aaaaaaaaaaaaaaa\x7f", "ghc_aaaaaaaaaaaaaaa\u00e9",
                "../ghc_aaaaaaaaaaaaaaaa", "ghc_aaaaaaaaaaaaaaaa' OR '1'='1"):
        for cmd in ("show", "revoke", "rotate-secret"):
            err = refused(cmd, cid, cwd=tmp_path, says="not a client id")
            assert all(0x20 <= ord(ch) < 0x7f or ch == "\n" for ch in err), err
    out, _ = ok("list", "--json", cwd=tmp_path)
    assert [c["state"] for c in json.loads(out)] == ["active"]
    p = run("--help", cwd=tmp_path)
    assert p.returncode == 0 and b"rotate-secret" in p.stdout


def test_config_finds_the_store_and_a_version_1_file_is_migrated(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:
        c.executescript(
            "PRAGMA journal_mode = WAL;"
            "CREATE TABLE api_keys (id TEXT PRIMARY KEY NOT NULL, hash BLOB NOT NULL CHECK "
            "(length(hash) = 32), consumer TEXT NOT NULL, plan TEXT, scopes TEXT NOT NULL DEFAULT '', "
            "description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1, source TEXT NOT "
            "NULL CHECK (source IN ('generated', 'aws-import')), created_at INTEGER NOT NULL, "
            "expires_at INTEGER, revoked_at INTEGER, grace_until INTEGER, replaced_by TEXT) WITHOUT ROWID;"
            "CREATE INDEX api_keys_consumer ON api_keys (consumer);"
            "CREATE TABLE api_key_usage (key_id TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER "
            "NOT NULL, PRIMARY KEY (key_id, day)) WITHOUT ROWID;"
            "PRAGMA user_version = 1; PRAGMA application_id = 1195920211;")
        c.execute("INSERT INTO api_keys (id, hash, consumer, source, created_at) VALUES "
                  "('aaaaaaaaaaaa', ?, 'old', 'generated', 1)", (b"\1" * 32,))
    cfg = write_config(tmp_path / "gh.yaml", {"kind": "sqlite", "path": str(db)})
    cid, secret, _ = create(tmp_path, "--name", "a", "--audiences", "x", "-c", str(cfg))
    out, _ = ok("show", cid, "--json", "--config", str(cfg), cwd=tmp_path)
    assert json.loads(out)["client_id"] == cid
    refused("show", cid, cwd=tmp_path, says="no store")  # the default store is another one
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 3
        assert c.execute("SELECT consumer FROM api_keys").fetchone()[0] == "old"
    p = subprocess.run([str(gatehouse_bin()), "apikey", "list", "--json", "-c", str(cfg)],
                       capture_output=True, cwd=tmp_path, timeout=30)
    assert p.returncode == 0 and json.loads(p.stdout)[0]["id"] == "aaaaaaaaaaaa", p


def test_redis_store_shared(tmp_path, redis_server):
    def cfg(name):
        return write_config(tmp_path / name, {"kind": "redis", "address": f"127.0.0.1:{redis_server.port}",
                                              "prefix": "ghc:"})
    c1, c2 = cfg("a.yaml"), cfg("b.yaml")
    cid, secret, _ = create(tmp_path, "--name", "fleet", "--audiences", "x", "--scopes", "a", "-c", c1)
    assert redis_server.cmd("HGET", f"ghc:client:{cid}", "name") == b"fleet"
    assert redis_server.cmd("HGET", f"ghc:client:{cid}", "secret_hash") == \
        hashlib.sha256(secret.encode()).hexdigest().encode()
    out, _ = ok("show", cid, "--json", "-c", c2, cwd=tmp_path)
    assert json.loads(out)["scopes"] == ["a"]
    out, _ = ok("rotate-secret", cid, "--grace", "1h", "--json", "-c", c2, cwd=tmp_path)
    s2 = json.loads(out)["client_secret"]
    assert redis_server.cmd("HGET", f"ghc:client:{cid}", "prev_secret_hash") == \
        hashlib.sha256(secret.encode()).hexdigest().encode()
    assert redis_server.cmd("HGET", f"ghc:client:{cid}", "secret_hash") == \
        hashlib.sha256(s2.encode()).hexdigest().encode()
    ok("revoke", cid, "-c", c1, cwd=tmp_path)
    out, _ = ok("list", "--json", "-c", c2, cwd=tmp_path)
    assert json.loads(out)[0]["state"] == "revoked"
    # nothing in Redis holds a secret
    for k in redis_server.cmd("KEYS", "ghc:*"):
        t = redis_server.cmd("TYPE", k)
        vals = redis_server.cmd("HGETALL", k) if t == b"hash" else []
        for v in vals:
            assert secret.encode() not in v and s2.encode() not in v
