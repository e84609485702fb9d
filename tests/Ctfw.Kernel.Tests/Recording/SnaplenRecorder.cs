using System.Globalization;
using System.Text;
using Ctfw.Capture;
using Ctfw.Conntrack;
using Ctfw.Kernel.Tests.Lab;
using Ctfw.Lab.Traffic;
using Ctfw.Packets;

namespace Ctfw.Kernel.Tests.Recording;

/// <summary>One capture of the snap-length recordings: where tcpdump ran and with which snap length.</summary>
public sealed record SnaplenCapture(string Name, string Interface, int SnapLength, bool IngressOnly, string Description);

/// <summary>One packet of a snap-length capture with the kernel's verdict (ctstate and direction).</summary>
public sealed record SnaplenRow(int Index, string CtState, string Direction)
{
    public string ToTsv() => string.Create(CultureInfo.InvariantCulture, $"{Index}\t{CtState}\t{Direction}\t-\t-");

    public static SnaplenRow Parse(string line)
    {
        string[] f = line.Split('\t');
        return new SnaplenRow(int.Parse(f[0], CultureInfo.InvariantCulture), f[1], f[2]);
    }
}

/// <summary>
/// Records real traffic (<see cref="SnaplenTraffic"/>) through the gateway of a <see cref="SnaplenLab"/>
/// with real tcpdump writing snap-length captures, and pairs every captured packet with the
/// kernel's ctstate and direction for it: mangle FORWARD NFLOG rules per ctstate × ctdir (as
/// <see cref="KernelRecorder"/>) log each forwarded packet once with its verdict, and a packet of a
/// capture is matched to the first unused NFLOG record with the same IP header (less TTL and header
/// checksum) and first 16 transport bytes. A captured packet without a match fails the recording.
/// </summary>
public sealed class SnaplenRecorder
{
    private const int NflogGroup = 11;
    private const int KeyTransportBytes = 16;
    private static readonly TimeSpan s_lifetime = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The captures every recording run takes, at the same time, of the same traffic.</summary>
    public static readonly IReadOnlyList<SnaplenCapture> Captures =
    [
        new("tcpdump_any_in_s96", "any", 96, IngressOnly: true,
            "tcpdump -i any -Q in -s 96 on the gateway: Linux cooked v2 (SLL2), every forwarded packet once, as it arrived"),
        new("tcpdump_vgc_s128", SnaplenLab.GatewayClientDevice, 128, IngressOnly: false,
            "tcpdump -i vgc -s 128 on the gateway's client-side veth: Ethernet, client packets as they arrived, server packets as they left"),
    ];

    /// <summary>
    /// Forwarded packets only: nothing to or from the gateway itself, no link-local or multicast
    /// traffic (neighbour discovery, MLD reports behind a hop-by-hop header, IGMP).
    /// </summary>
    private static readonly string[] s_filter =
        ["(ip", "and", "not", "host", SnaplenLab.GatewayClientV4, "and", "not", "host", SnaplenLab.GatewayServerV4,
         "and", "not", "dst", "net", "224.0.0.0/4", ")",
         "or", "(ip6", "and", "not", "icmp6", "and", "not", "src", "net", "fe80::/10", "and", "not", "dst", "net", "ff00::/8)"];

    private readonly SnaplenLab _lab;
    private readonly string _work;

    public SnaplenRecorder(SnaplenLab lab, string workDirectory)
    {
        _lab = lab;
        _work = workDirectory;
        Directory.CreateDirectory(workDirectory);
    }

