#!/usr/bin/env bash
# Bring up the whole system locally: dependencies, Kafka and MariaDB on loopback, the database schema
# and topics, then every process in the Procfile (API on :8000) under supervisord, which restarts a
# process that exits while the others keep serving. Ctrl-C stops the processes;
# `stack/stack.sh down` stops Kafka and MariaDB. Settings: the environment, then `.env`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh
scripts/new-env.sh
# .env fills in what the environment does not set, as every process reads it (the environment wins)
while IFS= read -r line || [[ -n $line ]]; do
  [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
  key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
  [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]] && value=${BASH_REMATCH[1]}
  [[ -n ${!key+set} ]] || export "$key=$value"
done < .env
stack/stack.sh up
export PATH="$PWD/.venv/bin:$PATH"
exec python scripts/supervise.py Procfile
