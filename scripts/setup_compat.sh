#!/usr/bin/env bash
# A second ComfyUI host for `make test-compat`: a newer ComfyUI tree (COMPAT_COMFYUI_DIR, default
# .comfy/compat/ComfyUI) with its own venv at .comfy/compat/venv, built the way scripts/setup.sh
# builds the main one. Its state lives under .comfy/compat only (the main host's .comfy/host is never
# written). Without a tree it prints how to get one and "skipped", and exits 0, so CI passes.
# On success it writes .comfy/compat/host (line 1 the tree, line 2 its python), as setup.sh does.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
state="$here/.comfy/compat"
comfy="${COMPAT_COMFYUI_DIR:-$state/ComfyUI}"
venv="$state/venv"
python="$venv/bin/python"
torch_pins=(torch==2.14.1 torchvision==0.29.1)

if [ ! -f "$comfy/main.py" ]; then
  rm -f "$state/host"
  cat <<EOF
test-compat: no second ComfyUI tree at $comfy. To get the one the README names (ComfyUI 0.33.0):
  git clone https://github.com/yzkee/ComfyUI "$comfy"
  git -C "$comfy" checkout 783545f689a0af730065994b46b382ae24844c99
or point COMPAT_COMFYUI_DIR at any ComfyUI tree.
test-compat: skipped
EOF
  exit 0
fi
comfy="$(cd "$comfy" && pwd)"

# The same filter as setup.sh: this machine's pip config lists file:// indexes that warn on every call.
pip() {
  "$python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

mkdir -p "$state"
# Rebuilt when the tree's requirements change (another snapshot), not at every run.
stamp="$venv/.ready-$(cat "$comfy/requirements.txt" "$here/requirements.txt" "$here/tests/requirements.txt" \
  | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  pip install --quiet --upgrade pip
  grep -Ev '^(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$state/comfy-requirements.txt"
  pip install --quiet "${torch_pins[@]}" -r "$state/comfy-requirements.txt" requests
  # Imported unconditionally by newer ComfyUI (not only by its audio nodes); this one loads with the pinned torch.
  pip install --quiet --no-deps torchaudio==2.11.1
  pip install --quiet -r "$here/requirements.txt" -r "$here/tests/requirements.txt"
  touch "$stamp"
fi
printf '%s\n%s\n' "$comfy" "$python" > "$state/host"
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$comfy/comfyui_version.py" 2>/dev/null || true)"
echo "compat ComfyUI ${version:-(version unknown)}: $comfy"
echo "compat python:  $python"
