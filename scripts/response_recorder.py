"""Stands in for CloudFormation's presigned response URL during `make demo`.

Saves the body of every PUT to DIR/<last path segment>.json, and notes
whether a Content-Type header came with it (CloudFormation's presigned URLs
do not sign one, so the function must not send it).

Usage: python scripts/response_recorder.py --port 9321 --dir .demo/responses
"""

import argparse
import http.server
import json
import os
import pathlib
import threading
import time


def exit_with_parent():
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=pathlib.Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            name = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or "response"
            record = {
                "content_type_header": self.headers.get("Content-Type"),
                "body": json.loads(body or b"null"),
            }
            (args.dir / f"{name}.json").write_text(json.dumps(record, indent=2))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    threading.Thread(target=exit_with_parent, daemon=True).start()
    print(f"listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
