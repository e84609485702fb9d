using System.Globalization;
using Ctfw.Packets;

namespace Ctfw.Rules.Parsing;

/// <summary>An address with its mask (`-s`/`-d`), already masked as iptables stores it.</summary>
internal readonly record struct AddressSpec(IpAddress Address, IpAddress Mask, bool V6, string Text);

/// <summary>A closed port range; a single port is [p, p].</summary>
internal readonly record struct PortRange(ushort Min, ushort Max);

/// <summary>
/// Value syntaxes of the options, each as iptables parses it, returning the reason on failure (the
/// caller adds file:line:col). Deliberate differences from iptables, all stricter: numbers are decimal
/// only (iptables' strtoul also takes 0x.. and 0..), no service or host names (no /etc/services,
/// no DNS at load).
/// </summary>
internal static class ValueParsers
{
    public static bool TryParseProtocol(string text, out byte protocol, out string error)
    {
        error = "";
        string lower = text.ToLowerInvariant(); // iptables lower-cases -p's argument
        if (TryParseDecimal(lower, 255, out uint n))
        {
            protocol = (byte)n;
            return true;
        }
        foreach ((string name, byte number) in NameTables.Protocols)
        {
            if (name == lower)
            {
                protocol = number;
                return true;
            }
        }
        protocol = 0;
        error = $"unknown protocol '{text}'; expected tcp, udp, udplite, icmp, ipv6-icmp (icmpv6), sctp, dccp, gre, esp, ah, mh, all or a number 0..255";
        return false;
    }

    /// <summary>One `addr[/prefix]` or `addr/mask`; IPv4 addresses may be abbreviated as iptables allows ("10" is 10.0.0.0).</summary>
    public static bool TryParseAddress(string text, out AddressSpec spec, out string error)
    {
        spec = default;
        error = "";
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        string addressText = slash < 0 ? text : text[..slash];
        string? maskText = slash < 0 ? null : text[(slash + 1)..];

        IpAddress address, mask;
        bool v6 = addressText.Contains(':', StringComparison.Ordinal);
        if (v6)
        {
            if (!TryParseV6(addressText, out address))
            {
                error = $"bad address '{text}': '{addressText}' is not an IPv6 address";
                return false;
            }
        }
        else if (!TryParseV4(addressText, abbreviated: true, out address))
        {
            error = addressText.Any(char.IsAsciiLetter)
                ? $"bad address '{text}': host names are not supported (ctfw does no DNS lookups); write an address"
                : $"bad address '{text}': '{addressText}' is not an IPv4 address (four numbers 0..255)";
            return false;
        }

        int bits = v6 ? 128 : 32;
        if (maskText is null)
        {
            mask = PrefixMask(bits, v6);
        }
        else if (TryParseDecimal(maskText, uint.MaxValue, out uint prefix) && maskText.Length <= 3)
        {
            if (prefix > bits)
            {
                error = $"bad address '{text}': prefix length must be 0..{bits} for IPv{(v6 ? 6 : 4)}";
                return false;
            }
            mask = PrefixMask((int)prefix, v6);
        }
        else if (v6 ? TryParseV6(maskText, out mask) : TryParseV4(maskText, abbreviated: false, out mask))
        {
            // iptables accepts a dotted (or IPv6-form) mask, contiguous or not: the kernel just ANDs.
        }
        else
        {
            error = $"bad address '{text}': '/{maskText}' is neither a prefix length 0..{bits} nor a mask";
            return false;
        }
        spec = new AddressSpec(new IpAddress(address.Hi & mask.Hi, address.Lo & mask.Lo), mask, v6, text);
        return true;
    }

    public static IpAddress PrefixMask(int prefix, bool v6)
    {
        if (!v6)
            return new IpAddress(prefix == 0 ? 0 : (ulong)(uint.MaxValue << (32 - prefix)) << 32, 0);
        ulong hi = prefix >= 64 ? ulong.MaxValue : prefix == 0 ? 0 : ulong.MaxValue << (64 - prefix);
        ulong lo = prefix <= 64 ? 0 : prefix == 128 ? ulong.MaxValue : ulong.MaxValue << (128 - prefix);
        return new IpAddress(hi, lo);
    }

