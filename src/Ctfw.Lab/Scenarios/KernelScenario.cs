using System.Globalization;


namespace Ctfw.Lab.Scenarios;

/// <summary>One step of a scenario: send a packet, or wait.</summary>
public abstract record ScenarioStep;

/// <summary>
/// Send <see cref="Packet"/> and record what the kernel says. <see cref="Spec"/> is what
/// kernel-conntrack.md predicts; when the live kernel answers differently the scenario says so in
/// <see cref="Kernel"/> with the reason in <see cref="Note"/> (the live kernel wins over the spec).
/// </summary>
public sealed record SendStep(PacketSpec Packet, KernelVerdict Spec, KernelVerdict? Kernel = null, string? Note = null) : ScenarioStep
{
    /// <summary>What the stored recording must say for this packet.</summary>
    public KernelVerdict Expected => Kernel ?? Spec;
}

public sealed record SleepStep(TimeSpan Duration) : ScenarioStep;

/// <summary>
/// A scripted packet sequence with the conntrack sysctls it runs under. Recordings of it live in
/// <c>tests/data/kernel/&lt;Name&gt;.{pcap,tsv,sysctl}</c>.
/// </summary>
public sealed class KernelScenario
{
    public KernelScenario(string name, string summary, IReadOnlyDictionary<string, string> sysctls, IReadOnlyList<ScenarioStep> steps,
        TimeSpan? maxBurst = null)
    {
        Name = name;
        Summary = summary;
        Sysctls = sysctls;
        Steps = steps;
        Packets = [.. steps.OfType<SendStep>()];
        MaxBurst = maxBurst ?? ShortestTimeout(sysctls) - TimeSpan.FromSeconds(1);
    }

    /// <summary>
    /// Longest a run of packets without a scripted sleep may take on the gateway's clock, or null for
    /// no limit. Scenarios that shorten a timeout must keep ≥ 1 s away from it (kernel-conntrack.md §14.6),
    /// so by default: the shortest overridden timeout minus 1 s. The recorder repeats slower runs.
    /// </summary>
    public TimeSpan? MaxBurst { get; }

    private static TimeSpan? ShortestTimeout(IReadOnlyDictionary<string, string> sysctls)
    {
        TimeSpan? shortest = null;
        foreach ((string key, string value) in sysctls)
        {
            if (key.Contains("timeout", StringComparison.Ordinal) && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds))
            {
                var t = TimeSpan.FromSeconds(seconds);
                if (shortest is null || t < shortest)
                    shortest = t;
            }
        }
        return shortest;
    }

    /// <summary>File-name stem: lower case, underscores.</summary>
    public string Name { get; }

    /// <summary>What the scenario exercises and what the spec says should happen.</summary>
    public string Summary { get; }

    /// <summary>Sysctls (kernel names, e.g. <c>nf_conntrack_tcp_loose</c>) that differ from <see cref="ConntrackSysctls.Defaults"/>.</summary>
    public IReadOnlyDictionary<string, string> Sysctls { get; }

    public IReadOnlyList<ScenarioStep> Steps { get; }

    public IReadOnlyList<SendStep> Packets { get; }

    /// <summary>
    /// The sysctls of this scenario's <c>.sysctl</c> file: <see cref="ConntrackSysctls.Defaults"/> with this
    /// scenario's overrides, then <see cref="ConntrackSysctls.SctpDefaults"/> (overridden) only when it overrides one of them.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> EffectiveSysctls =>
        [.. Override(ConntrackSysctls.Defaults),
         .. ConntrackSysctls.SctpDefaults.Any(d => Sysctls.ContainsKey(d.Key)) ? Override(ConntrackSysctls.SctpDefaults) : []];

    /// <summary>Every sysctl the recorder and the lab set before this scenario: all managed ones, with this scenario's overrides.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> GatewaySysctls => [.. Override(ConntrackSysctls.All)];

    private IEnumerable<KeyValuePair<string, string>> Override(IEnumerable<KeyValuePair<string, string>> defaults) =>
        defaults.Select(d => Sysctls.TryGetValue(d.Key, out string? v) ? new KeyValuePair<string, string>(d.Key, v) : d);

    public TimeSpan TotalSleep => TimeSpan.FromTicks(Steps.OfType<SleepStep>().Sum(s => s.Duration.Ticks));

    public override string ToString() => Name;
}

/// <summary>Collects a scenario's steps in the order they are written.</summary>
public sealed class ScenarioBuilder
{
    private readonly List<ScenarioStep> _steps = [];
    private readonly Dictionary<string, string> _sysctls = new(StringComparer.Ordinal);
    private TimeSpan? _maxBurst;

    /// <summary>Overrides one conntrack sysctl (kernel name without <c>net.netfilter.</c>) for this scenario.</summary>
    public ScenarioBuilder Sysctl(string name, int value)
    {
        if (!ConntrackSysctls.All.Any(d => d.Key == name))
            throw new ArgumentException($"{name} is not one of the sysctls the recorder manages", nameof(name));
        _sysctls[name] = value.ToString(CultureInfo.InvariantCulture);
        return this;
    }

    /// <summary>Sends a packet the spec classifies as <paramref name="spec"/>.</summary>
    public ScenarioBuilder Send(PacketSpec packet, KernelVerdict spec)
    {
        _steps.Add(new SendStep(packet, spec));
        return this;
    }

