#!/usr/bin/env python3
"""Writes a `git fast-import` stream for the VCS bench rows (bench/sections/vcs.sh).

vcs_repo.py MODULE COMMITS KIB_PER_COMMIT FILES [TAG_EVERY] [raw]

A module at the repository root whose COMMITS commits each rewrite one of
FILES data files with KIB_PER_COMMIT KiB of incompressible text (random
bytes with `raw`, so neither git nor a zip can shrink them), tagged
v1.0.N every TAG_EVERY commits and at the last one (a lightweight tag per
version). Deterministic (seeded), so every run measures the same repository.
"""
import base64
import random
import sys

module, commits, kib, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tag_every = int(sys.argv[5]) if len(sys.argv) > 5 else 0
raw_bytes = len(sys.argv) > 6 and sys.argv[6] == "raw"
rng = random.Random(42)
out = sys.stdout.buffer


def blob(data: bytes):
    out.write(b"data %d\n" % len(data))
    out.write(data)
    out.write(b"\n")


tags = []
for i in range(1, commits + 1):
    when = 1700000000 + i * 60
    out.write(b"commit refs/heads/main\nmark :%d\n" % i)
    out.write(b"committer Bench <bench@example.com> %d +0000\n" % when)
    blob(b"commit %d\n" % i)
    if i == 1:
        out.write(b"M 100644 inline go.mod\n")
        blob(b"module %s\n\ngo 1.21\n" % module.encode())
        out.write(b"M 100644 inline big.go\n")
        blob(b'package big\n\nfunc Name() string { return "big" }\n')
    if raw_bytes:
        out.write(b"M 100644 inline data/f%03d.bin\n" % (i % files))
        blob(rng.randbytes(kib * 1024))
    else:
        out.write(b"M 100644 inline data/f%03d.txt\n" % (i % files))
        blob(base64.encodebytes(rng.randbytes(kib * 768)))
    if (tag_every and i % tag_every == 0) or i == commits:
        tags.append((len(tags), i))
    out.write(b"\n")
for n, i in tags:
    out.write(b"reset refs/tags/v1.0.%d\nfrom :%d\n\n" % (n, i))
