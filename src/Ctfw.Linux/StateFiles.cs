using System.Globalization;
using Tmds.Linux;

namespace Ctfw.Linux;

/// <summary>
/// File handling around <see cref="Conntrack.ConntrackEngine.WriteState"/>/<see cref="Conntrack.ConntrackEngine.RestoreState"/>
/// for the daemon: the engine itself only sees streams.
/// </summary>
public static class StateFiles
{
    /// <summary>
    /// Replaces <paramref name="path"/> atomically with what <paramref name="write"/> writes: into a
    /// temporary file in the same directory (so the rename stays on one file system), flushed to disk
    /// (fsync), then renamed over the old file. A reader sees the old file or the new one, never a
    /// half-written one; on any failure the temporary file is removed and the old file stays. The
    /// directory is synced after the rename, so the new name survives a power loss too.
    /// </summary>
    public static void WriteAtomic(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full) ?? ".",
            string.Create(CultureInfo.InvariantCulture, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}"));
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true); // fsync before the rename: a crash must not leave a renamed, empty file
            }
            File.Move(temp, full, overwrite: true); // rename(2): atomic within one directory
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        // The rename lives in the directory: until the directory is on disk, a power loss may bring
        // back the old name (or none, for the first checkpoint).
        SyncDirectory(Path.GetDirectoryName(full) ?? ".");
    }

    /// <summary>fsync(2) of a directory (Tmds.LibC: .NET cannot open a directory as a file). Throws <see cref="IOException"/>.</summary>
    private static unsafe void SyncDirectory(string directory)
    {
        byte[] name = System.Text.Encoding.UTF8.GetBytes(directory + "\0");
        int fd;
        fixed (byte* p = name)
            fd = LibC.open(p, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        if (fd < 0)
            throw new IOException($"opening directory {directory} to sync it failed: {ErrnoException.Describe(Interop.GetLastErrno())}");
        try
        {
            if (LibC.fsync(fd) != 0)
                throw new IOException($"fsync of directory {directory} failed: {ErrnoException.Describe(Interop.GetLastErrno())}");
        }
        finally
        {
            _ = LibC.close(fd);
        }
    }

    /// <summary>
    /// Moves a state file that could not be restored out of the way, to <c>PATH.bad-yyyyMMddTHHmmssZ</c>
    /// (a counter appended if that exists), so the next checkpoint does not overwrite the evidence.
    /// Returns the new path.
    /// </summary>
    public static string MoveAside(string path, DateTime utcNow)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string stem = string.Create(CultureInfo.InvariantCulture, $"{path}.bad-{utcNow.ToUniversalTime():yyyyMMdd'T'HHmmss'Z'}");
        string target = stem;
        for (int i = 1; File.Exists(target); i++)
            target = string.Create(CultureInfo.InvariantCulture, $"{stem}.{i}");
        File.Move(path, target);
        return target;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: the temporary name is per process and is overwritten by the next checkpoint.
        }
        catch (UnauthorizedAccessException)
        {
            // As above.
        }
    }
}
