"""The second check: numbers, content words, roles and subject must agree."""

from __future__ import annotations

import pytest

from tokenomy.cache.semantic.verify import same_question, signature

DIFFERENT = [
    ("weather in Paris", "weather in London"),
    ("2 apples", "3 apples"),
    ("Healthy dinner recipes under 500 calories", "Healthy dinner recipes under 800 calories"),
    ("convert Markdown to HTML", "convert HTML to Markdown"),
    ("convert 10 USD to EUR", "convert 10 EUR to USD"),
    ("migrating from svn to git", "migrating from git to svn"),
    ("Is Python faster than Java?", "Is Java faster than Python?"),
    ("A man is carrying a dog.", "A dog is carrying a man."),
    ("When was Apple founded?", "Where was Apple founded?"),
    ("Does the store open on Sunday?", "Doesn't the store open on Sunday?"),
    ("Capital of Canada", "Population of Canada"),
]

SAME = [
    ("weather in Paris", "Weather in paris?"),
    ("two apples", "2 apples"),
    ("apache vs nginx for static files", "nginx vs apache for static files"),
    ("best practices for testing helm charts", "helm chart testing best practices"),
    ("migrate from yarn to pnpm steps", "steps to migrate from yarn to pnpm"),
    ("Why doesn't my build work", "why does my build not work"),
    ("population of 1,000,000 people", "population of 1000000 people"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_rejects_different_questions(a: str, b: str) -> None:
    assert not same_question(a, b)
    assert not same_question(b, a)


@pytest.mark.parametrize(("a", "b"), SAME)
def test_accepts_rewordings(a: str, b: str) -> None:
    assert same_question(a, b)
    assert same_question(b, a)


def test_signature_numbers_are_canonical() -> None:
    assert signature("$965M in Q2").numbers == signature("965m in q2").numbers
    assert signature("3.50 dollars").numbers == ("3.5",)
