using Ctfw.Conntrack;

namespace Ctfw.Linux.Netlink;

/// <summary>What <see cref="CtnetlinkSocket.Dump"/> read.</summary>
public sealed record CtnetlinkDumpResult(List<KernelConnection> Entries, IReadOnlyDictionary<string, int> UnparsedReasons)
{
    public int Unparsed { get; init; }

    /// <summary>Dumps started: more than 1 when a dump was interrupted (NLM_F_DUMP_INTR) or overran the socket (ENOBUFS) and was repeated.</summary>
    public int Attempts { get; init; }

    /// <summary>The last attempt was still interrupted or overrun: <see cref="Entries"/> may miss or repeat entries.</summary>
    public bool Incomplete { get; init; }

    public int Datagrams { get; init; }

    public TimeSpan Elapsed { get; init; }

    /// <summary>One line: entries, what could not be decoded and why, repeats.</summary>
    public string Message
    {
        get
        {
            string text = $"dumped {Entries.Count} kernel entries in {Elapsed.TotalMilliseconds:0} ms";
            if (Unparsed > 0)
                text += $", {Unparsed} not decoded ({string.Join(", ", UnparsedReasons.Select(r => $"{r.Value} {r.Key}"))})";
            if (Attempts > 1)
                text += $", {Attempts} attempts";
            if (Incomplete)
                text += ", incomplete (the table changed under every attempt)";
            return text;
        }
    }
}

/// <summary>What <see cref="CtnetlinkSocket.Create"/> did, entry by entry.</summary>
public readonly record struct CtnetlinkCreateResult
{
    /// <summary>Acknowledged with success: the kernel holds the entry.</summary>
    public int Created { get; init; }

    /// <summary>EEXIST: the kernel already had an entry for the tuple (NLM_F_EXCL kept it as it was).</summary>
    public int Existed { get; init; }

    /// <summary>Refused by the kernel with another error, or not sent because the kernel could not take it.</summary>
    public int Failed { get; init; }

    /// <summary>With replaceExisting: entries the kernel had, deleted and created again from ours (included in <see cref="Created"/>).</summary>
    public int Replaced { get; init; }

    /// <summary>Sent, but the answer never came (acknowledgements lost to ENOBUFS, or no answer in time).</summary>
    public int Unconfirmed { get; init; }

    public Errno FirstError { get; init; }

    /// <summary>The first failure as text (errno and its meaning, or why an entry was not sent); null when none failed.</summary>
    public string? FirstErrorText { get; init; }

    /// <summary>sendto calls: the messages went in batches.</summary>
    public int Datagrams { get; init; }

    /// <summary>recvmmsg calls that collected the acknowledgements (up to 256 each).</summary>
    public int ReceiveCalls { get; init; }

    public TimeSpan Elapsed { get; init; }

    public string Message =>
        $"created {Created} kernel entries in {Elapsed.TotalMilliseconds:0} ms ({Datagrams} datagrams, {ReceiveCalls} receive calls), "
        + (Replaced > 0 ? $"{Replaced} of them in place of the kernel's own, " : "")
        + $"{Existed} existed already, {Failed} failed"
        + (FirstErrorText != null ? $" (first: {FirstErrorText})" : "")
        + (Unconfirmed > 0 ? $", {Unconfirmed} unconfirmed" : "");
}
