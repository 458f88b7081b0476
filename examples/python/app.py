# Kiln example: a Python app on the standard library's http.server, answering on $PORT.
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the python example\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("", int(os.environ.get("PORT", "8080"))), Hello).serve_forever()
