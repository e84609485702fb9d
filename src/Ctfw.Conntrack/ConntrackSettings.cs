using System.Globalization;

namespace Ctfw.Conntrack;

/// <summary>
/// The conntrack sysctls that change classification, under the kernel's own names
/// (`/proc/sys/net/netfilter/…`), with the kernel's defaults (kernel-conntrack.md §4.10, §7–§10).
/// Timeouts are whole seconds as in the sysctls. Immutable once handed to a tracker: build it with
/// <see cref="Set"/> / <see cref="Load"/> first.
/// </summary>
public sealed class ConntrackSettings
{
    /// <summary>Table size when nf_conntrack_max is 0 (the kernel's "unlimited") or not given.</summary>
    public const int DefaultMax = 262144;
    /// <summary>Largest table ctfw preallocates (2^26 entries, 8 GiB).</summary>
    public const int MaxEntries = 1 << 26;

    public int Max { get; private set; } = DefaultMax;
    public bool Checksum { get; private set; } = true;
    public int LogInvalid { get; private set; }
    /// <summary>
    /// nf_conntrack_acct: whether flows are counted (packets and bytes per direction) and listings and
    /// DESTROY events show `packets= bytes=`. As in the kernel, off costs nothing: the counters'
    /// array is allocated only when it is on at start or a reload turns it on
    /// (<see cref="ConntrackEngine.ReloadSettings"/>); flows live then count from that moment.
    /// </summary>
    public bool Acct { get; private set; }

    public bool TcpLoose { get; private set; } = true;
    public bool TcpBeLiberal { get; private set; }
    public bool TcpIgnoreInvalidRst { get; private set; }
    public int TcpMaxRetrans { get; private set; } = 3;

    /// <summary>Indexed by <see cref="TcpTimeoutSlot"/>, seconds.</summary>
    internal readonly int[] TcpTimeouts =
    [
        0,       // NONE (unused)
        120,     // SYN_SENT
        60,      // SYN_RECV
        432000,  // ESTABLISHED
        120,     // FIN_WAIT
        60,      // CLOSE_WAIT
        30,      // LAST_ACK
        120,     // TIME_WAIT
        10,      // CLOSE
        120,     // SYN_SENT2 (no sysctl)
        0,       // (MAX placeholder)
        0,       // (IGNORE placeholder)
        300,     // RETRANS
        300,     // UNACK
    ];

    public int UdpTimeout { get; private set; } = 30;
    public int UdpTimeoutStream { get; private set; } = 120;
    public int IcmpTimeout { get; private set; } = 30;
    public int Icmpv6Timeout { get; private set; } = 30;
    public int GenericTimeout { get; private set; } = 600;
    public int GreTimeout { get; private set; } = 30;
    public int GreTimeoutStream { get; private set; } = 180;

    /// <summary>
    /// Indexed by <see cref="SctpState"/>, seconds (nf_conntrack_sctp_timeout_*). NONE has no sysctl:
    /// the kernel gives it CLOSED's default (a first packet always leaves a real state anyway).
    /// </summary>
    internal readonly int[] SctpTimeouts =
    [
        10,   // NONE
        10,   // CLOSED
        3,    // COOKIE_WAIT
        3,    // COOKIE_ECHOED
        210,  // ESTABLISHED
        3,    // SHUTDOWN_SENT
        3,    // SHUTDOWN_RECD
        3,    // SHUTDOWN_ACK_SENT
        30,   // HEARTBEAT_SENT
    ];

    public int SctpTimeout(SctpState state) => SctpTimeouts[(int)state];

    public int TcpTimeout(TcpState state) => TcpTimeouts[(int)state];

    private enum Kind { Bool, Seconds, Count }

    private readonly record struct Knob(Kind Kind, Action<ConntrackSettings, int> Apply);

