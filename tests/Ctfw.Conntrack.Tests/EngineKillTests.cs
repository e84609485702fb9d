using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

public sealed class EngineKillTests
{
    [Fact]
    public void Kill_Matching_RemovesOnlyThoseAndTheirNextPacketFindsNoEntry()
    {
        using var h = new Harness();
        foreach (ushort port in (ushort[])[80, 22])
        {
            h.ServerPort = port;
            h.C(TcpFlags.Syn, 1000, 0);
            h.S(TcpFlags.Syn | TcpFlags.Ack, 5000, 1001);
            h.C(TcpFlags.Ack, 1001, 5001);
        }
        Assert.Equal(2, h.Engine.Count);
        List<FlowInfo> killed = h.Engine.Kill(h.Now, f => f.Original.DstId == 22);
        Assert.Single(killed);
        Assert.Equal(TcpState.Established, killed[0].TcpState);
        h.Engine.Maintain(h.Now);
        Assert.Equal(1, h.Engine.Count);
        Assert.Empty(h.Engine.Kill(h.Now, f => f.Original.DstId == 22));
        // The port-80 flow still classifies as ESTABLISHED.
        h.ServerPort = 80;
        Assert.Equal(CtState.Established, h.C(TcpFlags.Ack, 1001, 5001).State);
    }
}
