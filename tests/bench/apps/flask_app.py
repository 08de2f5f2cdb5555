"""The Flask row of the benchmark: a minimal avatar app in the original's shape.

GET /ID sends AVATAR_DIR/ID.png, or AVATAR_DIR/-1.png when there is none.
Run by gunicorn (sync workers); it never writes anything.
"""
import os

from flask import Flask, send_file

DIR = os.environ["AVATAR_DIR"]
app = Flask(__name__)


@app.route("/<uid>")
def avatar(uid):
    path = os.path.join(DIR, uid + ".png")
    # Only plain decimal ids name a file; anything else gets the default.
    if not uid.lstrip("-").isdigit() or not os.path.isfile(path):
        path = os.path.join(DIR, "-1.png")
    return send_file(path, mimetype="image/png")
