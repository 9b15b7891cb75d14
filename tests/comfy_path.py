"""Find the ComfyUI host that `make setup` prepared and make it importable in this process.

`.comfy/host` (written by scripts/setup.sh) holds the ComfyUI directory on line 1 and its python on
line 2; COMFYUI_DIR / COMFYUI_PYTHON override it. `ensure()` puts the ComfyUI directory first on
sys.path and switches ComfyUI to the CPU *before* anything imports comfy.model_management: call it
(or use the `comfy_inprocess` fixture) before importing `comfy`, `nodes` or `folder_paths`.

Import order matters because two names clash: this repository (on sys.path for the tests) has a
`nodes/` package, and ComfyUI has a top-level `nodes.py`. `ensure()` moves ComfyUI in front.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".comfy"
HOST_FILE = STATE_DIR / "host"


@dataclass(frozen=True)
class Host:
    comfy_dir: Path
    python: str


class HostNotFound(RuntimeError):
    pass


def find_host() -> Host:
    """The ComfyUI host to use: COMFYUI_DIR (+ COMFYUI_PYTHON), else .comfy/host from `make setup`."""
    env_dir = os.environ.get("COMFYUI_DIR")
    if env_dir:
        comfy_dir = Path(env_dir).resolve()
        python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    elif HOST_FILE.is_file():
        lines = HOST_FILE.read_text().splitlines()
        if len(lines) < 2:
            raise HostNotFound(f"{HOST_FILE} is incomplete; run `make setup`")
        comfy_dir, python = Path(lines[0]), lines[1]
    else:
        raise HostNotFound(f"no ComfyUI host: run `make setup` (it writes {HOST_FILE}) or set COMFYUI_DIR")
    if not (comfy_dir / "main.py").is_file():
        raise HostNotFound(f"{comfy_dir} is not a ComfyUI tree (no main.py); run `make setup`")
    return Host(comfy_dir=comfy_dir, python=python)


def ensure() -> Host:
    """Put ComfyUI first on sys.path and force the CPU. Idempotent; returns the host."""
    host = find_host()
    path = str(host.comfy_dir)
    sys.path[:] = [p for p in sys.path if p != path]
    sys.path.insert(0, path)

    import comfy.options  # noqa: F401  (ComfyUI's own argument parsing stays off: args = defaults)
    from comfy.cli_args import args

    if not args.cpu:
        if "comfy.model_management" in sys.modules:
            raise RuntimeError("comfy.model_management was imported before tests.comfy_path.ensure()")
        args.cpu = True
    args.disable_api_nodes = True
    return host
