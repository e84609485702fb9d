ip netns del evprobe 2>/dev/null
ip netns add evprobe
ip netns exec evprobe ip link set lo up
ip netns exec evprobe iptables -A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT
ip netns exec evprobe sysctl -qw net.netfilter.nf_conntrack_acct=1
ip netns exec evprobe sysctl -qw net.netfilter.nf_conntrack_udp_timeout=2
ip netns exec evprobe sysctl -qw net.netfilter.nf_conntrack_udp_timeout_stream=3
ip netns exec evprobe sysctl -qw net.netfilter.nf_conntrack_icmp_timeout=1
ip netns exec evprobe conntrack -E > events2.txt 2>&1 &
EP=$!
sleep 0.5
ip netns exec evprobe python3 - <<'PY'
import socket,time,subprocess,struct
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",6000))
v=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); v.bind(("127.0.0.1",6001))
u.sendto(b"a",("127.0.0.1",6001)); v.recv(10); v.sendto(b"bb",("127.0.0.1",6000)); u.recv(10)
time.sleep(2.2)
u.sendto(b"a",("127.0.0.1",6001)); v.recv(10)
time.sleep(0.3)
# TCP refused -> RST
s=socket.socket(); 
try: s.connect(("127.0.0.1",7))
except Exception as e: print(e)
# TCP with RST close
l=socket.socket(); l.bind(("127.0.0.1",5556)); l.listen()
c=socket.create_connection(("127.0.0.1",5556)); a,_=l.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii',1,0)); c.close()
time.sleep(5)
PY
ip netns exec evprobe ping -c1 -W1 127.0.0.1 >/dev/null
sleep 3
kill $EP
ip netns del evprobe
