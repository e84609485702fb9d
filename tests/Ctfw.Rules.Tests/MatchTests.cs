using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>
/// Every match and option, plain and negated, for both families: one rule "-A CHAIN options -j DROP"
/// in an ACCEPT table, one packet; the rule matched iff the verdict is DROP.
/// </summary>
public class MatchTests
{
    private static TestPacket Packet(string name) => name switch
    {
        "tcp4" => T.Tcp(),
        "tcp6" => T.Tcp(v6: true),
        "ack4" => T.Tcp(flags: TcpFlags.Ack),
        "synack4" => T.Tcp(flags: TcpFlags.Syn | TcpFlags.Ack),
        "null4" => T.Tcp(flags: TcpFlags.None),
        "xmas4" => T.Tcp(flags: TcpFlags.Fin | TcpFlags.Syn | TcpFlags.Rst | TcpFlags.Psh | TcpFlags.Ack | TcpFlags.Urg),
        "ssh4" => T.Tcp(dport: 22),
        "udp4" => T.Udp(),
        "udp6" => T.Udp(v6: true),
        "echo4" => T.Icmp(),
        "echo6" => T.Icmp(v6: true),
        "reply4" => T.Icmp(type: 0),
        "ts4" => T.Icmp(type: 13),
        "unreach4" => T.IcmpError(false, 3, 3, T.Udp()),
        "fragneeded4" => T.IcmpError(false, 3, 4, T.Udp()),
        "unreach6" => T.IcmpError(true, 1, 4, T.Udp(v6: true)),
        "toobig6" => T.IcmpError(true, 2, 0, T.Udp(v6: true)),
        "ns6" => T.Icmp(v6: true, type: 135),
        "gre4" => T.Generic(false, IpProto.Gre),
        "gre6" => T.Generic(true, IpProto.Gre),
        "icmpin6" => T.Generic(true, IpProto.Icmp),
        "frag4" => Fragment(T.Tcp(), 16, more: false),
        "first4" => Fragment(T.Tcp(), 0, more: true),
        "net10" => T.Tcp(src: T.Addr("10.1.2.3")),
        "ll6" => T.Tcp(v6: true, src: T.Addr("fe80::1")),
        _ => throw new ArgumentException(name),
    };

    internal static TestPacket Fragment(TestPacket p, int offset, bool more)
    {
        byte[] bytes = (byte[])p.Bytes.Clone();
        PacketBuilder.Ipv4SetFragment(bytes, offset, more);
        return new TestPacket(bytes);
    }

    private static (CtState, CtDirection, CtStatus) State(string s) => s switch
    {
        "NEW" => (CtState.New, CtDirection.Original, CtStatus.None),
        "EST" => (CtState.Established, CtDirection.Original, CtStatus.None),
        "ESTR" => (CtState.Established, CtDirection.Reply, CtStatus.None),
        "REL" => (CtState.Related, CtDirection.Reply, CtStatus.None),
        "INV" => (CtState.Invalid, CtDirection.None, CtStatus.None),
        "UNT" => (CtState.Untracked, CtDirection.None, CtStatus.None),
        "SNAT" => (CtState.Established, CtDirection.Original, (CtStatus)(1 << 4)),
        "DNAT" => (CtState.New, CtDirection.Original, (CtStatus)(1 << 5)),
        _ => throw new ArgumentException(s),
    };

