using System.Text;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// A crafted FTP control session through the tracker with `CT --helper ftp`: the data connection a
/// PORT/EPRT command or a 227/229 reply announces is RELATED (status EXPECTED) with the control
/// connection as master, under the kernel's rules for where in a segment a command is read.
/// </summary>
public partial class FtpHelperTests
{
    /// <summary>Client 10.99.1.2:40000 (or fd99:1::2) talks to the server's port 21.</summary>
    private sealed class FtpSession : IDisposable
    {
        public readonly Harness H;
        private readonly byte[] _buf = new byte[4096];
        public uint ClientSeq = 1000, ServerSeq = 5000;
        public PacketContext Ctx = new() { Helper = CtHelper.Ftp };

        public FtpSession(bool v6 = false, bool helpers = true)
        {
            H = new Harness(v6: v6) { ServerPort = 21 };
            if (helpers)
                H.Engine.EnableHelpers();
        }

        public void Open()
        {
            H.Send(Tcp(H.ClientAddr, H.ClientPort, H.ServerAddr, 21, Syn, ClientSeq - 1, 0), Ctx).Is(CtState.New, CtDirection.Original, TcpState.SynSent);
            H.Send(Tcp(H.ServerAddr, 21, H.ClientAddr, H.ClientPort, Syn | Ack, ServerSeq - 1, ClientSeq), Ctx).Is(CtState.Established, CtDirection.Reply, TcpState.SynRecv);
            H.Send(Tcp(H.ClientAddr, H.ClientPort, H.ServerAddr, 21, Ack, ClientSeq, ServerSeq), Ctx).Is(CtState.Established, CtDirection.Original, TcpState.Established);
            Server("220 ctfw test\r\n").Is(CtState.Established, CtDirection.Reply, TcpState.Established);
            Client("USER anonymous\r\n").Is(CtState.Established, CtDirection.Original, TcpState.Established);
            Server("331 Please specify the password.\r\n");
            Client("PASS x\r\n");
            Server("230 Login successful.\r\n");
        }

        public Classification Client(string text) => Segment(true, text, ClientSeq);

        public Classification Server(string text) => Segment(false, text, ServerSeq);

        /// <summary>A segment at <paramref name="seq"/>; the side's next sequence number moves on past it if it is beyond.</summary>
        public Classification Segment(bool fromClient, string text, uint seq)
        {
            byte[] data = Encoding.ASCII.GetBytes(text);
            Span<byte> pkt = fromClient
                ? Tcp(H.ClientAddr, H.ClientPort, H.ServerAddr, 21, Ack | Psh, seq, ServerSeq, data)
                : Tcp(H.ServerAddr, 21, H.ClientAddr, H.ClientPort, Ack | Psh, seq, ClientSeq, data);
            Classification r = H.Send(pkt, Ctx);
            ref uint next = ref fromClient ? ref ClientSeq : ref ServerSeq;
            if ((int)(seq + (uint)data.Length - next) > 0)
                next = seq + (uint)data.Length;
            return r;
        }

        public Classification DataSyn(bool fromServer, ushort sport, ushort dport) => fromServer
            ? H.Send(Tcp(H.ServerAddr, sport, H.ClientAddr, dport, Syn, 77, 0), new PacketContext())
            : H.Send(Tcp(H.ClientAddr, sport, H.ServerAddr, dport, Syn, 77, 0), new PacketContext());

        /// <summary>The bytes of the next segment of one side, its sequence number moved on (for prebuilt traffic).</summary>
        public byte[] Bytes(bool fromClient, string text)
        {
            byte[] data = Encoding.ASCII.GetBytes(text);
            byte[] pkt = (fromClient
                ? Tcp(H.ClientAddr, H.ClientPort, H.ServerAddr, 21, Ack | Psh, ClientSeq, ServerSeq, data)
                : Tcp(H.ServerAddr, 21, H.ClientAddr, H.ClientPort, Ack | Psh, ServerSeq, ClientSeq, data)).ToArray();
            if (fromClient)
                ClientSeq += (uint)data.Length;
            else
                ServerSeq += (uint)data.Length;
            return pkt;
        }

        public Span<byte> Tcp(IpAddress src, ushort sport, IpAddress dst, ushort dport, TcpFlags flags, uint seq, uint ack, ReadOnlySpan<byte> payload = default)
        {
            int n = PacketBuilder.Tcp(_buf, new TcpSpec
            {
                V6 = H.V6, Src = src, Dst = dst, SrcPort = sport, DstPort = dport,
                Seq = seq, Ack = ack, Flags = flags, Window = 64000, PayloadLength = payload.Length,
            });
            Assert.Equal(InvalidReason.None, PacketParser.Parse(_buf.AsSpan(0, n), out ParsedPacket p));
            payload.CopyTo(_buf.AsSpan(p.L3HeaderLength + p.TcpHeaderLength));
            return _buf.AsSpan(0, n);
        }

