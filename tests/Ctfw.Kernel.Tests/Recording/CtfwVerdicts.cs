using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Kernel.Tests.Recording;

/// <summary>
/// Runs ctfw's own classifier over a recording, as `ctfw replay` does, for direct A/B against the kernel.
/// Helpers are on, and each packet gets the helper the lab's gateway gives it (<see cref="LabHelpers"/>), as the
/// raw table's <c>CT --helper</c> rules did when the recording was made.
/// </summary>
public static class CtfwVerdicts
{
    /// <summary>The reason column of a packet ctfw's helper dropped: <c>helper-drop:</c> and the reason's name.</summary>
    public const string HelperDropPrefix = "helper-drop:";

    /// <summary>
    /// Per packet: ctstate, direction and protocol state as ctfw sees them. A packet a helper dropped is reported
    /// with the ctstate it had before (what the kernel's FORWARD hook, which runs before its helpers, saw) and
    /// <see cref="HelperDropPrefix"/> in the reason column; compare that with <see cref="KernelHelperDrop"/>.
    /// </summary>
    public static IReadOnlyList<KernelVerdict> Classify(ScenarioRecording recording)
    {
        var settings = new ConntrackSettings();
        foreach (KeyValuePair<string, string> kv in recording.Sysctls)
        {
            string? err = settings.Set(kv.Key, kv.Value);
            if (err != null)
                throw new InvalidOperationException($"{recording.Name}.sysctl: {err}");
        }
        var result = new List<KernelVerdict>(recording.Packets.Count);
        ConntrackEngine? engine = null;
        ConntrackWorker? worker = null;
        foreach (RecordedPacket p in recording.Packets)
        {
            long now = p.TimestampNanoseconds / 1_000_000;
            if (engine is null)
            {
                engine = new ConntrackEngine(settings, now);
                engine.EnableHelpers();
            }
            worker ??= engine.CreateWorker();
            var context = new PacketContext { VerifyChecksums = true, Helper = LabHelpers.Select(p.Packet) };
            worker.Enter();
            worker.Process(p.Packet, now, context, out Classification r);
            worker.Exit();
            engine.Maintain(now);
            string tcp = r.ProtocolStateName();
            bool helperDrop = r.State == CtState.Dropped && r.Reason is InvalidReason.HelperPartial or InvalidReason.HelperExpectFailed;
            result.Add(helperDrop
                ? new KernelVerdict(r.StateBeforeHelperDrop.Name(), r.Direction.Name(), tcp, HelperDropPrefix + r.Reason.Name())
                : new KernelVerdict(r.State.Name(), r.Direction.Name(), tcp, r.Reason.Name()));
        }
        worker?.Dispose();
        return result;
    }

    /// <summary>Whether ctfw's verdict says its helper dropped the packet.</summary>
    public static bool HelperDropped(KernelVerdict ours) => ours.Reason.StartsWith(HelperDropPrefix, StringComparison.Ordinal);

    /// <summary>
    /// Whether the kernel's helper dropped the packet: its log (the recording's diagnostics) holds the helper's
    /// <c>nf_ct_&lt;helper&gt;: dropping packet</c> message (nf_ct_helper_log), which it writes after the FORWARD record.
    /// </summary>
    public static bool KernelHelperDrop(RecordedDiagnostics diagnostics) =>
        diagnostics.KernelLog.Contains(": dropping packet", StringComparison.Ordinal)
        && diagnostics.KernelLog.Contains("nf_ct_", StringComparison.Ordinal);

    /// <summary>
    /// Null when ctfw agrees with the kernel on packet <paramref name="i"/> (0-based): same ctstate, direction and
    /// protocol state, and a helper drop on both sides or on neither; otherwise what differs.
    /// </summary>
    public static string? Disagreement(ScenarioRecording recording, IReadOnlyList<KernelVerdict> ours, int i)
    {
        KernelVerdict kernel = recording.Rows[i].Verdict;
        if (!kernel.SameClassification(ours[i]))
            return $"kernel {kernel}, ctfw {ours[i]} ({ours[i].Reason})";
        bool kernelDrop = recording.Diagnostics.Count > i && KernelHelperDrop(recording.Diagnostics[i]);
        if (kernelDrop != HelperDropped(ours[i]))
        {
            return kernelDrop
                ? $"the kernel's helper dropped it ({recording.Diagnostics[i].KernelLog}), ctfw's did not"
                : $"ctfw's helper dropped it ({ours[i].Reason}), the kernel's did not";
        }
        return null;
    }
}
