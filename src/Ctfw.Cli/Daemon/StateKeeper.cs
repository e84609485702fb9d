using System.Globalization;
using Ctfw.Conntrack;
using Ctfw.Linux;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// <c>--state-file</c>: restores the table at start, checkpoints it every interval from its own
/// thread, and writes it once more at stop, after the workers are joined. Writes are atomic
/// (temporary file, fsync, rename), so a kill -9 or power loss leaves the previous checkpoint whole.
/// The write walks the table a block at a time without stopping the workers
/// (<see cref="ConntrackEngine.WriteState"/>); a failed write is reported and the next one tried.
/// </summary>
internal sealed class StateKeeper : IDisposable
{
    private readonly ConntrackEngine _engine;
    private readonly string _path;
    private readonly int _intervalMs;
    private readonly TextWriter _err;
    private readonly ManualResetEventSlim _stop = new();
    private readonly Lock _writeLock = new();
    private Thread? _thread;
    private bool _lastFailed;

    public StateKeeper(ConntrackEngine engine, string path, int intervalMs, TextWriter err)
    {
        _engine = engine;
        _path = path;
        _intervalMs = intervalMs;
        _err = err;
    }

    public long Checkpoints { get; private set; }

    public long Failures { get; private set; }

    /// <summary>
    /// Restores the file into the (still empty) engine before any worker runs. A missing file is a
    /// first start; a damaged, truncated, foreign or newer file is moved aside with one line and
    /// ctfw starts empty. Never throws for the file's sake.
    /// </summary>
    public void Restore()
    {
        if (!File.Exists(_path))
        {
            _err.WriteLine($"ctfw: state file {_path} does not exist yet: starting with an empty table");
            return;
        }
        StateRestoreResult result;
        bool ok;
        try
        {
            using var stream = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            // Packets passed unseen while ctfw was down (jumps removed at stop, or the queue bypassed
            // after a kill -9): the stored TCP windows are stale and are learned again.
            ok = _engine.RestoreState(stream, DaemonClock.NowMs(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), relearnTcpWindows: true, out result);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _err.WriteLine($"ctfw: state file {_path} cannot be read ({e.Message}): starting with an empty table");
            return;
        }
        if (ok)
        {
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: restored {result.Restored} entries from {_path} (down {result.DowntimeMs / 1000.0:F1} s; {result.Expired} expired meanwhile, {result.OverLimit} over nf_conntrack_max, {result.Duplicates} duplicates; tombstones {result.TombstonesRestored} restored, {result.TombstonesSkipped} skipped; TCP windows learned again from the next packets)"));
            return;
        }
        string aside;
        try
        {
            aside = StateFiles.MoveAside(_path, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _err.WriteLine($"ctfw: state file {_path} not restored ({result.Status}: {result.Message}) and could not be moved aside ({e.Message}): starting with an empty table");
            return;
        }
        _err.WriteLine($"ctfw: state file {_path} not restored ({result.Status}: {result.Message}); moved aside to {aside}; starting with an empty table");
    }

    /// <summary>Starts the checkpoint thread.</summary>
    public void Start()
    {
        _thread = new Thread(Loop) { Name = "ctfw-state", IsBackground = true };
        _thread.Start();
    }

    private void Loop()
    {
        while (!_stop.Wait(_intervalMs))
        {
            if (!_suspended)
                Write(final: false);
        }
    }

    // Set while a takeover is under way: the table then belongs to the hand-over, and if it
    // succeeds to the next process, which checkpoints on its own.
    private volatile bool _suspended;

    /// <summary>Skips checkpoints until <see cref="ResumeCheckpoints"/>; waits for one in progress to finish.</summary>
    public void SuspendCheckpoints()
    {
        _suspended = true;
        lock (_writeLock)
        {
        }
    }

    public void ResumeCheckpoints() => _suspended = false;

    /// <summary>Stops the checkpoints without a last write: after a hand-over the next process owns the table.</summary>
    public void StopWithoutWrite()
    {
        _suspended = true;
        _stop.Set();
        _thread?.Join();
    }

    /// <summary>Stops the checkpoints and writes the table a last time (the workers have stopped by now).</summary>
    public void StopAndWrite()
    {
        _stop.Set();
        _thread?.Join();
        Write(final: true);
    }

    private void Write(bool final)
    {
        lock (_writeLock)
        {
            StateWriteResult written = default;
            try
            {
                StateFiles.WriteAtomic(_path, stream =>
                    written = _engine.WriteState(stream, DaemonClock.NowMs(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
                Checkpoints++;
                if (final || _lastFailed)
                {
                    _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"ctfw: state {(final ? "written" : "checkpoint written again")} to {_path}: {written.Entries} entries, {written.Tombstones} tombstones, {written.Bytes} bytes"));
                }
                _lastFailed = false;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Failures++;
                // One line per run of failures, not one per interval.
                if (!_lastFailed || final)
                    _err.WriteLine($"ctfw: writing state to {_path} failed: {e.Message}");
                _lastFailed = true;
            }
        }
    }

    public void Dispose() => _stop.Dispose();
}
