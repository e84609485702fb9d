using Ctfw.Conntrack;

namespace Ctfw.Cli.Control;

/// <summary>
/// What the control socket asks of a running daemon. Called from the control server's connection
/// threads, one call at a time (<see cref="ControlServer"/> serialises them; <see cref="HandOver"/>,
/// a long conversation, runs outside that lock), never from a packet worker; implementations may
/// lock and allocate.
/// </summary>
internal interface IControlTarget
{
    /// <summary>
    /// Flat counters in a stable order: `uptime_ms`, `packets`, `state.*`, `verdict.*`, `reject.*`,
    /// `invalid.*`, `ab.*`, `queue.N.*`, `table.*`, `log.*`, and whatever is added later (the human
    /// report prints unknown names as they come). Names must not contain whitespace.
    /// </summary>
    IReadOnlyList<KeyValuePair<string, long>> Stats();

    /// <summary>A copy of every live flow, and the daemon clock (ms) it was taken at.</summary>
    List<FlowInfo> Snapshot(out long nowMs);

    /// <summary>What `conntrack -L`/`-D`/`-E` lines show besides the entry: accounting when nf_conntrack_acct is on.</summary>
    ListingOptions ListingOptions => ListingOptions.None;

    /// <summary>Kills every entry, like `conntrack -F`; returns how many there were.</summary>
    int Flush();

    /// <summary>Kills the entries <paramref name="match"/> accepts, like `conntrack -D`; returns them as they were, with the clock (ms).</summary>
    List<FlowInfo> Delete(Func<FlowInfo, long, bool> match, out long nowMs);

    /// <summary>
    /// `conntrack -E` (the `events` request): takes <paramref name="client"/> as an event subscriber
    /// (<see cref="ConntrackEventStream.Subscribe"/>); true when it now owns the socket, false when it
    /// answered an error and the caller closes.
    /// </summary>
    bool StreamEvents(System.Net.Sockets.Socket client, IReadOnlyList<string> args)
    {
        client.Send("error: this target has no conntrack events\n"u8);
        return false;
    }

    /// <summary>
    /// `sync SUB` (<see cref="ControlProtocol.SyncRequests"/>): the answer's lines, or null with
    /// <paramref name="error"/> (sync off, unknown request).
    /// </summary>
    IReadOnlyList<string>? SyncRequest(string sub, out string? error)
    {
        error = "state sync is off (start ctfw run with --sync ftfw)";
        return null;
    }

    /// <summary>`conntrack -L expect`: the live expectations (<see cref="ConntrackEngine.ListExpectations"/>).</summary>
    List<ExpectationInfo> Expectations() => [];

    /// <summary>`conntrack -F expect`: removes every expectation; returns how many there were.</summary>
    int FlushExpectations() => 0;

    /// <summary>`conntrack -S`: each worker's counters (<see cref="WorkerCounters"/>).</summary>
    IReadOnlyList<WorkerCounters> WorkerStatistics() => [];

    /// <summary>Re-reads the namespace's live sysctls; null when applied, otherwise why not.</summary>
    string? ReloadSysctls();

    /// <summary>Re-reads the rules file and the sysctls (SIGHUP, `ctfw reload`); on an error the old rules stay in force.</summary>
    ReloadResult Reload();

    /// <summary>
    /// The ruleset in force with its counters, as <see cref="Ctfw.Rules.RuleListing.Format"/> lays it
    /// out (`iptables -L -n`, with -v and -x as asked); with <paramref name="zero"/> its counters are
    /// zeroed right after they were read, as `iptables -L -Z` does.
    /// </summary>
    string ListRules(bool verbose, bool exact, bool zero);

    /// <summary>`iptables -Z`: zeroes every rule and policy counter of the ruleset in force.</summary>
    void ZeroCounters();

    /// <summary>
    /// The upgrade hand-over (`takeover PID`): the target talks to <paramref name="client"/> itself
    /// (<see cref="Daemon.HandoverProtocol"/>) and writes its own `error: …` line when it cannot.
    /// </summary>
    void HandOver(System.Net.Sockets.Socket client, IReadOnlyList<string> args);
}

/// <summary>What a reload did: <see cref="Message"/> says what is in force now, or why the old rules still are.</summary>
internal sealed record ReloadResult(bool Ok, string Message);
