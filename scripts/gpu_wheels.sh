#!/usr/bin/env bash
# Fetch, here, the wheels that scripts/gpu_check.sh installs on a lent GPU machine.
#
#   bash scripts/gpu_wheels.sh          # -> .whl/ (git-ignored), then carry it: carry=[".whl"]
#
# The lent machines (docs/device: Python 3.12, PyTorch, Lightning, pandas, pyarrow, ... in their
# image) can reach no package index. What hybridrec needs and that image lacks travels as wheels:
# the list below is requirements.lock minus the image's package list (as read 2026-11-17) minus
# the dev tools, at the versions the lock pins. Wheels are for CPython 3.12 on manylinux x86-64;
# a pure-Python sdist (antlr4's) is built into a wheel here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.whl}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
MISSING=(
    alembic annotated-types antlr4-python3-runtime blinker cachetools cffi cryptography
    databricks-sdk docker fastapi flask flask-cors gitdb gitpython google-auth graphene
    graphql-core graphql-relay gunicorn huey hydra-core hydra-joblib-launcher
    importlib-metadata itsdangerous mako mlflow mlflow-skinny mlflow-tracing omegaconf
    opentelemetry-api opentelemetry-proto opentelemetry-sdk opentelemetry-semantic-conventions
    prettytable pyasn1 pyasn1-modules pycparser pydantic pydantic-core python-dotenv skops
    smmap sqlalchemy sqlparse starlette typing-inspection uvicorn wcwidth
)
mkdir -p "$DEST"
PLATFORMS=()
for n in 39 38 35 34 31 28 27 24 17 5; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for name in "${MISSING[@]}"; do
    pin="$(grep -i -E "^${name//-/[-_]}==" "$ROOT/requirements.lock" | head -1 || true)"
    [[ -n "$pin" ]] || { echo "[gpu_wheels] $name is not in requirements.lock" >&2; exit 1; }
    if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${PLATFORMS[@]}" -d "$DEST" "$pin" 2>/dev/null; then
        echo "[gpu_wheels] $pin: no wheel, building one from the sdist" >&2
        "$PY" -m pip wheel -q --no-deps -w "$DEST" "$pin"
    fi
done
ls "$DEST" | wc -l | xargs echo "[gpu_wheels] wheels:"
du -sh "$DEST"
