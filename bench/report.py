#!/usr/bin/python3
"""Turns bench/run's results.tsv into the Markdown report: prints it and
writes it to docs/performance.md between the bench markers, keeping every
other line of that file. Standard library only."""
import argparse
import copy
import datetime
import os
import platform
import re
import sys

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
NAMES = {"gatehouse": "gatehouse", "haproxy": "HAProxy", "nginx": "nginx", "h2o": "h2o"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def to_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]


def parse_wrk(path):
    out = {"non2xx": 0, "socket_errors": None}
    try:
        text = open(path).read()
    except OSError:
        return out
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, text, re.M)
        if m:
            out["p" + pct] = to_us(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    return out


def parse_strace(path, n):
    """strace -c summary -> (total calls per request, {syscall: calls per request})."""
    per = {}
    total = None
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            try:
                per[f[-1]] = int(f[3]) / n
            except ValueError:
                pass
        elif f and f[-1] == "total":
            total = int(f[3]) / n
    if total is None:
        return None
    return total, per


def load(path):
    res = {}
    for line in open(path):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            continue
        p, k, v = parts
        res.setdefault(p, {})
        if k == "failed":
            res[p].setdefault("failed", []).append(v)
        else:
            res[p][k] = v
    return res


def metrics(r, a):
    m = {}
    best = None
    for i in range(1, a.rounds + 1):
        if f"wrk_{i}" not in r:
            continue
        w = parse_wrk(r[f"wrk_{i}"])
        w["round"] = i
        if f"cpu_ticks_{i}" in r and w.get("requests"):
            cpu_s = int(r[f"cpu_ticks_{i}"]) / CLK_TCK
            w["cpu_us"] = cpu_s * 1e6 / w["requests"]
            w["cpu_busy"] = cpu_s / a.duration
        if f"foreign_ticks_{i}" in r:
            f0, f1 = (int(x) for x in r[f"foreign_ticks_{i}"].split())
            w["foreign"] = (max(f0, 0) / CLK_TCK / a.duration, max(f1, 0) / CLK_TCK / a.duration)
        m.setdefault("rounds", []).append(w)
        if w.get("rps") and (best is None or w["rps"] > best["rps"]):
            best = w
    if best:
        m.update(best)
        cpus = [w["cpu_us"] for w in m["rounds"] if w.get("cpu_us")]
        if cpus:
            m["cpu_us"] = min(cpus)
    if r.get("strace_file"):
        st = parse_strace(r["strace_file"], a.nsys)
        if st:
            m["syscalls"], m["syscall_mix"] = st
    if r.get("peak_rss_kb"):
        m["peak_rss"] = int(r["peak_rss_kb"]) * 1024
    if r.get("instr_n1") and r.get("instr_n2"):
        m["instr"] = (int(r["instr_n2"]) - int(r["instr_n1"])) / (a.n2 - a.n1)
    if r.get("sig_n1") is not None and r.get("sig_n2") is not None:
        m["sig"] = (int(r["sig_n2"]) - int(r["sig_n1"])) / (a.n2 - a.n1)
    if r.get("idle_held") and int(r["idle_held"]) > 0:
        m["idle"] = (int(r["idle_rss_after_kb"]) - int(r["idle_rss_before_kb"])) * 1024 / int(r["idle_held"])
    return m


def fmt_lat(us):
    if us is None:
        return "–"
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


def fmt(key, v):
    if v is None:
        return "–"
    if key == "rps":
        return f"{v:,.0f}"
    if key in ("p50", "p99"):
        return fmt_lat(v)
    if key == "cpu_us":
        return f"{v:.2f}"
    if key == "cpu_busy":
        return f"{v * 100:.0f}%"
    if key == "syscalls":
        return f"{v:.1f}"
    if key == "instr":
        return f"{v:,.0f}"
    if key == "peak_rss":
        return f"{v / 1048576:.1f} MiB"
    if key == "idle":
        return f"{v:,.0f}"
    return str(v)


COLS = [("rps", "req/s"), ("p50", "p50"), ("p99", "p99"), ("cpu_us", "CPU µs/req"),
        ("cpu_busy", "proxy CPU"), ("instr", "instr/req"), ("syscalls", "syscalls/req"), ("peak_rss", "peak RSS"),
        ("idle", "bytes/idle conn")]
RATIO_COLS = [c for c in COLS if c[0] != "cpu_busy"]


JWT_CASES = [("rs-same", "RS256, same token"), ("rs-fresh", "RS256, fresh token"),
             ("es-same", "ES256, same token"), ("es-fresh", "ES256, fresh token")]


def jwt_metrics(r, a, case):
    """metrics() of one JWT row: the keys jwt:CASE:* of a proxy's results."""
    pre = f"jwt:{case}:"
    sub = {k[len(pre):]: v for k, v in r.items() if k.startswith(pre)}
    ja = copy.copy(a)
    ja.rounds, ja.n1, ja.n2 = a.jwt_rounds, a.jwt_n1, a.jwt_n2
    return metrics(sub, ja) if sub else {}


def render_jwt(res, a, ms):
    """The JWT table, its method, and (appended to notes/raw) its errors and figures."""
    proxies = [p for p in a.jwt_proxies.split() if p in res]
    L, notes, raw = [], [], []
    if not proxies:
        return L, notes, raw
    jm = {p: {c: jwt_metrics(res[p], a, c) for c, _ in JWT_CASES} for p in proxies}
    plain = ms.get("gatehouse", {}).get("instr")
    L.append("")
    L.append("JWT: the same proxies with a JWT check on the route (gatehouse: a provider with "
             "`issuer`, `audiences` and a `jwks` file holding both keys, `cache_entries: 10000`; "
             "HAProxy: `http_auth_bearer`, `jwt_header_query('$.alg')`, `jwt_verify` with the "
             "public key PEM of that alg), in front of the same upstream. Ratios are of instr/req "
             "(lower is better).")
    L.append("")
    L.append("| proxy | case | req/s | CPU µs/req | instr/req | of which OpenSSL's signature check "
             "| ÷ HAProxy, same case | ÷ gatehouse plain |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    pol = jwt_metrics(res["gatehouse"], a, "rs-policy") if "gatehouse" in proxies else {}
    for p in proxies:
        for c, label in JWT_CASES:
            m = jm[p][c]
            hp = jm.get("haproxy", {}).get(c, {}).get("instr")
            v = m.get("instr")
            vs_hp = f"{v / hp:.2f}×" if v and hp else "–"
            vs_plain = f"{v / plain:.3f}×" if p == "gatehouse" and v and plain else "–"
            sig = m.get("sig")
            sig_s = "–" if sig is None else f"{sig:,.0f}" if sig < 500 else f"{sig / 1000:,.1f}k"
            L.append(f"| {NAMES.get(p, p)} | {label} | {fmt('rps', m.get('rps'))} | "
                     f"{fmt('cpu_us', m.get('cpu_us'))} | {fmt('instr', v)} | {sig_s} | {vs_hp} | {vs_plain} |")
            if p == "gatehouse" and c == "rs-same" and pol.get("instr"):
                v = pol["instr"]
                vs_plain = f"{v / plain:.3f}×" if plain else "–"
                L.append(f"| {NAMES.get(p, p)} | RS256, same token, policies over its claims | – | – | "
                         f"{fmt('instr', v)} | 0 | – | {vs_plain} |")
    L.append("")
    L.append("How the JWT figures are taken:")
    L.append("")
    L.append(f"- Keys: RSA 2048 (RS256, kid `rs`) and P-256 (ES256, kid `es`) made by `openssl genpkey` "
             f"on every run; the JWKS by `gatehouse token jwks`; tokens minted by PyJWT "
             f"(bench/tokens.py) with iss, aud, sub, iat, nbf, exp (+1 day), jti and scope: "
             f"RS256 tokens are {a.jwt_len.get('rs', '?')} bytes, ES256 {a.jwt_len.get('es', '?')}. "
             f"\"Same token\": one token on every request (gatehouse answers from its verified-token "
             f"cache; HAProxy has none and verifies every time). \"Fresh token\": every token "
             f"different (own jti and sub).")
    L.append("- Before measuring, each proxy must pass a valid RS256 and ES256 token (200) and refuse a "
             "token with its payload changed, one with its signature changed, one signed by another "
             "key under the same kid, a request without a token, and an `alg: none` token (gatehouse "
             "401, HAProxy 403); the bench leaves out a proxy that does not.")
    L.append(f"- req/s, CPU µs/req: as in the first table, one proxy process per proxy for all four rows, "
             f"{a.jwt_rounds} wrk run{'s' if a.jwt_rounds != 1 else ''} of {a.duration} s per row"
             f"{' (the best kept)' if a.jwt_rounds != 1 else ''}. Same token: `wrk -H 'Authorization: "
             f"Bearer …'`; fresh token: `wrk -s bench/fresh.lua`, cycling through {a.jwt_pool:,} "
             f"tokens per alg, each run starting where the last one stopped, so a token comes back only "
             f"after {a.jwt_pool:,} others, when gatehouse's cache (16,384 entries, random eviction in "
             f"4-way sets) has nearly always dropped it" +
             (" (a simulation of that cache gives under 0.5% hits)." if a.jwt_pool >= 100000 else
              f" (with fewer than 100,000 tokens, a few percent of gatehouse's answers may come from "
              f"its cache)."))
    L.append(f"- instr/req: callgrind as in the first table, one process per proxy, the four rows one after "
             f"another, each: {a.jwt_warmup:,} warm-up requests, then {a.jwt_n1:,} and {a.jwt_n2:,}; "
             f"(I({a.jwt_n2}) − I({a.jwt_n1})) ÷ {a.jwt_n2 - a.jwt_n1:,}. Fresh rows send "
             f"{a.jwt_warmup + a.jwt_n1 + a.jwt_n2:,} distinct tokens, each once.")
    L.append("- of which OpenSSL's signature check: the instructions spent inside OpenSSL's `RSA_verify` "
             "(RS256 rows) or `ECDSA_verify` (ES256 rows), everything they call included, per request, "
             "from the same callgrind dumps. Both proxies use the same libcrypto, which does the "
             "RSA public-key operation or the P-256 point arithmetic there; what a proxy spends "
             "outside it (HTTP, base64url, JSON, SHA-256, EVP dispatch) is the rest of its instr/req.")
    L.append("- HAProxy's `jwt_verify` checks the signature only; gatehouse also checks iss, aud, exp, "
             "nbf and iat, and that the key fits the token's alg, so it does more per fresh token.")
    same = jm.get("gatehouse", {}).get("rs-same", {}).get("instr")
    if pol.get("instr") and same:
        L.append(f"- Policies over claims: gatehouse's JWT config has a second listener whose route adds "
                 f"two authorization policies (an ALLOW of `GET /*` for the issuer's principals with "
                 f"`scope` holding `orders.read`, a DENY of `jti` values `revoked-*`; "
                 f"docs/authorization.md); the same callgrind process sends it the RS256 token as in "
                 f"\"same token\". What the policies add: {pol['instr'] - same:,.0f} instructions per "
                 f"request (issue 10's bar: at most 1,500).")
    for p in proxies:
        r = res[p]
        for key in (p + "-jwt", p + "-jwt-cg"):
            if res.get(key, {}).get("failed"):
                notes.append(f"{NAMES.get(p, p)} (JWT): failed {'; '.join(res[key]['failed'])} (see bench output).")
        bits = []
        for c, label in JWT_CASES:
            m = jm[p][c]
            for w in m.get("rounds", []):
                if w.get("non2xx"):
                    notes.append(f"{NAMES.get(p, p)}, JWT {label}, round {w['round']}: wrk saw "
                                 f"{w['non2xx']:,} non-2xx/3xx responses.")
                se = w.get("socket_errors")
                if se and any(se.values()):
                    notes.append(f"{NAMES.get(p, p)}, JWT {label}, round {w['round']}: wrk socket errors: " +
                                 ", ".join(f"{k} {v}" for k, v in se.items()) + ".")
            if m.get("foreign") and max(m["foreign"]) > 0.05:
                notes.append(f"{NAMES.get(p, p)}, JWT {label}: other processes took "
                             f"{m['foreign'][0] * 100:.0f}% of CPU {a.proxy_cpu} and "
                             f"{m['foreign'][1] * 100:.0f}% of CPU {a.load_cpu} during its best wrk run.")
            pre = f"jwt:{c}:"
            part = []
            if m.get("rounds"):
                part.append("req/s " + " / ".join(f"{w['rps']:,.0f}" if w.get("rps") else "–"
                                                  for w in m["rounds"]))
                if m.get("p99"):
                    part.append(f"p50 {fmt_lat(m.get('p50'))} p99 {fmt_lat(m.get('p99'))}")
            if pre + "instr_n1" in r:
                part.append(f"I({a.jwt_n1})={int(r[pre + 'instr_n1']):,} I({a.jwt_n2})={int(r[pre + 'instr_n2']):,}")
            if part:
                bits.append(f"{c} " + ", ".join(part))
        if p == "gatehouse" and "jwt:rs-policy:instr_n1" in r:
            bits.append(f"rs-policy I({a.jwt_n1})={int(r['jwt:rs-policy:instr_n1']):,} "
                        f"I({a.jwt_n2})={int(r['jwt:rs-policy:instr_n2']):,}")
        if bits:
            raw.append(f"{NAMES.get(p, p)} JWT: " + "; ".join(bits))
    return L, notes, raw


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return model


def render(res, a):
    proxies = [p for p in a.proxies.split() if p in res]
    ms = {p: metrics(res[p], a) for p in proxies}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    L.append(f"Measured {now} by `make bench` on {os.cpu_count()} CPUs ({machine()}), "
             f"Linux {platform.release()}.")
    L.append("")
    L.append(f"Pinning: the proxy under test on CPU {a.proxy_cpu}; wrk, the python clients and the "
             f"shared upstream (nginx answering `200 hello`) on CPU {a.load_cpu}. "
             f"Every proxy runs one worker, access logs off, keep-alive to the upstream.")
    L.append("")
    L.append("| proxy | " + " | ".join(h for _, h in COLS) + " |")
    L.append("| --- |" + " ---: |" * len(COLS))
    for p in proxies:
        L.append(f"| {NAMES.get(p, p)} | " + " | ".join(fmt(k, ms[p].get(k)) for k, _ in COLS) + " |")
    base = ms.get("haproxy")
    if base:
        L.append("")
        L.append("Relative to HAProxy (req/s: higher is better; every other column: lower is better):")
        L.append("")
        L.append("| proxy | " + " | ".join(h for _, h in RATIO_COLS) + " |")
        L.append("| --- |" + " ---: |" * len(RATIO_COLS))
        for p in proxies:
            cells = []
            for k, _ in RATIO_COLS:
                v, b = ms[p].get(k), base.get(k)
                cells.append(f"{v / b:.2f}×" if v is not None and b else "–")
            L.append(f"| {NAMES.get(p, p)} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("How each figure is taken:")
    L.append("")
    L.append(f"- req/s, p50, p99: `wrk -t1 -c{a.conns} -d{a.duration}s --latency` after a 2 s warm-up; "
             f"{a.rounds} rounds, interleaved across the proxies; the round with the most req/s is "
             f"shown (its p50, p99 and proxy CPU with it).")
    L.append("- CPU µs/req: the proxy's utime+stime (`/proc/PID/stat`, all threads) over the wrk run ÷ "
             "requests wrk completed, the lowest of the rounds (noise only adds); proxy CPU: the same CPU time ÷ wall time (100% = CPU "
             f"{a.proxy_cpu} saturated; below that, wrk and the upstream on CPU {a.load_cpu} bounded req/s, "
             f"so req/s and latency then say as much about the load side as about the proxy).")
    L.append(f"- instr/req: `valgrind --tool=callgrind` on the proxy's worker process; after 1,000 warm-up "
             f"requests, exactly {a.n1:,} and then {a.n2:,} sequential `GET /` over 4 keep-alive "
             f"connections, counters zeroed before and dumped after each batch; "
             f"(I({a.n2}) − I({a.n1})) ÷ {a.n2 - a.n1:,}.")
    L.append("- other load: busy time of each CPU not used by the proxy (CPU 0) or by wrk and the "
             "upstream (CPU 1), from /proc/stat, as a share of the run: other processes plus "
             "kernel accounting slack. A round with more than a few percent was disturbed; the "
             "bench runs the proxy, clients and upstream at nice -20 to limit that.")
    L.append(f"- syscalls/req: `strace -f -c` attached to the proxy while it answers {a.nsys:,} sequential "
             f"requests over 4 keep-alive connections (left out when strace is not installed).")
    L.append("- peak RSS: VmHWM of the proxy's worker after the wrk run.")
    L.append(f"- bytes/idle conn: VmRSS growth while {a.idle:,} keep-alive connections, each after one "
             f"request, sit idle ÷ the connections held. nginx and HAProxy size some per-connection "
             f"tables up front from worker_connections / maxconn, so part of their cost is in peak RSS "
             f"rather than here.")
    jwt_lines, jwt_notes, jwt_raw = render_jwt(res, a, ms)
    L.extend(jwt_lines)
    L.append("")
    L.append("Versions: " + "; ".join(res[p].get("version", p) for p in proxies) + f"; tools: {a.tools}.")
    notes = []
    for p in proxies:
        m, r = ms[p], res[p]
        if r.get("failed"):
            notes.append(f"{NAMES.get(p, p)}: failed {'; '.join(r['failed'])} (see bench output).")
        if m.get("foreign") and max(m["foreign"]) > 0.05:
            notes.append(f"{NAMES.get(p, p)}: other processes took {m['foreign'][0] * 100:.0f}% of CPU "
                         f"{a.proxy_cpu} and {m['foreign'][1] * 100:.0f}% of CPU {a.load_cpu} during its "
                         f"best wrk round: its req/s and latency are disturbed (instr/req, syscalls/req "
                         f"and memory are not).")
        for w in m.get("rounds", []):
            if w.get("non2xx"):
                notes.append(f"{NAMES.get(p, p)}, round {w['round']}: wrk saw {w['non2xx']:,} "
                             f"non-2xx/3xx responses.")
            se = w.get("socket_errors")
            if se and any(se.values()):
                notes.append(f"{NAMES.get(p, p)}, round {w['round']}: wrk socket errors: " +
                             ", ".join(f"{k} {v}" for k, v in se.items()) + ".")
        if r.get("idle_failed") and int(r["idle_failed"]):
            notes.append(f"{NAMES.get(p, p)}: {r['idle_failed']} of {a.idle:,} idle connections failed "
                         f"(refused, closed or not 200).")
    notes.extend(jwt_notes)
    if notes:
        L.append("")
        L.append("Errors and disturbances seen during the run:")
        L.append("")
        L.extend("- " + n for n in notes)
    raw = []
    for p in proxies:
        r = res[p]
        bits = []
        rounds = ms[p].get("rounds", [])
        if rounds:
            bits.append("req/s by round " + " / ".join(
                f"{w['rps']:,.0f}" if w.get("rps") else "–" for w in rounds) +
                ", CPU µs/req " + " / ".join(
                f"{w['cpu_us']:.2f}" if w.get("cpu_us") else "–" for w in rounds) +
                ", other load on CPU 0/1 " + " / ".join(
                f"{w['foreign'][0] * 100:.0f}%/{w['foreign'][1] * 100:.0f}%" if w.get("foreign") else "–"
                for w in rounds))
        if mix := ms[p].get("syscall_mix"):
            bits.append("syscalls/req " + ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]) if v >= 0.05))
        if "instr_n1" in r:
            bits.append(f"I({a.n1})={int(r['instr_n1']):,} I({a.n2})={int(r['instr_n2']):,}")
        if "idle_rss_before_kb" in r:
            bits.append(f"idle RSS {int(r['idle_rss_before_kb']):,} → {int(r['idle_rss_after_kb']):,} KiB "
                        f"for {int(r['idle_held']):,} connections")
        if bits:
            raw.append(f"{NAMES.get(p, p)}: " + "; ".join(bits))
    raw.extend(jwt_raw)
    if raw:
        L.append("")
        L.append("Raw: " + ". ".join(raw) + ".")
    return "\n".join(L) + "\n"


