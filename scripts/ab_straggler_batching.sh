#!/usr/bin/env bash
# A/B of the forwarder (hedging) and batcher between commits: the bench's straggler step
# (reference, hedging off, hedging on; 4 robots) per version, interleaved rounds. Each version's
# FILES are taken from its commit ("work": the working tree as it is); everything else is the
# working tree's. Written for eeec0b5 (the batcher's straggler rule) and the hedge budget.
# Usage: OUT=results/ab-straggler VERSIONS="eeec0b5~1 work" scripts/ab_straggler_batching.sh
#   (docs/benchmarks/straggler-hedging.md)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?}
VERSIONS=${VERSIONS:-eeec0b5~1 work}
FILES=${FILES:-router_service/batching.py router_service/forwarding.py}
mkdir -p "$OUT"
slug() { echo "$1" | tr -c 'A-Za-z0-9\n' '_'; }
for f in $FILES; do cp "$f" "$OUT/$(slug "$f")@work"; done
for v in $VERSIONS; do
  [ "$v" = work ] && continue
  for f in $FILES; do git show "$v:$f" > "$OUT/$(slug "$f")@$(slug "$v")"; done
done
restore() { for f in $FILES; do cp "$OUT/$(slug "$f")@work" "$f"; done; }
trap restore EXIT
for round in ${ROUNDS:-1 2}; do
  for v in $VERSIONS; do
    for f in $FILES; do cp "$OUT/$(slug "$f")@$(slug "$v")" "$f"; done
    .venv/bin/python -m loadtest.bench --steps straggler --straggler-robots "${ROBOTS:-4}" \
      --out "$OUT/$(slug "$v")-$round" > "$OUT/$(slug "$v")-$round.log" 2>&1
  done
done
