using System.Globalization;
using System.Text;

namespace Ctfw.Linux.Firewall;

/// <summary>
/// Puts ctfw's NFQUEUE rules into the filter table for IPv4 (iptables) and IPv6 (ip6tables), whichever
/// backend those binaries use (nf_tables or legacy): a chain <c>CTFW</c> holding the NFQUEUE rule (with
/// <see cref="IptablesOptions.OffloadMark"/>, after an ACCEPT of offloaded flows' marked packets), and
/// a jump to it inserted first in each requested built-in chain. Every rule carries the comment
/// <c>ctfw:PID:STARTTIME</c>, which is how <see cref="Remove"/> deletes exactly what was added and how
/// the next <see cref="Install"/> recognises and deletes rules left by a run that crashed (its
/// process is gone, or the pid now belongs to a different process start) — after its own are in,
/// reusing the chain, so there is no moment without jumps to the queues. Rules of a ctfw that is
/// still running make Install fail instead. Setup path only: runs the iptables binaries as processes.
/// </summary>
public sealed partial class IptablesInstaller : IDisposable
{
    private const string TagPrefix = "ctfw:";

    private readonly IptablesOptions _options;
    private readonly ICommandRunner _runner;
    private readonly List<(string Tool, string Table, string[] Rule)> _added = [];
    private readonly List<(string Tool, string Table)> _chainsCreated = [];
    private bool _removed;

    private IptablesInstaller(IptablesOptions options, ICommandRunner runner, string tag)
    {
        _options = options;
        _runner = runner;
        Tag = tag;
    }

    /// <summary>The comment on every rule of this run.</summary>
    public string Tag { get; }

    /// <summary>Rules deleted at install because a crashed run left them, as "iptables -D …" lines.</summary>
    public IReadOnlyList<string> RemovedLeftovers { get; private set; } = [];

    /// <summary>The rules this run added, as "iptables -A …" lines, in order.</summary>
    public IReadOnlyList<string> InstalledRules => _added.ConvertAll(r => $"{r.Tool} -t {r.Table} {string.Join(' ', r.Rule)}");

    public static IptablesInstaller Install(IptablesOptions options, ICommandRunner? runner = null) =>
        Install(options, runner ?? ProcessCommandRunner.Instance, OwnTag());

    internal static IptablesInstaller Install(IptablesOptions options, ICommandRunner runner, string tag) =>
        Install(options, runner, tag, adoptTag: null);

    /// <summary>
    /// Installs this run's rules in place of the ones tagged <paramref name="previousTag"/> — a ctfw
    /// that handed its queues over (<c>--takeover</c>) and left its rules in: this run's rules go in
    /// first (jumps inserted before the old ones, NFQUEUE rules appended to the same chain), then
    /// the old ones are deleted, so at every moment a complete set sends packets to the queues.
    /// <see cref="TakenOver"/> lists what was replaced. Other leftovers are removed as by <see cref="Install"/>.
    /// </summary>
    public static IptablesInstaller TakeOver(IptablesOptions options, string previousTag, ICommandRunner? runner = null) =>
        Install(options, runner ?? ProcessCommandRunner.Instance, OwnTag(), previousTag);

