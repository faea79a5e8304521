#!/usr/bin/env bash
# Create .venv, install tfaudit with its test extras, run the whole suite.
#   ./scripts/test.sh                 everything
#   ./scripts/test.sh -m "not slow"   the fast set (no terraform, no servers)
#   ./scripts/test.sh tests/trail/test_append_atomic.py -k torn
EXTRAS=test
source "$(dirname "$0")/_venv.sh"
exec python -m pytest "$@"
