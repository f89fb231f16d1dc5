"""Which modules a piece of code imports, run in a fresh interpreter (this one has imported everything)."""

from __future__ import annotations

import json
import subprocess
import sys


def imported_by(code: str, *modules: str) -> list[str]:
    """Those of ``modules`` that are imported once ``code`` has run in a new Python process."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out.strip().splitlines()[-1]))
