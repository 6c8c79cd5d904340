"""Live configuration: swap a new :class:`~gateway.runtime.Runtime` in without a restart.

* :mod:`.live` - :class:`Live` (one runtime with its serving objects and in-flight count) and
  :class:`RuntimeRef`, the one indirection every request reads once;
* :mod:`.reloader` - re-read the file, build and start a new runtime, swap, retire the old one;
* :mod:`.changes` - which changed keys a reload cannot apply (a restart can).
"""
