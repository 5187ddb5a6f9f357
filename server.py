"""The app behind its security headers: `streamlit run server.py` (make app, genrelens app).

app.py is the app; this file serves it through Streamlit's ASGI `App` with one middleware
that gives every HTTP response a Content-Security-Policy: the pages load images, audio, fonts
and frames only from this server (and data:/blob: URLs it made), so text that slipped into
markup anyway cannot make a visitor's browser fetch anything from elsewhere (a tracking pixel
in an artist name). `streamlit run app.py` still works, without the header.
"""

from pathlib import Path

from starlette.middleware import Middleware
from streamlit.starlette import App

from genre_core.app.access import CONTENT_SECURITY_POLICY


class SecurityHeaders:
    """ASGI middleware: adds the Content-Security-Policy to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"content-security-policy"]
                headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


app = App(str(Path(__file__).with_name("app.py")), middleware=[Middleware(SecurityHeaders)])
