using Ctfw.Cli.Control;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests.Control;

public class ConntrackFilterTests
{
    private static ConntrackFilter Parse(params string[] args)
    {
        ConntrackFilter? filter = ConntrackFilter.Parse(args, out string? error);
        Assert.True(filter != null, error);
        Assert.Null(error);
        return filter;
    }

    private static string ParseError(params string[] args)
    {
        ConntrackFilter? filter = ConntrackFilter.Parse(args, out string? error);
        Assert.Null(filter);
        Assert.NotNull(error);
        return error;
    }

    [Theory]
    [InlineData("-p", "--proto", "tcp")]
    [InlineData("--proto", "--proto", "UDP")]
    [InlineData("-f", "--family", "ipv6")]
    [InlineData("--family", "--family", "ipv4")]
    [InlineData("-s", "--orig-src", "10.0.0.1")]
    [InlineData("--src", "--orig-src", "10.0.0.0/8")]
    [InlineData("--orig-src", "--orig-src", "2001:db8::/32")]
    [InlineData("-d", "--orig-dst", "10.0.0.2")]
    [InlineData("--dst", "--orig-dst", "::1")]
    [InlineData("--orig-dst", "--orig-dst", "192.168.1.0/24")]
    [InlineData("-r", "--reply-src", "10.0.0.2")]
    [InlineData("--reply-src", "--reply-src", "fe80::/10")]
    [InlineData("-q", "--reply-dst", "10.0.0.1")]
    [InlineData("--reply-dst", "--reply-dst", "0.0.0.0/0")]
    [InlineData("--sport", "--orig-port-src", "1234")]
    [InlineData("--orig-port-src", "--orig-port-src", "0")]
    [InlineData("--dport", "--orig-port-dst", "80")]
    [InlineData("--orig-port-dst", "--orig-port-dst", "65535")]
    [InlineData("--reply-port-src", "--reply-port-src", "80")]
    [InlineData("--reply-port-dst", "--reply-port-dst", "1234")]
    [InlineData("--state", "--state", "ESTABLISHED")]
    [InlineData("--state", "--state", "syn_sent2")]
    [InlineData("-u", "--status", "ASSURED")]
    [InlineData("--status", "--status", "SEEN_REPLY,assured")]
    public void Parse_EveryOption_AcceptedAndCanonicalForServer(string option, string canonical, string value)
    {
        Assert.Equal([canonical, value], Parse(option, value).Args);
        // The `--name=value` spelling parses to the same request.
        Assert.Equal([canonical, value], Parse($"{option}={value}").Args);
    }

