from hybridrec.lit.checkpoint import load_model
from hybridrec.lit.module import RecLitModule

__all__ = ["RecLitModule", "load_model"]
