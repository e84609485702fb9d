using System.Globalization;
using System.Text;

namespace Ctfw.Rules;

/// <summary>
/// The ruleset with its counters in the layout of <c>iptables -L -v -n</c>: per chain a header
/// with the policy and its counters (or the references of a user chain), then one line per rule:
/// pkts, bytes, target, prot, opt, in, out, source, destination, and the rule's other matches and
/// target options. Counts are abbreviated as iptables does (K/M/G/T past 99999) unless
/// <c>exact</c> (<c>-x</c>). Without <c>verbose</c> (<c>iptables -L -n</c> without <c>-v</c>) the
/// counters and the in/out columns are left out, as iptables leaves them out. Rules for both
/// families show <c>any</c> for an unset address, since one ctfw ruleset stands for both iptables
/// and ip6tables. A ruleset with a raw table lists it after the filter table, each under a
/// <c>Table: NAME</c> line (what <c>iptables -t raw -L</c> shows); without one the listing is the
/// filter table's alone, as before raw tables existed.
/// </summary>
public static class RuleListing
{
    public static string Format(Ruleset rules, bool exact = false, bool verbose = true)
    {
        ArgumentNullException.ThrowIfNull(rules);
        var sb = new StringBuilder();
        if (rules.Raw is not { } raw)
        {
            FormatTable(sb, rules.Chains, rules.Rules, rules.GetPolicyCounters, rules.GetCounters, exact, verbose);
            return sb.ToString();
        }
        sb.Append("Table: filter\n");
        FormatTable(sb, rules.Chains, rules.Rules, rules.GetPolicyCounters, rules.GetCounters, exact, verbose);
        sb.Append("\nTable: raw\n");
        FormatTable(sb, raw.Chains, raw.Rules, raw.GetPolicyCounters, raw.GetCounters, exact, verbose);
        return sb.ToString();
    }

