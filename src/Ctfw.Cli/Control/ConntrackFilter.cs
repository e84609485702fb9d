using System.Globalization;
using System.Text;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Control;

/// <summary>
/// The entry filters of conntrack-tools' `conntrack -L` (all given filters must match). The
/// client parses them to reject mistakes before connecting and sends <see cref="Args"/>; the
/// server parses them again and filters, so a listing never ships entries nobody asked for.
/// Adding a filter is one row in <see cref="s_options"/>, a field, and a clause in
/// <see cref="Matches"/> (plus a cross-check in <see cref="Validate"/> if it constrains others).
/// </summary>
internal sealed class ConntrackFilter
{
    /// <summary>Applies an option's value; returns an error message or null.</summary>
    private delegate string? Setter(ConntrackFilter filter, string option, string value);

    /// <summary>One filter option; <paramref name="ValueName"/> null makes it a flag (its setter gets "").</summary>
    private sealed record Option(string[] Names, string? ValueName, string Description, Setter Set)
    {
        /// <summary>The name sent to the server: the last (long) one.</summary>
        public string Canonical => Names[^1];
    }

    private static readonly Option[] s_options =
    [
        new(["-p", "--proto"], "PROTO", "tcp, udp, udplite, icmp, icmpv6, gre, sctp or a number",
            static (f, o, v) => f.SetProtocol(o, v)),
        new(["-f", "--family"], "FAMILY", "ipv4 or ipv6",
            static (f, o, v) => f.SetFamily(o, v)),
        new(["-s", "--src", "--orig-src"], "ADDR[/LEN]", "original source address or prefix",
            static (f, o, v) => SetPrefix(o, v, out f._origSrc)),
        new(["-d", "--dst", "--orig-dst"], "ADDR[/LEN]", "original destination address or prefix",
            static (f, o, v) => SetPrefix(o, v, out f._origDst)),
        new(["-r", "--reply-src"], "ADDR[/LEN]", "reply source address or prefix",
            static (f, o, v) => SetPrefix(o, v, out f._replySrc)),
        new(["-q", "--reply-dst"], "ADDR[/LEN]", "reply destination address or prefix",
            static (f, o, v) => SetPrefix(o, v, out f._replyDst)),
        new(["--sport", "--orig-port-src"], "PORT", "original source port (tcp, udp, udplite, sctp)",
            static (f, o, v) => SetPort(o, v, out f._origSport)),
        new(["--dport", "--orig-port-dst"], "PORT", "original destination port",
            static (f, o, v) => SetPort(o, v, out f._origDport)),
        new(["--reply-port-src"], "PORT", "reply source port",
            static (f, o, v) => SetPort(o, v, out f._replySport)),
        new(["--reply-port-dst"], "PORT", "reply destination port",
            static (f, o, v) => SetPort(o, v, out f._replyDport)),
        new(["--state"], "STATE", "TCP state: SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT,\n"
            + "LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2, NONE (only TCP entries match)",
            static (f, o, v) => f.SetTcpState(o, v)),
        new(["-u", "--status"], "STATUS[,STATUS]", "ASSURED, SEEN_REPLY, UNREPLIED; all listed must hold",
            static (f, o, v) => f.SetStatus(o, v)),
        new(["--half-closed"], null, "TCP flows in FIN_WAIT, CLOSE_WAIT or LAST_ACK: one side has sent FIN,\n"
            + "the other has not finished; adds half-closed=AGE (time in that state) and fin=WHO",
            static (f, _, _) => { f._halfClosed = true; return null; }),
        new(["--stalled"], null, "TCP flows where one side has advertised a zero window for longer than\n"
            + "--stalled-after; adds zero-window=SIDE:AGE and fin=WHO (a FIN seen on the wire)",
            static (f, _, _) => { f._stalled = true; return null; }),
        new(["--stalled-after"], "SECONDS", $"threshold of --stalled (default {FlowAges.DefaultStalledAfterSeconds})",
            static (f, o, v) => f.SetStalledAfter(o, v)),
    ];

    private readonly List<string> _args = [];
    private readonly HashSet<Option> _given = new(ReferenceEqualityComparer.Instance);

