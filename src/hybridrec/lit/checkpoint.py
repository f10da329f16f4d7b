"""Self-contained checkpoints: a model rebuilds from its checkpoint alone.

Every checkpoint a run saves carries, next to Lightning's ``state_dict``, the entry
``hybridrec_model``:

    config     the model's resolved config (``_target_`` + typed arguments)
    text       a text tower's tokenizer (as plain data), the catalogue's token ids and a frozen
               encoder's item vectors (``TextItemTower.catalogue_state``); None without text
               (named ``catalogue`` in checkpoints written before 2026-12-05: still read)
    id_maps    raw ids by index: ``users[u]`` is user index u, ``items[i - 1]`` item index i
    spec       the data spec's summary (sizes, protocol, fingerprint)

All plain data and tensors, so :func:`load_model` reads it with ``weights_only=True`` and
needs neither the prepared data folder nor the code that trained it beyond this package.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from hybridrec.data.catalogue import Catalogue
from hybridrec.errors import CheckpointError
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.gru4rec import GRU4Rec, gru4rec_factorized
from hybridrec.nn.student import TextStudent
from hybridrec.nn.textrec import TextItemTower

PAYLOAD = "hybridrec_model"
#: The MLflow run that wrote a checkpoint (``ckpt_path=`` continues that run when it can).
RUN_ID_KEY = "hybridrec_run_id"
_TEXT_TOWER = "hybridrec.nn.TextItemTower"
_TEXT_MODEL = "hybridrec.nn.TextRec"  # passes its extra arguments on to its text tower


def model_payload(
    model: nn.Module, run_config: dict[str, Any], maps: dict[str, list[Any]] | None
) -> dict[str, Any]:
    """The ``hybridrec_model`` entry of a checkpoint (see the module docstring). A composed
    hybrid's entry holds its parts' entries (``parts``) and its own sizes (``config``)."""
    if isinstance(model, ComposedHybrid):
        parts = [
            {k: copy.deepcopy(v) for k, v in payload.items() if k != "id_maps"}
            for payload in getattr(model, "part_payloads", [])
        ]
        if len(parts) != len(model.parts):
            raise ValueError("a composed hybrid needs its parts' checkpoint entries to be saved")
        return {
            "config": {
                "_target_": "hybridrec.nn.composed.ComposedHybrid",  # built by _build_composed
                "combine": "composed",
                "names": list(model.names),
                "n_buckets": model.n_buckets,
                "n_user_buckets": model.n_user_buckets,
                "n_items": model.n_items,
                # the text student's sizes (its weights come with the state dict)
                "student": None if model.student is None else model.student.config(),
            },
            "parts": parts,
            "text": None,
            "id_maps": maps,
            "spec": copy.deepcopy(run_config.get("spec")),
        }
    towers = [m for m in model.modules() if isinstance(m, TextItemTower)]
    if len(towers) > 1:
        raise ValueError("a model with several text towers cannot be saved self-contained yet")
    return {
        "config": copy.deepcopy(run_config["model"]),
        "text": towers[0].catalogue_state() if towers else None,
        "id_maps": maps,
        "spec": copy.deepcopy(run_config.get("spec")),
    }


def _node_partial(node: dict[str, Any]) -> Any:
    """A config node as ``functools.partial`` of its target: objects (the catalogue, a built
    tower, a checkpoint's tensors) are passed to the call, never through Hydra's config."""
    return instantiate({**node, "_partial_": True}, _convert_="all")


def build_model(
    config: Mapping[str, Any],
    catalogue: Catalogue | None = None,
    text_state: dict[str, Any] | None = None,
) -> nn.Module:
    """The model of a ``model`` config, given what it reads of the data as objects, never a
    folder: every node of the config that has a ``catalogue`` key (the model, or one level
    down, its text tower) gets ``catalogue``; a checkpoint's ``text_state`` (tokens, a frozen
    encoder's vectors: ``TextItemTower.catalogue_state``) goes to the text tower instead of
    the catalogue's texts. Configs saved before the catalogue named the prepared folder
    (``data_dir``): that key is dropped."""
    if isinstance(config, DictConfig):  # a run's model node: its interpolations resolved
        config = cast(dict[str, Any], OmegaConf.to_container(config, resolve=True))
    config = cast(dict[str, Any], copy.deepcopy(dict(config)))
    config.pop("data_dir", None)
    built: dict[str, Any] = {}
    for key, node in list(config.items()):
        if not isinstance(node, dict) or "_target_" not in node:
            continue
        node.pop("data_dir", None)
        if node.get("_target_") == _TEXT_TOWER:
            config.pop(key)
            built[key] = _node_partial(node)(**_data_arguments(node, catalogue, text_state))
    extra = _data_arguments(config, catalogue, text_state)
    return cast(nn.Module, _node_partial(config)(**built, **extra))


def _data_arguments(
    node: dict[str, Any], catalogue: Catalogue | None, text_state: dict[str, Any] | None
) -> dict[str, Any]:
    """The data objects one node takes (see :func:`build_model`); its config's placeholders
    for them are dropped."""
    wants_catalogue = node.pop("catalogue", False) is not False
    if text_state is not None and node.get("_target_") in (_TEXT_TOWER, _TEXT_MODEL):
        return {"text_state": text_state}
    return {"catalogue": catalogue} if wants_catalogue else {}


def _build_composed(payload: dict[str, Any]) -> nn.Module:
    """A composed hybrid from its parts' entries; its weights, buckets and statistics come with
    the state dict."""
    parts = []
    for part in payload["parts"]:
        built = build_model(part["config"], text_state=_text_state(part))
        if isinstance(built, GRU4Rec):  # served through its factorised view (nn/gru4rec.py)
            built = gru4rec_factorized(built, int((payload.get("spec") or {}).get("n_users", 1)))
        parts.append(cast(FactorizedModel, built))
    config = payload["config"]
    model = ComposedHybrid(
        parts,
        config["names"],
        torch.zeros(int(config["n_items"]) + 1),
        int(config["n_buckets"]),
        n_user_buckets=int(config.get("n_user_buckets", 1)),
    )
    if config.get("student"):
        model.set_student(TextStudent(**config["student"]))
    model.part_payloads = payload["parts"]
    return model


def _text_state(payload: dict[str, Any]) -> dict[str, Any] | None:
    """A payload's text tower state (``text``; ``catalogue`` in checkpoints written before the
    Catalogue object took that name)."""
    state = payload.get("text", payload.get("catalogue"))
    return cast(dict[str, Any], state) if state is not None else None


def safe_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with ``weights_only=True`` (tensors and plain data; no code from the file
    runs), on the CPU. A file that needs more, or that is not a torch file at all, is a
    CheckpointError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"(?:Unsupported global:|unsupported GLOBAL) ([\w.]+)", text)
        if found:  # a pickle of classes or functions: refused
            name = f"a pickled {found[1]}"
            raise CheckpointError(
                f"{path}: refused, it holds Python objects beyond tensors and plain data "
                f"({name}); hybridrec loads files with weights_only=True so that no code in a "
                "file it was sent can run. Use checkpoints written by hybridrec-train."
            ) from None
        reason = text.split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:120]
        raise CheckpointError(_unreadable(path, reason)) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile) as exc:
        raise CheckpointError(_unreadable(path, str(exc).splitlines()[0][:120])) from None
    except (IndexError, KeyError, ValueError) as exc:  # the unpickler on bytes of another kind
        reason = f"not a torch file ({type(exc).__name__} while reading it)"
        raise CheckpointError(_unreadable(path, reason)) from None


def _unreadable(path: str | os.PathLike[str], reason: str) -> str:
    return (
        f"{path}: not a checkpoint written by hybridrec-train (not a readable torch file: "
        f"{reason}; truncated or corrupt?)"
    )


def load_model(checkpoint: str | os.PathLike[str]) -> nn.Module:
    """The model a run saved, rebuilt from ``checkpoint`` alone (``weights_only`` loading),
    in eval mode: the same scores as the model that was saved."""
    path = Path(checkpoint)
    state = safe_load(path)
    if not isinstance(state, dict) or PAYLOAD not in state:
        raise CheckpointError(
            f"{path} has no {PAYLOAD!r} entry: it was not saved by hybridrec-train (or by a "
            "version before self-contained checkpoints); retrain, or rebuild the model from "
            "its config and prepared data"
        )
    payload = state[PAYLOAD]
    if payload["config"].get("combine") == "composed":
        model = _build_composed(payload)
    else:
        model = build_model(payload["config"], text_state=_text_state(payload))
    weights = {
        key.removeprefix("model."): value
        for key, value in state["state_dict"].items()
        if key.startswith("model.")
    }
    if isinstance(model, ComposedHybrid):  # written before user buckets / the repeat offset
        for key, value in model.state_dict().items():
            if (key.startswith("user_") or key == "repeat") and key not in weights:
                weights[key] = value
    model.load_state_dict(weights)
    return model.eval()
