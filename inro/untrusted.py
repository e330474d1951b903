"""Reading text and JSON from outside: bounded parsing, and the characters a database cannot store.

Two policies share these helpers:
- the API refuses (400) any JSON string or query value holding a NUL or a lone surrogate, before any
  database work: PostgreSQL refuses NUL in text and jsonb, and UTF-8 cannot encode half a surrogate
  pair (a phone cutting a string inside an emoji sends exactly that);
- signed deliveries from Meta and Stripe are never refused for their characters: their text is
  cleaned where it is stored (NUL dropped, lone surrogates replaced by U+FFFD).

Nesting is bounded everywhere: Python's json module recurses once per level and raises
RecursionError near 1,000 levels, so a 2 KB body of brackets would otherwise be a 500.
"""

import json
import re

from django.conf import settings

# NUL, or one half of a UTF-16 surrogate pair on its own (json decodes a valid "\ud83d\ude00" pair
# into one code point, so any surrogate left in a decoded str is a lone one).
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class UntrustedJSONError(ValueError):
    """The body is not JSON we accept; `reason` is "malformed" or "too_deep"."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def json_max_depth() -> int:
    return settings.JSON_MAX_DEPTH


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_parse(raw: bytes | str, *, max_depth: int | None = None, encoding: str = "utf-8"):
    """Decode and parse a JSON document nested at most `max_depth` levels (JSON_MAX_DEPTH).

    NaN and Infinity are refused (not JSON). Raises UntrustedJSONError.
    """
    limit = json_max_depth() if max_depth is None else max_depth
    if isinstance(raw, bytes):
        try:
            raw = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise UntrustedJSONError(f"The body is not valid {encoding} text.", reason="malformed") from None
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise UntrustedJSONError(f"JSON nested deeper than {limit} levels is refused.", reason="too_deep") from None
    except ValueError as error:
        raise UntrustedJSONError(f"The body is not valid JSON: {error}.", reason="malformed") from None
    if json_depth(value) > limit:
        raise UntrustedJSONError(f"JSON nested deeper than {limit} levels is refused.", reason="too_deep")
    return value


def json_depth(value) -> int:
    """Levels of arrays and objects (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def text_is_storable(text: str) -> bool:
    return _FORBIDDEN.search(text) is None


def first_unstorable(value, path: str = "") -> str | None:
    """The dotted path of the first string (key or value) holding a NUL or a lone surrogate, or None."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not text_is_storable(item):
                return where or "non_field_errors"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and not text_is_storable(key):
                    return where or "non_field_errors"
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{index}" if where else str(index)) for index, child in enumerate(item))
    return None


def text_clean(text: str) -> str:
    """NUL dropped, each lone surrogate replaced by U+FFFD: what a signed delivery's text is stored as."""
    if text_is_storable(text):
        return text
    return _SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def json_clean(value):
    """A parsed JSON value with every string (keys too) passed through text_clean, without recursion."""
    if isinstance(value, str):
        return text_clean(value)
    if not isinstance(value, dict | list):
        return value
    root = {} if isinstance(value, dict) else []
    stack = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, child in items:
            if isinstance(child, dict | list):
                copy = {} if isinstance(child, dict) else []
                stack.append((child, copy))
            elif isinstance(child, str):
                copy = text_clean(child)
            else:
                copy = child
            if isinstance(target, dict):
                target[text_clean(key) if isinstance(key, str) else key] = copy
            else:
                target.append(copy)
    return root
