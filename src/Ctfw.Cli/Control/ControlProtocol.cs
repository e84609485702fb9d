namespace Ctfw.Cli.Control;

/// <summary>The request words and limits of the control protocol (described on <see cref="ControlServer"/>).</summary>
internal static class ControlProtocol
{
    public const string Stats = "stats";
    public const string List = "list";
    public const string Flush = "flush";
    public const string ReloadSysctls = "reload-sysctls";
    public const string Reload = "reload";
    public const string Delete = "delete";
    public const string Takeover = "takeover";
    public const string Rules = "rules";
    public const string ZeroCounters = "zero-counters";
    /// <summary>`conntrack -E`: a stream of event lines until the client closes.</summary>
    public const string Events = "events";
    /// <summary>`conntrack -S`: one `cpu=N …` line per worker.</summary>
    public const string CpuStats = "cpu-stats";
    /// <summary>`conntrack -L expect`: one line per live expectation (`--output json` allowed).</summary>
    public const string ListExpect = "list-expect";
    /// <summary>`conntrack -F expect`: removes every expectation; body: how many.</summary>
    public const string FlushExpect = "flush-expect";

    /// <summary>`sync SUB`: the state sync (`ctfw sync`), one sub-request word.</summary>
    public const string Sync = "sync";
    public const string SyncStatus = "status";
    public const string SyncExternal = "external";
    public const string SyncCommit = "commit";
    public const string SyncResync = "resync";
    public const string SyncFlush = "flush";
    public const string SyncBulk = "bulk";

    /// <summary>Every sync sub-request, in the order help and errors list them.</summary>
    public static readonly string[] SyncRequests = [SyncStatus, SyncExternal, SyncCommit, SyncResync, SyncFlush, SyncBulk];

    /// <summary>Words of a `rules` request: iptables' -v and -x, and -Z after the listing.</summary>
    public const string RulesVerbose = "verbose";
    public const string RulesExact = "exact";
    public const string RulesZero = "zero";

    /// <summary>Connections served at once; one more is answered `error: busy` and closed.</summary>
    public const int MaxConnections = 16;

    /// <summary>
    /// True when <paramref name="verb"/> with <paramref name="args"/> only reads: `stats`, `list`,
    /// `rules` without `zero`, `events`. Everything else, unknown words included, needs the admin role,
    /// so a request added later is closed to read-only clients until it is listed here.
    /// </summary>
    public static bool IsReadOnly(string verb, ReadOnlySpan<string> args) => verb switch
    {
        Stats or List or Events or CpuStats or ListExpect => true,
        Rules => !args.Contains(RulesZero),
        Sync => args.Length == 1 && args[0] is SyncStatus or SyncExternal,
        _ => false,
    };

    /// <summary>Bytes of one request line, newline included.</summary>
    public const int MaxRequestBytes = 4096;

    /// <summary>How long the server waits for the request line before answering with an error.</summary>
    public const int RequestTimeoutMs = 2000;

    /// <summary>How long the server waits for a client that does not read its answer.</summary>
    public const int SendTimeoutMs = 10_000;

    /// <summary>The `list` request line for filter arguments (as <see cref="ConntrackFilter.Args"/> gives them).</summary>
    public static string ListRequest(IReadOnlyList<string> filterArgs) => WithArgs(List, filterArgs);

    /// <summary>The `events` request line: filter arguments plus `--output`/`--event-mask` words.</summary>
    public static string EventsRequest(IReadOnlyList<string> args) => WithArgs(Events, args);

    /// <summary>The `delete` request line for filter arguments.</summary>
    public static string DeleteRequest(IReadOnlyList<string> filterArgs) => WithArgs(Delete, filterArgs);

    /// <summary>The `rules` request line: the listing, laid out as `iptables -L -n` with -v and -x as asked, then zeroed when <paramref name="zero"/>.</summary>
    public static string RulesRequest(bool verbose, bool exact, bool zero)
    {
        List<string> args = [];
        if (verbose)
            args.Add(RulesVerbose);
        if (exact)
            args.Add(RulesExact);
        if (zero)
            args.Add(RulesZero);
        return WithArgs(Rules, args);
    }

    private static string WithArgs(string verb, IReadOnlyList<string> args) =>
        args.Count == 0 ? verb : verb + "\t" + string.Join('\t', args);
}
