#!/usr/bin/env bash
# Make sure a Chromium exists for the Playwright tests.
# 1. Debian's /usr/bin/chromium if it is already there (machines without downloads);
# 2. Playwright's own build where downloads work;
# 3. Debian's package, installed with apt when we are root.
set -u
PYTHON=${PYTHON:-.venv/bin/python}
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if timeout 300 "$PYTHON" -m playwright install chromium >/dev/null 2>&1; then
  echo "using Playwright's Chromium"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x /usr/bin/chromium ] && exit 0
fi
echo "No Chromium: install Debian's 'chromium' package or run '$PYTHON -m playwright install chromium'" >&2
exit 1
