"""The Starlette row of the benchmark: the original's best Python, minimal.

GET /ID sends AVATAR_DIR/ID.png, or AVATAR_DIR/-1.png when there is none.
Run by uvicorn; it never writes anything.
"""
import os

from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

DIR = os.environ["AVATAR_DIR"]


async def avatar(request):
    uid = request.path_params["uid"]
    path = os.path.join(DIR, uid + ".png")
    # Only plain decimal ids name a file; anything else gets the default.
    if not uid.lstrip("-").isdigit() or not os.path.isfile(path):
        path = os.path.join(DIR, "-1.png")
    return FileResponse(path, media_type="image/png")


app = Starlette(routes=[Route("/{uid}", avatar)])
