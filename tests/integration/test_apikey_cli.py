"""gatehouse apikey: the built binary's subcommands against a real store file.

create prints the key once (and nothing ever prints it again, nor does the
file hold it), list/show hide secrets and hashes, revoke, rotate with grace,
usage over UTC periods (checked against Python's calendar), import of AWS API
Gateway CSV files written by Python's csv module (good rows, bad rows with
their lines, nothing imported on error), keys surviving new processes, the
CLI beside another writer of the same file, and misuse."""

import base64
import csv
import datetime
import hashlib
import io
import json
import os
import re
import sqlite3
import stat
import subprocess

import pytest

from harness import free_port, gatehouse_bin

KEY_RE = re.compile(r"^gh_([a-z2-7]{12})_[0-9A-Za-z]{43}$")


def run(*args, cwd, stdin=None, timeout=30):
    binary = gatehouse_bin()
    if not binary.exists():
        pytest.fail(f"gatehouse binary not found at {binary}")
    return subprocess.run([str(binary), "apikey", *args], capture_output=True, cwd=cwd, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "GH_CONFIG_NO_DNS": "1"})


def ok(*args, cwd):
    p = run(*args, cwd=cwd)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout.decode(), p.stderr.decode()


def create(cwd, *extra):
    out, err = ok("create", *extra, cwd=cwd)
    lines = out.splitlines()
    assert len(lines) == 1, out
    m = KEY_RE.match(lines[0])
    assert m, out
    return lines[0], m.group(1), err


def list_json(cwd, *extra):
    out, _ = ok("list", "--json", *extra, cwd=cwd)
    return json.loads(out)


def store_bytes(cwd):
    """Every byte of the store: the file and its WAL."""
    data = b""
    for name in ("gatehouse.db", "gatehouse.db-wal"):
        p = cwd / "state" / name
        if p.exists():
            data += p.read_bytes()
    return data


def derived_id(key):
    """The documented id of an imported key: SHA-256("gatehouse api key id" NUL key), 60 bits, base32."""
    md = hashlib.sha256(b"gatehouse api key id\0" + key.encode()).digest()
    return base64.b32encode(md[:8]).decode().lower()[:12]


def test_create_prints_the_key_once_and_never_again(tmp_path):
    key, kid, err = create(tmp_path, "--consumer", "orders-app", "--plan", "gold", "--scopes",
                           "orders.read,orders.write", "--expires", "90d", "--description", "first")
    secret = key[16:]
    assert kid in err and "orders-app" in err and "shown this once" in err, err
    assert secret not in err
    # the default store: state/gatehouse.db, private
    st = tmp_path / "state"
    assert stat.S_IMODE(st.stat().st_mode) == 0o700
    assert stat.S_IMODE((st / "gatehouse.db").stat().st_mode) == 0o600
    for args in (("list",), ("list", "--json"), ("show", kid), ("show", kid, "--json"), ("usage", kid)):
        out, err2 = ok(*args, cwd=tmp_path)
        assert secret not in out and secret not in err2, args
        assert key not in out
    # the file holds neither the key nor its secret, only SHA-256(key)
    data = store_bytes(tmp_path)
    assert key.encode() not in data and secret.encode() not in data
    assert hashlib.sha256(key.encode()).digest() in data
    [rec] = list_json(tmp_path)
    assert rec["id"] == kid and rec["state"] == "valid" and rec["consumer"] == "orders-app"
    assert rec["plan"] == "gold" and rec["scopes"] == ["orders.read", "orders.write"]
    assert rec["source"] == "generated" and rec["description"] == "first"
    assert "hash" not in rec and "key" not in rec
    created = datetime.datetime.fromisoformat(rec["created"].replace("Z", "+00:00"))
    expires = datetime.datetime.fromisoformat(rec["expires"].replace("Z", "+00:00"))
    assert expires - created == datetime.timedelta(days=90)
    # --json create: the key is in the JSON, once
    out, _ = ok("create", "--consumer", "x", "--json", cwd=tmp_path)
    doc = json.loads(out)
    assert KEY_RE.match(doc["key"]) and doc["key"][3:15] == doc["id"]


