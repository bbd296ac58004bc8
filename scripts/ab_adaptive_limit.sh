#!/usr/bin/env bash
# A/B of the adaptive concurrency limit under overload: one ci stack per setting, interleaved,
# 20 robots x 50 Hz (1,000 req/s, above capacity) over gRPC and HTTP, 15 s each.
set -u
# Usage: OUT=results/ab-limit scripts/ab_adaptive_limit.sh   (docs/benchmarks/adaptive-limit.md)
cd "$(dirname "$0")/.."
OUT=${OUT:?}
mkdir -p "$OUT"
for round in 1 2; do
  for limit in false true; do
    export ROUTER_ADAPTIVE_LIMIT=$limit
    ROUTER_API_KEY=dev-robot-key .venv/bin/python -m deploy.local.stack exec --panel ci \
      --no-prometheus --run-dir "$OUT/stack-$limit-$round" -- bash -c "
      for t in grpc http; do
        url=http://127.0.0.1:8080; [[ \$t == grpc ]] && url=127.0.0.1:50051
        .venv/bin/python -m loadtest run loadtest/scenarios/default.yaml --target router \
          --transport \$t --url \$url --robots ${ROBOTS:-20} --duration 15 --ramp 3 --quiet --no-plot \
          --label limit-$limit --metrics-url http://127.0.0.1:8080/metrics \
          --out $OUT/\$t-limit-$limit-$round > $OUT/\$t-limit-$limit-$round.log 2>&1
      done"
  done
done
