"""Suite-wide setup: the client keys of a developer's shell never reach the gateways under test.

``server.api_keys_env`` defaults to ``MPR_API_KEYS``, so a key exported in the shell would switch
auth on in every gateway the tests start (subprocesses inherit the environment; in-process apps
read it). Tests that want it pass it explicitly.
"""

import os

os.environ.pop("MPR_API_KEYS", None)
