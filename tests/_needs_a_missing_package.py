"""A registry entry whose module imports a package that is not installed (test_registry)."""

from __future__ import annotations

import meshlab_test_package_that_is_not_installed  # noqa: F401
