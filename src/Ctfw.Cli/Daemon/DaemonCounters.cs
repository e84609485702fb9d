using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// What one worker did. Written only by its worker thread (plain increments), read after the
/// worker has been joined, so no field needs to be atomic.
/// </summary>
internal sealed class DaemonCounters
{
    public readonly long[] States = new long[(int)CtState.Dropped + 1];
    public readonly long[] InvalidReasons = new long[Ctfw.Packets.InvalidReasons.Count];
    public long Packets;
    public long Accepted;
    public long Dropped;
    public long Rejected;
    public long RejectsSent;
    public long RejectSendErrors;
    public long ConfirmDrops;
    public long NoPayload;

    public void Add(DaemonCounters other)
    {
        for (int i = 0; i < States.Length; i++)
            States[i] += other.States[i];
        for (int i = 0; i < InvalidReasons.Length; i++)
            InvalidReasons[i] += other.InvalidReasons[i];
        Packets += other.Packets;
        Accepted += other.Accepted;
        Dropped += other.Dropped;
        Rejected += other.Rejected;
        RejectsSent += other.RejectsSent;
        RejectSendErrors += other.RejectSendErrors;
        ConfirmDrops += other.ConfirmDrops;
        NoPayload += other.NoPayload;
    }
}
