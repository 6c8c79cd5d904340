"""``mpr-gateway serve --workers N``: a supervisor and N worker processes sharing one port.

* :mod:`.workers` - how many workers, the ``SO_REUSEPORT`` listening socket, restart decisions;
* :mod:`.supervisor` - starts the workers, forwards SIGTERM/SIGINT (drain) and SIGHUP (reload),
  restarts a crashed one;
* :mod:`.worker` - one worker: the app, its own socket, metrics snapshots for the whole-server
  ``/metrics`` (:mod:`gateway.telemetry.multiprocess`).
"""
