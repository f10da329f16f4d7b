"""The judgment head at serving time: ``lambda`` and ``segment`` as request fields.

A run trained with a judgment head (``judgment=head_bt | head_pointwise``) keeps the head's
weights in its checkpoint (``head.*``). Serving rebuilds, once, the head's item matrix
``phi`` (N + 1, D_h) and its context vectors (everyone, each segment, each user's offset), and a
request ranks by

    z(s(u, i)) + lambda * z(s_J(c, i))

each standardised over the catalogue (padding left out), as ``hybridrec-eval --lambdas``
measures it (docs/judgments.md). Within one answer this is the order of one dot product of
``[u, lambda' m_c]`` with ``[v_i, phi_i]``, lambda' = lambda std(s) / std(s_J). The context c is
the request's ``segment`` when given, else the user (everyone + the user's offset), else
everyone. ``lambda`` defaults to ``judgment.head.serving_lambda`` of the run (0: the model's
own ranking).

Shapes: N = n_items + 1 (item 0 padding), D_h = the head's size, U = users.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hybridrec.data.batching.judgments import JudgmentData
from hybridrec.nn.contexts import EVERYONE, SEGMENT, context_vectors
from hybridrec.nn.judgment_head import HeadSpec, JudgmentHead, standardise_rows


@dataclass
class ServedJudgment:
    """phi (N, D_h); everyone (D_h,); segments name -> m (D_h,); user_offsets (U, D_h);
    item_bias (N,) or None; default_lambda."""

    phi: Tensor
    everyone: Tensor
    segments: dict[str, Tensor]
    user_offsets: Tensor
    item_bias: Tensor | None
    default_lambda: float = 0.0

    def __post_init__(self) -> None:
        # per request the head costs a lookup: each segment's and everyone's standardised s_J
        # are computed once; users with an offset of their own (user-level judgments) are few
        self._standardised: dict[str | None, Tensor] = {}
        self._own = set(torch.nonzero(self.user_offsets.abs().sum(1) > 0).flatten().tolist())

    def context(self, user_row: int | None, segment: str | None) -> Tensor:
        """m_c (D_h,): the segment's, else the user's, else everyone's."""
        if segment is not None:
            return self.segments[segment]
        if user_row is not None and user_row < self.user_offsets.shape[0]:
            return self.everyone + self.user_offsets[user_row]
        return self.everyone

    def scores(self, user_row: int | None, segment: str | None) -> Tensor:
        """(N,) s_J(c, i) of every item."""
        scores = self.phi @ self.context(user_row, segment)
        return scores if self.item_bias is None else scores + self.item_bias

    def combine(
        self, scores: Tensor, lam: float, user_row: int | None, segment: str | None
    ) -> Tensor:
        """(N,) the model's scores -> z(s) + lam z(s_J); lam 0: the scores unchanged."""
        if lam == 0:
            return scores
        head = self._head(user_row, segment)
        if scores.shape[0] > head.shape[0]:  # products added after training: the head's mean
            head = torch.cat([head, head.new_zeros(scores.shape[0] - head.shape[0])])
        std, mean = torch.std_mean(scores[1:], unbiased=False)
        own = (scores - mean) / std.clamp(min=1e-12)  # a constant row: 0 everywhere
        return torch.add(own, head.to(scores.dtype), alpha=lam)

    def head_term(
        self, scores: Tensor, lam: float, user_row: int | None, segment: str | None
    ) -> Tensor:
        """(N,) the part of :meth:`combine`'s sum that comes from the judgments: lam z(s_J)
        for the request's context (0 at lam 0; products added after training: 0)."""
        if lam == 0:
            return torch.zeros_like(scores)
        head = self._head(user_row, segment)
        if scores.shape[0] > head.shape[0]:
            head = torch.cat([head, head.new_zeros(scores.shape[0] - head.shape[0])])
        return lam * head.to(scores.dtype)

    def _head(self, user_row: int | None, segment: str | None) -> Tensor:
        """(N,) z(s_J(c, ·)) for the request's context (cached for segments and everyone)."""
        if segment is None and user_row is not None and user_row in self._own:
            return standardise_rows(self.scores(user_row, None).unsqueeze(0))[0]
        cached = self._standardised.get(segment)
        if cached is None:
            cached = standardise_rows(self.scores(None, segment).unsqueeze(0))[0]
            self._standardised[segment] = cached
        return cached


