#!/usr/bin/env bash
# Refresh the README's screenshot of the Live page: runs the browser test (real stack, headless
# Chromium) and keeps its final screenshot in docs/images/dashboard-live.png.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DASHBOARD_SCREENSHOT="$PWD/docs/images/dashboard-live.png"
scripts/test.sh tests/integration/test_dashboard_browser.py -k storm -q
echo "saved $DASHBOARD_SCREENSHOT"
