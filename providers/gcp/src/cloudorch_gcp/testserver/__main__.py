"""`python -m cloudorch_gcp.testserver --port P`: the Google REST test server as its own process
(what `cloudorch sandbox` starts). Runs until SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from types import FrameType

from cloudorch_gcp.testserver.server import GoogleServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudorch_gcp.testserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = GoogleServer(args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
