#!/usr/bin/env bash
# A/B of the batcher's straggler rule (commit eeec0b5): before it, rows for a route waited
# (up to max_wait, 2 ms) while any call for it was in flight, a straggler included; after it, a
# call out longer than 2x the route's predicted latency no longer holds them. The bench's
# straggler step (reference, hedging off, hedging on; 4 robots) per version, interleaved.
# Usage: OUT=results/ab-straggler scripts/ab_straggler_batching.sh  (docs/benchmarks/straggler-batching.md)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?}
mkdir -p "$OUT"
for f in batching forwarding; do
  git show eeec0b5~1:router_service/$f.py > "$OUT/$f-old.py"
  cp router_service/$f.py "$OUT/$f-new.py"
done
trap 'for f in batching forwarding; do cp "$OUT/$f-new.py" router_service/$f.py; done' EXIT
for round in ${ROUNDS:-1 2}; do
  for version in new old; do
    for f in batching forwarding; do cp "$OUT/$f-$version.py" router_service/$f.py; done
    .venv/bin/python -m loadtest.bench --steps straggler --straggler-robots ${ROBOTS:-4} \
      --out "$OUT/$version-$round" > "$OUT/$version-$round.log" 2>&1
  done
done
