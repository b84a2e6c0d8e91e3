"""CLI: version, validate (ok and file:line:col errors), --help, misuse,
serve refusing a bad config, signals."""

import re
import signal
import socket
import subprocess

import pytest

from harness import RawConn, fetch, free_port, gatehouse_bin


def run(*args, cwd=None, timeout=20):
    binary = gatehouse_bin()
    if not binary.exists():
        pytest.fail(f"gatehouse binary not found at {binary}")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL)


GOOD = """\
workers: 1
listeners:
  - name: edge
    listen: 127.0.0.1:{port}
    header_timeout: 10s
    max_head: 64KiB
    routes:
      - name: health
        match: {{ path: {{ exact: /health }} }}
        direct_response: {{ status: 200, headers: {{ content-type: text/plain }}, body: "ok\\n" }}
      - name: all
        match:
          path: {{ prefix: / }}
          methods: [GET, POST]
        to: [ {{ cluster: app, weight: 90 }}, {{ cluster: canary, weight: 10 }} ]
        timeout: 15s
clusters:
  app:
    endpoints: [ "127.0.0.1:{up}", {{ address: "127.0.0.1:{up2}", weight: 3 }} ]
    lb: round_robin
    connect_timeout: 2s
  canary:
    endpoints: [ "127.0.0.1:{up3}" ]
"""


def good_text():
    return fmt(free_port())


def fmt(port):
    return GOOD.format(port=port, up=free_port(), up2=free_port(), up3=free_port())


def errors_in(stderr, path, anchored=True):
    """[(line, col, message)] for every 'path:line:col: message' line (for
    serve, which logs, anywhere in a line)."""
    pat = re.compile((r"^" if anchored else "") + re.escape(str(path)) + r":(\d+):(\d+): ?(.+)$")
    out = []
    for line in stderr.splitlines():
        m = pat.search(line.strip())
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def test_version():
    r = run("version")
    assert r.returncode == 0, r
    assert re.fullmatch(r"gatehouse \S+", r.stdout.strip()), r.stdout


