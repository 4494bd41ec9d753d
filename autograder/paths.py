"""Where the repository keeps things. Imports nothing heavy: the grading CLI starts without torch."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
