"""Why a recording failed: a connection that could not be made, credentials that were missing.

The plugin turns these into messages with the remedy; nothing here imports a client library.
"""

from __future__ import annotations

from pytest_chatresp.errors import shorten

__all__ = ["connection_failure", "missing_credentials"]

_CONNECTION_ERRORS = frozenset({"ConnectError", "ConnectTimeout", "APIConnectionError"})


def _chain_of(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def connection_failure(exc: BaseException) -> list[str] | None:
    """``module.Type: message`` for each exception of a chain caused by a failed connection
    (the client's own, then its causes), or None when it was something else."""
    chain = _chain_of(exc)
    if not any(
        isinstance(e, ConnectionError) or type(e).__name__ in _CONNECTION_ERRORS for e in chain
    ):
        return None
    shown = []
    for e in chain if len(chain) <= 4 else [*chain[:3], chain[-1]]:  # the root cause last
        module = type(e).__module__.split(".")[0]
        name = type(e).__name__ if module == "builtins" else f"{module}.{type(e).__name__}"
        shown.append(shorten(f"{name}: {e}", 160))
    return shown


def missing_credentials(exc: BaseException) -> str | None:
    """The variable an SDK wanted, when ``exc`` is its "Missing credentials" error."""
    text = str(exc)
    if not type(exc).__module__.startswith("openai") or "Missing credentials" not in text:
        return None
    return "AZURE_OPENAI_API_KEY" if "AZURE_OPENAI_API_KEY" in text else "OPENAI_API_KEY"