    /// <summary>Sends a packet where the live kernel (<paramref name="kernel"/>) differs from the spec; <paramref name="why"/> explains.</summary>
    public ScenarioBuilder Send(PacketSpec packet, KernelVerdict spec, KernelVerdict kernel, string why)
    {
        _steps.Add(new SendStep(packet, spec, kernel, why));
        return this;
    }

    /// <summary>Sets <see cref="KernelScenario.MaxBurst"/> explicitly (for time rules that are not sysctls, e.g. UDP's 2 s stream rule).</summary>
    public ScenarioBuilder BurstsWithin(double seconds)
    {
        _maxBurst = TimeSpan.FromSeconds(seconds);
        return this;
    }

    public ScenarioBuilder Sleep(double seconds)
    {
        _steps.Add(new SleepStep(TimeSpan.FromSeconds(seconds)));
        return this;
    }

    internal KernelScenario Build(string name, string summary) => new(name, summary, _sysctls, [.. _steps], _maxBurst);
}

/// <summary>Shorthand for the verdicts scenarios expect: <c>NewOrig(SynSent)</c>, <c>EstReply(SynRecv)</c>, <c>Invalid()</c>.</summary>
public static class Expect
{
    public static KernelVerdict NewOrig(string tcp = TcpStates.None) => new(CtStates.New, CtDirections.Original, tcp);
    public static KernelVerdict EstOrig(string tcp = TcpStates.None) => new(CtStates.Established, CtDirections.Original, tcp);
    public static KernelVerdict EstReply(string tcp = TcpStates.None) => new(CtStates.Established, CtDirections.Reply, tcp);
    public static KernelVerdict RelOrig(string tcp = TcpStates.None) => new(CtStates.Related, CtDirections.Original, tcp);
    public static KernelVerdict RelReply(string tcp = TcpStates.None) => new(CtStates.Related, CtDirections.Reply, tcp);

    /// <summary>INVALID; <paramref name="tcp"/> is the state of the flow's entry afterwards (unchanged), or <c>-</c> if none.</summary>
    public static KernelVerdict Invalid(string tcp = TcpStates.None) => new(CtStates.Invalid, CtDirections.None, tcp);

    public static KernelVerdict Untracked() => new(CtStates.Untracked, CtDirections.None, TcpStates.None);
}

/// <summary>The conntrack sysctls the recorder sets before every scenario, with the kernel's defaults.</summary>
public static class ConntrackSysctls
{
    /// <summary>Kernel defaults (kernel-conntrack.md §4.10, §7, §8, §9, §10); written in this order to <c>.sysctl</c> files.</summary>
    public static readonly IReadOnlyList<KeyValuePair<string, string>> Defaults =
    [
        new("nf_conntrack_tcp_loose", "1"),
        new("nf_conntrack_tcp_be_liberal", "0"),
        new("nf_conntrack_tcp_ignore_invalid_rst", "0"),
        new("nf_conntrack_checksum", "1"),
        new("nf_conntrack_tcp_max_retrans", "3"),
        new("nf_conntrack_tcp_timeout_syn_sent", "120"),
        new("nf_conntrack_tcp_timeout_syn_recv", "60"),
        new("nf_conntrack_tcp_timeout_established", "432000"),
        new("nf_conntrack_tcp_timeout_fin_wait", "120"),
        new("nf_conntrack_tcp_timeout_close_wait", "60"),
        new("nf_conntrack_tcp_timeout_last_ack", "30"),
        new("nf_conntrack_tcp_timeout_time_wait", "120"),
        new("nf_conntrack_tcp_timeout_close", "10"),
        new("nf_conntrack_tcp_timeout_max_retrans", "300"),
        new("nf_conntrack_tcp_timeout_unacknowledged", "300"),
        new("nf_conntrack_udp_timeout", "30"),
        new("nf_conntrack_udp_timeout_stream", "120"),
        new("nf_conntrack_icmp_timeout", "30"),
        new("nf_conntrack_icmpv6_timeout", "30"),
        new("nf_conntrack_generic_timeout", "600"),
    ];

    /// <summary>
    /// SCTP's per-state timeouts (nf_conntrack_proto_sctp.c, 6.18 defaults). Set before every scenario
    /// like <see cref="Defaults"/>, but written to a <c>.sysctl</c> file only by scenarios that override one:
    /// the recordings made before they were managed ran under these defaults and do not list them.
    /// </summary>
    public static readonly IReadOnlyList<KeyValuePair<string, string>> SctpDefaults =
    [
        new("nf_conntrack_sctp_timeout_closed", "10"),
        new("nf_conntrack_sctp_timeout_cookie_wait", "3"),
        new("nf_conntrack_sctp_timeout_cookie_echoed", "3"),
        new("nf_conntrack_sctp_timeout_established", "210"),
        new("nf_conntrack_sctp_timeout_shutdown_sent", "3"),
        new("nf_conntrack_sctp_timeout_shutdown_recd", "3"),
        new("nf_conntrack_sctp_timeout_shutdown_ack_sent", "3"),
        new("nf_conntrack_sctp_timeout_heartbeat_sent", "30"),
    ];

    /// <summary>Every sysctl the recorder manages, with the kernel's defaults.</summary>
    public static readonly IReadOnlyList<KeyValuePair<string, string>> All = [.. Defaults, .. SctpDefaults];
}
