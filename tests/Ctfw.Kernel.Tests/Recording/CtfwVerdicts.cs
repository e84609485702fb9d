using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Kernel.Tests.Recording;

/// <summary>Runs ctfw's own classifier over a recording, as `ctfw replay` does, for direct A/B against the kernel.</summary>
public static class CtfwVerdicts
{
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
            engine ??= new ConntrackEngine(settings, now);
            worker ??= engine.CreateWorker();
            worker.Enter();
            worker.Process(p.Packet, now, PacketContext.Forwarded, out Classification r);
            worker.Exit();
            engine.Maintain(now);
            string tcp = r.ProtocolStateName();
            result.Add(new KernelVerdict(r.State.Name(), r.Direction.Name(), tcp, r.Reason.Name()));
        }
        worker?.Dispose();
        return result;
    }
}
