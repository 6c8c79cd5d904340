"""HTTP endpoints: serving logic per endpoint, apart from the Litestar routes in ``gateway.app``."""
