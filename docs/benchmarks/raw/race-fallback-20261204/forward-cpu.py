import asyncio, sys, time, importlib.util
import numpy as np
sys.path.insert(0, "/work/main")
from router_service.contract import HOLD_ROUTE, Batching, Hedging
from router_service.metrics import RouterMetrics
from router_service.route_health import CircuitBreaker, LatencyEstimator, RouteHealth
import router_service.forwarding as new
spec = importlib.util.spec_from_file_location("old_forwarding", "/tmp/mb/old_forwarding.py")
old = importlib.util.module_from_spec(spec); sys.modules["old_forwarding"] = old; spec.loader.exec_module(old)
SPEC, GEN = "specialist_a", "generalist"

async def call(route, obs, cond, timeout_s):
    await asyncio.sleep(0)
    return np.ones((obs.shape[0], 4), dtype=np.float32)

async def bench(mod, n, hedging):
    health = {r: RouteHealth(LatencyEstimator(prior_ms=3.0), CircuitBreaker(5, 10.0)) for r in (SPEC, GEN)}
    fwd = mod.Forwarder(health, RouterMetrics(), call, GEN, Batching(), Hedging(enabled=hedging))
    q = mod.Query(np.zeros(39, dtype=np.float32), np.ones(3, dtype=np.float32) / 3)
    for _ in range(500):
        await fwd.forward([SPEC, GEN, HOLD_ROUTE], time.monotonic() + 0.02, q, 2.0)
    t = time.process_time()
    for _ in range(n):
        r = await fwd.forward([SPEC, GEN, HOLD_ROUTE], time.monotonic() + 0.02, q, 2.0)
        assert r.route == SPEC
    return (time.process_time() - t) / n * 1e6

async def main():
    import gc
    for hedging in (False, True):
        res = {"old": [], "new": []}
        for _ in range(5):
            for name, mod in (("old", old), ("new", new)):
                gc.collect()
                res[name].append(await bench(mod, 5000, hedging))
        print("hedging", hedging, {k: [round(x, 1) for x in v] for k, v in res.items()},
              "median us/forward", {k: round(sorted(v)[2], 1) for k, v in res.items()})

try:
    import uvloop; uvloop.install()
except ImportError:
    pass
asyncio.run(main())