    private static void FormatTable(StringBuilder sb, IReadOnlyList<ChainInfo> chains, IReadOnlyList<RuleInfo> rules,
        Func<Hook, PacketCounters> policyCounters, Func<int, PacketCounters> counters, bool exact, bool verbose)
    {
        var references = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (RuleInfo rule in rules)
        {
            if (rule.TargetChain is { } target)
                references[target] = references.GetValueOrDefault(target) + 1;
        }
        bool first = true;
        foreach (ChainInfo chain in chains)
        {
            if (!first)
                sb.Append('\n');
            first = false;
            if (chain.Builtin is Hook hook)
            {
                string policy = chain.Policy == Verdict.Accept ? "ACCEPT" : "DROP";
                if (verbose)
                {
                    PacketCounters pc = policyCounters(hook);
                    sb.Append(CultureInfo.InvariantCulture, $"Chain {chain.Name} (policy {policy} {pc.Packets} packets, {pc.Bytes} bytes)\n");
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"Chain {chain.Name} (policy {policy})\n");
                }
            }
            else
            {
                int refs = references.GetValueOrDefault(chain.Name);
                sb.Append(CultureInfo.InvariantCulture, $"Chain {chain.Name} ({refs} references)\n");
            }
            if (verbose)
                sb.Append(exact ? "    pkts      bytes" : " pkts bytes").Append(" target     prot opt in     out     source               destination\n");
            else
                sb.Append("target     prot opt source               destination\n");
            for (int i = chain.FirstRule; i < chain.FirstRule + chain.RuleCount; i++)
            {
                var line = Parse(rules[i]);
                if (verbose)
                {
                    PacketCounters c = counters(i);
                    if (exact)
                        sb.Append(CultureInfo.InvariantCulture, $"{c.Packets,8} {c.Bytes,10} ");
                    else
                        sb.Append(Number(c.Packets)).Append(' ').Append(Number(c.Bytes)).Append(' ');
                    sb.Append(CultureInfo.InvariantCulture,
                        $"{line.Target,-10} {line.Protocol,-4} {line.Opt,-3} {line.In,-6} {line.Out,-7} {line.Source,-20} {line.Destination,-20}");
                }
                else
                {
                    sb.Append(CultureInfo.InvariantCulture, $"{line.Target,-10} {line.Protocol,-4} {line.Opt,-3} {line.Source,-20} {line.Destination,-20}");
                }
                if (line.Extra.Length > 0)
                    sb.Append(' ').Append(line.Extra);
                sb.Append('\n');
            }
        }
    }

    /// <summary>iptables' print_num: up to 99999 as is in 5 columns, beyond that 4 digits and K, M, G or T.</summary>
    internal static string Number(long n)
    {
        if (n <= 99999)
            return n.ToString(CultureInfo.InvariantCulture).PadLeft(5);
        foreach (char unit in "KMGT")
        {
            n = (n + 500) / 1000;
            if (n <= 9999 || unit == 'T')
                return n.ToString(CultureInfo.InvariantCulture).PadLeft(4) + unit;
        }
        return n.ToString(CultureInfo.InvariantCulture);
    }

    private readonly record struct Line(string Target, string Protocol, string Opt, string In, string Out, string Source, string Destination, string Extra);

    private static Line Parse(RuleInfo rule)
    {
        List<string> words = Tokenize(rule.Text);
        string any = rule.Family switch
        {
            RuleFamily.IPv4 => "0.0.0.0/0",
            RuleFamily.IPv6 => "::/0",
            _ => "any",
        };
        string protocol = "all", inIf = "*", outIf = "*", source = any, destination = any, target = "";
        var extra = new StringBuilder();
        bool negate = false;
        for (int i = 0; i < words.Count; i++)
        {
            string w = words[i];
            string? next = i + 1 < words.Count ? words[i + 1] : null;
            string bang = negate ? "!" : "";
            switch (w)
            {
                case "!":
                    negate = true;
                    continue;
                case "-4" or "-6" or "--ipv4" or "--ipv6":
                    break;
                case "-p" or "--protocol" when next is not null:
                    protocol = bang + next;
                    i++;
                    break;
                case "-i" or "--in-interface" when next is not null:
                    inIf = bang + next;
                    i++;
                    break;
                case "-o" or "--out-interface" when next is not null:
                    outIf = bang + next;
                    i++;
                    break;
                case "-s" or "--source" when next is not null:
                    source = bang + next;
                    i++;
                    break;
                case "-d" or "--destination" when next is not null:
                    destination = bang + next;
                    i++;
                    break;
                case "-j" or "--jump" or "-g" or "--goto" when next is not null:
                    target = next;
                    i++;
                    break;
                case "-m" or "--match" when next is not null:
                    i++; // iptables -L names the module through its options
                    break;
                case "--comment" when next is not null:
                    Append(extra, $"/* {next} */");
                    i++;
                    break;
                default:
                    if (negate)
                        Append(extra, "!");
                    Append(extra, w.StartsWith("--", StringComparison.Ordinal) ? w[2..] : w);
                    break;
            }
            negate = false;
        }
        return new Line(target.Length == 0 ? "" : target, protocol, "--", inIf, outIf, source, destination, extra.ToString());
    }

    private static void Append(StringBuilder sb, string word)
    {
        if (sb.Length > 0)
            sb.Append(' ');
        sb.Append(word);
    }

    /// <summary>Splits iptables-save words, keeping double-quoted strings (with \" escapes) whole and unquoted.</summary>
    private static List<string> Tokenize(string text)
    {
        List<string> words = [];
        var current = new StringBuilder();
        bool quoted = false, any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char ch = text[i];
            if (quoted)
            {
                if (ch == '\\' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    current.Append('"');
                    i++;
                }
                else if (ch == '"')
                {
                    quoted = false;
                }
                else
                {
                    current.Append(ch);
                }
                continue;
            }
            if (ch == '"')
            {
                quoted = true;
                any = true;
            }
            else if (char.IsWhiteSpace(ch))
            {
                if (any)
                    words.Add(current.ToString());
                current.Clear();
                any = false;
            }
            else
            {
                current.Append(ch);
                any = true;
            }
        }
        if (any)
            words.Add(current.ToString());
        return words;
    }
}
