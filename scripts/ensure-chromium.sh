#!/usr/bin/env sh
# Make sure Debian's Chromium is installed for the browser tests (lag page, demo page).
#
# Independent of the omnichannel package on purpose: the Makefile's `services` target calls it before the
# virtual environment exists. Playwright's own browser download needs a CDN this project cannot reach, so the
# tests drive the distribution's /usr/bin/chromium instead. A no-op when Chromium is already there.
# Not root and no Chromium: say what to run and succeed, so `make services` works for non-root users with
# every other dependency; the browser test then fails with the same instruction.
set -eu

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure-chromium: $CHROMIUM is missing; install it as root: apt-get update && apt-get install -y chromium" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available; install Chromium by hand" >&2
    exit 0
fi
echo "ensure-chromium: installing Debian's chromium (first run only)..." >&2
export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when an install without it fails (stale lists on a fresh image).
apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y --no-install-recommends chromium >/dev/null
}
test -x "$CHROMIUM"
