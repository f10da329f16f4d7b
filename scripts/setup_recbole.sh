#!/usr/bin/env bash
# Create (if missing) a separate virtualenv for the RecBole 1.2.1 peer benchmark
# and install RecBole there.  Idempotent: re-running only checks the install.
#
# Usage: scripts/setup_recbole.sh        (from anywhere)
# Result: /work/main/.recbole-venv (gitignored); its python path is printed last.
#
# Notes
# - torch is pinned to 2.13.0 through a constraints file so that nothing drags a
#   CUDA build in; on this machine the CPU wheel is pre-seeded in /opt/wheels.
# - RecBole 1.2.1 predates NumPy 2 / pandas 3 / setuptools>=81 (pkg_resources),
#   hence the upper bounds.
# - Extra runtime imports RecBole needs but does not declare are installed
#   explicitly (see RUNTIME_EXTRAS).
# - Run RecBole with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (torch>=2.6 defaults
#   torch.load(weights_only=True), which breaks RecBole's checkpoint loading).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RECBOLE_VENV:-$REPO_ROOT/.recbole-venv}"
PY="$VENV/bin/python"
PYTHON_BIN="${PYTHON:-python3}"

# recbole 1.2.1 declares all its runtime imports (colorlog, colorama, texttable,
# tabulate, thop, psutil, ray, tensorboard, plotly, scikit-learn, scipy, tqdm);
# the import check below verifies that. Add names here if that ever changes.
RUNTIME_EXTRAS=()

if [[ ! -x "$PY" ]]; then
    echo "[setup_recbole] creating venv at $VENV" >&2
    "$PYTHON_BIN" -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
fi

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
printf 'torch==2.13.0\n' >"$CONSTRAINTS"

check() {
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$PY" - <<'PY' 2>/dev/null
import importlib.metadata as md
import recbole, torch
from recbole.quick_start import run_recbole  # noqa: F401  (pulls most runtime deps)
from recbole.model.general_recommender import NeuMF  # noqa: F401
from recbole.trainer import Trainer  # noqa: F401
assert md.version("recbole") == "1.2.1", md.version("recbole")
assert torch.__version__.startswith("2.13.0"), torch.__version__
PY
}

if check; then
    echo "[setup_recbole] RecBole already installed" >&2
else
    echo "[setup_recbole] installing torch 2.13.0 (CPU) + recbole 1.2.1" >&2
    # The host's pip config lists local index folders that may be missing; pip warns
    # once per package about them ("Location ... is ignored"), so drop those lines.
    "$PY" -m pip install -q -c "$CONSTRAINTS" \
        torch==2.13.0 recbole==1.2.1 'setuptools<81' 'numpy<2' 'pandas<3' \
        ${RUNTIME_EXTRAS[@]+"${RUNTIME_EXTRAS[@]}"} \
        2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
    if ! check; then
        echo "[setup_recbole] import check failed; traceback:" >&2
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$PY" -c \
            'from recbole.quick_start import run_recbole; from recbole.model.general_recommender import NeuMF' || true
        exit 1
    fi
fi

"$PY" -c 'import recbole, torch; print("[setup_recbole] recbole", recbole.__version__, "torch", torch.__version__)' >&2
echo "$PY"
