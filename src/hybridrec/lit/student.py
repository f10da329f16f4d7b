"""Fitting the composed hybrid's text student (ALDI-style distillation from the warm parts).

The teacher is every part that reads no item text (MF, SASRec, GRU4Rec), frozen:
its standardised user vectors ū_k(u) (the composed model's own, so the scale is the one the
combiner weighs) and its centred item vectors t_k(i). The student
(:class:`~hybridrec.nn.student.TextStudent`) reads the item's text-tower outputs and gives
h_k(i); its score for (u, i) is <ū_k(u), h_k(i)>, on the teacher's scale. On triples (u, i+,
i-) — i+ a training interaction of u, i- a uniform warm item — it is trained with three terms
(after Huang et al., "Aligning Distillation For Cold-start Item Recommendation", SIGIR 2023):

    rating    |s(u, i) - t(u, i)| for i+ and i-        the student scores as the teacher does
    ranking   BCE(s(u, i+) - s(u, i-), σ(t(u, i+) - t(u, i-)))   ... and orders as it does
    data      -log σ(s(u, i+) - s(u, i-))              ... and, a little, as the user did

each alignment term weighted by the teacher's confidence in the item, tanh(α log(1 + n_i)) for
an item seen n_i times in training (α puts the median warm item at tanh(1) ≈ 0.76): a rarely
seen item's ID vector is a poor target. ALDI's third term (identity distribution) is left out.

Model selection without the validation split: a seeded share of the warm items is held out of
the student's training, and the epoch whose held-out loss is lowest is kept — the held-out items
are as new to the student as a cold item is. The combiner then weighs the student's blocks on
the validation split like any part's (:mod:`hybridrec.lit.combiner`).

Shapes: U users (the validation rows' users), P training pairs, N = n_items + 1, F text
features, K_s target parts.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hybridrec.lit.validation_rows import drawn_rows
from hybridrec.nn.composed import ComposedHybrid
from hybridrec.nn.student import TextStudent

log = logging.getLogger("hybridrec.student")


@dataclass
class StudentOptions:
    """``model.student`` (configs/model/hybrid.yaml)."""

    hidden: int = 0  # the linear map: the MLP (e.g. 256) did not beat it on validation
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 1024
    max_epochs: int = 30
    pairs_per_epoch: int = 100_000
    patience: int = 3
    holdout: float = 0.1
    rating: float = 1.0
    ranking: float = 1.0
    data: float = 0.1
    max_users: int = 20_000
    seed: int = 0


@dataclass
class StudentFit:
    """What the student fit measured (logged as ``student.json``)."""

    epochs: int
    best_epoch: int
    holdout_loss: float
    holdout_items: int
    train_items: int
    pairs: int
    users: int
    seconds: float
    #: on the held-out warm items' real interactions against uniform held-out items: how often
    #: the student orders (i+, i-) as the user did; the teacher and the text parts alone as
    #: references (they trained on these pairs; the student never saw these items)
    holdout_pair_accuracy: float
    teacher_pair_accuracy: float
    text_pair_accuracy: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def collect_users(
    model: ComposedHybrid, batches: Any, max_rows: int, seed: int = 0
) -> tuple[Tensor, list[Tensor]]:
    """(users (U,), each part's standardised user vectors (U, D_k + 1)) of the validation
    rows' users (each once; histories as evaluation feeds them): the teacher's users."""
    model.eval()
    users, vectors = [], []
    for batch in drawn_rows(batches, max_rows, seed=seed):
        users.append(batch.users.cpu())
        vectors.append(
            [
                v.cpu()
                for v in model.teacher_user_vectors(
                    batch.users, batch.history, batch.history_lengths
                )
            ]
        )
    if not users:
        raise ValueError("the text student needs validation rows (their users' vectors)")
    all_users = torch.cat(users)
    per_part = [torch.cat([v[k] for v in vectors]) for k in range(len(model.parts))]
    first = _first_occurrence(all_users)
    return all_users[first], [v[first] for v in per_part]


def _first_occurrence(values: Tensor) -> Tensor:
    """Indices of each distinct value's first occurrence in ``values`` (M,), in order."""
    unique, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((len(unique),), len(values), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(values)), reduce="amin")
    return first.sort().values


