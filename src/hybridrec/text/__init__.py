"""Item text: tokenizers (trained WordPiece or pretrained) and the offline MiniLM helper."""

from hybridrec.text.minilm import minilm_path
from hybridrec.text.tokenize import (
    SPECIAL_TOKENS,
    TextTokenizer,
    load_tokenizer,
    train_wordpiece,
)

__all__ = ["SPECIAL_TOKENS", "TextTokenizer", "load_tokenizer", "minilm_path", "train_wordpiece"]
