#!/usr/bin/env bash
# `make eval PANEL=<panel> EPISODES=<n>`: the panel's whole evidence from its built models, into
# results/eval/<panel>-<n>/ and then docs/results/<panel>/ (docs/evaluation-recipe.md):
#   1. the second training seed of every family, on the same demonstrations (offline);
#   2. perturbations x family, in process (policies.robustness);
#   3. the closed loop through the router, with the arms the decision rests on;
#   4. the families table (offline per seed + closed loop, paired comparisons), then publish.
# Every step is skipped by its own tool when its inputs are unchanged, except the closed loop.
# SEEDS=1 leaves out the second training seed and ROBUST_EPISODES=0 the perturbations (panel30 on
# 2 cores: each costs hours there); the families table then has the seeds that were built.
set -euo pipefail
PANEL=${1:?panel}
EPISODES=${2:?episodes per cell}
BIN=${BIN:-.venv/bin}
ARTIFACTS=build/models/$PANEL
OUT=results/eval/$PANEL-$EPISODES
DOCS=docs/results/$PANEL
ROBUST_EPISODES=${ROBUST_EPISODES:-30}
SEEDS=${SEEDS:-2}
TRANSPORT=${TRANSPORT:-grpc}  # how the robots reach the router in the closed loop
# The arms the decision rests on, then the router under each perturbation and a stale table (the
# counterfactual attribution compares those with the unperturbed router on the same configuration).
ARMS=${ARMS:-generalist,generalist_large,specialist,router,router_hidden,router_large,obs_noise,action_delay,slow_specialist,stale_calibration}
# The evaluation derives every arm from the panel's candidate contract (all its policies) when
# there is one; the decision then writes the served contract (not for ci: the tests use it).
CONTRACT=deploy/contracts/$PANEL.yaml
[[ -f deploy/contracts/$PANEL-candidates.yaml ]] && CONTRACT=deploy/contracts/$PANEL-candidates.yaml
stamp() { date -u +%H:%M:%S; }

BUILDS=("$ARTIFACTS")
if [[ "$SEEDS" -ge 2 ]]; then
    echo "[$(stamp)] second training seed -> ${ARTIFACTS}-seed1"
    "$BIN/python" -m policies.build --panel "$PANEL" --out "${ARTIFACTS}-seed1" --train-seed 1 \
        --dataset-from "$ARTIFACTS"
    BUILDS+=("${ARTIFACTS}-seed1")
fi
if [[ "$ROBUST_EPISODES" -gt 0 ]]; then
    echo "[$(stamp)] perturbations x family, in process -> $OUT/robustness"
    "$BIN/python" -m policies.robustness --artifacts "$ARTIFACTS" --episodes "$ROBUST_EPISODES" \
        --out "$OUT/robustness"
fi
echo "[$(stamp)] closed loop, $EPISODES episodes per cell, arms $ARMS -> $OUT"
rm -rf "$OUT/run" "$OUT/traces"
"$BIN/python" -m evaluation run --panel "$PANEL" --episodes "$EPISODES" --arms "$ARMS" \
    --transport "$TRANSPORT" --contract "$CONTRACT" --out "$OUT"
echo "[$(stamp)] publish -> $DOCS"
"$BIN/python" -m evaluation publish "$OUT" "$DOCS/closed_loop"
"$BIN/python" -m evaluation families --closed-loop "$OUT" \
    --artifacts "${BUILDS[@]}" --out "$DOCS/families.md"
if [[ "$ROBUST_EPISODES" -gt 0 ]]; then
    mkdir -p "$DOCS/robustness"
    cp "$OUT"/robustness/robustness.{md,json,csv} "$DOCS/robustness/"
fi
for seed_dir in "${BUILDS[@]}"; do
    dest="$DOCS/offline/$(basename "$seed_dir")"
    mkdir -p "$dest"
    cp "$seed_dir"/offline_matrix.csv "$seed_dir"/offline_expert_reference.csv "$dest/"
done
if [[ "$CONTRACT" != "deploy/contracts/$PANEL.yaml" ]]; then
    echo "[$(stamp)] ship the decision -> deploy/contracts/$PANEL.yaml"
    "$BIN/python" -m evaluation ship "$OUT" --out "deploy/contracts/$PANEL.yaml"
fi
echo "[$(stamp)] done"
