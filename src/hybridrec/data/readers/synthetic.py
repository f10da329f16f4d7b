"""The synthetic dataset as a data source: :func:`read_synthetic` calls
:func:`hybridrec.data.synthetic.generate` (the generator and the format writers live there).
"""

from __future__ import annotations

from hybridrec.data.raw import RawData
from hybridrec.data.synthetic.generator import generate

__all__ = ["read_synthetic"]


def read_synthetic(
    n_users: int = 500,
    n_items: int = 300,
    n_factors: int = 8,
    mean_interactions: float = 25,
    popularity_skew: float = 1.0,
    n_raters: int = 4,
    ratings_per_rater: int = 60,
    session_gap: int = 1800,
    seed: int = 0,
    name: str = "synthetic",
    n_new_items: int = 0,
    set_size: int = 0,
) -> RawData:
    """``generate(...).to_raw(name)``: a data source for Hydra ``_target_`` configs."""
    data = generate(
        n_users=n_users,
        n_items=n_items,
        n_factors=n_factors,
        mean_interactions=mean_interactions,
        popularity_skew=popularity_skew,
        n_raters=n_raters,
        ratings_per_rater=ratings_per_rater,
        session_gap=session_gap,
        seed=seed,
        n_new_items=n_new_items,
        set_size=set_size,
    )
    return data.to_raw(name)
