namespace Ctfw.Conntrack;

/// <summary>What ctfw does with a late FIN or RST whose entry has expired (docs/RESCUE.md). Off = the kernel.</summary>
public enum RescueMode
{
    /// <summary>Kernel behaviour: a FIN or RST without an entry is INVALID.</summary>
    Off,
    /// <summary>Keep a tombstone of each expiring TCP entry; a late FIN/RST that fits its windows re-creates the entry.</summary>
    Tombstone,
    /// <summary>As <see cref="Tombstone"/>, and a bare FIN/RST with no tombstone at all opens a short closing-only entry.</summary>
    Loose,
}

/// <summary>Rescue settings, fixed for the life of a <see cref="ConntrackEngine"/>.</summary>
public sealed record RescueOptions
{
    public RescueMode Mode { get; init; }

    /// <summary>How long a tombstone lives after its entry expired (seconds).</summary>
    public int WindowSeconds { get; init; } = 120;

    /// <summary>Tombstones kept at most; when full, the oldest is evicted. Not table slots: they never block a new flow.</summary>
    public int MaxTombstones { get; init; } = 65536;

    /// <summary>Timeout of a closing-only entry opened in <see cref="RescueMode.Loose"/> (capped by its state's own timeout).</summary>
    public int LooseTimeoutSeconds { get; init; } = 10;

    /// <summary>Throws when a value is out of range (called by the engine's constructor).</summary>
    internal void Validate()
    {
        if (!Enum.IsDefined(Mode))
            throw new ArgumentOutOfRangeException(nameof(Mode), Mode, "unknown rescue mode");
        ArgumentOutOfRangeException.ThrowIfNegative(WindowSeconds);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(WindowSeconds, int.MaxValue / 1000);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTombstones, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxTombstones, 1 << 26);
        ArgumentOutOfRangeException.ThrowIfLessThan(LooseTimeoutSeconds, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(LooseTimeoutSeconds, int.MaxValue / 1000);
    }
}

/// <summary>
/// Rescue counters (<see cref="ConntrackEngine.RescueStats"/>). Tombstones: live now, stored, evicted
/// because the store was full, expired after the window. Rescued: late FINs and RSTs let through by a
/// tombstone (or an expired entry not yet reaped), closing-only entries opened in loose mode, and
/// FIN/RSTs refused because they did not fit the tombstone's windows.
/// </summary>
public readonly record struct RescueCounters(long TombstonesLive, long TombstonesStored, long TombstonesEvicted, long TombstonesExpired,
    long RescuedFin, long RescuedRst, long RescuedLoose, long RejectedOutOfWindow);
