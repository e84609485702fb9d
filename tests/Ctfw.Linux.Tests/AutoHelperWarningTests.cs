using Ctfw.Linux;

namespace Ctfw.Linux.Tests;

/// <summary>The start-up warning for nf_conntrack_helper=1, read from a sysctl directory (a temporary one here).</summary>
public sealed class AutoHelperWarningTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ctfw-sysctl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("1\n", true)]
    [InlineData("0\n", false)]
    public void AutoHelperWarning_KnobPresent_WarnsOnlyWhenOn(string value, bool warns)
    {
        File.WriteAllText(Path.Combine(_dir, "nf_conntrack_helper"), value);
        string? warning = LiveSysctls.AutoHelperWarning(_dir);
        Assert.Equal(warns, warning is not null);
        if (warns)
            Assert.StartsWith("nf_conntrack_helper=1: the kernel assigns conntrack helpers by port on its own; ctfw does not", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void AutoHelperWarning_KnobAbsent_AsOn6x_NoWarning() =>
        Assert.Null(LiveSysctls.AutoHelperWarning(_dir));
}
