using System.CommandLine;
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
    public const int DamagedExit = 3;

    /// <summary>`ctfw replay ARGS…` (args[0] is "replay"), the per-packet lines to <paramref name="stdout"/> (tests).</summary>
    internal static int Run(string[] args, TextWriter? stdout) => CommandLine.Invoke(CommandLine.Root(Create(stdout)), args);

    /// <param name="stdout">where the per-packet lines go (tests); null: the process's stdout</param>
    public static CtfwCommand Create(TextWriter? stdout = null)
    {
        var command = new CtfwCommand("replay",
            "classify every packet of a pcap/pcapng file as kernel conntrack would (and with --rules, give each the verdict `ctfw run` would)",
            "[OPTIONS] PCAP")
        {
            Details = """
                Classifies every packet of a pcap or pcapng file as Linux conntrack would, with the packet
                timestamps as the clock, and with --rules gives each the verdict `ctfw run` would give it.
                Link types: Ethernet, raw IPv4/IPv6, Linux cooked (SLL, SLL2), NULL/LOOP, NFLOG. Output: one
                line per packet on stdout; a summary (and with --rules the rule counters in the layout of
                `iptables -L -v -n`) on stderr. PCAP `-` reads standard input.
                """,
            ExitCodes =
            [
                (0, "the whole file was read"),
                (1, "the file cannot be opened or read"),
                (CommandLine.UsageExit, "usage error, or the rules or sysctls do not load"),
                (DamagedExit, "the file is damaged (packets before the damage are still classified and printed)"),
            ],
        };
        var pcap = new Argument<string[]>("PCAP") { Arity = ArgumentArity.ZeroOrMore };
        Option<string> format = Opt.Value("--format", "tsv|text",
            "tsv (default): index, ctstate (DROPPED: conntrack itself dropped it), direction, TCP state, INVALID reason, and "
            + "with --rules the verdict (ACCEPT, DROP, REJECT) and the deciding rule (CHAIN:N, N counting from 1 as "
            + "`iptables -L --line-numbers`, or CHAIN:policy), tab-separated; text: adds the time and the packet (protocol, "
            + "addresses, flags) in aligned columns, the packet last. Both start with a header line beginning with #",
            (string t, out string v) => (v = t) is "tsv" or "text", (used, t) => $"{used} must be tsv or text, not '{t}'");
        Option<string> rules = Opt.Text("--rules", "FILE",
            "an iptables-save ruleset (as for `ctfw run`): each packet is decided as the daemon would; a NEW packet the rules drop creates no state");
        Option<PacketHook> hook = Opt.Value("--hook", "FORWARD|INPUT|OUTPUT", "the built-in chain the packets enter (default FORWARD)",
            (string t, out PacketHook h) => TryParseHook(t, out h), (used, t) => $"{used} takes FORWARD, INPUT or OUTPUT, not '{t}'");
        Option<string> inName = InterfaceOption("--in", "the input interface every packet is given, for -i (default: none)");
        Option<string> outName = InterfaceOption("--out", "the output interface every packet is given, for -o (default: none)");
        Option<bool> summaryOnly = Opt.Flag("--summary-only", "print only the summary");
        var rescue = new RescueCommandOptions();
        Option<ChecksumPolicy> checksums = Opt.Value("--checksums", "auto|verify|off",
            "which packets get their TCP/UDP/ICMP checksum verified (as the kernel does at PRE_ROUTING). auto (default): those "
            + "captured whole, except ones still carrying the checksum-offload placeholder, which the kernel does not verify either; "
            + "verify: all captured whole; off: none, for captures whose checksums are stale for another reason (rewritten by a "
            + "tool; a sender whose driver leaves zero or garbage there, so tcpdump -vv shows \"cksum incorrect\"). Records cut "
            + "by the snap length are never verified, and Ethernet padding after the IP datagram is never part of it",
            (string t, out ChecksumPolicy c) => ChecksumPolicyNames.TryParse(t, out c), (used, t) => $"{used} takes {ChecksumPolicyNames.Choices}, not '{t}'");
        var settings = new SettingsOptions(offerLive: true);

        format.Completing("tsv", "text");
        hook.Completing("FORWARD", "INPUT", "OUTPUT");
        checksums.Completing("auto", "verify", "off");

        command.Arguments.Add(pcap);
        command.Add(format, null);
        command.Add(rules, null);
        command.Add(hook, null);
        command.Add(inName, null);
        command.Add(outName, null);
        command.Add(summaryOnly, null);
        rescue.AddTo(command);
        command.Add(checksums, null);
        settings.AddTo(command, "Conntrack settings");

        command.SetAction(r =>
        {
            // The parser hands unknown options to the argument: they are not file names here.
            List<string> paths = [.. r.GetValue(pcap) ?? []];
            if (paths.Find(p => p.StartsWith('-') && p != "-") is { } unknown)
                return Program.Fail($"unknown option '{unknown}' for replay (see `ctfw replay --help`)");
            if (rescue.Read(r, out string? rescueError, out string? notMode) is not { } rescueOptions)
                return Program.Fail(rescueError!);
            if (notMode != null && paths.Count > 0)
                return Program.Fail($"--rescue takes tombstone or loose, not '{notMode}'");
            if (notMode != null)
                paths.Add(notMode);
            if (paths.Count == 0)
                return Program.Fail("replay needs a capture file (see `ctfw replay --help`)");
            if (paths.Count > 1)
                return Program.Fail($"replay takes one capture file; got '{paths[0]}' and '{paths[1]}'");
            string? rulesPath = r.GetValue(rules);
            bool hookGiven = r.Given(hook);
            if (rulesPath == null && (hookGiven || r.GetValue(inName) != null || r.GetValue(outName) != null))
                return Program.Fail("--hook, --in and --out need --rules");
            ConntrackSettings? conntrack = settings.Read(r).Build(out string? error);
            if (conntrack == null)
                return Program.Fail(error!);
            ReplayFirewall? firewall = null;
            if (rulesPath != null)
            {
                if (Program.LoadRules(rulesPath, "replayed") is not { } ruleset)
                    return 2;
                firewall = new ReplayFirewall(ruleset, hookGiven ? r.GetValue(hook) : PacketHook.Forward, r.GetValue(inName), r.GetValue(outName));
            }
            return Replay(paths[0], r.GetValue(format) == "text", r.GetValue(summaryOnly),
                rescueOptions.Mode == RescueMode.Off ? null : rescueOptions,
                !r.Given(checksums) ? ChecksumPolicy.Auto : r.GetValue(checksums), conntrack, firewall, stdout);
        });
        return command;
    }

    private static Option<string> InterfaceOption(string name, string description) =>
        Opt.Value(name, "IF", description, (string t, out string v) => IfName.TryCreate(v = t, out _) && t.Length > 0,
            (used, t) => $"{used} takes an interface name of 1 to {IfName.MaxLength} bytes, not '{t}'");

    private static bool TryParseHook(string text, out PacketHook hook)
    {
        PacketHook? h = text.ToUpperInvariant() switch
        {
            "FORWARD" => PacketHook.Forward,
            "INPUT" => PacketHook.Input,
            "OUTPUT" => PacketHook.Output,
            _ => null,
        };
        hook = h ?? default;
        return h is not null;
    }

    private static int Replay(string path, bool text, bool summaryOnly, RescueOptions? rescueOptions, ChecksumPolicy checksums,
        ConntrackSettings settings, ReplayFirewall? firewall, TextWriter? stdout)
    {
        if (Open(path, out string? why) is not { } stream)
        {
            Console.Error.WriteLine($"ctfw: cannot open '{path}': {why}");
            return 1;
        }

        using TextWriter output = stdout ?? new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16);
        using var replayer = new Replayer(settings, text, summaryOnly ? null : output, rescueOptions, checksums, firewall);
        replayer.WriteHeader();
        using (var reader = new CaptureReader(stream))
        {
            while (reader.TryRead(out CaptureRecord record))
                replayer.Process(record);
            output.Flush();
            replayer.PrintSummary(Console.Error);
            if (reader.Error is CaptureError damage)
            {
                Console.Error.WriteLine($"ctfw: {path}: damaged at byte offset {damage.Offset}: {damage.Message} ({replayer.Packets} records before it were classified)");
                return DamagedExit;
            }
        }
        return 0;
    }

    /// <summary>The capture to read (`-`: stdin), or null with why not in a few words (the runtime's messages mislead: a directory is "access denied").</summary>
    internal static Stream? Open(string path, out string? why)
    {
        why = null;
        if (path == "-")
            return Console.OpenStandardInput();
        if (Directory.Exists(path))
        {
            why = "it is a directory, not a capture file";
            return null;
        }
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            why = "no such file";
        }
        catch (UnauthorizedAccessException)
        {
            why = "permission denied";
        }
        catch (IOException e)
        {
            why = e.Message;
        }
        return null;
    }
}
