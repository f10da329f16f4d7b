from hybridrec.nn.base import PairScorer
from hybridrec.nn.baselines import ItemKNN, Popularity
from hybridrec.nn.gru4rec import GRU4Rec
from hybridrec.nn.ncf import GMF, MF, MLP, NeuMF
from hybridrec.nn.textrec import TextRec

__all__ = ["GMF", "GRU4Rec", "MF", "MLP", "ItemKNN", "NeuMF", "PairScorer", "Popularity", "TextRec"]
