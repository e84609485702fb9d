using System.CommandLine;
using System.Globalization;
using Ctfw.Cli.Commands.Top;
using Ctfw.Cli.Control;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Ctfw.Cli.Commands;

/// <summary>What `ctfw top` was asked for (the filter already validated, the daemon's socket resolved).</summary>
internal sealed record TopOptions(string ControlPath, IReadOnlyList<string> FilterArgs)
{
    /// <summary>Seconds between polls (<c>--interval</c>, <c>-R</c>).</summary>
    public double IntervalSeconds { get; init; } = 1;

    /// <summary><c>--once</c>: one frame, then exit.</summary>
    public bool Once { get; init; }

    public TopSort Sort { get; init; } = TopSort.Bytes;

    public bool Reverse { get; init; }
}

/// <summary>
/// `ctfw top`: a live view of a running daemon's connection table, like iptstate. A client of the
/// control socket only: each refresh is one `list` (with the filter, so the daemon does the
/// filtering) and one `stats` request. Keys: <c>s</c> next sort column, <c>r</c> reverse,
/// <c>b</c>/<c>p</c>/<c>a</c>/<c>t</c> sort by bytes/packets/age/ttl, <c>q</c> (or Ctrl-C) quits.
/// Not a terminal, or <c>--once</c>: plain text frames (<see cref="TopText"/>).
/// </summary>
internal static class TopCommand
{
    public const double MinIntervalSeconds = 0.1;

    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("top", "a live view of a running `ctfw run`'s connection table, like iptstate",
            "[-R SECONDS] [--sort COLUMN] [--once] [FILTER]... [--pid N | --control PATH]")
        {
            Details = "Polls the daemon's control socket (`list` with the FILTERs, and `stats`) every -R seconds and shows\n"
                + "the flows sorted, with totals and packet rates above. Keys: s next sort column, r reverse,\n"
                + "b/p/a/t sort by bytes/packets/age/ttl, q quits. AGE is the time since the entry was created;\n"
                + "PACKETS and BYTES (both directions) need nf_conntrack_acct=1 in the daemon (`ctfw run --set\n"
                + "nf_conntrack_acct=1`, or the namespace's sysctl). Not a terminal, or --once: plain text frames.",
            ExitCodes = StatsCommand.ControlExitCodes,
        };
        Option<double> interval = Opt.Value("--interval", "SECONDS", "seconds between refreshes (default 1, at least 0.1)",
            (string t, out double v) => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out v) && v >= MinIntervalSeconds && v <= 3600,
            "0.1..3600 seconds", "-R");
        Option<TopSort> sort = Opt.Value("--sort", "COLUMN", "first sort column: bytes (default), packets, age, ttl, state, proto, src, dst",
            (string t, out TopSort v) => TopSorts.TryParse(t, out v), "bytes, packets, age, ttl, state, proto, src or dst");
        Option<bool> reverse = Opt.Flag("--reverse", "reverse the sort order");
        Option<bool> once = Opt.Flag("--once", "print one frame as plain text and exit");
        command.Add(interval, null);
        command.Add(sort, null);
        command.Add(reverse, null);
        command.Add(once, null);
        var filters = new FilterOptions();
        filters.AddTo(command);
        var instance = new InstanceOptions();
        instance.AddTo(command);

        command.SetAction(r =>
        {
            if (filters.Read(r, out string? refused) is not { } filter)
                return Program.Fail(refused!);
            if (instance.Read(r) is { } usage)
                return Program.Fail(usage);
            if (filter.Validate() is string invalid)
                return Program.Fail(invalid);
            string? path = instance.Resolve(out string? error, out int exitCode);
            if (path == null)
                return StatsCommand.Failed(error!, exitCode);
            var options = new TopOptions(path, [.. filter.Args])
            {
                IntervalSeconds = r.Given(interval) ? r.GetValue(interval) : 1,
                Once = r.GetValue(once),
                Sort = r.Given(sort) ? r.GetValue(sort) : TopSort.Bytes,
                Reverse = r.GetValue(reverse),
            };
            return Run(options, Console.Out);
        });
        return command;
    }

    public static int Run(TopOptions options, TextWriter stdout)
    {
        var model = new TopModel(options.Sort, options.Reverse, options.FilterArgs.Count == 0 ? null : string.Join(' ', options.FilterArgs));
        if (options.Once)
        {
            if (!TryPoll(options, model, out TopFrame? frame, out string? error))
                return StatsCommand.Failed(error!, 1);
            stdout.Write(TopText.Format(frame!));
            return 0;
        }
        return Console.IsOutputRedirected ? RunPlain(options, model, stdout) : RunLive(options, model);
    }

    private static bool TryPoll(TopOptions options, TopModel model, out TopFrame? frame, out string? error)
    {
        frame = null;
        // JSON: the entry's age and, with accounting on, its counters (docs/OPERATIONS.md, -o json).
        if (!ControlClient.TryRequest(options.ControlPath, ControlProtocol.ListRequest([.. options.FilterArgs, OutputOptions.Output, "json"]), out string listing, out error))
            return false;
        // The header's totals; a daemon that cannot say them still gets its flows shown.
        ControlClient.TryGetStats(options.ControlPath, out List<KeyValuePair<string, long>> stats, out _);
        frame = model.Update(listing, stats, Environment.TickCount64, DateTime.Now);
        return true;
    }

    /// <summary>Frames one after another, separated by an empty line, until the daemon is gone or the process is stopped.</summary>
    private static int RunPlain(TopOptions options, TopModel model, TextWriter stdout)
    {
        while (true)
        {
            if (!TryPoll(options, model, out TopFrame? frame, out string? error))
                return StatsCommand.Failed(error!, 1);
            stdout.Write(TopText.Format(frame!));
            stdout.WriteLine();
            stdout.Flush();
            Thread.Sleep(TimeSpan.FromSeconds(options.IntervalSeconds));
        }
    }

    private static int RunLive(TopOptions options, TopModel model)
    {
        string? failure = null;
        bool keys = !Console.IsInputRedirected;
        AnsiConsole.Live(new Text("connecting…")).AutoClear(true).Overflow(VerticalOverflow.Crop).Start(ctx =>
        {
            while (true)
            {
                if (!TryPoll(options, model, out TopFrame? frame, out failure))
                    return;
                ctx.UpdateTarget(Render(frame!, Math.Max(1, Console.WindowHeight - 6)));
                ctx.Refresh();
                long until = Environment.TickCount64 + (long)(options.IntervalSeconds * 1000);
                bool redraw = false;
                while (!redraw && Environment.TickCount64 < until)
                {
                    if (keys && Console.KeyAvailable)
                    {
                        char key = Console.ReadKey(intercept: true).KeyChar;
                        if (key is 'q' or 'Q')
                            return;
                        redraw = model.OnKey(key);
                    }
                    else
                    {
                        Thread.Sleep(50);
                    }
                }
            }
        });
        return failure is null ? 0 : StatsCommand.Failed(failure, 1);
    }

    /// <summary>The terminal frame: the header, a table of at most <paramref name="maxRows"/> flows, the key help.</summary>
    internal static IRenderable Render(TopFrame frame, int maxRows)
    {
        var table = new Table().Border(TableBorder.Simple).Expand();
        for (int c = 0; c < TopText.Columns.Length; c++)
        {
            string name = TopText.Columns[c];
            bool sorted = SortColumn(frame.Header.Sort) == c;
            var column = new TableColumn(sorted ? $"[bold underline]{name}{(frame.Header.Descending ? " ▼" : " ▲")}[/]" : name);
            if (TopText.IsNumeric(c))
                column.RightAligned();
            table.AddColumn(column);
        }
        foreach (TopRow row in frame.Rows.Take(maxRows))
            table.AddRow(TopText.Cells(row, human: true).Select(cell => new Text(cell)).ToArray<IRenderable>());
        string more = frame.Rows.Count > maxRows ? $" ({frame.Rows.Count - maxRows} more below)" : "";
        return new Rows(
            new Text(TopText.HeaderLine(frame.Header) + more, new Style(decoration: Decoration.Bold)),
            table,
            new Text("s: next sort  r: reverse  b/p/a/t: bytes/packets/age/ttl  q: quit", new Style(foreground: Color.Grey)));
    }

    private static int SortColumn(TopSort sort) => sort switch
    {
        TopSort.Protocol => 0,
        TopSort.State => 1,
        TopSort.Source => 2,
        TopSort.Destination => 4,
        TopSort.Ttl => 6,
        TopSort.Age => 7,
        TopSort.Packets => 8,
        _ => 9,
    };
}
