"""The running lab: the protocol on real sockets, and what it records.

- ``labserver``: ``LabServer``, its lifecycle, restart-on-use and the registry;
- ``listening``: its loop thread, its listening sockets and the ``Site`` they share;
- ``security``: who may connect and how (loopback, owner-only, mode, TLS, AUTH);
- ``server``: one connection, an asyncio protocol around a ``protocol.Session``;
- ``limits``: the connection limits and the idle timeout;
- ``faults`` and ``fault_actions``: rules that make the server misbehave on purpose;
- ``client``: the step client and the one reader of SMTP replies;
- ``transcript``, ``mailbox``, ``tls``, ``dnszone``, ``trials``.

It builds on ``labsmtp.protocol`` and never imports ``labsmtp.classroom``
(tests/test_layers.py checks it).
"""
