#!/usr/bin/env python3
"""Attributes `perf script` samples of the gatehouse process to subsystems.

Usage: perf script -i perf.data | bench/tools/perf-buckets.py
Each sample is attributed by its leaf-most frame that matches a bucket
(frames from libc/the kernel, e.g. malloc or futex, fall through to the
Rust caller that asked for them), except that anything under
sqlite3Reprepare counts as re-preparing. Figures are exclusive and add up
to 100 %. Used to write bench/PROFILE.md.
"""
import re
import sys
from collections import Counter

BUCKETS = [
    ("SQLite engine (sqlite3_*, parser)", r"sqlite3|yy_reduce|yy_|tokenExpr|resolveExprStep|keywordCode|whereLoop|walkExpr"),
    ("JWT verify (jsonwebtoken, HMAC, base64)", r"jsonwebtoken|hmac|sha2|base64|TokenKeys"),
    ("logging (tracing, tracing-subscriber)", r"tracing_subscriber|tracing_core|tracing::span|tracing::event|request_span|sharded_slab"),
    ("metrics (metrics, prometheus recorder)", r"metrics::|metrics_exporter|metrics_util"),
    ("ORM: query building, row decoding (sea-query, sea-orm)", r"sea_query|sea_orm"),
    ("sqlx: pool, statement cache, rows", r"sqlx"),
    ("sqlx worker hand-off (flume channel, thread park/unpark)", r"flume|std::thread::functions::park|Thread::unpark"),
    ("JSON (serde_json) and superjson envelope", r"serde_json|envelope"),
    ("request id (uuid)", r"uuid::|MakeRequestUuid"),
    ("HTTP (hyper, axum, tower)", r"hyper|axum|tower|http::"),
    ("gatehouse framework / auth code", r"gatehouse"),
    ("tokio scheduler, timers", r"tokio::"),
    ("other (kernel-only, libc-only stacks)", r"."),
]
REPREPARE = "  of which: re-preparing statements (sqlite3Reprepare)"

def main():
    text = sys.stdin.read()
    counts = Counter()
    total = 0
    compiled = [(name, re.compile(pat)) for name, pat in BUCKETS]
    for block in text.split("\n\n"):
        lines = [l.strip() for l in block.strip().splitlines()]
        if len(lines) < 2:
            continue
        total += 1
        # lines[0] is the sample header; frames follow, leaf first:
        # "<addr> <symbol> (<dso>)"
        frames = [re.sub(r" \([^()]*\)$", "", l.split(" ", 1)[1] if " " in l else l)
                  for l in lines[1:]]
        if any("sqlite3Reprepare" in f for f in frames):
            counts[REPREPARE] += 1
        for frame in frames + [lines[0]]:
            hit = next((name for name, rx in compiled if rx.search(frame)), None)
            if hit and not (hit.startswith("other") and frame is not lines[0]):
                counts[hit] += 1
                break
        else:
            counts[BUCKETS[-1][0]] += 1
    print(f"{total} samples")
    for name, _ in BUCKETS:
        print(f"{100 * counts[name] / max(total, 1):6.1f}%  {name}")
        if name.startswith("SQLite engine"):
            print(f"{100 * counts[REPREPARE] / max(total, 1):6.1f}%  {REPREPARE}")

if __name__ == "__main__":
    main()
