#!/bin/bash
# The kernel path of offload without ctfw (docs/BENCHMARKS.md, "targets of issue 15"): 64-byte UDP
# (iperf3 -u -l 64 -b 0 -P 2, 6 s) through a gateway namespace with no rules, with kernel conntrack and
# a stateful ruleset, and with ctfw's offload rules (raw NOTRACK, an inet set of the flow with lookup,
# with and without the per-packet update, mark OR, iptables mark ACCEPT) filled by hand. Run as root;
# makes namespaces oc/og/os (10.77.1.0/24, 10.77.2.0/24) and removes them.
for n in oc og os; do ip netns del $n 2>/dev/null; done
ip netns add oc; ip netns add og; ip netns add os
ip link add vc type veth peer name vgc; ip link add vs type veth peer name vgs
ip link set vc netns oc; ip link set vgc netns og; ip link set vs netns os; ip link set vgs netns og
ip -n oc addr add 10.77.1.2/24 dev vc; ip -n og addr add 10.77.1.1/24 dev vgc
ip -n os addr add 10.77.2.2/24 dev vs; ip -n og addr add 10.77.2.1/24 dev vgs
for n in oc og os; do ip -n $n link set lo up; done
ip -n oc link set vc up; ip -n og link set vgc up; ip -n og link set vgs up; ip -n os link set vs up
ip -n oc route add default via 10.77.1.1; ip -n os route add default via 10.77.2.1
ip netns exec og sysctl -qw net.ipv4.ip_forward=1
ip netns exec os iperf3 -s -D -B 10.77.2.2 >/dev/null 2>&1
sleep 0.5
run() { ip netns exec oc iperf3 -c 10.77.2.2 -u -l 64 -b 0 -P 2 -t 6 --cport 40000 -J 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); s=d['end']['sum']; print('%s: %.1f kpps rx, loss %.1f%%' % (sys.argv[1], (s['packets']-s['lost_packets'])/s['seconds']/1000, s['lost_percent']))" "$1"; }
# plain
run plain
# kernel conntrack
ip netns exec og iptables-restore <<R
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p udp --dport 5201 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -p tcp --dport 5201 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
R
run kernel
# offload path: NOTRACK + nft set (lookup+update+mark) + iptables mark accept
ip netns exec og iptables-restore <<R
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -j NOTRACK
-A OUTPUT -j NOTRACK
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CTFW - [0:0]
-A FORWARD -j CTFW
-A CTFW -m mark ! --mark 0x43544657 -m mark --mark 0x40000000/0x40000000 -j ACCEPT
-A CTFW -p tcp -j ACCEPT
-A CTFW -p udp --dport 5201 -j ACCEPT
-A CTFW -p udp --sport 5201 -j ACCEPT
COMMIT
R
for mode in update noupdate; do
ip netns exec og nft delete table inet t 2>/dev/null
if [ $mode = update ]; then UPD='update @u4 { ip saddr . ip daddr . udp sport . udp dport }'; else UPD=''; fi
ip netns exec og nft -f - <<N
table inet t {
  set u4 { type ipv4_addr . ipv4_addr . inet_service . inet_service; flags dynamic,timeout; counter; timeout 2m; size 65536; }
  chain forward { type filter hook forward priority -1; policy accept;
    ip saddr . ip daddr . udp sport . udp dport @u4 $UPD meta mark set meta mark | 0x40000000
  }
}
N
for p in 40000 40001 40002 40003; do ip netns exec og nft add element inet t u4 "{ 10.77.1.2 . 10.77.2.2 . $p . 5201, 10.77.2.2 . 10.77.1.2 . 5201 . $p }"; done
run "offload-$mode"
ip netns exec og nft list set inet t u4 | grep -c counter
done
ip netns exec og nft delete table inet t
ip netns exec og iptables -t raw -F; ip netns exec og iptables -F; ip netns exec og iptables -X CTFW
run plain2
pkill -f "iperf3 -s -D -B 10.77.2.2"
for n in oc og os; do ip netns del $n 2>/dev/null; done
