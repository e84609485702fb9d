using System.CommandLine;
using System.Globalization;
using Ctfw.Firewall.Shadow;
using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Linux.Firewall;
using Ctfw.Rules;

namespace Ctfw.Cli.Commands;

/// <summary>`ctfw run`: parses the options, loads the ruleset, then hands over to <see cref="FirewallDaemon"/>.</summary>
internal static class RunCommand
{
    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("run", "filter NFQUEUE traffic of this network namespace with conntrack and a ruleset", "--rules FILE [OPTIONS]")
        {
            Details = """
                Filters the packets of NFQUEUE queues in the current network namespace with conntrack and the
                ruleset, until SIGTERM or SIGINT (or any other signal that would end it: SIGQUIT, SIGUSR1, ...);
                then removes its iptables rules, prints counters to stderr and exits 0. SIGHUP (or `ctfw reload`)
                re-reads the rules file and the sysctls: the new rules apply from the next batch, flows keep their
                state, unchanged rules keep their counters, and a file with an error leaves the old rules.
                """,
            Notes = "Conntrack settings start from this namespace's live sysctls (/proc/sys/net/netfilter), then\n"
                + "--sysctl-file and --set refine them, in that order.",
            ExitCodes =
            [
                (0, "stopped by a signal after removing its rules and writing its state"),
                (1, "could not start or failed while running (queue bind, iptables, a capability, the state file, the takeover)"),
                (CommandLine.UsageExit, "usage error, or the rules or sysctls do not load (nothing started)"),
                (JumpWatch.ExitStatus, "its installed rules were lost and --on-rules-lost exit was given"),
            ],
        };
        Option<string> rules = Opt.Text("--rules", "FILE", "iptables-save style ruleset (*filter: INPUT, FORWARD, OUTPUT)");
        Option<ushort> queue = Opt.Value("--queue", "N", "NFQUEUE queue number (default 0)", (string t, out ushort q) => TryParseQueue(t, out q), "a number 0..65535");
        Option<(ushort First, ushort Last)> queues = Opt.Value("--queues", "N-M", "one queue and one worker thread per number, N to M",
            (string t, out (ushort, ushort) r) => TryParseRange(t, out r.Item1, out r.Item2), "N-M with 0 <= N <= M <= 65535");
        Option<List<IptablesHook>> install = Opt.Value("--install", "CHAINS",
            "put NFQUEUE jumps into these filter chains (INPUT,OUTPUT,FORWARD) for IPv4 and IPv6, removed at exit (queue-balance for a range)",
            (string t, out List<IptablesHook> hooks) => TryParseHooks(t, hooks = []), "a comma-separated list of INPUT, OUTPUT, FORWARD");
        Option<RulesLostAction> onRulesLost = Opt.Value("--on-rules-lost", "WHAT",
            "once a second ctfw checks that its installed rules are still there and its jumps first in their chains; when not "
            + "(iptables -F, a firewall reload), it says so and puts them back (reinstall, default) or stops and exits 3 (exit), or only says so (warn)",
            (string t, out RulesLostAction a) => TryParseLost(t, out a), "reinstall, exit or warn");
        Option<bool> failClosed = Opt.Flag("--fail-closed",
            "drop instead of accept while no ctfw is bound to the queue (crash, restart): the NFQUEUE rule without --queue-bypass");
        Option<int> copyRange = Opt.Int("--copy-range", "BYTES", "bytes of each packet to copy from the kernel (default all)", 40, 0xFFFF, "bytes");
        Option<int> queueMaxLength = Opt.Int("--queue-maxlen", "N", "packets the kernel holds for ctfw per queue (default 4096)", 1, 1_048_576, "packets");
        Option<int> receiveBuffer = Opt.Int("--rcvbuf", "BYTES", "netlink receive buffer per queue (default 8388608)", 65536, 1 << 30, "bytes");
        Option<string> queueFull = Opt.Choice("--queue-full",
            "packets that find the queue or the buffer full (overload, a flood): drop (default; the kernel counts them, stats "
            + "unjudged_dropped, TCP resends) or accept (they pass unjudged and uncounted, forbidden ones included)", "drop", "accept");
        queueFull.HelpName = "WHAT";
        Option<string> ab = Opt.Value("--ab", "kernel",
            "shadow mode: compare every packet's ctstate with kernel conntrack's, carried in mark bits by mangle rules (installed with "
            + "--install); count agreement per ctstate pair and log disagreements (docs/AB.md)",
            (string t, out string v) => (v = t) == "kernel", (used, t) => $"{used} {t}: the only reference ctfw compares with is 'kernel'");
        Option<string> abEnforce = Opt.Choice("--ab-enforce",
            "in shadow mode the rules use the kernel's ctstate (kernel, default) or ctfw's (ctfw)", "kernel", "ctfw");
        abEnforce.HelpName = "WHO";
        Option<int> abShift = Opt.Value("--ab-mark-shift", "N",
            $"lowest of the four mark bits shadow mode uses (0..28, default {KernelStateMark.DefaultShift}: mask 0x0f000000); the rules never see these bits",
            (string t, out int v) => int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out v) && KernelStateMark.IsValidShift(v),
            "0..28 (four bits from there up)");
        var rescue = new RescueCommandOptions();
        Option<bool> resetOnExpiry = Opt.Flag("--reset-on-expiry",
            "when an ESTABLISHED or half-closed TCP entry expires, send each endpoint a correctly sequenced RST from the gateway (rate limited, counted)");
        Option<int> stalledAfter = Opt.Int("--stalled-after", "S",
            $"zero-window age from which `ctfw stats` counts a flow as stalled (default {Control.FlowAges.DefaultStalledAfterSeconds})", 1, 86400, "seconds");
        Option<string> statePath = Opt.Text("--state-file", "PATH",
            "keep the connection table across restarts: restored at start (entries whose time ran out while ctfw was down are left out), "
            + "written atomically on SIGTERM/SIGINT and every --state-interval seconds; a damaged or foreign file is moved aside "
            + "(PATH.bad-TIME) and ctfw starts empty");
        Option<int> stateInterval = Opt.Int("--state-interval", "S", "seconds between checkpoints of --state-file (1..3600, default 5)", 1, 3600, "seconds");
        Option<bool> takeover = Opt.Flag("--takeover",
            "upgrade without a gap: take the queues (the bound sockets themselves), the connection table and the iptables rules over "
            + "from the running ctfw (the only one, or --takeover-from); packets wait in the kernel queue meanwhile; the queues and "
            + "their settings must be the same");
        Option<string> takeoverFrom = Opt.Text("--takeover-from", "PID|PATH", "as --takeover, from the ctfw with this pid or control socket");
        Option<bool> importKernel = Opt.Flag("--import-kernel",
            "at start, adopt the connections kernel conntrack tracks in this namespace (ctnetlink dump: tuples, TCP state, window "
            + "scales and flags, status, timeout); a TCP entry learns its sequence windows from its next packets");
        Option<bool> exportKernel = Opt.Flag("--export-kernel-on-exit",
            "when stopping, write ctfw's entries into the kernel's table (replacing the kernel's own for the same flows) before "
            + "removing the NFQUEUE rules, so kernel filtering takes over the connections");
        Option<string> control = Opt.Text("--control", "PATH", "control socket for `ctfw stats` / `ctfw conntrack` (default /run/ctfw/ctfw-PID.sock)");
        Option<string> controlGroup = Opt.Text("--control-group", "GROUP",
            "members of GROUP (a name in /etc/group or a gid) may read through the control socket: stats, conntrack -L, rules; "
            + "the socket becomes 0660 owned by GROUP");
        Option<string> controlAdminGroup = Opt.Text("--control-admin-group", "GROUP",
            "members of GROUP may also change things through the control socket (flush, delete, reload, rules -Z, takeover), as root can");
        Option<string> metrics = Opt.Text("--metrics", "ADDR:PORT",
            "serve Prometheus metrics at http://ADDR:PORT/metrics (an IPv4 address; 0.0.0.0 for every one)");
        Option<string> offload = Opt.Choice("--offload",
            "established: hand established TCP and assured UDP flows the rules accept to the kernel's nftables sets, so their data packets "
            + "skip the queue (needs --install; docs/OFFLOAD.md says what is given up); off (default)", "off", "established");
        offload.HelpName = "MODE";
        Option<uint> offloadMark = Opt.Value("--offload-mark", "HEX", "mark bit(s) the kernel ORs into packets of offloaded flows (default 0x40000000)",
            (string t, out uint v) => TryParseMark(t, out v), "a non-zero hexadecimal mark, e.g. 0x40000000");
        Option<int> offloadDelay = Opt.Int("--offload-delay", "MS", "a TCP flow is offloaded once ESTABLISHED this long (0..60000, default 100)", 0, 60_000, "ms");
        Option<string> sync = Opt.Choice("--sync",
            "ftfw: keep the table in step with a peer gateway over conntrackd's FTFW protocol (needs --sync-local and --sync-peer; "
            + "docs/HA.md); off (default)", "off", "ftfw");
        sync.HelpName = "MODE";
        Option<string> syncLocal = Opt.Text("--sync-local", "ADDR:PORT", "the address and UDP port ctfw sends from and listens on for the peer's sync messages");
        Option<string> syncPeer = Opt.Text("--sync-peer", "ADDR:PORT",
            "the peer gateway (ctfw or conntrackd): sync messages go there, and only this address's are accepted");
        Option<string> syncInterface = Opt.Text("--sync-interface", "IF", "bind the sync socket to this interface (the dedicated sync link)");
        Option<bool> syncCommitOnStart = Opt.Flag("--sync-commit-on-start",
            "at start, ask the peer for its table and make it live once the peer has sent it (a restarted active gateway)");
        var settings = new SettingsOptions(offerLive: false);

        install.Completing("INPUT", "OUTPUT", "FORWARD", "INPUT,OUTPUT", "FORWARD,INPUT,OUTPUT");
        onRulesLost.Completing("reinstall", "exit", "warn");
        ab.Completing("kernel");

        command.Add(rules, null);
        command.Add(queue, null);
        command.Add(queues, null);
        command.Add(install, null);
        command.Add(onRulesLost, null);
        command.Add(failClosed, null);
        command.Add(copyRange, null);
        command.Add(queueMaxLength, null);
        command.Add(receiveBuffer, null);
        command.Add(queueFull, null);
        command.Add(ab, null);
        command.Add(abEnforce, null);
        command.Add(abShift, null);
        rescue.AddTo(command);
        command.Add(resetOnExpiry, null);
        command.Add(stalledAfter, null);
        command.Add(statePath, null);
        command.Add(stateInterval, null);
        command.Add(takeover, null);
        command.Add(takeoverFrom, null);
        command.Add(importKernel, null);
        command.Add(exportKernel, null);
        command.Add(control, null);
        command.Add(controlGroup, null);
        command.Add(controlAdminGroup, null);
        command.Add(metrics, null);
        command.Add(offload, null);
        command.Add(offloadMark, null);
        command.Add(offloadDelay, null);
        command.Add(sync, null);
        command.Add(syncLocal, null);
        command.Add(syncPeer, null);
        command.Add(syncInterface, null);
        command.Add(syncCommitOnStart, null);
        settings.AddTo(command, "Conntrack settings");

        command.SetAction(r =>
        {
            if (r.GetValue(rules) is not { } rulesPath)
                return Program.Fail("run needs --rules FILE (try `ctfw run --help`)");
            List<IptablesHook> hooks = r.GetValue(install) ?? [];
            if (r.Given(queue) && r.Given(queues))
                return Program.Fail("use --queue or --queues, not both");
            (ushort first, ushort last) = r.Given(queues) ? r.GetValue(queues) : (r.GetValue(queue), r.GetValue(queue));
            if (r.Given(onRulesLost) && hooks.Count == 0)
                return Program.Fail("--on-rules-lost needs --install (ctfw checks only the rules it installed)");
            if (r.Given(stateInterval) && !r.Given(statePath))
                return Program.Fail("--state-interval needs --state-file");
            bool abOn = r.Given(ab);
            bool abEnforceCtfw = r.GetValue(abEnforce) == "ctfw";
            int shift = r.Given(abShift) ? r.GetValue(abShift) : KernelStateMark.DefaultShift;
            if (!abOn && (abEnforceCtfw || shift != KernelStateMark.DefaultShift))
                return Program.Fail("--ab-enforce and --ab-mark-shift need --ab kernel");
            if (abOn && hooks.Count == 0)
            {
                Console.Error.WriteLine("ctfw: note: --ab kernel without --install: the mangle rules that carry the kernel's ctstate must be in place "
                    + "(see docs/AB.md), or every packet counts as unmarked");
            }
            if (rescue.Read(r, out string? rescueError, out string? notMode) is not { } rescueOptions)
                return Program.Fail(rescueError!);
            if (notMode != null)
                return Program.Fail($"--rescue takes tombstone or loose, not '{notMode}'");

            bool queueFullAccept = r.GetValue(queueFull) == "accept";
            if (r.GetValue(failClosed) && queueFullAccept)
                return Program.Fail("--fail-closed and --queue-full accept: fail-closed drops what ctfw cannot judge; choose one");
            if (queueFullAccept)
            {
                Console.Error.WriteLine("ctfw: warning: --queue-full accept: under overload, packets that find the queue full pass without "
                    + "a verdict, including ones the rules forbid, and neither ctfw nor the kernel counts them");
            }

            bool takingOver = r.GetValue(takeover) || r.Given(takeoverFrom);
            if (takingOver && r.GetValue(importKernel))
                return Program.Fail("--takeover and --import-kernel: a takeover gets its table from the running ctfw");
            string? takeoverPath = null;
            if (takingOver)
            {
                takeoverPath = ResolveTakeover(r.GetValue(takeoverFrom), out string? takeoverError);
                if (takeoverPath is null)
                    return Program.Fail($"--takeover: {takeoverError}");
            }

            // Looked up now, so a misspelt group stops the start instead of leaving the daemon without a socket.
            if (Control.ControlAccess.Resolve(r.GetValue(controlGroup), r.GetValue(controlAdminGroup), out string? groupError) is null)
                return Program.Fail(groupError!);

            Metrics.MetricsEndpoint? metricsEndpoint = null;
            if (r.GetValue(metrics) is { } metricsText && !Metrics.MetricsEndpoint.TryParse(metricsText, out metricsEndpoint, out string? metricsError))
                return Program.Fail(metricsError!);

            bool offloadOn = r.GetValue(offload) == "established";
            uint offloadBits = r.Given(offloadMark) ? r.GetValue(offloadMark) : DaemonOptions.DefaultOffloadMark;
            if (!offloadOn && (r.Given(offloadMark) || r.Given(offloadDelay)))
                return Program.Fail("--offload-mark and --offload-delay need --offload established");
            if (offloadOn && hooks.Count == 0)
                return Program.Fail("--offload established needs --install: ctfw's own iptables chain must accept the marked packets before its NFQUEUE rule");
            if (offloadOn && abOn && (offloadBits & new KernelStateMark(shift).Mask) != 0)
                return Program.Fail($"--offload-mark 0x{offloadBits:x8} overlaps the --ab mark bits 0x{new KernelStateMark(shift).Mask:x8}");

            SyncOptions? syncOptions = null;
            if (r.GetValue(sync) == "ftfw")
            {
                if (r.GetValue(syncLocal) is not { } localText || r.GetValue(syncPeer) is not { } peerText)
                    return Program.Fail("--sync ftfw needs --sync-local ADDR:PORT and --sync-peer ADDR:PORT");
                if (SyncOptions.ParseEndpoint(localText, "--sync-local", out string? localError) is not { } localEnd)
                    return Program.Fail(localError!);
                if (SyncOptions.ParseEndpoint(peerText, "--sync-peer", out string? peerError) is not { } peerEnd)
                    return Program.Fail(peerError!);
                if (r.GetValue(syncInterface) is { } dev && (dev.Length is 0 or > 15 || dev.Contains('/', StringComparison.Ordinal) || dev.Any(char.IsWhiteSpace)))
                    return Program.Fail($"--sync-interface '{dev}': not an interface name");
                syncOptions = new SyncOptions(localEnd, peerEnd) { Interface = r.GetValue(syncInterface), CommitOnStart = r.GetValue(syncCommitOnStart) };
            }
            else if (r.Given(syncLocal) || r.Given(syncPeer) || r.Given(syncInterface) || r.GetValue(syncCommitOnStart))
            {
                return Program.Fail("--sync-local, --sync-peer, --sync-interface and --sync-commit-on-start need --sync ftfw");
            }

            if (Program.LoadRules(rulesPath, "started") is not { } ruleset)
                return 2;

            // The daemon judges this namespace's traffic: its sysctls are the baseline, files and --set refine them.
            SettingsOptions.Settings sources = settings.Read(r, live: true);
            if (sources.Build(out string? settingsError) is not { } conntrackSettings)
                return Program.Fail(settingsError!);

            var options = new DaemonOptions(ruleset, conntrackSettings, first, last, hooks, r.GetValue(failClosed), r.Given(copyRange) ? (uint)r.GetValue(copyRange) : 0xFFFF)
            {
                AbMark = abOn ? new KernelStateMark(shift) : null,
                AbEnforceCtfw = abEnforceCtfw,
                ControlPath = r.GetValue(control),
                ControlGroup = r.GetValue(controlGroup),
                ControlAdminGroup = r.GetValue(controlAdminGroup),
                MetricsEndpoint = metricsEndpoint,
                QueueMaxLength = r.Given(queueMaxLength) ? (uint)r.GetValue(queueMaxLength) : 4096,
                QueueFullAccept = queueFullAccept,
                Rescue = rescueOptions,
                ResetOnExpiry = r.GetValue(resetOnExpiry),
                StalledAfterMs = (r.Given(stalledAfter) ? r.GetValue(stalledAfter) : Control.FlowAges.DefaultStalledAfterSeconds) * 1000L,
                ReceiveBufferBytes = r.Given(receiveBuffer) ? r.GetValue(receiveBuffer) : 8 << 20,
                StatePath = r.GetValue(statePath) is { } state ? Path.GetFullPath(state) : null,
                TakeoverFrom = takeoverPath,
                ImportKernel = r.GetValue(importKernel),
                ExportKernelOnExit = r.GetValue(exportKernel),
                OnRulesLost = r.Given(onRulesLost) ? r.GetValue(onRulesLost) : RulesLostAction.Reinstall,
                StateIntervalMs = (r.Given(stateInterval) ? r.GetValue(stateInterval) : 5) * 1000,
                RebuildSettings = () => (sources.Build(out string? error), error),
                Offload = offloadOn,
                OffloadMark = offloadBits,
                OffloadDelayMs = r.Given(offloadDelay) ? r.GetValue(offloadDelay) : 100,
                Sync = syncOptions,
            };
            // Its own stream on fd 2, not Console.Error: the daemon's log writer may sit in a write for
            // ever when stderr is not read, and must not hold Console.Error's lock while it does.
            using var daemon = new FirewallDaemon(options, Console.OpenStandardError());
            return daemon.Run();
        });
        return command;
    }

    private static bool TryParseMark(string text, out uint mark)
    {
        string digits = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
        return uint.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out mark) && mark != 0;
    }

    private static bool TryParseLost(string text, out RulesLostAction action)
    {
        RulesLostAction? a = text switch
        {
            "reinstall" => RulesLostAction.Reinstall,
            "exit" => RulesLostAction.Exit,
            "warn" => RulesLostAction.Warn,
            _ => null,
        };
        action = a ?? default;
        return a is not null;
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