def test_keys_are_distinct_and_survive_new_processes(tmp_path):
    made = {}
    for i in range(5):
        key, kid, _ = create(tmp_path, "--consumer", f"c{i}")
        made[kid] = key
    assert len(set(made.values())) == 5
    recs = list_json(tmp_path)
    # oldest first (keys made in one second: by id)
    assert sorted(r["id"] for r in recs) == sorted(made)
    assert [(r["created"], r["id"]) for r in recs] == sorted((r["created"], r["id"]) for r in recs)
    assert [r["consumer"] for r in list_json(tmp_path, "--consumer", "c3")] == ["c3"]
    out, _ = ok("list", cwd=tmp_path)
    assert out.splitlines()[0].split()[:3] == ["ID", "STATE", "CONSUMER"]
    assert len(out.splitlines()) == 6


def test_revoke(tmp_path):
    _, kid, _ = create(tmp_path, "--consumer", "alice")
    _, other, _ = create(tmp_path, "--consumer", "alice")
    out, _ = ok("revoke", kid, cwd=tmp_path)
    assert kid in out
    states = {r["id"]: r["state"] for r in list_json(tmp_path)}
    assert states == {kid: "revoked", other: "valid"}
    p = run("revoke", kid, cwd=tmp_path)
    assert p.returncode == 1 and b"revoked before" in p.stderr
    p = run("revoke", "aaaaaaaaaaaa", cwd=tmp_path)
    assert p.returncode == 1 and b"no key with id aaaaaaaaaaaa" in p.stderr
    for bad in ("../../etc/pass", "AAAAAAAAAAAA", "aaaaaaaaaaaa' OR '1'='1", ""):
        p = run("revoke", bad, cwd=tmp_path)
        assert p.returncode == 1 and b"is not a key id" in p.stderr, (bad, p.stderr)
    # a revoked key cannot be rotated
    p = run("rotate", kid, cwd=tmp_path)
    assert p.returncode == 1 and b"revoked" in p.stderr


def test_rotate_with_grace(tmp_path):
    old_key, old, _ = create(tmp_path, "--consumer", "alice", "--plan", "gold", "--scopes", "a,b",
                             "--expires", "30d", "--description", "d")
    out, err = ok("rotate", old, "--grace", "2h", cwd=tmp_path)
    new_key = out.strip()
    m = KEY_RE.match(new_key)
    assert m and new_key != old_key, out
    new = m.group(1)
    assert "keeps working until" in err and old in err
    recs = {r["id"]: r for r in list_json(tmp_path)}
    assert recs[old]["state"] == "valid" and recs[old]["replaced_by"] == new
    grace = datetime.datetime.fromisoformat(recs[old]["grace_until"].replace("Z", "+00:00"))
    made = datetime.datetime.fromisoformat(recs[new]["created"].replace("Z", "+00:00"))
    assert grace - made == datetime.timedelta(hours=2)
    for f in ("consumer", "plan", "scopes", "description"):
        assert recs[new][f] == recs[old][f], f
    # the old key's lifetime carries over
    exp = datetime.datetime.fromisoformat(recs[new]["expires"].replace("Z", "+00:00"))
    assert exp - made == datetime.timedelta(days=30)
    listing, _ = ok("list", cwd=tmp_path)
    row = [line for line in listing.splitlines() if line.startswith(old)][0]
    assert row.split()[1] == "grace", row
    # once only; the error names the replacement
    p = run("rotate", old, cwd=tmp_path)
    assert p.returncode == 1 and new.encode() in p.stderr
    # grace 0 stops the old key at once; --expires never
    out, _ = ok("rotate", new, "--grace", "0", "--expires", "never", cwd=tmp_path)
    newer = KEY_RE.match(out.strip()).group(1)
    recs = {r["id"]: r for r in list_json(tmp_path)}
    assert recs[new]["state"] == "replaced" and recs[newer]["expires"] is None


