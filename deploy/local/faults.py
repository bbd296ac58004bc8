"""The one writer of the fault-injection files that the python-backend policy reads
(`policies/serving/policy.py`, models generated with `--fault-injection FAULT_DIR`): tests, the
evaluation's slow-route arm and the benchmark's straggler all go through `FaultFile`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fault:
    """Per execute call: sleep `delay_ms` with `delay_prob`; per request: fail with
    `fail_prob`, answer a NaN action with `nan_prob` (the fields `policy.py` reads)."""

    delay_ms: float = 0.0
    delay_prob: float = 0.0
    fail_prob: float = 0.0
    nan_prob: float = 0.0


@dataclass(frozen=True)
class FaultFile:
    fault_dir: Path

    def set(self, policy_model: str, delay_ms: float = 0.0, delay_prob: float = 0.0,
            fail_prob: float = 0.0, nan_prob: float = 0.0) -> None:
        """From its next execute on, `policy_model` (e.g. `policy_generalist`) misbehaves."""
        self.fault_dir.mkdir(parents=True, exist_ok=True)
        fault = Fault(delay_ms, delay_prob, fail_prob, nan_prob)
        tmp = self.fault_dir / f".{policy_model}.json.tmp"
        tmp.write_text(json.dumps(asdict(fault)))
        tmp.replace(self.fault_dir / f"{policy_model}.json")  # never a half-written file

    def clear(self) -> None:
        for path in self.fault_dir.glob("policy_*.json"):
            path.unlink()