    [Theory]
    // -p: names, numbers, case, negation, "all", both families
    [InlineData("-p tcp", "tcp4", true)]
    [InlineData("-p tcp", "tcp6", true)]
    [InlineData("-p tcp", "udp4", false)]
    [InlineData("-p TCP", "tcp4", true)]
    [InlineData("-p 6", "tcp4", true)]
    [InlineData("! -p tcp", "udp4", true)]
    [InlineData("! -p tcp", "tcp6", false)]
    [InlineData("-p all", "gre4", true)]
    [InlineData("-p 0", "udp6", true)]
    [InlineData("-p udp", "udp6", true)]
    [InlineData("-p icmp", "echo4", true)]
    [InlineData("-p icmp", "echo6", false)]
    [InlineData("-p icmp", "icmpin6", true)]
    [InlineData("-p ipv6-icmp", "echo6", true)]
    [InlineData("-p icmpv6", "echo6", true)]
    [InlineData("-p 58", "echo4", false)]
    [InlineData("-p gre", "gre6", true)]
    [InlineData("--protocol udp", "udp4", true)]
    // -s / -d: CIDR, bare, dotted mask, host bits, lists, negation, both families
    [InlineData("-s 192.0.2.0/24", "tcp4", true)]
    [InlineData("-s 192.0.2.10", "tcp4", true)]
    [InlineData("-s 192.0.2.11", "tcp4", false)]
    [InlineData("-s 192.0.2.10/32", "tcp4", true)]
    [InlineData("-s 192.0.2.99/24", "tcp4", true)]
    [InlineData("-s 192.0.2.0/255.255.255.0", "tcp4", true)]
    [InlineData("-s 192.0.3.0/255.255.254.0", "tcp4", true)]
    [InlineData("-s 192.0.3.0/255.255.255.0", "tcp4", false)]
    [InlineData("-s 10/8", "net10", true)]
    [InlineData("-s 10", "net10", false)]
    [InlineData("-s 10.1.2.3", "net10", true)]
    [InlineData("-s 0.0.0.0/0", "tcp4", true)]
    [InlineData("-s 0.0.0.0/0", "tcp6", false)]
    [InlineData("! -s 192.0.2.0/24", "tcp4", false)]
    [InlineData("! -s 192.0.2.0/24", "net10", true)]
    [InlineData("! -s 192.0.2.0/24", "tcp6", false)]
    [InlineData("--source 10.0.0.0/8", "net10", true)]
    [InlineData("--src 10.0.0.0/8", "tcp4", false)]
    [InlineData("-d 198.51.100.20", "tcp4", true)]
    [InlineData("--destination 198.51.100.0/25", "tcp4", true)]
    [InlineData("--dst 198.51.100.128/25", "tcp4", false)]
    [InlineData("-s 10.0.0.0/8,192.0.2.0/24", "tcp4", true)]
    [InlineData("-s 10.0.0.0/8,192.0.2.0/24", "net10", true)]
    [InlineData("-s 10.0.0.0/8,192.0.2.0/24", "ssh4", true)]
    [InlineData("-d 1.1.1.1,198.51.100.20", "tcp4", true)]
    [InlineData("-s 2001:db8::/32", "tcp6", true)]
    [InlineData("-s 2001:db8::/32", "tcp4", false)]
    [InlineData("-s 2001:db8::10", "tcp6", true)]
    [InlineData("-s 2001:db8::/124", "tcp6", false)]
    [InlineData("-s 2001:db8::/123", "tcp6", true)]
    [InlineData("-s 2001:db8::/ffff:ffff::", "tcp6", true)]
    [InlineData("-s ::/0", "tcp6", true)]
    [InlineData("-s ::/0", "tcp4", false)]
    [InlineData("! -s 2001:db8::/32", "ll6", true)]
    [InlineData("-s fe80::/10", "ll6", true)]
    [InlineData("-d 2001:db8:1::/48", "tcp6", true)]
    [InlineData("! -d 2001:db8:1::/48", "tcp6", false)]
    [InlineData("-d 2001:db8:1::20/127", "tcp6", true)]
    // -i / -o: exact (with the NUL), wildcard, negation
    [InlineData("-i eth0", "tcp4", true)]
    [InlineData("-i eth1", "tcp4", false)]
    [InlineData("-i eth", "tcp4", false)]
    [InlineData("-i eth0x", "tcp4", false)]
    [InlineData("-i eth+", "tcp4", true)]
    [InlineData("-i e+", "tcp6", true)]
    [InlineData("-i +", "tcp4", true)]
    [InlineData("-i wlan+", "tcp4", false)]
    [InlineData("! -i eth1", "tcp4", true)]
    [InlineData("! -i eth+", "tcp4", false)]
    [InlineData("--in-interface eth0", "tcp4", true)]
    // --sport / --dport (tcp, udp; implicit and -m), ranges, negation
    [InlineData("-p tcp --dport 80", "tcp4", true)]
    [InlineData("-p tcp --dport 80", "tcp6", true)]
    [InlineData("-p tcp --dport 81", "tcp4", false)]
    [InlineData("-p tcp --destination-port 79:81", "tcp4", true)]
    [InlineData("-p tcp --dport :80", "tcp4", true)]
    [InlineData("-p tcp --dport 80:", "tcp4", true)]
    [InlineData("-p tcp --dport 81:", "tcp4", false)]
    [InlineData("-p tcp --dport 80:80", "tcp4", true)]
    [InlineData("-p tcp ! --dport 80", "tcp4", false)]
    [InlineData("-p tcp ! --dport 22", "tcp4", true)]
    [InlineData("-p tcp --sport 40000", "tcp4", true)]
    [InlineData("-p tcp --source-port 1:1024", "tcp4", false)]
    [InlineData("-p tcp ! --sport 1:1024", "tcp4", true)]
    [InlineData("-p tcp -m tcp --dport 80", "tcp4", true)]
    [InlineData("-p tcp -m tcp --sport 40000 --dport 80", "tcp4", true)]
    [InlineData("-p tcp -m tcp --sport 40000 --dport 81", "tcp4", false)]
    [InlineData("-p udp --dport 53", "udp4", true)]
    [InlineData("-p udp --dport 53", "udp6", true)]
    [InlineData("-p udp -m udp --sport 5353 ! --dport 54", "udp4", true)]
    [InlineData("-p udp --dport 53", "tcp4", false)]
    // --syn, --tcp-flags
    [InlineData("-p tcp --syn", "tcp4", true)]
    [InlineData("-p tcp --syn", "synack4", false)]
    [InlineData("-p tcp --syn", "ack4", false)]
    [InlineData("-p tcp ! --syn", "ack4", true)]
    [InlineData("-p tcp ! --syn", "tcp4", false)]
    [InlineData("-p tcp --tcp-flags SYN,ACK SYN,ACK", "synack4", true)]
    [InlineData("-p tcp --tcp-flags syn,ack syn", "synack4", false)]
    [InlineData("-p tcp --tcp-flags ALL NONE", "null4", true)]
    [InlineData("-p tcp --tcp-flags ALL NONE", "tcp4", false)]
    [InlineData("-p tcp --tcp-flags ALL ALL", "xmas4", true)]
    [InlineData("-p tcp --tcp-flags ALL FIN,SYN,RST,PSH,ACK,URG", "xmas4", true)]
    [InlineData("-p tcp ! --tcp-flags SYN,RST SYN,RST", "tcp4", true)]
    [InlineData("-p tcp --tcp-flags FIN,URG,PSH NONE", "ack4", true)]
    // multiport
    [InlineData("-p tcp -m multiport --dports 22,80,443", "tcp4", true)]
    [InlineData("-p tcp -m multiport --dports 22,443", "tcp4", false)]
    [InlineData("-p tcp -m multiport --destination-ports 1:79,81", "tcp4", false)]
    [InlineData("-p tcp -m multiport --dports 1:79,80:90", "tcp6", true)]
    [InlineData("-p tcp -m multiport ! --dports 80,443", "tcp4", false)]
    [InlineData("-p tcp -m multiport ! --dports 22,443", "tcp4", true)]
    [InlineData("-p tcp -m multiport --sports 40000", "tcp4", true)]
    [InlineData("-p tcp -m multiport --source-ports 80", "tcp4", false)]
    [InlineData("-p tcp -m multiport --ports 80", "tcp4", true)]
    [InlineData("-p tcp -m multiport --ports 40000", "tcp4", true)]
    [InlineData("-p tcp -m multiport --ports 1,2", "tcp4", false)]
    [InlineData("-p udp -m multiport --dports 53,67:68", "udp6", true)]
    // --icmp-type: names (by prefix, as iptables), type, type/code, any, negation
    [InlineData("-p icmp --icmp-type echo-request", "echo4", true)]
    [InlineData("-p icmp --icmp-type ECHO-REQUEST", "echo4", true)]
    [InlineData("-p icmp --icmp-type ping", "echo4", true)]
    [InlineData("-p icmp --icmp-type echo-req", "echo4", true)]
    [InlineData("-p icmp --icmp-type 8", "echo4", true)]
    [InlineData("-p icmp --icmp-type 8/0", "echo4", true)]
    [InlineData("-p icmp --icmp-type 8/1", "echo4", false)]
    [InlineData("-p icmp --icmp-type echo-reply", "echo4", false)]
    [InlineData("-p icmp --icmp-type pong", "reply4", true)]
    [InlineData("-p icmp --icmp-type any", "ts4", true)]
    [InlineData("-p icmp ! --icmp-type any", "ts4", false)]
    [InlineData("-p icmp ! --icmp-type echo-request", "echo4", false)]
    [InlineData("-p icmp ! --icmp-type echo-request", "reply4", true)]
    [InlineData("-p icmp --icmp-type destination-unreachable", "unreach4", true)]
    [InlineData("-p icmp --icmp-type port-unreachable", "unreach4", true)]
    [InlineData("-p icmp --icmp-type fragmentation-needed", "unreach4", false)]
    [InlineData("-p icmp --icmp-type fragmentation-needed", "fragneeded4", true)]
    [InlineData("-p icmp --icmp-type 3/3", "unreach4", true)]
    [InlineData("-p icmp --icmp-type timestamp-request", "ts4", true)]
    [InlineData("-p icmp -m icmp --icmp-type 8", "echo4", true)]
    // --icmpv6-type
    [InlineData("-p ipv6-icmp --icmpv6-type echo-request", "echo6", true)]
    [InlineData("-p ipv6-icmp --icmpv6-type 128", "echo6", true)]
    [InlineData("-p ipv6-icmp -m icmp6 --icmpv6-type 128/0", "echo6", true)]
    [InlineData("-p icmpv6 --icmpv6-type echo-reply", "echo6", false)]
    [InlineData("-p ipv6-icmp --icmpv6-type neighbor-solicitation", "ns6", true)]
    [InlineData("-p ipv6-icmp --icmpv6-type neighbour-solicitation", "ns6", true)]
    [InlineData("-p ipv6-icmp --icmpv6-type port-unreachable", "unreach6", true)]
    [InlineData("-p ipv6-icmp --icmpv6-type destination-unreachable", "unreach6", true)]
    [InlineData("-p ipv6-icmp --icmpv6-type no-route", "unreach6", false)]
    [InlineData("-p ipv6-icmp --icmpv6-type packet-too-big", "toobig6", true)]
    [InlineData("-p ipv6-icmp ! --icmpv6-type echo-request", "ns6", true)]
    // -m comment never changes the outcome
    [InlineData("-m comment --comment \"any text, with spaces\"", "tcp4", true)]
    [InlineData("-p udp -m comment --comment x", "tcp4", false)]
    // -f (IPv4 only): non-first fragments
    [InlineData("-f", "frag4", true)]
    [InlineData("-f", "first4", false)]
    [InlineData("-f", "tcp4", false)]
    [InlineData("! -f", "tcp4", true)]
    [InlineData("! -f", "frag4", false)]
    [InlineData("-f", "tcp6", false)]
    // port matches never match non-first fragments (no L4 header there); the protocol still does
    [InlineData("-p tcp", "frag4", true)]
    [InlineData("-p tcp --dport 80", "frag4", false)]
    [InlineData("-p tcp ! --dport 80", "frag4", false)]
    [InlineData("-p tcp -m multiport --dports 80", "frag4", false)]
    [InlineData("-p tcp --dport 80", "first4", true)]
    // -4 / -6
    [InlineData("-4", "tcp4", true)]
    [InlineData("-4", "tcp6", false)]
    [InlineData("-6", "tcp6", true)]
    [InlineData("--ipv6", "udp4", false)]
    [InlineData("--ipv4 -p udp", "udp4", true)]
    [InlineData("-6 -p udp", "udp4", false)]
    public void Rule_MatchOptions_MatchAsTheKernelDoes(string options, string packet, bool expected)
    {
        Ruleset rs = T.Table($"-A INPUT {options} -j DROP");
        RuleVerdict v = T.Eval(rs, Packet(packet));
        Assert.Equal(expected ? Verdict.Drop : Verdict.Accept, v.Verdict);
        // An address list expands to one rule per address, so the matching rule may not be the first.
        Assert.Equal(expected, v.Rule >= 0);
    }

