using System.Text;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Firewall.Logging;
using Ctfw.Firewall.Shadow;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall.Tests;

/// <summary>
/// The raw table in the pipeline: `CT --helper` decides whether an FTP control connection's
/// announcements make the data connection RELATED (and so admitted by a FORWARD that takes only
/// RELATED,ESTABLISHED besides the control port), a raw DROP drops before conntrack, and a ruleset
/// without raw rules or a reload that adds them behave as the kernel's would.
/// </summary>
public sealed class RawPipelineTests
{
    private const string Filter = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport 69 -m conntrack --ctstate NEW -j ACCEPT
        COMMIT
        """;

    private const string RawHelpers = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
        -A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
        COMMIT

        """;

    private const ushort ClientPort = 40000;

    /// <summary>A TCP segment carrying <paramref name="text"/>, with a correct checksum (the gateway verifies them).</summary>
    private static byte[] Segment(bool fromClient, ushort serverPort, uint seq, uint ack, string text, bool v6 = false)
    {
        byte[] data = Encoding.ASCII.GetBytes(text);
        byte[] packet = Gateway.Tcp(fromClient, ClientPort, serverPort, TcpFlags.Ack | TcpFlags.Psh, seq, ack, payload: data.Length, v6: v6);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(packet, out ParsedPacket p));
        data.CopyTo(packet.AsSpan(p.L3HeaderLength + p.TcpHeaderLength));
        PacketBuilder.RewriteTransportChecksum(packet, p);
        return packet;
    }

    /// <summary>
    /// Handshake to port 21, a login, PASV and the server's 227 naming its own address and port
    /// 50000 (195·256 + 80); every packet must pass.
    /// </summary>
    private static void ControlSession(Gateway gw, bool v6)
    {
        uint c = 1001, s = 5001;
        var packets = new List<byte[]>(Gateway.Handshake(ClientPort, 21, v6));
        void Client(string text)
        {
            packets.Add(Segment(true, 21, c, s, text, v6));
            c += (uint)text.Length;
        }
        void Server(string text)
        {
            packets.Add(Segment(false, 21, s, c, text, v6));
            s += (uint)text.Length;
        }
        Server("220 ctfw test\r\n");
        Client("USER anonymous\r\n");
        Server("331 Please specify the password.\r\n");
        Client("PASS x\r\n");
        Server("230 Login successful.\r\n");
        if (v6)
        {
            Client("EPSV\r\n");
            Server("229 Entering Extended Passive Mode (|||50000|)\r\n");
        }
        else
        {
            Client("PASV\r\n");
            Server("227 Entering Passive Mode (198,51,100,20,195,80).\r\n");
        }
        IReadOnlyList<MemoryQueue.Outcome> o = gw.Forward([.. packets]);
        Assert.All(o, x => Assert.Equal(FirewallVerdict.Accept, x.Verdict));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FtpData_RelatedOnlyWhenRawAssignsFtpToPort21(bool v6)
    {
        using var helped = new Gateway(RawHelpers + Filter);
        ControlSession(helped, v6);
        MemoryQueue.Outcome data = helped.ForwardOne(Gateway.Tcp(true, 40100, 50000, TcpFlags.Syn, 9000, 0, v6: v6));
        Assert.Equal(CtState.Related, data.State);
        Assert.Equal(FirewallVerdict.Accept, data.Verdict);
        Assert.Equal("FORWARD:1", data.Decision.Describe(helped.Pipeline.Config.Rules!));
        Assert.Equal(CtHelper.Ftp, data.Decision.Conntrack.MasterHelper);
        // The server answers on the data connection: ESTABLISHED from then on.
        MemoryQueue.Outcome reply = helped.ForwardOne(Gateway.Tcp(false, 40100, 50000, TcpFlags.Syn | TcpFlags.Ack, 7000, 9001, v6: v6));
        Assert.Equal((CtState.Established, FirewallVerdict.Accept), (reply.State, reply.Verdict));

        using var plain = new Gateway(Filter);
        ControlSession(plain, v6);
        MemoryQueue.Outcome refused = plain.ForwardOne(Gateway.Tcp(true, 40100, 50000, TcpFlags.Syn, 9000, 0, v6: v6));
        Assert.Equal(CtState.New, refused.State);
        Assert.Equal(FirewallVerdict.Drop, refused.Verdict);
        Assert.Equal("FORWARD:policy", refused.Decision.Describe(plain.Pipeline.Config.Rules!));
    }

    [Fact]
    public void ShadowMode_HelperDropsSplitCommand_ComparedWithTheStateBeforeTheDrop()
    {
        // The kernel's FTP helper drops a PORT cut short at the end of the segment at confirm, after
        // the filter table: its mark says ESTABLISHED. ctfw drops it in the tracker (helper-partial);
        // shadow mode compares the state the packet had before the drop, so the two agree.
        var mark = new KernelStateMark(KernelStateMark.DefaultShift);
        var shadow = new ShadowMode(mark, EnforceCtfw: false, new AbLog(new LogQueue(64)));
        using var gw = new Gateway(RawHelpers + Filter, shadow: shadow);
        uint c = 1001, s = 5001;
        var packets = new List<(byte[] Bytes, CtState State, CtDirection Dir)>();
        byte[][] hs = Gateway.Handshake(ClientPort, 21);
        packets.Add((hs[0], CtState.New, CtDirection.Original));
        packets.Add((hs[1], CtState.Established, CtDirection.Reply));
        packets.Add((hs[2], CtState.Established, CtDirection.Original));
        packets.Add((Segment(false, 21, s, c, "220 x\r\n"), CtState.Established, CtDirection.Reply));
        packets.Add((Segment(true, 21, c, s + 7, "USER a\r\n"), CtState.Established, CtDirection.Original));
        packets.Add((Segment(true, 21, c + 8, s + 7, "PORT 198,51,"), CtState.Established, CtDirection.Original));
        foreach ((byte[] bytes, CtState state, CtDirection dir) in packets)
            gw.Queue.Enqueue(bytes, Gateway.ForwardMeta(bytes, mark.Encode(state, dir)));
        var o = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(CtState.Dropped, o[^1].State);
        Assert.Equal(InvalidReason.HelperPartial, o[^1].Decision.Conntrack.Reason);
        // Not enforcing: the rules see the kernel's answer and accept; the kernel's own helper drops it at confirm.
        Assert.Equal(FirewallVerdict.Accept, o[^1].Verdict);
        Assert.False(o[^1].Decision.Disagreed);
        Assert.Equal(packets.Count, gw.Pipeline.Counters.AbCompared);
        Assert.Equal(packets.Count, gw.Pipeline.Counters.AbAgreed);
    }

    [Fact]
    public void FtpOnAnotherPort_NoHelper_DataConnectionIsNew()
    {
        // The raw rule names port 21; a control connection to 2121 gets no helper, as in the kernel.
        string filter = Filter.Replace("--dport 21 ", "--dport 2121 ", StringComparison.Ordinal);
        using var gw = new Gateway(RawHelpers + filter);
        uint c = 1001, s = 5001;
        byte[][] packets =
        [
            .. Gateway.Handshake(ClientPort, 2121),
            Segment(false, 2121, s, c, "220 x\r\n"),
            Segment(true, 2121, c, s + 7, "PASV\r\n"),
            Segment(false, 2121, s + 7, c + 6, "227 Entering Passive Mode (198,51,100,20,195,80).\r\n"),
        ];
        Assert.All(gw.Forward(packets), x => Assert.Equal(FirewallVerdict.Accept, x.Verdict));
        MemoryQueue.Outcome data = gw.ForwardOne(Gateway.Tcp(true, 40100, 50000, TcpFlags.Syn, 9000, 0));
        Assert.Equal((CtState.New, FirewallVerdict.Drop), (data.State, data.Verdict));
    }

    [Fact]
    public void HelperMatch_AdmitsOnlyConnectionsWhoseMasterHasThatHelper()
    {
        string filter = Filter.Replace("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n-A FORWARD -m conntrack --ctstate RELATED -m helper --helper tftp -j ACCEPT",
            StringComparison.Ordinal);
        using var gw = new Gateway(RawHelpers + filter);
        ControlSession(gw, v6: false);
        // RELATED, but its master's helper is ftp: not admitted by `-m helper --helper tftp`.
        MemoryQueue.Outcome data = gw.ForwardOne(Gateway.Tcp(true, 40100, 50000, TcpFlags.Syn, 9000, 0));
        Assert.Equal((CtState.Related, CtHelper.Ftp, FirewallVerdict.Drop), (data.State, data.Decision.Conntrack.MasterHelper, data.Verdict));
    }

    [Fact]
    public void Tftp_ReadRequest_AnswerFromAnotherPortIsRelated()
    {
        using var gw = new Gateway(RawHelpers + Filter);
        byte[] request = Udp(true, 40200, 69, "\0\u0001file\0octet\0");
        MemoryQueue.Outcome rrq = gw.ForwardOne(request);
        Assert.Equal((CtState.New, FirewallVerdict.Accept), (rrq.State, rrq.Verdict));
        MemoryQueue.Outcome answer = gw.ForwardOne(Udp(false, 40200, 33333, "\0\u0003\0\u0001data"));
        Assert.Equal((CtState.Related, CtHelper.Tftp, FirewallVerdict.Accept), (answer.State, answer.Decision.Conntrack.MasterHelper, answer.Verdict));
    }

    /// <summary>A UDP datagram client:cport ⇄ server:sport carrying <paramref name="text"/>.</summary>
    private static byte[] Udp(bool fromClient, ushort clientPort, ushort serverPort, string text)
    {
        byte[] data = Encoding.ASCII.GetBytes(text);
        byte[] packet = Gateway.Udp(fromClient, clientPort, serverPort, payload: data.Length);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(packet, out ParsedPacket p));
        data.CopyTo(packet.AsSpan(p.L3HeaderLength + 8));
        PacketBuilder.RewriteTransportChecksum(packet, p);
        return packet;
    }

    [Fact]
    public void RawDrop_DropsBeforeConntrack_CountedAndNeverTracked()
    {
        const string raw = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i wan0 -p tcp -m tcp --dport 23 -j DROP\nCOMMIT\n";
        using var gw = new Gateway(raw + Filter.Replace("--dport 21 ", "", StringComparison.Ordinal));
        MemoryQueue.Outcome telnet = gw.ForwardOne(Gateway.Tcp(false, 23, 23, TcpFlags.Syn, 1, 0));
        Assert.Equal(FirewallVerdict.Drop, telnet.Verdict);
        Assert.Equal(RuleTable.Raw, telnet.Decision.Table);
        Assert.Equal("raw:PREROUTING:1", telnet.Decision.Describe(gw.Pipeline.Config.Rules!));
        Assert.Equal(0, gw.Engine.Count);
        Assert.Equal(0, gw.Pipeline.Counters.States.Sum());
        Assert.Equal((1L, 1L), (gw.Pipeline.Counters.Dropped, gw.Pipeline.Counters.RawDropped));
        Assert.Equal(1, gw.Pipeline.Config.Rules!.Raw!.GetCounters(0).Packets);
        // From the LAN side the raw rule does not match (-i wan0): tracked and accepted by FORWARD.
        MemoryQueue.Outcome lan = gw.ForwardOne(Gateway.Tcp(true, 40300, 23, TcpFlags.Syn, 1, 0));
        Assert.Equal((CtState.New, FirewallVerdict.Accept, RuleTable.Filter), (lan.State, lan.Verdict, lan.Decision.Table));
        Assert.Equal(1, gw.Engine.Count);
    }

    [Fact]
    public void RawOutput_LocalPacketsMeetOutputNotPrerouting()
    {
        const string raw = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\n-A OUTPUT -p tcp --dport 21 -j CT --helper ftp\nCOMMIT\n";
        using var gw = new Gateway(raw + Filter);
        byte[] syn = Gateway.Tcp(true, 40400, 21, TcpFlags.Syn, 1000, 0);
        gw.Queue.Enqueue(syn, new PacketMeta { Hook = PacketHook.Output, OutInterface = Gateway.Wan });
        MemoryQueue.Outcome local = gw.Queue.Run(gw.Pipeline, gw.Now)[0];
        Assert.Equal((CtState.New, FirewallVerdict.Accept), (local.State, local.Verdict));
        Assert.Equal(1, gw.Pipeline.Config.Rules!.Raw!.GetCounters(1).Packets);
        Assert.Equal(0, gw.Pipeline.Config.Rules!.Raw!.GetCounters(0).Packets);
        Assert.Equal("raw:PREROUTING:1", gw.ForwardOne(Gateway.Tcp(true, 40401, 80, TcpFlags.Syn, 1000, 0)).Decision.Describe(gw.Pipeline.Config.Rules!));
    }

    [Fact]
    public void Reload_AddingTheRawTable_EnablesHelpersForNewConnections()
    {
        using var gw = new Gateway(Filter);
        Assert.Empty(gw.Engine.ListExpectations(gw.Now));
        gw.Pipeline.Reconfigure(Gateway.Config(RawHelpers + Filter));
        ControlSession(gw, v6: false);
        Assert.Single(gw.Engine.ListExpectations(gw.Now));
        MemoryQueue.Outcome data = gw.ForwardOne(Gateway.Tcp(true, 40100, 50000, TcpFlags.Syn, 9000, 0));
        Assert.Equal((CtState.Related, FirewallVerdict.Accept), (data.State, data.Verdict));
    }

    [Fact]
    public void PassThroughRawTable_SameDecisionsAsNone()
    {
        const string empty = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        using var withRaw = new Gateway(empty + Filter);
        using var without = new Gateway(Filter);
        Assert.True(withRaw.Pipeline.Config.Rules!.Raw!.PassThrough);
        byte[][] packets = [.. Gateway.Handshake(40500, 21), Gateway.Tcp(true, 40501, 80, TcpFlags.Syn, 1, 0)];
        Assert.Equal(without.Forward(packets).Select(o => (o.State, o.Verdict)), withRaw.Forward(packets).Select(o => (o.State, o.Verdict)));
        Assert.Equal(0, withRaw.Pipeline.Counters.RawDropped);
    }

    [Fact]
    public void PacketThroughTheRawTable_AllocatesNothing()
    {
        using var gw = new Gateway(RawHelpers + Filter);
        gw.Forward(Gateway.Handshake(ClientPort, 21));
        byte[][] data = new byte[64][];
        for (int i = 0; i < data.Length; i++)
        {
            bool fromClient = i % 2 == 0;
            uint step = (uint)(i / 2 * 100);
            data[i] = Gateway.Tcp(fromClient, ClientPort, 21, TcpFlags.Ack | TcpFlags.Psh, fromClient ? 1001u + step : 5001u + step,
                fromClient ? 5001u + step : 1001u + step + 100, payload: 100);
        }
        var batch = new ForwardBatch(data);
        gw.Pipeline.DecideBatch(ref batch, gw.Now); // warm up (JIT, tiering)
        for (int round = 0; round < 3; round++)
            gw.Pipeline.DecideBatch(ref batch, gw.Now);
        batch.Accepted = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        gw.Pipeline.DecideBatch(ref batch, gw.Now);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(data.Length, batch.Accepted);
        Assert.True(gw.Pipeline.Config.Rules!.Raw!.GetCounters(0).Packets >= 5 * data.Length / 2, "the raw rule saw the client's packets");
    }

    /// <summary>Forwarded packets alternating client (LAN→WAN) and server (WAN→LAN).</summary>
    private struct ForwardBatch(byte[][] packets) : IPacketBatch
    {
        public int Accepted;

        public readonly int Count => packets.Length;

        public readonly ReadOnlySpan<byte> Packet(int index) => packets[index];

        public readonly PacketMeta Meta(int index) => new()
        {
            Hook = PacketHook.Forward,
            InInterface = index % 2 == 0 ? Gateway.Lan : Gateway.Wan,
            OutInterface = index % 2 == 0 ? Gateway.Wan : Gateway.Lan,
            VerifyChecksums = true,
        };

        public void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply)
        {
            if (decision.Verdict == FirewallVerdict.Accept)
                Accepted++;
        }
    }
}
