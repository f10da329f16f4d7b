"""Neural collaborative filtering: MF, GMF, MLP and NeuMF.

He et al., "Neural Collaborative Filtering", WWW 2017 (GMF, MLP, NeuMF, pre-training), and
Rendle et al., "Neural Collaborative Filtering vs. Matrix Factorization Revisited", RecSys 2020
(MF: a plain dot product is the baseline to beat).

Shapes: B = batch rows, C = candidates per row, N = n_items + 1 (item 0 is padding),
D = embedding size, H = hidden size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridrec.nn.base import PairScorer
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.rows import rows
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.towers import ItemIdTower, UserIdTower


def _embedding(rows: int, dim: int, std: float) -> nn.Embedding:
    table = nn.Embedding(rows, dim)
    nn.init.normal_(table.weight, std=std)
    return table


class MF(FactorizedModel):
    """Matrix factorisation: ``<p_u, q_i> + b_u + b_i + b`` (Rendle et al. 2020's dot product),
    a :class:`FactorizedModel` of a user ID tower, an item ID tower and a dot scorer with
    biases.

    Args:
        n_users, n_items: sizes from the data spec (items get one extra padding row).
        embedding_dim: D.
        use_bias: add user, item and global biases.
        init_std: std of the normal initialisation of the embeddings.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        embedding_dim: int = 64,
        use_bias: bool = True,
        init_std: float = 0.1,
    ) -> None:
        user_id = UserIdTower(n_users, embedding_dim, init_std)
        items = ItemIdTower(n_items, embedding_dim, init_std)
        scorer = DotScorer(
            n_items=n_items if use_bias else None, n_users=n_users if use_bias else None
        )
        super().__init__(n_users, n_items, items, scorer, user_id=user_id)
        self.use_bias = use_bias


