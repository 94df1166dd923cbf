#!/usr/bin/env bash
# Prepare this checkout for `python -m pytest`: the test extras, and on Debian/Ubuntu the Chromium
# that the web UI's browser test drives (through Playwright's Python package, never its own
# browser download). Without Chromium that one test skips; everything else runs.
#
#   scripts/setup_tests.sh && python -m pytest -q
#
# PYTHON chooses the interpreter (default: python).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
python="${PYTHON:-python}"
chromium=/usr/bin/chromium

"$python" -m pip install --quiet -e '.[test]'

if [[ -x "$chromium" ]]; then
    exit 0
fi

# Run apt-get as root, or through sudo when it needs no password; otherwise say why not.
apt_runner=()
if ! command -v apt-get >/dev/null 2>&1 || [[ ! -r /etc/debian_version ]]; then
    echo "setup_tests: no $chromium and this is not Debian/Ubuntu; the browser test of the web UI will skip."
    exit 0
elif [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        apt_runner=(sudo -n)
    else
        echo "setup_tests: no $chromium and apt-get needs root here; the browser test of the web UI will skip (sudo apt-get install chromium to run it)."
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if "${apt_runner[@]}" apt-get update -qq >/dev/null 2>&1 \
    && "${apt_runner[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    && [[ -x "$chromium" ]]; then
    echo "setup_tests: installed Debian's chromium for the browser test of the web UI."
else
    echo "setup_tests: could not install Debian's chromium package; the browser test of the web UI will skip."
fi
