"""``GET /admin/`` (and ``/admin``): the fleet dashboard, one static page shipped in the package.

The page and its script and style (``gateway/admin/static/``) hold no data and need no key: the
script asks for the admin key, keeps it in ``sessionStorage`` and calls ``/admin/status`` and
``/admin/events`` with it. No build step, no CDN, no external font; a strict CSP keeps it so.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from litestar import Response, get
from litestar.types import ControllerRouterHandler

from gateway.errors import NotFound

# Media types without a charset: Litestar adds ``; charset=utf-8`` to every ``text/*`` one (given
# here too, the header said it twice).
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
PAGE = "text/html"
HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@cache
def asset(name: str) -> bytes:
    """A file of ``gateway/admin/static`` (read once)."""
    return resources.files("gateway.admin").joinpath("static", name).read_bytes()


def dashboard_routes() -> list[ControllerRouterHandler]:
    @get(["/admin", "/admin/"], include_in_schema=False)
    async def dashboard() -> Response[bytes]:
        return Response(asset("dashboard.html"), media_type=PAGE, headers=HEADERS)

    @get("/admin/assets/{name:str}", include_in_schema=False)
    async def dashboard_asset(name: str) -> Response[bytes]:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound(f"Unknown route: GET /admin/assets/{name}")
        return Response(asset(name), media_type=media_type, headers=HEADERS)

    return [dashboard, dashboard_asset]
