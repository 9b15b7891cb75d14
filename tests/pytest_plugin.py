"""Loaded before any conftest (`-p tests.pytest_plugin` in pyproject.toml's addopts).

The repository root is also the pack, with an `__init__.py` that ComfyUI imports as a package named
after its folder. pytest must never run it (its relative imports fail, or it drags in ComfyUI's
server while collecting), and it would in two ways:

1. pytest collects the root folder as a `Package` and imports its `__init__.py` to look for
   setup_module: `pytest_collect_directory` below makes the root a plain `Dir` instead.
2. When the checkout's folder name is a valid identifier (e.g. `main`), pytest names test modules
   `<folder>.tests.…` and imports `<folder>` first: a bare package object for `<folder>` stops that.

Also, when a host is set up, ComfyUI goes on sys.path and is switched to the CPU before any test
module can import `comfy` (see tests/comfy_path.py).
"""

from __future__ import annotations

import contextlib
import sys
import types

import pytest

from tests import comfy_path

_ROOT = comfy_path.REPO_ROOT

if _ROOT.name.isidentifier() and (_ROOT / "__init__.py").is_file() and _ROOT.name not in sys.modules:
    _stub = types.ModuleType(_ROOT.name, "The repository root as a bare package; see tests/pytest_plugin.py")
    _stub.__path__ = [str(_ROOT)]
    sys.modules[_ROOT.name] = _stub

# Without a host, tests that need ComfyUI skip (or fail under RALU_REQUIRE_HOST=1) through their fixtures.
with contextlib.suppress(comfy_path.HostNotFound):
    comfy_path.ensure()


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path, parent):
    if path == _ROOT or path.resolve() == _ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