        public void Dispose() => H.Dispose();
    }

    private static void Related(Classification r)
    {
        Assert.True(r.State == CtState.Related, $"expected RELATED, got {r.State} ({r.Reason.Name()})");
        Assert.Equal(CtDirection.Original, r.Direction);
        Assert.True((r.Status & CtStatus.Expected) != 0);
    }

    private static void New(Classification r)
    {
        Assert.True(r.State == CtState.New, $"expected NEW, got {r.State} ({r.Reason.Name()})");
        Assert.True((r.Status & CtStatus.Expected) == 0);
    }

    [Fact]
    public void Passive227_DataConnectionFromClient_IsRelatedThenEstablished()
    {
        using var s = new FtpSession();
        s.Open();
        s.Client("PASV\r\n");
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n").Is(CtState.Established, CtDirection.Reply, TcpState.Established);
        Assert.Single(s.H.Engine.ListExpectations(s.H.Now));
        Related(s.DataSyn(fromServer: false, 41000, 50000));
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
        // The answer makes the data connection ESTABLISHED; its status keeps EXPECTED.
        Classification synAck = s.H.Send(s.Tcp(s.H.ServerAddr, 50000, s.H.ClientAddr, 41000, Syn | Ack, 900, 78), new PacketContext());
        synAck.Is(CtState.Established, CtDirection.Reply, TcpState.SynRecv);
        Assert.True((synAck.Status & CtStatus.Expected) != 0);
        // Used up: a second connection to the port is NEW.
        New(s.DataSyn(fromServer: false, 41001, 50000));
    }

    [Fact]
    public void ActivePort_DataConnectionFromServer_IsRelated()
    {
        using var s = new FtpSession();
        s.Open();
        s.Client("PORT 10,99,1,2,4,1\r\n");
        s.Server("200 PORT command successful.\r\n");
        New(s.DataSyn(fromServer: true, 20, 1024));   // another port
        Related(s.DataSyn(fromServer: true, 20, 1025));
    }

    [Fact]
    public void LowerCaseCommand_IsRead()
    {
        using var s = new FtpSession();
        s.Open();
        s.Client("port 10,99,1,2,4,1\r\n");
        Related(s.DataSyn(fromServer: true, 20, 1025));
    }

    [Fact]
    public void WithoutHelperRule_DataConnection_IsNew()
    {
        using var s = new FtpSession();
        s.Ctx = new PacketContext();
        s.Open();
        s.Client("PASV\r\n");
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
        New(s.DataSyn(fromServer: false, 41000, 50000));
    }

    [Fact]
    public void HelpersNotEnabled_ContextHelperIgnored()
    {
        using var s = new FtpSession(helpers: false);
        s.Open();
        s.Client("PASV\r\n");
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        New(s.DataSyn(fromServer: false, 41000, 50000));
    }

    [Fact]
    public void Epsv229_V6_IsRelated()
    {
        using var s = new FtpSession(v6: true);
        s.Open();
        s.Client("EPSV\r\n");
        s.Server("229 Entering Extended Passive Mode (|||50001|)\r\n");
        Related(s.DataSyn(fromServer: false, 41000, 50001));
    }

    [Fact]
    public void Eprt_V6_IsRelated()
    {
        using var s = new FtpSession(v6: true);
        s.Open();
        s.Client("EPRT |2|fd99:1::2|40001|\r\n");
        Related(s.DataSyn(fromServer: true, 20, 40001));
    }

    [Fact]
    public void Eprt_V4_IsRelated_AndV6FamilyOnV4IsPartial()
    {
        using var s = new FtpSession();
        s.Open();
        Classification r = s.Client("EPRT |2|fd99:1::2|40001|\r\n");
        Assert.Equal(CtState.Dropped, r.State);
        Assert.Equal(InvalidReason.HelperPartial, r.Reason);
        s.ClientSeq -= 26; // dropped: the client sends it again, as an IPv4 EPRT this time (same length)
        s.Client("EPRT |1|10.99.1.2|40001|\r\n");
        Related(s.DataSyn(fromServer: true, 20, 40001));
    }

