"""Hydra glue shared by the entry points: where configs live, preparing data from a config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hybridrec.cli.locate import config_dir as config_dir  # re-exported
from hybridrec.data.errors import DataError
from hybridrec.data.preparation.prepare import prepare_cached
from hybridrec.data.pseudonyms import Pseudonymiser, Pseudonyms, pseudonymised_kinds, read_key
from hybridrec.data.raw import RawData
from hybridrec.data.readers.judgments import read_judgments
from hybridrec.data.spec import DataSpec
from hybridrec.text.minilm import minilm_path

# ${minilm_path:} in a config: the MiniLM folder of the optional hybridrec[minilm] package,
# resolved only when a config actually reads it
OmegaConf.register_new_resolver("minilm_path", lambda: str(minilm_path()), replace=True)


def data_config(cfg: DictConfig) -> dict[str, Any]:
    """The part of the config that determines the prepared files (source + filters + protocol)."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    protocol = OmegaConf.to_container(cfg.protocol, resolve=True)
    assert isinstance(data, dict) and isinstance(protocol, dict)
    without_later_defaults(data, protocol)
    kinds = pseudonymised_kinds(data.pop("pseudonymise", False))
    if kinds:  # off (the default): the folder's name as before the switch existed
        data["pseudonymise"] = list(kinds)
    return {"data": data, "protocol": protocol}


def without_later_defaults(data: dict[Any, Any], protocol: dict[Any, Any]) -> None:
    """Drop, in place, the keys added after prepared folders and part runs existed while they
    hold their defaults (``protocol.other_slice: keep``, ``data.pseudonymise: false``): what
    identifies a folder (its name) or a part (its key) stays the same, so those stay valid."""
    if protocol.get("other_slice") == "keep":
        protocol.pop("other_slice")
    if not data.get("pseudonymise"):
        data.pop("pseudonymise", None)


def prepared_folder(cfg: DictConfig) -> Path:
    """``<data_dir>/prepared/<name>-<protocol>-<hash of the data config>``."""
    blob = json.dumps(data_config(cfg), sort_keys=True, default=str).encode()
    digest = hashlib.sha256(blob).hexdigest()[:10]
    return Path(cfg.paths.data_dir) / "prepared" / f"{cfg.data.name}-{cfg.protocol.name}-{digest}"


def read_source(cfg: DictConfig) -> RawData:
    """Instantiate ``cfg.data.source``; a DataError inside it comes out as itself, not wrapped
    in Hydra's InstantiationException, so the user sees the file/row/column message first."""
    try:
        raw = instantiate(cfg.data.source)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, (DataError, FileNotFoundError)):
            raise cause from None
        raise
    if not isinstance(raw, RawData):
        raise TypeError(f"data.source._target_ must return RawData, got {type(raw).__name__}")
    judgments = cfg.data.get("judgments")
    if judgments is not None and judgments.get("path"):
        # a judgments file replaces whatever judgments the source came with
        columns = judgments.get("columns")
        raw.ratings = read_judgments(
            str(judgments.path),
            columns=None if columns is None else dict(columns),
            sep=judgments.get("sep"),
        )
    return raw


def prepare_from_config(cfg: DictConfig) -> tuple[DataSpec, Path]:
    """Prepare (or reuse) the dataset that ``cfg.data`` + ``cfg.protocol`` describe."""
    folder = prepared_folder(cfg)
    pseudonyms = _pseudonyms(cfg, folder)
    spec = prepare_cached(
        lambda: read_source(cfg),
        instantiate(cfg.protocol),
        folder,
        min_user_interactions=int(cfg.data.get("min_user_interactions", 0)),
        min_item_interactions=int(cfg.data.get("min_item_interactions", 0)),
        source_config=data_config(cfg),
        pseudonyms=pseudonyms,
    )
    return spec, folder


def _pseudonyms(cfg: DictConfig, folder: Path) -> Pseudonyms | None:
    """``data.pseudonymise``: what ``prepare`` hashes, with the key when the environment has
    one (a folder already prepared trains without it; preparing one needs it). A key other
    than the one that prepared ``folder`` is refused in one sentence."""
    kinds = pseudonymised_kinds(cfg.data.get("pseudonymise", False))
    if not kinds:
        return None
    key = read_key()
    if key is not None and (folder / "spec.json").is_file():
        try:
            made_with = DataSpec.load(folder).pseudonyms.get("key_check")
        except DataError:  # a cut-short spec.json: prepared again, with this key
            made_with = None
        if made_with and made_with != Pseudonymiser(key).check:
            raise DataError(
                "this folder's ids were pseudonymised with another key than the one in the "
                "environment (its spec.json key_check differs); use that key, or delete the "
                "folder to prepare it again with this one",
                path=folder,
            )
    return Pseudonyms(kinds, key)
