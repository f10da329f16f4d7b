"""The review page's content: what a run trained with marketers' judgments recommends to each
audience, with and without the judgments, and how far it agrees with each rater.

``hybridrec-review RUN_ID`` (:mod:`hybridrec.cli.review`) builds a :class:`Review` here and
renders it with :mod:`hybridrec.export.review_html`. Everything is computed by the code that
serves and evaluates the run:

* an audience ("everyone", each segment of ``data.judgments.segments``) is the user-side vector
  the agreement measure uses for it (:func:`hybridrec.nn.contexts.context_vectors`: the mean
  user vector of the evaluation's seeded population, plus the run's learned context offsets),
  ranked by the served recommender (:meth:`Recommender.recommend_audience`) at lambda 0 and at
  the chosen lambda: ``z(s) + lambda z(s_J)`` with the head's segment (or everyone's) context;
* each item's title comes from the prepared folder (``items.parquet``'s ``title``, else its
  text), "new" means no training interaction, and the judgments' share of its score is
  ``|lambda z(s_J)| / (|z(s)| + |lambda z(s_J)|)`` (0 at lambda 0); the hybrid's ID share is its
  gate (joint hybrid) or each part's share (composed hybrid), as the served answer gives them;
* each rater's held-out agreement (test split: the held-out items of a rater who trained, or
  every judgment of a held-out rater) at lambda 0, at the chosen lambda and of the head alone,
  next to the reliability weight and consensus agreement that ``prepare`` gave the rater
  (``judgments/raters.csv``).

A run trained with the joint term (no head) has no serving lambda: its audiences' lists are the
model's own ranking for each audience's context, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hybridrec.data.batching.judgments import JudgmentData, JudgmentEvalSet, stage_sets
from hybridrec.data.preparation.judgments import load_judgments
from hybridrec.errors import HybridrecError
from hybridrec.export.judgment import ServedJudgment, served_judgment, user_histories
from hybridrec.export.recommender import Recommender
from hybridrec.lit.checkpoint import PAYLOAD, load_model, safe_load
from hybridrec.metrics.agreement import agreement
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.contexts import EVERYONE, SEGMENT, USER, context_vectors
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.judgment_head import standardise_rows

#: the lambda shown when the run's serving lambda is 0 and none is asked for
FALLBACK_LAMBDA = 1.0


class ReviewError(HybridrecError, ValueError):
    """A run the review page cannot show: the message is one sentence."""


@dataclass
class ReviewItem:
    raw_id: str
    title: str
    new: bool | None  # no training interaction; None: unknown (no counts)
    score: float
    own_part: float  # z(s)
    judgment_part: float  # lambda z(s_J)
    id_share: float | None = None  # joint hybrid: the gate
    part_shares: dict[str, float] | None = None  # composed hybrid: each part's share

    @property
    def judgment_share(self) -> float:
        """|lambda z(s_J)| / (|z(s)| + |lambda z(s_J)|): 0 at lambda 0."""
        total = abs(self.own_part) + abs(self.judgment_part)
        return 0.0 if total == 0 else abs(self.judgment_part) / total


@dataclass
class Audience:
    name: str
    segment: str | None
    base: list[ReviewItem]  # lambda 0 (a joint run: the model's own, the only list)
    chosen: list[ReviewItem] | None  # the chosen lambda (a head run)


@dataclass
class RaterRow:
    rater: str
    weight: float | None
    consensus: float | None
    held_out: str  # "items" (a rater who trained) | "rater" (a held-out rater) | "" (none)
    pairs: int
    at_zero: float
    at_lambda: float | None
    head_alone: float | None


@dataclass
class Review:
    run_id: str | None
    run_name: str
    model: str
    kind: str  # "head" | "joint"
    lam: float | None  # the chosen lambda (head runs)
    serving_lambda: float | None
    training_weight: float
    k: int
    audiences: list[Audience]
    raters: list[RaterRow]
    pooled: dict[str, float] = field(default_factory=dict)  # pooled by-item agreement
    logged: dict[str, float] = field(default_factory=dict)  # the run's own test metrics
    notes: list[str] = field(default_factory=list)
    n_items: int = 0
    n_new: int = 0


def _data_dir(config: dict[str, Any], given: Path | None, name: str) -> Path:
    if given is not None:
        folder = given
    else:
        recorded = ((config.get("datamodule") or {}).get("data_dir")) or (
            (config.get("model") or {}).get("data_dir")
        )
        if not recorded:
            raise ReviewError(f"{name} records no prepared data folder; give --data-dir")
        folder = Path(str(recorded))
    if not (folder / "spec.json").is_file():
        raise ReviewError(
            f"{name}'s prepared data folder {folder} is not here (relative to {Path.cwd()}): "
            "run hybridrec-review from the folder the run was trained in, or give --data-dir"
        )
    return folder


def _titles(folder: Path, n: int, raw_ids: list[Any]) -> list[str]:
    """(n,) each item's title by index: items.parquet's ``title``, else its text, else its id."""
    titles = [str(r) for r in raw_ids]
    text_path = folder / "item_text.parquet"
    if text_path.is_file():
        text = pd.read_parquet(text_path)
        for index, value in zip(text["index"].to_numpy(), text["text"].astype(str)):
            if 0 < index < n and value:
                titles[index] = value[:120] + ("…" if len(value) > 120 else "")
    items_path = folder / "items.parquet"
    if items_path.is_file():
        items = pd.read_parquet(items_path)
        if "title" in items.columns:
            for index, value in zip(items["index"].to_numpy(), items["title"]):
                if 0 < index < n and isinstance(value, str) and value:
                    titles[index] = value
    return titles


def _counts(model: Any, folder: Path, n: int) -> np.ndarray | None:
    """(n,) training interactions per item: the model's (the hybrid's gate counts), else the
    prepared training split's."""
    counts = getattr(model, "counts", None)
    if not isinstance(counts, Tensor):
        counts = getattr(getattr(model, "items", None), "counts", None)
    if isinstance(counts, Tensor):
        return counts.detach().cpu().numpy()[:n]
    train = folder / "train.parquet"
    if not train.is_file():
        return None
    items = pd.read_parquet(train, columns=["item"])["item"].to_numpy()
    return np.bincount(items, minlength=n)[:n]


