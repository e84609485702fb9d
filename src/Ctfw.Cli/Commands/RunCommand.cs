using Ctfw.Firewall.Shadow;
using System.Globalization;
using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Linux.Firewall;
using Ctfw.Rules;

namespace Ctfw.Cli.Commands;

/// <summary>`ctfw run`: parses the options, loads the ruleset, then hands over to <see cref="FirewallDaemon"/>.</summary>
internal static class RunCommand
{
    private const string Usage = "Usage: ctfw run --rules FILE [--queue N | --queues N-M] [--install CHAINS [--on-rules-lost reinstall|exit|warn]] [--fail-closed]\n"
        + "                [--ab kernel [--ab-enforce kernel|ctfw] [--ab-mark-shift N]] [--control PATH]\n"
        + "                [--rescue [tombstone|loose]] [--rescue-window SECONDS] [--reset-on-expiry] [--stalled-after S]\n"
        + "                [--copy-range BYTES] [--queue-maxlen N] [--rcvbuf BYTES] [--queue-full drop|accept]\n"
        + "                [--state-file PATH [--state-interval S]] [--takeover | --takeover-from PID|PATH]\n"
        + "                [--import-kernel] [--export-kernel-on-exit]\n"
        + "                [--set NAME=VALUE]... [--sysctl-file FILE] [--sysctl-live]\n\n"
        + "Filters the packets of NFQUEUE queues in the current network namespace with conntrack and the\n"
        + "ruleset, until SIGTERM or SIGINT (or any other signal that would end it: SIGQUIT, SIGUSR1, ...);\n"
        + "then removes its iptables rules, prints counters to stderr and exits 0. SIGHUP (or `ctfw reload`)\n"
        + "re-reads the rules file and the sysctls: the new rules apply from the next batch, flows keep their\n"
        + "state, unchanged rules keep their counters, and a file with an error leaves the old rules.\n\n"
        + "  --rules FILE          iptables-save style ruleset (*filter: INPUT, FORWARD, OUTPUT)\n"
        + "  --queue N             NFQUEUE queue number (default 0)\n"
        + "  --queues N-M          one queue and one worker thread per number, N to M\n"
        + "  --install CHAINS      put NFQUEUE jumps into these filter chains (INPUT,OUTPUT,FORWARD) for\n"
        + "                        IPv4 and IPv6, removed at exit (queue-balance for a range)\n"
        + "  --on-rules-lost WHAT  once a second ctfw checks that its installed rules are still there and\n"
        + "                        its jumps first in their chains; when not (iptables -F, a firewall\n"
        + "                        reload), it says so and puts them back (reinstall, default) or stops\n"
        + "                        and exits 3 (exit), or only says so (warn)\n"
        + "  --fail-closed         drop instead of accept while no ctfw is bound to the queue (crash,\n"
        + "                        restart): the NFQUEUE rule without --queue-bypass\n"
        + "  --copy-range BYTES    bytes of each packet to copy from the kernel (default all)\n"
        + "  --queue-maxlen N      packets the kernel holds for ctfw per queue (default 4096)\n"
        + "  --rcvbuf BYTES        netlink receive buffer per queue (default 8388608)\n"
        + "  --queue-full WHAT     packets that find the queue or the buffer full (overload, a flood): drop\n"
        + "                        (default; the kernel counts them, stats unjudged_dropped, TCP resends)\n"
        + "                        or accept (they pass unjudged and uncounted, forbidden ones included)\n"
        + "  --ab kernel           shadow mode: compare every packet's ctstate with kernel conntrack's,\n"
        + "                        carried in mark bits by mangle rules (installed with --install);\n"
        + "                        count agreement per ctstate pair and log disagreements (docs/AB.md)\n"
        + "  --ab-enforce WHO      in shadow mode the rules use the kernel's ctstate (kernel, default)\n"
        + "                        or ctfw's (ctfw)\n"
        + "  --ab-mark-shift N     lowest of the four mark bits shadow mode uses (0..28, default 24:\n"
        + "                        mask 0x0f000000); the rules never see these bits\n"
        + "  --rescue [MODE]       after an entry expires, keep a tombstone (--rescue-window, default 120 s)\n"
        + "                        so a late FIN/RST that fits its sequence window passes as ESTABLISHED and\n"
        + "                        the teardown completes; 'loose' also accepts a bare FIN/RST with no\n"
        + "                        tombstone as a short closing-only entry (docs/RESCUE.md: the trade-offs)\n"
        + "  --rescue-window S     how long tombstones live (default 120)\n"
        + "  --reset-on-expiry     when an ESTABLISHED or half-closed TCP entry expires, send each endpoint a\n"
        + "                        correctly sequenced RST from the gateway (rate limited, counted)\n"
        + "  --stalled-after S     zero-window age from which `ctfw stats` counts a flow as stalled (default 10)\n"
        + "  --state-file PATH     keep the connection table across restarts: restored at start (entries whose\n"
        + "                        time ran out while ctfw was down are left out), written atomically on\n"
        + "                        SIGTERM/SIGINT and every --state-interval seconds (default 5); a damaged\n"
        + "                        or foreign file is moved aside (PATH.bad-TIME) and ctfw starts empty\n"
        + "  --state-interval S    seconds between checkpoints of --state-file (1..3600, default 5)\n"
        + "  --takeover            upgrade without a gap: take the queues (the bound sockets themselves), the\n"
        + "                        connection table and the iptables rules over from the running ctfw (the\n"
        + "                        only one, or --takeover-from PID|SOCKET); packets wait in the kernel queue\n"
        + "                        meanwhile; the queues and their settings must be the same\n"
        + "  --import-kernel       at start, adopt the connections kernel conntrack tracks in this namespace\n"
        + "                        (ctnetlink dump: tuples, TCP state, window scales and flags, status,\n"
        + "                        timeout); a TCP entry learns its sequence windows from its next packets\n"
        + "  --export-kernel-on-exit  when stopping, write ctfw's entries into the kernel's table (replacing\n"
        + "                        the kernel's own for the same flows) before removing the NFQUEUE rules,\n"
        + "                        so kernel filtering takes over the connections\n"
        + "  --control PATH        control socket for `ctfw stats` / `ctfw conntrack` (default\n"
        + "                        /run/ctfw/ctfw-PID.sock)\n\n"
        + "Conntrack settings start from this namespace's live sysctls, then:\n" + SettingsOptions.Help;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        var settingsOptions = new SettingsOptions();
        // The daemon judges this namespace's traffic: its sysctls are the baseline, files and --set refine them.
        settingsOptions.TryParse(cl, "--sysctl-live");
        string? rulesPath = null, statePath = null;
        int? stateInterval = null;
        ushort first = 0, last = 0;
        List<IptablesHook> install = [];
        bool failClosed = false;
        bool? queueFullAccept = null;
        uint copyRange = 0xFFFF;
        bool ab = false;
        bool abEnforceCtfw = false;
        int abShift = KernelStateMark.DefaultShift;
        string? controlPath = null;
        RescueMode rescue = RescueMode.Off;
        int rescueWindow = 120;
        bool resetOnExpiry = false;
        int stalledAfter = Control.FlowAges.DefaultStalledAfterSeconds;
        uint queueMaxLength = 4096;
        int receiveBuffer = 8 << 20;
        bool takeover = false;
        string? takeoverFrom = null;
        bool importKernel = false, exportKernel = false;
        RulesLostAction? onRulesLost = null;
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(Usage);
                return 0;
            }
            if (cl.TryValue(arg, "--rules", out string rules))
            {
                rulesPath = rules;
            }
            else if (cl.TryValue(arg, "--queue", out string queue))
            {
                if (!TryParseQueue(queue, out first))
                    cl.Fail($"--queue {queue}: expected a number 0..65535");
                last = first;
            }
            else if (cl.TryValue(arg, "--queues", out string queues))
            {
                if (!TryParseRange(queues, out first, out last))
                    cl.Fail($"--queues {queues}: expected N-M with 0 <= N <= M <= 65535");
            }
            else if (cl.TryValue(arg, "--install", out string chains))
            {
                if (!TryParseHooks(chains, install))
                    cl.Fail($"--install {chains}: expected a comma-separated list of INPUT, OUTPUT, FORWARD");
            }
            else if (cl.TryValue(arg, "--copy-range", out string range))
            {
                if (!uint.TryParse(range, NumberStyles.None, CultureInfo.InvariantCulture, out copyRange) || copyRange is < 40 or > 0xFFFF)
                    cl.Fail($"--copy-range {range}: expected 40..65535 bytes");
            }
            else if (cl.TryValue(arg, "--ab", out string abWith))
            {
                if (abWith != "kernel")
                    cl.Fail($"--ab {abWith}: the only reference ctfw compares with is 'kernel'");
                ab = true;
            }
            else if (cl.TryValue(arg, "--ab-enforce", out string who))
            {
                if (who is not ("kernel" or "ctfw"))
                    cl.Fail($"--ab-enforce {who}: expected kernel or ctfw");
                abEnforceCtfw = who == "ctfw";
            }
            else if (cl.TryValue(arg, "--ab-mark-shift", out string shift))
            {
                if (!int.TryParse(shift, NumberStyles.None, CultureInfo.InvariantCulture, out abShift) || !KernelStateMark.IsValidShift(abShift))
                    cl.Fail($"--ab-mark-shift {shift}: expected 0..28 (four bits from there up)");
            }
            else if (cl.TryValue(arg, "--queue-maxlen", out string maxlen))
            {
                if (!uint.TryParse(maxlen, NumberStyles.None, CultureInfo.InvariantCulture, out queueMaxLength) || queueMaxLength is < 1 or > 1_048_576)
                    cl.Fail($"--queue-maxlen {maxlen}: expected 1..1048576 packets");
            }
            else if (cl.TryValue(arg, "--rcvbuf", out string rcvbuf))
            {
                if (!int.TryParse(rcvbuf, NumberStyles.None, CultureInfo.InvariantCulture, out receiveBuffer) || receiveBuffer is < 65536 or > 1 << 30)
                    cl.Fail($"--rcvbuf {rcvbuf}: expected 65536..1073741824 bytes");
            }
            else if (arg == "--rescue")
            {
                rescue = RescueMode.Tombstone;
                if (cl.TryPeek(out string mode) && mode is "tombstone" or "loose")
                {
                    cl.TryNext(out _);
                    rescue = mode == "loose" ? RescueMode.Loose : RescueMode.Tombstone;
                }
            }
            else if (arg.StartsWith("--rescue=", StringComparison.Ordinal))
            {
                string mode = arg["--rescue=".Length..];
                if (mode is not ("tombstone" or "loose"))
                    cl.Fail($"--rescue={mode}: expected tombstone or loose");
                rescue = mode == "loose" ? RescueMode.Loose : RescueMode.Tombstone;
            }
            else if (cl.TryValue(arg, "--rescue-window", out string window))
            {
                if (!int.TryParse(window, NumberStyles.None, CultureInfo.InvariantCulture, out rescueWindow) || rescueWindow is < 1 or > 86400)
                    cl.Fail($"--rescue-window {window}: expected 1..86400 seconds");
            }
            else if (cl.TryValue(arg, "--stalled-after", out string stalled))
            {
                if (!int.TryParse(stalled, NumberStyles.None, CultureInfo.InvariantCulture, out stalledAfter) || stalledAfter is < 1 or > 86400)
                    cl.Fail($"--stalled-after {stalled}: expected 1..86400 seconds");
            }
            else if (cl.TryValue(arg, "--state-file", out string statePathValue))
            {
                statePath = Path.GetFullPath(statePathValue);
            }
            else if (cl.TryValue(arg, "--state-interval", out string interval))
            {
                if (!int.TryParse(interval, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds is < 1 or > 3600)
                    cl.Fail($"--state-interval {interval}: expected 1..3600 seconds");
                stateInterval = seconds;
            }
            else if (arg == "--import-kernel")
            {
                importKernel = true;
            }
            else if (arg == "--export-kernel-on-exit")
            {
                exportKernel = true;
            }
            else if (arg == "--takeover")
            {
                takeover = true;
            }
            else if (cl.TryValue(arg, "--takeover-from", out string from))
            {
                takeover = true;
                takeoverFrom = from;
            }
            else if (arg == "--reset-on-expiry")
            {
                resetOnExpiry = true;
            }
            else if (cl.TryValue(arg, "--control", out string control))
            {
                controlPath = control;
            }
            else if (cl.TryValue(arg, "--on-rules-lost", out string lostAction))
            {
                onRulesLost = lostAction switch
                {
                    "reinstall" => RulesLostAction.Reinstall,
                    "exit" => RulesLostAction.Exit,
                    "warn" => RulesLostAction.Warn,
                    _ => null,
                };
                if (onRulesLost is null)
                    cl.Fail($"--on-rules-lost {lostAction}: expected reinstall, exit or warn");
            }
            else if (arg == "--fail-closed")
            {
                failClosed = true;
            }
            else if (cl.TryValue(arg, "--queue-full", out string queueFull))
            {
                queueFullAccept = queueFull switch { "drop" => false, "accept" => true, _ => null };
                if (queueFullAccept is null)
                    cl.Fail($"--queue-full {queueFull}: expected drop or accept");
            }
            else if (!settingsOptions.TryParse(cl, arg) && cl.Error == null)
            {
                cl.Fail($"unknown option '{arg}' for run");
            }
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }
        if (rulesPath is null)
            return Program.Fail("run needs --rules FILE (try `ctfw run --help`)");
        if (onRulesLost is not null && install.Count == 0)
            return Program.Fail("--on-rules-lost needs --install (ctfw checks only the rules it installed)");
        if (stateInterval is not null && statePath is null)
            return Program.Fail("--state-interval needs --state-file");
        if (!ab && (abEnforceCtfw || abShift != KernelStateMark.DefaultShift))
            return Program.Fail("--ab-enforce and --ab-mark-shift need --ab kernel");
        if (ab && install.Count == 0)
        {
            Console.Error.WriteLine("ctfw: note: --ab kernel without --install: the mangle rules that carry the kernel's ctstate must be in place "
                + "(see docs/AB.md), or every packet counts as unmarked");
        }

        if (failClosed && queueFullAccept == true)
            return Program.Fail("--fail-closed and --queue-full accept: fail-closed drops what ctfw cannot judge; choose one");
        if (queueFullAccept == true)
        {
            Console.Error.WriteLine("ctfw: warning: --queue-full accept: under overload, packets that find the queue full pass without "
                + "a verdict, including ones the rules forbid, and neither ctfw nor the kernel counts them");
        }

        if (takeover && importKernel)
            return Program.Fail("--takeover and --import-kernel: a takeover gets its table from the running ctfw");
        string? takeoverPath = null;
        if (takeover)
        {
            takeoverPath = ResolveTakeover(takeoverFrom, out string? takeoverError);
            if (takeoverPath is null)
                return Program.Fail($"--takeover: {takeoverError}");
        }

        if (Program.LoadRules(rulesPath, "started") is not { } ruleset)
            return 2;

        var settings = settingsOptions.Build(out string? settingsError);
        if (settings is null)
            return Program.Fail(settingsError!);

        var options = new DaemonOptions(ruleset, settings, first, last, install, failClosed, copyRange)
        {
            AbMark = ab ? new KernelStateMark(abShift) : null,
            AbEnforceCtfw = abEnforceCtfw,
            ControlPath = controlPath,
            QueueMaxLength = queueMaxLength,
            QueueFullAccept = queueFullAccept ?? false,
            Rescue = new RescueOptions { Mode = rescue, WindowSeconds = rescueWindow },
            ResetOnExpiry = resetOnExpiry,
            StalledAfterMs = stalledAfter * 1000L,
            ReceiveBufferBytes = receiveBuffer,
            StatePath = statePath,
            TakeoverFrom = takeoverPath,
            ImportKernel = importKernel,
            ExportKernelOnExit = exportKernel,
            OnRulesLost = onRulesLost ?? RulesLostAction.Reinstall,
            StateIntervalMs = (stateInterval ?? 5) * 1000,
            RebuildSettings = () => (settingsOptions.Build(out string? error), error),
        };
        // Its own stream on fd 2, not Console.Error: the daemon's log writer may sit in a write for
        // ever when stderr is not read, and must not hold Console.Error's lock while it does.
        using var daemon = new FirewallDaemon(options, Console.OpenStandardError());
        return daemon.Run();
    }

    /// <summary>The control socket of the ctfw to take over: PID, a socket path, or the only one running.</summary>
    private static string? ResolveTakeover(string? from, out string? error)
    {
        error = null;
        if (from is null)
        {
            List<Control.RunningInstance> running = Control.ControlPaths.FindRunning().FindAll(r => r.Pid != Environment.ProcessId);
            if (running.Count == 1)
                return running[0].SocketPath;
            error = running.Count == 0
                ? $"no running ctfw to take over (no control socket in {Control.ControlPaths.RunDirectory}; give --takeover-from PID|SOCKET)"
                : $"{running.Count} ctfw instances are running (pids {string.Join(", ", running.Select(r => r.Pid.ToString(CultureInfo.InvariantCulture)))}); choose one with --takeover-from PID";
            return null;
        }
        if (int.TryParse(from, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid > 0)
        {
            string path = Control.ControlPaths.Default(pid);
            if (File.Exists(path))
                return path;
            error = $"no ctfw with pid {pid} (no control socket {path})";
            return null;
        }
        if (File.Exists(from))
            return from;
        error = $"--takeover-from {from}: neither a pid nor an existing control socket";
        return null;
    }

    private static bool TryParseQueue(string text, out ushort queue) =>
        ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out queue);

    private static bool TryParseRange(string text, out ushort first, out ushort last)
    {
        last = 0;
        int dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
            return TryParseQueue(text, out first) && (last = first) == first;
        return TryParseQueue(text[..dash], out first) && TryParseQueue(text[(dash + 1)..], out last) && first <= last;
    }

    private static bool TryParseHooks(string text, List<IptablesHook> hooks)
    {
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            IptablesHook? hook = part.ToUpperInvariant() switch
            {
                "INPUT" => IptablesHook.Input,
                "OUTPUT" => IptablesHook.Output,
                "FORWARD" => IptablesHook.Forward,
                _ => null,
            };
            if (hook is not { } h)
                return false;
            if (!hooks.Contains(h))
                hooks.Add(h);
        }
        return hooks.Count > 0;
    }
}
