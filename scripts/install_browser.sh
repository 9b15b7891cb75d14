#!/usr/bin/env bash
# Idempotent: the headless Chromium that the browser tests (tests/browser) drive through playwright.
# Playwright itself comes from tests/requirements.txt without its own browser download; the tests
# launch the system's /usr/bin/chromium (Debian's `chromium` package). A second run does nothing.
# CHROMIUM=/path/to/chromium overrides the path that is checked (the tests read the same variable).
set -euo pipefail
chromium="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$chromium" ]; then
  exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium with apt-get (for tests/browser) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  if [ -x "$chromium" ]; then
    echo "chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"
  else
    echo "apt-get installed chromium but $chromium is missing; set CHROMIUM=/path/to/chromium" >&2
    exit 1
  fi
else
  cat >&2 <<EOF
note: no Chromium at $chromium, and this script can only install one as root with apt-get.
      The browser tests (tests/browser) skip without it. To run them, install Chromium, e.g.
        sudo apt-get update && sudo apt-get install -y chromium      # Debian / Ubuntu
      or point CHROMIUM=/path/to/chromium (or chrome) at one you have.
EOF
fi
exit 0
