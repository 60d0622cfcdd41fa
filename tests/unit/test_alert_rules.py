"""deploy/alerts.yml is valid, and its alerts fire when they should (promtool test rules)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")


def test_rules_are_valid() -> None:
    out = subprocess.run(["promtool", "check", "rules", str(HERE.parents[1] / "deploy" / "alerts.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_fire_as_intended() -> None:
    out = subprocess.run(["promtool", "test", "rules", "alert_rules_test.yml"], cwd=HERE, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
