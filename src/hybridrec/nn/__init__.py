from hybridrec.nn.adaptor import MoEAdaptor
from hybridrec.nn.base import PairScorer
from hybridrec.nn.baselines import ItemKNN, Popularity
from hybridrec.nn.factorized import FactorizedModel
from hybridrec.nn.gru4rec import GRU4Rec
from hybridrec.nn.hybrid import FusedItemTower, Hybrid
from hybridrec.nn.ncf import GMF, MF, MLP, NeuMF
from hybridrec.nn.scoring import DotScorer
from hybridrec.nn.seqrec import SeqRec
from hybridrec.nn.textrec import TextItemTower, TextRec
from hybridrec.nn.towers import GRUTower, ItemIdTower, SelfAttentionTower, SumItemTower, UserIdTower

__all__ = [
    "DotScorer",
    "FactorizedModel",
    "GMF",
    "GRU4Rec",
    "GRUTower",
    "FusedItemTower",
    "Hybrid",
    "ItemIdTower",
    "MF",
    "MLP",
    "ItemKNN",
    "MoEAdaptor",
    "NeuMF",
    "PairScorer",
    "Popularity",
    "SelfAttentionTower",
    "SeqRec",
    "SumItemTower",
    "TextItemTower",
    "TextRec",
    "UserIdTower",
]
