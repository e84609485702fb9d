using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// SCTP tracking (nf_conntrack_proto_sctp.c) beyond what the kernel recordings show packet by packet:
/// timeouts per state and their sysctls, the INIT retransmit that does not renew, listings as
/// conntrack-tools prints them, the state file, early drop at a full table, and 0 B per packet.
/// </summary>
public class SctpTrackerTests
{
    private const byte Init = 1, InitAck = 2, Data = 0, Sack = 3, CookieEcho = 10, CookieAck = 11, Abort = 6, Shutdown = 7, ShutdownAck = 8;
    private const uint ClientTag = 0x11111111, ServerTag = 0x22222222;

    private static byte[] Packet(bool fromClient, ushort clientPort, uint vtag, byte type, uint initTag = 0, bool v6 = false)
    {
        Span<byte> value = stackalloc byte[16];
        value.Clear();
        int n = 0;
        if (type is Init or InitAck)
        {
            BinaryPrimitives.WriteUInt32BigEndian(value, initTag);
            BinaryPrimitives.WriteUInt32BigEndian(value[4..], 65536);
            n = 16;
        }
        else if (type == Data)
        {
            n = 16;
        }
        else if (type == Sack)
        {
            n = 12;
        }
        else if (type == CookieEcho)
        {
            n = 8;
        }
        Span<byte> chunk = stackalloc byte[32];
        int c = PacketBuilder.SctpChunk(chunk, type, type == Data ? (byte)3 : (byte)0, value[..n]);
        var buf = new byte[128];
        IpAddress client = v6 ? Harness.Client6 : Harness.Client4, server = v6 ? Harness.Server6 : Harness.Server4;
        int len = fromClient
            ? PacketBuilder.Sctp(buf, v6, client, server, clientPort, 3868, vtag, chunk[..c])
            : PacketBuilder.Sctp(buf, v6, server, client, 3868, clientPort, vtag, chunk[..c]);
        return buf[..len];
    }

    /// <summary>The four packets of a handshake on <paramref name="port"/>.</summary>
    private static byte[][] Handshake(ushort port) =>
    [
        Packet(true, port, 0, Init, ClientTag),
        Packet(false, port, ClientTag, InitAck, ServerTag),
        Packet(true, port, ServerTag, CookieEcho),
        Packet(false, port, ClientTag, CookieAck),
    ];

    private static FlowInfo Only(Harness h) => Assert.Single(h.Engine.Snapshot(h.Now));

    [Fact]
    public void Handshake_EachState_HasItsDefaultTimeout()
    {
        using var h = new Harness();
        int[] expected = [10, 3, 3, 210];
        SctpState[] states = [SctpState.Closed, SctpState.CookieWait, SctpState.CookieEchoed, SctpState.Established];
        byte[][] packets = Handshake(40000);
        for (int i = 0; i < packets.Length; i++)
        {
            Classification r = h.Send(packets[i]);
            Assert.Equal(states[i], r.SctpState);
            FlowInfo f = Only(h);
            Assert.Equal(states[i], f.SctpState);
            Assert.Equal(expected[i] * 1000L, f.TimeoutMs);
        }
        Assert.True((Only(h).Status & CtStatus.Assured) != 0, "ESTABLISHED sets ASSURED");
    }

    [Fact]
    public void Sysctls_SctpTimeouts_AreUsedAndReadBack()
    {
        ConntrackSettings s = Harness.With("nf_conntrack_sctp_timeout_closed=5", "nf_conntrack_sctp_timeout_established=77",
            "nf_conntrack_sctp_timeout_heartbeat_sent=9");
        Assert.Equal(5, s.Get("nf_conntrack_sctp_timeout_closed"));
        Assert.Equal(9, s.Get("net.netfilter.nf_conntrack_sctp_timeout_heartbeat_sent"));
        Assert.Null(s.Set("nf_conntrack_sctp_timeout_heartbeat_acked", "210")); // older kernels' knob: accepted, ignored
        Assert.Contains("nf_conntrack_sctp_timeout_shutdown_ack_sent=3", s.Dump());

        using var h = new Harness(s);
        byte[][] packets = Handshake(40001);
        h.Send(packets[0]);
        Assert.Equal(5000L, Only(h).TimeoutMs);
        h.Sleep(5.5);
        Assert.Empty(h.Engine.Snapshot(h.Now));
        foreach (byte[] p in packets)
            h.Send(p);
        Assert.Equal(77_000L, Only(h).TimeoutMs);
    }

