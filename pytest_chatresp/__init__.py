"""pytest-chatresp: record chat completion calls once, replay them offline, assert the contract.

The public names are imported on first use, so that loading the plugin stays cheap.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._exports import names_on_first_use

# Before assertions.py is imported anywhere, so its asserts are rewritten even when installed
# in editable mode. Outside pytest (the chatresp command) there is nothing to rewrite.
if "pytest" in sys.modules:
    import pytest

    pytest.register_assert_rewrite("pytest_chatresp.assertions")


if TYPE_CHECKING:
    __version__: str
    from .assertions import (
        assert_choice,
        assert_choices,
        assert_json_content,
        assert_model,
        assert_tier,
        assert_tool_call,
        assert_usage,
    )
    from .cassette import APIErrorInfo, Cassette, Exchange, Request, load_cassette
    from .checks import Rules
    from .errors import CassetteAgeWarning, CassetteError, Violation
    from .models import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessage,
        ChatCompletionResponse,
        Choice,
        CompletionUsage,
    )
    from .recording import SecretLeakError
    from .shapes import ShapeSnapshot

__all__ = [
    "APIErrorInfo",
    "Cassette",
    "CassetteAgeWarning",
    "CassetteError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionResponse",
    "Choice",
    "CompletionUsage",
    "Exchange",
    "Request",
    "Rules",
    "SecretLeakError",
    "ShapeSnapshot",
    "Violation",
    "assert_choice",
    "assert_choices",
    "assert_json_content",
    "assert_model",
    "assert_tier",
    "assert_tool_call",
    "assert_usage",
    "load_cassette",
]

_HOMES = {
    "assertions": (
        "assert_choice",
        "assert_choices",
        "assert_json_content",
        "assert_model",
        "assert_tier",
        "assert_tool_call",
        "assert_usage",
    ),
    "cassette": ("APIErrorInfo", "Cassette", "Exchange", "Request", "load_cassette"),
    "checks": ("Rules",),
    "shapes": ("ShapeSnapshot",),
    "errors": ("CassetteAgeWarning", "CassetteError", "Violation"),
    "recording": ("SecretLeakError",),
    "models": (
        "ChatCompletion",
        "ChatCompletionChunk",
        "ChatCompletionMessage",
        "ChatCompletionResponse",
        "Choice",
        "CompletionUsage",
    ),
}
_public = names_on_first_use(__name__, _HOMES, globals())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-chatresp")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the installed metadata on first use
        globals()[name] = value = _version()
        return value
    return _public(name)


def __dir__() -> list[str]:
    return sorted(__all__)
