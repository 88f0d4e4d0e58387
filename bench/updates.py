"""Bench of signed updates (issue 12): a release download cut at 10, 50 and 90 %, then resumed.

A 20 MB bundle (about a release's wheels) is published in a TUF repository served by ``aptic-central serve``;
a terminal's ``updates.fetch.ReleaseSource`` downloads it through a proxy that cuts the first transfer after
the given share. Printed: bytes carried in all ÷ bundle size (target ≤ 1.2: a cut costs what was lost,
not a new start), the time to verify and keep it, and that the kept file is the signed one.

Environment: ``BENCH_UPDATE_MB`` (default 20).
"""

from __future__ import annotations

import http.client
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.central import _serve
from central import releases
from updates.fetch import FetchError, ReleaseSource

TARGET = 1.2


class Cutter:
    """A proxy to the central that stops the next bundle transfer after ``cut`` bytes; counts bundle bytes."""

    def __init__(self, port: int) -> None:
        self.cut: int | None = None
        self.carried = 0
        cutter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "if-range")}
                upstream.request("GET", self.path, headers=headers)
                answer = upstream.getresponse()
                bundle = self.path.startswith("/tuf/targets/")
                cut, cutter.cut = (cutter.cut, None) if bundle else (None, cutter.cut)
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                sent = 0
                while chunk := answer.read(65536):
                    if cut is not None and sent + len(chunk) > cut:
                        chunk = chunk[: cut - sent]
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if cut is not None and sent >= cut:
                        break
                if bundle:
                    cutter.carried += sent
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    size = int(os.environ.get("BENCH_UPDATE_MB", "20")) * 2**20
    with tempfile.TemporaryDirectory(prefix="aptic-bench-updates-") as tmp:
        root = Path(tmp)
        keys = root / "offline"
        keys.mkdir()
        for name in ("r1", "r2", "targets"):
            releases.generate_key(keys / f"{name}.pem")
        releases.init_repository(root / "tuf", [keys / "r1.pem", keys / "r2.pem"], 2, keys / "targets.pem")
        bundle = root / "bundle.tar"
        bundle.write_bytes(os.urandom(size))
        releases.publish(root / "tuf", bundle, "0.2.0", keys / "targets.pem", "amd64")
        server, port = _serve(f"sqlite:///{root / 'central.db'}", root)
        try:
            for share in (0.1, 0.5, 0.9):
                cutter = Cutter(port)
                try:
                    source = ReleaseSource(cutter.url, root / f"device-{share}", releases.root_json(root / "tuf"),
                                           arch="amd64")  # fmt: skip
                    info = source.target("0.2.0")
                    cutter.cut = int(size * share)
                    started = time.perf_counter()
                    try:
                        source.download(info)
                        was_cut = False
                    except FetchError:
                        was_cut = True
                    kept = source.download(info)
                    elapsed = time.perf_counter() - started
                finally:
                    cutter.close()
                ratio = cutter.carried / size
                same = kept.stat().st_size == size and was_cut
                print(f"update download of {size / 2**20:.0f} MB cut at {share:4.0%}: {ratio:.2f} x the bundle carried "
                      f"in all (target <= {TARGET}) [{'ok' if ratio <= TARGET else 'MISSED'}], verified and kept "
                      f"in {elapsed:.2f} s{'' if same else ', NOT CUT OR WRONG SIZE'}", flush=True)  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
