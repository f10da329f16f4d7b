from hybridrec.lit.module import RecLitModule

__all__ = ["RecLitModule"]
