#!/usr/bin/env python3
"""A small IPN listener as third parties write them, for ipnlab's specs.

It hard-codes PayPal's sandbox verify URL and knows nothing of ipnlab: it
reaches the emulator only through HTTPS_PROXY and the CA variables. It acks
at once and posts the message back, with urllib or with the curl command
(argv[1]). It prints its port, then serves until killed.
"""
import http.server
import subprocess
import sys
import threading
import urllib.request

VERIFY_URL = "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr"
CLIENT = sys.argv[1] if len(sys.argv) > 1 else "urllib"


def post_back(body):
    data = b"cmd=_notify-validate&" + body
    if CLIENT == "curl":
        subprocess.run(["curl", "-sS", "-A", "spec-listener/1.0", "--data-binary", "@-", VERIFY_URL],
                       input=data, capture_output=True, check=False)
        return
    req = urllib.request.Request(VERIFY_URL, data=data, headers={"User-Agent": "spec-listener/1.0"})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except OSError as err:
        print("postback failed:", err, file=sys.stderr, flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        threading.Thread(target=post_back, args=(body,), daemon=True).start()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
