"""Does a straggling execution of one model slow other models' requests, with no router?"""
import json, os, subprocess, sys
from pathlib import Path
sys.path.insert(0, "/work/main")
from loadtest.bench.stack import BenchStack
out = Path("/tmp/stragd"); out.mkdir(exist_ok=True)
with BenchStack(out / "stack") as stack:
    stack.set_fault("policy_specialist_reach_v3", 100.0, 0.03)
    subprocess.run([sys.executable, "-m", "loadtest", "run",
                    "results/bench/20261204T205727Z/scenarios/bench-straggler.yaml", "--target",
                    "direct", "--transport", "grpc", "--url", stack.triton_grpc, "--robots", "6",
                    "--duration", "20", "--ramp", "2", "--manifest", str(stack.manifest),
                    "--out", str(out / "run"), "--quiet", "--no-plot"], cwd="/work/main",
                   check=False, stdout=subprocess.DEVNULL)
recs = [json.loads(x) for x in open(out / "run" / "records.jsonl")]
slow = [r for r in recs if r["task"] == "reach-v3" and r["latency_ms"] > 50]
print("requests", len(recs), "reach stragglers", len(slow))
near = []
for s in slow:
    t = s["sent_s"]
    near += [r for r in recs if r["task"] != "reach-v3" and t <= r["sent_s"] <= t + 0.05]
    reach_near = [r for r in recs if r["task"] == "reach-v3" and t < r["sent_s"] <= t + 0.05]
lat = sorted(r["latency_ms"] for r in near)
base = sorted(r["latency_ms"] for r in recs if r["task"] != "reach-v3")
pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None
print("other tasks within 50 ms after a reach straggle: n", len(lat), "p50", pct(lat, .5), "p90", pct(lat, .9), "max", lat[-1] if lat else None)
print("other tasks overall: p50", pct(base, .5), "p90", pct(base, .9), "p99", pct(base, .99))
rn = []
for s in slow:
    t = s["sent_s"]
    rn += [r["latency_ms"] for r in recs if r["task"] == "reach-v3" and t < r["sent_s"] <= t + 0.05]
rn.sort(); print("reach within 50 ms after a straggle: n", len(rn), "p50", pct(rn, .5), "p90", pct(rn, .9))
