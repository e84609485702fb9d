namespace Ctfw.Linux.Tests;

/// <summary>The daemon's file handling around the state file: atomic replace, and moving a bad file aside.</summary>
public sealed class StateFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ctfw-state-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WriteAtomic_Success_ReplacesFileLeavesNoTemp()
    {
        string path = Path.Combine(_dir, "ct.state");
        File.WriteAllBytes(path, [1, 2, 3]);
        StateFiles.WriteAtomic(path, s => s.Write([9, 8, 7, 6]));
        Assert.Equal(new byte[] { 9, 8, 7, 6 }, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void WriteAtomic_WriterThrows_OldFileKeptTempRemoved()
    {
        string path = Path.Combine(_dir, "ct.state");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Throws<IOException>(() => StateFiles.WriteAtomic(path, s =>
        {
            s.Write([9, 9]);
            throw new IOException("disk full");
        }));
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void MoveAside_TwiceSameSecond_BothKeptWithTimestampNames()
    {
        string path = Path.Combine(_dir, "ct.state");
        var at = new DateTime(2026, 12, 7, 0, 30, 5, DateTimeKind.Utc);
        File.WriteAllBytes(path, [1]);
        string first = StateFiles.MoveAside(path, at);
        File.WriteAllBytes(path, [2]);
        string second = StateFiles.MoveAside(path, at);
        Assert.Equal(path + ".bad-20261207T003005Z", first);
        Assert.Equal(path + ".bad-20261207T003005Z.1", second);
        Assert.False(File.Exists(path));
        Assert.Equal(new byte[] { 2 }, File.ReadAllBytes(second));
    }
}