    [Theory]
    [InlineData("-o eth1", "tcp4", true)]
    [InlineData("-o eth0", "tcp4", false)]
    [InlineData("--out-interface eth+", "tcp6", true)]
    [InlineData("! -o eth1", "tcp4", false)]
    [InlineData("-i eth0 -o eth1", "tcp4", true)]
    [InlineData("-i eth1 -o eth0", "tcp4", false)]
    public void Rule_InterfacesOnForward_MatchBothSides(string options, string packet, bool expected)
    {
        Ruleset rs = T.Table($"-A FORWARD {options} -j DROP");
        Assert.Equal(expected ? Verdict.Drop : Verdict.Accept, T.Eval(rs, Packet(packet), Hook.Forward).Verdict);
    }

    [Fact]
    public void Rule_InterfaceInUserChain_NeverMatchesTheMissingSide()
    {
        // In a user chain called from INPUT, the kernel compares -o against the empty name.
        Ruleset rs = T.Table("-A INPUT -j U\n-A FORWARD -j U\n-A U -o eth+ -j DROP\n-A U ! -o eth+ -j REJECT", chains: ":U - [0:0]\n");
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Tcp()).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Tcp(), Hook.Forward).Verdict);
    }

    [Theory]
    // -m state
    [InlineData("-m state --state NEW", "NEW", true)]
    [InlineData("-m state --state NEW", "EST", false)]
    [InlineData("-m state --state ESTABLISHED", "ESTR", true)]
    [InlineData("-m state --state RELATED,ESTABLISHED", "REL", true)]
    [InlineData("-m state --state related,established", "EST", true)]
    [InlineData("-m state --state INVALID", "INV", true)]
    [InlineData("-m state --state UNTRACKED", "UNT", true)]
    [InlineData("-m state --state UNTRACKED", "INV", false)]
    [InlineData("-m state ! --state NEW", "EST", true)]
    [InlineData("-m state ! --state NEW", "NEW", false)]
    [InlineData("-m state ! --state NEW", "INV", true)]
    // -m conntrack --ctstate / --ctdir
    [InlineData("-m conntrack --ctstate NEW", "NEW", true)]
    [InlineData("-m conntrack --ctstate ESTABLISHED,RELATED", "REL", true)]
    [InlineData("-m conntrack --ctstate ESTABLISHED,RELATED", "NEW", false)]
    [InlineData("-m conntrack --ctstate INVALID", "INV", true)]
    [InlineData("-m conntrack --ctstate UNTRACKED", "UNT", true)]
    [InlineData("-m conntrack ! --ctstate INVALID", "EST", true)]
    [InlineData("-m conntrack ! --ctstate INVALID", "INV", false)]
    [InlineData("-m conntrack ! --ctstate ESTABLISHED", "UNT", true)]
    [InlineData("-m conntrack --ctstate SNAT", "SNAT", true)]
    [InlineData("-m conntrack --ctstate SNAT", "EST", false)]
    [InlineData("-m conntrack --ctstate DNAT", "DNAT", true)]
    [InlineData("-m conntrack --ctstate DNAT", "SNAT", false)]
    [InlineData("-m conntrack --ctstate NEW,DNAT", "NEW", true)]
    [InlineData("-m conntrack --ctdir ORIGINAL", "EST", true)]
    [InlineData("-m conntrack --ctdir ORIGINAL", "ESTR", false)]
    [InlineData("-m conntrack --ctdir reply", "ESTR", true)]
    [InlineData("-m conntrack --ctdir REPLY", "REL", true)]
    [InlineData("-m conntrack --ctstate ESTABLISHED --ctdir REPLY", "ESTR", true)]
    [InlineData("-m conntrack --ctstate ESTABLISHED --ctdir REPLY", "EST", false)]
    // xt_conntrack without an entry: --ctdir alone cannot match, with --ctstate it is not even looked at.
    [InlineData("-m conntrack --ctdir ORIGINAL", "INV", false)]
    [InlineData("-m conntrack --ctdir REPLY", "UNT", false)]
    [InlineData("-m conntrack --ctstate INVALID --ctdir REPLY", "INV", true)]
    [InlineData("-m conntrack --ctstate NEW -m conntrack --ctdir ORIGINAL", "NEW", true)]
    public void Rule_ConntrackMatches_SeeStateDirectionAndNatBits(string options, string state, bool expected)
    {
        Ruleset rs = T.Table($"-A INPUT {options} -j DROP");
        (CtState s, CtDirection d, CtStatus status) = State(state);
        Assert.Equal(expected ? Verdict.Drop : Verdict.Accept, T.Eval(rs, T.Tcp(), state: s, dir: d, status: status).Verdict);
    }

    [Fact]
    public void Rule_NatStateBitsOnInvalidPacket_AreIgnored()
    {
        // The kernel only reads ct->status when there is a ct.
        Ruleset rs = T.Table("-A INPUT -m conntrack --ctstate SNAT -j DROP");
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Tcp(), state: CtState.Invalid, status: (CtStatus)(1 << 4)).Verdict);
    }
}
