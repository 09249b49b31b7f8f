#!/usr/bin/env python3
# A stand-in for the syslog daemon: binds a Unix datagram socket at PATH (as /dev/log is) and
# appends each message it receives to OUT, one per line, until killed.
#   python3 syslogSink.py PATH OUT
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
print("ready", flush=True)
with open(out, "a", encoding="utf-8") as f:
    while True:
        f.write(sock.recv(65536).decode("utf-8", "replace").rstrip("\n") + "\n")
        f.flush()
