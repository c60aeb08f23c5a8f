#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/browser), only where it is missing.
# Playwright's own browser download can't work offline; the tests drive /usr/bin/chromium.
# Safe to run again and again: it does nothing when /usr/bin/chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium.sh: /usr/bin/chromium is missing and this user can't install it (not root, no sudo); the browser tests will be skipped" >&2
        exit 0
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: no apt-get here; install Chromium at /usr/bin/chromium by hand, or the browser tests are skipped" >&2
    exit 0
fi

echo "install-chromium.sh: installing Debian's chromium (a few minutes the first time)" >&2
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if $SUDO apt-get update -qq && \
        $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core >/dev/null; then
        break
    fi
    if [ "$attempt" = 3 ]; then
        echo "install-chromium.sh: apt-get failed three times; see above" >&2
        exit 1
    fi
    echo "install-chromium.sh: apt-get failed (attempt $attempt); retrying in 10 s" >&2
    sleep 10
done
/usr/bin/chromium --version >&2 || true
