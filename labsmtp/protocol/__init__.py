"""What SMTP *is*: the rules of the dialogue, without sockets.

- ``states``: the state table and the ``Stage`` vocabulary (every state change);
- ``session``: one connection as the server sees it, sans-IO (bytes in, events out),
  with ``lines`` (line limits, message text), ``grammar`` (verbs, paths, parameters),
  ``setup`` (what a session knows of its server) and ``events`` (what it reports);
- ``pair``: a client and a server session joined in memory, for tests;
- ``replies``, ``personas``, ``policy``, ``auth``: reply codes, wording, local policy, SASL.

No sockets, threads, asyncio or TLS here (tests/test_layers.py checks it): these
modules decide what a server answers, and can be tested by the thousand in
milliseconds. They import nothing from ``labsmtp.lab`` or ``labsmtp.classroom``.
"""
