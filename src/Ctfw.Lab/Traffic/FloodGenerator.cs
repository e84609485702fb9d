using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Traffic;

/// <summary>What a <see cref="FloodGenerator"/> sends.</summary>
public enum FloodKind
{
    /// <summary>TCP SYNs (with an MSS option, a random ISN and source port each): one new connection per packet.</summary>
    Syn,

    /// <summary>UDP datagrams, 64-byte IP packets unless <see cref="FloodSpec.PayloadBytes"/> says otherwise.</summary>
    Udp,
}

/// <summary>
/// One flood: kind, target, where it comes from, how fast and how long. The family (IPv4 or IPv6) is
/// the destination's; the source must be of the same one.
/// </summary>
public sealed record FloodSpec(FloodKind Kind, IPAddress Destination, int DestinationPort)
{
    /// <summary>A fixed source address; or set <see cref="SourceNetwork"/>.</summary>
    public IPAddress? Source { get; init; }

    /// <summary>A prefix ("10.99.0.0/16", "fd99::/64"): a random source inside it per packet.</summary>
    public string? SourceNetwork { get; init; }

    /// <summary>UDP payload bytes; -1: the default, which makes 64-byte IP packets (36 bytes over IPv4, 16 over IPv6).</summary>
    public int PayloadBytes { get; init; } = -1;

    /// <summary>Packets per second; 0 = as fast as possible.</summary>
    public long RatePps { get; init; }

    /// <summary>
    /// Bursts instead of a steady stream: flat out for <c>OnMs</c> of every <c>PeriodMs</c>, silent in
    /// between (a load that overruns a queue in each burst and lets it drain after). Not with <see cref="RatePps"/>.
    /// </summary>
    public (int OnMs, int PeriodMs)? Burst { get; init; }

    /// <summary>How long to send; <see cref="Timeout.InfiniteTimeSpan"/> (or zero) until <see cref="FloodGenerator.Stop"/>.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>SO_MARK on the sending socket (policy routing, or rules that must let the flood's own namespace out).</summary>
    public uint? Mark { get; init; }
}

/// <summary>What a flood sent: packets the kernel accepted, sends it refused (ENOBUFS, EPERM), and for how long.</summary>
public sealed record FloodResult(long Sent, long Errors, double Seconds)
{
    public double Pps => Seconds > 0 ? Sent / Seconds : 0;

    /// <summary>Parses the one line ctfw-flood prints on exit: <c>sent=N errors=M seconds=S.sss</c>.</summary>
    public static bool TryParse(string line, out FloodResult result)
    {
        result = new FloodResult(0, 0, 0);
        long sent = -1, errors = -1;
        double seconds = -1;
        foreach (string field in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = field.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                return false;
            string value = field[(eq + 1)..];
            bool ok = field[..eq] switch
            {
                "sent" => long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out sent),
                "errors" => long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out errors),
                "seconds" => double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out seconds),
                _ => false,
            };
            if (!ok)
                return false;
        }
        if (sent < 0 || errors < 0 || seconds < 0)
            return false;
        result = new FloodResult(sent, errors, seconds);
        return true;
    }
}

/// <summary>
/// Runs <c>ctfw-flood</c> (native-shim/ctfw_flood.c, built next to this assembly) for the hostile-load
/// suite: a raw-socket SYN or UDP flood with valid checksums, from one source or a random source per
/// packet, paced or flat out. A C program rather than managed code because the point is to outrun
/// the firewall under test: batched sendmmsg of prebuilt packets reaches several hundred thousand
/// packets per second on one core, and runs no garbage collector that could pause the flood.
/// </summary>
public sealed class FloodGenerator : IAsyncDisposable
{
    public const string ExecutableName = "ctfw-flood";

    /// <summary>Time the tool gets after SIGTERM to print its count before it is killed.</summary>
    private static readonly TimeSpan s_stopGrace = TimeSpan.FromSeconds(2);

    private readonly ChildProcess _process;

    private FloodGenerator(ChildProcess process, FloodSpec spec)
    {
        _process = process;
        Spec = spec;
    }

    public FloodSpec Spec { get; }

