"""Write (or check) the dashboard JSON that Grafana provisions from deploy/grafana/dashboards/.

    python -m deploy.grafana.generate           # rewrite the JSON files
    python -m deploy.grafana.generate --check   # exit 1 if a checked-in file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy.grafana.model import render
from deploy.grafana.router_dashboard import router_dashboard
from deploy.grafana.triton_dashboard import triton_dashboard

DASHBOARDS = {"router": router_dashboard, "triton": triton_dashboard}

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def rendered() -> dict[Path, str]:
    """File path -> exact file text, for every dashboard."""
    return {
        DASHBOARD_DIR / f"{name}.json": json.dumps(render(build()), indent=2, ensure_ascii=False)
        + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{path} differs from the generator: run python -m deploy.grafana.generate")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
