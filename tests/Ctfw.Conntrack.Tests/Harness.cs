using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>A client and a server talking through one tracker, with a test-controlled clock.</summary>
internal sealed class Harness : IDisposable
{
    public static readonly IpAddress Client4 = IpAddress.FromV4(0x0A630102);  // 10.99.1.2
    public static readonly IpAddress Server4 = IpAddress.FromV4(0x0A630202);  // 10.99.2.2
    public static readonly IpAddress Client6 = IpAddress.FromV6(Convert.FromHexString("fd990001000000000000000000000002"));
    public static readonly IpAddress Server6 = IpAddress.FromV6(Convert.FromHexString("fd990002000000000000000000000002"));

    private readonly byte[] _buf = new byte[2048];
    public readonly ConntrackEngine Engine;
    public readonly ConntrackWorker Worker;
    public long Now = 1_000_000;
    public bool V6;
    public ushort ClientPort = 40000;
    public ushort ServerPort = 80;

    public Harness(ConntrackSettings? settings = null, bool v6 = false, RescueOptions? rescue = null, OffloadPolicy? offload = null)
    {
        Engine = new ConntrackEngine(settings ?? new ConntrackSettings(), Now, hashSeed: 42, rescue: rescue);
        if (offload != null)
            Engine.EnableOffload(offload);
        Worker = Engine.CreateWorker();
        V6 = v6;
    }

    public static ConntrackSettings With(params string[] assignments)
    {
        var s = new ConntrackSettings();
        foreach (string a in assignments)
            Assert.Null(s.SetAssignment(a));
        return s;
    }

    public IpAddress ClientAddr => V6 ? Client6 : Client4;
    public IpAddress ServerAddr => V6 ? Server6 : Server4;

    public void Sleep(double seconds) => Now += (long)(seconds * 1000);

    public Classification Send(ReadOnlySpan<byte> packet, bool verifyChecksums = true)
    {
        Worker.Enter();
        Worker.Process(packet, Now, new PacketContext { VerifyChecksums = verifyChecksums }, out Classification r);
        Worker.Exit();
        Engine.Maintain(Now);
        return r;
    }

    public Span<byte> Build(bool fromClient, TcpFlags flags, uint seq, uint ack, ushort win = 64240, int len = 0,
        sbyte wscale = -1, bool sackPerm = false, ReadOnlySpan<uint> sack = default)
    {
        var spec = new TcpSpec
        {
            V6 = V6,
            Src = fromClient ? ClientAddr : ServerAddr,
            Dst = fromClient ? ServerAddr : ClientAddr,
            SrcPort = fromClient ? ClientPort : ServerPort,
            DstPort = fromClient ? ServerPort : ClientPort,
            Seq = seq,
            Ack = ack,
            Flags = flags,
            Window = win,
            PayloadLength = len,
            WindowScale = wscale,
            SackPermitted = sackPerm,
        };
        int n = PacketBuilder.Tcp(_buf, spec, sack);
        return _buf.AsSpan(0, n);
    }

    public Classification C(TcpFlags flags, uint seq, uint ack, ushort win = 64240, int len = 0, sbyte wscale = -1, bool sackPerm = false, ReadOnlySpan<uint> sack = default)
        => Send(Build(true, flags, seq, ack, win, len, wscale, sackPerm, sack));

    public Classification S(TcpFlags flags, uint seq, uint ack, ushort win = 65160, int len = 0, sbyte wscale = -1, bool sackPerm = false, ReadOnlySpan<uint> sack = default)
        => Send(Build(false, flags, seq, ack, win, len, wscale, sackPerm, sack));

    public Classification Udp(bool fromClient, int len = 10)
    {
        int n = PacketBuilder.Udp(_buf, V6, fromClient ? ClientAddr : ServerAddr, fromClient ? ServerAddr : ClientAddr,
            fromClient ? ClientPort : ServerPort, fromClient ? ServerPort : ClientPort, len);
        return Send(_buf.AsSpan(0, n));
    }

    public Classification Icmp(bool fromClient, byte type, byte code = 0, ushort id = 7, ushort seq = 1)
    {
        IpAddress src = fromClient ? ClientAddr : ServerAddr, dst = fromClient ? ServerAddr : ClientAddr;
        int n = V6 ? PacketBuilder.Icmpv6(_buf, src, dst, type, code, id, seq) : PacketBuilder.Icmp(_buf, src, dst, type, code, id, seq);
        return Send(_buf.AsSpan(0, n));
    }

