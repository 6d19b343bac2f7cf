"""What SMTP *is*: the state table, replies, personas' wording, policy and SASL.

No sockets, threads, asyncio or TLS here (tests/test_layers.py checks it): these
modules decide what a server answers, and can be tested by the thousand in
milliseconds. They import nothing from ``labsmtp.lab`` or ``labsmtp.classroom``.
"""
