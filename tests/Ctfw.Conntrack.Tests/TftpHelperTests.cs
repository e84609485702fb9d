using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>With `CT --helper tftp` on the request, the server's answer from another port is RELATED.</summary>
public class TftpHelperTests
{
    private static byte[] Udp(Harness h, bool fromClient, ushort sport, ushort dport, ushort opcode)
    {
        var buf = new byte[256];
        int n = PacketBuilder.Udp(buf, h.V6, fromClient ? h.ClientAddr : h.ServerAddr, fromClient ? h.ServerAddr : h.ClientAddr, sport, dport, 12);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(buf.AsSpan(0, n), out ParsedPacket p));
        buf[p.L3HeaderLength + 8] = (byte)(opcode >> 8);
        buf[p.L3HeaderLength + 9] = (byte)opcode;
        return buf[..n];
    }

    private static readonly PacketContext Helper = new() { Helper = CtHelper.Tftp };

    [Theory]
    [InlineData(false, 1)]
    [InlineData(true, 2)]
    public void Request_AnswerFromOtherServerPort_IsRelated(bool v6, ushort opcode)
    {
        using var h = new Harness(v6: v6);
        h.Engine.EnableHelpers();
        h.Send(Udp(h, true, 40000, 69, opcode), Helper).Is(CtState.New, CtDirection.Original);
        ExpectationInfo e = Assert.Single(h.Engine.ListExpectations(h.Now));
        Assert.Equal(CtHelper.Tftp, e.Helper);
        Assert.Equal(300_000, e.TimeoutMs);
        Classification data = h.Send(Udp(h, false, 50000, 40000, 3), new PacketContext());
        Assert.Equal(CtState.Related, data.State);
        Assert.True((data.Status & CtStatus.Expected) != 0);
        h.Send(Udp(h, true, 40000, 50000, 4), new PacketContext()).Is(CtState.Established, CtDirection.Reply);
        Assert.Empty(h.Engine.ListExpectations(h.Now));
    }

    [Fact]
    public void DataOrAckOpcodes_ExpectNothing()
    {
        using var h = new Harness();
        h.Engine.EnableHelpers();
        h.Send(Udp(h, true, 40000, 69, 3), Helper).Is(CtState.New, CtDirection.Original);
        h.Send(Udp(h, true, 40000, 69, 4), Helper);
        Assert.Empty(h.Engine.ListExpectations(h.Now));
        Assert.Equal(CtState.New, h.Send(Udp(h, false, 50000, 40000, 3), new PacketContext()).State);
    }

    [Fact]
    public void WithoutHelper_AnswerIsNew()
    {
        using var h = new Harness();
        h.Engine.EnableHelpers();
        h.Send(Udp(h, true, 40000, 69, 1), new PacketContext());
        Assert.Equal(CtState.New, h.Send(Udp(h, false, 50000, 40000, 3), new PacketContext()).State);
    }

    [Fact]
    public void TftpHelperOnTcp_IsNotAssigned()
    {
        using var h = new Harness { ServerPort = 69 };
        h.Engine.EnableHelpers();
        h.Send(h.Build(true, TcpFlags.Syn, 1, 0), Helper);
        Assert.Empty(h.Engine.ListExpectations(h.Now));
    }

    [Fact]
    public void DroppedRequest_ExpectationNeverMatches()
    {
        using var h = new Harness();
        h.Engine.EnableHelpers();
        var ctx = new PacketContext { Helper = CtHelper.Tftp, DeferConfirm = true };
        h.Worker.Enter();
        h.Worker.Process(Udp(h, true, 40000, 69, 1), h.Now, ctx, out Classification r);
        h.Worker.Abort(ref r);
        h.Worker.Exit();
        Assert.Equal(CtState.New, h.Send(Udp(h, false, 50000, 40000, 3), new PacketContext()).State);
    }
}