    private static readonly Dictionary<string, Knob> s_knobs = new(StringComparer.Ordinal)
    {
        ["nf_conntrack_max"] = new(Kind.Count, (s, v) => s.Max = v),
        ["nf_conntrack_checksum"] = new(Kind.Bool, (s, v) => s.Checksum = v != 0),
        ["nf_conntrack_acct"] = new(Kind.Bool, (s, v) => s.Acct = v != 0),
        ["nf_conntrack_log_invalid"] = new(Kind.Count, (s, v) => s.LogInvalid = v),
        ["nf_conntrack_tcp_loose"] = new(Kind.Bool, (s, v) => s.TcpLoose = v != 0),
        ["nf_conntrack_tcp_be_liberal"] = new(Kind.Bool, (s, v) => s.TcpBeLiberal = v != 0),
        ["nf_conntrack_tcp_ignore_invalid_rst"] = new(Kind.Bool, (s, v) => s.TcpIgnoreInvalidRst = v != 0),
        ["nf_conntrack_tcp_max_retrans"] = new(Kind.Count, (s, v) => s.TcpMaxRetrans = v),
        ["nf_conntrack_tcp_timeout_syn_sent"] = TcpSlot(TcpState.SynSent),
        ["nf_conntrack_tcp_timeout_syn_recv"] = TcpSlot(TcpState.SynRecv),
        ["nf_conntrack_tcp_timeout_established"] = TcpSlot(TcpState.Established),
        ["nf_conntrack_tcp_timeout_fin_wait"] = TcpSlot(TcpState.FinWait),
        ["nf_conntrack_tcp_timeout_close_wait"] = TcpSlot(TcpState.CloseWait),
        ["nf_conntrack_tcp_timeout_last_ack"] = TcpSlot(TcpState.LastAck),
        ["nf_conntrack_tcp_timeout_time_wait"] = TcpSlot(TcpState.TimeWait),
        ["nf_conntrack_tcp_timeout_close"] = TcpSlot(TcpState.Close),
        ["nf_conntrack_tcp_timeout_max_retrans"] = TcpSlot(TcpState.Retrans),
        ["nf_conntrack_tcp_timeout_unacknowledged"] = TcpSlot(TcpState.Unack),
        ["nf_conntrack_udp_timeout"] = new(Kind.Seconds, (s, v) => s.UdpTimeout = v),
        ["nf_conntrack_udp_timeout_stream"] = new(Kind.Seconds, (s, v) => s.UdpTimeoutStream = v),
        ["nf_conntrack_icmp_timeout"] = new(Kind.Seconds, (s, v) => s.IcmpTimeout = v),
        ["nf_conntrack_icmpv6_timeout"] = new(Kind.Seconds, (s, v) => s.Icmpv6Timeout = v),
        ["nf_conntrack_generic_timeout"] = new(Kind.Seconds, (s, v) => s.GenericTimeout = v),
        ["nf_conntrack_gre_timeout"] = new(Kind.Seconds, (s, v) => s.GreTimeout = v),
        ["nf_conntrack_gre_timeout_stream"] = new(Kind.Seconds, (s, v) => s.GreTimeoutStream = v),
        ["nf_conntrack_sctp_timeout_closed"] = SctpSlot(SctpState.Closed),
        ["nf_conntrack_sctp_timeout_cookie_wait"] = SctpSlot(SctpState.CookieWait),
        ["nf_conntrack_sctp_timeout_cookie_echoed"] = SctpSlot(SctpState.CookieEchoed),
        ["nf_conntrack_sctp_timeout_established"] = SctpSlot(SctpState.Established),
        ["nf_conntrack_sctp_timeout_shutdown_sent"] = SctpSlot(SctpState.ShutdownSent),
        ["nf_conntrack_sctp_timeout_shutdown_recd"] = SctpSlot(SctpState.ShutdownRecd),
        ["nf_conntrack_sctp_timeout_shutdown_ack_sent"] = SctpSlot(SctpState.ShutdownAckSent),
        ["nf_conntrack_sctp_timeout_heartbeat_sent"] = SctpSlot(SctpState.HeartbeatSent),
    };

