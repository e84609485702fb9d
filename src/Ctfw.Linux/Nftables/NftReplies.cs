using System.Runtime.InteropServices;
using Ctfw.Linux.Netlink;

namespace Ctfw.Linux.Nftables;

/// <summary>
/// Collects the acknowledgements of one committed batch, a datagram at a time: every operation
/// message carries NLM_F_ACK, so each gets exactly one NLMSG_ERROR (0 or -errno) by its sequence
/// number; an error addressed to BATCH_BEGIN (EPERM without CAP_NET_ADMIN, ENOMEM when the kernel
/// could not queue the errors) fails the whole batch. Pure over bytes, never throws; foreign or
/// repeated answers are ignored.
/// </summary>
public sealed class NftBatchAckReader
{
    private readonly Errno[] _errors;
    private readonly bool[] _answered;

    public NftBatchAckReader(uint beginSequence, int operations)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(operations);
        BeginSequence = beginSequence;
        _errors = new Errno[operations];
        _answered = new bool[operations];
        Pending = operations;
    }

    public uint BeginSequence { get; }

    /// <summary>Operations not acknowledged yet.</summary>
    public int Pending { get; private set; }

    /// <summary>The error the kernel answered BATCH_BEGIN with: nothing of the batch was applied.</summary>
    public Errno BatchError { get; private set; }

    public bool Done => Pending == 0 || BatchError != Errno.None;

    /// <summary>Messages that could not be read (too short, or running past the datagram).</summary>
    public int Malformed { get; private set; }

    public Errno ErrorOf(int operation) => _errors[operation];

    public bool Answered(int operation) => _answered[operation];

    public void Read(ReadOnlySpan<byte> datagram, bool truncated = false)
    {
        var reader = new NetlinkMessageReader(datagram, truncated);
        while (reader.TryRead(out NlMsgHdr header, out int offset, out int length, out _))
        {
            if (header.Type != NlMsgHdr.TypeError)
                continue;
            if (!NftablesCodec.TryReadError(datagram.Slice(offset, length), out Errno error))
            {
                Malformed++;
                continue;
            }
            if (header.Sequence == BeginSequence)
            {
                if (error != Errno.None)
                    BatchError = error;
                continue;
            }
            uint index = header.Sequence - BeginSequence - 1;
            if (index >= (uint)_answered.Length || _answered[index])
                continue;
            _answered[index] = true;
            _errors[index] = error;
            Pending--;
        }
        if (reader.Malformed)
            Malformed++;
    }
}

/// <summary>
/// Collects one GETSETELEM dump, a datagram at a time: NFT_MSG_NEWSETELEM messages of the request's
/// sequence number until NLMSG_DONE, or an NLMSG_ERROR (ENOENT: no such table or set). Pure over
/// bytes, never throws: a message that cannot be read is counted with its reason.
/// </summary>
public sealed class NftSetDumpReader(uint sequence)
{
    public uint Sequence { get; } = sequence;

    public List<NftElementState> Elements { get; } = [];

    public bool Done { get; private set; }

    public Errno Error { get; private set; }

    /// <summary>NLM_F_DUMP_INTR: the set changed during the walk, which may have missed or repeated elements.</summary>
    public bool Interrupted { get; private set; }

    public int Unparsed { get; private set; }

    public string? FirstUnparsedReason { get; private set; }

    public void Read(ReadOnlySpan<byte> datagram, bool truncated = false)
    {
        var reader = new NetlinkMessageReader(datagram, truncated);
        while (!Done && reader.TryRead(out NlMsgHdr header, out int offset, out int length, out bool cut))
        {
            if (header.Sequence != Sequence)
                continue;
            if ((header.Flags & Nftables.FlagDumpInterrupted) != 0)
                Interrupted = true;
            ReadOnlySpan<byte> message = datagram.Slice(offset, length);
            switch (header.Type)
            {
                case Nftables.MsgNewSetElem:
                    if (cut)
                        Count("cut by the receive buffer");
                    else if (!NftablesCodec.TryParseElements(message, Elements, out string? reason))
                        Count(reason!);
                    break;
                case NlMsgHdr.TypeDone:
                    Done = true;
                    if (message.Length >= NlMsgHdr.Size + sizeof(int))
                    {
                        int code = MemoryMarshal.Read<int>(message[NlMsgHdr.Size..]);
                        if (code < 0)
                            Error = (Errno)(-code);
                    }
                    break;
                case NlMsgHdr.TypeError:
                    if (NftablesCodec.TryReadError(message, out Errno error) && error != Errno.None)
                    {
                        Error = error;
                        Done = true;
                    }
                    break;
            }
        }
        if (reader.Malformed)
            Count("message length runs past the datagram");
    }

    private void Count(string reason)
    {
        Unparsed++;
        FirstUnparsedReason ??= reason;
    }
}

/// <summary>
/// Collects the answer to one GETSETELEM request (not a dump), a datagram at a time: an
/// NFT_MSG_NEWSETELEM of the request's sequence number for each element found, in key order, then
/// the NLMSG_ERROR that ends it — 0, or the error that stopped the walk (ENOENT at the first key not
/// found, with NLMSGERR_ATTR_OFFS naming it; ENOENT for a missing table or set, the offset naming
/// that). Pure over bytes, never throws.
/// </summary>
public sealed class NftGetElementsReader(uint sequence, List<NftElementState> found)
{
    private readonly List<NftElementState> _found = found ?? throw new ArgumentNullException(nameof(found));

