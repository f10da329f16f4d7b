from hybridrec.metrics.agreement import Agreement, agreement
from hybridrec.metrics.ranking import (
    TIE_MODES,
    RankingMetrics,
    positive_ranks,
    ranking_metrics,
)

__all__ = [
    "TIE_MODES",
    "Agreement",
    "agreement",
    "RankingMetrics",
    "positive_ranks",
    "ranking_metrics",
]
