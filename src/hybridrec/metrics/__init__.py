from hybridrec.metrics.agreement import Agreement, agreement
from hybridrec.metrics.beyond import BeyondAccuracy, popularity_percentiles
from hybridrec.metrics.ranking import (
    TIE_MODES,
    RankingMetrics,
    positive_ranks,
    ranking_metrics,
)

__all__ = [
    "BeyondAccuracy",
    "popularity_percentiles",
    "TIE_MODES",
    "Agreement",
    "agreement",
    "RankingMetrics",
    "positive_ranks",
    "ranking_metrics",
]
