from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.messages import PromptSlot, apply_refinement, find_prompt, validate_messages

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def test_last_user_message_string() -> None:
    messages = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    assert find_prompt(messages) == PromptSlot(3, "second")


def test_conversation_ending_in_assistant_still_finds_last_user() -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert find_prompt(messages) == PromptSlot(0, "q")


def test_parts_text_joined_and_images_kept_in_place() -> None:
    messages = [{"role": "user", "content": [IMAGE, {"type": "text", "text": "descrbe this"}, {"type": "text", "text": "plz"}]}]
    slot = find_prompt(messages)
    assert slot == PromptSlot(0, "descrbe this\n\nplz")
    out = apply_refinement(messages, slot, "Describe this, please.", None, "system")
    assert out[0]["content"] == [IMAGE, {"type": "text", "text": "Describe this, please."}]
    assert messages[0]["content"][1]["text"] == "descrbe this"  # input untouched


def test_user_message_without_text() -> None:
    assert find_prompt([{"role": "user", "content": [IMAGE]}]) is None
    assert find_prompt([{"role": "user", "content": "  "}]) is None
    assert find_prompt([{"role": "system", "content": "x"}]) is None


def test_description_as_new_system_message() -> None:
    messages = [{"role": "user", "content": "q"}]
    out = apply_refinement(messages, PromptSlot(0, "q"), "Q?", "Facts.", "system")
    assert out == [{"role": "system", "content": "Context: Facts."}, {"role": "user", "content": "Q?"}]


def test_description_appended_to_existing_system_message() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    out = apply_refinement(messages, PromptSlot(1, "q"), "q", "Facts.", "system")
    assert out[0]["content"] == "Be brief.\n\nContext: Facts."
    assert out[1] is messages[1]


def test_description_appended_to_user_message() -> None:
    out = apply_refinement([{"role": "user", "content": "q"}], PromptSlot(0, "q"), "Q?", "Facts.", "append")
    assert out == [{"role": "user", "content": "Q?\n\nContext: Facts."}]


def test_other_fields_of_message_kept() -> None:
    messages = [{"role": "user", "content": "q", "name": "alice"}]
    out = apply_refinement(messages, PromptSlot(0, "q"), "Q?", None, "system")
    assert out == [{"role": "user", "content": "Q?", "name": "alice"}]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (None, "messages"),
        ([], "messages"),
        ("hi", "messages"),
        (["hi"], "messages[0]"),
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": [{"text": "x"}]}], "messages[0].content[0]"),
        ([{"role": "user", "content": [{"type": "text", "text": 3}]}], "messages[0].content[0].text"),
    ],
)
def test_validation_errors(messages: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        validate_messages(messages, 100)
    assert info.value.param == param


def test_message_count_limit() -> None:
    with pytest.raises(InvalidRequest):
        validate_messages([{"role": "user", "content": "x"}] * 3, 2)
