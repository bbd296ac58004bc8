"""Generate the Triton model repository from built artifacts.

    python -m policies.repository --artifacts build/models/ci --out build/model_repository/ci \
        [--flavour cpu|gpu] [--fault-injection FAULT_DIR]

Models: `preprocess`, `postprocess`, `policy_<name>` per policy, and the ensembles `generalist`
and `specialist_<task_id>` (preprocess -> policy -> postprocess) with the parameter
`policy_version` from each model card. Everything is checked before anything is written; files are
rewritten only when their bytes change, and model directories the manifest no longer lists are
removed, so regenerating from the same artifacts leaves the tree untouched.

`--flavour gpu` (`make gpu-repository`: build/gpu_model_repository/<panel>) serves each policy
with Triton's native `onnxruntime_onnx` platform on KIND_GPU; it needs the NGC image and cannot
run here. Both flavours are generated, never checked in.
`--fault-injection` is for tests: each python-backend policy then reads
FAULT_DIR/policy_<name>.json (see policies/serving/policy.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from policies.serving import configs
from policies.serving.manifest import ArtifactError, Artifacts, load_artifacts

SERVING = Path(__file__).resolve().parent / "serving"
CONFIG_FILE = "config.pbtxt"
VERSION = "1"


@dataclass(frozen=True)
class Plan:
    """Every file of the repository: relative path -> bytes to write or a file to copy."""

    files: Mapping[Path, bytes | Path]
    models: tuple[str, ...]


@dataclass
class Changes:
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def plan(artifacts: Artifacts, flavour: configs.Flavour, fault_dir: Path | None) -> Plan:
    m = artifacts.manifest
    model_configs = {
        configs.PREPROCESS: configs.preprocess(m.obs_dim),
        configs.POSTPROCESS: configs.postprocess(m.action_bounds.low, m.action_bounds.high),
    }
    files: dict[Path, bytes | Path] = {
        Path(configs.PREPROCESS, VERSION, "model.py"): SERVING / "preprocess.py",
        Path(configs.PREPROCESS, VERSION, "norm_stats.json"): artifacts.norm_stats_path,
        Path(configs.POSTPROCESS, VERSION, "model.py"): SERVING / "postprocess.py",
    }
    for p in artifacts.policies:
        n_tasks = len(m.tasks) if p.entry.kind == "generalist" else None
        policy_name = f"policy_{p.entry.name}"
        fault_file = str((fault_dir / f"{policy_name}.json").resolve()) if fault_dir else None
        model_configs[policy_name] = configs.policy(
            policy_name, m.obs_dim, n_tasks, m.action_dim, flavour, fault_file
        )
        model_configs[p.entry.name] = configs.ensemble(
            p.entry.name, policy_name, m.obs_dim, n_tasks, m.action_dim, p.version
        )
        files[Path(policy_name, VERSION, "model.onnx")] = p.onnx_path
        if flavour == "cpu":
            files[Path(policy_name, VERSION, "model.py")] = SERVING / "policy.py"
        # Triton needs a version directory for an ensemble too, and git keeps no empty directory.
        files[Path(p.entry.name, VERSION, ".gitkeep")] = b""

    configs.check_ensembles(model_configs)
    for name, config in model_configs.items():
        text = configs.render(config)
        # Triton reads config.pbtxt with text_format into ModelConfig: do the same before writing.
        if configs.parse(text) != config:
            raise ValueError(f"{name}/{CONFIG_FILE}: does not round-trip through ModelConfig")
        files[Path(name, CONFIG_FILE)] = text.encode()
    return Plan(files=files, models=tuple(sorted(model_configs)))


def _content(source: bytes | Path) -> bytes:
    return source if isinstance(source, bytes) else source.read_bytes()


def apply(out: Path, repo: Plan) -> Changes:
    changes = Changes()
    out.mkdir(parents=True, exist_ok=True)
    for rel, source in sorted(repo.files.items()):
        target = out / rel
        data = _content(source)
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # never a half-written file under a running Triton
        changes.written.append(target)

    wanted = set(repo.models)
    keep = {out / rel for rel in repo.files}
    for child in sorted(out.iterdir()):
        if not (child / CONFIG_FILE).is_file():
            continue  # not a model directory: leave READMEs and the like alone
        if child.name not in wanted:
            shutil.rmtree(child)
            changes.removed.append(child)
            continue
        for path in sorted(child.rglob("*"), reverse=True):  # children before their parents
            if path in keep or "__pycache__" in path.parts:
                continue
            if path.is_file() or path.is_symlink():
                path.unlink()
                changes.removed.append(path)
            elif not any(path.iterdir()):
                path.rmdir()
                changes.removed.append(path)
    return changes


def generate(
    artifacts_dir: Path,
    out: Path,
    flavour: configs.Flavour = "cpu",
    fault_dir: Path | None = None,
) -> Changes:
    artifacts = load_artifacts(artifacts_dir)
    return apply(out, plan(artifacts, flavour, fault_dir))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policies.repository", description=__doc__)
    parser.add_argument("--artifacts", type=Path, required=True, help="build/models/<panel>")
    parser.add_argument("--out", type=Path, required=True, help="model repository to write")
    parser.add_argument("--flavour", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--fault-injection",
        type=Path,
        metavar="FAULT_DIR",
        help="tests only: policy_<name> reads FAULT_DIR/policy_<name>.json (cpu flavour)",
    )
    args = parser.parse_args(argv)
    if args.fault_injection and args.flavour != "cpu":
        parser.error("--fault-injection needs --flavour cpu (the python-backend policy)")
    try:
        changes = generate(args.artifacts, args.out, args.flavour, args.fault_injection)
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.out}: {len(changes.written)} files written, {len(changes.removed)} removed "
        f"({args.flavour} flavour, artifacts {args.artifacts})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
