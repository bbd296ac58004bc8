"""A/B of two router builds on one stack: the working tree's (new) and a worktree's (old),
both against the same Triton, alternating runs at each fleet size. Usage:
  python ab.py OLD_TREE SCENARIO OUT ROBOTS,ROBOTS REPEATS TRANSPORT"""
import json, os, subprocess, sys, time
from pathlib import Path
import httpx
from prometheus_client.parser import text_string_to_metric_families


def counters(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=5).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in ("router_shed_total", "router_fallbacks_total", "router_hedges_total"):
                key = s.name + ":" + ",".join(f"{v}" for v in s.labels.values())
                out[key] = s.value
    return out
sys.path.insert(0, "/work/main")
from loadtest.bench.stack import BenchStack, ROBOT_KEY
from deploy.local.process import free_ports

old_tree, scenario, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
fleets = [int(x) for x in sys.argv[4].split(",")]
repeats, transport = int(sys.argv[5]), sys.argv[6]
out.mkdir(parents=True, exist_ok=True)
with BenchStack(out / "stack") as stack:
    raw = open(f"/proc/{stack.router_pid}/environ", "rb").read().decode().split("\0")
    env = dict(kv.split("=", 1) for kv in raw if "=" in kv)
    hp, gp = free_ports(2)
    env.update(ROUTER_HTTP_PORT=str(hp), ROUTER_GRPC_PORT=str(gp), ROUTER_REPLICA_ID="old-router",
               REDIS_URL=env["REDIS_URL"].rsplit("/", 1)[0] + "/1")
    log = open(out / "old-router.log", "w")
    old = subprocess.Popen([sys.executable, "-m", "router_service"], cwd=old_tree, env=env,
                           stdout=log, stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            if httpx.get(f"http://127.0.0.1:{hp}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    urls = {"new": (stack.router_url, stack.router_grpc),
            "old": (f"http://127.0.0.1:{hp}", f"127.0.0.1:{gp}")}
    rows = []
    try:
        for name in ("new", "old"):  # warm both (connections, batch shapes)
            subprocess.run([sys.executable, "-m", "loadtest", "run", scenario, "--target",
                            "router", "--transport", transport, "--url",
                            urls[name][1] if transport.startswith("grpc") else urls[name][0],
                            "--robots", "4", "--duration", "5", "--ramp", "1", "--manifest",
                            str(stack.manifest), "--out", str(out / f"warm-{name}"), "--quiet",
                            "--no-plot"], cwd="/work/main", check=False,
                           env={**os.environ, "ROUTER_API_KEY": ROBOT_KEY})
        for robots in fleets:
            for rep in range(repeats):
                for name in (("new", "old") if rep % 2 == 0 else ("old", "new")):
                    http_url, grpc_url = urls[name]
                    url = grpc_url if transport.startswith("grpc") else http_url
                    d = out / f"{name}-{robots}-{rep}"
                    before = counters(http_url)
                    subprocess.run([sys.executable, "-m", "loadtest", "run", scenario,
                                    "--target", "router", "--transport", transport, "--url", url,
                                    "--robots", str(robots), "--duration", "20", "--ramp", "2",
                                    "--manifest", str(stack.manifest), "--out", str(d),
                                    "--quiet", "--no-plot"], cwd="/work/main", check=False,
                                   env={**os.environ, "ROUTER_API_KEY": ROBOT_KEY})
                    after = counters(http_url)
                    diff = {k: v - before.get(k, 0) for k, v in after.items()
                            if v - before.get(k, 0)}
                    recs = [json.loads(l) for l in open(d / "records.jsonl")]
                    miss = [r for r in recs if not (r["status"] == "ok" and r["latency_ms"] <= 20
                                                    and r["route"] != "hold")]
                    row = {"build": name, "robots": robots, "rep": rep, "requests": len(recs),
                           "misses": len(miss),
                           "holds": sum(r["route"] == "hold" for r in recs),
                           "errors": sum(r["status"] != "ok" for r in recs),
                           "late_ok": sum(r["status"] == "ok" and r["route"] != "hold"
                                          and r["latency_ms"] > 20 for r in recs),
                           "late_met": sum(r["status"] == "ok" and r["latency_ms"] > 20
                                           and bool(r["deadline_met"]) for r in recs),
                           "counters": diff}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        old.terminate(); old.wait(10)
    (out / "ab.json").write_text(json.dumps(rows, indent=1))
