"""What every handler of the console shares: the verified person on the request, and the one
shape of an error (JSON `{"error": reason}`, never HTML: a reason may quote what someone typed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from jitaccess.console.actions import Invalid
from jitaccess.console.iap import Person

PERSON = web.RequestKey("person", Person)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def invalid_as_400(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A body the console does not file (`actions.Invalid`): 400 with the reason."""
    try:
        return await handler(request)
    except Invalid as why:
        return error(400, str(why))