    private int _protocol = -1;
    private int _family;
    private AddressPrefix? _origSrc, _origDst, _replySrc, _replyDst;
    private int _origSport = -1, _origDport = -1, _replySport = -1, _replyDport = -1;
    private TcpState? _tcpState;
    private bool _halfClosed;
    private bool _stalled;
    private long _stalledAfterMs = FlowAges.DefaultStalledAfterSeconds * 1000L;
    private bool _stalledAfterGiven;
    private CtStatus _status;
    private bool _unreplied;

    /// <summary>The filters given, as the `list` request carries them: canonical option name, then value.</summary>
    public IReadOnlyList<string> Args => _args;

    public bool IsEmpty => _args.Count == 0;

    private bool HasPortFilter => _origSport >= 0 || _origDport >= 0 || _replySport >= 0 || _replyDport >= 0;

    /// <summary>The filter options for a command line: names (the last is the canonical, long one), value name (null for a flag), description.</summary>
    public static IEnumerable<(string[] Names, string? ValueName, string Description)> Definitions =>
        s_options.Select(o => (o.Names, o.ValueName, o.Description));

    /// <summary>
    /// Applies the filter option <paramref name="name"/> (any of its names) with <paramref name="value"/>
    /// ("" for a flag); an error message, or null. Call <see cref="Validate"/> once every option is in.
    /// </summary>
    public string? Add(string name, string value)
    {
        if (Find(name) is not { } option)
            return $"unknown filter option '{name}'";
        if (!_given.Add(option))
            return $"option {name} given twice";
        if (value.AsSpan().ContainsAny('\t', '\n', '\r'))
            return $"{name}: value contains a tab or line break";
        if (option.Set(this, name, value) is string error)
            return error;
        _args.Add(option.Canonical);
        if (option.ValueName != null)
            _args.Add(value);
        return null;
    }

    private static Option? Find(string name)
    {
        foreach (Option option in s_options)
        {
            if (option.Names.Contains(name))
                return option;
        }
        return null;
    }

    /// <summary>Checks the filters against each other; an error message, or null when they make sense together.</summary>
    public string? Validate()
    {
        AddressPrefix? first = null;
        foreach (AddressPrefix? prefix in (ReadOnlySpan<AddressPrefix?>)[_origSrc, _origDst, _replySrc, _replyDst])
        {
            if (prefix is not { } p)
                continue;
            if (_family != 0 && p.IsV6 != (_family == 6))
                return $"--family ipv{_family} but {p} is IPv{(p.IsV6 ? 6 : 4)}";
            if (first is { } f && f.IsV6 != p.IsV6)
                return $"addresses of two families: {f} and {p}";
            first ??= p;
        }
        if (HasPortFilter && _protocol >= 0 && !HasPorts((byte)_protocol))
            return $"port filters need a protocol with ports (tcp, udp, udplite, sctp), not {ProtocolName(_protocol)}";
        if (_tcpState != null && _protocol >= 0 && _protocol != IpProto.Tcp)
            return $"--state is a TCP state and cannot match {ProtocolName(_protocol)} entries";
        if ((_halfClosed || _stalled) && _protocol >= 0 && _protocol != IpProto.Tcp)
            return $"--half-closed and --stalled describe TCP flows and cannot match {ProtocolName(_protocol)} entries";
        if (_stalledAfterGiven && !_stalled)
            return "--stalled-after needs --stalled";
        return null;
    }

