#!/usr/bin/env bash
# The mDNS responder over real multicast, between two network namespaces
# this script creates and joins with a veth pair (nothing reaches the
# machine's own network):
#
#   ns A: hearth serve, mdns = true on 0.0.0.0:5353, veth 192.168.77.1/24
#   ns B: a querier on 192.168.77.2/24
#
# Checks that a multicast query from port 5353 gets a multicast reply (id 0,
# A 192.168.77.1, IP TTL 255), that a query from another port gets a unicast
# reply repeating id and question, and that other names get none.
#
#   .ci/mdns.sh HEARTH_BINARY
#
# Needs root and `ip netns`; where namespaces cannot be made, it says so and
# exits 0.
set -euo pipefail
bin=$(realpath "$1")
[ -x "$bin" ] || { echo "mdns.sh: no binary at $1" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "mdns.sh: run as root (network namespaces)" >&2; exit 1; }

a=hearth-mdns-$$-a
b=hearth-mdns-$$-b
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- server log" >&2; cat "$work/server.log" >&2 || true; exit 1; }

if ! command -v ip >/dev/null || ! ip netns add "$a" 2>/dev/null; then
  echo "   SKIPPED: cannot create network namespaces here"
  exit 0
fi
ip netns add "$b"
ip link add veth-mdns-a netns "$a" type veth peer name veth-mdns-b netns "$b"
ip -n "$a" addr add 192.168.77.1/24 dev veth-mdns-a
ip -n "$b" addr add 192.168.77.2/24 dev veth-mdns-b
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set veth-mdns-a up
ip -n "$b" link set veth-mdns-b up
# The querier needs a route for the group; the server must find its way out
# of the querier's interface by itself (no route in ns A).
ip -n "$b" route add 224.0.0.0/4 dev veth-mdns-b

cat >"$work/hearth.toml" <<TOML
server_name = "hearth-ci.local"
listen = "127.0.0.1:8008"
data_dir = "$work/data"
mdns = true
TOML
ip netns exec "$a" "$bin" serve --config "$work/hearth.toml" >"$work/server.log" 2>&1 &
server_pid=$!

ip netns exec "$b" python3 - <<'PY' || fail "mDNS over multicast"
import socket, struct, time

NAME = "hearth-ci.local"

def query(qid, name, qtype=1):
    p = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.split("."):
        p += bytes([len(label)]) + label.encode()
    return p + b"\0" + struct.pack(">HH", qtype, 1)

def answers(p):
    """The A records of a reply: [(class, ttl, address)]."""
    qd, an = struct.unpack(">HH", p[4:8])
    pos = 12
    def skip_name(pos):
        while p[pos]:
            pos += 1 + p[pos]
        return pos + 1
    for _ in range(qd):
        pos = skip_name(pos) + 4
    out = []
    for _ in range(an):
        pos = skip_name(pos)
        rtype, rclass, ttl, rdlen = struct.unpack(">HHIH", p[pos:pos + 10])
        if rtype == 1:
            out.append((rclass, ttl, socket.inet_ntoa(p[pos + 10:pos + 14])))
        pos += 10 + rdlen
    return out

group = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
group.bind(("0.0.0.0", 5353))
group.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton("224.0.0.251") + socket.inet_aton("192.168.77.2"))
group.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
# IP_RECVTTL (Linux: 12) is missing from some Pythons' socket module.
group.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
group.settimeout(0.3)

# The server may still be starting: ask until a reply comes, for 30 s.
deadline = time.monotonic() + 30
reply = None
while reply is None and time.monotonic() < deadline:
    group.sendto(query(0x1111, NAME), ("224.0.0.251", 5353))
    try:
        while True:
            data, ancdata, _, (src, port) = group.recvmsg(9000, 64)
            if data[2] & 0x80 and src == "192.168.77.1":
                ttl = [struct.unpack("i", d)[0] for l, t, d in ancdata if t == socket.IP_TTL]
                reply = (data, port, ttl)
                break
    except socket.timeout:
        pass
assert reply, "no multicast reply within 30 s"
data, port, ttl = reply
assert port == 5353, port
assert struct.unpack(">HH", data[:4]) == (0, 0x8400), data[:4].hex()
assert answers(data) == [(0x8001, 120, "192.168.77.1")], answers(data)
assert ttl == [255], ttl
print("   multicast query: multicast reply, A 192.168.77.1, cache-flush, IP TTL 255")

# Legacy unicast: from an ephemeral port, to the group.
legacy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
legacy.bind(("192.168.77.2", 0))
legacy.settimeout(5)
legacy.sendto(query(0x2222, "nobody.local"), ("224.0.0.251", 5353))
legacy.sendto(query(0x3333, NAME.upper()), ("224.0.0.251", 5353))
data, (src, port) = legacy.recvfrom(9000)
# Datagrams arrive in order: nothing came back for nobody.local.
assert struct.unpack(">HHH", data[:6]) == (0x3333, 0x8400, 1), data[:6].hex()
assert (src, port) == ("192.168.77.1", 5353), (src, port)
assert answers(data) == [(1, 10, "192.168.77.1")], answers(data)
print("   legacy query: unicast reply with id and question, TTL 10; other names unanswered")
PY

kill -TERM "$server_pid"
wait "$server_pid" || fail "server exit status $?"
server_pid=
grep -q 'mDNS: answering for hearth-ci.local on udp 0.0.0.0:5353' "$work/server.log" || fail "no start-up line"
