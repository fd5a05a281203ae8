"""Kernels started one notebook ahead: each notebook still gets a fresh kernel of its own, only
launched while the previous notebook runs, so its ~1.5 s of start-up is off the test's clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync

from meshlab.report.build import ipc_kernel_manager

# what nbclient adds to the kernel's command line when it starts one itself
_EXTRA_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]


class KernelsAhead:
    """`manager_class` goes to papermill as `kernel_manager_class=`; `workdir()` names the
    directory to run the next notebook in (the one its kernel was started in). When papermill
    asks for a kernel manager it gets the kernel started ahead, if any, and the kernel of the
    notebook after it is launched at once, while `left` notebooks remain."""

    def __init__(self, new_dir: Callable[[], Path], left: int, kernel_name: str = "python3"):
        self._new_dir = new_dir
        self._left = left
        self._kernel_name = kernel_name
        self._spare: tuple[Any, Path] | None = None
        base = ipc_kernel_manager()
        self._base = base
        pool = self

        class KernelAhead(base):  # type: ignore[misc, valid-type]
            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                # a spare is an instance of `base`, not of this class: __init__ does not run
                # again on it, and nbclient finds its kernel running (has_kernel) and only
                # connects a client, then shuts it down as it would its own
                spare = pool._take()
                return spare if spare is not None else super().__new__(cls, *args, **kwargs)

        self.manager_class: type = KernelAhead

    def workdir(self, fallback: Path) -> Path:
        return self._spare[1] if self._spare is not None else fallback

    def _take(self) -> Any:
        spare, self._spare = self._spare, None
        self._left -= 1
        if self._left > 0:
            self._launch()
        return spare[0] if spare is not None else None

    def _launch(self) -> None:
        directory = self._new_dir()
        km = self._base(kernel_name=self._kernel_name)
        run_sync(km.start_kernel)(extra_arguments=list(_EXTRA_ARGUMENTS), cwd=str(directory))
        self._spare = (km, directory)

    def close(self) -> None:
        """Shut a kernel started for a notebook that did not run (a failed or skipped test)."""
        spare, self._spare = self._spare, None
        if spare is not None:
            run_sync(spare[0].shutdown_kernel)(now=False)
