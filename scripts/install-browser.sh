#!/usr/bin/env bash
# Debian's chromium and chromium-driver for the browser tier (tests/browser), installed with apt where missing.
# --strict (CI): fail when they cannot be installed. Without it (make install on a workstation without root or
# apt): say what to do and carry on; `make test-browser` then fails naming the missing binaries.
set -euo pipefail
strict=0
[[ "${1:-}" == --strict ]] && strict=1
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
sudo=""
[[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo="sudo -n"
if command -v apt-get >/dev/null && { [[ $(id -u) -eq 0 ]] || [[ -n "$sudo" ]]; } \
    && $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver >/dev/null; then
  exit 0
fi
echo "install-browser: could not install chromium and chromium-driver with apt; the browser tests need them" \
     "(apt-get install -y chromium chromium-driver)" >&2
exit "$strict"