    [Fact]
    public void PortOnV6Connection_IsNotRecorded()
    {
        using var s = new FtpSession(v6: true);
        s.Open();
        s.Client("PORT 10,99,1,2,4,1\r\n").Is(CtState.Established, CtDirection.Original, TcpState.Established);
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
    }

    [Fact]
    public void AddressOtherThanSender_IsNotRecorded()
    {
        using var s = new FtpSession();
        s.Open();
        s.Client("PASV\r\n");
        s.Server("227 Entering Passive Mode (10,99,9,9,195,80).\r\n").Is(CtState.Established, CtDirection.Reply, TcpState.Established);
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
    }

    [Fact]
    public void CommandSplitAcrossSegments_FirstPartDrops_ResentWholeIsRead()
    {
        using var s = new FtpSession();
        s.Open();
        uint at = s.ClientSeq;
        Classification r = s.Segment(true, "PORT 10,99,1,", at);
        Assert.Equal(CtState.Dropped, r.State);
        Assert.Equal(InvalidReason.HelperPartial, r.Reason);
        // The rest alone does not start after a '\n': not read, not dropped.
        s.Segment(true, "2,4,1\r\n", at + 13).Is(CtState.Established, CtDirection.Original, TcpState.Established);
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
        // The retransmission of the whole line starts after the last '\n' before it: read.
        s.Segment(true, "PORT 10,99,1,2,4,1\r\n", at);
        Related(s.DataSyn(fromServer: true, 20, 1025));
    }

    [Fact]
    public void HelperDrop_Partial_KeepsTheStateTheKernelsRulesSee()
    {
        // The kernel's helpers run at confirm, after FORWARD: its rules saw the dropped segment ESTABLISHED (the
        // recorded ftp_split_command and ftp6_eprt show it), so the classification keeps that state next to DROPPED.
        using var s = new FtpSession();
        s.Open();
        Classification r = s.Segment(true, "PO", s.ClientSeq);
        Assert.Equal(CtState.Dropped, r.State);
        Assert.Equal(InvalidReason.HelperPartial, r.Reason);
        Assert.Equal(CtState.Established, r.StateBeforeHelperDrop);
        Assert.Equal(CtDirection.Original, r.Direction);
        Assert.Equal(TcpState.Established, r.TcpState);
        r = s.Segment(false, "229 Entering Extended Passive Mode (|||0|)\r\n", s.ServerSeq);
        Assert.Equal(CtState.Dropped, r.State);
        Assert.Equal(CtState.Established, r.StateBeforeHelperDrop);
        Assert.Equal(CtDirection.Reply, r.Direction);
    }

    [Fact]
    public void Port_AddressOctetAbove255_IsOredIntoTheAddress()
    {
        // try_rfc959 ORs the shifted numbers unchecked: 10,99,1,258 is 10.99.1.2 (0x100 | 0x102), the client itself
        // (recorded live: ftp_foreign_address).
        using var s = new FtpSession();
        s.Open();
        s.Client("PORT 10,99,1,258,4,1\r\n").Is(CtState.Established, CtDirection.Original, TcpState.Established);
        Related(s.DataSyn(fromServer: true, 20, 1025));
    }

    [Fact]
    public void PrefixOfPattern_AloneInSegment_Drops()
    {
        using var s = new FtpSession();
        s.Open();
        Assert.Equal(CtState.Dropped, s.Segment(true, "EP", s.ClientSeq).State);
        Assert.Equal(CtState.Dropped, s.Segment(false, "22", s.ServerSeq).State);
        // A prefix of no pattern passes.
        s.Segment(true, "NO", s.ClientSeq).Is(CtState.Established, CtDirection.Original, TcpState.Established);
    }

    [Fact]
    public void CommandAfterFirstLineOfSegment_IsNotRead()
    {
        using var s = new FtpSession();
        s.Open();
        s.Client("NOOP\r\nPORT 10,99,1,2,4,1\r\n");
        New(s.DataSyn(fromServer: true, 20, 1025));
    }

    [Fact]
    public void FirstSegmentOfADirection_IsNotRead()
    {
        using var s = new FtpSession();
        s.H.Send(s.Tcp(s.H.ClientAddr, s.H.ClientPort, s.H.ServerAddr, 21, Syn, s.ClientSeq - 1, 0), s.Ctx);
        s.H.Send(s.Tcp(s.H.ServerAddr, 21, s.H.ClientAddr, s.H.ClientPort, Syn | Ack, s.ServerSeq - 1, s.ClientSeq), s.Ctx);
        s.H.Send(s.Tcp(s.H.ClientAddr, s.H.ClientPort, s.H.ServerAddr, 21, Ack, s.ClientSeq, s.ServerSeq), s.Ctx);
        s.Client("PORT 10,99,1,2,4,1\r\n");
        New(s.DataSyn(fromServer: true, 20, 1025));
        s.Client("PORT 10,99,1,2,4,2\r\n");
        Related(s.DataSyn(fromServer: true, 20, 1026));
    }