    /// <summary>
    /// Parses a whole argument list (the server side of `list`): option and value as two words or as
    /// `--option=value`, a flag alone; then cross-checks.
    /// </summary>
    public static ConntrackFilter? Parse(IReadOnlyList<string> args, out string? error)
    {
        var filter = new ConntrackFilter();
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            string value = "";
            int equals = name.IndexOf('=', StringComparison.Ordinal);
            if (name.StartsWith('-') && equals > 0 && Find(name[..equals]) is { ValueName: not null })
            {
                value = name[(equals + 1)..];
                name = name[..equals];
            }
            else if (Find(name) is { ValueName: not null })
            {
                if (i + 1 >= args.Count)
                {
                    error = $"option {name} needs a value";
                    return null;
                }
                value = args[++i];
            }
            if (filter.Add(name, value) is { } refused)
            {
                error = refused;
                return null;
            }
        }
        error = filter.Validate();
        return error == null ? filter : null;
    }

    /// <summary>True when the listing adds ages (--half-closed, --stalled) to each line.</summary>
    public bool Annotates => _halfClosed || _stalled;

    /// <summary>Matches with the daemon clock <paramref name="nowMs"/> (needed by --stalled).</summary>
    public bool Matches(in FlowInfo f, long nowMs)
    {
        if (_halfClosed && !FlowAges.IsHalfClosed(f))
            return false;
        if (_stalled && !FlowAges.IsStalled(f, nowMs, _stalledAfterMs))
            return false;
        return Matches(f);
    }

    /// <summary>What --half-closed / --stalled add to a listing line (starts with a space), or "".</summary>
    public string Annotate(in FlowInfo f, long nowMs)
    {
        var sb = new StringBuilder();
        if (_halfClosed)
            sb.Append(" half-closed=").Append(FlowAges.Seconds(nowMs - f.StateSinceMs)).Append('s');
        if (_stalled && FlowAges.ZeroWindowSide(f, nowMs, _stalledAfterMs, out string side, out long since))
            sb.Append(" zero-window=").Append(side).Append(':').Append(FlowAges.Seconds(nowMs - since)).Append('s');
        if (Annotates)
            sb.Append(" fin=").Append(FlowAges.FinSeen(f));
        return sb.ToString();
    }

    private string? SetStalledAfter(string option, string value)
    {
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) || seconds is < 1 or > 86400)
            return $"{option} {value}: expected 1..86400 seconds";
        _stalledAfterMs = seconds * 1000L;
        _stalledAfterGiven = true;
        return null;
    }

    public bool Matches(in FlowInfo f)
    {
        ConnTuple o = f.Original, r = f.Reply;
        if (_family != 0 && o.IpVersion != _family)
            return false;
        if (_protocol >= 0 && o.Protocol != _protocol)
            return false;
        if (_tcpState is { } state && (o.Protocol != IpProto.Tcp || f.TcpState != state))
            return false;
        if (_origSrc is { } os && !os.Contains(o.Src, o.IsV6))
            return false;
        if (_origDst is { } od && !od.Contains(o.Dst, o.IsV6))
            return false;
        if (_replySrc is { } rs && !rs.Contains(r.Src, r.IsV6))
            return false;
        if (_replyDst is { } rd && !rd.Contains(r.Dst, r.IsV6))
            return false;
        if (HasPortFilter)
        {
            if (!HasPorts(o.Protocol))
                return false;
            if ((_origSport >= 0 && o.SrcId != _origSport) || (_origDport >= 0 && o.DstId != _origDport)
                || (_replySport >= 0 && r.SrcId != _replySport) || (_replyDport >= 0 && r.DstId != _replyDport))
                return false;
        }
        if ((f.Status & _status) != _status)
            return false;
        return !_unreplied || (f.Status & CtStatus.SeenReply) == 0;
    }

    /// <summary>Protocols whose entries `conntrack -L` shows with sport/dport (as <see cref="ConntrackListing"/> does).</summary>
    private static bool HasPorts(byte protocol) =>
        protocol is IpProto.Tcp or IpProto.Udp or IpProto.UdpLite or IpProto.Sctp;

    private static readonly (string Name, byte Number)[] s_protocols =
    [
        ("tcp", IpProto.Tcp), ("udp", IpProto.Udp), ("udplite", IpProto.UdpLite), ("icmp", IpProto.Icmp),
        ("icmpv6", IpProto.Icmpv6), ("gre", IpProto.Gre), ("sctp", IpProto.Sctp),
    ];

    private static string ProtocolName(int protocol)
    {
        foreach ((string name, byte number) in s_protocols)
        {
            if (number == protocol)
                return name;
        }
        return $"protocol {protocol}";
    }

    private string? SetProtocol(string option, string value)
    {
        foreach ((string name, byte number) in s_protocols)
        {
            if (string.Equals(name, value, StringComparison.OrdinalIgnoreCase))
            {
                _protocol = number;
                return null;
            }
        }
        if (byte.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out byte n))
        {
            _protocol = n;
            return null;
        }
        return $"{option} {value}: expected tcp, udp, udplite, icmp, icmpv6, gre, sctp or a number 0..255";
    }

    private string? SetFamily(string option, string value)
    {
        _family = value.ToLowerInvariant() switch
        {
            "ipv4" => 4,
            "ipv6" => 6,
            _ => 0,
        };
        return _family == 0 ? $"{option} {value}: expected ipv4 or ipv6" : null;
    }

    private static string? SetPrefix(string option, string value, out AddressPrefix? prefix)
    {
        prefix = null;
        if (!AddressPrefix.TryParse(value, out AddressPrefix p))
            return $"{option} {value}: expected an IPv4 or IPv6 address, optionally with /LENGTH";
        prefix = p;
        return null;
    }

    private static string? SetPort(string option, string value, out int port)
    {
        port = -1;
        if (!ushort.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out ushort p))
            return $"{option} {value}: expected a port 0..65535";
        port = p;
        return null;
    }

    private string? SetTcpState(string option, string value)
    {
        if (!CtNames.TryParseTcpState(value, out TcpState state))
            return $"{option} {value}: expected a TCP state (SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2, NONE)";
        _tcpState = state;
        return null;
    }

    private string? SetStatus(string option, string value)
    {
        foreach (string part in value.Split(','))
        {
            switch (part.Trim().ToUpperInvariant())
            {
                case "ASSURED":
                    _status |= CtStatus.Assured;
                    break;
                case "SEEN_REPLY":
                    _status |= CtStatus.SeenReply;
                    break;
                case "UNREPLIED":
                    _unreplied = true;
                    break;
                default:
                    return $"{option} {value}: expected a comma-separated list of ASSURED, SEEN_REPLY, UNREPLIED";
            }
        }
        if (_unreplied && (_status & CtStatus.SeenReply) != 0)
            return $"{option} {value}: an entry cannot be both SEEN_REPLY and UNREPLIED";
        return null;
    }
}

