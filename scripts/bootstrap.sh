#!/usr/bin/env bash
# Install what the system needs on a Debian machine: MariaDB (and, for the tests, docker-compose,
# headless Chromium with its driver and the load generator wrk) from
# Debian, a JDK and Maven for the Kafka broker, and the Python packages in .venv.
#   scripts/bootstrap.sh [--dev]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want=()
command -v mariadbd > /dev/null || want+=(mariadb-server mariadb-client)
command -v java > /dev/null || want+=(default-jre-headless)
command -v mvn > /dev/null || want+=(maven)
if [[ ${1:-} == --dev ]]; then
  command -v docker-compose > /dev/null || want+=(docker-compose)
  command -v chromium > /dev/null || want+=(chromium)
  command -v chromedriver > /dev/null || want+=(chromium-driver)
  command -v wrk > /dev/null || want+=(wrk)
fi
if ((${#want[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get > /dev/null; then
    echo "please install: ${want[*]}" >&2
    exit 1
  fi
  echo "[bootstrap] apt-get install ${want[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" > /dev/null
fi

PYTHON=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
requirements=requirements.txt
[[ ${1:-} == --dev ]] && requirements=requirements-dev.txt
stamp=.venv/.installed-$(sha256sum requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)-${requirements%.txt}
if [[ ! -f $stamp && ! -f ${stamp%-requirements}-requirements-dev ]]; then  # dev includes the runtime
  echo "[bootstrap] pip install -r $requirements" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$requirements"
  touch "$stamp"
fi
