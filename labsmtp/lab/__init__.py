"""The running lab: the protocol on real sockets, and what it records.

- ``labserver``: ``LabServer``, its loop thread, its lifecycle and the registry;
- ``server``: one connection, an asyncio protocol around a ``protocol.Session``;
- ``faults`` and ``fault_actions``: rules that make the server misbehave on purpose;
- ``client``: the step client and the one reader of SMTP replies;
- ``transcript``, ``mailbox``, ``tls``, ``dnszone``, ``trials``.

It builds on ``labsmtp.protocol`` and never imports ``labsmtp.classroom``
(tests/test_layers.py checks it).
"""
