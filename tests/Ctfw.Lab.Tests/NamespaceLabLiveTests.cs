using System.Globalization;

namespace Ctfw.Lab.Tests;

/// <summary>
/// Privileged tier: the one namespace-lab lifecycle (<see cref="NamespaceLab"/>) that the kernel lab,
/// the bench and the test labs share, against real namespaces.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class NamespaceLabLiveTests
{
    private const string Prefix = "ctfwt-";
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);

    /// <summary>A lab with nothing built in its namespaces: the lifecycle alone.</summary>
    private sealed class BareLab : NamespaceLab
    {
        public BareLab()
            : base(Prefix, "a", "b")
        {
            BuildOrDispose(() =>
            {
                foreach (string ns in Namespaces)
                    Tool.Run("ip", "netns", "add", ns);
            });
        }
    }

    [Fact]
    public void NewLab_OwnerOfAnEarlierLabWasKilled_RemovesItsNamespacesAndWhatRanInside()
    {
        RequireRoot();
        // A run that builds a lab the way NamespaceLab names it (PREFIX-PID-N-ROLE), puts a rule that
        // queues traffic and a process inside, and is then SIGKILLed: nothing of it cleans up.
        string script = $$"""
            ns={{Prefix}}$$-1-a
            ip netns add "$ns" || exit 1
            nsenter --net=/run/netns/"$ns" iptables -A INPUT -j NFQUEUE --queue-num 7 || exit 1
            nsenter --net=/run/netns/"$ns" sleep 300 &
            echo "$ns $!"
            wait
            """;
        string leftover;
        int inside;
        using (ChildProcess owner = ChildProcess.Start(["sh", "-c", script]))
        {
            string? line = owner.WaitForLine(OutputStream.StdOut, _ => true, s_timeout);
            Assert.True(line is not null, owner.StdErr);
            string[] parts = line.Split(' ');
            (leftover, inside) = (parts[0], int.Parse(parts[1], CultureInfo.InvariantCulture));
            Assert.Contains(leftover, NamespaceNames());
            Assert.Contains("NFQUEUE", Tool.RunIn(leftover, "iptables", "-S"), StringComparison.Ordinal);
            Assert.True(owner.Signal(ChildProcess.SigKill));
            Assert.NotNull(owner.WaitForExit(s_timeout));
        }
        Assert.Contains(leftover, NamespaceNames());
        Assert.True(IsAlive(inside), "the process inside the dead run's namespace should still run before the next lab");

        using (var next = new BareLab())
        {
            Assert.DoesNotContain(leftover, NamespaceNames());
            Assert.False(IsAlive(inside), $"{inside} still runs in the removed namespace");
            Assert.All(next.Namespaces, ns => Assert.Contains(ns, NamespaceNames()));
        }
    }

    [Fact]
    public void Dispose_TwoLabsOfOneProcess_UniqueNamesNeitherRemovesTheOtherAndBothGoAway()
    {
        RequireRoot();
        string[] first, second;
        using (var a = new BareLab())
        {
            first = [.. a.Namespaces];
            using var b = new BareLab();
            second = [.. b.Namespaces];
            Assert.Empty(first.Intersect(second));
            string[] names = NamespaceNames();
            Assert.All(first.Concat(second), ns => Assert.Contains(ns, names));
            Assert.All(first.Concat(second), ns => Assert.StartsWith($"{Prefix}{Environment.ProcessId}-", ns, StringComparison.Ordinal));
        }
        Assert.Empty(NamespaceNames().Intersect(first.Concat(second)));
    }

    [Fact]
    public void Dispose_ProcessAndRulesInside_EndsTheProcessAndDeletesTheNamespace()
    {
        RequireRoot();
        int inside;
        string ns;
        using (var lab = new BareLab())
        {
            ns = lab.Namespaces[0];
            Tool.RunIn(ns, "iptables", "-A", "INPUT", "-j", "NFQUEUE", "--queue-num", "8");
            // Ignores SIGTERM: only the SIGKILL after the grace period ends it.
            using ChildProcess stubborn = ChildProcess.StartIn(ns, "stubborn", ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"]);
            Assert.True(stubborn.WaitForLine(OutputStream.StdOut, "ready", s_timeout));
            inside = stubborn.Pid;
            lab.Dispose();
            Assert.False(IsAlive(inside), $"{inside} survived the lab");
        }
        Assert.DoesNotContain(ns, NamespaceNames());
    }

    private static void RequireRoot()
    {
        string? why = Tool.WhyUnavailable();
        if (why is not null)
            Assert.Fail($"Privileged lab tests cannot run: {why}.");
    }

    private static string[] NamespaceNames() =>
        [.. Tool.Run("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', 2)[0])];

    private static bool IsAlive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
