using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ctfw.Capture;
using Ctfw.Kernel.Tests.Lab;


namespace Ctfw.Kernel.Tests.Recording;

/// <summary>
/// Plays scenarios through a <see cref="KernelLab"/> and writes down what the gateway's conntrack
/// said about every packet.
/// <list type="bullet">
/// <item>ctstate and direction: mangle FORWARD rules (iptables and ip6tables), one per
/// ctstate × ctdir, each NFLOG'ing to <see cref="NflogGroup"/> with a prefix naming what it
/// matched. Exactly one matches any packet, so the capture holds one record per forwarded packet,
/// in order, with the packet as the gateway forwarded it.</item>
/// <item>TCP state: <c>conntrack -L</c> in the gateway after each packet, the entry whose original
/// or reply tuple is the packet's.</item>
/// <item>Kernel reasons (diagnostic only): <c>nf_conntrack_log_invalid=255</c> with the gateway's
/// nf_log bound to nfnetlink_log sends each "invalid"/"ignored" message, with the packet, to NFLOG
/// group 0, which a second capture collects.</item>
/// </list>
/// </summary>
public sealed class KernelRecorder
{
    public const int NflogGroup = 7;
    private const int ReasonGroup = 0;
    private static readonly TimeSpan s_packetTimeout = TimeSpan.FromSeconds(3);

    private readonly KernelLab _lab;
    private readonly string _workDirectory;

    public KernelRecorder(KernelLab lab, string workDirectory)
    {
        _lab = lab;
        _workDirectory = workDirectory;
        Directory.CreateDirectory(workDirectory);
        InstallRules();
    }

    /// <summary>The NFLOG prefixes; the rule order does not matter because the matches are disjoint.</summary>
    public static readonly IReadOnlyList<(string CtState, string? Dir)> RuleMatches =
    [
        (CtStates.New, CtDirections.Original),
        (CtStates.New, CtDirections.Reply),
        (CtStates.Established, CtDirections.Original),
        (CtStates.Established, CtDirections.Reply),
        (CtStates.Related, CtDirections.Original),
        (CtStates.Related, CtDirections.Reply),
        (CtStates.Invalid, null),
        (CtStates.Untracked, null),
    ];

    private void InstallRules()
    {
        foreach (string tool in (string[])["iptables", "ip6tables"])
        {
            foreach ((string state, string? dir) in RuleMatches)
            {
                List<string> args = [tool, "-w", "-t", "mangle", "-A", "FORWARD", "-m", "conntrack", "--ctstate", state];
                if (dir is not null)
                    args.AddRange(["--ctdir", dir]);
                // threshold 1: hand each packet to the capture at once (the default batches up to 1 s).
                args.AddRange(["-j", "NFLOG", "--nflog-group", NflogGroup.ToString(CultureInfo.InvariantCulture),
                    "--nflog-prefix", $"{state} {dir ?? CtDirections.None}", "--nflog-threshold", "1"]);
                _lab.InGateway([.. args]);
            }
        }
        // Route the gateway's conntrack "invalid/ignored" log messages to nfnetlink_log (group 0).
        // nf_log bindings are per network namespace; this touches only the gateway.
        _lab.InGateway("sysctl", "-q", "-w", "net.netfilter.nf_log.2=nfnetlink_log", "net.netfilter.nf_log.10=nfnetlink_log");
    }

    /// <summary>
    /// Records one scenario and writes its files into <paramref name="outputDirectory"/>. A run whose
    /// packet bursts took longer than the scenario's timing margin allows (a loaded machine stalled
    /// the recorder) is thrown away and repeated, up to <see cref="MaxAttempts"/> times.
    /// </summary>
    public ScenarioRecording Record(KernelScenario scenario, string outputDirectory)
    {
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(outputDirectory);
        List<string> rejected = [];
        for (int attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            ScenarioRecording recording = RecordOnce(scenario);
            string? slow = CheckBursts(scenario, recording);
            if (slow is null)
            {
                recording.Write(outputDirectory);
                recording.Elapsed = watch.Elapsed;
                recording.Attempts = attempt;
                return recording;
            }
            rejected.Add(slow);
        }
        throw new InvalidOperationException(
            $"{scenario.Name}: could not record within the timing margins in {MaxAttempts} attempts (machine too busy?): {string.Join("; ", rejected)}");
    }

    public const int MaxAttempts = 3;

