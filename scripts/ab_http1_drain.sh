#!/usr/bin/env bash
# A/B of the HTTP/1 pool's drain (commit 61da02b) with robots that cancel late calls (gRPC: the
# call's deadline is the 20 ms budget): the router's upstream pool before it (a timed-out or
# cancelled call's connection closed) and after (drained and reused), one ci stack per version,
# interleaved, 8 robots x 50 Hz over gRPC, 20 s each, loadtest/scenarios/abandon.yaml. Router CPU
# from /proc around each run.
# Usage: OUT=results/ab-drain scripts/ab_http1_drain.sh   (docs/benchmarks/http1-drain.md)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?}
mkdir -p "$OUT"
git show 61da02b~1:router_service/http1.py > "$OUT/http1-close.py"
cp router_service/http1.py "$OUT/http1-drain.py"
trap 'cp "$OUT/http1-drain.py" router_service/http1.py' EXIT
for round in 1 2 3; do
  for version in drain close; do
    cp "$OUT/http1-$version.py" router_service/http1.py
    ROUTER_API_KEY=dev-robot-key .venv/bin/python -m deploy.local.stack exec --panel ci \
      --no-prometheus --run-dir "$OUT/stack-$version-$round" -- bash -c "
      pid=\$(pgrep -f '^[^ ]*python[^ ]* -m router_service' | head -1)
      before=\$(awk '{print \$14 + \$15}' /proc/\$pid/stat)
      .venv/bin/python -m loadtest run loadtest/scenarios/abandon.yaml --target router \
        --transport grpc --url 127.0.0.1:50051 --robots ${ROBOTS:-8} --duration 20 --ramp 3 \
        --quiet --no-plot --label $version --out $OUT/$version-$round > $OUT/$version-$round.log 2>&1
      after=\$(awk '{print \$14 + \$15}' /proc/\$pid/stat)
      echo \$((after - before)) > $OUT/$version-$round/router_cpu_ticks"
  done
done
