#!/usr/bin/python3
"""Tokens for bench/run's JWT rows, minted with PyJWT (Debian's python3-jwt),
an implementation independent of gatehouse's.

  tokens.py DIR POOL ISS AUD
      Reads DIR/rs.pem (RSA 2048, kid "rs") and DIR/es.pem (P-256, kid "es")
      and writes, for each ALG in rs es:
        DIR/ALG-same.txt     one token (the repeated-token rows)
        DIR/ALG-pool.txt     POOL tokens, one a line, each with its own jti
                             and sub (the fresh-token rows)
        DIR/ALG-bad.txt      tokens that must be refused: the same token with
                             its payload changed (signature kept), its
                             signature changed, and one signed by another
                             key under the same kid
      Every token: iss ISS, aud AUD, iat/nbf now, exp now + 1 day.
      Signing runs in one process per CPU.
"""
import base64
import json
import multiprocessing
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ALGS = {"rs": "RS256", "es": "ES256"}
_key = None  # per worker: (kind, key object), so PEM is parsed once


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def claims(i, now, iss, aud, tag):
    return {
        "iss": iss,
        "aud": aud,
        "sub": f"user-{tag}-{i:07d}",
        "iat": now,
        "nbf": now,
        "exp": now + 86400,
        "jti": f"{tag}-{now}-{i:07d}",
        "scope": "orders.read orders.write",
    }


def _init(path):
    global _key
    _key = load_key(path)


def _mint(job):
    kind, start, count, now, iss, aud = job
    alg = ALGS[kind]
    return [jwt.encode(claims(i, now, iss, aud, kind), _key, algorithm=alg, headers={"kid": kind})
            for i in range(start, start + count)]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bad_tokens(kind, good, now, iss, aud):
    """Three tokens a verifier must refuse."""
    h, p, s = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    payload["sub"] = "admin"
    tampered_payload = ".".join((h, b64(json.dumps(payload, separators=(",", ":")).encode()), s))
    sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    sig[len(sig) // 2] ^= 0x01
    tampered_sig = ".".join((h, p, b64(bytes(sig))))
    other = (rsa.generate_private_key(65537, 2048) if kind == "rs"
             else ec.generate_private_key(ec.SECP256R1()))
    foreign = jwt.encode(claims(0, now, iss, aud, kind + "-foreign"), other, algorithm=ALGS[kind],
                         headers={"kid": kind})
    return [tampered_payload, tampered_sig, foreign]


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    out, pool, iss, aud = argv[0], int(argv[1]), argv[2], argv[3]
    now = int(time.time())
    procs = max(1, os.cpu_count() or 1)
    for kind in ALGS:
        path = os.path.join(out, kind + ".pem")
        _init(path)
        same = _mint((kind, 9_000_000, 1, now, iss, aud))[0]
        chunk = max(1, (pool + procs * 4 - 1) // (procs * 4))
        jobs = [(kind, s, min(chunk, pool - s), now, iss, aud) for s in range(0, pool, chunk)]
        with multiprocessing.Pool(procs, initializer=_init, initargs=(path,)) as mp:
            toks = [t for part in mp.map(_mint, jobs) for t in part]
        assert len(set(toks)) == pool and same not in toks
        with open(os.path.join(out, kind + "-same.txt"), "w") as f:
            f.write(same + "\n")
        with open(os.path.join(out, kind + "-pool.txt"), "w") as f:
            f.write("\n".join(toks) + "\n")
        with open(os.path.join(out, kind + "-bad.txt"), "w") as f:
            f.write("\n".join(bad_tokens(kind, same, now, iss, aud)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
