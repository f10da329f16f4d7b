from hybridrec.nn.adaptor import MoEAdaptor
from hybridrec.nn.base import PairScorer
from hybridrec.nn.baselines import ItemKNN, Popularity
from hybridrec.nn.gru4rec import GRU4Rec
from hybridrec.nn.ncf import GMF, MF, MLP, NeuMF
from hybridrec.nn.seqrec import SeqRec
from hybridrec.nn.textrec import TextItemTower, TextRec

__all__ = [
    "GMF",
    "GRU4Rec",
    "MF",
    "MLP",
    "ItemKNN",
    "MoEAdaptor",
    "NeuMF",
    "PairScorer",
    "Popularity",
    "SeqRec",
    "TextItemTower",
    "TextRec",
]