def test_validate_ok(tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text(good_text())
    r = run("validate", "-c", str(p))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{p}: ok", r.stdout


def test_examples_validate():
    """Every example a user copies from examples/ loads as it stands."""
    from pathlib import Path
    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
    assert examples, "no examples found"
    for ex in examples:
        r = run("validate", "-c", str(ex))
        assert r.returncode == 0 and r.stdout.strip() == f"{ex}: ok", (ex, r.returncode, r.stdout, r.stderr)


def test_validate_ok_relative_path_is_echoed_as_given(tmp_path):
    (tmp_path / "good.yaml").write_text(good_text())
    r = run("validate", "-c", "good.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "good.yaml: ok", r.stdout


def _replace_line(text, lineno, new):
    lines = text.split("\n")
    lines[lineno - 1] = new
    return "\n".join(lines)


def _insert_line(text, lineno, new):
    lines = text.split("\n")
    lines.insert(lineno - 1, new)
    return "\n".join(lines)


# (id, transform(text) -> text, expected line, acceptable columns or None, word in message or None)
BAD = [
    ("unknown_top_key", lambda t: _insert_line(t, 2, "bogus_key: 1"), 2, {1}, "bogus_key"),
    ("unknown_listener_key", lambda t: _insert_line(t, 5, "    bogus_key: 1"), 5, {5}, "bogus_key"),
    ("unknown_cluster_key", lambda t: t + "    bogus_key: 1\n", 24, {5}, "bogus_key"),
    ("wrong_type_workers", lambda t: _replace_line(t, 1, "workers: many"), 1, {1, 10}, None),
    ("bad_duration", lambda t: _replace_line(t, 5, "    header_timeout: soon"), 5, {5, 21}, None),
    ("bad_size", lambda t: _replace_line(t, 6, "    max_head: lots"), 6, {5, 15}, None),
    ("dangling_cluster", lambda t: _replace_line(t, 15, "        to: nosuch"), 15, {9, 13}, "nosuch"),
    ("dangling_weighted_cluster",
     lambda t: _replace_line(t, 15, "        to: [ { cluster: app, weight: 90 }, { cluster: ghost, weight: 10 } ]"),
     15, None, "ghost"),
    ("bad_lb", lambda t: _replace_line(t, 20, "    lb: fastest"), 20, {5, 9}, None),
    ("bad_regex", lambda t: _replace_line(t, 13, '          path: { regex: "([a-" }'), 13, None, None),
    ("bad_listen", lambda t: _replace_line(t, 4, "    listen: not-an-address"), 4, {5, 13}, None),
    ("yaml_syntax_tab", lambda t: _insert_line(t, 6, "\tbogus: 1"), 6, None, None),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_validate_errors_name_file_line_col(tmp_path, case):
    _, transform, line, cols, word = case
    p = tmp_path / "bad.yaml"
    text = transform(good_text())
    p.write_text(text)
    r = run("validate", "-c", str(p))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    errs = errors_in(r.stderr, p)
    assert errs, f"no '{p}:line:col: message' on stderr:\n{r.stderr}\n--- config ---\n{text}"
    lines = {e[0] for e in errs}
    assert line in lines, f"expected an error on line {line}, got {errs}\n--- config ---\n{text}"
    if cols is not None:
        on_line = [e for e in errs if e[0] == line]
        assert any(e[1] in cols for e in on_line), f"expected column in {cols}: {errs}"
    if word is not None:
        assert any(word in e[2] for e in errs), errs
    assert "ok" not in r.stdout.split(), r.stdout


def test_validate_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    r = run("validate", "-c", str(p))
    assert r.returncode == 1, r
    assert str(p) in r.stderr


def test_serve_refuses_bad_config(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(_replace_line(good_text(), 15, "        to: nosuch"))
    r = run("serve", "-c", str(p), timeout=20)
    assert r.returncode != 0, r
    errs = errors_in(r.stderr, p, anchored=False)
    assert any(e[0] == 15 for e in errs), r.stderr


def test_serve_fails_when_port_taken(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        p = tmp_path / "c.yaml"
        p.write_text(fmt(port))
        r = run("serve", "-c", str(p), timeout=20)
        assert r.returncode != 0, r
        assert r.stderr.strip(), "no message on stderr"
    finally:
        busy.close()


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["validate", "--help"], ["version", "--help"]],
                         ids=["top", "serve", "validate", "version"])
def test_help(argv):
    r = run(*argv)
    assert r.returncode == 0, r
    assert "usage" in r.stdout.lower(), (r.stdout, r.stderr)
    if argv[0] != "--help":
        assert argv[0] in r.stdout


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    ["serve", "--no-such-flag"],
    ["validate", "--no-such-flag", "-c", "x.yaml"],
    ["version", "--no-such-flag"],
    ["--no-such-flag"],
], ids=["subcommand", "serve_flag", "validate_flag", "version_flag", "top_flag"])
def test_bad_usage_exits_2(argv):
    r = run(*argv)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip(), "misuse must say why on stderr"


@pytest.mark.parametrize("argv", [[], ["validate"], ["serve"], ["serve", "-c"], ["serve", "--workers", "x", "-c", "x.yaml"]],
                         ids=["none", "validate_no_c", "serve_no_c", "c_no_value", "workers_not_number"])
def test_incomplete_usage_fails(argv):
    r = run(*argv)
    assert r.returncode in (1, 2), (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_stops_with_status_0(gatehouse, sig):
    g = gatehouse(fmt("$PORT"))
    r = fetch(g.port, "GET", "/health")
    assert r.status == 200 and r.body == b"ok\n"
    assert g.stop(sig, timeout=15) == 0, g.stderr_tail()


def test_sigterm_with_idle_keepalive_client(gatehouse):
    g = gatehouse(fmt("$PORT"))
    c = RawConn(g.port)
    c.request("GET", "/health")
    assert c.read_response().status == 200
    rc = g.stop(signal.SIGTERM, timeout=15)
    c.close()
    assert rc == 0, f"exit status {rc} (None = still running 15s after SIGTERM)\n{g.stderr_tail()}"


def test_cli_workers_flag_serves(gatehouse):
    text = fmt("$PORT").replace("workers: 1\n", "")
    g = gatehouse(text, cli_workers=2)
    for _ in range(10):
        r = fetch(g.port, "GET", "/health")
        assert r.status == 200 and r.body == b"ok\n"


def test_sigterm_lets_in_flight_request_finish(gatehouse, upstream):
    from harness import make_config
    up = upstream()
    g = gatehouse(make_config([up]))
    with RawConn(g.port) as c:
        c.request("GET", "/slow/1")
        up.wait_requests(1)
        g.proc.send_signal(signal.SIGTERM)
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/slow/1", r
    # No second signal: that one may legitimately force an immediate exit.
    try:
        rc = g.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        rc = None
    assert rc == 0, f"exit status {rc} (None = still running 15s after SIGTERM)"


@pytest.mark.parametrize("content,error", [
    (b"t" * 16 + b"\n", None),
    (b"t" * 15, "must hold a token of 16 characters or more"),
    (b"t" * 16 + b"\x01" + b"t" * 4, "holds a non-printable character"),
    (b"t" * 5000, "is larger than 4 KiB"),  # was cut to its first 4096 bytes
], ids=["ok", "short", "control", "oversize"])
def test_admin_token_file(tmp_path, content, error):
    tok = tmp_path / "token"
    tok.write_bytes(content)
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(fmt(free_port()) +
                   f"admin: {{ listen: 127.0.0.1:{free_port()}, token_file: {tok} }}\n")
    r = run("validate", "-c", str(cfg))
    if error is None:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1 and error in r.stdout + r.stderr, (r.stdout, r.stderr)
