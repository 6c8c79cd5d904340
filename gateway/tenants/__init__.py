"""Tenants: API keys scoped to models, with request and token limits, token budgets, usage
accounting and a refinement policy (docs/tenants.md).

* :mod:`.keyring` - keys (hashed at rest) → :class:`~.keyring.Tenant`; authentication;
* :mod:`.policy` - which models a key may use; its refinement policy over a request's controls (pure);
* :mod:`.quota` - tokens/min and budget windows, the estimate, the 429s (pure) and their enforcement;
* :mod:`.usage` - token usage read from answers: JSON bodies and SSE streams (pure);
* :mod:`.meter` - one request's usage, fed from the relay through a context variable;
* :mod:`.accounting` - after the answer: settle, metrics, per-minute buckets, the usage log;
* :mod:`.gate` - the hook the serving paths call around an endpoint's ``process``.
"""