    private static bool TryParseV6(string text, out IpAddress address)
    {
        address = default;
        if (text.Contains('%', StringComparison.Ordinal)
            || !System.Net.IPAddress.TryParse(text, out System.Net.IPAddress? ip)
            || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            return false;
        Span<byte> b = stackalloc byte[16];
        ip.TryWriteBytes(b, out _);
        address = IpAddress.FromV6(b);
        return true;
    }

    /// <summary>xtables' <c>__numeric_to_ipaddr</c>: up to four dotted bytes; fewer are zero-filled (network address) unless this is a mask.</summary>
    private static bool TryParseV4(string text, bool abbreviated, out IpAddress address)
    {
        address = default;
        string[] parts = text.Split('.');
        if (parts.Length is 0 or > 4 || (!abbreviated && parts.Length != 4))
            return false;
        uint value = 0;
        for (int i = 0; i < 4; i++)
        {
            uint b = 0;
            if (i < parts.Length && !TryParseDecimal(parts[i], 255, out b))
                return false;
            value = value << 8 | b;
        }
        address = IpAddress.FromV4(value);
        return true;
    }

    public static bool TryParsePort(string text, out ushort port, out string error)
    {
        error = "";
        port = 0;
        if (!TryParseDecimal(text, 65535, out uint n))
        {
            error = text.Any(char.IsAsciiLetter)
                ? $"bad port '{text}'; expected a number 0..65535 (service names are not supported)"
                : $"bad port '{text}'; expected a number 0..65535";
            return false;
        }
        port = (ushort)n;
        return true;
    }

    /// <summary>libxt_tcp's <c>parse_tcp_ports</c>: "p", "a:b", ":b" (from 0), "a:" (to 65535).</summary>
    public static bool TryParsePortRange(string text, out PortRange range, out string error)
    {
        range = default;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            if (!TryParsePort(text, out ushort p, out error))
                return false;
            range = new PortRange(p, p);
            return true;
        }
        string first = text[..colon], last = text[(colon + 1)..];
        ushort min = 0, max = 65535;
        if (first.Length > 0 && !TryParsePort(first, out min, out error))
            return false;
        if (last.Length > 0 && !TryParsePort(last, out max, out error))
            return false;
        if (min > max)
        {
            error = $"bad port range '{text}'; the first port is greater than the second";
            return false;
        }
        error = "";
        range = new PortRange(min, max);
        return true;
    }

