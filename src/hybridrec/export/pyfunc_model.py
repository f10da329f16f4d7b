"""The MLflow pyfunc model (models-from-code): ``mlflow models serve`` answers top-K requests.

Logged by :func:`hybridrec.export.pyfunc.log_recommender`; MLflow runs this file to build the
model, whose artifacts are the checkpoint and the training popularity. A request is a table of
rows with ``user`` and / or ``recent_items`` (raw ids), ``k`` (default 10), ``exclude``,
``include_seen`` and ``exclude_recent``; each answer row holds ``items``, ``scores``,
``score_kind``, ``source``, ``unknown_items`` and, for the hybrids, ``id_share`` /
``part_shares`` (:class:`hybridrec.export.recommender.Recommender`). A session's own items are
left out as the run's evaluation left them out (:func:`masks_known`) unless the request's
``exclude_recent`` says otherwise. A model trained on pseudonymised ids
(``data.pseudonymise``) takes a customer's raw id when the server's environment holds the same
key (``HYBRIDREC_PSEUDONYM_KEY``), and a pseudonym always (:func:`raw_id_key`).

The request is checked by :mod:`hybridrec.export.requests`, not by an MLflow input schema:
MLflow's schema enforcement drops unknown columns with a server-side warning, so a misspelt
``usr`` would quietly get the popularity answer. There an unknown field, a wrong type, a bad
``k``, too many rows or too many ids is a 400 with one sentence, never a 500: the body is
``{"error_code": "INVALID_PARAMETER_VALUE", "message": <the sentence>}``, without the request
table MLflow's server would put around it (:class:`hybridrec.export.requests.RequestRefused`).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from hybridrec.export.requests import bad_request, check_request


def masks_known(saved: dict[str, Any]) -> bool:
    """Whether the run's evaluation masked the known items of a row's history, from the
    checkpoint (its run config and data spec), as ``prepare`` set ``DataSpec.mask_known``:
    session data never (GRU4Rec's evaluation ranks them), otherwise ``protocol.mask_known``
    (default true, also where the checkpoint carries no config)."""
    from hybridrec.lit.checkpoint import PAYLOAD

    config = saved.get("hybridrec_config") or {}
    spec = (saved.get(PAYLOAD) or {}).get("spec") or config.get("spec") or {}
    protocol = config.get("protocol") or {}
    if spec.get("layout") == "sessions" or protocol.get("name") == "session":
        return False
    return bool(protocol.get("mask_known", True))


def raw_id_key(saved: dict[str, Any]) -> Any:
    """For a checkpoint whose user (or session) ids are pseudonyms: the function that turns a
    raw id into its pseudonym, when the environment holds the key that made them; else None.
    Another key than that one is refused in one sentence (its check value differs)."""
    from hybridrec.data.pseudonyms import KEY_ENV, Pseudonymiser, read_key
    from hybridrec.lit.checkpoint import PAYLOAD

    config = saved.get("hybridrec_config") or {}
    spec = (saved.get(PAYLOAD) or {}).get("spec") or config.get("spec") or {}
    entry = spec.get("pseudonyms") or {}
    kind = "sessions" if spec.get("layout") == "sessions" else "users"
    key = read_key() if kind in entry.get("kinds", []) else None
    if key is None:
        return None
    hasher = Pseudonymiser(key)
    if hasher.check != entry.get("key_check"):
        raise ValueError(
            f"the pseudonym key in the environment ({KEY_ENV}) is not the one this model's "
            "data was pseudonymised with: serve it with that key, or without one (requests "
            "then give pseudonyms)"
        )
    return lambda raw: hasher(kind, raw)


class HybridrecRecommender(PythonModel):
    def load_context(self, context: Any) -> None:

        from hybridrec.export.judgment import served_judgment
        from hybridrec.export.recommender import Recommender
        from hybridrec.lit.checkpoint import PAYLOAD, load_model, safe_load

        checkpoint = context.artifacts["checkpoint"]
        saved = safe_load(checkpoint)
        payload = saved[PAYLOAD]
        maps = payload.get("id_maps") or {}
        popularity_path = context.artifacts.get("popularity")
        popularity = np.load(popularity_path) if popularity_path else None
        new_path = context.artifacts.get("new_items")
        added = safe_load(new_path) if new_path else None
        seen_path = context.artifacts.get("seen")
        seen = None
        if seen_path:
            with np.load(seen_path) as arrays:
                seen = (arrays["indptr"], arrays["items"])
        audience_path = context.artifacts.get("audience")
        audience = None
        if audience_path:  # each audience's vector: a segment without a user ranks for it
            stored = safe_load(audience_path)
            audience = dict(zip(stored["names"], stored["vectors"], strict=True))
        model = load_model(checkpoint)
        self.recommender = Recommender(
            model,
            [None, *maps.get("items", [])],
            maps.get("users", []),
            popularity,
            new_items=None if added is None else (added["items"], added["vectors"]),
            seen=seen,
            exclude_recent=masks_known(saved),
            judgment=served_judgment(saved, model),
            audience=audience,
        )
        self.raw_id_key = raw_id_key(saved)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from hybridrec.export.recommender import RequestError

        answers = []
        for row, request in enumerate(check_request(model_input)):
            user = request.get("user")
            if user is not None and self.raw_id_key is not None:  # a raw id: its pseudonym
                pseudonym = self.raw_id_key(str(user))
                if pseudonym in self.recommender.user_index:
                    request["user"] = pseudonym
            try:
                answers.append(self.recommender.recommend(**request))
            except RequestError as exc:
                raise bad_request(f"row {row}: {exc}") from exc
        return pd.DataFrame(answers)


mlflow.models.set_model(HybridrecRecommender())