    /// <summary>The tool, next to the Ctfw.Lab assembly (the build puts it there and in every project referencing this one).</summary>
    public static string ExecutablePath
    {
        get
        {
            string dir = Path.GetDirectoryName(typeof(FloodGenerator).Assembly.Location) is { Length: > 0 } d ? d : AppContext.BaseDirectory;
            string path = Path.Combine(dir, ExecutableName);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException(
                    $"{ExecutableName} is not next to Ctfw.Lab.dll in {dir}: the build compiles native-shim/ctfw_flood.c into it "
                    + "with the machine's C compiler (see src/Ctfw.Lab/Ctfw.Lab.csproj); rebuild, with gcc installed.", path);
            }
            return path;
        }
    }

    /// <summary>The command-line arguments (without the program) that make ctfw-flood send <paramref name="spec"/>.</summary>
    public static IReadOnlyList<string> Arguments(FloodSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if ((spec.Source is null) == (spec.SourceNetwork is null))
            throw new ArgumentException("a flood needs exactly one of Source and SourceNetwork", nameof(spec));
        if (spec.Destination.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw new ArgumentException($"not an IP destination: {spec.Destination}", nameof(spec));
        if (spec.Source is not null && spec.Source.AddressFamily != spec.Destination.AddressFamily)
            throw new ArgumentException($"source {spec.Source} and destination {spec.Destination} are of different families", nameof(spec));
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.DestinationPort, 1, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(spec.DestinationPort, 65535, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfNegative(spec.RatePps, nameof(spec));
        if (spec.Burst is (int on, int period) && (on < 1 || period <= on || spec.RatePps > 0))
            throw new ArgumentException("Burst wants 1 <= OnMs < PeriodMs, and no RatePps", nameof(spec));
        if (spec.Kind == FloodKind.Syn && spec.PayloadBytes != -1)
            throw new ArgumentException("PayloadBytes is for UDP floods only", nameof(spec));

        bool v6 = spec.Destination.AddressFamily == AddressFamily.InterNetworkV6;
        List<string> args =
        [
            "--kind", spec.Kind == FloodKind.Syn ? "syn" : "udp",
            "--family", v6 ? "6" : "4",
            "--dst", spec.Destination.ToString(),
            "--dport", spec.DestinationPort.ToString(CultureInfo.InvariantCulture),
        ];
        if (spec.Source is not null)
            args.AddRange(["--src", spec.Source.ToString()]);
        else
            args.AddRange(["--src-net", spec.SourceNetwork!]);
        if (spec.PayloadBytes >= 0)
            args.AddRange(["--size", spec.PayloadBytes.ToString(CultureInfo.InvariantCulture)]);
        if (spec.RatePps > 0)
            args.AddRange(["--rate", spec.RatePps.ToString(CultureInfo.InvariantCulture)]);
        if (spec.Burst is (int onMs, int periodMs))
            args.AddRange(["--burst", string.Create(CultureInfo.InvariantCulture, $"{onMs}/{periodMs}")]);
        // The tool runs until a signal without --duration.
        if (spec.Duration > TimeSpan.Zero)
            args.AddRange(["--duration", spec.Duration.TotalSeconds.ToString("R", CultureInfo.InvariantCulture)]);
        if (spec.Mark is uint mark)
            args.AddRange(["--mark", mark.ToString(CultureInfo.InvariantCulture)]);
        return args;
    }

    /// <summary>
    /// Starts the flood in <paramref name="networkNamespace"/> (under nsenter, so the pid we hold is the
    /// tool's own and SIGTERM reaches it), or in this process's namespace when null. Needs CAP_NET_RAW.
    /// </summary>
    public static FloodGenerator Start(string? networkNamespace, FloodSpec spec)
    {
        string[] argv = [ExecutablePath, .. Arguments(spec)];
        if (networkNamespace is not null)
            argv = Tool.InNetns(networkNamespace, argv);
        var options = new ChildProcessOptions { Name = ExecutableName, MaxLines = 1000, DisposeGrace = s_stopGrace };
        return new FloodGenerator(ChildProcess.Start(argv, options), spec);
    }

    /// <summary>Ends the flood early; it still prints its count, so <see cref="WaitAsync"/> returns a result.</summary>
    public void Stop() => _process.Signal(ChildProcess.SigTerm);

    /// <summary>
    /// Waits for the flood to end (its duration, or <see cref="Stop"/>) and returns what it sent;
    /// throws <see cref="InvalidOperationException"/> with the tool's stderr when it failed (bad
    /// arguments, no raw socket) or printed no count.
    /// </summary>
    public async Task<FloodResult> WaitAsync(CancellationToken token = default)
    {
        int? exit = await _process.WaitForExitAsync(Timeout.InfiniteTimeSpan).WaitAsync(token).ConfigureAwait(false);
        string? line = _process.WaitForLine(OutputStream.StdOut, l => l.StartsWith("sent=", StringComparison.Ordinal), TimeSpan.Zero);
        if (exit != 0 || line is null || !FloodResult.TryParse(line, out FloodResult result))
        {
            throw new InvalidOperationException(
                $"{ExecutableName} {string.Join(' ', Arguments(Spec))} failed (exit {exit}): {_process.StdErr.Trim()}{_process.StdOut.Trim()}");
        }
        return result;
    }

    /// <summary>Stops the flood if it still runs (SIGTERM, then SIGKILL after a grace period).</summary>
    // ChildProcess.Dispose blocks for up to the grace period; that wait stays off the caller's thread.
    public ValueTask DisposeAsync() => new(Task.Run(_process.Dispose));
}