def confidence(counts: Tensor) -> Tensor:
    """(N,) tanh(α log(1 + n_i)), α = 1 / log(1 + median warm count); 0 for cold items."""
    warm = counts[counts > 0]
    median = float(warm.median()) if len(warm) else 1.0
    alpha = 1.0 / math.log1p(max(median, 1.0))
    return torch.tanh(alpha * torch.log1p(counts.float()))


def _scores(users: list[Tensor], items: list[Tensor]) -> Tensor:
    """Per target part k: <users[k], items[k]> row by row -> (K_s, B)."""
    return torch.stack([(u * v).sum(-1) for u, v in zip(users, items, strict=True)])


def fit_student(
    model: ComposedHybrid,
    users: Tensor,
    user_vectors: list[Tensor],
    pairs: Tensor,
    options: StudentOptions,
) -> tuple[TextStudent, StudentFit]:
    """Train a student for ``model`` (not attached: :meth:`ComposedHybrid.set_student`).

    users (U,) and user_vectors (one (U, D_k + 1) per part) from :func:`collect_users`;
    pairs (P, 2) the training (user, item) interactions."""
    if not model.student_parts:
        raise ValueError("the composed hybrid has no part for a text student to stand in for")
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(options.seed)
    targets = model.student_parts
    with torch.no_grad():
        attached, model.student = model.student, None  # the teacher's own item vectors
        item_parts = model.part_item_vectors()
        model.student = attached
        teacher = [item_parts[k].float() for k in targets]  # (N, D_k + 1) each
        features = model.text_features().float()  # (N, F)
        text_scores = [item_parts[k].float() for k in model.text_parts if k not in targets]
    counts = model.counts.cpu()
    weight = confidence(counts)  # (N,)
    warm = torch.nonzero(counts > 0).flatten()
    warm = warm[warm > 0]
    if len(warm) < 2:
        raise ValueError("the text student needs at least two warm items")
    order = warm[torch.randperm(len(warm), generator=generator)]
    n_hold = max(1, round(options.holdout * len(warm))) if options.holdout > 0 else 0
    held, fit_items = order[:n_hold], order[n_hold:]
    in_fit = torch.zeros(len(counts), dtype=torch.bool)
    in_fit[fit_items] = True
    in_held = torch.zeros_like(in_fit)
    in_held[held] = True
    size = max(int(users.max()), int(pairs[:, 0].max()) if len(pairs) else 0) + 1
    row = torch.full((size,), -1, dtype=torch.long)  # user -> its row of user_vectors
    row[users] = torch.arange(len(users))
    pairs = pairs[row[pairs[:, 0]] >= 0]
    train_pairs, held_pairs = pairs[in_fit[pairs[:, 1]]], pairs[in_held[pairs[:, 1]]]
    if not len(train_pairs):
        raise ValueError("the text student found no training interaction of a validation user")
    targets_users = [user_vectors[k].float() for k in targets]
    sizes = model.student_sizes()
    student = TextStudent(features.shape[1], sizes, options.hidden)
    student.set_input_statistics(features[fit_items])
    optimiser = torch.optim.Adam(
        student.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )

    def loss_of(batch: Tensor, negatives: Tensor) -> Tensor:
        rows, positive = row[batch[:, 0]], batch[:, 1]
        both = torch.cat([positive, negatives])
        unique, inverse = torch.unique(both, return_inverse=True)
        predicted = student.blocks(features[unique])  # (M, D_k + 1) each
        user = [u[rows] for u in targets_users]
        b = len(batch)
        s_pos = _scores(user, [p[inverse[:b]] for p in predicted])  # (K_s, B)
        s_neg = _scores(user, [p[inverse[b:]] for p in predicted])
        t_pos = _scores(user, [t[positive] for t in teacher])
        t_neg = _scores(user, [t[negatives] for t in teacher])
        w_pos, w_neg = weight[positive], weight[negatives]
        rating = (w_pos * (s_pos - t_pos).abs() + w_neg * (s_neg - t_neg).abs()).mean()
        ranking = (
            w_pos
            * w_neg
            * F.binary_cross_entropy_with_logits(
                s_pos - s_neg, torch.sigmoid(t_pos - t_neg), reduction="none"
            )
        ).mean()
        data = F.softplus(-(s_pos - s_neg)).mean()
        return options.rating * rating + options.ranking * ranking + options.data * data

    held_generator = torch.Generator().manual_seed(options.seed + 1)
    held_eval = held_pairs[
        torch.randperm(len(held_pairs), generator=held_generator)[: options.pairs_per_epoch]
    ]
    held_negatives = held[torch.randint(len(held), (len(held_eval),), generator=held_generator)]

    @torch.no_grad()
    def held_loss() -> float:
        if not len(held_eval):
            return math.nan
        student.eval()
        total = 0.0
        for start in range(0, len(held_eval), 8192):
            chunk = slice(start, start + 8192)
            total += float(loss_of(held_eval[chunk], held_negatives[chunk])) * len(held_eval[chunk])
        return total / len(held_eval)

    best_loss, best_epoch, best_state, waited, epoch = math.inf, 0, None, 0, 0
    for epoch in range(1, options.max_epochs + 1):
        student.train()
        order = torch.randperm(len(train_pairs), generator=generator)[: options.pairs_per_epoch]
        for start in range(0, len(order), options.batch_size):
            batch = train_pairs[order[start : start + options.batch_size]]
            negatives = fit_items[torch.randint(len(fit_items), (len(batch),), generator=generator)]
            optimiser.zero_grad()
            loss_of(batch, negatives).backward()
            optimiser.step()
        current = held_loss() if n_hold else -float(epoch)
        log.debug("text student: epoch %d, held-out loss %.5f", epoch, current)
        if current < best_loss - 1e-6 or best_state is None:
            best_loss, best_epoch, waited = current, epoch, 0
            best_state = copy.deepcopy(student.state_dict())
        else:
            waited += 1
            if waited >= options.patience:
                break
    assert best_state is not None
    student.load_state_dict(best_state)
    student.eval()

    @torch.no_grad()
    def accuracy(vectors: list[Tensor], parts: list[int]) -> float:
        if not len(held_eval):
            return math.nan
        user_rows = row[held_eval[:, 0]]
        user = [user_vectors[k].float()[user_rows] for k in parts]
        pos = _scores(user, [v[held_eval[:, 1]] for v in vectors]).sum(0)
        neg = _scores(user, [v[held_negatives] for v in vectors]).sum(0)
        return float(((pos > neg).float() + 0.5 * (pos == neg).float()).mean())

    with torch.no_grad():
        student_vectors = student.blocks(features)
    text_parts = [k for k in model.text_parts if k not in targets]
    fit = StudentFit(
        epochs=epoch,
        best_epoch=best_epoch,
        holdout_loss=best_loss if n_hold else math.nan,
        holdout_items=int(n_hold),
        train_items=len(fit_items),
        pairs=len(train_pairs),
        users=len(users),
        seconds=round(time.perf_counter() - started, 2),
        holdout_pair_accuracy=accuracy(student_vectors, targets),
        teacher_pair_accuracy=accuracy(teacher, targets),
        text_pair_accuracy=accuracy(text_scores, text_parts) if text_parts else None,
    )
    log.info(
        "text student: %d epochs (best %d), held-out items %d, pair accuracy on held-out "
        "items: student %.3f, teacher %.3f, text parts %s (%.1f s)",
        fit.epochs,
        fit.best_epoch,
        fit.holdout_items,
        fit.holdout_pair_accuracy,
        fit.teacher_pair_accuracy,
        "—" if fit.text_pair_accuracy is None else f"{fit.text_pair_accuracy:.3f}",
        fit.seconds,
    )
    return student, fit
