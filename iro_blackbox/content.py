"""Message content as text: a string, or a list of text parts as OpenAI's formats write them.

    text_of_parts("hi")                                              # -> "hi"
    text_of_parts([{"type": "input_text", "text": "a"}, {"type": "text", "text": "b"}])  # "ab"

Used by the dataset reader (chat lines) and the grader templates (judge messages). Image, audio
and file parts are refused by name: the models here read text only.
"""

from __future__ import annotations

from typing import Any

TEXT_PARTS = ("input_text", "output_text", "text")


class ContentError(ValueError):
    """A content that is not text. The message starts with where inside the content ("[2]: ...")
    or ": ..." so the caller prefixes the file, line or key."""


def text_of_parts(content: Any) -> str:
    """The text of a message content (a string, a text part, or a list of them joined in order)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list) or not content:
        raise ContentError(f": expected a string or a list of text parts, got {content!r}")
    texts = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in TEXT_PARTS:
            raise ContentError(
                f"[{i}]: a content part of type {kind!r} is not supported (text parts only: "
                f"{', '.join(TEXT_PARTS)}; images, audio and files need a multimodal model)"
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise ContentError(f"[{i}]: a {kind} part needs a string 'text'")
        texts.append(text)
    return "".join(texts)
