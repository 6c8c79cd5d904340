"""Worker registration: ``mpr-worker launch --register URL`` announces a node (its roles, LoRA names,
tier and base URL) and heartbeats; the gateway adds it to the adapter pools while it does.

:mod:`.models` validates announcements (pure), :mod:`.auth` checks the register keys,
:mod:`.registry` keeps the registrations in the shared state and the pools in step with them,
:mod:`.routes` serves ``/admin/workers``.
"""
