# Sourced by the scripts: create .venv on first use and install tfaudit into it.
# EXTRAS selects the optional dependency set ("" for the CLI alone, "test" for the suite).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "tfaudit needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 64
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-${EXTRAS:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "==> installing tfaudit${EXTRAS:+[$EXTRAS]} into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  # the same pins the action and the GitLab template install (requirements.lock, scripts/lock.py)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e ".${EXTRAS:+[$EXTRAS]}" >&2
  touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
