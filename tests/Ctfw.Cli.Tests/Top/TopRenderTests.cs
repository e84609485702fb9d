using Ctfw.Cli.Commands;
using Ctfw.Cli.Commands.Top;
using Spectre.Console;

namespace Ctfw.Cli.Tests.Top;

public class TopRenderTests
{
    private const string Tcp = "tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=10.0.0.1 sport=45906 dport=443 packets=400000 bytes=2210000 src=10.0.0.1 dst=10.0.0.2 sport=443 dport=45906 packets=3 bytes=170 [ASSURED] mark=0 use=1";
    private const string Udp = "udp      17 29 src=10.0.0.3 dst=10.0.0.1 sport=51855 dport=53 packets=1 bytes=29 [UNREPLIED] src=10.0.0.1 dst=10.0.0.3 sport=53 dport=51855 packets=0 bytes=0 mark=0 use=1";

    private static string Render(TopFrame frame, int maxRows)
    {
        var writer = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 160;
        console.Write(TopCommand.Render(frame, maxRows));
        return writer.ToString();
    }

    [Fact]
    public void Render_Frame_HeaderSortMarkAbbreviatedCountsAndKeyHelp()
    {
        var model = new TopModel();
        TopFrame frame = model.Update(Tcp + "\n" + Udp + "\n", [new("table.entries", 2), new("table.max", 1024)], 0, new DateTime(2026, 1, 1, 9, 30, 0, DateTimeKind.Utc));

        string text = Render(frame, 10);

        Assert.Contains("ctfw top  09:30:00  entries 2/1024", text, StringComparison.Ordinal);
        Assert.Contains("BYTES ▼", text, StringComparison.Ordinal);
        Assert.Contains("400.0k", text, StringComparison.Ordinal); // 400 003 packets
        Assert.Contains("2.2M", text, StringComparison.Ordinal); // 2 210 170 bytes
        Assert.Contains("4d23h", text, StringComparison.Ordinal); // TTL 431 999 s
        Assert.Contains("q: quit", text, StringComparison.Ordinal);
        Assert.True(text.IndexOf("10.0.0.2", StringComparison.Ordinal) < text.IndexOf("10.0.0.3", StringComparison.Ordinal), "bytes descending: the TCP flow first");
    }

    [Fact]
    public void Render_MoreFlowsThanRows_CutAndSaysHowManyMore()
    {
        TopFrame frame = new TopModel().Update(Tcp + "\n" + Udp + "\n", [new("table.entries", 2)], 0, DateTime.UnixEpoch);

        string text = Render(frame, 1);

        Assert.Contains("(1 more below)", text, StringComparison.Ordinal);
        Assert.DoesNotContain("10.0.0.3", text, StringComparison.Ordinal);
    }
}
