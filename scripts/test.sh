#!/usr/bin/env bash
# Run the whole test suite against a real Kafka broker and a real MariaDB (started here if needed),
# after the linters. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh --dev
scripts/build-loadgen.sh
stack/stack.sh up
export PATH="$PWD/.venv/bin:$PATH"
ruff format --check .
ruff check .
mypy .
python -m pytest "$@"
