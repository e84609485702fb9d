using System.Globalization;
using System.Text;
using Ctfw.Conntrack;
using Ctfw.Rules.Compilation;
using Ctfw.Rules.Parsing;

namespace Ctfw.Rules;

/// <summary>
/// A loaded filter table (and raw table, <see cref="Raw"/>, when the file has one): iptables-save
/// text parsed, checked and compiled into flat arrays once,
/// then evaluated per packet by any number of threads at once (<see cref="Evaluate(in PacketFacts, Span{int})"/>,
/// in Ruleset.Evaluate.cs). Immutable except for its counters. To change rules, load a new Ruleset
/// and swap the reference; evaluations in flight finish on the old one.
/// </summary>
public sealed partial class Ruleset
{
    private readonly CompiledTable _table;
    private readonly CounterShards _counters;

    private Ruleset(string fileName, CompiledTable table, CompiledTable? raw, IReadOnlyList<RuleError> warnings)
    {
        FileName = fileName;
        _table = table;
        Raw = raw is null ? null : new RawTable(raw);
        Warnings = warnings;
        _counters = new CounterShards(table.InitialCounters.Length);
        for (int i = 0; i < table.InitialCounters.Length; i++)
            _counters.Seed(i, table.InitialCounters[i].Packets, table.InitialCounters[i].Bytes);
    }

    /// <summary>The name errors and dumps use for the source.</summary>
    public string FileName { get; }
    /// <summary>The `*raw` table; null when the file has none.</summary>
    public RawTable? Raw { get; }

    /// <summary>The helpers the raw table's `CT --helper` rules assign (none without a raw table): conntrack needs them enabled.</summary>
    public IReadOnlyList<CtHelper> Helpers => Raw?.Helpers ?? [];

    /// <summary>Every filter rule, chain by chain (built-ins INPUT, FORWARD, OUTPUT first, then user chains as declared).</summary>
    public IReadOnlyList<RuleInfo> Rules => _table.Rules;
    public IReadOnlyList<ChainInfo> Chains => _table.Chains;
    /// <summary>Things iptables also accepts silently but that change what was written (e.g. a log prefix over 29 characters).</summary>
    public IReadOnlyList<RuleError> Warnings { get; }
    /// <summary>Deepest chain of -j calls from a built-in chain (≤ 64).</summary>
    public int MaxCallDepth => _table.MaxCallDepth;
    /// <summary>Most rule entries one packet can visit; evaluation is bounded by it.</summary>
    public int MaxStepsPerPacket => _table.MaxSteps;