class GMF(PairScorer):
    """Generalised MF: ``h^T (p_u ⊙ q_i) + b`` — MF with a learned weight per factor."""

    def __init__(
        self, n_users: int, n_items: int, embedding_dim: int = 64, init_std: float = 0.01
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user_embedding = _embedding(n_users, embedding_dim, init_std)
        self.item_embedding = _embedding(n_items + 1, embedding_dim, init_std)
        self.predict = nn.Linear(embedding_dim, 1)  # h and b

    def features(self, users: Tensor, items: Tensor) -> Tensor:
        """(B,), (B, C) -> (B, C, D) element-wise products, NeuMF's GMF half."""
        return self.user_embedding(users).unsqueeze(1) * self.item_embedding(items)

    def weighted_dot(self, users: Tensor, items: Tensor, weight: Tensor) -> Tensor:
        """(B,), (B, C), weight (D,) -> (B, C): ``weight . (p_u * q_i)``, computed as
        ``q_i . (p_u * weight)`` so the (B, C, D) product is never kept for backward."""
        user = rows(self.user_embedding.weight, users) * weight  # (B, D)
        return (rows(self.item_embedding.weight, items) * user.unsqueeze(1)).sum(-1)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return self.weighted_dot(users, items, self.predict.weight[0]) + self.predict.bias  # (B, C)

    def user_state(self, users: Tensor) -> Tensor:
        """(B, D + 1): ``p_u ⊙ h`` and the bias, against ``item_embeddings`` = ``[q_i, 1]``."""
        weighted = self.user_embedding(users) * self.predict.weight  # (B, D)
        return torch.cat([weighted, self.predict.bias.expand(weighted.shape[0], 1)], 1)

    def item_embeddings(self) -> Tensor:
        item_vec = self.item_embedding.weight
        return torch.cat([item_vec, torch.ones_like(item_vec[:, :1])], 1)  # (N, D + 1)

    def score_all(self, users: Tensor) -> Tensor:
        return self.user_state(users) @ self.item_embeddings().T  # (B, N)


class MLP(PairScorer):
    """The NCF MLP tower on concatenated user and item embeddings.

    The first layer ``W [p_u; q_i]`` is computed as ``W_u p_u + W_i q_i`` (the same function),
    so scoring all items projects the item table once instead of building (B, N, 2D).

    Args:
        embedding_dim: D per side (NCF's ``layers[0] / 2``).
        hidden_dims: tower widths; the last is the number of predictive factors.
        dropout: dropout after each hidden layer (NCF used none).
    """

    chunk_pairs = 1 << 18

    def __init__(
        self,
        n_users: int,
        n_items: int,
        embedding_dim: int = 32,
        hidden_dims: Sequence[int] = (32, 16, 8),
        dropout: float = 0.0,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if not hidden_dims:
            raise ValueError("model.hidden_dims: expected at least one layer width")
        self.n_users, self.n_items = n_users, n_items
        self.user_embedding = _embedding(n_users, embedding_dim, init_std)
        self.item_embedding = _embedding(n_items + 1, embedding_dim, init_std)
        first = hidden_dims[0]
        self.user_proj = nn.Linear(embedding_dim, first, bias=True)
        self.item_proj = nn.Linear(embedding_dim, first, bias=False)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(hidden_dims[:-1], hidden_dims[1:], strict=True):
            # in place: each ReLU's input is a fresh sum or linear output nothing else keeps
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(width_in, width_out)]
        layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.tower = nn.Sequential(*layers)
        self.predict = nn.Linear(hidden_dims[-1], 1)
        self.output_dim = hidden_dims[-1]

    def features_from(self, user_part: Tensor, item_part: Tensor) -> Tensor:
        """(B, 1, H), (B|1, C, H) first-layer halves -> (B, C, F) tower output."""
        return self.tower(user_part + item_part)

    def item_part(self, items: Tensor) -> Tensor:
        """(B, C) -> (B, C, H) item half of the first layer.

        When the batch holds more candidates than the catalogue has items, projecting the
        whole table once and gathering rows is the same function at a fraction of the cost.
        """
        if items.numel() > self.item_embedding.num_embeddings:
            return rows(self.item_proj(self.item_embedding.weight), items)
        return self.item_proj(rows(self.item_embedding.weight, items))

    def features(self, users: Tensor, items: Tensor) -> Tensor:
        user_part = self.user_proj(rows(self.user_embedding.weight, users)).unsqueeze(1)
        return self.features_from(user_part, self.item_part(items))  # (B, C, F)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return self.predict(self.features(users, items)).squeeze(-1)

    def score_all(self, users: Tensor) -> Tensor:
        item_part = self.item_proj(self.item_embedding.weight).unsqueeze(0)  # (1, N, H)
        rows = max(1, self.chunk_pairs // (self.n_items + 1))
        out = []
        for part in torch.split(users, rows):
            user_part = self.user_proj(self.user_embedding(part)).unsqueeze(1)  # (b, 1, H)
            out.append(self.predict(self.features_from(user_part, item_part)).squeeze(-1))
        return torch.cat(out, 0)  # (B, N)


class NeuMF(PairScorer):
    """NeuMF: GMF and MLP with separate embeddings, fused by one prediction layer.

    Args:
        gmf_dim: GMF embedding size (its predictive factors).
        mlp_embedding_dim, hidden_dims, dropout: the MLP half (see :class:`MLP`).
        pretrained_gmf, pretrained_mlp: optional checkpoint paths (Lightning ``.ckpt`` of a GMF
            / MLP run, or a plain state dict) to initialise from, as in He et al. Section 3.4.1.
        alpha: the GMF share of the fused prediction layer when initialising from pre-training.
    """

    chunk_pairs = 1 << 18

    def __init__(
        self,
        n_users: int,
        n_items: int,
        gmf_dim: int = 8,
        mlp_embedding_dim: int = 32,
        hidden_dims: Sequence[int] = (32, 16, 8),
        dropout: float = 0.0,
        init_std: float = 0.01,
        pretrained_gmf: str | None = None,
        pretrained_mlp: str | None = None,
        alpha: float = 0.5,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.gmf = GMF(n_users, n_items, gmf_dim, init_std)
        self.mlp = MLP(n_users, n_items, mlp_embedding_dim, hidden_dims, dropout, init_std)
        # each half keeps its embeddings and tower; one fused layer predicts from both
        del self.gmf.predict, self.mlp.predict
        self.predict = nn.Linear(gmf_dim + self.mlp.output_dim, 1)
        nn.init.kaiming_uniform_(self.predict.weight, a=1.0)  # LeCun uniform, as NCF's Keras
        if (pretrained_gmf is None) != (pretrained_mlp is None):
            raise ValueError("model.pretrained_gmf and model.pretrained_mlp go together")
        if pretrained_gmf is not None and pretrained_mlp is not None:
            self.load_pretrained(
                load_model_state(pretrained_gmf), load_model_state(pretrained_mlp), alpha
            )

    def load_pretrained(
        self, gmf_state: Mapping[str, Tensor], mlp_state: Mapping[str, Tensor], alpha: float = 0.5
    ) -> None:
        """Initialise both halves from trained GMF / MLP state dicts and fuse their output
        layers: ``h = [alpha h_gmf, (1 - alpha) h_mlp]``, ``b = alpha b_gmf + (1 - alpha) b_mlp``
        (He et al. 2017, Eq. 13)."""
        heads = {}
        for name, state, half in (("GMF", gmf_state, self.gmf), ("MLP", mlp_state, self.mlp)):
            body = {k: v for k, v in state.items() if not k.startswith("predict.")}
            try:
                half.load_state_dict(body)
            except RuntimeError as exc:
                raise ValueError(
                    f"the pre-trained {name} does not match this NeuMF's {name} half "
                    f"(sizes in model config vs the checkpoint): {exc}"
                ) from exc
            heads[name] = (state["predict.weight"], state["predict.bias"])
        (gmf_w, gmf_b), (mlp_w, mlp_b) = heads["GMF"], heads["MLP"]
        with torch.no_grad():
            self.predict.weight.copy_(torch.cat([alpha * gmf_w, (1 - alpha) * mlp_w], 1))
            self.predict.bias.copy_(alpha * gmf_b + (1 - alpha) * mlp_b)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        # predict([gmf; mlp]) as w_g . gmf + w_m . mlp + b: the same function without building
        # and differentiating the (B, C, Dg + F) concatenation
        gmf_dim = self.gmf.user_embedding.embedding_dim
        weight = self.predict.weight  # (1, Dg + F)
        gmf = self.gmf.weighted_dot(users, items, weight[0, :gmf_dim])  # (B, C)
        mlp = F.linear(self.mlp.features(users, items), weight[:, gmf_dim:])  # (B, C, 1)
        return gmf + mlp.squeeze(-1) + self.predict.bias  # (B, C)

    def score_all(self, users: Tensor) -> Tensor:
        gmf_items = self.gmf.item_embedding.weight.unsqueeze(0)  # (1, N, Dg)
        mlp_items = self.mlp.item_proj(self.mlp.item_embedding.weight).unsqueeze(0)  # (1, N, H)
        rows = max(1, self.chunk_pairs // (self.n_items + 1))
        out = []
        for part in torch.split(users, rows):
            gmf = self.gmf.user_embedding(part).unsqueeze(1) * gmf_items  # (b, N, Dg)
            user_part = self.mlp.user_proj(self.mlp.user_embedding(part)).unsqueeze(1)
            mlp = self.mlp.features_from(user_part, mlp_items)  # (b, N, F)
            out.append(self.predict(torch.cat([gmf, mlp], -1)).squeeze(-1))
        return torch.cat(out, 0)


def load_model_state(path: str) -> dict[str, Tensor]:
    """A model's state dict from a Lightning checkpoint (keys under ``model.``) or a plain one."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    prefix = "model."
    if any(key.startswith(prefix) for key in state):
        state = {
            key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)
        }
    return state
