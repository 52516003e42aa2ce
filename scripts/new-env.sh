#!/usr/bin/env bash
# Create .env from .env.example with secrets of its own: a fresh ADMIN_TOKEN (the admin API's and the
# dashboard's), REQUEST_ID_SECRET (signs request ids) and DB_PASSWORD (the database user's, Docker only).
# Never overwrites an existing .env. `scripts/up.sh` runs it; `docker compose` reads the same .env.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -f .env ]]; then
  echo "[env] .env exists: left as it is" >&2
  exit 0
fi
secret() { head -c 32 /dev/urandom | base64 | tr -d '=+/\n' | cut -c1-40; }
umask 077
sed -e "s/^ADMIN_TOKEN=.*/ADMIN_TOKEN=$(secret)/" \
    -e "s/^REQUEST_ID_SECRET=.*/REQUEST_ID_SECRET=$(secret)/" .env.example > .env
echo "DB_PASSWORD=$(secret)" >> .env
echo "[env] wrote .env with a new ADMIN_TOKEN (the admin API's and the dashboard's: see ADMIN_TOKEN in .env) and REQUEST_ID_SECRET" >&2
