"""Jupyter widgets (L5): the workbench (profile form, live run, results browser, compare) and the
Voila dashboard. Resolved lazily, so `meshlab dashboard` does not import ipywidgets to start."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshlab.widgets.browser import ResultsBrowser
    from meshlab.widgets.form import ProfileForm
    from meshlab.widgets.run_view import dashboard_page
    from meshlab.widgets.workbench import Workbench

_LAZY = {"ProfileForm": "meshlab.widgets.form", "ResultsBrowser": "meshlab.widgets.browser",
         "Workbench": "meshlab.widgets.workbench", "dashboard_page": "meshlab.widgets.run_view"}

__all__ = ["ProfileForm", "ResultsBrowser", "Workbench", "dashboard_page"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'meshlab.widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