    private ScenarioRecording RecordOnce(KernelScenario scenario)
    {
        // 1. Sysctls: every managed one, so a scenario never inherits the previous one's timeouts.
        _lab.SetGatewaySysctls([.. scenario.GatewaySysctls, new("nf_conntrack_log_invalid", "255")]);

        // 2. Empty table.
        _lab.InGateway("conntrack", "-F", "-f", "ipv4");
        _lab.InGateway("conntrack", "-F", "-f", "ipv6");
        if (ListTable(v6: false).Count + ListTable(v6: true).Count != 0)
            throw new InvalidOperationException($"{scenario.Name}: conntrack table not empty after flush");

        string nflogPath = Path.Combine(_workDirectory, scenario.Name + ".nflog.pcap");
        string reasonPath = Path.Combine(_workDirectory, scenario.Name + ".reasons.pcap");
        File.Delete(nflogPath);
        File.Delete(reasonPath);
        TimeSpan lifetime = scenario.TotalSleep + TimeSpan.FromSeconds(60 + scenario.Packets.Count);

        // 3. Play the steps; after each packet, wait for its FORWARD record, then read the table.
        List<byte[]> sent = [];
        List<string> tcpStates = [];
        List<string> ctLines = [];
        using (NflogCapture capture = NflogCapture.Start(_lab.Gateway, NflogGroup, nflogPath, lifetime))
        using (NflogCapture reasons = NflogCapture.Start(_lab.Gateway, ReasonGroup, reasonPath, lifetime))
        {
            foreach (ScenarioStep step in scenario.Steps)
            {
                if (step is SleepStep sleep)
                {
                    Thread.Sleep(sleep.Duration);
                    continue;
                }
                var send = (SendStep)step;
                byte[] packet = send.Packet.ToBytes();
                sent.Add(packet);
                _lab.Send(send.Packet.From, packet);
                if (!capture.WaitForRecords(sent.Count, s_packetTimeout))
                {
                    throw new InvalidOperationException(
                        $"{scenario.Name}: packet {sent.Count} ({send.Packet.Describe()}) did not reach the gateway's FORWARD " +
                        $"hook within {s_packetTimeout.TotalSeconds} s ({capture.CountRecords()} NFLOG records). tcpdump: {capture.StdErr}");
                }
                (string tcp, string line) = LookUp(packet);
                tcpStates.Add(tcp);
                ctLines.Add(line);
            }
            // Reason messages are logged at PREROUTING, before the FORWARD record we waited for; a
            // short grace period covers the capture's own delivery.
            Thread.Sleep(100);
            capture.Stop();
            reasons.Stop();
        }

        // 4. One NFLOG record per packet, in order, or the recording is worthless.
        List<NflogRecord> records = ReadNflog(nflogPath);
        CheckOnePerPacket(scenario, sent, records);
        string[] reasonTexts = AssignReasons(sent, ReadNflog(reasonPath));
        File.Delete(nflogPath);
        File.Delete(reasonPath);

        var rows = new List<KernelRow>(sent.Count);
        for (int i = 0; i < sent.Count; i++)
        {
            (string ctState, string dir) = ParsePrefix(scenario, i, records[i].Prefix);
            rows.Add(new KernelRow(i + 1, new KernelVerdict(ctState, dir, tcpStates[i])));
        }
        return new ScenarioRecording(
            scenario.Name,
            [.. records.Select(r => new RecordedPacket(r.TimestampNanoseconds, r.Packet))],
            rows,
            scenario.EffectiveSysctls,
            [.. Enumerable.Range(0, sent.Count).Select(i => new RecordedDiagnostics(reasonTexts[i], ctLines[i]))]);
    }

