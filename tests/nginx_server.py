"""A real nginx serving a folder on loopback, with an access log the tests read (bytes, requests)."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port, stop_process

CONF = """
user root;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format transfer '$request_uri $status $body_bytes_sent';
    access_log {dir}/access.log transfer;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ application/json json; video/mp4 mp4; application/pdf pdf; text/html html; }}
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ {limit} }}
    }}
}}
"""


@dataclass(frozen=True)
class Hit:
    """One access-log line."""

    uri: str
    status: int
    bytes: int


class Nginx:
    """nginx -p DIR -c DIR/nginx.conf on a free port; `limit_rate` per connection if given (e.g. '32k')."""

    def __init__(self, workdir: Path, root: Path, limit_rate: str | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        limit = f"limit_rate {limit_rate};" if limit_rate else ""
        conf = CONF.format(dir=self.dir, port=self.port, root=root, limit=limit)
        (self.dir / "nginx.conf").write_text(conf)
        self.log_path = self.dir / "access.log"
        self.log_path.touch()
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
            except urllib.error.HTTPError:
                return  # it answers (403/404 for the root folder)
            except OSError:
                time.sleep(0.05)
                continue
            return
        raise RuntimeError("nginx did not answer within 10 s")

    def hits(self) -> list[Hit]:
        """Every request logged so far."""
        out = []
        for line in self.log_path.read_text().splitlines():
            uri, status, sent = line.split(" ")
            out.append(Hit(uri, int(status), int(sent)))
        return out

    def mark(self) -> int:
        """The number of requests logged so far (pass to `hits_since`)."""
        return len(self.hits())

    def hits_since(self, mark: int) -> list[Hit]:
        """Requests logged after `mark`."""
        return self.hits()[mark:]

    def stop(self) -> None:
        """Stop nginx (idempotent)."""
        stop_process(self.proc)
        if self.proc.stderr:
            self.proc.stderr.close()
