"""Exporting a trained model: the scorer as TorchScript and ONNX, the item matrix.

scorer      ExportedScorer: a model's full-ranking scores as one traceable module
formats     to_torchscript, to_onnx, item_matrix
"""

from hybridrec.export.formats import item_matrix, to_onnx, to_torchscript
from hybridrec.export.scorer import ExportedScorer, example_inputs

__all__ = ["ExportedScorer", "example_inputs", "item_matrix", "to_onnx", "to_torchscript"]