def write(path, section):
    block = f"{BEGIN}\n{section}{END}\n"
    try:
        old = open(path).read()
    except FileNotFoundError:
        old = None
    if old is None:
        new = "# Performance\n\nWritten by `make bench` (bench/run); the section between the bench markers is " \
              "replaced on every run, the rest of this file is kept.\n\n" + block
    elif BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = head + block.rstrip("\n") + tail
        if not new.endswith("\n"):
            new += "\n"
    else:
        lines = old.split("\n", 1)
        if lines[0].startswith("# "):
            new = lines[0] + "\n\n" + block + "\n" + (lines[1].lstrip("\n") if len(lines) > 1 else "")
        else:
            new = block + "\n" + old
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--proxies", required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--n1", type=int, required=True)
    ap.add_argument("--n2", type=int, required=True)
    ap.add_argument("--idle", type=int, required=True)
    ap.add_argument("--nsys", type=int, default=2000)
    ap.add_argument("--proxy-cpu", required=True)
    ap.add_argument("--load-cpu", required=True)
    ap.add_argument("--tools", default="")
    ap.add_argument("--jwt-proxies", default="")
    ap.add_argument("--jwt-rounds", type=int, default=1)
    ap.add_argument("--jwt-n1", type=int, default=500)
    ap.add_argument("--jwt-n2", type=int, default=2500)
    ap.add_argument("--jwt-warmup", type=int, default=200)
    ap.add_argument("--jwt-pool", type=int, default=0)
    ap.add_argument("--jwt-dir", default="")
    a = ap.parse_args()
    if a.duration == int(a.duration):
        a.duration = int(a.duration)
    a.jwt_len = {}
    for alg in ("rs", "es"):
        try:
            a.jwt_len[alg] = len(open(os.path.join(a.jwt_dir, alg + "-same.txt")).read().strip())
        except OSError:
            pass
    section = render(load(a.results), a)
    sys.stdout.write(section)
    if a.out != "-":
        write(a.out, section)
        print(f"\n(written to {a.out})", file=sys.stderr)


if __name__ == "__main__":
    main()
