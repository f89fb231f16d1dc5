"""The context compressor: ratio achieved, relevant units kept, speaker labels explained, bad ratios refused."""

from __future__ import annotations

import pytest

from tokenomy.optimize.compressor import compress
from tokenomy.optimize.compressor.units import count_words

FILLER = ["We talked about the weather and lunch plans today.", "Someone mentioned the football match yesterday."]


def transcript() -> str:
    lines = []
    for i in range(200):
        speaker = ("Project Manager", "Industrial Designer", "Marketing")[i % 3]
        text = FILLER[i % 2]
        if 120 <= i < 130:
            text = f"The battery casing uses rubber and titanium, variant {i}, costing twelve euros per unit."
        lines.append(f"{speaker}: {text}")
    return "\n".join(lines)


@pytest.mark.parametrize("method", ["condensed", "extractive"])
@pytest.mark.parametrize("ratio", [4.0, 10.0])
def test_ratio_is_achieved_and_the_relevant_part_survives(method: str, ratio: float) -> None:
    context = transcript()
    out = compress(context, "What did they decide about the battery casing material?", ratio, method)  # type: ignore[arg-type]
    assert out.original_words == count_words(context)
    assert out.compressed_words <= out.original_words / ratio * 1.05
    assert out.compressed_words >= out.original_words / ratio * 0.7
    assert all(f"variant {i}" in out.text for i in range(120, 130))  # every relevant line is kept


def test_condensed_transcript_explains_its_speaker_initials() -> None:
    out = compress(transcript(), "battery casing", 4.0, "condensed")
    first, *rest = out.text.splitlines()
    assert first.startswith("Speakers: ") and "PM=Project Manager" in first and "ID=Industrial Designer" in first
    assert all(line.split(":", 1)[0] in {"PM", "ID", "M"} for line in rest)


def test_documents_are_cut_into_sentences() -> None:
    doc = " ".join(f"Sentence {i} is about gardening and soil." for i in range(100))
    doc += " The launch code for the rocket is stored in vault seven."
    out = compress(doc, "Where is the rocket launch code?", 20.0, "extractive")
    assert "vault seven" in out.text and out.compressed_words < out.original_words / 10


@pytest.mark.parametrize("ratio", [1.0, 0.5, -3.0])
def test_a_ratio_that_compresses_nothing_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="above 1"):
        compress(transcript(), "q", ratio)


def test_no_query_word_in_the_context_still_meets_the_budget() -> None:
    out = compress(transcript(), "zebra xylophone", 4.0)
    assert 0 < out.compressed_words <= out.original_words / 4 * 1.05