    [Fact]
    public void Parse_Nothing_EmptyFilterMatchesEverything()
    {
        ConntrackFilter filter = Parse();
        Assert.True(filter.IsEmpty);
        Assert.True(filter.Matches(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2)));
        Assert.True(filter.Matches(Flows.Ping("::1", "::2", 7)));
    }

    [Theory]
    [InlineData("-p bogus: expected tcp, udp, udplite, icmp, icmpv6, gre, sctp or a number 0..255", "-p", "bogus")]
    [InlineData("-p 256: expected", "-p", "256")]
    [InlineData("--proto -1: expected", "--proto", "-1")]
    [InlineData("-f inet: expected ipv4 or ipv6", "-f", "inet")]
    [InlineData("-s 10.0.0: expected an IPv4 or IPv6 address, optionally with /LENGTH", "-s", "10.0.0")]
    [InlineData("-s 10: expected an IPv4 or IPv6 address", "-s", "10")]
    [InlineData("-s 010.0.0.1: expected", "-s", "010.0.0.1")]
    [InlineData("-s 256.0.0.1: expected", "-s", "256.0.0.1")]
    [InlineData("-d 10.0.0.1/33: expected", "-d", "10.0.0.1/33")]
    [InlineData("-d ::1/129: expected", "-d", "::1/129")]
    [InlineData("-d 10.0.0.1/: expected", "-d", "10.0.0.1/")]
    [InlineData("-r fe80::1%eth0: expected", "-r", "fe80::1%eth0")]
    [InlineData("-q example.com: expected", "-q", "example.com")]
    [InlineData("--sport 65536: expected a port 0..65535", "--sport", "65536")]
    [InlineData("--dport http: expected a port", "--dport", "http")]
    [InlineData("--reply-port-src -1: expected a port", "--reply-port-src", "-1")]
    [InlineData("--reply-port-dst x: expected a port", "--reply-port-dst", "x")]
    [InlineData("--state OPEN: expected a TCP state", "--state", "OPEN")]
    [InlineData("-u CONFIRMED: expected a comma-separated list of ASSURED, SEEN_REPLY, UNREPLIED", "-u", "CONFIRMED")]
    [InlineData("-u ASSURED,: expected", "-u", "ASSURED,")]
    [InlineData("an entry cannot be both SEEN_REPLY and UNREPLIED", "-u", "SEEN_REPLY,UNREPLIED")]
    [InlineData("option -p given twice", "--proto", "tcp", "-p", "udp")]
    [InlineData("option --src given twice", "-s", "10.0.0.1", "--src", "10.0.0.2")]
    [InlineData("option --dport needs a value", "--dport")]
    [InlineData("unknown filter option '-L'", "-L")]
    [InlineData("unknown filter option 'tcp'", "tcp")]
    [InlineData("--state: value contains a tab or line break", "--state", "ESTABLISHED\n")]
    [InlineData("--family ipv4 but ::1 is IPv6", "-f", "ipv4", "-d", "::1")]
    [InlineData("--family ipv6 but 10.0.0.0/8 is IPv4", "-r", "10.0.0.0/8", "-f", "ipv6")]
    [InlineData("addresses of two families: 10.0.0.1 and ::1", "-s", "10.0.0.1", "-q", "::1")]
    [InlineData("port filters need a protocol with ports (tcp, udp, udplite, sctp), not icmp", "-p", "icmp", "--dport", "80")]
    [InlineData("not protocol 50", "--sport", "1", "-p", "50")]
    [InlineData("--state is a TCP state and cannot match udp entries", "--state", "ESTABLISHED", "-p", "udp")]
    public void Parse_BadArguments_OneClearError(string message, params string[] args)
    {
        string error = ParseError(args);
        Assert.Contains(message, error);
        Assert.DoesNotContain('\n', error);
    }

    [Fact]
    public void Add_NotAFilterOption_RefusedAndNothingAdded()
    {
        var filter = new ConntrackFilter();
        Assert.Equal("unknown filter option '--pid'", filter.Add("--pid", "5"));
        Assert.True(filter.IsEmpty);
    }

    [Fact]
    public void Help_NamesEveryOption()
    {
        foreach (string option in (string[])["-p", "--proto", "-f", "--family", "-s", "--src", "--orig-src", "-d", "--dst", "--orig-dst",
            "-r", "--reply-src", "-q", "--reply-dst", "--sport", "--orig-port-src", "--dport", "--orig-port-dst", "--state", "-u", "--status"])
            Assert.Contains(option, Commands.ConntrackCommand.Create().Help(), StringComparison.Ordinal);
    }

    [Fact]
    public void Matches_Protocol_ByNameOrNumber()
    {
        FlowInfo tcp = Flows.Tcp("10.0.0.1", 1000, "10.0.0.2", 80), udp = Flows.Udp("10.0.0.1", 53, "10.0.0.2", 53);
        FlowInfo gre = Flows.Make(IpProto.Gre, "10.0.0.1", 0, "10.0.0.2", 0);
        Assert.True(Parse("-p", "tcp").Matches(tcp));
        Assert.False(Parse("-p", "tcp").Matches(udp));
        Assert.True(Parse("-p", "17").Matches(udp));
        Assert.True(Parse("-p", "gre").Matches(gre));
        Assert.False(Parse("-p", "47").Matches(tcp));
    }

    [Fact]
    public void Matches_Family()
    {
        FlowInfo v4 = Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2), v6 = Flows.Udp("2001:db8::1", 1, "2001:db8::2", 2);
        Assert.True(Parse("-f", "ipv4").Matches(v4));
        Assert.False(Parse("-f", "ipv4").Matches(v6));
        Assert.True(Parse("-f", "IPv6").Matches(v6));
        Assert.False(Parse("-f", "ipv6").Matches(v4));
    }

    [Fact]
    public void Matches_V4AddressesAndPrefixes_OnTheRightTuple()
    {
        FlowInfo f = Flows.Tcp("192.168.1.10", 40000, "10.1.2.3", 443);
        Assert.True(Parse("-s", "192.168.1.10").Matches(f));
        Assert.False(Parse("-s", "192.168.1.11").Matches(f));
        Assert.True(Parse("-s", "192.168.1.0/24").Matches(f));
        Assert.False(Parse("-s", "192.168.2.0/24").Matches(f));
        // Host bits in the prefix are ignored, as iptables does.
        Assert.True(Parse("-s", "192.168.1.99/24").Matches(f));
        Assert.True(Parse("-d", "10.0.0.0/8").Matches(f));
        Assert.False(Parse("-d", "10.1.2.4").Matches(f));
        Assert.True(Parse("-d", "0.0.0.0/0").Matches(f));
        // The reply tuple is the inverse: its source is the original destination.
        Assert.True(Parse("-r", "10.1.2.3").Matches(f));
        Assert.False(Parse("-r", "192.168.1.10").Matches(f));
        Assert.True(Parse("-q", "192.168.1.10").Matches(f));
        Assert.False(Parse("-q", "10.1.2.3").Matches(f));
        Assert.True(Parse("-s", "192.168.1.10", "-d", "10.1.2.3", "-r", "10.1.2.3", "-q", "192.168.1.10").Matches(f));
        Assert.False(Parse("-s", "192.168.1.10", "-d", "10.1.2.4").Matches(f));
    }

    [Fact]
    public void Matches_V6AddressesAndPrefixes()
    {
        FlowInfo f = Flows.Tcp("2001:db8:0:1::10", 40000, "2001:db8:ffff::1", 443);
        Assert.True(Parse("-s", "2001:db8:0:1::10").Matches(f));
        Assert.True(Parse("-s", "2001:db8:0:1::/64").Matches(f));
        Assert.False(Parse("-s", "2001:db8:0:2::/64").Matches(f));
        Assert.True(Parse("-d", "2001:db8::/32").Matches(f));
        Assert.False(Parse("-d", "2001:db9::/32").Matches(f));
        // A prefix longer than 64 bits compares the low word too.
        Assert.True(Parse("-s", "2001:db8:0:1::11/127").Matches(f));
        Assert.False(Parse("-s", "2001:db8:0:1::12/127").Matches(f));
        Assert.True(Parse("-d", "::/0").Matches(f));
        Assert.True(Parse("-r", "2001:db8:ffff::1").Matches(f));
        Assert.True(Parse("-q", "2001:db8:0:1::10/128").Matches(f));
    }

    [Fact]
    public void Matches_AddressOfOtherFamily_NeverMatches()
    {
        // ::ffff:10.0.0.1 and 10.0.0.1 are different flows; /0 of one family is not the other.
        Assert.False(Parse("-s", "0.0.0.0/0").Matches(Flows.Udp("::1", 1, "::2", 2)));
        Assert.False(Parse("-s", "::/0").Matches(Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2)));
        Assert.False(Parse("-s", "::ffff:10.0.0.1").Matches(Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2)));
    }

    [Fact]
    public void Matches_Ports_OriginalAndReply()
    {
        FlowInfo f = Flows.Udp("10.0.0.1", 5353, "10.0.0.2", 53);
        Assert.True(Parse("--sport", "5353").Matches(f));
        Assert.False(Parse("--sport", "53").Matches(f));
        Assert.True(Parse("--dport", "53").Matches(f));
        Assert.False(Parse("--dport", "5353").Matches(f));
        Assert.True(Parse("--reply-port-src", "53").Matches(f));
        Assert.True(Parse("--reply-port-dst", "5353").Matches(f));
        Assert.False(Parse("--reply-port-dst", "53").Matches(f));
        Assert.True(Parse("-p", "udp", "--sport", "5353", "--dport", "53").Matches(f));
    }

    [Fact]
    public void Matches_Ports_NeverMatchPortlessProtocols()
    {
        // An ICMP echo's tuple carries the id and type/code in the port slots: a port filter must not see them.
        FlowInfo ping = Flows.Ping("10.0.0.1", "10.0.0.2", 80);
        Assert.Equal(80, ping.Original.SrcId);
        Assert.False(Parse("--sport", "80").Matches(ping));
        Assert.False(Parse("--dport", "2048").Matches(ping));
    }

    [Fact]
    public void Matches_TcpState_OnlyTcpEntries()
    {
        FlowInfo established = Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2);
        FlowInfo synSent = Flows.Tcp("10.0.0.1", 3, "10.0.0.2", 2, TcpState.SynSent, CtStatus.Confirmed);
        FlowInfo udp = Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2);
        Assert.True(Parse("--state", "ESTABLISHED").Matches(established));
        Assert.False(Parse("--state", "ESTABLISHED").Matches(synSent));
        Assert.True(Parse("--state", "SYN_SENT").Matches(synSent));
        Assert.True(Parse("--state", "time_wait").Matches(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2, TcpState.TimeWait)));
        // A UDP flow has TcpState None: even --state NONE is for TCP entries only.
        Assert.False(Parse("--state", "NONE").Matches(udp));
        Assert.True(Parse("--state", "NONE").Matches(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2, TcpState.None)));
    }

    [Fact]
    public void Matches_Status_AllListedMustHold()
    {
        FlowInfo assured = Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2);
        FlowInfo replied = Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2, CtStatus.Confirmed | CtStatus.SeenReply);
        FlowInfo unreplied = Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2, CtStatus.Confirmed);
        Assert.True(Parse("-u", "ASSURED").Matches(assured));
        Assert.False(Parse("-u", "ASSURED").Matches(replied));
        Assert.True(Parse("-u", "SEEN_REPLY").Matches(replied));
        Assert.True(Parse("-u", "SEEN_REPLY,ASSURED").Matches(assured));
        Assert.False(Parse("-u", "SEEN_REPLY,ASSURED").Matches(replied));
        Assert.True(Parse("-u", "UNREPLIED").Matches(unreplied));
        Assert.False(Parse("-u", "UNREPLIED").Matches(replied));
        Assert.False(Parse("-u", "ASSURED,UNREPLIED").Matches(unreplied));
    }

    [Fact]
    public void Matches_Combined_AllMustHold()
    {
        ConntrackFilter filter = Parse("-p", "tcp", "-f", "ipv4", "-d", "10.0.0.0/8", "--dport", "443", "--state", "ESTABLISHED", "-u", "ASSURED");
        Assert.True(filter.Matches(Flows.Tcp("192.168.0.1", 5000, "10.9.9.9", 443)));
        Assert.False(filter.Matches(Flows.Tcp("192.168.0.1", 5000, "10.9.9.9", 80)));
        Assert.False(filter.Matches(Flows.Tcp("192.168.0.1", 5000, "11.9.9.9", 443)));
        Assert.False(filter.Matches(Flows.Tcp("192.168.0.1", 5000, "10.9.9.9", 443, TcpState.FinWait)));
        Assert.False(filter.Matches(Flows.Udp("192.168.0.1", 5000, "10.9.9.9", 443)));
    }

    [Fact]
    public void Args_RoundTrip_SameFilterOnTheServer()
    {
        var client = new ConntrackFilter();
        foreach ((string name, string value) in (ReadOnlySpan<(string, string)>)[("-p", "tcp"), ("-s", "10.0.0.0/8"), ("--dport", "22"), ("-u", "ASSURED")])
            Assert.Null(client.Add(name, value));
        Assert.Null(client.Validate());
        Assert.Equal(["--proto", "tcp", "--orig-src", "10.0.0.0/8", "--orig-port-dst", "22", "--status", "ASSURED"], client.Args);
        ConntrackFilter server = Parse([.. client.Args]);
        FlowInfo hit = Flows.Tcp("10.1.1.1", 999, "10.2.2.2", 22), miss = Flows.Tcp("10.1.1.1", 999, "10.2.2.2", 23);
        Assert.True(client.Matches(hit) && server.Matches(hit));
        Assert.False(client.Matches(miss) || server.Matches(miss));
    }
}
