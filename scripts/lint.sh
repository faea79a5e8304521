#!/usr/bin/env bash
# Type-check the package with mypy in strict mode (settings in pyproject.toml).
EXTRAS=dev
source "$(dirname "$0")/_venv.sh"
exec python -m mypy tfaudit "$@"
