using System.CommandLine;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw sync status|external|commit|resync|flush|bulk`: the state sync of a running `ctfw run --sync
/// ftfw`, as conntrackd's -s, -e, -c, -n, -f and -B are for conntrackd (what a keepalived notify
/// script calls; contrib/keepalived/).
/// </summary>
internal static class SyncCommand
{
    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("sync", "the state sync with the peer gateway: status, external, commit, resync, flush, bulk",
            "ACTION... [--pid N | --control PATH]")
        {
            Details = """
                Talks to a running `ctfw run --sync ftfw` (docs/HA.md):
                  status    the peer, the external cache's size and the sync counters (conntrackd -s)
                  external  the connections the peer sent, as `conntrack -L` lines (conntrackd -e)
                  commit    make the external cache live: its connections become table entries, TCP ones
                            picked up with liberal windows (the protocol carries none) (conntrackd -c)
                  resync    ask the peer to send its whole table again (conntrackd -n)
                  flush     forget the external cache (conntrackd -f)
                  bulk      send this gateway's whole table to the peer (conntrackd -B)
                Several actions run one after the other in one call, stopping at the first that fails:
                a gateway that becomes the active one runs `ctfw sync commit flush bulk`, one that
                becomes the backup `ctfw sync resync` (contrib/keepalived/ctfw-notify.sh).
                """,
            ExitCodes =
            [
                (0, "done"),
                (1, "the daemon has no sync, or no daemon answers"),
                (CommandLine.UsageExit, "usage error, or several daemons are running and none was chosen"),
            ],
        };
        var action = new Argument<string[]>("ACTION") { Arity = ArgumentArity.OneOrMore };
        action.CompletionSources.Add(ControlProtocol.SyncRequests);
        command.Arguments.Add(action);
        var instance = new InstanceOptions();
        instance.AddTo(command);
        command.SetAction(r =>
        {
            string[] subs = r.GetValue(action) ?? [];
            foreach (string sub in subs)
            {
                if (Array.IndexOf(ControlProtocol.SyncRequests, sub) < 0)
                    return Program.Fail($"sync {sub}: expected one of {string.Join(", ", ControlProtocol.SyncRequests)}");
            }
            if (instance.Read(r) is { } usage)
                return Program.Fail(usage);
            string? path = instance.Resolve(out string? error, out int exitCode);
            if (path == null)
                return StatsCommand.Failed(error!, exitCode);
            foreach (string sub in subs)
            {
                if (!ControlClient.TryRequest(path, ControlProtocol.Sync + "\t" + sub, out string body, out error))
                {
                    Console.Error.WriteLine($"ctfw: sync {sub}: {error}");
                    return 1;
                }
                Console.Out.Write(body);
            }
            return 0;
        });
        return command;
    }
}
