"""The judgment head inside training and evaluation: with ``shared=false`` the term never
reaches the recommender, with ``shared=true`` it does; serving's lambda adds the head's
standardised score to the recommender's (a hand computation), and lambda 0 leaves the
recommender's own scores as they are."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from omegaconf import DictConfig

from conftest import built_task
from hybridrec.data.batching.judgments import JudgmentBatch
from hybridrec.nn.judgment_head import JudgmentHead, text_tower


def _pair_batch(items: list[list[int]]) -> JudgmentBatch:
    n, none = len(items), torch.zeros(0, dtype=torch.long)
    return JudgmentBatch(
        pair_kind=torch.zeros(n, dtype=torch.long),
        pair_context=torch.zeros(n, dtype=torch.long),
        pair_items=torch.tensor(items),
        pair_weight=torch.ones(n),
        pair_rater=torch.zeros(n, dtype=torch.long),
        row_kind=none,
        row_context=none,
        row_items=none,
        row_targets=torch.zeros(0),
        row_weight=torch.zeros(0),
        row_rater=none,
        population=torch.arange(8),
    )


def _grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters() if p.grad is not None and p.grad.abs().sum() > 0]


@pytest.mark.parametrize("source", ["tokens", "tokens+item"])
def test_the_head_alone_leaves_the_recommender_untouched(
    compose_cfg: Callable[..., DictConfig], source: str
) -> None:
    module, _ = built_task(compose_cfg, "judgment=head_bt", f"judgment.head.source={source}")
    assert isinstance(module.head, JudgmentHead) and len(module.head_losses or []) == 4
    module.model.train()  # the hybrid's ID dropout draws random numbers in training
    before = torch.get_rng_state()
    out = module._head_term(_pair_batch([[1, 2], [3, 4], [5, 1]]))
    assert torch.equal(torch.get_rng_state(), before), "the recommender's random state moved"
    assert torch.isfinite(out["loss"]) and out["loss"] > 0 and out["l2"] > 0
    out["loss"].backward()
    assert _grads(module.head), "the head got no gradient"
    assert not _grads(module.model), "shared=false: the recommender got gradient"


def test_fields_and_the_id_vectors_own_l2_train_one_copy_per_pair(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    module, _ = built_task(
        compose_cfg,
        "judgment=head_pointwise",
        "judgment.head.source=tokens+id",
        "judgment.head.fields=4",
        "judgment.head.map_l2=[0.01,0.1]",
    )
    assert isinstance(module.head, JudgmentHead) and len(module.head_losses or []) == 8
    assert module.head.map_l2.tolist() == pytest.approx([0.01, 0.1] * 4)
    tower = text_tower(module.model)
    assert tower is not None and module.head.token_weight is not None
    # a row per (token, field): more rows than the tokenizer's tokens in the catalogue
    assert module.head.token_weight.shape[1] > int(tower.item_ids.max()) + 1
    out = module._head_term(_pair_batch([[1, 2], [3, 4], [5, 1]]))
    out["loss"].backward()
    assert _grads(module.head) and not _grads(module.model)


def test_shared_lets_the_term_reach_the_text_tower(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    module, _ = built_task(
        compose_cfg,
        "judgment=head_pointwise",
        "judgment.head.source=text",
        "judgment.head.shared=true",
    )
    module.model.train()
    batch = _pair_batch([[1, 2]])
    batch.row_items, batch.row_targets = torch.tensor([1, 2]), torch.tensor([1.0, -1.0])
    batch.row_kind = batch.row_context = batch.row_rater = torch.zeros(2, dtype=torch.long)
    batch.row_weight = torch.ones(2)
    module._head_term(batch)["loss"].backward()
    assert _grads(module.model.items.text), "shared=true: the text tower got no gradient"


def test_serving_lambda_is_the_sum_of_the_standardised_scores(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    module, _ = built_task(compose_cfg, "judgment=head_bt")
    head = module.head
    assert head is not None
    with torch.no_grad():  # a head that is not zero, the second copy kept
        for parameter in head.parameters():
            parameter.normal_()
        head.chosen.fill_(1)
    module.eval()
    users = torch.tensor([0, 3, 7])
    with torch.no_grad():
        histories = module._histories()
        assert histories is not None  # the synthetic hybrid reads the users' histories
        own = module.model.score_all(users, histories[0][users], histories[1][users])
        assert torch.equal(module._with_head(own, users), module._with_head(own, users))
        module.serving_lambda = 0.0
        assert not module._serving_head()  # lambda 0: the recommender's scores, untouched
        module.serving_lambda = 0.5
        combined = module._with_head(own, users)
    # by hand: phi(i) = sum of the kept copy's token rows over i's distinct tokens,
    # m_u = everyone + the user's offset; each row standardised over items 1..N
    assert head.tokens is not None and head.token_weight is not None
    weight = head.token_weight[1].detach()
    for row, user in enumerate(users.tolist()):
        context = head.everyone[1].detach() + head.user_offsets[user, 1].detach()
        hand = []
        for item in range(own.shape[1]):
            tokens = [t for t in head.tokens[item].tolist() if t >= 0]
            hand.append(float(context @ weight[tokens].sum(0)) if tokens else 0.0)
        hand_t = torch.tensor(hand)

        def z(values: torch.Tensor) -> torch.Tensor:
            part = values[1:]
            return (values - part.mean()) / part.std(unbiased=False)

        expected = z(own[row]) + 0.5 * z(hand_t)
        assert torch.allclose(combined[row], expected, atol=1e-4)


def test_crowd_bt_reliability_comes_from_the_kept_copy(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    module, _ = built_task(compose_cfg, "judgment=head_bt", "judgment.reliability=crowd_bt")
    assert module.head is not None and module.head_losses is not None
    kept = module.head_losses[2]
    with torch.no_grad():
        kept.rater_logit.fill_(2.0)
        module.head.chosen.fill_(2)
    eta = module.rater_reliability()
    assert eta is not None and torch.allclose(eta, torch.sigmoid(torch.tensor(2.0)))


def test_the_heads_per_user_rows_are_where_erasure_looks(
    compose_cfg: Callable[..., DictConfig],
) -> None:
    """The head's per-user offsets are a per-user table like the user embeddings (users on dim
    0), so ``forget`` and ``--no-user-table`` zero them with the rest."""
    from hybridrec.export.forget import _user_rows

    module, _ = built_task(compose_cfg, "judgment=head_bt")
    head = module.head
    assert head is not None
    n_users = int(module.model.n_users)
    names = [n for n, t in module.state_dict().items() if _user_rows(n, t, n_users)]
    assert "head.user_offsets" in names and head.user_offsets.shape[0] == n_users
