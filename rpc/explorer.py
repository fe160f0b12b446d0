"""``GET /explorer``: a small page over the node's own JSON-RPC and WebSocket.

Tasks, each epoch's per-client Krum scores, flags, credits and whether the requester's reference
weighed the step, and every client's verdict (strikes, barred, slashable) and reward credits,
refreshed on every new head (``mps_subscribe("newHeads")``). The page is one static file with no
build step and no outside assets; it holds no state, so it shows exactly what any RPC client of
this node would read (docs/user-guide.md "Look at a chain").
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

PAGE = resources.files(__package__).joinpath("explorer.html").read_bytes()


async def handle_explorer(request: web.Request) -> web.Response:
    return web.Response(
        body=PAGE,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            # its own script and the node's endpoints only
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self' ws: wss:",
        },
    )
