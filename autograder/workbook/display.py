"""Showing code in a notebook: ``show(function)`` displays the source of a function it imports."""

from __future__ import annotations

import inspect


def show(function) -> None:
    """Display a function's source, highlighted, so a notebook can show code it imports."""
    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{inspect.getsource(function).rstrip()}\n```"))
