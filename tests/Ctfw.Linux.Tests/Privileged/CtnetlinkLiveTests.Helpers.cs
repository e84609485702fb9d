using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Ctfw.Conntrack;
using Ctfw.Lab.Network;
using Ctfw.Linux.Netlink;
using Ctfw.Packets;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// Helpers, expectations and SCTP against the real kernel: an FTP control connection with
/// `CT --helper ftp` whose 227 makes the kernel expect a data connection (`conntrack -L expect` and
/// `conntrack -L` lines compared with ctfw's for the same data, CTA_HELP read from the dump), and
/// SCTP, helper and master entries created over ctnetlink and dumped back.
/// </summary>
public sealed partial class CtnetlinkLiveTests
{
    [Fact]
    public void FtpExpectation_ConntrackToolsLines_SameAsCtfwsForTheSameData_DumpCarriesHelper()
    {
        using var lab = new NetnsLab();
        Tool.RunIn(lab.B, "iptables", "-t", "raw", "-A", "OUTPUT", "-p", "tcp", "--dport", "21", "-j", "CT", "--helper", "ftp");
        (string expectLine, string listLine, CtnetlinkDumpResult dump) = InB(lab, () =>
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 21));
            listener.Listen(1);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Bind(new IPEndPoint(IPAddress.Loopback, 40000));
            client.Connect(new IPEndPoint(IPAddress.Loopback, 21));
            using Socket server = listener.Accept();
            byte[] buf = new byte[256];
            server.Send("220 ready\r\n"u8);
            client.Receive(buf);
            client.Send("PASV\r\n"u8);
            server.Receive(buf);
            server.Send("227 Entering Passive Mode (127,0,0,1,195,80).\r\n"u8);
            client.Receive(buf);
            Thread.Sleep(100);
            string expect = Tool.RunIn(lab.B, "conntrack", "-L", "expect");
            string list = Tool.RunIn(lab.B, "conntrack", "-L", "-p", "tcp", "--dport", "21");
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            return (expect.Trim(), list.Trim(), ct.Dump());
        });
        output.WriteLine(expectLine);
        output.WriteLine(listLine);

        // The same expectation as ctfw holds it: source port any, the 227's port, the master's tuple.
        int seconds = int.Parse(expectLine[..expectLine.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
        ConnTuple master = Tuple("127.0.0.1", "127.0.0.1", IpProto.Tcp, 40000, 21);
        ConnTuple expected = Tuple("127.0.0.1", "127.0.0.1", IpProto.Tcp, 0, 50000);
        Assert.Equal(expectLine, ConntrackListing.FormatExpectation(new ExpectationInfo(expected, master, CtHelper.Ftp, (seconds * 1000L) + 500)));

        KernelConnection control = Assert.Single(dump.Entries, e => e.Original == master);
        Assert.Equal("ftp", control.Helper);
        FlowInfo flow = new(control.Original, control.Reply, control.Status & (CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed), control.TcpState, control.TimeoutSeconds * 1000L)
        {
            Helper = CtHelper.Ftp,
        };
        string ours = ConntrackListing.Format(flow);
        // Timeouts may be a second apart: compare from the state on.
        Assert.Equal(listLine[listLine.IndexOf(" ESTABLISHED ", StringComparison.Ordinal)..], ours[ours.IndexOf(" ESTABLISHED ", StringComparison.Ordinal)..]);
    }

    [Fact]
    public void Create_SctpHelperAndMaster_DumpedBackAsCreated()
    {
        using var lab = new NetnsLab();
        KernelConnection sctp = Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Sctp, 5000, 3868), Replied, 200) with
        {
            SctpState = SctpState.Established,
            SctpVtagOriginal = 0x11223344,
            SctpVtagReply = 0xA1B2C3D4,
        };
        KernelConnection master = Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40000, 21), Replied, 300, TcpState.Established) with { Helper = "ftp" };
        KernelConnection data = Entry(Tuple("10.1.0.2", "10.1.0.1", IpProto.Tcp, 20, 50000), CtStatus.Confirmed, 120, TcpState.SynSent) with { Master = master.Original };

        (CtnetlinkCreateResult created, CtnetlinkDumpResult dump, string listing) = InB(lab, () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            ct.Flush();
            CtnetlinkCreateResult c = ct.Create([sctp, master, data]);
            return (c, ct.Dump(), Tool.RunIn(lab.B, "conntrack", "-L"));
        });
        output.WriteLine(created.Message);
        output.WriteLine(listing);
        Assert.Equal((3, 0), (created.Created, created.Failed));

        KernelConnection s = Assert.Single(dump.Entries, e => e.Original == sctp.Original);
        Assert.Equal((sctp.SctpState, sctp.SctpVtagOriginal, sctp.SctpVtagReply), (s.SctpState, s.SctpVtagOriginal, s.SctpVtagReply));
        Assert.Equal("ftp", Assert.Single(dump.Entries, e => e.Original == master.Original).Helper);
        KernelConnection d = Assert.Single(dump.Entries, e => e.Original == data.Original);
        Assert.Equal(master.Original, d.Master);
        Assert.True((d.Status & CtStatus.Expected) != 0, "the kernel sets EXPECTED for CTA_TUPLE_MASTER");
        Assert.Contains("sport=5000 dport=3868 src=10.1.0.2 dst=10.1.0.1 sport=3868 dport=5000 [ASSURED] mark=0 use=1", listing, StringComparison.Ordinal);
        // use=2: the expected entry holds a reference to its master (ctfw always prints use=1).
        Assert.Contains(" [ASSURED] mark=0 helper=ftp use=2", listing, StringComparison.Ordinal);
        Assert.Contains("sctp     132 ", listing, StringComparison.Ordinal);
        Assert.Contains(" ESTABLISHED src=10.1.0.1 dst=10.1.0.2 sport=5000 dport=3868 ", listing, StringComparison.Ordinal);
    }
}
