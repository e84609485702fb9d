using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Bench.Fixtures;

/// <summary>
/// Deterministic, distinct IPv4 TCP flows: client 10.0.0.0/8 + i (so up to 16 M flows are unique
/// by source address alone), 16 servers at 192.168.0.1–16 port 443. Benchmarks that need many
/// flows derive everything from the flow number, so no per-flow objects are kept around.
/// </summary>
internal static class SyntheticFlows
{
    public const ushort ServerPort = 443;

    public static IpAddress Client(int flow) => IpAddress.FromV4(0x0A00_0000u + (uint)flow);

    public static IpAddress Server(int flow) => IpAddress.FromV4(0xC0A8_0001u + (uint)(flow & 15));

    public static ushort ClientPort(int flow) => (ushort)(32768 + (flow & 0x3FFF));

    /// <summary>The ORIGINAL (client → server) tuple, as ConntrackWorker builds it.</summary>
    public static ConnTuple Tuple(int flow)
    {
        ConnTuple t = default;
        t.Src = Client(flow);
        t.Dst = Server(flow);
        t.SrcId = ClientPort(flow);
        t.DstId = ServerPort;
        t.Protocol = IpProto.Tcp;
        t.IpVersion = 4;
        return t;
    }

    /// <summary>Fisher–Yates permutation of 0..n-1 from a seeded generator (reproducible runs).</summary>
    public static int[] Permutation(int n, Random rng)
    {
        int[] p = new int[n];
        for (int i = 0; i < n; i++)
            p[i] = i;
        rng.Shuffle(p);
        return p;
    }
}
