"""Operator routes (``/admin/*``), served by Litestar and guarded by admin keys, never client keys.

* :mod:`.auth` - which keys are admin keys, and the check;
* :mod:`.routes` - ``POST /admin/reload``, and every admin route's registration;
* :mod:`.status` - ``GET /admin/status`` (the fleet, refinement verdicts, cache and limits);
* :mod:`.events` - the event bus; :mod:`.stream` - ``GET /admin/events`` (server-sent events);
* :mod:`.dashboard` - ``GET /admin/``, the page in ``static/``.
"""
