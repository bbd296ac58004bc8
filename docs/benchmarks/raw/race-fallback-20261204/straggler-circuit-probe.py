"""Why does the straggling reach specialist lose its traffic? Stack + fault, 6 robots 20 s,
then the decision log's candidates for reach-v3 decisions."""
import collections, json, os, subprocess, sys
from pathlib import Path
sys.path.insert(0, "/work/main")
import redis
from loadtest.bench.stack import BenchStack, ROBOT_KEY
out = Path("/tmp/strag"); out.mkdir(exist_ok=True)
with BenchStack(out / "stack") as stack:
    stack.set_fault("policy_specialist_reach_v3", 100.0, 0.03)
    subprocess.run([sys.executable, "-m", "loadtest", "run",
                    "results/bench/20261204T205727Z/scenarios/bench-straggler.yaml", "--target",
                    "router", "--transport", "http", "--url", stack.router_url, "--robots", "6",
                    "--duration", "20", "--ramp", "2", "--manifest", str(stack.manifest),
                    "--out", str(out / "run"), "--quiet", "--no-plot"], cwd="/work/main",
                   env={**os.environ, "ROUTER_API_KEY": ROBOT_KEY}, check=False,
                   stdout=subprocess.DEVNULL)
    import time; time.sleep(0.5)
    r = redis.Redis.from_url(stack.redis_url)
    entries = r.xrange("router:decisions", count=100000)
    recs = [json.loads(f[b"record"]) for _, f in entries]
    reach = [x for x in recs if x["task"] == "reach-v3"]
    print("decisions", len(recs), "reach", len(reach))
    print(collections.Counter(x["reason"] for x in reach))
    spec = [c for x in reach if x["reason"] == "only_candidate" for c in x["candidates"]
            if c["route"] == "specialist_reach_v3"]
    print("spec candidate in only_candidate:", collections.Counter((c["usable"], c["fits_budget"]) for c in spec))
    print("predicted ms", sorted(round(c["predicted_ms"], 1) for c in spec)[::max(1, len(spec)//10)])
    print("paths", collections.Counter(tuple(x["path"]) for x in reach).most_common(6))
    reach.sort(key=lambda x: x["ts"])
    first = next(i for i, x in enumerate(reach) if x["reason"] == "only_candidate")
    t0 = reach[first]["ts"]
    for x in reach[max(0, first - 14):first + 2]:
        print(round((x["ts"] - t0) * 1000, 1), x["reason"], x["path"], x.get("batch_size"),
              x["timing_ms"], x["episode_id"])
