using System.Globalization;
using System.Reflection;
using Ctfw.Capture;

namespace Ctfw.Kernel.Tests.Recording;

/// <summary>One packet as the gateway forwarded it, with the NFLOG timestamp.</summary>
public sealed record RecordedPacket(long TimestampNanoseconds, byte[] Packet);

/// <summary>
/// Diagnostics per packet, not compared by tests: the kernel's own log text for invalid/ignored
/// packets (<c>nf_conntrack_log_invalid</c>, or <c>-</c>) and the flow's <c>conntrack -L</c> line
/// after the packet (timeouts, [ASSURED], [UNREPLIED]; or <c>-</c>).
/// </summary>
public sealed record RecordedDiagnostics(string KernelLog, string ConntrackLine);

/// <summary>
/// A scenario's recording on disk: <c>&lt;name&gt;.pcap</c> (LINKTYPE_RAW, IP packets as forwarded,
/// NFLOG timestamps), <c>&lt;name&gt;.tsv</c> (one <see cref="KernelRow"/> per packet),
/// <c>&lt;name&gt;.sysctl</c> (the conntrack sysctls in force) and <c>&lt;name&gt;.diag.tsv</c>
/// (<see cref="RecordedDiagnostics"/>). <see cref="Load"/> is what a replay through our own
/// classifier starts from.
/// </summary>
public sealed class ScenarioRecording(
    string name,
    IReadOnlyList<RecordedPacket> packets,
    IReadOnlyList<KernelRow> rows,
    IReadOnlyList<KeyValuePair<string, string>> sysctls,
    IReadOnlyList<RecordedDiagnostics> diagnostics)
{
    public string Name { get; } = name;
    public IReadOnlyList<RecordedPacket> Packets { get; } = packets;
    public IReadOnlyList<KernelRow> Rows { get; } = rows;

    /// <summary>Kernel sysctl names (without <c>net.netfilter.</c>) and values, in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Sysctls { get; } = sysctls;

    /// <summary>Empty when the side file is absent.</summary>
    public IReadOnlyList<RecordedDiagnostics> Diagnostics { get; } = diagnostics;

    /// <summary>Wall time the live recording took (zero for loaded recordings).</summary>
    public TimeSpan Elapsed { get; set; }

    /// <summary>How many runs the live recording needed (a run that missed its timing margins is repeated).</summary>
    public int Attempts { get; set; }

    public string Sysctl(string name) =>
        Sysctls.FirstOrDefault(kv => kv.Key == name).Value ?? throw new KeyNotFoundException($"{Name}.sysctl has no {name}");

    public void Write(string directory)
    {
        string stem = Path.Combine(directory, Name);
        using (var stream = new FileStream(stem + ".pcap", FileMode.Create, FileAccess.Write))
        using (var writer = new PcapWriter(stream, LinkTypes.Raw, PcapTimestampResolution.Microsecond))
        {
            foreach (RecordedPacket p in Packets)
                writer.Write(p.TimestampNanoseconds, p.Packet);
        }
        File.WriteAllLines(stem + ".tsv", Rows.Select(r => r.ToTsv()));
        File.WriteAllLines(stem + ".sysctl", Sysctls.Select(kv => $"{kv.Key}={kv.Value}"));
        File.WriteAllLines(stem + ".diag.tsv", Diagnostics.Select((d, i) =>
            string.Create(CultureInfo.InvariantCulture, $"{i + 1}\t{d.KernelLog}\t{d.ConntrackLine}")));
    }

    public static bool Exists(string directory, string name) =>
        File.Exists(Path.Combine(directory, name + ".tsv")) && File.Exists(Path.Combine(directory, name + ".pcap"))
        && File.Exists(Path.Combine(directory, name + ".sysctl"));

    public static ScenarioRecording Load(string directory, string name)
    {
        string stem = Path.Combine(directory, name);
        List<RecordedPacket> packets = [];
        using (CaptureReader reader = CaptureReader.Open(stem + ".pcap"))
        {
            while (reader.TryRead(out CaptureRecord r))
            {
                if (r.LinkType != LinkTypes.Raw)
                    throw new InvalidDataException($"{stem}.pcap: link type {r.LinkType}, expected RAW ({LinkTypes.Raw})");
                packets.Add(new RecordedPacket(r.TimestampNanoseconds, r.Frame.ToArray()));
            }
            if (reader.Error is not null)
                throw new InvalidDataException($"{stem}.pcap: {reader.Error}");
        }
        List<KernelRow> rows = [.. File.ReadAllLines(stem + ".tsv").Where(l => l.Length > 0).Select(KernelRow.Parse)];
        List<KeyValuePair<string, string>> sysctls = [];
        foreach (string line in File.ReadAllLines(stem + ".sysctl"))
        {
            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
                sysctls.Add(new(line[..eq], line[(eq + 1)..]));
        }
        List<RecordedDiagnostics> diagnostics = [];
        if (File.Exists(stem + ".diag.tsv"))
        {
            foreach (string line in File.ReadAllLines(stem + ".diag.tsv"))
            {
                string[] c = line.Split('\t');
                if (c.Length == 3)
                    diagnostics.Add(new RecordedDiagnostics(c[1], c[2]));
            }
        }
        return new ScenarioRecording(name, packets, rows, sysctls, diagnostics);
    }
}

/// <summary>Where the stored recordings live.</summary>
public static class KernelData
{
    /// <summary><c>tests/data/kernel</c> of the source tree this assembly was built from (or <c>CTFW_KERNEL_DATA</c>).</summary>
    public static string Directory
    {
        get
        {
            string? overridden = Environment.GetEnvironmentVariable("CTFW_KERNEL_DATA");
            if (!string.IsNullOrEmpty(overridden))
                return overridden;
            string? root = typeof(KernelData).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .FirstOrDefault(a => a.Key == "CtfwRepoRoot")?.Value;
            return Path.Combine(root ?? throw new InvalidOperationException("assembly lacks CtfwRepoRoot metadata"), "tests", "data", "kernel");
        }
    }

    /// <summary>True when <c>CTFW_RECORD=1</c>: the recording test rewrites the stored recordings.</summary>
    public static bool RecordMode => Environment.GetEnvironmentVariable("CTFW_RECORD") == "1";
}