    internal static IptablesInstaller Install(IptablesOptions options, ICommandRunner runner, string tag, string? adoptTag)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var installer = new IptablesInstaller(options, runner, tag) { _adoptTag = adoptTag };
        try
        {
            installer.Survey();
            foreach (string tool in installer.Tools())
                installer.InstallFamily(tool);
            // Ours are in: only now go the rules of a dead run and of the run we take over from, so
            // a complete set of jumps sends packets to the queues at every moment.
            List<string> leftovers = installer.DeleteFound(installer._stale);
            List<string> takenOver = installer.DeleteFound(installer._adopted);
            (installer._adoptTag is null ? leftovers : takenOver).AddRange(installer.DeleteForeignChains());
            installer.RemovedLeftovers = leftovers;
            installer.TakenOver = takenOver;
            return installer;
        }
        catch
        {
            installer.Remove();
            throw;
        }
    }

    // Found at install: the rules of the run we take over from (--takeover, _adoptTag) and of dead
    // runs (leftovers), deleted once ours are in; and the (tool, table) pairs whose chain already
    // existed (holding only such rules), which we reuse instead of creating.
    private string? _adoptTag;
    private readonly List<(string Tool, string Table, List<string> Tokens)> _adopted = [];
    private readonly List<(string Tool, string Table, List<string> Tokens)> _stale = [];
    private readonly HashSet<(string Tool, string Table)> _existingChains = [];

    /// <summary>Rules of the previous run replaced by <see cref="TakeOver"/>, as "iptables -D …" lines.</summary>
    public IReadOnlyList<string> TakenOver { get; private set; } = [];

    private List<string> DeleteFound(List<(string Tool, string Table, List<string> Tokens)> found)
    {
        List<string> removed = [];
        // Jumps first: a jump never points at a chain being emptied.
        found.Sort((a, b) => (a.Tokens[1] == _options.Chain).CompareTo(b.Tokens[1] == _options.Chain));
        foreach ((string tool, string table, List<string> tokens) in found)
        {
            tokens[0] = "-D";
            CommandResult result = Run(tool, table, [.. tokens]);
            if (result.ExitCode != 0)
                throw Failure(tool, table, [.. tokens], result);
            removed.Add($"{tool} -t {table} {string.Join(' ', tokens)}");
        }
        found.Clear();
        return removed;
    }

    /// <summary>Deletes the chains found at install in tables this run does not use (now empty).</summary>
    private List<string> DeleteForeignChains()
    {
        List<string> lines = [];
        foreach ((string tool, string table) in _existingChains)
        {
            if (_chainsCreated.Contains((tool, table)))
                continue; // ours now
            CommandResult result = Run(tool, table, "-X", _options.Chain);
            if (result.ExitCode != 0)
                throw Failure(tool, table, ["-X", _options.Chain], result);
            lines.Add($"{tool} -t {table} -X {_options.Chain}");
        }
        return lines;
    }

    /// <summary>
    /// Deletes the jumps, then the NFQUEUE rule, then the chain: the reverse of installation, so no
    /// packet ever jumps to a missing chain. Returns the failures (empty when everything was removed).
    /// Idempotent.
    /// </summary>
    public IReadOnlyList<string> Remove()
    {
        // Under the check's lock: a check under way finishes first, and none repairs after this.
        lock (_gate)
            return RemoveLocked();
    }

    private List<string> RemoveLocked()
    {
        List<string> failures = [];
        if (_removed)
            return failures;
        _removed = true;
        for (int i = _added.Count - 1; i >= 0; i--)
        {
            (string tool, string table, string[] rule) = _added[i];
            string[] delete = [.. rule];
            delete[0] = "-D";
            CommandResult result = Run(tool, table, delete);
            if (result.ExitCode != 0)
                failures.Add($"{tool} -t {table} {string.Join(' ', delete)}: {result.StandardError.Trim()}");
        }
        _added.Clear();
        for (int i = _chainsCreated.Count - 1; i >= 0; i--)
        {
            (string tool, string table) = _chainsCreated[i];
            CommandResult result = Run(tool, table, "-X", _options.Chain);
            if (result.ExitCode != 0)
                failures.Add($"{tool} -t {table} -X {_options.Chain}: {result.StandardError.Trim()}");
        }
        _chainsCreated.Clear();
        return failures;
    }

    public void Dispose() => Remove();

    /// <summary>Rules carrying a <c>ctfw:</c> comment in the filter and mangle tables, as iptables -S prints them (prefixed with tool and table).</summary>
    public static IReadOnlyList<string> ListTagged(IptablesOptions options, ICommandRunner? runner = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var installer = new IptablesInstaller(options, runner ?? ProcessCommandRunner.Instance, OwnTag());
        List<string> lines = [];
        foreach (string tool in installer.Tools())
        {
            foreach (string table in Tables)
            {
                foreach (string line in installer.ListRules(tool, table))
                {
                    if (TryGetTag(Tokenize(line), out _))
                        lines.Add($"{tool} -t {table} {line}");
                }
            }
        }
        return lines;
    }

    /// <summary>Every table ctfw may put rules in; leftovers are looked for in all of them.</summary>
    private static readonly string[] Tables = ["filter", "mangle"];

    private void InstallFamily(string tool)
    {
        string chain = _options.Chain;
        // Shadow-mode marks first: by the time a packet can reach the NFQUEUE rule, it has been marked.
        if (_options.ShadowMark is { } mark)
        {
            CreateChain(tool, "mangle");
            foreach (string[] body in mark.RuleBodies())
                Add(tool, "mangle", ["-A", chain, .. _options.Match, "-m", "comment", "--comment", Tag, .. body]);
            InsertJumps(tool, "mangle");
        }

        CreateChain(tool, "filter");

        // Offloaded flows' packets, marked by the nftables bypass chain, are accepted before the queue.
        if (_options.OffloadMark is uint offload)
        {
            string bits = "0x" + offload.ToString("x8", CultureInfo.InvariantCulture);
            Add(tool, "filter", ["-A", chain, .. _options.Match, "-m", "mark", "--mark", $"{bits}/{bits}", "-m", "comment", "--comment", Tag, "-j", "ACCEPT"]);
        }

        List<string> queueRule = ["-A", chain, .. _options.Match, "-m", "comment", "--comment", Tag, "-j", "NFQUEUE"];
        if (_options.IsBalanced)
            queueRule.AddRange(["--queue-balance", $"{_options.QueueFirst}:{_options.QueueLast}"]);
        else
            queueRule.AddRange(["--queue-num", _options.QueueFirst.ToString(CultureInfo.InvariantCulture)]);
        if (_options.CpuFanout)
            queueRule.Add("--queue-cpu-fanout");
        if (!_options.FailClosed)
            queueRule.Add("--queue-bypass");
        Add(tool, "filter", [.. queueRule]);

        // Jumps last: a packet never enters a half-built chain.
        InsertJumps(tool, "filter");
    }

    private void CreateChain(string tool, string table)
    {
        if (_existingChains.Contains((tool, table)))
        {
            // A previous run's chain, still holding its rules: ours are appended after them.
            _chainsCreated.Add((tool, table));
            return;
        }
        CommandResult create = Run(tool, table, "-N", _options.Chain);
        if (create.ExitCode != 0)
            throw Failure(tool, table, ["-N", _options.Chain], create);
        _chainsCreated.Add((tool, table));
    }

    private void InsertJumps(string tool, string table)
    {
        foreach (IptablesHook hook in _options.Hooks)
        {
            string builtIn = ChainOf(hook);
            string[] insert = ["-I", builtIn, "1", "-m", "comment", "--comment", Tag, "-j", _options.Chain];
            CommandResult result = Run(tool, table, insert);
            if (result.ExitCode != 0)
                throw Failure(tool, table, insert, result);
            // Removed by rule spec (without the position), like any -A rule.
            _added.Add((tool, table, ["-A", builtIn, "-m", "comment", "--comment", Tag, "-j", _options.Chain]));
        }
    }

    private static string ChainOf(IptablesHook hook) => hook switch
    {
        IptablesHook.Input => "INPUT",
        IptablesHook.Output => "OUTPUT",
        IptablesHook.Forward => "FORWARD",
        _ => throw new InvalidOperationException($"unknown hook {hook}"),
    };

    private void Add(string tool, string table, string[] rule)
    {
        CommandResult result = Run(tool, table, rule);
        if (result.ExitCode != 0)
            throw Failure(tool, table, rule, result);
        _added.Add((tool, table, rule));
    }

    /// <summary>
    /// Finds every ctfw-tagged rule: a dead run's (deleted after our install), the one we take over
    /// from (likewise), a live ctfw's (throws: two daemons would fight over the chain). An existing
    /// chain is reused if it holds nothing else.
    /// </summary>
    private void Survey()
    {
        foreach (string tool in Tools())
        {
            foreach (string table in Tables)
                Survey(tool, table);
        }
    }

    private void Survey(string tool, string table)
    {
        string[] rules = ListRules(tool, table);
        bool chainExists = false;
        int otherRulesInChain = 0;
        foreach (string line in rules)
        {
            List<string> tokens = Tokenize(line);
            if (tokens.Count == 2 && tokens[0] == "-N" && tokens[1] == _options.Chain)
                chainExists = true;
            if (tokens.Count < 2 || tokens[0] != "-A")
                continue;
            if (!TryGetTag(tokens, out string tag))
            {
                if (tokens[1] == _options.Chain)
                    otherRulesInChain++;
                continue;
            }
            if (tag == _adoptTag)
            {
                _adopted.Add((tool, table, tokens));
                continue;
            }
            if (tag != Tag && IsAlive(tag))
            {
                throw new InvalidOperationException(
                    $"{tool} -t {table}: rules tagged '{tag}' belong to a ctfw that is still running ({line}); stop it first");
            }
            _stale.Add((tool, table, tokens));
        }
        if (!chainExists)
            return;
        if (otherRulesInChain > 0)
        {
            throw new InvalidOperationException(
                $"{tool} -t {table}: chain {_options.Chain} exists and holds {otherRulesInChain} rule(s) ctfw did not add; remove them or choose another chain name");
        }
        _existingChains.Add((tool, table));
    }

    private string[] ListRules(string tool, string table)
    {
        CommandResult result = Run(tool, table, "-S");
        if (result.ExitCode != 0)
            throw Failure(tool, table, ["-S"], result);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    private IEnumerable<string> Tools()
    {
        if (_options.Ipv4)
            yield return "iptables";
        if (_options.Ipv6)
            yield return "ip6tables";
    }

    private CommandResult Run(string tool, string table, params string[] arguments) => Run(_runner, null, tool, table, arguments);

    private CommandResult Run(ICommandRunner runner, string? waitSeconds, string tool, string table, params string[] arguments)
    {
        // -w: wait for the xtables lock (legacy backend) instead of failing when another tool holds
        // it; for as long as it takes at setup, at most waitSeconds for a check.
        string[] wait = waitSeconds is null ? ["-w"] : ["-w", waitSeconds];
        List<string> argv = _options.NetworkNamespace is { } ns
            ? ["nsenter", $"--net={NetworkNamespace.PathOf(ns)}", "--", tool, .. wait, "-t", table, .. arguments]
            : [tool, .. wait, "-t", table, .. arguments];
        try
        {
            return runner.Run(argv);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new CommandResult(127, "", $"{argv[0]} could not be started ({e.Message}): install iptables (apt-get install iptables)");
        }
    }

    private static InvalidOperationException Failure(string tool, string table, string[] arguments, CommandResult result) =>
        new($"`{tool} -t {table} {string.Join(' ', arguments)}` failed (exit {result.ExitCode}): {result.StandardError.Trim()}");

    internal static bool TryGetTag(List<string> tokens, out string tag)
    {
        for (int i = 0; i + 1 < tokens.Count; i++)
        {
            if (tokens[i] == "--comment" && tokens[i + 1].StartsWith(TagPrefix, StringComparison.Ordinal))
            {
                tag = tokens[i + 1];
                return true;
            }
        }
        tag = "";
        return false;
    }

    /// <summary>"ctfw:PID:STARTTIME": STARTTIME (field 22 of /proc/PID/stat) tells a reused pid apart.</summary>
    internal static string OwnTag() =>
        $"{TagPrefix}{Environment.ProcessId}:{ReadStartTime(Environment.ProcessId) ?? "0"}";

    /// <summary>Whether the run that wrote <paramref name="tag"/> still exists.</summary>
    internal static bool IsAlive(string tag)
    {
        string[] parts = tag[TagPrefix.Length..].Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            return false; // not ours to interpret: treat as stale
        return ReadStartTime(pid) == parts[1];
    }

    private static string? ReadStartTime(int pid) =>
        ProcStat.TryRead(pid, out ProcStat stat) ? stat.StartTime.ToString(CultureInfo.InvariantCulture) : null;

    /// <summary>Splits an iptables -S line: whitespace-separated, double quotes group, backslash escapes inside quotes.</summary>
    internal static List<string> Tokenize(string line)
    {
        List<string> tokens = [];
        var current = new StringBuilder();
        bool inQuotes = false, inToken = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (inQuotes)
            {
                if (c == '\\' && i + 1 < line.Length)
                    current.Append(line[++i]);
                else if (c == '"')
                    inQuotes = false;
                else
                    current.Append(c);
            }
            else if (c == '"')
            {
                inQuotes = true;
                inToken = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inToken)
                {
                    tokens.Add(current.ToString());
                    current.Clear();
                    inToken = false;
                }
            }
            else
            {
                current.Append(c);
                inToken = true;
            }
        }
        if (inToken)
            tokens.Add(current.ToString());
        return tokens;
    }
}
