from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.messages import PromptSlot, find_prompt, present, user_turns, validate_messages
from gateway.refinement.history import Presentation

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def test_last_user_message_string() -> None:
    messages = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    assert find_prompt(messages) == PromptSlot(3, "second")
    assert user_turns(messages) == ([PromptSlot(1, "first"), PromptSlot(3, "second")], True)


@pytest.mark.parametrize(
    "tail",
    [
        [{"role": "assistant", "content": "a"}],
        [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}, {"role": "tool", "tool_call_id": "c1", "content": "42"}],
    ],
)
def test_conversation_ending_in_assistant_or_tool_has_no_new_turn(tail: list[dict[str, object]]) -> None:
    messages = [{"role": "user", "content": "q"}, *tail]
    assert find_prompt(messages) is None
    assert user_turns(messages) == ([PromptSlot(0, "q")], False)


def test_parts_text_joined_and_images_kept_in_place() -> None:
    messages = [{"role": "user", "content": [IMAGE, {"type": "text", "text": "descrbe this"}, {"type": "text", "text": "plz"}]}]
    slot = find_prompt(messages)
    assert slot == PromptSlot(0, "descrbe this\n\nplz")
    out = present(messages, [(slot, Presentation("Describe this, please."))], "system")
    assert out[0]["content"] == [IMAGE, {"type": "text", "text": "Describe this, please."}]
    assert messages[0]["content"][1]["text"] == "descrbe this"  # input untouched


def test_user_message_without_text() -> None:
    assert find_prompt([{"role": "user", "content": [IMAGE]}]) is None
    assert find_prompt([{"role": "user", "content": "  "}]) is None
    assert find_prompt([{"role": "system", "content": "x"}]) is None
    assert user_turns([{"role": "user", "content": [IMAGE]}]) == ([PromptSlot(0, "")], True)


def test_description_as_system_message_right_before_its_turn() -> None:
    messages = [{"role": "user", "content": "q"}]
    out = present(messages, [(PromptSlot(0, "q"), Presentation("Q?", "Facts."))], "system")
    assert out == [{"role": "system", "content": "Context: Facts."}, {"role": "user", "content": "Q?"}]


def test_existing_system_message_is_never_touched() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    out = present(messages, [(PromptSlot(1, "q"), Presentation("q", "Facts."))], "system")
    assert out == [messages[0], {"role": "system", "content": "Context: Facts."}, messages[1]]
    assert out[0] is messages[0] and out[2] is messages[1]


def test_description_appended_to_user_message() -> None:
    out = present([{"role": "user", "content": "q"}], [(PromptSlot(0, "q"), Presentation("Q?", "Facts."))], "append")
    assert out == [{"role": "user", "content": "Q?\n\nContext: Facts."}]


def test_other_fields_of_message_kept() -> None:
    messages = [{"role": "user", "content": "q", "name": "alice"}]
    out = present(messages, [(PromptSlot(0, "q"), Presentation("Q?"))], "system")
    assert out == [{"role": "user", "content": "Q?", "name": "alice"}]


def test_several_turns_each_context_beside_its_own_turn() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "c"},
    ]
    slots, new = user_turns(messages)
    shown = [(slots[0], Presentation("a!", "ctx a")), (slots[2], Presentation("c!", "ctx c"))]
    out = present(messages, shown, "system")
    assert out == [
        {"role": "system", "content": "S"},
        {"role": "system", "content": "Context: ctx a"},
        {"role": "user", "content": "a!"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "B"},
        {"role": "system", "content": "Context: ctx c"},
        {"role": "user", "content": "c!"},
    ]
    # the next turn shows the same first seven messages byte for byte
    turn2 = [*messages, {"role": "assistant", "content": "C"}, {"role": "user", "content": "d"}]
    slots2, _ = user_turns(turn2)
    out2 = present(turn2, [*shown, (slots2[3], Presentation("d!"))], "system")
    assert out2[: len(out)] == out


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
