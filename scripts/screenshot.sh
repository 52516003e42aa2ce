#!/usr/bin/env bash
# Refresh the Live page's screenshot in docs/operations.md: runs the browser test (real stack, headless
# Chromium) and keeps its final screenshot in docs/images/dashboard-live.png.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DASHBOARD_SCREENSHOT="$PWD/docs/images/dashboard-live.png"
scripts/test.sh tests/integration/test_dashboard_browser.py -k storm -q
echo "saved $DASHBOARD_SCREENSHOT"
