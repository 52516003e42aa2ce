#!/usr/bin/env bash
# Build the HTTP load generator of the ingest experiments, vegeta (MIT licence), from its Go module
# into .tools/bin (ignored by git). Needs Go; a second run finds it and returns at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VEGETA_VERSION=v12.13.0
stamp=.tools/vegeta-$VEGETA_VERSION
[[ -x .tools/bin/vegeta && -f $stamp ]] && exit 0
command -v go > /dev/null || { echo "please install Go (https://go.dev/dl/)" >&2; exit 1; }
mkdir -p .tools/bin
echo "[loadgen] go install github.com/tsenart/vegeta/v12@$VEGETA_VERSION" >&2
GOBIN="$PWD/.tools/bin" go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
touch "$stamp"
