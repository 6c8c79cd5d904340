"""The console tests' peers: the gateway tests' :class:`FakeOpenAI` (adapters and target), reset
before each test."""

from tests.gateway.conftest import _fresh_fake, fake  # noqa: F401 - fixtures shared with the gateway tests
