#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the console tests (tests/console,
# driven by Playwright's Python package; Playwright's own browser downloads are never used).
# Installs it with apt when missing and possible; else fails with a clear message.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing chromium (apt) for the console tests" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "error: /usr/bin/chromium is missing and could not be installed (as root on Debian: apt-get update && apt-get install -y chromium); the console tests need it" >&2
  exit 1
fi
