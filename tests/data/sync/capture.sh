#!/bin/bash
# Records real conntrackd 1.4.7 FTFW sync traffic for SyncCaptureTests (needs root).
# Namespaces: ctds-a (conntrackd "active", its kernel tracks the test traffic), ctds-b (conntrackd
# "standby"), ctds-c (client). Sync link a<->b over veth (UDP unicast, port 3780), traffic c->a.
# Output: ftfw-a-to-b.pcap (datagrams as seen on b's side of the sync link, both directions).
set -u
OUT=${1:-$(dirname "$0")}
W=$(mktemp -d /tmp/ctds.XXXX)
cleanup() {
  for n in a b; do [ -f $W/$n.pid ] && kill $(cat $W/$n.pid) 2>/dev/null; done
  [ -f $W/tcpdump.pid ] && kill $(cat $W/tcpdump.pid) 2>/dev/null
  sleep 0.5
  for n in a b c; do ip netns del ctds-$n 2>/dev/null; done
  rm -rf $W
}
trap cleanup EXIT
for n in a b c; do ip netns add ctds-$n; ip -n ctds-$n link set lo up; done
ip link add sa netns ctds-a type veth peer name sb netns ctds-b
ip link add ta netns ctds-a type veth peer name tc netns ctds-c
ip -n ctds-a addr add 10.99.0.1/24 dev sa; ip -n ctds-b addr add 10.99.0.2/24 dev sb
ip -n ctds-a addr add 10.98.0.1/24 dev ta; ip -n ctds-c addr add 10.98.0.2/24 dev tc
ip -n ctds-a addr add 10.98.0.3/24 dev ta; ip -n ctds-a addr add 10.98.0.4/24 dev ta
ip -n ctds-a addr add fd98::1/64 dev ta nodad; ip -n ctds-c addr add fd98::2/64 dev tc nodad
for l in "a sa" "b sb" "a ta" "c tc"; do set -- $l; ip -n ctds-$1 link set $2 up; done
# Conntrack hooks are registered only when a rule needs them.
ip netns exec ctds-a iptables -A INPUT -m conntrack --ctstate INVALID -j DROP
ip netns exec ctds-a ip6tables -A INPUT -m conntrack --ctstate INVALID -j DROP
ip netns exec ctds-b iptables -A INPUT -m conntrack --ctstate INVALID -j DROP
# NAT on a: DNAT 10.98.0.1:9090 -> 10.98.0.3:8081 (DNAT_IPV4 + DPAT_PORT), SNAT of a's UDP to c:6000
# from 10.98.0.4:7000 (SNAT_IPV4 + SPAT_PORT).
ip netns exec ctds-a iptables -t nat -A PREROUTING -p tcp --dport 9090 -j DNAT --to-destination 10.98.0.3:8081
ip netns exec ctds-a iptables -t nat -A POSTROUTING -o ta -p udp --dport 6000 -j SNAT --to-source 10.98.0.4:7000
for n in a b; do
  if [ $n = a ]; then me=10.99.0.1; peer=10.99.0.2; dev=sa; else me=10.99.0.2; peer=10.99.0.1; dev=sb; fi
  cat > $W/$n.conf <<CONF
Sync {
  Mode FTFW {
    ResendQueueSize 131072
    ACKWindowSize 300
  }
  Options {
    TCPWindowTracking On
  }
  UDP {
    IPv4_address $me
    IPv4_Destination_Address $peer
    Port 3780
    Interface $dev
    Checksum on
  }
}
General {
  HashSize 8192
  HashLimit 65535
  LogFile $W/$n.log
  Syslog off
  LockFile $W/$n.lock
  UNIX { Path $W/$n.sock }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 8388608
  Filter From Userspace {
    Address Ignore {
      IPv4_address 10.99.0.1
      IPv4_address 10.99.0.2
      IPv4_address 127.0.0.1
    }
  }
}
CONF
done
ip netns exec ctds-b tcpdump -i sb -U -s 0 -w "$OUT/ftfw-a-to-b.pcap" udp port 3780 2>$W/tcpdump.err &
echo $! > $W/tcpdump.pid
sleep 1
ip netns exec ctds-b conntrackd -C $W/b.conf -d; sleep 0.3; cat $W/b.lock >/dev/null 2>&1
ip netns exec ctds-a conntrackd -C $W/a.conf -d
sleep 0.5
pgrep -f "conntrackd -C $W/a.conf" > $W/a.pid; pgrep -f "conntrackd -C $W/b.conf" > $W/b.pid
sleep 2   # HELLO, HELLO_BACK, ALIVE
# TCP over IPv4: connect, exchange, close (NEW, UPD, DEL).
ip netns exec ctds-a python3 - <<'PY' &
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.98.0.1",8080)); s.listen(1)
c,_=s.accept(); c.recv(100); c.sendall(b"pong"); c.recv(100); c.close()
u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.98.0.1",5353))
d,a=u.recvfrom(100); u.sendto(b"answer",a)
u6=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("fd98::1",5354))
d,a=u6.recvfrom(100); u6.sendto(b"answer6",a)
n=socket.socket(); n.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); n.bind(("10.98.0.3",8081)); n.listen(1)
c,_=n.accept(); c.recv(100); c.sendall(b"natted")
o=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); o.bind(("10.98.0.1",40600)); o.sendto(b"out",("10.98.0.2",6000)); o.recvfrom(100)
import time; time.sleep(3)
PY
sleep 0.5
ip netns exec ctds-c python3 - <<'PY'
import socket, time
c=socket.create_connection(("10.98.0.1",8080)); c.sendall(b"ping"); c.recv(100)
time.sleep(1.5); c.close(); time.sleep(0.5)
u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.98.0.2",40053)); u.sendto(b"query",("10.98.0.1",5353)); u.recvfrom(100)
time.sleep(0.3)
u6=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("fd98::2",40054)); u6.sendto(b"query6",("fd98::1",5354)); u6.recvfrom(100)
time.sleep(0.3)
r=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("10.98.0.2",6000))
n=socket.create_connection(("10.98.0.1",9090)); n.sendall(b"x"); n.recv(100)
d,a=r.recvfrom(100); r.sendto(b"back",a)
time.sleep(0.5)
PY
ip netns exec ctds-c ping -c 1 -W 1 10.98.0.1 >/dev/null
sleep 2.5   # ACK on the 1 s timer, ALIVE when idle
ip netns exec ctds-a conntrack -L 2>/dev/null | grep -v "10\.99\.0\." | sort > "$OUT/ftfw-a-to-b.conntrack.txt"; cp "$OUT/ftfw-a-to-b.conntrack.txt" $W/a.kernel
echo "--- kernel table of a"; cat $W/a.kernel
echo "--- b external cache"; ip netns exec ctds-b conntrackd -C $W/b.conf -e
# b asks a for a resync (RESYNC control message; a answers with a bulk send of its cache).
ip netns exec ctds-b conntrackd -C $W/b.conf -n
sleep 2
# Destroy the UDP entries on a (CT_DEL).
ip netns exec ctds-a conntrack -D -p udp >/dev/null 2>&1
sleep 1.5
echo "--- b stats"; ip netns exec ctds-b conntrackd -C $W/b.conf -s network
sleep 0.5
kill $(cat $W/tcpdump.pid); rm $W/tcpdump.pid; sleep 0.5
echo "--- logs"; cat $W/a.log $W/b.log
