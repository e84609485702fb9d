using Ctfw.Capture;
using Ctfw.Cli.Commands;
using Ctfw.Conntrack;

namespace Ctfw.Cli.Tests;

/// <summary>
/// Captures real tcpdump wrote with a snap length (tests/data/kernel/tcpdump: real TCP through a
/// gateway whose veths offload checksums, padded short frames, the live kernel's ctstate per
/// packet), replayed as an operator would: `ctfw replay` with default options must give the
/// kernel's ctstate and direction for every packet.
/// </summary>
public class TcpdumpRecordingReplayTests
{
    private static string Directory => Path.Combine(KernelRecordingReplayTests.DataDirectory, "tcpdump");

    public static TheoryData<string> Captures()
    {
        var data = new TheoryData<string>();
        if (System.IO.Directory.Exists(Directory))
        {
            foreach (string pcap in System.IO.Directory.EnumerateFiles(Directory, "*.pcap").Order(StringComparer.Ordinal))
                data.Add(Path.GetFileNameWithoutExtension(pcap));
        }
        return data;
    }

    private static string[] Replay(string name, ChecksumPolicy policy)
    {
        var output = new StringWriter();
        var replayer = new Replayer(new ConntrackSettings(), text: false, output, rescue: null, checksums: policy);
        using (var reader = CaptureReader.Open(Path.Combine(Directory, name + ".pcap")))
        {
            while (reader.TryRead(out CaptureRecord record))
                replayer.Process(record);
            Assert.Null(reader.Error);
        }
        return output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    private static string[][] Kernel(string name) =>
        [.. File.ReadAllLines(Path.Combine(Directory, name + ".tsv")).Where(l => l.Length > 0).Select(l => l.Split('\t'))];

    [Fact]
    public void Captures_Exist_BothSnapLengths()
    {
        Assert.Contains("tcpdump_any_in_s96", Captures());
        Assert.Contains("tcpdump_vgc_s128", Captures());
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Capture_AsTcpdumpWroteIt_HasCutRecordsPaddedFramesAndOffloadedChecksums(string name)
    {
        // What the replay tests below rely on; without it they would prove nothing.
        int cut = 0, padded = 0, pending = 0, records = 0;
        using var reader = CaptureReader.Open(Path.Combine(Directory, name + ".pcap"));
        while (reader.TryRead(out CaptureRecord record))
        {
            records++;
            if (record.CapturedLength < record.OriginalLength)
                cut++;
            LinkLayer.TryGetNetworkPacket(record.LinkType, record.Frame, out ReadOnlySpan<byte> ip, out _);
            CapturedDatagram.Get(record, ChecksumPolicy.Auto, out CapturedDatagram datagram);
            if (datagram.IsWhole && datagram.Packet.Length < ip.Length)
                padded++;
            if (datagram.ChecksumPending)
                pending++;
        }
        Assert.Equal(Kernel(name).Length, records);
        Assert.True(cut >= 10, $"{cut} records cut by the snap length");
        Assert.True(padded >= 4, $"{padded} padded frames");
        Assert.True(pending >= 10, $"{pending} packets with offloaded checksums");
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Replay_TcpdumpCaptureWithDefaultChecksums_MatchesKernelOnEveryPacket(string name)
    {
        string[][] kernel = Kernel(name);
        string[] ours = Replay(name, ChecksumPolicy.Auto);

        Assert.Equal(kernel.Length, ours.Length);
        var diffs = new List<string>();
        for (int i = 0; i < kernel.Length; i++)
        {
            string[] a = ours[i].Split('\t');
            if (kernel[i][0] != a[0] || kernel[i][1] != a[1] || kernel[i][2] != a[2])
                diffs.Add($"packet {kernel[i][0]}: kernel {kernel[i][1]} {kernel[i][2]}, ctfw {a[1]} {a[2]} ({a[4]})");
        }
        Assert.True(diffs.Count == 0, $"{name}: {diffs.Count} packet(s) differ from the kernel:\n" + string.Join('\n', diffs));
        Assert.DoesNotContain(ours, l => l.EndsWith("bad-checksum", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Replay_TcpdumpCaptureWithChecksumsOff_MatchesKernelOnEveryPacket(string name)
    {
        string[][] kernel = Kernel(name);
        string[] ours = Replay(name, ChecksumPolicy.Off);

        Assert.Equal(kernel.Select(k => $"{k[0]}\t{k[1]}\t{k[2]}"), ours.Select(l => string.Join('\t', l.Split('\t')[..3])));
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Replay_TcpdumpCaptureWithChecksumsForced_FlagsPacketsTheKernelPassed(string name)
    {
        // The same capture with every whole datagram verified: the offloaded checksums count as bad,
        // which is what replay did before it knew better; so the tests above can fail.
        string[][] kernel = Kernel(name);
        string[] forced = Replay(name, ChecksumPolicy.Verify);

        int flagged = 0;
        for (int i = 0; i < kernel.Length; i++)
        {
            if (kernel[i][1] != "INVALID" && forced[i].EndsWith("\ttcp-bad-checksum", StringComparison.Ordinal))
                flagged++;
        }
        Assert.True(flagged >= 10, $"{name}: forced verification flagged only {flagged} packets the kernel passed");
    }
}