    /// <summary>
    /// libxt_multiport's <c>parse_multi_ports_v1</c>: comma list of ports and "a:b" ranges (a &lt; b),
    /// at most 15 entries where a range takes two.
    /// </summary>
    public static bool TryParseMultiport(string option, string text, List<PortRange> ranges, out string error)
    {
        const int maxEntries = 15; // XT_MULTI_PORTS
        ranges.Clear();
        int entries = 0;
        foreach (string item in text.Split(','))
        {
            int colon = item.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                if (!TryParsePort(item, out ushort p, out error))
                    return false;
                ranges.Add(new PortRange(p, p));
                entries++;
            }
            else
            {
                if (!TryParsePort(item[..colon], out ushort min, out error) || !TryParsePort(item[(colon + 1)..], out ushort max, out error))
                    return false;
                if (min >= max)
                {
                    error = $"bad port range '{item}' in '{option}'; multiport ranges need the first port below the second";
                    return false;
                }
                ranges.Add(new PortRange(min, max));
                entries += 2;
            }
            if (entries > maxEntries)
            {
                error = $"too many ports in '{option} {text}'; multiport takes at most 15 (a range counts as 2)";
                return false;
            }
        }
        error = "";
        return true;
    }

    /// <summary>
    /// libxt_icmp's <c>parse_icmp</c> / libip6t_icmp6's: a name matched case-insensitively by prefix
    /// (two candidates is an error, as in iptables), else "type" (any code) or "type/code".
    /// </summary>
    public static bool TryParseIcmpType(string text, bool v6, out byte type, out byte codeMin, out byte codeMax, out string error)
    {
        NameTables.IcmpName[] table = v6 ? NameTables.Icmpv6 : NameTables.Icmp;
        int match = -1;
        for (int i = 0; i < table.Length; i++)
        {
            if (!table[i].Name.StartsWith(text, StringComparison.OrdinalIgnoreCase))
                continue;
            if (match >= 0)
            {
                type = codeMin = codeMax = 0;
                error = $"ambiguous ICMP{(v6 ? "v6" : "")} type '{text}': '{table[match].Name}' or '{table[i].Name}'?";
                return false;
            }
            match = i;
        }
        if (match >= 0)
        {
            (_, type, codeMin, codeMax) = table[match];
            error = "";
            return true;
        }

        int slash = text.IndexOf('/', StringComparison.Ordinal);
        string typeText = slash < 0 ? text : text[..slash];
        codeMin = 0;
        codeMax = 0xFF;
        type = 0;
        if (TryParseDecimal(typeText, 255, out uint t))
        {
            type = (byte)t;
            error = "";
            if (slash < 0)
                return true;
            if (TryParseDecimal(text[(slash + 1)..], 255, out uint c))
            {
                codeMin = codeMax = (byte)c;
                return true;
            }
        }
        error = $"unknown ICMP{(v6 ? "v6" : "")} type '{text}'; expected a name such as {(v6 ? "echo-request, destination-unreachable, packet-too-big" : "echo-request, destination-unreachable, port-unreachable")} or a number type[/code] 0..255";
        return false;
    }

    /// <summary>
    /// `--mark VALUE[/MASK]` as libxt_mark reads it (xtables_parse_val_mask): unsigned 32-bit numbers
    /// in C notation (decimal, 0x hex, 0 octal); without a mask all 32 bits are compared.
    /// </summary>
    public static bool TryParseMark(string text, out uint value, out uint mask, out string error)
    {
        mask = uint.MaxValue;
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        if (!TryParseCNumber(slash < 0 ? text : text[..slash], out value) || (slash >= 0 && !TryParseCNumber(text[(slash + 1)..], out mask)))
        {
            error = $"bad mark '{text}'; expected VALUE[/MASK], each a 32-bit number (decimal, 0x hex or 0 octal)";
            return false;
        }
        error = "";
        return true;
    }

    /// <summary>strtoul with base 0, whole string, 0..2^32-1: 42, 0x2a, 052.</summary>
    private static bool TryParseCNumber(string text, out uint value)
    {
        value = 0;
        if (text.Length == 0)
            return false;
        int radix = text.Length > 2 && text[0] == '0' && (text[1] is 'x' or 'X') ? 16 : text.Length > 1 && text[0] == '0' ? 8 : 10;
        ReadOnlySpan<char> digits = text.AsSpan(radix == 16 ? 2 : radix == 8 ? 1 : 0);
        ulong v = 0;
        foreach (char c in digits)
        {
            int d = c is >= '0' and <= '9' ? c - '0' : c is >= 'a' and <= 'f' ? c - 'a' + 10 : c is >= 'A' and <= 'F' ? c - 'A' + 10 : 99;
            if (d >= radix)
                return false;
            v = v * (ulong)radix + (ulong)d;
            if (v > uint.MaxValue)
                return false;
        }
        value = (uint)v;
        return true;
    }

    /// <summary>`--tcp-flags` lists: comma-separated FIN SYN RST PSH ACK URG ALL NONE, any case.</summary>
    public static bool TryParseTcpFlags(string text, out byte flags, out string error)
    {
        flags = 0;
        foreach (string name in text.Split(','))
        {
            int i = Array.FindIndex(NameTables.TcpFlags, f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));
            if (i < 0)
            {
                error = $"unknown TCP flag '{name}'; expected SYN, ACK, FIN, RST, URG, PSH, ALL or NONE";
                return false;
            }
            flags |= NameTables.TcpFlags[i].Bits;
        }
        error = "";
        return true;
    }

    /// <summary>`--state` (INVALID NEW ESTABLISHED RELATED UNTRACKED) and `--ctstate` (the same plus SNAT DNAT).</summary>
    public static bool TryParseStates(string text, bool conntrack, out CtStateMask mask, out string error)
    {
        mask = 0;
        foreach (string name in text.Split(','))
        {
            CtStateMask bit = name.ToUpperInvariant() switch
            {
                "INVALID" => CtStateMask.Invalid,
                "NEW" => CtStateMask.New,
                "ESTABLISHED" => CtStateMask.Established,
                "RELATED" => CtStateMask.Related,
                "UNTRACKED" => CtStateMask.Untracked,
                "SNAT" when conntrack => CtStateMask.Snat,
                "DNAT" when conntrack => CtStateMask.Dnat,
                _ => 0,
            };
            if (bit == 0)
            {
                error = conntrack
                    ? $"unknown conntrack state '{name}'; expected INVALID, NEW, ESTABLISHED, RELATED, UNTRACKED, SNAT or DNAT"
                    : $"unknown state '{name}'; expected INVALID, NEW, ESTABLISHED, RELATED or UNTRACKED";
                return false;
            }
            mask |= bit;
        }
        error = "";
        return true;
    }

    public static bool TryParseLogLevel(string text, out byte level, out string error)
    {
        error = "";
        if (TryParseDecimal(text, 7, out uint n))
        {
            level = (byte)n;
            return true;
        }
        foreach ((string name, byte value) in NameTables.LogLevels)
        {
            if (name == text)
            {
                level = value;
                return true;
            }
        }
        level = 0;
        error = $"bad log level '{text}'; expected 0..7 or emerg, alert, crit, error, warning, notice, info, debug";
        return false;
    }

    /// <summary>The kind for a --reject-with name or alias (any case); "port-unreach" is both families' and gives <see cref="RejectWith.Default"/>.</summary>
    public static bool TryParseRejectWith(string text, out RejectWith kind, out string error)
    {
        kind = RejectWith.Default;
        int found = 0;
        foreach ((string name, string alias, RejectWith k) in NameTables.Reject)
        {
            if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase) || string.Equals(alias, text, StringComparison.OrdinalIgnoreCase))
            {
                kind = k;
                found++;
            }
        }
        if (found > 1)
            kind = RejectWith.Default;
        error = found > 0 ? "" : $"unknown --reject-with '{text}'; expected one of {string.Join(", ", NameTables.Reject.Select(r => r.Name))}";
        return found > 0;
    }

    /// <summary>`[packets:bytes]`.</summary>
    public static bool TryParseCounters(string text, out ulong packets, out ulong bytes)
    {
        packets = bytes = 0;
        if (text.Length < 5 || text[0] != '[' || text[^1] != ']')
            return false;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        return colon > 1
            && ulong.TryParse(text.AsSpan(1, colon - 1), NumberStyles.None, CultureInfo.InvariantCulture, out packets)
            && ulong.TryParse(text.AsSpan(colon + 1, text.Length - colon - 2), NumberStyles.None, CultureInfo.InvariantCulture, out bytes);
    }

    public static bool TryParseDecimal(string text, uint max, out uint value)
    {
        value = 0;
        if (text.Length is 0 or > 10)
            return false;
        foreach (char c in text)
        {
            if (!char.IsAsciiDigit(c))
                return false;
        }
        return uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value <= max;
    }
}

/// <summary>xt_state/xt_conntrack state bits (our own layout; SNAT/DNAT only for --ctstate).</summary>
[Flags]
internal enum CtStateMask : byte
{
    Invalid = 1 << 0,
    New = 1 << 1,
    Established = 1 << 2,
    Related = 1 << 3,
    Untracked = 1 << 4,
    Snat = 1 << 5,
    Dnat = 1 << 6,
}
