"""Jupyter widgets (L5): the workbench (profile form, live run, results browser, compare)."""

from meshlab.widgets.browser import ResultsBrowser
from meshlab.widgets.form import ProfileForm
from meshlab.widgets.workbench import Workbench

__all__ = ["ProfileForm", "ResultsBrowser", "Workbench"]