class _Scoring:
    """The run's model, its served recommender and head, and the audiences' vectors."""

    def __init__(self, checkpoint: Path, data_dir: Path | None, name: str) -> None:
        saved = safe_load(checkpoint)
        self.config = config = saved.get("hybridrec_config") or {}
        judgment = config.get("judgment")
        if not judgment:
            raise ReviewError(
                f"{name} was trained without marketers' judgments (its config has no "
                "judgment): the review page needs a judgment head (judgment=head_pointwise or "
                "head_bt) or term (judgment=bt), docs/judgments.md"
            )
        self.training_weight = float(judgment.get("weight", 0.0))
        self.model = model = load_model(checkpoint)
        if not isinstance(model, (FactorizedModel, ComposedHybrid)):
            raise ReviewError(
                f"{name}: judgments are measured on factorised models (the tower contract) "
                f"and the composed hybrid; {type(model).__name__} is neither"
            )
        self.folder = _data_dir(config, data_dir, name)
        self.head: ServedJudgment | None = served_judgment(saved, model)
        payload = saved[PAYLOAD]
        maps = payload.get("id_maps") or {}
        raw_items = [None, *maps.get("items", [])]
        n = len(raw_items)
        self.counts = _counts(model, self.folder, n)
        self.recommender = Recommender(
            model, raw_items, maps.get("users", []), self.counts, judgment=self.head
        )
        self.titles = _titles(self.folder, n, raw_items)
        self.segments = [
            str(s)
            for s in ((config.get("data") or {}).get("judgments") or {}).get("segments") or []
        ]
        state = saved["state_dict"]
        self.everyone_offset = state.get("contexts.everyone_offset")
        self.segment_offsets = state.get("contexts.segment_offsets")
        n_users = int(model.n_users)
        seed = int((config.get("datamodule") or {}).get("seed", 0))
        data = JudgmentData.load(self.folder, n_users, seed=seed)
        if data is None:
            raise ReviewError(
                f"{name}: its prepared data folder {self.folder} holds no judgments.parquet"
            )
        self.population = data.population
        self.histories = self._histories(config) if model.history is not None else None
        self.frame = load_judgments(self.folder)

    def _histories(self, config: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Every user's training history as the run's evaluation read it (its datamodule)."""
        try:
            return user_histories(config, self.folder)
        except ValueError as exc:
            raise ReviewError(str(exc)) from None

    def context_rows(self, kind: Tensor, context: Tensor) -> Tensor:
        """kind, context (P,) -> (P, D) the audiences' user-side vectors (as evaluated)."""
        with torch.no_grad():
            return context_vectors(
                self.model,
                kind,
                context,
                self.population,
                self.histories,
                self.everyone_offset,
                self.segment_offsets,
            )

    def set_scores(self, rows: JudgmentEvalSet, lam: float, head_only: bool = False) -> Tensor:
        """(Q,) each held-out judgment's score at ``lam``: ``z(s(c, ·)) + lam z(s_J(c, ·))``
        over the catalogue for the row's context, as ``hybridrec-eval --lambdas`` measures."""
        model = self.model
        with torch.no_grad():
            vectors = self.context_rows(rows.kind, rows.context)
            users = torch.where(rows.kind == USER, rows.context, torch.zeros_like(rows.context))
            if isinstance(model, ComposedHybrid):  # one dot product of concatenated vectors
                own = vectors @ model.item_vectors().T  # (Q, N)
            else:
                assert isinstance(model, FactorizedModel)
                own = model.scorer.score_all(vectors, model.item_vectors(), users)
            if self.head is not None and (lam > 0 or head_only):
                head = torch.stack(
                    [
                        self.head.scores(
                            int(c) if int(k) == USER else None,
                            self.segments[int(c)] if int(k) == SEGMENT else None,
                        )
                        for k, c in zip(rows.kind.tolist(), rows.context.tolist())
                    ]
                )
                own = (
                    standardise_rows(head)
                    if head_only
                    else (standardise_rows(own) + lam * standardise_rows(head))
                )
            return own.gather(1, rows.items.unsqueeze(1)).squeeze(1)


def _items(scoring: _Scoring, answer: dict[str, Any]) -> list[ReviewItem]:
    out = []
    index = scoring.recommender.item_index
    for m, raw in enumerate(answer["items"]):
        i = index[raw]
        counts = scoring.counts
        out.append(
            ReviewItem(
                raw_id=raw,
                title=scoring.titles[i],
                new=None if counts is None else bool(counts[i] == 0),
                score=float(answer["scores"][m]),
                own_part=float(answer["own_part"][m]),
                judgment_part=float(answer["judgment_part"][m]),
                id_share=answer["id_share"][m] if "id_share" in answer else None,
                part_shares=answer["part_shares"][m] if "part_shares" in answer else None,
            )
        )
    return out


def _rater_table(info: dict[str, Any], raters_csv: Path | None) -> pd.DataFrame:
    """rater, weight, consensus_agreement: the run's judgments/raters.csv, else spec.json's."""
    if raters_csv is not None and raters_csv.is_file():
        table = pd.read_csv(raters_csv, dtype={"rater": str})
    else:
        table = pd.DataFrame(
            {
                "rater": [str(r) for r in info.get("raters", [])],
                "weight": info.get("weights", []),
                "consensus_agreement": info.get("consensus_agreement")
                or [np.nan] * len(info.get("raters", [])),
            }
        )
    return table


def build_review(
    checkpoint: Path,
    run_id: str | None = None,
    run_name: str = "",
    lam: float | None = None,
    k: int = 10,
    data_dir: Path | None = None,
    raters_csv: Path | None = None,
    logged: dict[str, float] | None = None,
) -> Review:
    """The review of ``checkpoint`` (the run ``run_id``): lists of ``k`` items per audience at
    lambda 0 and at ``lam`` (default: the run's serving lambda, else FALLBACK_LAMBDA), raters'
    held-out agreement. ReviewError (one sentence) for a run it cannot show."""
    name = f"run {run_id}" if run_id else str(checkpoint)
    scoring = _Scoring(checkpoint, data_dir, name)
    notes: list[str] = []
    serving: float | None = None
    if scoring.head is None:
        kind = "joint"
        if lam is not None:
            raise ReviewError(
                f"--lambda: {name} trained the joint judgment term (λ = judgment.weight = "
                f"{scoring.training_weight:g}, fixed in training) and has no judgment head, so "
                "no λ is chosen at serving time; leave --lambda out"
            )
        notes.append(
            f"This run trained the joint judgment term: the judgments moved the model itself, "
            f"with λ = {scoring.training_weight:g} fixed in training. There is no serving λ; "
            "each list is the model's own ranking for that audience."
        )
    else:
        kind = "head"
        serving = scoring.head.default_lambda
        if lam is None:
            lam = serving if serving > 0 else FALLBACK_LAMBDA
            if serving == 0:
                notes.append(
                    f"The run's serving λ is 0 (judgment.head.serving_lambda): served requests "
                    f"get the model's own ranking unless they ask for a λ. This page shows "
                    f"λ = {lam:g}; choose another with --lambda."
                )
    if not 1 <= k <= scoring.recommender.max_k:
        raise ReviewError(
            f"-k {k}: expected a whole number between 1 and {scoring.recommender.max_k}"
        )
    if lam is not None and not (0 <= lam <= 100):
        raise ReviewError(f"--lambda {lam:g}: expected a number between 0 and 100")

    names = [("everyone", None), *[(s, s) for s in scoring.segments]]
    kinds = torch.tensor([EVERYONE] + [SEGMENT] * len(scoring.segments))
    contexts = torch.tensor([0, *range(len(scoring.segments))])
    vectors = scoring.context_rows(kinds, contexts)  # (1 + S, D)
    audiences = []
    for row, (title, segment) in enumerate(names):
        vector = vectors[row : row + 1]
        # a joint run's segment lives in its vector (the learned offset), not in a head
        head_segment = segment if kind == "head" else None
        base = scoring.recommender.recommend_audience(vector, k, 0.0, head_segment)
        chosen = None
        if kind == "head":
            assert lam is not None
            chosen = _items(
                scoring, scoring.recommender.recommend_audience(vector, k, lam, head_segment)
            )
        audiences.append(Audience(title, segment, _items(scoring, base), chosen))

    raters, pooled = _raters(scoring, kind, lam, raters_csv)
    n = len(scoring.titles) - 1
    n_new = 0 if scoring.counts is None else int((scoring.counts[1:] == 0).sum())
    return Review(
        run_id=run_id,
        run_name=run_name,
        model=type(scoring.model).__name__,
        kind=kind,
        lam=lam,
        serving_lambda=serving,
        training_weight=scoring.training_weight,
        k=k,
        audiences=audiences,
        raters=raters,
        pooled=pooled,
        logged=dict(logged or {}),
        notes=notes,
        n_items=n,
        n_new=n_new,
    )


def _raters(
    scoring: _Scoring, kind: str, lam: float | None, raters_csv: Path | None
) -> tuple[list[RaterRow], dict[str, float]]:
    """Each rater's held-out (test) agreement, and the pooled by-item agreement."""
    frame = scoring.frame
    spec_info = _spec_judgments(scoring.folder)
    table = _rater_table(spec_info, raters_csv)
    names = [str(r) for r in spec_info.get("raters", [])]
    head = kind == "head"
    pooled: dict[str, float] = {}
    if frame is None:
        return [], pooled
    sets = stage_sets(frame, "test")
    for prefix, label in (("", "by_item"), ("cold/", "cold"), ("by_rater/", "by_rater")):
        if prefix in sets:
            chosen = sets[prefix]
            pooled[f"{label}@0"] = _agree(scoring.set_scores(chosen, 0.0), chosen)
            if head and lam is not None:
                pooled[f"{label}@lambda"] = _agree(scoring.set_scores(chosen, lam), chosen)
    rows = []
    for _, entry in table.iterrows():
        rater = str(entry["rater"])
        index = names.index(rater) if rater in names else None
        weight = _number(entry.get("weight"))
        consensus = _number(entry.get("consensus_agreement"))
        mine = stage_sets(frame[frame["rater"] == index], "test") if index is not None else {}
        side = "" if "" in mine else "by_rater/" if "by_rater/" in mine else None
        if side is None:
            rows.append(RaterRow(rater, weight, consensus, "", 0, np.nan, None, None))
            continue
        chosen = mine[side]
        rows.append(
            RaterRow(
                rater=rater,
                weight=weight,
                consensus=consensus,
                held_out="items" if side == "" else "rater",
                pairs=agreement(
                    chosen.targets.float(), chosen.targets, chosen.groups, chosen.pairs
                ).pairs,
                at_zero=_agree(scoring.set_scores(chosen, 0.0), chosen),
                at_lambda=_agree(scoring.set_scores(chosen, lam), chosen)
                if head and lam is not None
                else None,
                head_alone=_agree(scoring.set_scores(chosen, 0.0, head_only=True), chosen)
                if head
                else None,
            )
        )
    return rows, pooled


def _agree(scores: Tensor, rows: JudgmentEvalSet) -> float:
    return float(agreement(scores, rows.targets, rows.groups, rows.pairs).agreement)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def _spec_judgments(folder: Path) -> dict[str, Any]:
    import json

    spec = json.loads((folder / "spec.json").read_text())
    return dict(spec.get("judgments") or {})