    /// <summary>
    /// Kernel sysctls that exist under /proc/sys/net/netfilter but do not change classification
    /// here (accounting, events, other protocols' trackers, fragment reassembly). Accepted and
    /// ignored so a dump of the live directory loads; anything else is an error.
    /// </summary>
    private static readonly HashSet<string> s_ignored = new(StringComparer.Ordinal)
    {
        "nf_conntrack_buckets", "nf_conntrack_count", "nf_conntrack_events",
        "nf_conntrack_expect_max", "nf_conntrack_helper", "nf_conntrack_timestamp",
        "nf_conntrack_frag6_high_thresh", "nf_conntrack_frag6_low_thresh", "nf_conntrack_frag6_timeout",
        "nf_hooks_lwtunnel", "nf_flowtable_tcp_timeout", "nf_flowtable_udp_timeout",
        // Kernels before 6.3 (HEARTBEAT_ACKED state, removed since): accepted so their dumps load.
        "nf_conntrack_sctp_timeout_heartbeat_acked",
        "nf_conntrack_dccp_loose", "nf_conntrack_dccp_timeout_closereq", "nf_conntrack_dccp_timeout_closing",
        "nf_conntrack_dccp_timeout_open", "nf_conntrack_dccp_timeout_partopen", "nf_conntrack_dccp_timeout_request",
        "nf_conntrack_dccp_timeout_respond", "nf_conntrack_dccp_timeout_timewait",
        "nf_conntrack_tcp_timeout_syn_sent2",
    };

    private static Knob TcpSlot(TcpState slot) => new(Kind.Seconds, (s, v) => s.TcpTimeouts[(int)slot] = v);

    private static Knob SctpSlot(SctpState slot) => new(Kind.Seconds, (s, v) => s.SctpTimeouts[(int)slot] = v);

    public static IEnumerable<string> KnownNames => s_knobs.Keys;

    /// <summary>Whether <paramref name="name"/> is a sysctl this class models or knowingly ignores.</summary>
    public static bool IsKnown(string name) => s_knobs.ContainsKey(StripPrefix(name)) || s_ignored.Contains(StripPrefix(name));

    private static string StripPrefix(string name) =>
        name.StartsWith("net.netfilter.", StringComparison.Ordinal) ? name["net.netfilter.".Length..] : name;

