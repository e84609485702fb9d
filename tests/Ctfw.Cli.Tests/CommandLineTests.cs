namespace Ctfw.Cli.Tests;

/// <summary>The launcher contract: usage errors are one clear line and exit status 2.</summary>
[Collection("Console")]
public class CommandLineTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => ConsoleCapture.Run(args);

    [Fact]
    public void Help_ListsCommands_ExitZero()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("replay", output);
        Assert.Contains("sysctls", output);
    }

    [Fact]
    public void NoArguments_PrintsUsage_ExitTwo()
    {
        var (code, output, _) = Run();
        Assert.Equal(2, code);
        Assert.Contains("Usage: ctfw COMMAND", output);
    }

    [Fact]
    public void UnknownCommand_OneLineError_ExitTwo()
    {
        var (code, _, err) = Run("frobnicate");
        Assert.Equal(2, code);
        Assert.Equal("ctfw: unknown command 'frobnicate' (try `ctfw --help`)", err.Trim());
    }

    [Theory]
    [InlineData("replay")]
    [InlineData("sysctls")]
    public void CommandHelp_PrintsUsage(string command)
    {
        var (code, output, _) = Run(command, "--help");
        Assert.Equal(0, code);
        Assert.StartsWith($"Usage: ctfw {command}", output);
        Assert.Equal(output, Run("help", command).Out);
    }

    [Theory]
    [InlineData("unknown sysctl 'nf_conntrack_bogus'", "replay", "--set", "nf_conntrack_bogus=1", "x.pcap")]
    [InlineData("bad value 'yes' for nf_conntrack_tcp_loose", "replay", "--set", "nf_conntrack_tcp_loose=yes", "x.pcap")]
    [InlineData("expected 0 or 1", "replay", "--set", "nf_conntrack_tcp_loose=2", "x.pcap")]
    [InlineData("--set expects NAME=VALUE", "replay", "--set", "nf_conntrack_tcp_loose", "x.pcap")]
    [InlineData("option --format needs a value", "replay", "--format")]
    [InlineData("--format must be tsv or text", "replay", "--format", "json", "x.pcap")]
    [InlineData("unknown option '--frob'", "replay", "--frob", "x.pcap")]
    [InlineData("replay needs a capture file", "replay")]
    [InlineData("replay takes one capture file", "replay", "a.pcap", "b.pcap")]
    [InlineData("sysctl file 'missing.conf' not found", "replay", "--sysctl-file", "missing.conf", "x.pcap")]
    public void BadArguments_ClearMessage_ExitTwo(string message, params string[] args)
    {
        var (code, _, err) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void SysctlFile_BadLine_NamesFileAndLine()
    {
        string file = Path.GetTempFileName();
        File.WriteAllText(file, "# comment\nnf_conntrack_tcp_loose=0\nnot a setting\n");
        try
        {
            var (code, _, err) = Run("sysctls", "--sysctl-file", file);
            Assert.Equal(2, code);
            Assert.Contains($"{file}:3: expected name=value", err);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Sysctls_SetOverridesFile_AndDefaultsAreKernels()
    {
        var (code, output, _) = Run("sysctls", "--set", "net.netfilter.nf_conntrack_tcp_timeout_established=7");
        Assert.Equal(0, code);
        Assert.Contains("nf_conntrack_tcp_timeout_established=7\n", output);
        Assert.Contains("nf_conntrack_tcp_loose=1\n", output);
        Assert.Contains("nf_conntrack_udp_timeout_stream=120\n", output);
    }

    [Fact]
    public void Replay_MissingFile_ExitOne()
    {
        var (code, _, err) = Run("replay", "/nonexistent/file.pcap");
        Assert.Equal(1, code);
        Assert.Contains("cannot open '/nonexistent/file.pcap'", err);
    }
}

[CollectionDefinition("Console", DisableParallelization = true)]
public class ConsoleCollection;
