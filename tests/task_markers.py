"""pytest plugin: tag each solution notebook's cells with its exercise marker.

nbval collects notebook cells as test items; marking them ``ex0``..``ex6`` by
the notebook's number lets ``make test EX=2`` run one exercise end to end.
"""

import re

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        match = re.match(r"0*(\d+)_", item.path.name) if item.path.suffix == ".ipynb" else None
        if match:
            item.add_marker(getattr(pytest.mark, f"ex{int(match.group(1))}"))
