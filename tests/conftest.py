"""Shared fixtures: the real models beside the project, and the sample characters."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_MODELS = PROJECT.parent / "shared" / "models"
ABSENT = "../shared/models is absent (as on a user's machine); real-model tests are skipped"


def shared_model_paths() -> list[Path]:
    if not SHARED_MODELS.is_dir():
        return []
    return sorted(p for p in SHARED_MODELS.rglob("*") if p.suffix.lower() in (".pmd", ".pmx"))


def shared_model_params(characters_only: bool = False):
    """One pytest param per real model file (``characters_only``: per character model), or
    one skipped param when there are none."""
    paths = [p for p in shared_model_paths() if not characters_only or is_character(p)]
    if not paths:
        return [pytest.param(None, marks=pytest.mark.skip(reason=ABSENT), id="no-shared-models")]
    return [pytest.param(p, id=str(p.relative_to(SHARED_MODELS))) for p in paths]


def shared_model(relative: str) -> Path:
    """A named real model, skipping the test when ../shared is absent."""
    path = SHARED_MODELS / relative
    if not path.exists():
        pytest.skip(ABSENT if not SHARED_MODELS.is_dir() else f"{relative} is not in ../shared")
    return path


def is_character(path: Path) -> bool:
    return "_robustness" not in path.parts


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory) -> Path:
    """The sample characters, written once per test session: read them, copy to change them."""
    from mmdrender.samples import write_samples

    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    return folder


@pytest.fixture(scope="session")
def heavy_dir(tmp_path_factory) -> Path:
    """The heavy sample (mmdrender.samples.HEAVY_SAMPLE), written once per test session."""
    from mmdrender.samples import write_heavy_sample

    folder = tmp_path_factory.mktemp("heavy")
    write_heavy_sample(folder)
    return folder


def load_quietly(path):
    """A model loaded with its warnings (missing textures...) kept out of the test output."""
    from mmdrender.loader import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model(path)