    /// <summary>An ICMP error sent by <paramref name="fromClient"/>'s side about <paramref name="embedded"/>.</summary>
    public Classification IcmpError(bool fromClient, byte type, byte code, ReadOnlySpan<byte> embedded, IpAddress? dstOverride = null)
    {
        byte[] copy = embedded.ToArray();
        IpAddress src = fromClient ? ClientAddr : ServerAddr, dst = dstOverride ?? (fromClient ? ServerAddr : ClientAddr);
        int n = PacketBuilder.IcmpError(_buf, V6, src, dst, type, code, copy);
        return Send(_buf.AsSpan(0, n));
    }

    public FlowInfo? Flow()
    {
        ConnTuple t = default;
        t.Src = ClientAddr;
        t.Dst = ServerAddr;
        t.SrcId = ClientPort;
        t.DstId = ServerPort;
        t.Protocol = IpProto.Tcp;
        t.IpVersion = (byte)(V6 ? 6 : 4);
        return Engine.TryGetFlow(t, Now, out FlowInfo f) ? f : null;
    }

    public void Dispose() => Worker.Dispose();

    // ---- Helpers for the UDP/ICMP/generic/table tests (added; the members above are unchanged) ----

    /// <summary>Advances the test clock by whole milliseconds (no floating-point rounding).</summary>
    public void SleepMs(long ms) => Now += ms;

    /// <summary>Classifies <paramref name="packet"/> with an explicit context (zone, deferred confirm), then runs housekeeping.</summary>
    public Classification Send(ReadOnlySpan<byte> packet, in PacketContext ctx)
    {
        Worker.Enter();
        Worker.Process(packet, Now, ctx, out Classification r);
        Worker.Exit();
        Engine.Maintain(Now);
        return r;
    }

    /// <summary>A copy of the UDP datagram <see cref="Udp"/> would send, for tests that edit bytes.</summary>
    public byte[] UdpBytes(bool fromClient, int len = 10)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.Udp(buf, V6, fromClient ? ClientAddr : ServerAddr, fromClient ? ServerAddr : ClientAddr,
            fromClient ? ClientPort : ServerPort, fromClient ? ServerPort : ClientPort, len);
        return buf.AsSpan(0, n).ToArray();
    }

    /// <summary>A copy of the TCP segment <see cref="C"/>/<see cref="S"/> would send, e.g. to quote in an ICMP error.</summary>
    public byte[] TcpBytes(bool fromClient, TcpFlags flags, uint seq, uint ack) => Build(fromClient, flags, seq, ack).ToArray();

    /// <summary>A packet of any protocol number between client and server (no L4 header of its own).</summary>
    public Classification Generic(bool fromClient, byte protocol, int len = 16)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.Generic(buf, V6, fromClient ? ClientAddr : ServerAddr, fromClient ? ServerAddr : ClientAddr, protocol, len);
        return Send(buf.AsSpan(0, n));
    }

    /// <summary>The client→server tuple of <paramref name="protocol"/> with the given L4 ids.</summary>
    public ConnTuple Tuple(byte protocol, ushort srcId, ushort dstId)
    {
        ConnTuple t = default;
        t.Src = ClientAddr;
        t.Dst = ServerAddr;
        t.SrcId = srcId;
        t.DstId = dstId;
        t.Protocol = protocol;
        t.IpVersion = (byte)(V6 ? 6 : 4);
        return t;
    }

    /// <summary>The live entry of <paramref name="t"/> (either direction), or null.</summary>
    public FlowInfo? Flow(in ConnTuple t) => Engine.TryGetFlow(t, Now, out FlowInfo f) ? f : null;

    /// <summary>The live entry of the client→server UDP flow on <see cref="ClientPort"/>/<see cref="ServerPort"/>.</summary>
    public FlowInfo? UdpFlow() => Flow(Tuple(IpProto.Udp, ClientPort, ServerPort));
}

internal static class Assertions
{
    public static void Is(this Classification r, CtState state, CtDirection dir, TcpState tcp = TcpState.None)
    {
        Assert.True(state == r.State, $"ctstate: expected {state}, got {r.State} ({r.Reason.Name()})");
        Assert.Equal(dir, r.Direction);
        if (tcp != TcpState.None || state != CtState.Invalid)
            Assert.Equal(tcp, r.TcpState);
    }

    public static void IsInvalid(this Classification r, InvalidReason reason)
    {
        Assert.Equal(CtState.Invalid, r.State);
        Assert.Equal(reason, r.Reason);
    }
}
