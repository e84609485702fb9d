using System.CommandLine;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw conntrack`: `conntrack -L/-C/-D/-F/-E/-S` against a running daemon's table, with
/// conntrack-tools' filters and output (entries on stdout, the count line on stderr).
/// </summary>
internal static class ConntrackCommand
{
    private enum Mode
    {
        List,
        Count,
        Flush,
        Delete,
        Events,
        Stats,
    }

    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("conntrack", "list, count, delete or flush the connection table of a running `ctfw run`",
            "[-L|-C|-D|-F|-E|-S] [expect] [FILTER]... [-o FMT] [-e EVENTS] [--pid N]")
        {
            Details = "The connection table of a running `ctfw run`, as conntrack-tools shows the kernel's: entries on\n"
                + "stdout, the count line on stderr. Every FILTER given must match. `-L expect`, `-C expect` and\n"
                + "`-F expect` work on the expectation table (what FTP/TFTP helpers announced) instead.",
            ExitCodes = StatsCommand.ControlExitCodes,
        };
        (Option<bool> Option, Mode Mode)[] modes =
        [
            (Opt.Flag("--dump", "list the entries that match every FILTER (the default)", "-L"), Mode.List),
            (Opt.Flag("--count", "print how many entries match", "-C"), Mode.Count),
            (Opt.Flag("--delete", "remove the entries that match every FILTER (all without a filter), printing them as they were; "
                + "their next packets are classified afresh (e.g. dropped after a reload that no longer allows them)", "-D"), Mode.Delete),
            (Opt.Flag("--flush", "remove every entry", "-F"), Mode.Flush),
            (Opt.Flag("--event", "print NEW, UPDATE and DESTROY events of the entries that match every FILTER as they "
                + "happen, until interrupted", "-E"), Mode.Events),
            (Opt.Flag("--stats", "print each worker's counters, as conntrack -S prints each CPU's", "-S"), Mode.Stats),
        ];
        foreach ((Option<bool> option, _) in modes)
            command.Add(option, "Commands");
        var filters = new FilterOptions();
        filters.AddTo(command);
        var output = Opt.Text("--output", "FORMAT", "-L, -D, -E: extended (the layer-3 protocol first) or json (one object per line)", "-o");
        command.Add(output, "Output");
        var eventMask = Opt.Text("--event-mask", "EVENTS", "-E: NEW, UPDATE, DESTROY or ALL, comma-separated (default ALL)", "-e");
        command.Add(eventMask, "Output");
        var instance = new InstanceOptions();
        instance.AddTo(command);
        var table = new Argument<string?>("TABLE")
        {
            Arity = ArgumentArity.ZeroOrOne,
            Description = "conntrack (the default) or expect: the expectation table, for -L, -C and -F",
        };
        command.Add(table);

        command.SetAction(r =>
        {
            Mode? mode = null;
            foreach ((Option<bool> option, Mode m) in modes)
            {
                if (!r.GetValue(option))
                    continue;
                if (mode != null && mode != m)
                    return Program.Fail("use one of -L, -C, -D and -F");
                mode = m;
            }
            if (filters.Read(r, out string? refused) is not { } filter)
                return Program.Fail(refused!);
            if (instance.Read(r) is { } usage)
                return Program.Fail(usage);
            if (filter.Validate() is string invalid)
                return Program.Fail(invalid);
            List<string> extra = [];
            Mode chosen = mode ?? Mode.List;
            if (r.GetValue(output) is string format)
            {
                if (chosen is not (Mode.List or Mode.Delete or Mode.Events))
                    return Program.Fail("-o applies to -L, -D and -E");
                if (OutputOptions.ParseFormat(format, out _) is string badFormat)
                    return Program.Fail(badFormat);
                extra.AddRange([OutputOptions.Output, format]);
            }
            if (r.GetValue(eventMask) is string mask)
            {
                if (chosen != Mode.Events)
                    return Program.Fail("-e applies to -E");
                if (OutputOptions.ParseMask(mask, out _) is string badMask)
                    return Program.Fail(badMask);
                extra.AddRange([OutputOptions.EventMaskOption, mask]);
            }
            switch (r.GetValue(table))
            {
                case null or "conntrack":
                    break;
                case "expect" or "expectation":
                    return ExecuteExpect(chosen, filter, extra, instance);
                case string other when other.StartsWith('-'):
                    return Program.Fail($"unknown option '{other}' for conntrack");
                case string other:
                    return Program.Fail($"unknown table '{other}' (expected conntrack or expect)");
            }
            return Execute(chosen, filter, extra, instance);
        });
        return command;
    }

    /// <summary>`-L expect`, `-C expect`, `-F expect`: the expectation table, as conntrack-tools shows the kernel's.</summary>
    private static int ExecuteExpect(Mode mode, ConntrackFilter filter, List<string> extra, InstanceOptions instance)
    {
        if (mode is not (Mode.List or Mode.Count or Mode.Flush))
            return Program.Fail("the expect table takes -L, -C and -F");
        if (!filter.IsEmpty)
            return Program.Fail("the expect table takes no filters");
        if (extra.Count > 1 && extra[1] != "json")
            return Program.Fail("-L expect takes -o json only");
        string? path = instance.Resolve(out string? error, out int exitCode);
        if (path == null)
            return StatsCommand.Failed(error!, exitCode);
        if (mode == Mode.Flush)
        {
            if (!ControlClient.TryRequest(path, ControlProtocol.FlushExpect, out string flushed, out error))
                return StatsCommand.Failed(error!, 1);
            Console.Error.WriteLine($"ctfw conntrack: expectation table has been emptied ({flushed.Trim()} expectations).");
            return 0;
        }
        string request = extra.Count > 0 ? ControlProtocol.ListExpect + "\t" + string.Join('\t', extra) : ControlProtocol.ListExpect;
        if (!ControlClient.TryRequest(path, request, out string body, out error))
            return StatsCommand.Failed(error!, 1);
        int shown = Lines(body);
        if (mode == Mode.Count)
        {
            Console.Out.WriteLine(shown.ToString(CultureInfo.InvariantCulture));
            return 0;
        }
        Console.Out.Write(body);
        Console.Error.WriteLine($"ctfw conntrack: {shown} expectations have been shown.");
        return 0;
    }

    private static int Execute(Mode mode, ConntrackFilter filter, List<string> extra, InstanceOptions instance)
    {
        if (mode == Mode.Flush && !filter.IsEmpty)
            return Program.Fail("-F empties the whole table; filters apply to -L and -C");
        if (mode == Mode.Stats && !filter.IsEmpty)
            return Program.Fail("-S prints counters; filters apply to -L, -C, -D and -E");
        if (mode == Mode.Events && filter.Annotates)
            return Program.Fail("--half-closed and --stalled filter listings, not events");
        List<string> args = [.. filter.Args, .. extra];

        string? path = instance.Resolve(out string? error, out int exitCode);
        if (path == null)
            return StatsCommand.Failed(error!, exitCode);

        if (mode == Mode.Flush)
        {
            if (!ControlClient.TryRequest(path, ControlProtocol.Flush, out string flushed, out error))
                return StatsCommand.Failed(error!, 1);
            Console.Error.WriteLine($"ctfw conntrack: connection tracking table has been emptied ({flushed.Trim()} entries).");
            return 0;
        }

        if (mode == Mode.Stats)
        {
            if (!ControlClient.TryRequest(path, ControlProtocol.CpuStats, out string cpus, out error))
                return StatsCommand.Failed(error!, 1);
            Console.Out.Write(cpus);
            return 0;
        }

        if (mode == Mode.Events)
            return StreamEvents(path, args);

        if (mode == Mode.Delete)
        {
            if (!ControlClient.TryRequest(path, ControlProtocol.DeleteRequest(args), out string deleted, out error))
                return StatsCommand.Failed(error!, 1);
            Console.Out.Write(deleted);
            Console.Error.WriteLine($"ctfw conntrack: {Lines(deleted)} flow entries have been deleted.");
            return 0;
        }

        if (!ControlClient.TryRequest(path, ControlProtocol.ListRequest(args), out string body, out error))
            return StatsCommand.Failed(error!, 1);
        int entries = Lines(body);
        if (mode == Mode.Count)
        {
            Console.Out.WriteLine(entries.ToString(CultureInfo.InvariantCulture));
            return 0;
        }
        Console.Out.Write(body);
        Console.Error.WriteLine($"ctfw conntrack: {entries} flow entries have been shown.");
        return 0;
    }

    /// <summary>
    /// `-E`: event lines to stdout as they come, until the daemon ends the stream or SIGINT/SIGTERM;
    /// then, as conntrack, the count on stderr. A `lost N` line from the daemon becomes a warning on
    /// stderr (conntrack's on ENOBUFS): this client read too slowly and N events are gone.
    /// </summary>
    private static int StreamEvents(string path, List<string> args)
    {
        Socket socket;
        try
        {
            socket = ControlClient.Connect(path, ControlClient.DefaultTimeout);
        }
        catch (ControlTrustException e)
        {
            return StatsCommand.Failed(e.Message, 1);
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            return StatsCommand.Failed($"cannot connect to {path}: {e.Message}", 1);
        }
        long shown = 0;
        int interrupted = 0;
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            Volatile.Write(ref interrupted, 1);
            // Wakes the blocked read; the server sees the close and drops the subscription.
            socket.Shutdown(SocketShutdown.Both);
        }
        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using (socket)
        {
            try
            {
                // The request only: the send side stays open, its close is how the server learns we left.
                socket.Send(Encoding.UTF8.GetBytes(ControlProtocol.EventsRequest(args) + "\n"));
                using var reader = new StreamReader(new NetworkStream(socket, ownsSocket: false), new UTF8Encoding(false));
                string? status = reader.ReadLine();
                if (status != "ok")
                {
                    string why = status is null ? $"{path} closed the connection without answering"
                        : status.StartsWith("error: ", StringComparison.Ordinal) ? status["error: ".Length..] : $"unexpected answer '{status}'";
                    return StatsCommand.Failed(why, 1);
                }
                while (reader.ReadLine() is string line)
                {
                    if (line.StartsWith("lost ", StringComparison.Ordinal))
                    {
                        Console.Error.WriteLine($"WARNING: {line["lost ".Length..]} events were lost: this client did not keep up (conntrack: ENOBUFS)");
                        continue;
                    }
                    Console.Out.WriteLine(line);
                    shown++;
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                if (Volatile.Read(ref interrupted) == 0)
                    return StatsCommand.Failed($"talking to {path}: {e.Message}", 1);
            }
        }
        Console.Error.WriteLine($"ctfw conntrack: {shown} flow events have been shown.");
        return 0;
    }

    private static int Lines(string body)
    {
        int lines = 0;
        foreach (char c in body)
        {
            if (c == '\n')
                lines++;
        }
        return lines;
    }
}
