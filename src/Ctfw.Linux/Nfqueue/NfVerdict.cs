namespace Ctfw.Linux.Nfqueue;

/// <summary>
/// A netfilter verdict as NFQUEUE accepts it (linux/netfilter.h). The low byte is the verdict;
/// for <see cref="Queue"/> the upper 16 bits name the target queue (see <see cref="NfVerdicts.QueueTo"/>).
/// NF_STOLEN (2) is rejected by the kernel and NF_STOP (5) is deprecated, so neither is offered.
/// </summary>
public enum NfVerdict : uint
{
    /// <summary>NF_DROP: free the packet (a NEW conntrack entry is never confirmed).</summary>
    Drop = 0,

    /// <summary>NF_ACCEPT: continue with the next hook function after the one that queued.</summary>
    Accept = 1,

    /// <summary>NF_QUEUE to queue 0; use <see cref="NfVerdicts.QueueTo"/> for another queue.</summary>
    Queue = 3,

    /// <summary>NF_REPEAT: run the same hook function again (combine with a mark to avoid a loop).</summary>
    Repeat = 4,
}

public static class NfVerdicts
{
    private const uint QueueBypassFlag = 0x8000; // NF_VERDICT_FLAG_QUEUE_BYPASS

    /// <summary>NF_QUEUE_NR(queue), optionally accepting when that queue has no listener.</summary>
    public static NfVerdict QueueTo(ushort queue, bool bypass) =>
        (NfVerdict)(((uint)queue << 16) | (uint)NfVerdict.Queue | (bypass ? QueueBypassFlag : 0));

    /// <summary>What the kernel accepts in a verdict message: low byte ≤ NF_STOP and not NF_STOLEN.</summary>
    public static bool IsValid(NfVerdict verdict)
    {
        uint code = (uint)verdict & 0xFF;
        return code <= 5 && code != 2;
    }
}