    /// <summary>Runs the traffic once under all captures; returns, per capture, its pcap path (in the work directory) and the kernel's rows.</summary>
    public IReadOnlyList<(SnaplenCapture Capture, string Pcap, IReadOnlyList<SnaplenRow> Rows)> Record()
    {
        string checksum = _lab.InGateway("sysctl", "-n", "net.netfilter.nf_conntrack_checksum").Trim();
        if (checksum != "1")
            throw new InvalidOperationException($"nf_conntrack_checksum is {checksum} in a fresh namespace; the recording needs 1");
        InstallRules();

        string nflogPath = Path.Combine(_work, "verdicts.nflog.pcap");
        var paths = Captures.Select(c => Path.Combine(_work, c.Name + ".pcap")).ToArray();
        List<ChildProcess> dumps = [];
        try
        {
            dumps.Add(Start("nflog", ["-i", $"nflog:{NflogGroup}", "-w", nflogPath]));
            for (int i = 0; i < Captures.Count; i++)
            {
                SnaplenCapture c = Captures[i];
                // Immediate mode: without it, packets wait in the ring's blocks for up to a second, and
                // a capture stopped sooner writes none of them.
                List<string> args = ["--immediate-mode", "-i", c.Interface, "-s", c.SnapLength.ToString(CultureInfo.InvariantCulture), "-w", paths[i]];
                if (c.IngressOnly)
                    args.AddRange(["-Q", "in"]);
                dumps.Add(Start(c.Name, [.. args, .. s_filter]));
            }
            SnaplenTraffic.Run(_lab);
            Thread.Sleep(500);  // the last packets' records
        }
        finally
        {
            foreach (ChildProcess dump in dumps)
                dump.Stop(ChildProcess.SigTerm, TimeSpan.FromSeconds(5));
        }
        string logs = string.Join("\n", dumps.Select(d => d.StdErr.Trim()));
        foreach (ChildProcess dump in dumps)
            dump.Dispose();
        // tcpdump's own count ("N packets captured") is what the files must hold; a silent capture is a failed recording.
        if (logs.Contains("\n0 packets captured", StringComparison.Ordinal) || logs.StartsWith("0 packets captured", StringComparison.Ordinal))
            throw new InvalidOperationException($"a capture in {_work} stayed empty:\n{logs}");

        List<(byte[] Key, string State, string Dir)> verdicts = ReadVerdicts(nflogPath);
        var result = new List<(SnaplenCapture, string, IReadOnlyList<SnaplenRow>)>();
        for (int i = 0; i < Captures.Count; i++)
            result.Add((Captures[i], paths[i], Pair(paths[i], verdicts)));
        return result;
    }

    private ChildProcess Start(string name, IReadOnlyList<string> args)
    {
        var process = ChildProcess.StartIn(_lab.Gateway, "tcpdump",
            ["timeout", "-s", "TERM", ((int)s_lifetime.TotalSeconds).ToString(CultureInfo.InvariantCulture), "tcpdump", "-U", "-n", .. args]);
        if (!process.WaitForLine(OutputStream.StdErr, "listening on", s_startTimeout))
        {
            string err = process.StdErr;
            process.Dispose();
            throw new InvalidOperationException($"tcpdump ({name}) did not start: {err}");
        }
        return process;
    }

    private void InstallRules()
    {
        foreach (string tool in (string[])["iptables", "ip6tables"])
        {
            foreach ((string state, string? dir) in KernelRecorder.RuleMatches)
            {
                List<string> args = [tool, "-w", "-t", "mangle", "-A", "FORWARD", "-m", "conntrack", "--ctstate", state];
                if (dir is not null)
                    args.AddRange(["--ctdir", dir]);
                args.AddRange(["-j", "NFLOG", "--nflog-group", NflogGroup.ToString(CultureInfo.InvariantCulture),
                    "--nflog-prefix", $"{state} {dir ?? CtDirections.None}", "--nflog-threshold", "1", "--nflog-size", "128"]);
                _lab.InGateway([.. args]);
            }
        }
    }

