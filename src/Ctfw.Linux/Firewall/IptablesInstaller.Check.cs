using System.Globalization;

namespace Ctfw.Linux.Firewall;

/// <summary>What one <see cref="IptablesInstaller.Check"/> found and did.</summary>
public enum IptablesCheckOutcome
{
    /// <summary>Every rule of this run is present, and each jump is first in its built-in chain.</summary>
    Intact,

    /// <summary>Rules were missing or displaced and were not repaired (asked not to).</summary>
    Lost,

    /// <summary>Rules were missing or displaced and are back in place.</summary>
    Repaired,

    /// <summary>Rules were missing or displaced and putting them back failed (see the error).</summary>
    RepairFailed,

    /// <summary>The listing itself failed (iptables missing, the xtables lock held, a timeout): nothing is known.</summary>
    CheckFailed,

    /// <summary>The rules were removed (the stop): nothing was checked, nothing will be repaired.</summary>
    Removed,
}

/// <param name="Problems">One line per missing or displaced rule, as "iptables -t filter -A …: missing".</param>
/// <param name="Reinstalled">Commands run to put rules back (chains created, rules appended, jumps inserted).</param>
/// <param name="Error">Why the check or the repair failed; null otherwise.</param>
public readonly record struct IptablesCheckResult(IptablesCheckOutcome Outcome, IReadOnlyList<string> Problems, int Reinstalled, string? Error);

/// <summary>
/// The self-check: someone else's <c>iptables -F</c>, <c>iptables-restore</c>, firewalld reload or
/// <c>nft flush ruleset</c> deletes ctfw's jumps without telling it, and then nothing reaches the
/// queues. <see cref="Check"/> lists each table ctfw uses once (<c>iptables -S</c>, one process per
/// tool and table: cheaper than one <c>-C</c> per rule, and the only way to see positions) and
/// compares the rules tagged with this run's tag against the listing taken right after install.
/// <para>
/// A jump must still be the first rule of its built-in chain: any rule above it can decide the
/// packet (ACCEPT, or a jump to a chain that accepts) before ctfw sees it, and telling a harmless
/// rule from a bypass would mean evaluating other people's chains. The rules inside ctfw's own chain
/// need to be present, and a missing one goes back at its own place among them: the offload ACCEPT
/// works only above the NFQUEUE rule (the shadow-mode marks are mutually exclusive, one ctstate each,
/// so their order is free). A reordering of rules that are all present is not looked for: it takes a
/// delete and a re-insert, and its worst case (ACCEPT below NFQUEUE) only sends offloaded packets
/// through ctfw again.
/// </para>
/// <para>
/// Repairs go in the install order, so a packet never jumps to a missing or half-filled chain: the
/// chain, then its rules, then the jumps; a displaced jump gets a new one at the top before the old
/// one is deleted by its number. Check and <see cref="Remove"/> take the same lock, and Remove marks
/// the installer removed, so a check running into the stop neither repairs afterwards nor races it.
/// </para>
/// </summary>
public sealed partial class IptablesInstaller
{
    private readonly Lock _gate = new();

    // Per (tool, table, chain): this run's rules there as iptables -S printed them right after
    // install (the printed form differs from the one given, e.g. 0x01000000 comes back as 0x1000000).
    private readonly Dictionary<(string Tool, string Table, string Chain), List<string>> _baseline = [];

    // The checks' processes get 5 s, not setup's 30: a hung iptables must not hold the stop for long.
    private static readonly ProcessCommandRunner s_checkRunner = new(TimeSpan.FromSeconds(5));

    private ICommandRunner CheckRunner => ReferenceEquals(_runner, ProcessCommandRunner.Instance) ? s_checkRunner : _runner;

    /// <summary>How long a check waits for the xtables lock (<c>iptables -w SECONDS</c>) before it counts as failed.</summary>
    public int CheckLockWaitSeconds { get; set; } = 2;

    /// <summary>
    /// Records how iptables lists this run's rules (one <c>-S</c> per table), which later checks
    /// compare against; call right after install, while the rules are certainly in place.
    /// </summary>
    public void PrepareCheck()
    {
        lock (_gate)
            CaptureBaseline();
    }