    /// <summary>
    /// Null when every burst (packets with no scripted sleep between them) took at most the
    /// scenario's <see cref="KernelScenario.MaxBurst"/>, measured on the gateway's NFLOG timestamps;
    /// otherwise which burst was too slow.
    /// </summary>
    public static string? CheckBursts(KernelScenario scenario, ScenarioRecording recording)
    {
        if (scenario.MaxBurst is not TimeSpan limit)
            return null;
        int index = 0;
        int burstStart = 0;
        foreach (ScenarioStep step in scenario.Steps)
        {
            if (step is SleepStep)
            {
                burstStart = index;
                continue;
            }
            long span = recording.Packets[index].TimestampNanoseconds - recording.Packets[burstStart].TimestampNanoseconds;
            if (span > limit.Ticks * 100)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"packets {burstStart + 1}-{index + 1} took {span / 1e9:0.000} s, margin allows {limit.TotalSeconds:0.###} s");
            }
            index++;
        }
        return null;
    }

    private IReadOnlyList<ConntrackEntry> ListTable(bool v6) =>
        ConntrackEntry.ParseAll(_lab.InGateway("conntrack", "-L", "-f", v6 ? "ipv6" : "ipv4"));

    /// <summary>
    /// TCP or SCTP state (or <c>-</c>) and the raw table line of the entry the packet belongs to. For an ICMP
    /// error the line is that of the flow it quotes (its TCP state column stays <c>-</c>: the packet is not TCP).
    /// </summary>
    private (string TcpState, string Line) LookUp(byte[] packet)
    {
        bool v6 = packet[0] >> 4 == 6;
        FlowKey key = FlowKey.TryGetIcmpErrorQuote(packet, out ReadOnlySpan<byte> quoted)
            ? FlowKey.FromPacket(quoted)
            : FlowKey.FromPacket(packet);
        ConntrackEntry? entry = ListTable(v6).FirstOrDefault(e => e.Matches(key));
        if (entry is null)
            return (TcpStates.None, "-");
        // TCP and SCTP entries carry a state name (conntrack -L prints it after the timeout).
        bool stateful = packet[v6 ? 6 : 9] is 6 or 132;
        return (stateful && entry.TcpState is not null ? entry.TcpState : TcpStates.None, entry.Line);
    }

    private sealed record NflogRecord(long TimestampNanoseconds, byte[] Packet, string Prefix);

    private static List<NflogRecord> ReadNflog(string path)
    {
        List<NflogRecord> records = [];
        if (!File.Exists(path))
            return records;
        using CaptureReader reader = CaptureReader.Open(path);
        while (reader.TryRead(out CaptureRecord record))
        {
            if (record.LinkType != LinkTypes.Nflog)
                throw new InvalidDataException($"{path}: link type {record.LinkType}, expected NFLOG ({LinkTypes.Nflog})");
            if (!LinkLayer.TryParseNflog(record.Frame, out ReadOnlySpan<byte> ip, out ReadOnlySpan<byte> prefix))
                throw new InvalidDataException($"{path}: record {record.Index} carries no IP packet");
            records.Add(new NflogRecord(record.TimestampNanoseconds, ip.ToArray(), Encoding.ASCII.GetString(prefix)));
        }
        // A capture stopped by SIGTERM may end inside a record it never finished; everything before is good.
        if (reader.Error is { Kind: not CaptureErrorKind.Truncated } error)
            throw new InvalidDataException($"{path}: {error}");
        return records;
    }

    private static void CheckOnePerPacket(KernelScenario scenario, List<byte[]> sent, List<NflogRecord> records)
    {
        var problems = new StringBuilder();
        if (records.Count != sent.Count)
            problems.AppendLine(CultureInfo.InvariantCulture, $"{records.Count} NFLOG records for {sent.Count} packets sent");
        for (int i = 0; i < Math.Min(sent.Count, records.Count); i++)
        {
            if (!SamePacket(sent[i], records[i].Packet))
            {
                problems.AppendLine(CultureInfo.InvariantCulture,
                    $"record {i + 1} is not packet {i + 1} ({scenario.Packets[i].Packet.Describe()}): sent {Convert.ToHexString(sent[i])}, logged {Convert.ToHexString(records[i].Packet)}");
            }
        }
        if (problems.Length > 0)
            throw new InvalidOperationException($"{scenario.Name}: the NFLOG capture does not match the packets sent:\n{problems}");
    }

    /// <summary>
    /// Same packet as sent, ignoring what the path legitimately changes: the IPv4 id (the raw socket
    /// fills in a zero id), TTL / hop limit (the gateway decrements it before FORWARD) and the IPv4
    /// header checksum that follows from both.
    /// </summary>
    public static bool SamePacket(ReadOnlySpan<byte> sent, ReadOnlySpan<byte> seen)
    {
        if (sent.Length != seen.Length || sent.Length < 20)
            return false;
        for (int i = 0; i < sent.Length; i++)
        {
            bool mutable = sent[0] >> 4 == 6
                ? i == 7
                : i is 4 or 5 or 8 or 10 or 11;
            if (!mutable && sent[i] != seen[i])
                return false;
        }
        return true;
    }

    /// <summary>
    /// Pairs the kernel's log messages with the packets they are about. Both arrive in packet order;
    /// a message matches the first packet at or after the last match (identical resends, such as
    /// SYN retransmits, are told apart by that order), or the last matched packet again.
    /// </summary>
    private static string[] AssignReasons(List<byte[]> sent, List<NflogRecord> reasons)
    {
        var texts = new List<string>?[sent.Count];
        int next = 0;
        foreach (NflogRecord r in reasons)
        {
            int match = -1;
            for (int i = next; i < sent.Count && match < 0; i++)
            {
                if (SamePacket(sent[i], r.Packet))
                    match = i;
            }
            if (match < 0 && next > 0 && SamePacket(sent[next - 1], r.Packet))
                match = next - 1;
            if (match < 0)
                continue;
            (texts[match] ??= []).Add(CleanReason(r.Prefix));
            next = match + 1;
        }
        return [.. texts.Select(t => t is null ? "-" : string.Join("; ", t))];
    }

    private static string CleanReason(string prefix) =>
        string.Join(' ', prefix.Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries));

    private static (string CtState, string Dir) ParsePrefix(KernelScenario scenario, int index, string prefix)
    {
        string[] parts = prefix.Split(' ');
        if (parts.Length == 2 && CtStates.All.Contains(parts[0])
            && parts[1] is CtDirections.Original or CtDirections.Reply or CtDirections.None)
        {
            return (parts[0], parts[1]);
        }
        throw new InvalidDataException($"{scenario.Name}: packet {index + 1} logged with unexpected NFLOG prefix '{prefix}'");
    }
}