    public uint Sequence { get; } = sequence;

    /// <summary>Elements this request answered (added to the caller's list).</summary>
    public int Answers { get; private set; }

    public bool Done { get; private set; }

    public Errno Error { get; private set; }

    /// <summary>NLMSGERR_ATTR_OFFS of the final error: where in the request the kernel stopped; null without one.</summary>
    public uint? ErrorOffset { get; private set; }

    public int Unparsed { get; private set; }

    public string? FirstUnparsedReason { get; private set; }

    public void Read(ReadOnlySpan<byte> datagram, bool truncated = false)
    {
        var reader = new NetlinkMessageReader(datagram, truncated);
        while (!Done && reader.TryRead(out NlMsgHdr header, out int offset, out int length, out bool cut))
        {
            if (header.Sequence != Sequence)
                continue;
            ReadOnlySpan<byte> message = datagram.Slice(offset, length);
            if (header.Type == Nftables.MsgNewSetElem)
            {
                int before = _found.Count;
                if (cut)
                    Count("cut by the receive buffer");
                else if (!NftablesCodec.TryParseElements(message, _found, out string? reason))
                    Count(reason!);
                Answers += _found.Count - before;
            }
            else if (header.Type == NlMsgHdr.TypeError && NftablesCodec.TryReadError(message, out Errno error))
            {
                Error = error;
                ErrorOffset = NftablesCodec.TryReadErrorOffset(message, out uint at) ? at : null;
                Done = true;
            }
        }
        if (reader.Malformed)
            Count("message length runs past the datagram");
    }

    private void Count(string reason)
    {
        Unparsed++;
        FirstUnparsedReason ??= reason;
    }
}

/// <summary>
/// What <see cref="NftablesSocket.GetElements"/> read: the elements found (key, timeout, time left,
/// counter) and the keys the set does not hold (never added, deleted, or expired). With
/// <see cref="Error"/> set the lookup stopped there (ENOENT: no such table or set; EPERM …): keys
/// neither found nor missing were not looked up.
/// </summary>
public sealed record NftGetElementsResult(List<NftElementState> Found, List<NftFlowKey> Missing)
{
    public Errno Error { get; init; }

    /// <summary>GETSETELEM requests sent: one per group of keys, plus one more after each missing key (the kernel stops at it).</summary>
    public int Requests { get; init; }

    public int Unparsed { get; init; }

    public string? FirstUnparsedReason { get; init; }

    public TimeSpan Elapsed { get; init; }
}

/// <summary>A refused operation of a batch: which message, and the kernel's errno.</summary>
public readonly record struct NftOperationError(int Index, NftOperation Operation, Errno Error)
{
    public override string ToString() => $"{Operation}: {ErrnoException.Describe(Error)}";
}

/// <summary>What <see cref="NftablesSocket.Commit"/> did.</summary>
public sealed record NftBatchResult
{
    /// <summary>Every operation was acknowledged with success: the kernel applied the batch.</summary>
    public bool Committed => Errors.Count == 0 && Unanswered == 0 && BatchError == Errno.None && SendError == Errno.None;

    public int Operations { get; init; }

    /// <summary>Operations the kernel refused; any one of them aborted the whole batch (the others were acknowledged but rolled back).</summary>
    public IReadOnlyList<NftOperationError> Errors { get; init; } = [];

    /// <summary>Operations whose acknowledgement never came (lost to ENOBUFS, or no answer in time): the outcome is unknown.</summary>
    public int Unanswered { get; init; }

    /// <summary>The kernel refused the batch as a whole (an error addressed to BATCH_BEGIN).</summary>
    public Errno BatchError { get; init; }

    /// <summary>sendto failed: nothing reached the kernel.</summary>
    public Errno SendError { get; init; }

    public int Bytes { get; init; }

    public TimeSpan Elapsed { get; init; }

    public string Message
    {
        get
        {
            if (SendError != Errno.None)
                return $"batch of {Operations} operations ({Bytes} bytes) not sent: {ErrnoException.Describe(SendError)}";
            if (BatchError != Errno.None)
                return $"batch of {Operations} operations refused: {ErrnoException.Describe(BatchError)}";
            if (Committed)
                return $"batch of {Operations} operations ({Bytes} bytes) committed in {Elapsed.TotalMilliseconds:0.0} ms";
            string text = $"batch of {Operations} operations not committed";
            if (Errors.Count > 0)
                text += $": {Errors.Count} refused (first: {Errors[0]})";
            if (Unanswered > 0)
                text += $", {Unanswered} unanswered";
            return text;
        }
    }
}

/// <summary>What <see cref="NftablesSocket.DumpElements"/> read; <see cref="Error"/> is ENOENT when the table or set does not exist.</summary>
public sealed record NftSetDumpResult(List<NftElementState> Elements)
{
    public Errno Error { get; init; }

    /// <summary>The set changed under the walk (NLM_F_DUMP_INTR).</summary>
    public bool Interrupted { get; init; }

    public int Unparsed { get; init; }

    public string? FirstUnparsedReason { get; init; }

    public int Datagrams { get; init; }

    public TimeSpan Elapsed { get; init; }
}
