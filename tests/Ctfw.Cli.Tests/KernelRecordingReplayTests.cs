using Ctfw.Capture;
using Ctfw.Cli.Commands;
using Ctfw.Conntrack;

namespace Ctfw.Cli.Tests;

/// <summary>
/// The unprivileged half of the kernel oracle: every recording in tests/data/kernel (made by the
/// privileged tier from the live kernel: pcap + the kernel's per-packet answer) replayed through
/// `ctfw replay` must give the kernel's ctstate, direction and TCP state for every packet.
/// </summary>
public class KernelRecordingReplayTests
{
    /// <summary>tests/data/kernel, found from this source file's location (build outputs may live elsewhere).</summary>
    public static string DataDirectory => Path.GetFullPath(Path.Combine(SourceDirectory(), "..", "data", "kernel"));

    private static string SourceDirectory([System.Runtime.CompilerServices.CallerFilePath] string path = "") =>
        Path.GetDirectoryName(path)!;

    public static TheoryData<string> Recordings()
    {
        var data = new TheoryData<string>();
        if (Directory.Exists(DataDirectory))
        {
            foreach (string pcap in Directory.EnumerateFiles(DataDirectory, "*.pcap").Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileNameWithoutExtension(pcap);
                if (!NeedsHelpers(name))
                    data.Add(name);
            }
        }
        return data;
    }

    /// <summary>
    /// Recordings made with the lab's helper assignment in force on some packet (FTP to 21, TFTP to 69:
    /// <see cref="Ctfw.Lab.Network.LabHelpers"/>). `ctfw replay` assigns helpers only through a ruleset's raw table, so
    /// these are replayed with the assignment by Ctfw.Kernel.Tests' StoredRecordingTests (CtfwVerdicts) instead.
    /// </summary>
    public static bool NeedsHelpers(string name) =>
        Ctfw.Lab.Scenarios.KernelScenarios.All.FirstOrDefault(s => s.Name == name) is { } scenario
        && scenario.Packets.Any(p => Ctfw.Lab.Network.LabHelpers.Select(p.Packet.ToBytes()) != CtHelper.None);

    [Fact]
    public void Recordings_WithHelperAssignment_AreTheFtpAndTftpOnesOnly()
    {
        string[] helped = [.. Directory.EnumerateFiles(DataDirectory, "*.pcap").Select(Path.GetFileNameWithoutExtension)
            .Where(n => NeedsHelpers(n!)).Order(StringComparer.Ordinal)!];
        Assert.NotEmpty(helped);
        Assert.All(helped, n => Assert.Matches("^(ftp|tftp)", n));
        Assert.DoesNotContain("ftp_without_helper", helped);
    }

    [Fact]
    public void Recordings_Exist_AtLeastThirty()
    {
        Assert.True(Recordings().Count >= 30, $"expected ≥ 30 kernel recordings in {DataDirectory}, found {Recordings().Count}");
    }

    [Theory]
    [MemberData(nameof(Recordings))]
    public void Replay_KernelRecording_MatchesKernelPerPacket(string name)
    {
        string pcap = Path.Combine(DataDirectory, name + ".pcap");
        string tsv = Path.Combine(DataDirectory, name + ".tsv");
        string sysctl = Path.Combine(DataDirectory, name + ".sysctl");
        var settings = new ConntrackSettings();
        if (File.Exists(sysctl))
        {
            using var r = new StreamReader(sysctl);
            Assert.Null(settings.Load(r, sysctl));
        }

        var output = new StringWriter();
        var replayer = new Replayer(settings, text: false, output);
        using (var reader = CaptureReader.Open(pcap))
        {
            while (reader.TryRead(out CaptureRecord record))
                replayer.Process(record);
            Assert.Null(reader.Error);
        }

        string[] expected = File.ReadAllLines(tsv).Where(l => l.Length > 0 && l[0] != '#').ToArray();
        string[] actual = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(expected.Length, actual.Length);
        var diffs = new List<string>();
        for (int i = 0; i < expected.Length; i++)
        {
            string[] e = expected[i].Split('\t');
            string[] a = actual[i].Split('\t');
            // Columns: index, ctstate, direction, TCP state; the kernel does not export reasons.
            if (e[0] != a[0] || e[1] != a[1] || e[2] != a[2] || e[3] != a[3])
                diffs.Add($"packet {e[0]}: kernel {e[1]} {e[2]} {e[3]}, ctfw {a[1]} {a[2]} {a[3]} ({a[4]})");
        }
        Assert.True(diffs.Count == 0, $"{name}: {diffs.Count} packet(s) differ from the kernel:\n" + string.Join('\n', diffs));
    }
}
