"""The OpenAI Responses API: ``POST /v1/responses`` refined and forwarded natively, and the
by-id routes passed through to the target that served the response.

``protocol`` holds the pure request/stream helpers, ``serving`` the serving class.
"""

from gateway.endpoints.responses.serving import ResponseIndex, Responses, index_for

__all__ = ["ResponseIndex", "Responses", "index_for"]
