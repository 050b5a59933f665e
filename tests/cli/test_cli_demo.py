"""``mcp-autoscale demo`` tells one story (issue 19): when the planner proposes no call, the demo says why
before it shows the dry run of the call the agent's rule would make; nothing contradicts the planner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_explains_a_call_the_planner_did_not_make(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_autoscale", "demo", "--audit", str(audit)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path)},
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    planner = out.split("== 3.", 1)[1].split("== 4.", 1)[0]
    assert "action: none" in planner and "not fixable" not in out
    assert "expected: capacity for 16 replicas is already on its way" in planner
    assert "The planner proposes no call" in planner  # said before the dry run it shows
    assert "== 4. Not the planner's call: a dry run of patch_hpa min_replicas 2 -> 6" in out
    # every mutating call said what it meant: the audit records carry an explicit dry_run
    assert '"dry_run":true' in audit.read_text() and '"status":"denied"' in audit.read_text()
