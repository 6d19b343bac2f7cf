"""What a learner sees and does: plots, widgets, the persona comparison, the
troubleshooting mysteries and the exercises with their ``check``/``solution``.

It sits on top of ``labsmtp.lab`` and ``labsmtp.protocol``; nothing below imports it.
"""