    [Fact]
    public void InitRetransmit_InClosed_AcceptedWithoutRenewingTheTimeout()
    {
        using var h = new Harness();
        byte[] init = Packet(true, 40002, 0, Init, ClientTag);
        Assert.Equal(CtState.New, h.Send(init).State);
        h.Sleep(4);
        Classification again = h.Send(init);
        Assert.Equal(CtState.New, again.State);
        Assert.True(again.Ignored);
        Assert.Equal(6000L, Only(h).TimeoutMs);
    }

    [Fact]
    public void Data_WrongVtag_InvalidAndEntryUnchanged()
    {
        using var h = new Harness();
        foreach (byte[] p in Handshake(40003))
            h.Send(p);
        long before = Only(h).TimeoutMs;
        h.Sleep(1);
        Classification r = h.Send(Packet(true, 40003, 0xBAD, Data));
        Assert.Equal(CtState.Invalid, r.State);
        Assert.Equal(InvalidReason.SctpVtagMismatch, r.Reason);
        Assert.Equal(SctpState.Established, r.SctpState);
        Assert.Equal(before - 1000, Only(h).TimeoutMs);
    }

    [Fact]
    public void BadCrc_InvalidBeforeTracking_ChecksumOffAccepted()
    {
        byte[] init = Packet(true, 40004, 0, Init, ClientTag);
        init[^1] ^= 0x40; // a byte of the INIT (inside the CRC's coverage)
        using (var h = new Harness())
            Assert.Equal(InvalidReason.SctpBadChecksum, h.Send(init).Reason);
        using (var h = new Harness(Harness.With("nf_conntrack_checksum=0")))
            Assert.Equal(CtState.New, h.Send(init).State);
    }

    [Fact]
    public void Listing_Sctp_PrintsStateAsConntrackTools()
    {
        using var h = new Harness();
        h.Send(Packet(true, 40001, 0, Init, ClientTag));
        // The kernel's own line for this packet (tests/data/kernel/sctp_association_lifecycle.diag.tsv #1),
        // with ctfw's timeout (the kernel's had run for a moment: 9).
        Assert.Equal(
            "sctp     132 10 CLOSED src=10.99.1.2 dst=10.99.2.2 sport=40001 dport=3868 [UNREPLIED] src=10.99.2.2 dst=10.99.1.2 sport=3868 dport=40001 mark=0 use=1",
            ConntrackListing.Format(Only(h)));
    }

    [Fact]
    public void StateFile_SctpEntry_KeepsStateAndVtags()
    {
        using var a = new Harness();
        foreach (byte[] p in Handshake(40005))
            a.Send(p);
        var ms = new MemoryStream();
        a.Engine.WriteState(ms, a.Now, 1_700_000_000_000);

        using var b = new Harness();
        Assert.True(b.Engine.RestoreState(new MemoryStream(ms.ToArray()), b.Now, 1_700_000_000_000, out StateRestoreResult result), result.Message);
        Assert.Equal(1, result.Restored);
        Assert.Equal(SctpState.Established, Only(b).SctpState);
        Assert.Equal(CtState.Established, b.Send(Packet(true, 40005, ServerTag, Data)).State);
        Assert.Equal(CtState.Invalid, b.Send(Packet(true, 40005, ClientTag, Data)).State);
    }

    /// <summary>
    /// Fills a table of nf_conntrack_max = <paramref name="max"/> with ASSURED associations, one fifth each
    /// ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECD, SHUTDOWN_ACK_SENT and CLOSED (after ABORT).
    /// </summary>
    private static Harness FullOfAssociations(int max)
    {
        var h = new Harness(Harness.With($"nf_conntrack_max={max}"));
        for (int i = 0; i < max; i++)
        {
            ushort port = (ushort)(20000 + i);
            foreach (byte[] p in Handshake(port))
                h.Send(p);
            switch (i % 5)
            {
                case 1:
                    h.Send(Packet(true, port, ServerTag, Shutdown));
                    break;
                case 2:
                    h.Send(Packet(false, port, ClientTag, Shutdown));
                    break;
                case 3:
                    h.Send(Packet(true, port, ServerTag, Shutdown));
                    h.Send(Packet(false, port, ClientTag, ShutdownAck));
                    break;
                case 4:
                    h.Send(Packet(true, port, ServerTag, Abort));
                    break;
            }
        }
        List<FlowInfo> flows = h.Engine.Snapshot(h.Now);
        Assert.Equal(max, flows.Count);
        Assert.All(flows, f => Assert.True((f.Status & CtStatus.Assured) != 0));
        return h;
    }

