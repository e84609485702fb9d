using Ctfw.Cli.Control;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests.Control;

/// <summary>An in-memory daemon for control-socket tests; the server thread calls it, tests read it.</summary>
internal sealed class FakeControlTarget : IControlTarget
{
    private readonly Lock _lock = new();
    private readonly List<FlowInfo> _flows = [];

    public List<KeyValuePair<string, long>> Counters { get; } = [];

    public long NowMs { get; set; } = 1_000_000;

    /// <summary>What <see cref="ReloadSysctls"/> answers; null is success.</summary>
    public string? ReloadError { get; set; }

    public int Reloads { get; private set; }

    public int FlowCount
    {
        get
        {
            lock (_lock)
                return _flows.Count;
        }
    }

    public void Add(params FlowInfo[] flows)
    {
        lock (_lock)
            _flows.AddRange(flows);
    }

    /// <summary>What <see cref="Reload"/> answers.</summary>
    public ReloadResult ReloadAnswer { get; set; } = new(true, "3 rules from test.rules in force from the next batch");

    public int RuleReloads { get; private set; }

    /// <summary>The event stream `events` subscribes to; null answers with the interface's default error.</summary>
    public ConntrackEventStream? EventStream { get; set; }

    public bool StreamEvents(System.Net.Sockets.Socket client, IReadOnlyList<string> args)
    {
        if (EventStream is { } stream)
            return stream.Subscribe(client, args);
        client.Send("error: no events in the fake\n"u8);
        return false;
    }

    /// <summary>What `list-expect` lists; `flush-expect` empties it.</summary>
    public List<ExpectationInfo> ExpectationList { get; } = [];

    public List<ExpectationInfo> Expectations()
    {
        lock (_lock)
            return [.. ExpectationList];
    }

    public int FlushExpectations()
    {
        lock (_lock)
        {
            int n = ExpectationList.Count;
            ExpectationList.Clear();
            return n;
        }
    }

    /// <summary>What `cpu-stats` lists.</summary>
    public List<WorkerCounters> Workers { get; } = [];

    public IReadOnlyList<WorkerCounters> WorkerStatistics() => Workers;

    /// <summary>The arguments of each `takeover` request; the fake answers with one error line.</summary>
    public List<IReadOnlyList<string>> Takeovers { get; } = [];

    /// <summary>Set while a `takeover` conversation is in the fake; it then waits for <see cref="ReleaseHandOver"/> when that is given.</summary>
    public ManualResetEventSlim InHandOver { get; } = new();

    /// <summary>When set, HandOver holds the conversation open until it is signalled (a long hand-over).</summary>
    public ManualResetEventSlim? ReleaseHandOver { get; set; }

    public void HandOver(System.Net.Sockets.Socket client, IReadOnlyList<string> args)
    {
        Takeovers.Add(args);
        InHandOver.Set();
        ReleaseHandOver?.Wait(TimeSpan.FromSeconds(30));
        client.Send(System.Text.Encoding.UTF8.GetBytes("error: no takeover in the fake\n"));
    }

    /// <summary>The ruleset `rules` lists: an accepting rule and a policy with counters to show and zero.</summary>
    public Ctfw.Rules.Ruleset Rules { get; } = LoadRules(
        "*filter\n:INPUT DROP [42:4200]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[123456:7890123] -A INPUT -p tcp -j ACCEPT\nCOMMIT\n");

    /// <summary>Zeroings of <see cref="Rules"/>' counters, by `zero-counters` or `rules … zero`.</summary>
    public int Zeroings { get; private set; }

    public string ListRules(bool verbose, bool exact, bool zero)
    {
        string listing = Ctfw.Rules.RuleListing.Format(Rules, exact, verbose);
        if (zero)
            ZeroCounters();
        return listing;
    }

    public void ZeroCounters()
    {
        Rules.ZeroCounters();
        Zeroings++;
    }

    private static Ctfw.Rules.Ruleset LoadRules(string text)
    {
        Assert.True(Ctfw.Rules.Ruleset.TryLoad(text, "fake.rules", out Ctfw.Rules.Ruleset? rules, out IReadOnlyList<Ctfw.Rules.RuleError> errors), string.Join("; ", errors));
        return rules!;
    }

    public ReloadResult Reload()
    {
        RuleReloads++;
        return ReloadAnswer;
    }

    public List<FlowInfo> Delete(Func<FlowInfo, long, bool> match, out long nowMs)
    {
        nowMs = NowMs;
        lock (_lock)
        {
            List<FlowInfo> deleted = _flows.FindAll(f => match(f, NowMs));
            _flows.RemoveAll(f => match(f, NowMs));
            return deleted;
        }
    }

    public IReadOnlyList<KeyValuePair<string, long>> Stats()
    {
        lock (_lock)
            return [.. Counters];
    }

    public List<FlowInfo> Snapshot(out long nowMs)
    {
        lock (_lock)
        {
            nowMs = NowMs;
            return [.. _flows];
        }
    }

    public int Flush()
    {
        lock (_lock)
        {
            int n = _flows.Count;
            _flows.Clear();
            return n;
        }
    }

    public string? ReloadSysctls()
    {
        lock (_lock)
        {
            Reloads++;
            return ReloadError;
        }
    }
}

/// <summary>Hand-built flows: the original tuple as given, the reply tuple its inverse.</summary>
internal static class Flows
{
    public static FlowInfo Make(byte protocol, string src, ushort srcId, string dst, ushort dstId,
        TcpState tcpState = TcpState.None, CtStatus status = CtStatus.Confirmed, long timeoutMs = 30_000)
    {
        Assert.True(IpAddress.TryParse(src, out IpAddress s, out bool v6));
        Assert.True(IpAddress.TryParse(dst, out IpAddress d, out bool dv6));
        Assert.Equal(v6, dv6);
        var orig = new ConnTuple { Src = s, Dst = d, SrcId = srcId, DstId = dstId, Protocol = protocol, IpVersion = (byte)(v6 ? 6 : 4) };
        Assert.True(orig.TryInvert(out ConnTuple reply));
        return new FlowInfo(orig, reply, status, protocol == IpProto.Tcp ? tcpState : TcpState.None, timeoutMs);
    }

    public static FlowInfo Tcp(string src, ushort sport, string dst, ushort dport,
        TcpState state = TcpState.Established, CtStatus status = CtStatus.Confirmed | CtStatus.SeenReply | CtStatus.Assured) =>
        Make(IpProto.Tcp, src, sport, dst, dport, state, status, 431_999_000);

    public static FlowInfo Udp(string src, ushort sport, string dst, ushort dport, CtStatus status = CtStatus.Confirmed) =>
        Make(IpProto.Udp, src, sport, dst, dport, status: status);

    /// <summary>An echo request flow (type 8 or 128, code 0).</summary>
    public static FlowInfo Ping(string src, string dst, ushort id)
    {
        bool v6 = src.Contains(':', StringComparison.Ordinal);
        return Make(v6 ? IpProto.Icmpv6 : IpProto.Icmp, src, id, dst, (ushort)((v6 ? 128 : 8) << 8));
    }
}

/// <summary>A fresh directory under /tmp (short: socket paths are limited to 108 bytes), removed at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine("/tmp", "ctfw-t-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
