"""A terminal client not written in Rust: Python's `websockets`, as a browser
behind Workhorse would connect (Authorization header, subprotocol, and only the
session's certificate trusted). Prints what it saw; exits non-zero on failure.

Environment: SESSION_URL (https://host:port/session/<id>), SESSION_TOKEN,
SESSION_CERT (PEM), SUBPROTOCOL (terminal.gitlab.com or base64.terminal.gitlab.com).
"""

import base64
import os
import ssl
import sys

from websockets.sync.client import connect

url = os.environ["SESSION_URL"].replace("https://", "wss://", 1) + "/exec"
protocol = os.environ["SUBPROTOCOL"]
context = ssl.create_default_context(cadata=os.environ["SESSION_CERT"])

with connect(
    url,
    ssl=context,
    subprotocols=[protocol],
    additional_headers={"Authorization": os.environ["SESSION_TOKEN"]},
    open_timeout=10,
) as ws:
    assert ws.subprotocol == protocol, f"server chose {ws.subprotocol!r}"

    def send(text):
        if protocol.startswith("base64."):
            ws.send(base64.b64encode(text.encode()).decode())
        else:
            ws.send(text.encode())

    def receive():
        message = ws.recv(timeout=10)
        if protocol.startswith("base64."):
            assert isinstance(message, str), "base64 output comes in text frames"
            return base64.b64decode(message).decode(errors="replace")
        assert isinstance(message, bytes), "raw output comes in binary frames"
        return message.decode(errors="replace")

    send("echo interop-ok\r")
    seen = ""
    while "interop-ok\r\n" not in seen.split("echo interop-ok", 1)[-1]:
        seen += receive()
    print("saw:", repr(seen))
    ws.close(code=1000, reason="done")
    assert ws.close_code == 1000, f"close answered with {ws.close_code}"
print("OK")