    private static int InState(Harness h, SctpState s) => h.Engine.Snapshot(h.Now).Count(f => f.SctpState == s);

    [Fact]
    public void TableFull_AssuredAssociationsShuttingDown_HousekeeperEarlyDropsOnlyThose()
    {
        // 100 entries, all ASSURED: the packet path's early drop finds nothing and refuses the new
        // flow; that puts the housekeeper's next pass (run by Send) in early-drop mode, which kills
        // what sctp_can_early_drop allows until the table is below 95 % (100, 99, …, 95: six kills).
        using Harness h = FullOfAssociations(100);
        byte[] init = Packet(true, 30000, 0, Init, ClientTag);
        Classification refused = h.Send(init);
        Assert.Equal(CtState.Dropped, refused.State);
        Assert.Equal(InvalidReason.TableFull, refused.Reason);

        Assert.Equal(6, h.Engine.GcEarlyDrops);
        Assert.Equal(0, h.Engine.EarlyDrops);
        Assert.Equal(94, h.Engine.Count);
        Assert.Equal(20, InState(h, SctpState.Established));
        Assert.Equal(20, InState(h, SctpState.Closed)); // ASSURED and CLOSED (aborted): not droppable
        Assert.Equal(60 - 6, InState(h, SctpState.ShutdownSent) + InState(h, SctpState.ShutdownRecd) + InState(h, SctpState.ShutdownAckSent));

        Assert.Equal(CtState.New, h.Send(init).State);
        Assert.Equal(6, h.Engine.GcEarlyDrops); // room again: no new pass
    }

    [Fact]
    public void TableFull_MaxBelow100_NoHousekeeperEarlyDrop()
    {
        // The kernel's threshold is nf_conntrack_max / 100 * 95 in integers: 0 below 100, and 0 means off.
        using Harness h = FullOfAssociations(60);
        Assert.Equal(CtState.Dropped, h.Send(Packet(true, 30000, 0, Init, ClientTag)).State);
        Assert.Equal(0, h.Engine.GcEarlyDrops);
        Assert.Equal(60, h.Engine.Count);
    }

    [Theory]
    [InlineData(SctpState.None, false)]
    [InlineData(SctpState.Closed, false)]
    [InlineData(SctpState.CookieWait, false)]
    [InlineData(SctpState.CookieEchoed, false)]
    [InlineData(SctpState.Established, false)]
    [InlineData(SctpState.ShutdownSent, true)]
    [InlineData(SctpState.ShutdownRecd, true)]
    [InlineData(SctpState.ShutdownAckSent, true)]
    [InlineData(SctpState.HeartbeatSent, false)]
    public void CanGcEarlyDrop_Sctp_AssuredOnlyWhenShuttingDown_UnassuredAlways(SctpState state, bool assuredDroppable)
    {
        var e = new ConnEntry { Orig = new ConnTuple { Protocol = IpProto.Sctp } };
        e.Sctp.State = state;
        Assert.Equal(assuredDroppable, SctpTracker.CanEarlyDrop(state));
        Assert.Equal(assuredDroppable, ConnTable.CanGcEarlyDrop(ref e, (uint)(CtStatus.Confirmed | CtStatus.Assured)));
        Assert.True(ConnTable.CanGcEarlyDrop(ref e, (uint)CtStatus.Confirmed));
    }

    private static List<byte[]> Associations(ushort firstPort, int count)
    {
        var packets = new List<byte[]>();
        for (int i = 0; i < count; i++)
        {
            ushort port = (ushort)(firstPort + i);
            packets.AddRange(Handshake(port));
            packets.Add(Packet(true, port, ServerTag, Data));
            packets.Add(Packet(false, port, ClientTag, Sack));
            packets.Add(Packet(true, port, 0xBAD, Data)); // INVALID
            packets.Add(Packet(true, port, ServerTag, Abort));
        }
        return packets;
    }

    [Fact]
    public void Associations_SteadyState_AllocateNothing()
    {
        const int Count = 500;
        List<byte[]> warm = Associations(20000, Count), measured = Associations(30000, Count);
        using var h = new Harness();
        foreach (byte[] p in warm)
            h.Send(p);
        long before = GC.GetAllocatedBytesForCurrentThread();
        foreach (byte[] p in measured)
            h.Send(p);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(2 * Count, h.Engine.Snapshot(h.Now).Count(f => f.SctpState == SctpState.Closed));
    }
}
