"""Personas: who the lab server pretends to be, and its exact words.

A persona is data, not code: a greeting, an EHLO keyword list and one reply
template per situation (``REPLY_KEYS``).  The server decides *what* happens
(from the state table and the policy); the persona decides *how it is said*.

``generic`` speaks RFC 5321 and RFC 3463 plainly.  ``postfix`` answers with
the codes, enhanced codes and texts of Postfix 3.7 as recorded from a real
Postfix on loopback (``tests/recordings/postfix-3.7.json``, re-recorded by
``tests/recordings/record_postfix.sh``); ``tests/test_personas.py``
replays every recorded dialogue against the persona.

Templates use ``str.format`` fields: ``{hostname}`` (the server's name),
``{arg}`` (the command's argument), ``{addr}`` (an address), ``{client}``
(the client's IP), ``{queue_id}``, ``{size}``, and, for every reply,
``{date}`` (now, in the persona's ``date_format``), ``{peer}`` (the client as
a reverse lookup names it: ``localhost [127.0.0.1]``, or ``[127.0.0.2]`` for an
address without a name), ``{limit}`` (message_size_limit), ``{verb}``,
``{line}`` (the whole command line), ``{word}`` (the argument's first word) and
``{keyword}`` (the argument's text before a colon, as in ``FROM``).  A template
with several lines (separated by newlines) becomes a multi-line reply.

Wording is data; behaviour that really differs between servers (a second
HELO refused, a limit on unknown commands, an argument refused on RSET, ...)
is a small explicit field of ``Persona`` that the server consults.  Exim,
Sendmail, OpenSMTPD and clamsmtpd are checked against recordings of the real
programs (``tests/recordings/*.json``, ``tests/test_personas.py``); Microsoft
Exchange cannot run here, so its persona is built from Microsoft's published
reply formats and is not recorded.

One module per program holds its wording, its behaviour and its registration;
``base`` holds the shape they share (``REPLY_KEYS``, ``Persona``, the registry).
"""

from . import clamsmtpd, exchange, exim, generic, opensmtpd, postfix, sendmail  # noqa: F401  (register)
from .base import REPLY_KEYS, Persona, get_persona, persona_names, register

__all__ = ["REPLY_KEYS", "Persona", "get_persona", "persona_names", "register"]
