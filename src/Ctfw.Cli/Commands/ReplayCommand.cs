using System.Globalization;
using System.Text;
using Ctfw.Capture;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw replay`: classifies every packet of a capture with the same tracker the daemon runs,
/// using packet timestamps as the clock. All packets are treated as accepted (NEW entries are
/// confirmed) and as seen at PRE_ROUTING (checksums verified per <see cref="ChecksumPolicy"/>).
/// </summary>
internal static class ReplayCommand
{
    private const string Usage = """
        Usage: ctfw replay [OPTIONS] PCAP

        Classifies every packet of a pcap or pcapng file as Linux conntrack would, with the packet
        timestamps as the clock. Link types: Ethernet, raw IPv4/IPv6, Linux cooked (SLL, SLL2),
        NULL/LOOP, NFLOG. Output: one line per packet on stdout; a summary on stderr.

        Options:
          --format tsv|text     tsv (default): index, ctstate, direction, TCP state, INVALID reason,
                                tab-separated; text: adds time, protocol, addresses and flags
          --summary-only        print only the summary
          --rescue [tombstone|loose]
                                let a late FIN/RST through after its entry expired when it fits
                                the expired entry's windows (tombstone, the default); loose also
                                accepts a bare FIN/RST with nothing to check (docs/RESCUE.md).
                                Rescued packets show ESTABLISHED and the reason `rescued`
          --rescue-window SECONDS
                                how long after expiry a tombstone is kept (default 120)
          --checksums auto|verify|off
                                which packets get their TCP/UDP/ICMP checksum verified (as the
                                kernel does at PRE_ROUTING). auto (default): those captured whole,
                                except ones still carrying the checksum-offload placeholder, which
                                the kernel does not verify either; verify: all captured whole;
                                off: none, for captures taken on a sending host whose NIC computes
                                checksums (tcpdump -vv shows "cksum incorrect" on its own packets).
                                Records cut by the snap length are never verified, and Ethernet
                                padding after the IP datagram is never part of it
        """ + SettingsOptions.Help + """

        Exit status: 0 when the whole file was read, 3 when it is damaged (packets before the damage
        are still classified and printed), 1 when it cannot be opened, 2 for usage errors.
        """;

    public static int Run(string[] args) => Run(args, null);

    /// <summary>As <see cref="Run(string[])"/>, writing the per-packet lines to <paramref name="stdout"/> when given (tests).</summary>
    internal static int Run(string[] args, TextWriter? stdout)
    {
        var cl = new CommandLine(args, 1);
        var opts = new SettingsOptions();
        string format = "tsv";
        bool summaryOnly = false;
        RescueMode rescue = RescueMode.Off;
        int? rescueWindow = null;
        ChecksumPolicy checksums = ChecksumPolicy.Auto;
        string? path = null;
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(Usage);
                return 0;
            }
            if (cl.TryValue(arg, "--format", out string f))
            {
                if (f is not ("tsv" or "text"))
                    cl.Fail($"--format must be tsv or text, not '{f}'");
                format = f;
            }
            else if (arg == "--summary-only")
            {
                summaryOnly = true;
            }
            else if (arg == "--rescue")
            {
                rescue = RescueMode.Tombstone;
                if (cl.TryPeek(out string next) && TryParseRescueMode(next, out RescueMode mode))
                {
                    cl.TryNext(out _);
                    rescue = mode;
                }
            }
            else if (cl.TryValue(arg, "--rescue", out string m))
            {
                if (!TryParseRescueMode(m, out rescue))
                    cl.Fail($"--rescue takes tombstone or loose, not '{m}'");
            }
            else if (cl.TryValue(arg, "--rescue-window", out string w))
            {
                if (!int.TryParse(w, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds > int.MaxValue / 1000)
                    cl.Fail($"--rescue-window takes whole seconds, not '{w}'");
                rescueWindow = seconds;
            }
            else if (cl.TryValue(arg, "--checksums", out string c))
            {
                if (!ChecksumPolicyNames.TryParse(c, out checksums))
                    cl.Fail($"--checksums takes {ChecksumPolicyNames.Choices}, not '{c}'");
            }
            else if (!opts.TryParse(cl, arg) && cl.Error == null)
            {
                if (arg.StartsWith('-') && arg != "-")
                    cl.Fail($"unknown option '{arg}' for replay (see `ctfw replay --help`)");
                else if (path != null)
                    cl.Fail($"replay takes one capture file; got '{path}' and '{arg}'");
                else
                    path = arg;
            }
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }
        if (path == null)
            return Program.Fail("replay needs a capture file (see `ctfw replay --help`)");
        if (rescueWindow != null && rescue == RescueMode.Off)
            return Program.Fail("--rescue-window needs --rescue");
        ConntrackSettings? settings = opts.Build(out string? error);
        if (settings == null)
            return Program.Fail(error!);

        Stream stream;
        try
        {
            stream = path == "-" ? Console.OpenStandardInput() : new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ctfw: cannot open '{path}': {e.Message}");
            return 1;
        }

        using TextWriter output = stdout ?? new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16);
        RescueOptions? rescueOptions = rescue == RescueMode.Off ? null
            : new RescueOptions { Mode = rescue, WindowSeconds = rescueWindow ?? new RescueOptions().WindowSeconds };
        var replayer = new Replayer(settings, format == "text", summaryOnly ? null : output, rescueOptions, checksums);
        using (var reader = new CaptureReader(stream))
        {
            while (reader.TryRead(out CaptureRecord record))
                replayer.Process(record);
            output.Flush();
            replayer.PrintSummary(Console.Error);
            if (reader.Error is CaptureError damage)
            {
                Console.Error.WriteLine($"ctfw: {path}: damaged at byte offset {damage.Offset}: {damage.Message} ({replayer.Packets} records before it were classified)");
                return 3;
            }
        }
        return 0;
    }

    private static bool TryParseRescueMode(string text, out RescueMode mode)
    {
        mode = text switch
        {
            "tombstone" => RescueMode.Tombstone,
            "loose" => RescueMode.Loose,
            _ => RescueMode.Off,
        };
        return mode != RescueMode.Off;
    }
}

/// <summary>The replay loop, separate from argument handling so tests can drive it.</summary>
internal sealed class Replayer
{
    private readonly ConntrackSettings _settings;
    private readonly RescueOptions? _rescue;
    private readonly ChecksumPolicy _checksums;
    private readonly bool _text;
    private readonly TextWriter? _out;
    private ConntrackEngine? _engine;
    private ConntrackWorker? _worker;
    private readonly long[] _byState = new long[8];
    private readonly long[] _byReason = new long[InvalidReasons.Count];
    private long _skipped;
    private long _firstNs = long.MinValue;

    public Replayer(ConntrackSettings settings, bool text, TextWriter? output, RescueOptions? rescue = null,
        ChecksumPolicy checksums = ChecksumPolicy.Auto)
    {
        _settings = settings;
        _rescue = rescue;
        _checksums = checksums;
        _text = text;
        _out = output;
    }

    public long Packets { get; private set; }

    public void Process(in CaptureRecord record)
    {
        Packets++;
        long index = record.Index + 1;
        LinkResult link = CapturedDatagram.Get(record, _checksums, out CapturedDatagram datagram);
        ReadOnlySpan<byte> ip = datagram.Packet;
        if (link != LinkResult.Ip)
        {
            _skipped++;
            string why = link switch
            {
                LinkResult.NotIp => "not-ip",
                LinkResult.Truncated => "truncated-link-header",
                _ => $"unsupported-link-type-{record.LinkType}",
            };
            _out?.Write(string.Create(CultureInfo.InvariantCulture, $"{index}\tSKIP\t-\t-\t{why}\n"));
            return;
        }

        long now = record.TimestampNanoseconds / 1_000_000;
        if (_engine == null)
        {
            _engine = new ConntrackEngine(_settings, now, maxWorkers: 2, rescue: _rescue);
            _worker = _engine.CreateWorker();
            _firstNs = record.TimestampNanoseconds;
        }
        _worker!.Enter();
        _worker.Process(ip, now, ContextOf(datagram), out Classification r);
        _worker.Exit();
        _engine.Maintain(now);

        _byState[(int)r.State]++;
        if (r.State is CtState.Invalid or CtState.Dropped)
            _byReason[(int)r.Reason]++;
        if (_out == null)
            return;
        string tcp = r.Protocol == IpProto.Tcp && r.TcpState != TcpState.None ? r.TcpState.Name() : "-";
        // A rescued packet has no INVALID reason; the column says why it is ESTABLISHED instead.
        string reason = r.Rescued ? "rescued" : r.Reason.Name();
        if (!_text)
        {
            _out.Write(string.Create(CultureInfo.InvariantCulture,
                $"{index}\t{r.State.Name()}\t{r.Direction.Name()}\t{tcp}\t{reason}\n"));
            return;
        }
        double t = (record.TimestampNanoseconds - _firstNs) / 1e9;
        _out.Write(string.Create(CultureInfo.InvariantCulture,
            $"{index,6} {t,12:F6} {Describe(ip),-60} {r.State.Name(),-11} {r.Direction.Name(),-8} {tcp,-11}{(r.Ignored ? " ignored" : "")}{(r.Rescued || r.Reason != InvalidReason.None ? " " + reason : "")}\n"));
    }

    /// <summary>A recorded packet was forwarded; its checksum is verified if the capture allows (<see cref="ChecksumPolicy"/>).</summary>
    internal static PacketContext ContextOf(in CapturedDatagram datagram) => new() { VerifyChecksums = datagram.VerifyChecksum };

    /// <summary>Protocol, endpoints and TCP flags for the text format.</summary>
    internal static string Describe(ReadOnlySpan<byte> ip)
    {
        if (PacketParser.Parse(ip, out ParsedPacket p) != InvalidReason.None && p.IpVersion == 0)
            return "(unparsable)";
        bool v6 = p.IsV6;
        string src = p.Src.Format(v6), dst = p.Dst.Format(v6);
        if (v6)
        {
            src = $"[{src}]";
            dst = $"[{dst}]";
        }
        return p.Protocol switch
        {
            IpProto.Tcp => $"tcp {src}:{p.SrcPort} > {dst}:{p.DstPort} [{Flags(p.TcpFlags)}] seq {p.Seq} ack {p.AckSeq} win {p.Window} len {p.TcpPayloadLength}",
            IpProto.Udp => $"udp {src}:{p.SrcPort} > {dst}:{p.DstPort} len {p.L4Length}",
            IpProto.Icmp or IpProto.Icmpv6 => $"{(p.Protocol == IpProto.Icmp ? "icmp" : "icmpv6")} {src} > {dst} type {p.IcmpType} code {p.IcmpCode} id {p.IcmpId}",
            _ => $"proto {p.Protocol} {src} > {dst}",
        };
    }

    private static string Flags(TcpFlags f)
    {
        var sb = new StringBuilder(8);
        if ((f & TcpFlags.Syn) != 0) sb.Append('S');
        if ((f & TcpFlags.Fin) != 0) sb.Append('F');
        if ((f & TcpFlags.Rst) != 0) sb.Append('R');
        if ((f & TcpFlags.Psh) != 0) sb.Append('P');
        if ((f & TcpFlags.Ack) != 0) sb.Append('.');
        if ((f & TcpFlags.Urg) != 0) sb.Append('U');
        if ((f & TcpFlags.Ece) != 0) sb.Append('E');
        if ((f & TcpFlags.Cwr) != 0) sb.Append('W');
        return sb.Length == 0 ? "none" : sb.ToString();
    }

    public void PrintSummary(TextWriter w)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"replay: {Packets} records: ");
        foreach (CtState s in Enum.GetValues<CtState>())
            sb.Append(CultureInfo.InvariantCulture, $"{s.Name()} {_byState[(int)s]}, ");
        sb.Append(CultureInfo.InvariantCulture, $"skipped {_skipped}");
        if (_engine != null)
            sb.Append(CultureInfo.InvariantCulture, $"; {_engine.Count} entries at the end");
        w.WriteLine(sb.ToString());
        for (int i = 1; i < _byReason.Length; i++)
        {
            if (_byReason[i] > 0)
                w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {((InvalidReason)i).Name()}: {_byReason[i]}"));
        }
        if (_engine != null && _engine.Rescue.Mode != RescueMode.Off)
        {
            RescueCounters c = _engine.RescueStats;
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"rescue ({_engine.Rescue.Mode.ToString().ToLowerInvariant()}, window {_engine.Rescue.WindowSeconds} s): fin {c.RescuedFin}, rst {c.RescuedRst}, loose {c.RescuedLoose}, out-of-window {c.RejectedOutOfWindow}; tombstones stored {c.TombstonesStored}, live {c.TombstonesLive}, evicted {c.TombstonesEvicted}, expired {c.TombstonesExpired}"));
        }
    }
}
