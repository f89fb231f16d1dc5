"""Request validation: clear 400s naming the field."""

from __future__ import annotations

import pytest

from tokenomy.errors import GatewayError
from tokenomy.server import schemas


def _error(data: dict[str, object], schema: type) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        schemas.validate(data, schema)
    return info.value


def test_missing_field_names_it() -> None:
    err = _error({"model": "m"}, schemas.ChatCompletionRequest)
    assert err.status == 400 and err.param == "messages" and "Missing required parameter" in err.message


def test_nested_wrong_type_names_the_path() -> None:
    err = _error({"model": "m", "messages": [{"role": "user", "content": 5}]}, schemas.ChatCompletionRequest)
    assert err.param == "messages[0].content"


def test_out_of_range_values() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert _error({**base, "temperature": 3}, schemas.ChatCompletionRequest).param == "temperature"
    assert _error({**base, "n": 0}, schemas.ChatCompletionRequest).param == "n"
    assert _error({**base, "max_tokens": "9"}, schemas.ChatCompletionRequest).param == "max_tokens"


def test_unknown_fields_pass() -> None:
    data = {"model": "m", "messages": [{"role": "user", "content": "x"}], "brand_new_param": {"a": 1}}
    assert schemas.validate(data, schemas.ChatCompletionRequest).model == "m"


@pytest.mark.parametrize("raw", [b"", b"{bad", b"[1, 2]", b'"text"'])
def test_parse_json_rejects(raw: bytes) -> None:
    with pytest.raises(GatewayError) as info:
        schemas.parse_json(raw)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        (["a", "b"], True),
        ([1, 2], True),
        ([[1], [2, 3]], True),
        ([], False),
        ([1, "a"], False),
        ([[1], []], False),
        ([True], False),
        ([-1], False),
        ([{"a": 1}], False),
    ],
)
def test_embedding_input_shapes(value: object, ok: bool) -> None:
    if ok:
        schemas.check_embedding_input(value)  # type: ignore[arg-type]
    else:
        with pytest.raises(GatewayError) as info:
            schemas.check_embedding_input(value)  # type: ignore[arg-type]
        assert info.value.param == "input"