def utc_day(d):
    return int(datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.timezone.utc).timestamp()) // 86400


def test_usage_periods(tmp_path):
    _, kid, _ = create(tmp_path, "--consumer", "alice")
    doc = json.loads(ok("usage", kid, "--json", cwd=tmp_path)[0])
    assert (doc["today"], doc["week"], doc["month"]) == (0, 0, 0)
    assert len(doc["days"]) == 7 and all(d["count"] == 0 for d in doc["days"])
    # counts as a server writes them, for the last 40 days: day i counts i + 1
    today = datetime.datetime.now(datetime.timezone.utc).date()
    db = sqlite3.connect(tmp_path / "state" / "gatehouse.db")
    with db:
        for i in range(40):
            day = today - datetime.timedelta(days=i)
            db.execute("INSERT INTO api_key_usage (key_id, day, count) VALUES (?, ?, ?)", (kid, utc_day(day), i + 1))
        db.execute("INSERT INTO api_key_usage (key_id, day, count) VALUES ('bbbbbbbbbbbb', ?, 999)",
                   (utc_day(today),))
    db.close()
    doc = json.loads(ok("usage", kid, "--json", "--days", "10", cwd=tmp_path)[0])
    monday = today - datetime.timedelta(days=today.weekday())
    first = today.replace(day=1)
    assert doc["today"] == 1
    assert doc["week"] == sum(i + 1 for i in range((today - monday).days + 1))
    assert doc["month"] == sum(i + 1 for i in range((today - first).days + 1))
    assert [d["day"] for d in doc["days"]] == [(today - datetime.timedelta(days=9 - j)).isoformat() for j in range(10)]
    assert [d["count"] for d in doc["days"]] == [10 - j for j in range(10)]
    out, _ = ok("usage", kid, cwd=tmp_path)
    assert re.search(r"^today\s+1$", out, re.M), out
    p = run("usage", kid, "--days", "0", cwd=tmp_path)
    assert p.returncode == 2


AWS_HEADER = ["Name", "Key", "Description", "Enabled", "UsagePlanIds"]


def aws_csv(rows, header=AWS_HEADER, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n"):
    buf = io.StringIO()
    w = csv.writer(buf, quoting=quoting, lineterminator=lineterminator)
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


GOOD_ROWS = [
    ["orders-app", "apikey1234abcdefghij0123456789", "Orders frontend", "TRUE", "c7y23b"],
    ['Smith, "Jane"', "AWS-generated-40-chars-aaaaaaaaaaaaaaaaaa", "a, b and \"c\"", "true", "c7y23b,glvrsr"],
    ["Bob's app", "k" * 128, "", "False", ""],
    ["min", "x" * 20, "caf\u00e9 \u2713", "", ""],
]


@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL])
def test_import_aws_csv(tmp_path, quoting):
    f = tmp_path / "keys.csv"
    f.write_text(aws_csv(GOOD_ROWS, quoting=quoting), encoding="utf-8")
    maps = ("--plan-map", "c7y23b=gold", "--plan-map", "glvrsr=gold", "--plan", "free")
    out, _ = ok("import", str(f), *maps, "--dry-run", cwd=tmp_path)
    assert "would import 4 keys" in out and "(no store yet)" in out
    assert not (tmp_path / "state").exists()
    out, _ = ok("import", str(f), *maps, cwd=tmp_path)
    assert "imported 4 keys" in out and "4 new, 0 updated" in out, out
    recs = {r["id"]: r for r in list_json(tmp_path)}
    assert len(recs) == 4
    for name, key, desc, enabled, plans in GOOD_ROWS:
        r = recs[derived_id(key)]
        assert r["consumer"] == name and r["description"] == desc
        assert r["enabled"] == (enabled.lower() != "false")
        assert r["state"] == ("disabled" if enabled.lower() == "false" else "valid")
        assert r["plan"] == ("gold" if plans else "free")
        assert r["source"] == "aws-import"
    data = store_bytes(tmp_path)
    for _, key, _, _, _ in GOOD_ROWS:
        assert key.encode() not in data
    # again, changed: updates (as AWS), no new keys
    rows = [list(r) for r in GOOD_ROWS]
    rows[0][0] = "orders-app-v2"
    f.write_text(aws_csv(rows, quoting=quoting), encoding="utf-8")
    out, _ = ok("import", str(f), *maps, cwd=tmp_path)
    assert "0 new, 4 updated" in out
    assert list_json(tmp_path, "--consumer", "orders-app-v2")[0]["id"] == derived_id(GOOD_ROWS[0][1])


