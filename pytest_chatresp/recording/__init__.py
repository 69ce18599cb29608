"""Recording and replay through vcrpy: the only package that imports it.

- :mod:`.recorder`: :class:`Recorder`, one test's live cassette, and :class:`RecordSettings`;
- :mod:`.persister`: reading and writing cassettes for vcrpy (locked, merged, scanned, atomic),
  and the readable serializer;
- :mod:`.filters`: the secret scrubbing applied as requests and responses are recorded;
- :mod:`.matching`: the body matcher and the default ``match_on``;
- :mod:`.mismatch`: the message for a request no recording matches;
- :mod:`.failures`: why a recording failed (no connection, no credentials);
- :mod:`._vcrpy`: every use of vcrpy beyond its documented API, with the versions it is tested
  with.

vcrpy itself is imported only when a cassette is used, not when this package is.
"""

from __future__ import annotations

from pytest_chatresp.hygiene.policy import (
    DEFAULT_QUERY_PARAMETERS,
    DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADERS,
)

from .failures import connection_failure, missing_credentials
from .matching import BODY_MATCHER, DEFAULT_MATCH_ON
from .persister import SecretLeakError
from .recorder import Recorder, RecordSettings

__all__ = [
    "BODY_MATCHER",
    "DEFAULT_MATCH_ON",
    "DEFAULT_QUERY_PARAMETERS",
    "DEFAULT_REQUEST_HEADERS",
    "DEFAULT_RESPONSE_HEADERS",
    "RecordSettings",
    "Recorder",
    "SecretLeakError",
    "connection_failure",
    "missing_credentials",
]
