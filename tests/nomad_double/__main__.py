"""Entry point: ``python -m tests.nomad_double --port P [--namespace NS ...] [--node-id ID]``."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import uuid
from pathlib import Path

from .http_api import make_server
from .server import Cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nomad-double", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--node-id", default=str(uuid.uuid4()), help="ID the single fake node reports")
    parser.add_argument("--datacenter", default="dc1")
    parser.add_argument("--namespace", action="append", dest="namespaces",
                        help="namespaces that exist (repeatable; default: just 'default')")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="nomad-double-"))  # alloc/task dirs, like a client's data_dir
    cluster = Cluster(node_id=args.node_id, datacenter=args.datacenter,
                      namespaces=args.namespaces or ["default"], data_dir=data_dir)
    server = make_server(args.host, args.port, cluster, os.environ.get("NOMAD_DOUBLE_TOKEN") or None)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"nomad double listening on {args.host}:{server.server_address[1]} node {args.node_id}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        cluster.shutdown()  # leave no container behind
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
