from hybridrec.nn.base import PairScorer
from hybridrec.nn.ncf import GMF, MF, MLP, NeuMF

__all__ = ["GMF", "MF", "MLP", "NeuMF", "PairScorer"]
