#!/usr/bin/env python3
"""Helpers of test_e2e.sh, written independently of the C code they check.

  e2e_helper.py expect SEED KEYS OUT_MONO OUT_MULTI
      the ids astro-produce --pattern abc-pairs --seed SEED --keys KEYS --count 3*KEYS sends
      (documented: uuid5(NS, "produce:abc-pairs:SEED:i")) and the multi-originated ids the default rules
      must derive from them (documented: uuid5(NS, rule + "\n" + "\n".join(sorted(ids)))).
  e2e_helper.py listen URL READY_FILE EXPECT_FILE SECONDS OUT_FILE
      a raw WebSocket client: connects, waits for {"type":"subscribed"}, touches READY_FILE,
      then records the event_id of every {"type":"event"} message until every id of
      EXPECT_FILE was seen or SECONDS passed. Exit 0 only if all were seen.
"""
import base64, json, os, socket, struct, sys, time, uuid

NS = uuid.UUID("94b66057-b01a-44fd-8392-a2e51e2e5d89")
RULES = [("type_A_and_B_within_window", 2), ("type_A_B_C_convergence", 3)]


def expect(seed, keys, out_mono, out_multi):
    ids = [str(uuid.uuid5(NS, "produce:abc-pairs:%d:%d" % (seed, i))) for i in range(3 * keys)]
    with open(out_mono, "w") as f:
        for i, eid in enumerate(ids):
            f.write("%s %s user_%d %s\n" % (eid, ("axon_1", "axon_2", "axon_3")[i % 3], i // 3,
                                             "ABC"[i % 3]))
    with open(out_multi, "w") as f:
        for k in range(keys):
            for rule, n in RULES:
                src = sorted(ids[3 * k:3 * k + n])
                f.write("%s\n" % uuid.uuid5(NS, rule + "\n" + "\n".join(src)))


def frames(sock):
    buf = b""
    while True:
        while len(buf) < 2 or len(buf) < header_len(buf) + payload_len(buf):
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        h, n = header_len(buf), payload_len(buf)
        op, payload, buf = buf[0] & 0x0F, buf[h:h + n], buf[h + n:]
        if op == 8:
            raise EOFError("close frame %r" % payload[:64])
        if op == 1:
            yield payload.decode()


def header_len(b):
    n = b[1] & 0x7F
    return 2 if n < 126 else 4 if n == 126 else 10


def payload_len(b):
    n = b[1] & 0x7F
    if n == 126:
        return struct.unpack(">H", b[2:4])[0] if len(b) >= 4 else 1 << 30
    if n == 127:
        return struct.unpack(">Q", b[2:10])[0] if len(b) >= 10 else 1 << 30
    return n


def listen(url, ready, expect_file, seconds, out):
    want = set(open(expect_file).read().split())
    hostport, path = url[len("ws://"):].split("/", 1)
    host, port = hostport.split(":")
    sock = socket.create_connection((host, int(port)), timeout=seconds)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                  % (path, hostport, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit("upgrade refused: %r" % head[:200])
    seen, deadline = set(), time.time() + seconds
    try:
        for text in frames(sock):
            msg = json.loads(text)
            if msg.get("type") == "subscribed":
                open(ready, "w").close()
            elif msg.get("type") == "event":
                seen.add(msg["event"]["event_id"])
            if want <= seen or time.time() > deadline:
                break
    except (socket.timeout, EOFError) as e:
        print("listen: %s" % e, file=sys.stderr)
    with open(out, "w") as f:
        f.write("\n".join(sorted(seen)) + "\n")
    missing = want - seen
    print("listen: %d of %d expected ids arrived on the WebSocket" % (len(want) - len(missing),
                                                                      len(want)))
    sys.exit(0 if not missing else 1)


if __name__ == "__main__":
    if sys.argv[1] == "expect":
        expect(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        listen(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6])