    /// <summary>
    /// Parses and compiles <paramref name="text"/> (iptables-save syntax: a `*filter` table, and
    /// optionally a `*raw` one). On failure
    /// <paramref name="ruleset"/> is null and <paramref name="errors"/> lists every problem found, each
    /// as "fileName:line:col: message". Never throws for bad input.
    /// </summary>
    public static bool TryLoad(string text, string fileName, out Ruleset? ruleset, out IReadOnlyList<RuleError> errors)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(fileName);
        ruleset = null;
        var parser = new RulesetParser(fileName);
        TableDraft? table = parser.Parse(text);
        if (table is null)
        {
            errors = parser.Errors;
            return false;
        }
        var compileErrors = new List<RuleError>();
        CompiledTable? raw = parser.Raw is { } rawDraft ? RulesetCompiler.Compile(rawDraft, fileName, compileErrors) : null;
        CompiledTable? compiled = RulesetCompiler.Compile(table, fileName, compileErrors);
        if (compiled is null || compileErrors.Count > 0)
        {
            errors = compileErrors;
            return false;
        }
        errors = [];
        ruleset = new Ruleset(fileName, compiled, raw, parser.Warnings);
        return true;
    }

    /// <summary>
    /// Reads <paramref name="path"/> and loads it; errors name the file as given. I/O errors, and a
    /// file over <see cref="RulesetLimits.MaxFileBytes"/>, become one RuleError at 0:0.
    /// </summary>
    public static bool TryLoadFile(string path, out Ruleset? ruleset, out IReadOnlyList<RuleError> errors)
    {
        ruleset = null;
        string? text;
        try
        {
            text = ReadBounded(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            errors = [new RuleError(path, 0, 0, $"cannot read the rules file: {e.Message}")];
            return false;
        }
        if (text is null)
        {
            errors = [new RuleError(path, 0, 0, string.Create(CultureInfo.InvariantCulture,
                $"the rules file is larger than {RulesetLimits.MaxFileBytes} bytes ({RulesetLimits.MaxFileBytes >> 20} MiB), the most ctfw reads"))];
            return false;
        }
        return TryLoad(text, path, out ruleset, out errors);
    }

    /// <summary>The file's text as File.ReadAllText decodes it, or null when it holds more than <see cref="RulesetLimits.MaxFileBytes"/>.</summary>
    private static string? ReadBounded(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        if (stream.CanSeek && stream.Length > RulesetLimits.MaxFileBytes)
            return null;
        // A device or pipe has no length, and a file may grow: the read is bounded too. UTF-8 never
        // decodes to more chars than bytes, so a file within the limit fits.
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var text = new StringBuilder(stream.CanSeek ? (int)stream.Length : 1 << 16);
        char[] buffer = new char[1 << 16];
        int n;
        while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
        {
            if (text.Length + (long)n > RulesetLimits.MaxFileBytes)
                return null;
            text.Append(buffer, 0, n);
        }
        return text.ToString();
    }

    /// <summary>The built-in chain's policy.</summary>
    public Verdict Policy(Hook hook) => _table.Entries[_table.Underflow[(int)hook]].Op == RuleOp.PolicyAccept ? Verdict.Accept : Verdict.Drop;

    /// <summary>Packets and bytes that matched the rule (LOG and no-target rules count too).</summary>
    public PacketCounters GetCounters(int ruleIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ruleIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(ruleIndex, _table.Rules.Length);
        return _counters.Read(ruleIndex);
    }

    /// <summary>Packets and bytes the built-in chain's policy decided.</summary>
    public PacketCounters GetPolicyCounters(Hook hook) => _counters.Read(_table.Rules.Length + (int)hook);

    /// <summary>
    /// Before this ruleset goes live in place of <paramref name="previous"/> (a reload): every rule
    /// that is unchanged — same chain, same text, same occurrence of that text in the chain — and
    /// every built-in chain's policy start from the previous counters, as `iptables-restore
    /// --counters` of an edited save would keep them. Returns how many rule counters were carried.
    /// Not concurrent with evaluation of this ruleset (it is not live yet); the previous one may
    /// still be counting, so packets it counts after this call are not carried.
    /// </summary>
    public int CarryCountersFrom(Ruleset previous)
    {
        ArgumentNullException.ThrowIfNull(previous);
        int carried = Carry(previous.Rules, previous.GetCounters, Rules, _counters);
        foreach (Hook hook in (Hook[])[Hook.Input, Hook.Forward, Hook.Output])
        {
            PacketCounters c = previous.GetPolicyCounters(hook);
            _counters.Seed(_table.Rules.Length + (int)hook, c.Packets, c.Bytes);
        }
        // The raw table's counters carry within the raw table (its OUTPUT is not the filter's).
        if (Raw is { } raw && previous.Raw is { } before)
        {
            carried += Carry(before.Rules, before.GetCounters, raw.Rules, raw.Counters);
            foreach (Hook hook in (Hook[])[Hook.PreRouting, Hook.Output])
            {
                PacketCounters c = before.GetPolicyCounters(hook);
                raw.Counters.Seed(raw.Rules.Count + (int)hook, c.Packets, c.Bytes);
            }
        }
        return carried;
    }

    private static int Carry(IReadOnlyList<RuleInfo> from, Func<int, PacketCounters> counters, IReadOnlyList<RuleInfo> to, CounterShards into)
    {
        var old = new Dictionary<(string Chain, string Text, int Occurrence), int>();
        var seen = new Dictionary<(string Chain, string Text), int>();
        foreach (RuleInfo rule in from)
        {
            int n = seen.GetValueOrDefault((rule.Chain, rule.Text));
            seen[(rule.Chain, rule.Text)] = n + 1;
            old[(rule.Chain, rule.Text, n)] = rule.Index;
        }
        seen.Clear();
        int carried = 0;
        foreach (RuleInfo rule in to)
        {
            int n = seen.GetValueOrDefault((rule.Chain, rule.Text));
            seen[(rule.Chain, rule.Text)] = n + 1;
            if (old.TryGetValue((rule.Chain, rule.Text, n), out int before))
            {
                PacketCounters c = counters(before);
                into.Seed(rule.Index, c.Packets, c.Bytes);
                carried++;
            }
        }
        return carried;
    }

    /// <summary>`iptables -Z`: zeroes every counter (the raw table's too).</summary>
    public void ZeroCounters()
    {
        _counters.Reset();
        Raw?.Counters.Reset();
    }

    /// <summary>
    /// The ruleset in iptables-save form (with `[packets:bytes]` counters as `iptables-save -c` when
    /// asked): the raw table first when there is one, as packets meet it first.
    /// </summary>
    public string Save(bool withCounters = false)
    {
        var sb = new StringBuilder();
        sb.Append("# ctfw ruleset from ").Append(FileName).Append('\n');
        if (Raw is { } raw)
            SaveTable(sb, "raw", raw.Chains, raw.Rules, raw.GetPolicyCounters, raw.GetCounters, withCounters);
        SaveTable(sb, "filter", Chains, Rules, GetPolicyCounters, GetCounters, withCounters);
        return sb.ToString();
    }

    private static void SaveTable(StringBuilder sb, string name, IReadOnlyList<ChainInfo> chains, IReadOnlyList<RuleInfo> rules,
        Func<Hook, PacketCounters> policyCounters, Func<int, PacketCounters> counters, bool withCounters)
    {
        sb.Append('*').Append(name).Append('\n');
        foreach (ChainInfo chain in chains)
        {
            PacketCounters c = chain.Builtin is Hook h ? policyCounters(h) : default;
            sb.Append(':').Append(chain.Name).Append(' ')
              .Append(chain.Policy switch { Verdict.Accept => "ACCEPT", Verdict.Drop => "DROP", _ => "-" })
              .Append(withCounters ? $" [{c.Packets}:{c.Bytes}]" : " [0:0]").Append('\n');
        }
        foreach (RuleInfo rule in rules)
        {
            if (withCounters)
            {
                PacketCounters c = counters(rule.Index);
                sb.Append('[').Append(c.Packets).Append(':').Append(c.Bytes).Append("] ");
            }
            sb.Append("-A ").Append(rule.Chain).Append(rule.Text.Length > 0 ? " " : "").Append(rule.Text).Append('\n');
        }
        sb.Append("COMMIT\n");
    }
}
