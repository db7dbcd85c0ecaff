"""A server that is not kestra-trio, for the remote CLI's tests: `fake_http_server.py STATUS
CONTENT-TYPE BODY` answers every request with that; `fake_http_server.py silent` accepts
connections and never answers. Prints its URL once it listens."""

import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def main() -> None:
    if sys.argv[1] == "silent":
        listener = socket.create_server(("127.0.0.1", 0))
        print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
        held = []
        while True:
            held.append(listener.accept()[0])
            time.sleep(0.01)
    status, content_type, body = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()

    class Fixed(BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Fixed)
    print(f"http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


main()
