from hybridrec.losses.ranking import BCELoss, BPRLoss, LossSum

__all__ = ["BCELoss", "BPRLoss", "LossSum"]
