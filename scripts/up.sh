#!/usr/bin/env bash
# Bring up the whole system locally: dependencies, Kafka and MariaDB on loopback, the database schema
# and topics, then every process in the Procfile (API on :8000). Ctrl-C stops the processes;
# `stack/stack.sh down` stops Kafka and MariaDB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
[[ -f .env ]] || cp .env.example .env
set -a; source .env; set +a
stack/stack.sh up
export PATH="$PWD/.venv/bin:$PATH"
exec honcho start -f Procfile