def test_import_single_quotes_header_order_and_bom(tmp_path):
    f = tmp_path / "keys.csv"
    f.write_bytes(b"\xef\xbb\xbfenabled,NAME,key,usageplanids,Extra\n"
                  b"true,MyFirstApiKey,apikey1234abcdefghij0123456789,'c7y23b,glvrsr',ignored\n")
    ok("import", str(f), "--plan-map", "c7y23b=gold", "--plan-map", "glvrsr=gold", cwd=tmp_path)
    [r] = list_json(tmp_path)
    assert r["consumer"] == "MyFirstApiKey" and r["plan"] == "gold"


def import_fails(tmp_path, text, *args):
    f = tmp_path / "bad.csv"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = list_json(tmp_path) if (tmp_path / "state").exists() else []
    p = run("import", str(f), "--plan-map", "c7y23b=gold", *args, cwd=tmp_path)
    assert p.returncode == 1, (p.stdout, p.stderr)
    after = list_json(tmp_path) if (tmp_path / "state").exists() else []
    assert after == before  # nothing imported
    assert b"nothing was imported" in p.stderr
    return p.stderr.decode()


def test_import_bad_rows_import_nothing(tmp_path):
    secret = "apikeyWITHspace-abcdefghij0123"
    rows = GOOD_ROWS[:1] + [
        ["space", " " + secret, "", "", ""],  # line 3
        ["dup", GOOD_ROWS[0][1], "", "", ""],  # line 4
        ["=HYPERLINK(\"http://evil\")", "apikey1234abcdefghij0000000001", "", "", ""],  # line 5
        ["plan", "apikey1234abcdefghij0000000002", "", "", "zz9999"],  # line 6
        ["short", "tooshort", "", "", ""],  # line 7
        ["enabled", "apikey1234abcdefghij0000000003", "", "maybe", ""],  # line 8
        ["desc", "apikey1234abcdefghij0000000004", "@SUM(A1)", "", ""],  # line 9
        ["ok", "apikey1234abcdefghij0000000005", "", "", ""],  # line 10
    ]
    err = import_fails(tmp_path, aws_csv(rows))
    lines = [l for l in err.splitlines() if re.match(r".*bad\.csv:\d+: ", l)]
    got = {int(re.search(r"bad\.csv:(\d+): ", l).group(1)): l for l in lines}
    assert sorted(got) == [3, 4, 5, 6, 7, 8, 9], err
    assert "space, control" in got[3]
    assert "the same key as line 2" in got[4]
    assert "= + - or @" in got[5] and "= + - or @" in got[9]
    assert "usage plan 'zz9999' has no plan mapping" in got[6]
    assert "shorter than 20" in got[7]
    assert "Enabled must be true or false" in got[8]
    assert "7 errors" in err
    assert secret not in err and GOOD_ROWS[0][1] not in err and "tooshort" not in err


