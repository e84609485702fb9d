set -x
ip netns del evprobe 2>/dev/null
ip netns add evprobe
ip netns exec evprobe ip link set lo up
ip netns exec evprobe sysctl -w net.netfilter.nf_conntrack_acct=1 2>&1 || true
ip netns exec evprobe iptables -A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT
ip netns exec evprobe sysctl -w net.netfilter.nf_conntrack_acct=1
ip netns exec evprobe conntrack -E > events.txt 2>&1 &
EP=$!
ip netns exec evprobe conntrack -E -o extended > events-ext.txt 2>&1 &
EP2=$!
ip netns exec evprobe conntrack -E -o timestamp > events-ts.txt 2>&1 &
EP3=$!
sleep 0.5
ip netns exec evprobe python3 - <<'PY'
import socket,time,subprocess
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); s.bind(("127.0.0.1",5555)); s.listen()
c=socket.create_connection(("127.0.0.1",5555)); a,_=s.accept()
c.send(b"hello"); a.recv(10); a.send(b"world!"); c.recv(10)
time.sleep(0.2)
print(subprocess.run(["conntrack","-L"],capture_output=True,text=True).stdout)
print(subprocess.run(["conntrack","-L","-o","extended"],capture_output=True,text=True).stdout)
print(subprocess.run(["conntrack","-S"],capture_output=True,text=True).stdout)
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.sendto(b"x",("127.0.0.1",5353))
time.sleep(0.1)
print(subprocess.run(["conntrack","-L"],capture_output=True,text=True).stdout)
c.close(); time.sleep(0.1); a.close(); time.sleep(0.3)
print(subprocess.run(["conntrack","-L"],capture_output=True,text=True).stdout)
print(subprocess.run(["conntrack","-F"],capture_output=True,text=True))
time.sleep(0.3)
PY
sleep 0.5
kill $EP $EP2 $EP3
ip netns del evprobe
