"""Operator routes (``/admin/*``), served by Litestar and guarded by admin keys, never client keys.

* :mod:`.auth` - which keys are admin keys, and the check;
* :mod:`.routes` - ``POST /admin/reload``.
"""
