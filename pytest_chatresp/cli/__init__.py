"""The ``chatresp`` command: check, show, scrub and audit cassette files outside pytest.

``chatresp check`` validates every chat completion in cassette files and directories (and, with
``--orphans``, lists the cassettes no collected test uses), ``chatresp show`` prints what one
cassette holds, exchange by exchange, ``chatresp scrub`` removes secrets from cassettes already
written, with the recording rules, and ``chatresp audit`` flags what a cassette should not hold.
Run in a project, the command reads the project's settings as pytest does. Exit status: 0 when
all is well, 1 when a cassette is invalid, unreadable or (``scrub --dry-run``) not clean, 2 on a
usage error. Every failure is a message, never a traceback.

One module a subcommand (``check``, ``orphans``, ``show``, ``scrub``, ``audit``); ``main`` holds
the parser and the one error ladder, ``output`` what they share, ``project`` the project's
settings and cassette files. The reader, the models and the YAML parser are imported when a
command runs, not before, so that ``chatresp --help`` starts at once.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