    private static List<(byte[] Key, string State, string Dir)> ReadVerdicts(string path)
    {
        List<(byte[], string, string)> verdicts = [];
        using CaptureReader reader = CaptureReader.Open(path);
        while (reader.TryRead(out CaptureRecord record))
        {
            if (!LinkLayer.TryParseNflog(record.Frame, out ReadOnlySpan<byte> ip, out ReadOnlySpan<byte> prefix))
                throw new InvalidDataException($"{path}: record {record.Index + 1} carries no IP packet");
            string[] parts = Encoding.ASCII.GetString(prefix).Split(' ');
            verdicts.Add((Key(ip), parts[0], parts[1]));
        }
        if (reader.Error is { Kind: not CaptureErrorKind.Truncated } error)
            throw new InvalidDataException($"{path}: {error}");
        return verdicts;
    }

    private static List<SnaplenRow> Pair(string pcap, List<(byte[] Key, string State, string Dir)> verdicts)
    {
        var used = new bool[verdicts.Count];
        var rows = new List<SnaplenRow>();
        var missing = new StringBuilder();
        using CaptureReader reader = CaptureReader.Open(pcap);
        while (reader.TryRead(out CaptureRecord record))
        {
            int index = (int)record.Index + 1;
            if (CapturedDatagram.Get(record, ChecksumPolicy.Off, out CapturedDatagram datagram) != LinkResult.Ip)
            {
                missing.AppendLine(CultureInfo.InvariantCulture, $"record {index}: no IP packet");
                continue;
            }
            byte[] key = Key(datagram.Packet);
            int match = -1;
            for (int i = 0; i < verdicts.Count && match < 0; i++)
            {
                if (!used[i] && key.AsSpan().SequenceEqual(verdicts[i].Key))
                    match = i;
            }
            if (match < 0)
            {
                missing.AppendLine(CultureInfo.InvariantCulture, $"record {index}: no NFLOG verdict for {Convert.ToHexString(key)}");
                continue;
            }
            used[match] = true;
            rows.Add(new SnaplenRow(index, verdicts[match].State, verdicts[match].Dir));
        }
        if (reader.Error is { Kind: not CaptureErrorKind.Truncated } error)
            throw new InvalidDataException($"{pcap}: {error}");
        if (missing.Length > 0)
            throw new InvalidOperationException($"{Path.GetFileName(pcap)}: packets the gateway did not log in FORWARD:\n{missing}");
        return rows;
    }

    /// <summary>IP header without TTL/hop limit and IPv4 header checksum (the gateway changes them), then the first transport bytes.</summary>
    internal static byte[] Key(ReadOnlySpan<byte> ip)
    {
        bool v6 = ip[0] >> 4 == 6;
        int header = v6 ? Ipv6Header.Length : (ip[0] & 0x0F) * 4;
        byte[] key = ip[..Math.Min(ip.Length, header + KeyTransportBytes)].ToArray();
        if (v6)
        {
            key[7] = 0;
        }
        else
        {
            key[8] = 0;
            key[10] = 0;
            key[11] = 0;
        }
        return key;
    }

    /// <summary>ctfw's verdicts for a capture, as `ctfw replay --checksums POLICY` computes them (default sysctls).</summary>
    public static List<(string State, string Dir, string Reason)> Classify(string pcap, ChecksumPolicy policy)
    {
        var result = new List<(string, string, string)>();
        var settings = new ConntrackSettings();
        ConntrackEngine? engine = null;
        ConntrackWorker? worker = null;
        using (CaptureReader reader = CaptureReader.Open(pcap))
        {
            while (reader.TryRead(out CaptureRecord record))
            {
                if (CapturedDatagram.Get(record, policy, out CapturedDatagram datagram) != LinkResult.Ip)
                {
                    result.Add(("SKIP", "-", "-"));
                    continue;
                }
                long now = record.TimestampNanoseconds / 1_000_000;
                engine ??= new ConntrackEngine(settings, now);
                worker ??= engine.CreateWorker();
                worker.Enter();
                worker.Process(datagram.Packet, now, new PacketContext { VerifyChecksums = datagram.VerifyChecksum }, out Classification r);
                worker.Exit();
                engine.Maintain(now);
                result.Add((r.State.Name(), r.Direction.Name(), r.Reason.Name()));
            }
        }
        worker?.Dispose();
        return result;
    }
}