/// <summary>An address with a prefix length (a whole address is /32 or /128), stored masked.</summary>
internal readonly record struct AddressPrefix(IpAddress Network, int Length, bool IsV6)
{
    public bool Contains(IpAddress address, bool isV6)
    {
        if (isV6 != IsV6)
            return false;
        Mask(Length, out ulong hi, out ulong lo);
        return (address.Hi & hi) == Network.Hi && (address.Lo & lo) == Network.Lo;
    }

    /// <summary>
    /// Strict text forms: IPv4 as four decimal octets without leading zeros (what inet_pton takes,
    /// not the `10` or `010.0.0.1` forms IPAddress.Parse would accept), IPv6 without a zone.
    /// </summary>
    public static bool TryParse(string text, out AddressPrefix prefix)
    {
        prefix = default;
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        string address = slash < 0 ? text : text[..slash];
        bool v6 = address.Contains(':', StringComparison.Ordinal);
        if (v6 ? address.Contains('%', StringComparison.Ordinal) : !IsDottedQuad(address))
            return false;
        if (!IpAddress.TryParse(address, out IpAddress ip, out bool isV6) || isV6 != v6)
            return false;
        int max = v6 ? 128 : 32;
        int length = max;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max))
            return false;
        // The kernel stores IPv4 in the top 32 bits of Hi, so a v4 prefix masks from the top as v6 does.
        Mask(length, out ulong hi, out ulong lo);
        prefix = new AddressPrefix(new IpAddress(ip.Hi & hi, ip.Lo & lo), length, v6);
        return true;
    }

    private static void Mask(int length, out ulong hi, out ulong lo)
    {
        hi = length == 0 ? 0 : length >= 64 ? ulong.MaxValue : ulong.MaxValue << (64 - length);
        lo = length <= 64 ? 0 : ulong.MaxValue << (128 - length);
    }

    private static bool IsDottedQuad(string text)
    {
        string[] parts = text.Split('.');
        if (parts.Length != 4)
            return false;
        foreach (string part in parts)
        {
            if (part.Length is 0 or > 3 || (part.Length > 1 && part[0] == '0'))
                return false;
            foreach (char c in part)
            {
                if (c is < '0' or > '9')
                    return false;
            }
            if (int.Parse(part, CultureInfo.InvariantCulture) > 255)
                return false;
        }
        return true;
    }

    public override string ToString()
    {
        string address = Network.Format(IsV6);
        return Length == (IsV6 ? 128 : 32) ? address : string.Create(CultureInfo.InvariantCulture, $"{address}/{Length}");
    }
}
