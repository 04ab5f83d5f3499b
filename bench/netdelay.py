#!/usr/bin/env python3
"""Delays every packet of one NFQUEUE queue by a fixed time, in order: a stand-in for
`tc qdisc ... netem delay` on kernels built without netem (bench/evaluate.sh --netns falls back
to it). Run it in a network namespace whose iptables OUTPUT rule sends packets to the queue:
    ip netns exec NS iptables -A OUTPUT -o DEV -j NFQUEUE --queue-num 0 --queue-bypass
    ip netns exec NS python3 bench/netdelay.py 0 0.5
It asks the kernel for each packet's id only (no payload), and accepts, once the oldest
packets' time has come, every packet up to the newest due one in one batch verdict."""
import collections, ctypes, os, select, socket, struct, sys, time

NETLINK_NETFILTER = 12
SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG, MSG_VERDICT_BATCH = 0, 1, 2, 3
NLM_F_REQUEST = 1
NLMSG_ERROR, NLMSG_DONE = 2, 3
CFG_CMD, CFG_PARAMS = 1, 2
CMD_BIND = 1
COPY_META = 1
PACKET_HDR = 1
VERDICT_HDR = 2
NF_ACCEPT = 1


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def message(kind, queue, attrs, seq=0):
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (SUBSYS_QUEUE << 8) | kind, NLM_F_REQUEST, seq, 0) + body


def main():
    queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
    # Wake-ups on time to the microsecond: timer slack 1 ns (PR_SET_TIMERSLACK).
    ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    s.bind((0, 0))
    s.send(message(MSG_CONFIG, queue, [attr(CFG_CMD, struct.pack("!BxH", CMD_BIND, 0))]))
    s.send(message(MSG_CONFIG, queue, [attr(CFG_PARAMS, struct.pack("!IB", 0, COPY_META))]))
    s.setblocking(False)
    waiting = collections.deque()  # (due, packet id), in arrival order
    print(f"netdelay: queue {queue}, {delay * 1000} ms", file=sys.stderr, flush=True)
    while True:
        timeout = max(0.0, waiting[0][0] - time.monotonic()) if waiting else None
        readable, _, _ = select.select([s], [], [], timeout)
        if readable:
            while True:
                try:
                    data = s.recv(1 << 16)
                except BlockingIOError:
                    break
                now = time.monotonic()
                off = 0
                while off + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, off)
                    if length < 16:
                        break
                    if kind == NLMSG_ERROR:
                        (err,) = struct.unpack_from("=i", data, off + 16)
                        if err != 0:
                            print(f"netdelay: netlink error {err}", file=sys.stderr, flush=True)
                    elif kind == (SUBSYS_QUEUE << 8) | MSG_PACKET:
                        a = off + 20
                        while a + 4 <= off + length:
                            alen, atype = struct.unpack_from("=HH", data, a)
                            if alen < 4:
                                break
                            if atype & 0x7FFF == PACKET_HDR:
                                (pid,) = struct.unpack_from("!I", data, a + 4)
                                waiting.append((now + delay, pid))
                                break
                            a += (alen + 3) & ~3
                    off += (length + 3) & ~3
        now = time.monotonic()
        last = None
        while waiting and waiting[0][0] <= now:
            last = waiting.popleft()[1]
        if last is not None:
            verdict = attr(VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last))
            while True:
                try:
                    s.send(message(MSG_VERDICT_BATCH, queue, [verdict]))
                    break
                except BlockingIOError:
                    select.select([], [s], [], 0.001)


if __name__ == "__main__":
    main()
