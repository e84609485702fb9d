using System.Diagnostics;

namespace Ctfw.Cli.Tests;

/// <summary>
/// `ctfw completion bash` in a real bash: the script is sourced, bash's completion variables are set
/// as bash sets them for a line typed so far, and the function's answer is read back. The ctfw it
/// asks is the apphost built next to this test (on PATH for the script).
/// </summary>
[Collection("Console")]
public sealed class CompletionTests
{
    private static string Complete(string line)
    {
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "ctfw")), "the ctfw apphost is built next to the tests");
        string script = ConsoleCapture.Run("completion", "bash").Out;
        string driver = script + """

            COMP_LINE="$1"
            COMP_POINT=${#COMP_LINE}
            read -ra COMP_WORDS <<< "$COMP_LINE"
            [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
            COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            _ctfw_complete
            printf '%s\n' "${COMPREPLY[@]}"
            """;
        var start = new ProcessStartInfo("bash", ["-c", driver, "bash", line])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.Environment["PATH"] = AppContext.BaseDirectory + ":" + Environment.GetEnvironmentVariable("PATH");
        using Process bash = Process.Start(start)!;
        string output = bash.StandardOutput.ReadToEnd();
        bash.WaitForExit();
        Assert.Equal(0, bash.ExitCode);
        return string.Join(' ', output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("ctfw re", "reload replay")]
    [InlineData("ctfw run --ru", "--rules")]
    [InlineData("ctfw run --rescue ", "loose tombstone")]
    [InlineData("ctfw replay --format ", "text tsv")]
    [InlineData("ctfw replay --checksums v", "verify")]
    [InlineData("ctfw conntrack -p ud", "udp udplite")]
    [InlineData("ctfw conntrack --st", "--stalled --stalled-after --state --stats --status")]
    [InlineData("ctfw rules --ex", "--exact")]
    [InlineData("ctfw completion ", "--help -h bash")]
    public void Bash_LineSoFar_OffersWhatTheParserAccepts(string line, string expected)
    {
        Assert.Equal(expected, Complete(line));
    }

    [Fact]
    public void Bash_NoCandidate_FallsBackToFileNames()
    {
        string dir = Directory.CreateTempSubdirectory("ctfw-completion-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "capture.pcap"), "");
            Assert.Equal(Path.Combine(dir, "capture.pcap"), Complete($"ctfw replay {dir}/cap"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Completion_OtherShell_UsageErrorExitTwo()
    {
        var (code, _, err) = ConsoleCapture.Run("completion", "zsh");
        Assert.Equal(2, code);
        Assert.Equal("ctfw: completion zsh: only bash is supported\n", err);
    }
}
