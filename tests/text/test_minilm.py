"""minilm_path: the bundled all-MiniLM-L6-v2 folder, or a clear error without the package."""

from __future__ import annotations

import importlib.util

import pytest

from hybridrec.text import minilm, minilm_path


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == minilm.PACKAGE else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModuleNotFoundError, match=r"hybridrec\[minilm\]"):
        minilm_path()


def test_installed_package_folder_holds_model_and_tokenizer() -> None:
    pytest.importorskip(minilm.PACKAGE)
    folder = minilm_path()
    assert folder.name == "model" and folder.parent.name == minilm.PACKAGE
    assert all((folder / name).is_file() for name in minilm.REQUIRED_FILES)
