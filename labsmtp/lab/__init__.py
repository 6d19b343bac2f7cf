"""The running lab: the server on a socket in a thread, the step client, TLS,
the transcript and mailbox, faults, the offline DNS zone and the trial runner.

It builds on ``labsmtp.protocol`` and never imports ``labsmtp.classroom``
(tests/test_layers.py checks it).
"""