def test_import_broken_files(tmp_path):
    # an unclosed quote; a NUL; a bare CR; a row with a field too many
    err = import_fails(tmp_path, 'Name,Key\nalice,"apikey1234abcdefghij0123456789\n')
    assert "bad.csv:2: a field quoted with \" is not closed" in err
    err = import_fails(tmp_path, b"Name,Key\nal\0ice,apikey1234abcdefghij0123456789\n")
    assert "bad.csv:2: a NUL byte" in err
    err = import_fails(tmp_path, b"Name,Key\nalice,apikey1234abcdefghij0123456789\rbob,x\n")
    assert "carriage return" in err
    err = import_fails(tmp_path, "Name,Key\nalice,apikey1234abcdefghij0123456789,x\n")
    assert "bad.csv:2: 3 fields, and the header row has 2" in err
    err = import_fails(tmp_path, "Key,Description\napikey1234abcdefghij0123456789,x\n")
    assert "the columns Name and Key are required" in err
    err = import_fails(tmp_path, "")
    assert "the file is empty" in err
    # many errors: 100 shown, the rest counted
    err = import_fails(tmp_path, "Name,Key\n" + "a,short\n" * 150)
    assert len([l for l in err.splitlines() if ": Key is refused" in l]) == 100
    assert "and 50 more errors" in err and "150 errors" in err


def test_import_does_not_bring_back_a_revoked_key(tmp_path):
    f = tmp_path / "keys.csv"
    f.write_text(aws_csv(GOOD_ROWS[:1]))
    ok("import", str(f), "--plan-map", "c7y23b=gold", cwd=tmp_path)
    kid = derived_id(GOOD_ROWS[0][1])
    ok("revoke", kid, cwd=tmp_path)
    rows = GOOD_ROWS[:1] + [["new", "apikey1234abcdefghij9999999999", "", "", ""]]
    err = import_fails(tmp_path, aws_csv(rows))
    assert "bad.csv:2: this key (id %s) is in the store and revoked" % kid in err
    assert list_json(tmp_path)[0]["state"] == "revoked"


def test_native_key_with_a_taken_id_is_not_imported(tmp_path):
    key, kid, _ = create(tmp_path, "--consumer", "alice")
    forged = key[:-1] + ("a" if key[-1] != "a" else "b")
    err = import_fails(tmp_path, aws_csv([["mallory", forged, "", "", ""]]))
    assert "taken by another key" in err
    assert list_json(tmp_path)[0]["consumer"] == "alice"


