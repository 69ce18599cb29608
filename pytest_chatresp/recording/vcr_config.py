"""The project's own vcrpy options (pytest-recording's ``vcr_config`` fixture) under ours.

A project adopting the plugin keeps its ``vcr_config``; the options the plugin owns (where
cassettes live, the record mode, the serializer, the persister, ``match_on``) are left out, the
recording hooks of both are kept (the project's first), and both sets of filters apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["OWN_VCR_OPTIONS", "REFUSED_OPTIONS", "under_project_options"]

OWN_VCR_OPTIONS = frozenset(
    {
        "cassette_library_dir",
        "path_transformer",
        "func_path_generator",
        "record_mode",
        "serializer",
        "persister",
        "match_on",
    }
)
_HOOKS = ("before_record_request", "before_record_response")


def under_project_options(project: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """The project's ``vcr_config`` with ``chatresp_vcr_config`` on top: the plugin's own
    options (:data:`OWN_VCR_OPTIONS`) left out, both hooks kept (the project's first), both
    header and query filters kept; for any other option ``chatresp_vcr_config`` wins."""
    merged = {key: value for key, value in project.items() if key not in OWN_VCR_OPTIONS}
    for key, value in ours.items():
        if key in _HOOKS and merged.get(key) is not None and value is not None:
            merged[key] = [*_as_list(merged[key]), *_as_list(value)]
        elif key in REFUSED_OPTIONS and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _as_list(hooks: Any) -> list[Any]:
    return list(hooks) if isinstance(hooks, list | tuple) else [hooks]


#: Options ``chatresp_vcr_config`` may not set, with the way to set them instead.
REFUSED_OPTIONS = {
    "filter_headers": "use the ini keys chatresp_filter_request_headers and "
    "chatresp_filter_response_headers (or their --chatresp-filter-* options)",
    "filter_query_parameters": "use the ini key chatresp_filter_query_parameters (or "
    "--chatresp-filter-query-parameters)",
}
