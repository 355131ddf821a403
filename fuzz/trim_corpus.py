#!/usr/bin/env python3
"""Keeps a committed corpus small: a greedy set cover of the coverage afl-cmin kept.

afl-cmin keeps one input per edge, which for the policy compiler is close to a thousand
files. This picks, from afl-showmap's per-input maps, the input adding the most new tuples per
byte, again and again, until every tuple is covered or the budget (files, bytes) is spent; the
rest is deleted. Called by run.sh after afl-cmin.

Usage: trim_corpus.py CORPUS_DIR MAPS_DIR MAX_FILES MAX_BYTES
"""

import sys
from pathlib import Path


def main() -> None:
    corpus, maps, max_files, max_bytes = (
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    cover = {}
    for f in corpus.iterdir():
        m = maps / f.name
        if m.is_file():
            # Lines are `tuple:count`; the count bucket is part of the coverage AFL sees.
            cover[f] = set(m.read_text().split())
        else:
            cover[f] = set()
    seen, kept, total = set(), [], 0
    remaining = dict(cover)
    while remaining and len(kept) < max_files:
        best, best_score = None, 0.0
        for f, tuples in remaining.items():
            new = len(tuples - seen)
            if new == 0:
                continue
            score = new / (f.stat().st_size + 64)
            if score > best_score:
                best, best_score = f, score
        if best is None:
            break
        size = best.stat().st_size
        del remaining[best]
        if total + size > max_bytes:
            continue
        kept.append(best)
        total += size
        seen |= cover[best]
    all_tuples = set().union(*cover.values()) if cover else set()
    for f in cover:
        if f not in kept:
            f.unlink()
    print(
        f"{corpus.name}: kept {len(kept)} of {len(cover)} inputs, {total} bytes, "
        f"{len(seen)} of {len(all_tuples)} tuples"
    )


if __name__ == "__main__":
    main()