    private void CaptureBaseline()
    {
        _baseline.Clear();
        foreach ((string tool, string table) in UsedTables())
        {
            Dictionary<string, List<(string Line, int Position)>> ours = OwnLines(ListRules(tool, table), out _);
            foreach ((string t, string tb, string[] rule) in _added)
            {
                if (t != tool || tb != table)
                    continue;
                string chain = rule[1];
                if (_baseline.ContainsKey((tool, table, chain)))
                    continue;
                List<string> printed = ours.TryGetValue(chain, out List<(string Line, int Position)>? lines) ? lines.ConvertAll(l => l.Line) : [];
                int expected = _added.Count(a => a.Tool == tool && a.Table == table && a.Rule[1] == chain);
                if (printed.Count != expected)
                {
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"{tool} -t {table}: {expected} rule(s) added to {chain} but {printed.Count} listed right after install"));
                }
                _baseline[(tool, table, chain)] = printed;
            }
        }
    }

    /// <summary>
    /// Lists the tables this run uses and compares them with what it installed; with
    /// <paramref name="repair"/>, puts back what is missing or displaced. Never throws for what
    /// iptables does: a failed listing is <see cref="IptablesCheckOutcome.CheckFailed"/>.
    /// </summary>
    public IptablesCheckResult Check(bool repair)
    {
        lock (_gate)
        {
            if (_removed)
                return new IptablesCheckResult(IptablesCheckOutcome.Removed, [], 0, null);
            if (_baseline.Count == 0)
                throw new InvalidOperationException("PrepareCheck first");
            List<string> problems = [];
            List<Damage> damage = [];
            try
            {
                foreach ((string tool, string table) in UsedTables())
                    Inspect(tool, table, problems, damage);
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException)
            {
                return new IptablesCheckResult(IptablesCheckOutcome.CheckFailed, problems, 0, FirstLine(e.Message));
            }
            if (problems.Count == 0)
                return new IptablesCheckResult(IptablesCheckOutcome.Intact, problems, 0, null);
            if (!repair)
                return new IptablesCheckResult(IptablesCheckOutcome.Lost, problems, 0, null);
            int commands = 0;
            try
            {
                foreach (Damage d in damage)
                    Repair(d, ref commands);
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException)
            {
                return new IptablesCheckResult(IptablesCheckOutcome.RepairFailed, problems, commands, FirstLine(e.Message));
            }
            return new IptablesCheckResult(IptablesCheckOutcome.Repaired, problems, commands, null);
        }
    }

    // What one table lacks: its chain, rules of the chain (indexes into _added), jumps missing or
    // displaced (index into _added, and the displaced one's current rule number, 0 when missing).
    // Foreign: rule numbers in ctfw's own chain of rules this run did not put there.
    private sealed record Damage(string Tool, string Table, bool ChainMissing, List<int> MissingRules, List<(int Rule, int Position)> Jumps, List<int> Foreign);

    private void Inspect(string tool, string table, List<string> problems, List<Damage> damage)
    {
        CommandResult listing = Run(CheckRunner, CheckLockWaitSeconds.ToString(CultureInfo.InvariantCulture), tool, table, "-S");
        if (listing.ExitCode != 0)
            throw Failure(tool, table, ["-S"], listing);
        string[] lines = listing.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Dictionary<string, List<(string Line, int Position)>> ours = OwnLines(lines, out HashSet<string> chains);
        bool chainMissing = !chains.Contains(_options.Chain);
        if (chainMissing)
            problems.Add($"{tool} -t {table}: chain {_options.Chain} missing");
        var d = new Damage(tool, table, chainMissing, [], [], []);
        // ctfw's chain is ctfw's: a rule someone put there (above the NFQUEUE rule an ACCEPT bypasses
        // ctfw, below it nothing reaches it) is not ours to keep.
        int inChain = 0;
        foreach (string line in lines)
        {
            List<string> tokens = Tokenize(line);
            if (tokens.Count < 2 || tokens[0] != "-A" || tokens[1] != _options.Chain)
                continue;
            inChain++;
            if (!TryGetTag(tokens, out string tag) || tag != Tag)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{tool} -t {table}: rule {inChain} of {_options.Chain} was not put there by this ctfw: {line}"));
                d.Foreign.Add(inChain);
            }
        }
        // What is still there, per chain, consumed as rules are matched (a rule listed twice counts twice).
        var remaining = new Dictionary<string, List<(string Line, int Position)>>();
        foreach ((string chain, List<(string Line, int Position)> list) in ours)
            remaining[chain] = [.. list];
        for (int i = 0; i < _added.Count; i++)
        {
            (string t, string tb, string[] rule) = _added[i];
            if (t != tool || tb != table)
                continue;
            string chain = rule[1];
            List<string> baseline = _baseline[(tool, table, chain)];
            int ordinal = _added.Take(i).Count(a => a.Tool == tool && a.Table == table && a.Rule[1] == chain);
            string printed = baseline[ordinal];
            int found = remaining.TryGetValue(chain, out List<(string Line, int Position)>? left) ? left.FindIndex(l => l.Line == printed) : -1;
            string described = $"{tool} -t {table} {string.Join(' ', rule)}";
            bool isJump = chain != _options.Chain;
            if (found < 0)
            {
                problems.Add($"{described}: missing");
                if (isJump)
                    d.Jumps.Add((i, 0));
                else
                    d.MissingRules.Add(i);
                continue;
            }
            int position = left![found].Position;
            left.RemoveAt(found);
            if (isJump && position != 1)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{described}: rule {position} of {chain}, no longer first (rules above it decide packets before ctfw sees them)"));
                d.Jumps.Add((i, position));
            }
        }
        if (d.ChainMissing || d.MissingRules.Count > 0 || d.Jumps.Count > 0 || d.Foreign.Count > 0)
            damage.Add(d);
    }

    /// <summary>Puts back what <paramref name="d"/> lacks in the install order; returns the commands run.</summary>
    /// <summary>Puts one table's damage right; <paramref name="commands"/> counts each command that
    /// succeeded, also when a later one fails (and throws).</summary>
    private void Repair(Damage d, ref int commands)
    {
        // Foreign rules out of ctfw's chain first, from the last, so the numbers still hold.
        for (int f = d.Foreign.Count - 1; f >= 0; f--)
        {
            Checked(d.Tool, d.Table, ["-D", _options.Chain, d.Foreign[f].ToString(CultureInfo.InvariantCulture)]);
            commands++;
        }
        if (d.ChainMissing)
        {
            Checked(d.Tool, d.Table, ["-N", _options.Chain]);
            commands++;
        }
        // Missing rules of ctfw's chain in install order, each at its own place: after this run's rules
        // that precede it (present, or put back just now), appended when none follows.
        foreach (int i in d.MissingRules)
        {
            string[] rule = _added[i].Rule;
            int before = 0, total = 0;
            for (int j = 0; j < _added.Count; j++)
            {
                if (_added[j].Tool != d.Tool || _added[j].Table != d.Table || _added[j].Rule[1] != rule[1])
                    continue;
                total++;
                if (j < i)
                    before++;
            }
            // In the chain now: all but this rule and the missing ones after it.
            int present = total - d.MissingRules.Count(m => m >= i && _added[m].Rule[1] == rule[1]);
            Checked(d.Tool, d.Table, before >= present
                ? rule
                : ["-I", rule[1], (before + 1).ToString(CultureInfo.InvariantCulture), .. rule[2..]]);
            commands++;
        }
        foreach ((int i, int position) in d.Jumps)
        {
            string[] rule = _added[i].Rule;
            string[] insert = ["-I", rule[1], "1", .. rule[2..]];
            Checked(d.Tool, d.Table, insert);
            commands++;
            if (position > 0)
            {
                // The old one moved down by one with the insert; by number, since by spec -D would take the new one.
                Checked(d.Tool, d.Table, ["-D", rule[1], (position + 1).ToString(CultureInfo.InvariantCulture)]);
                commands++;
            }
        }
    }

    private void Checked(string tool, string table, string[] arguments)
    {
        CommandResult result = Run(CheckRunner, CheckLockWaitSeconds.ToString(CultureInfo.InvariantCulture), tool, table, arguments);
        if (result.ExitCode != 0)
            throw Failure(tool, table, arguments, result);
    }

    /// <summary>This run's lines of an iptables -S listing per chain, with their rule numbers; and every chain the listing declares.</summary>
    private Dictionary<string, List<(string Line, int Position)>> OwnLines(string[] lines, out HashSet<string> chains)
    {
        var ours = new Dictionary<string, List<(string Line, int Position)>>();
        var positions = new Dictionary<string, int>();
        chains = [];
        foreach (string line in lines)
        {
            List<string> tokens = Tokenize(line);
            if (tokens.Count == 2 && tokens[0] is "-N" or "-P")
                chains.Add(tokens[1]);
            if (tokens.Count < 2 || tokens[0] != "-A")
                continue;
            int position = positions[tokens[1]] = positions.GetValueOrDefault(tokens[1]) + 1;
            if (!TryGetTag(tokens, out string tag) || tag != Tag)
                continue;
            if (!ours.TryGetValue(tokens[1], out List<(string Line, int Position)>? list))
                ours[tokens[1]] = list = [];
            list.Add((string.Join(' ', tokens), position));
        }
        return ours;
    }

    /// <summary>The (tool, table) pairs holding rules of this run, in install order.</summary>
    private List<(string Tool, string Table)> UsedTables()
    {
        List<(string Tool, string Table)> used = [];
        foreach ((string tool, string table, _) in _added)
        {
            if (!used.Contains((tool, table)))
                used.Add((tool, table));
        }
        return used;
    }

    private static string FirstLine(string text)
    {
        int newline = text.IndexOf('\n', StringComparison.Ordinal);
        return newline < 0 ? text.Trim() : text[..newline].Trim();
    }
}