def served_judgment(saved: dict[str, Any], model: nn.Module) -> ServedJudgment | None:
    """The head of a checkpoint (``saved``: its dict), or None when the run trained none."""
    config = saved.get("hybridrec_config") or {}
    spec_node = (config.get("judgment") or {}).get("head")
    if not spec_node:
        return None
    spec = HeadSpec(**{k: v for k, v in spec_node.items() if k != "_target_"})
    judgments = (config.get("data") or {}).get("judgments") or {}
    names = [str(s) for s in judgments.get("segments") or []]
    n_users, n_items = int(model.n_users), int(model.n_items)  # type: ignore[arg-type]
    head = JudgmentHead(spec, model, n_users, n_items, max(len(names), 0))
    state = {k.removeprefix("head."): v for k, v in saved["state_dict"].items()}
    state = {k: v for k, v in state.items() if k in head.state_dict()}
    head.load_state_dict(state, strict=True)
    k = int(head.chosen)
    with torch.no_grad():
        phi = head.item_features(model.eval())[k].detach()  # (N, D_h)
        everyone = head.everyone[k].detach()  # (views of parameters: detached, plain data)
        offsets = head.segment_offsets[k].detach()
        segments = {name: everyone + offsets[i] for i, name in enumerate(names)}
        bias = None if head.item_bias is None else head.item_bias[k].detach()
        return ServedJudgment(
            phi=phi,
            everyone=everyone,
            segments=segments,
            user_offsets=head.user_offsets[:, k].detach(),
            item_bias=bias,
            default_lambda=float(spec.serving_lambda),
        )


def user_histories(config: dict[str, Any], folder: Path) -> tuple[Tensor, Tensor]:
    """Every user's training history as the run's evaluation read it (its datamodule on
    ``folder``): (table (U, T), lengths (U,)). ValueError when the datamodule has none."""
    from hydra.utils import instantiate

    node = dict(config["datamodule"])
    node["data_dir"] = str(folder)
    node["data_on_device"] = False
    datamodule = instantiate(node)
    if not hasattr(datamodule, "user_histories"):
        raise ValueError(
            "judgments with a history model need the users' histories: the run's datamodule "
            "has none"
        )
    table, lengths = datamodule.user_histories()
    return table, lengths


def audience_vectors(
    saved: dict[str, Any], model: nn.Module, folder: Path
) -> dict[str, Tensor] | None:
    """Each audience's user-side vector (D,) as evaluation and the review page build it:
    ``""`` everyone, else a segment's name -> the mean user vector of the evaluation's seeded
    population (with the users' training histories for a history model) plus the run's
    learned context offsets (the joint term's; a head run has none, so every audience shares
    everyone's vector and the head's m_c tells them apart). None when ``folder`` (the run's
    prepared data) holds no judgments."""
    config = saved.get("hybridrec_config") or {}
    seed = int((config.get("datamodule") or {}).get("seed", 0))
    data = JudgmentData.load(folder, int(model.n_users), seed=seed)  # type: ignore[arg-type]
    if data is None:
        return None
    histories = (
        user_histories(config, folder) if getattr(model, "history", None) is not None else None
    )
    names = [
        str(s) for s in ((config.get("data") or {}).get("judgments") or {}).get("segments") or []
    ]
    kinds = torch.tensor([EVERYONE] + [SEGMENT] * len(names))
    contexts = torch.tensor([0, *range(len(names))])
    state = saved["state_dict"]
    with torch.no_grad():
        vectors = context_vectors(
            model,
            kinds,
            contexts,
            data.population,
            histories,
            state.get("contexts.everyone_offset"),
            state.get("contexts.segment_offsets"),
        )
    return {"": vectors[0], **{name: vectors[1 + i] for i, name in enumerate(names)}}
