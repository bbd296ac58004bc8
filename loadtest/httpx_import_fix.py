"""Make httpcore's per-lock `import sniffio` attempt cheap when sniffio is not installed.

httpcore tries `import sniffio` each time it creates a lock (several per request). Without the
package, every attempt searches sys.path again: ~0.1 ms of CPU per try, measured as a top cost
of both the load generator and the baseline proxy. A None entry in sys.modules makes the failed
import immediate. Applied only when sniffio really is absent, so nothing that has it changes.
(The lasting fix is to install sniffio; this keeps results honest until then.)
"""

from __future__ import annotations

import importlib.util
import sys


def apply() -> None:
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
