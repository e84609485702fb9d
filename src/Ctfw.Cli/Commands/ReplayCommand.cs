using System.Globalization;
using System.Text;
using Ctfw.Capture;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Rules;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw replay`: runs every packet of a capture through the same firewall pipeline the daemon runs,
/// using packet timestamps as the clock. Without --rules all packets are treated as accepted (NEW
/// entries are confirmed); with --rules each gets the verdict the daemon would give it. Checksums are
/// verified per <see cref="ChecksumPolicy"/>.
/// </summary>
internal static class ReplayCommand
{
    private const string Usage = """
        Usage: ctfw replay [OPTIONS] PCAP

        Classifies every packet of a pcap or pcapng file as Linux conntrack would, with the packet
        timestamps as the clock, and with --rules gives each the verdict `ctfw run` would give it.
        Link types: Ethernet, raw IPv4/IPv6, Linux cooked (SLL, SLL2), NULL/LOOP, NFLOG. Output: one
        line per packet on stdout; a summary (and with --rules the rule counters in the layout of
        `iptables -L -v -n`) on stderr.

        Options:
          --format tsv|text     tsv (default): index, ctstate, direction, TCP state, INVALID reason,
                                and with --rules the verdict (ACCEPT, DROP, REJECT) and the deciding
                                rule (CHAIN:N, N counting from 1 as `iptables -L --line-numbers`, or
                                CHAIN:policy), tab-separated; text: adds time, protocol, addresses
                                and flags
          --rules FILE          an iptables-save ruleset (as for `ctfw run`): each packet is decided
                                as the daemon would; a NEW packet the rules drop creates no state
          --hook FORWARD|INPUT|OUTPUT
                                the built-in chain the packets enter (default FORWARD)
          --in IF, --out IF     the input and output interface every packet is given, for -i/-o
                                (default: none)
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
                                off: none, for captures whose checksums are stale for another
                                reason (rewritten by a tool; a sender whose driver leaves zero or
                                garbage there, so tcpdump -vv shows "cksum incorrect").
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
        string? rulesPath = null, inName = null, outName = null;
        PacketHook? hook = null;
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
            else if (cl.TryValue(arg, "--rules", out string rulesFile))
            {
                rulesPath = rulesFile;
            }
            else if (cl.TryValue(arg, "--hook", out string h))
            {
                hook = h.ToUpperInvariant() switch
                {
                    "FORWARD" => PacketHook.Forward,
                    "INPUT" => PacketHook.Input,
                    "OUTPUT" => PacketHook.Output,
                    _ => null,
                };
                if (hook is null)
                    cl.Fail($"--hook takes FORWARD, INPUT or OUTPUT, not '{h}'");
            }
            else if (cl.TryValue(arg, "--in", out string i) || cl.TryValue(arg, "--out", out i))
            {
                if (!IfName.TryCreate(i, out _) || i.Length == 0)
                    cl.Fail($"{(arg.StartsWith("--in", StringComparison.Ordinal) ? "--in" : "--out")} takes an interface name of 1 to {IfName.MaxLength} bytes, not '{i}'");
                else if (arg.StartsWith("--in", StringComparison.Ordinal))
                    inName = i;
                else
                    outName = i;
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
        if (rulesPath == null && (hook != null || inName != null || outName != null))
            return Program.Fail("--hook, --in and --out need --rules");
        ConntrackSettings? settings = opts.Build(out string? error);
        if (settings == null)
            return Program.Fail(error!);
        ReplayFirewall? firewall = null;
        if (rulesPath != null)
        {
            if (Program.LoadRules(rulesPath, "replayed") is not { } rules)
                return 2;
            firewall = new ReplayFirewall(rules, hook ?? PacketHook.Forward, inName, outName);
        }

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
        using var replayer = new Replayer(settings, format == "text", summaryOnly ? null : output, rescueOptions, checksums, firewall);
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
