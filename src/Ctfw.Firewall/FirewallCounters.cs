using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Firewall;

/// <summary>
/// What one worker did. Written only by its worker thread (plain increments). Read exactly after the
/// worker has been joined; read while it runs (`ctfw stats`), each 64-bit field is whole but the set
/// may be a few packets apart — good enough for a live view, never used for decisions.
/// </summary>
public sealed class FirewallCounters
{
    /// <summary>ctstates the kernel reports (Invalid … Untracked); ctfw's side adds Dropped.</summary>
    public const int KernelStates = (int)CtState.Untracked + 1;
    public const int CtfwStates = (int)CtState.Dropped + 1;

    public readonly long[] States = new long[CtfwStates];
    /// <summary>Shadow mode: [kernel ctstate × <see cref="CtfwStates"/> + ctfw ctstate].</summary>
    public readonly long[] AbMatrix = new long[KernelStates * CtfwStates];
    public long AbCompared;
    public long AbAgreed;
    /// <summary>Same ctstate, different direction (counted as a disagreement too).</summary>
    public long AbDirectionMismatch;
    /// <summary>Shadow mode packets without the kernel's mark (queued without passing the marking rules).</summary>
    public long AbUnmarked;
    public readonly long[] InvalidReasons = new long[Ctfw.Packets.InvalidReasons.Count];
    public long Packets;
    public long Accepted;
    /// <summary>All drops, the raw table's included.</summary>
    public long Dropped;
    /// <summary>Drops by the raw table (before conntrack: these packets were never tracked).</summary>
    public long RawDropped;
    public long Rejected;
    public long RejectsSent;
    public long RejectSendErrors;
    public long ConfirmDrops;
    public long NoPayload;

    public void Add(FirewallCounters other)
    {
        for (int i = 0; i < States.Length; i++)
            States[i] += other.States[i];
        for (int i = 0; i < InvalidReasons.Length; i++)
            InvalidReasons[i] += other.InvalidReasons[i];
        for (int i = 0; i < AbMatrix.Length; i++)
            AbMatrix[i] += other.AbMatrix[i];
        AbCompared += other.AbCompared;
        AbAgreed += other.AbAgreed;
        AbDirectionMismatch += other.AbDirectionMismatch;
        AbUnmarked += other.AbUnmarked;
        Packets += other.Packets;
        Accepted += other.Accepted;
        Dropped += other.Dropped;
        RawDropped += other.RawDropped;
        Rejected += other.Rejected;
        RejectsSent += other.RejectsSent;
        RejectSendErrors += other.RejectSendErrors;
        ConfirmDrops += other.ConfirmDrops;
        NoPayload += other.NoPayload;
    }
}
