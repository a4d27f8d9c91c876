"""A checkpoint server on 127.0.0.1 for the preset tests (no test reaches the internet).

The served checkpoint is a genuine ``torch.save`` file in the released format: the LeeNet11
golden checkpoint of ``tests/assets/ckpt`` (3 MB, 527 classes), under a released-style name.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CKPT = ASSETS / "ckpt" / "LeeNet11_golden_zip.pth"
FILE = "LeeNet11_mAP=0.266.pth"


class CheckpointServer:
    """Serves ``files`` (name -> bytes) over HTTP with Range support, and logs requests.

    ``cut[name] = n``: the first GET of ``name`` announces the whole length but the connection
    drops after ``n`` bytes. ``delay``: seconds slept per 64 KiB sent (to make downloads
    overlap). ``requests``: ``(path, Range header or None)`` per GET.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut: dict[str, int] = {}
        self.delay = 0.0
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/").split("?")[0]
                from urllib.parse import unquote

                name = unquote(name)
                server.requests.append((name, self.headers.get("Range")))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                body = data[start:]
                cut = server.cut.pop(name, None)
                if cut is not None:
                    body = body[:cut]
                    self.close_connection = True
                for i in range(0, len(body), 1 << 16):
                    self.wfile.write(body[i : i + (1 << 16)])
                    if server.delay:
                        time.sleep(server.delay)
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        from urllib.parse import quote

        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{quote(name)}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def full_gets(self, name: str) -> int:
        return sum(1 for n, r in self.requests if n == name and r is None)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
