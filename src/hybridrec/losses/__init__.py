from hybridrec.losses.human import JudgmentLoss
from hybridrec.losses.ranking import BCELoss, BPRLoss, LossSum
from hybridrec.losses.session import BPRMaxLoss, CrossEntropyLoss

__all__ = ["BCELoss", "BPRLoss", "BPRMaxLoss", "CrossEntropyLoss", "JudgmentLoss", "LossSum"]
