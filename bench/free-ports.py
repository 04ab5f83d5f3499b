#!/usr/bin/env python3
"""Prints N free TCP ports on 127.0.0.1, space-separated, chosen at random in 20000-31999:
below the kernel's ephemeral range (so outgoing connections cannot take one meanwhile) and
away from Trade-Net's defaults (8079-8093). With --run K, the N ports are N runs of K
consecutive ports and only the first of each run is printed.
    python3 bench/free-ports.py 5           # five ports
    python3 bench/free-ports.py 1 --run 21  # a base B with B..B+20 all free
Shared by the bench, deploy and CI scripts."""
import argparse
import random
import socket
import sys

parser = argparse.ArgumentParser()
parser.add_argument("count", type=int)
parser.add_argument("--run", type=int, default=1)
args = parser.parse_args()

chosen = []
for _ in range(10000):
    if len(chosen) == args.count:
        break
    start = random.randrange(20000, 32000 - args.run)
    wanted = range(start, start + args.run)
    if any(p in range(c, c + args.run) for c in chosen for p in wanted):
        continue
    socks = []
    try:
        for port in wanted:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
        chosen.append(start)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
if len(chosen) < args.count:
    sys.exit(f"free-ports: found only {len(chosen)} of {args.count} free ranges")
print(*chosen)
