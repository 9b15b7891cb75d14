"""`python -m tests.models [--dir DIR] [--force]`: build the random-weight test models (cached).

Run from the repository root with the host's python (`make models` does): the ComfyUI directory is
read from .comfy/host (or COMFYUI_DIR) and put on sys.path.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests import comfy_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.models", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="models folder (default: .comfy/test-models)")
    parser.add_argument("--force", action="store_true", help="rebuild even the cached files")
    opts = parser.parse_args(argv)

    host = comfy_path.ensure()
    from tests.models import builders

    models_dir = opts.dir or builders.DEFAULT_DIR
    start = time.perf_counter()
    print(f"test models in {models_dir} (ComfyUI: {host.comfy_dir})", flush=True)
    results = builders.build_all(models_dir, force=opts.force, log=lambda line: print(line, flush=True))
    built = sum(r.built for r in results)
    print(f"{built} built, {len(results) - built} cached, {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
