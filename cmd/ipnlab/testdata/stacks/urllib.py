import sys
import urllib.request

req = urllib.request.Request(sys.argv[1], data=sys.stdin.buffer.read(), headers={"User-Agent": "stack-client/1.0"})
print(urllib.request.urlopen(req, timeout=10).read().decode(), end="")