def test_config_and_store_options(tmp_path):
    db = tmp_path / "elsewhere.db"
    _, kid, _ = create(tmp_path, "--consumer", "a", "--store", str(db))
    assert db.exists() and not (tmp_path / "state").exists()
    assert [r["id"] for r in list_json(tmp_path, "--store", str(db))] == [kid]
    cfg = tmp_path / "gh.yaml"
    cfg.write_text(f"""\
store: {{ path: {db} }}
listeners:
  - {{ name: l, listen: 127.0.0.1:1, routes: [ {{ direct_response: {{ status: 200 }} }} ] }}
""")
    assert [r["id"] for r in list_json(tmp_path, "-c", str(cfg))] == [kid]
    # state_dir moves the default store
    cfg2 = tmp_path / "gh2.yaml"
    cfg2.write_text(f"""\
state_dir: {tmp_path / 'st8'}
listeners:
  - {{ name: l, listen: 127.0.0.1:1, routes: [ {{ direct_response: {{ status: 200 }} }} ] }}
""")
    create(tmp_path, "--consumer", "b", "--config", str(cfg2))
    assert (tmp_path / "st8" / "gatehouse.db").exists()
    # both at once; a broken config; a redis store nobody answers for
    p = run("list", "--store", str(db), "-c", str(cfg), cwd=tmp_path)
    assert p.returncode == 2 and b"not both" in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: { kind: redis, path: x.db }\nlisteners: []\n")
    p = run("list", "-c", str(bad), cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.decode().startswith(f"{bad}:1:23: 'path' is a key of a sqlite store"), p.stderr
    gone = tmp_path / "gone.yaml"
    gone.write_text(f"""\
store: {{ kind: redis, address: '127.0.0.1:{free_port()}' }}
listeners:
  - {{ name: l, listen: 127.0.0.1:1, routes: [ {{ direct_response: {{ status: 200 }} }} ] }}
""")
    p = run("list", "-c", str(gone), cwd=tmp_path)
    assert p.returncode == 1 and b"cannot connect to Redis" in p.stderr, p.stderr
    # reading commands do not make a store
    p = run("list", cwd=tmp_path)
    assert p.returncode == 1 and b"no store at state/gatehouse.db" in p.stderr
    assert not (tmp_path / "state").exists()
    # not a gatehouse store
    other = tmp_path / "other.db"
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    p = run("list", "--store", str(other), cwd=tmp_path)
    assert p.returncode == 1 and b"is not a gatehouse store" in p.stderr


def test_beside_another_writer(tmp_path):
    """The CLI while another process holds the store's write lock (a server
    writing usage, another CLI): reads go on, a write waits busy_timeout
    and then says why, and works once the lock is gone."""
    _, kid, _ = create(tmp_path, "--consumer", "a")
    cfg = tmp_path / "gh.yaml"
    cfg.write_text("""\
store: { busy_timeout: 200ms }
listeners:
  - { name: l, listen: 127.0.0.1:1, routes: [ { direct_response: { status: 200 } } ] }
""")
    holder = sqlite3.connect(tmp_path / "state" / "gatehouse.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert [r["id"] for r in list_json(tmp_path, "-c", str(cfg))] == [kid]
        p = run("create", "--consumer", "b", "-c", str(cfg), cwd=tmp_path)
        assert p.returncode == 1 and b"write lock" in p.stderr, p.stderr
        assert p.stdout == b""  # no key printed for a key not made
        p = run("revoke", kid, "-c", str(cfg), cwd=tmp_path)
        assert p.returncode == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ok("revoke", kid, "-c", str(cfg), cwd=tmp_path)
    assert list_json(tmp_path)[0]["state"] == "revoked"


@pytest.mark.parametrize("args,code,says", [
    (("create",), 2, b"create needs --consumer"),
    (("create", "--consumer", "a", "--grace", "1h"), 2, b"does not apply"),
    (("create", "--consumer", "a", "--consumer", "b"), 2, b"given twice"),
    (("create", "--consumer", "a", "--expires", "90"), 2, b"--expires needs a duration"),
    (("create", "--consumer", "a", "--expires", "-1d"), 2, b"--expires needs a duration"),
    (("create", "--consumer", "a", "--expires", "0d"), 2, b"--expires needs a duration"),
    (("create", "--consumer", "a\nb"), 1, b"consumer must be printable ASCII"),
    (("create", "--consumer", " a"), 1, b"must not start or end with a space"),
    (("create", "--consumer", "-rf"), 1, b"must not start with = + - or @"),
    (("create", "--consumer", "a", "--plan", "gold plan"), 1, b"the plan must be"),
    (("create", "--consumer", "a", "--scopes", "x,x"), 1, b"listed twice"),
    (("create", "--consumer", "a", "--description", "\x1b[2J"), 1, b"control characters"),
    (("rotate",), 2, b"needs a key ID"),
    (("rotate", "aaaaaaaaaaaa", "--grace", "soon"), 2, b"--grace needs a duration"),
    (("list", "extra"), 2, b"unexpected argument"),
    (("frobnicate",), 2, b"unknown command"),
    (("list", "--bogus"), 2, b"unknown option --bogus"),
    (("import",), 2, b"needs a FILE.csv"),
    (("import", "x.csv", "--plan-map", "nope"), 2, b"USAGEPLANID=PLAN"),
    (("import", "x.csv", "--plan-map", "a=b", "--plan-map", "a=c"), 2, b"mapped twice"),
    (("import", "missing.csv"), 1, b"missing.csv"),
])
def test_misuse(tmp_path, args, code, says):
    p = run(*args, cwd=tmp_path)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert says in p.stderr, p.stderr
    assert p.stdout == b""


def test_help(tmp_path):
    for args in (("--help",), ("create", "--help")):
        p = run(*args, cwd=tmp_path)
        assert p.returncode == 0 and b"gatehouse apikey create --consumer NAME" in p.stdout
    p = subprocess.run([str(gatehouse_bin()), "--help"], capture_output=True)
    assert b"apikey" in p.stdout