    /// <summary>Sets one sysctl by its kernel name. Returns an error message, or null on success.</summary>
    public string? Set(string name, string value)
    {
        name = StripPrefix(name.Trim());
        value = value.Trim();
        if (!s_knobs.TryGetValue(name, out Knob knob))
        {
            if (s_ignored.Contains(name))
                return null;
            return $"unknown sysctl '{name}' (expected one of the nf_conntrack_* names under /proc/sys/net/netfilter, e.g. nf_conntrack_tcp_timeout_established)";
        }
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int v))
            return $"bad value '{value}' for {name}: expected a non-negative integer";
        if (knob.Kind == Kind.Bool && v > 1)
            return $"bad value '{value}' for {name}: expected 0 or 1";
        if (knob.Kind == Kind.Seconds && v > int.MaxValue / 1000)
            return $"bad value '{value}' for {name}: at most {int.MaxValue / 1000} seconds";
        if (name == "nf_conntrack_max" && v > MaxEntries)
            return $"bad value '{value}' for {name}: at most {MaxEntries} (the table is preallocated)";
        if (name == "nf_conntrack_max" && v == 0)
            v = DefaultMax; // the kernel's "unlimited"; a preallocated table needs a size
        knob.Apply(this, v);
        return null;
    }

    /// <summary>
    /// Loads `name=value` lines (blank lines and `#` comments allowed). Errors name the source
    /// and the line. Returns null on success.
    /// </summary>
    public string? Load(TextReader reader, string sourceName)
    {
        int lineNo = 0;
        while (reader.ReadLine() is string line)
        {
            lineNo++;
            ReadOnlySpan<char> t = line.AsSpan().Trim();
            if (t.IsEmpty || t[0] == '#' || t[0] == ';')
                continue;
            int eq = t.IndexOf('=');
            if (eq <= 0)
                return $"{sourceName}:{lineNo}: expected name=value, got '{line.Trim()}'";
            string? err = Set(t[..eq].ToString(), t[(eq + 1)..].ToString());
            if (err != null)
                return $"{sourceName}:{lineNo}: {err}";
        }
        return null;
    }

    /// <summary>Parses `NAME=VALUE` as given to `--set`.</summary>
    public string? SetAssignment(string assignment)
    {
        int eq = assignment.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
            return $"--set expects NAME=VALUE, got '{assignment}'";
        return Set(assignment[..eq], assignment[(eq + 1)..]);
    }

    /// <summary>
    /// Copies every modelled value from <paramref name="other"/> except <c>nf_conntrack_max</c> (the
    /// table is sized once, at start). Each value is one aligned int store, so classifiers reading
    /// these settings concurrently see either the old or the new value of each knob — as in the
    /// kernel, where a sysctl write applies from the next packet on. Returns the names that changed.
    /// </summary>
    public List<string> CopyRuntimeValuesFrom(ConntrackSettings other)
    {
        ArgumentNullException.ThrowIfNull(other);
        List<string> changed = [];
        foreach ((string name, Knob knob) in s_knobs)
        {
            if (name == "nf_conntrack_max")
                continue;
            int value = other.Get(name);
            if (Get(name) != value)
            {
                knob.Apply(this, value);
                changed.Add(name);
            }
        }
        return changed;
    }

    /// <summary>All modelled settings as `name=value` lines, in a stable order.</summary>
    public IEnumerable<string> Dump()
    {
        foreach (string name in s_knobs.Keys.Order(StringComparer.Ordinal))
            yield return $"{name}={Get(name)}";
    }

    public int Get(string name) => StripPrefix(name) switch
    {
        "nf_conntrack_max" => Max,
        "nf_conntrack_checksum" => Checksum ? 1 : 0,
        "nf_conntrack_acct" => Acct ? 1 : 0,
        "nf_conntrack_log_invalid" => LogInvalid,
        "nf_conntrack_tcp_loose" => TcpLoose ? 1 : 0,
        "nf_conntrack_tcp_be_liberal" => TcpBeLiberal ? 1 : 0,
        "nf_conntrack_tcp_ignore_invalid_rst" => TcpIgnoreInvalidRst ? 1 : 0,
        "nf_conntrack_tcp_max_retrans" => TcpMaxRetrans,
        "nf_conntrack_tcp_timeout_syn_sent" => TcpTimeouts[(int)TcpState.SynSent],
        "nf_conntrack_tcp_timeout_syn_recv" => TcpTimeouts[(int)TcpState.SynRecv],
        "nf_conntrack_tcp_timeout_established" => TcpTimeouts[(int)TcpState.Established],
        "nf_conntrack_tcp_timeout_fin_wait" => TcpTimeouts[(int)TcpState.FinWait],
        "nf_conntrack_tcp_timeout_close_wait" => TcpTimeouts[(int)TcpState.CloseWait],
        "nf_conntrack_tcp_timeout_last_ack" => TcpTimeouts[(int)TcpState.LastAck],
        "nf_conntrack_tcp_timeout_time_wait" => TcpTimeouts[(int)TcpState.TimeWait],
        "nf_conntrack_tcp_timeout_close" => TcpTimeouts[(int)TcpState.Close],
        "nf_conntrack_tcp_timeout_max_retrans" => TcpTimeouts[(int)TcpState.Retrans],
        "nf_conntrack_tcp_timeout_unacknowledged" => TcpTimeouts[(int)TcpState.Unack],
        "nf_conntrack_udp_timeout" => UdpTimeout,
        "nf_conntrack_udp_timeout_stream" => UdpTimeoutStream,
        "nf_conntrack_icmp_timeout" => IcmpTimeout,
        "nf_conntrack_icmpv6_timeout" => Icmpv6Timeout,
        "nf_conntrack_generic_timeout" => GenericTimeout,
        "nf_conntrack_gre_timeout" => GreTimeout,
        "nf_conntrack_gre_timeout_stream" => GreTimeoutStream,
        "nf_conntrack_sctp_timeout_closed" => SctpTimeouts[(int)SctpState.Closed],
        "nf_conntrack_sctp_timeout_cookie_wait" => SctpTimeouts[(int)SctpState.CookieWait],
        "nf_conntrack_sctp_timeout_cookie_echoed" => SctpTimeouts[(int)SctpState.CookieEchoed],
        "nf_conntrack_sctp_timeout_established" => SctpTimeouts[(int)SctpState.Established],
        "nf_conntrack_sctp_timeout_shutdown_sent" => SctpTimeouts[(int)SctpState.ShutdownSent],
        "nf_conntrack_sctp_timeout_shutdown_recd" => SctpTimeouts[(int)SctpState.ShutdownRecd],
        "nf_conntrack_sctp_timeout_shutdown_ack_sent" => SctpTimeouts[(int)SctpState.ShutdownAckSent],
        "nf_conntrack_sctp_timeout_heartbeat_sent" => SctpTimeouts[(int)SctpState.HeartbeatSent],
        _ => throw new ArgumentException($"unknown sysctl {name}", nameof(name)),
    };
}
