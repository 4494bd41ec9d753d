"""The judge: a student's answer cells run again on hidden inputs, out of harm's way, and a verdict on each item.

Trusted half: ``scan`` reads answer code for what it must not contain,
``verdict`` decides an item from what its answers produced on the hidden
cases, ``runner`` drives the untrusted half through ``protocol`` (the child's
handshake, deadlines and replies) and ``transport`` (its values as plain
data). Untrusted half: ``untrusted`` runs answer code with autograd locked
out, in ``child``, a process that ``forkserver`` starts warm and ``sandbox``
contains.

May import: ``kinds``, ``diagnosis``, ``workbook`` and the top-level ``resources``, ``exercises`` and ``cells``.
"""
