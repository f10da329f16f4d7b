"""hybridrec: hybrid deep-learning recommenders trained with Lightning, configured with Hydra,
tracked in MLflow."""

__version__ = "0.1.0"
