using System.Globalization;
using Ctfw.Capture;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests;

/// <summary>
/// The recordings also hold the kernel's own `conntrack -L` line for each packet's flow right after
/// the packet (`*.diag.tsv`). ctfw's entry for the same flow, formatted by <see cref="ConntrackListing"/>,
/// must be the same line: tuples, TCP state, [UNREPLIED]/[ASSURED] and the timeout (the kernel's
/// listing ran up to a couple of seconds after the packet, so its timeout may be that much lower).
/// </summary>
public class KernelListingTests
{
    [Theory]
    [MemberData(nameof(KernelRecordingReplayTests.Recordings), MemberType = typeof(KernelRecordingReplayTests))]
    public void Listing_AfterEachPacket_MatchesKernelConntrackList(string name)
    {
        string dir = KernelRecordingReplayTests.DataDirectory;
        string diagPath = Path.Combine(dir, name + ".diag.tsv");
        Assert.True(File.Exists(diagPath), $"{diagPath} missing");
        string[] diag = File.ReadAllLines(diagPath).Where(l => l.Length > 0 && l[0] != '#').ToArray();
        var settings = new ConntrackSettings();
        using (var r = new StreamReader(Path.Combine(dir, name + ".sysctl")))
            Assert.Null(settings.Load(r, name + ".sysctl"));

        ConntrackEngine? engine = null;
        ConntrackWorker? worker = null;
        var diffs = new List<string>();
        int i = 0;
        using (var reader = CaptureReader.Open(Path.Combine(dir, name + ".pcap")))
        {
            while (reader.TryRead(out CaptureRecord rec))
            {
                long now = rec.TimestampNanoseconds / 1_000_000;
                engine ??= new ConntrackEngine(settings, now);
                worker ??= engine.CreateWorker();
                Assert.True(LinkLayer.TryGetNetworkPacket(rec.LinkType, rec.Frame, out ReadOnlySpan<byte> ip, out _));
                worker.Enter();
                worker.Process(ip, now, PacketContext.Forwarded, out _);
                worker.Exit();
                engine.Maintain(now);
                string kernel = diag[i].Split('\t')[2];
                string ours = "-";
                if (PacketParser.Parse(ip, out ParsedPacket p) == InvalidReason.None && engine.TryGetFlow(TupleOf(p), now, out FlowInfo f))
                    ours = ConntrackListing.Format(f);
                if (!SameLine(kernel, ours))
                    diffs.Add($"#{i + 1}\n  kernel: {kernel}\n  ctfw:   {ours}");
                i++;
            }
        }
        worker?.Dispose();
        Assert.Equal(diag.Length, i);
        Assert.True(diffs.Count == 0, $"{name}: {diffs.Count} listing(s) differ:\n" + string.Join('\n', diffs));
    }

    /// <summary>The packet's flow; for an ICMP error, the flow of the packet it quotes (as the recorder chose).</summary>
    private static ConnTuple TupleOf(in ParsedPacket p) => p.Inner.Present ? ConnTuple.FromInner(p) : ConnTuple.From(p);

    /// <summary>Equal but for the timeout field, where the kernel's may be up to 2 s lower.</summary>
    private static bool SameLine(string kernel, string ours)
    {
        if (kernel == "-" || ours == "-")
            return kernel == ours;
        string[] k = kernel.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string[] o = ours.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (k.Length != o.Length)
            return false;
        for (int j = 0; j < k.Length; j++)
        {
            if (j == 2)
            {
                long kt = long.Parse(k[j], CultureInfo.InvariantCulture), ot = long.Parse(o[j], CultureInfo.InvariantCulture);
                if (ot - kt is < 0 or > 2)
                    return false;
            }
            else if (k[j] != o[j])
            {
                return false;
            }
        }
        return true;
    }
}