    [Fact]
    public void PortWithoutCarriageReturn_IsPartial()
    {
        using var s = new FtpSession();
        s.Open();
        Classification r = s.Client("PORT 10,99,1,2,4,1\n");
        Assert.Equal(CtState.Dropped, r.State);
        Assert.Equal(InvalidReason.HelperPartial, r.Reason);
    }

    [Fact]
    public void MaxExpectedOne_NewerReplacesOlder()
    {
        using var s = new FtpSession();
        s.Open();
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        s.Server("227 Entering Passive Mode (10,99,2,2,195,81).\r\n");
        Assert.Single(s.H.Engine.ListExpectations(s.H.Now));
        New(s.DataSyn(fromServer: false, 41000, 50000));
        Related(s.DataSyn(fromServer: false, 41001, 50001));
    }

    [Fact]
    public void Expectation_TimesOutAfter300Seconds()
    {
        using var s = new FtpSession();
        s.Open();
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        ExpectationInfo e = Assert.Single(s.H.Engine.ListExpectations(s.H.Now));
        Assert.Equal(300_000, e.TimeoutMs);
        Assert.Equal(CtHelper.Ftp, e.Helper);
        Assert.Equal(0, e.Tuple.SrcId);
        Assert.Equal(50000, e.Tuple.DstId);
        Assert.Equal(s.H.ClientAddr, e.Tuple.Src);
        Assert.Equal(21, e.Master.DstId);
        s.H.Sleep(300);
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
        New(s.DataSyn(fromServer: false, 41000, 50000));
    }

    [Fact]
    public void Expectation_DiesWithItsMaster()
    {
        using var s = new FtpSession();
        s.Open();
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        s.H.Send(s.Tcp(s.H.ClientAddr, s.H.ClientPort, s.H.ServerAddr, 21, Rst, s.ClientSeq, 0), s.Ctx);
        s.H.Sleep(11); // CLOSE lasts 10 s
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
        New(s.DataSyn(fromServer: false, 41000, 50000));
    }

    [Fact]
    public void ExpectationFromOtherSource_DoesNotMatch()
    {
        using var s = new FtpSession();
        s.Open();
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        // From the server to the announced port: the expectation is for the client's connection.
        New(s.DataSyn(fromServer: true, 41000, 50000));
        Related(s.DataSyn(fromServer: false, 41000, 50000));
    }

    [Fact]
    public void SameExpectationFromAnotherMaster_IsAClash_AndDrops()
    {
        using var s = new FtpSession();
        s.Open();
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n").Is(CtState.Established, CtDirection.Reply, TcpState.Established);
        // A second control connection from the same client announces the same port.
        s.H.ClientPort = 40001;
        s.ClientSeq = 1000;
        s.ServerSeq = 5000;
        s.Open();
        Classification r = s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        Assert.Equal(CtState.Dropped, r.State);
        Assert.Equal(InvalidReason.HelperExpectFailed, r.Reason);
        ExpectationInfo e = Assert.Single(s.H.Engine.ListExpectations(s.H.Now));
        Assert.Equal(40000, e.Master.SrcId);
    }

    [Fact]
    public void HelperPath_AllocatesNothing()
    {
        using var s = new FtpSession();
        s.Open();
        const int Rounds = 200;
        var packets = new byte[(2 * Rounds) + 2][];
        for (int i = 0; i <= Rounds; i++)
        {
            ushort port = (ushort)(50000 + i);
            packets[2 * i] = s.Bytes(true, "PASV\r\n");
            packets[(2 * i) + 1] = s.Bytes(false, $"227 Entering Passive Mode (10,99,2,2,{port >> 8},{port & 0xFF}).\r\n");
        }
        byte[] dataSyn = s.Tcp(s.H.ClientAddr, 41000, s.H.ServerAddr, 50000, Syn, 77, 0).ToArray();
        // Warm up every path once: a command, a reply, an expectation used.
        s.H.Send(packets[0], s.Ctx);
        s.H.Send(packets[1], s.Ctx);
        Related(s.H.Send(dataSyn, new PacketContext()));

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 2; i < packets.Length; i++)
            s.H.Send(packets[i], s.Ctx);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Related(s.DataSyn(fromServer: false, 41001, 50000 + Rounds));
    }
}
