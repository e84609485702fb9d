using Ctfw.Capture;
using Ctfw.Cli.Commands;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests;

/// <summary>
/// `ctfw replay --rescue` on crafted captures of a connection whose entry expired while idle
/// (ESTABLISHED timeout 60 s, expiry at t = 70 s) before one side closed: the exact tsv lines with
/// rescue, and the kernel's lines without it.
/// </summary>
[Collection("Console")]
public class ReplayRescueTests
{
    private static readonly IpAddress A = IpAddress.FromV4(0x0A000001), B = IpAddress.FromV4(0x0A000002), C = IpAddress.FromV4(0x0A000003);
    private const long S = 1_000_000_000;
    private const string Established60 = "nf_conntrack_tcp_timeout_established=60";

    private static (long, byte[]) Tcp(double seconds, TcpFlags flags, uint seq, uint ack, bool fromA = true, int len = 0)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.Tcp(buf, new TcpSpec
        {
            Src = fromA ? A : B, Dst = fromA ? B : A, SrcPort = fromA ? (ushort)1234 : (ushort)80, DstPort = fromA ? (ushort)80 : (ushort)1234,
            Seq = seq, Ack = ack, Flags = flags, Window = 65000, PayloadLength = len,
        });
        return ((long)(seconds * S), buf[..n]);
    }

    /// <summary>Another flow's packet: gives the housekeeper a turn, so the idle entry is reaped into a tombstone.</summary>
    private static (long, byte[]) Other(double seconds)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.Udp(buf, false, C, B, 5353, 53, 20);
        return ((long)(seconds * S), buf[..n]);
    }

    /// <summary>Handshake at t = 10 s, 100 bytes each way, acknowledged: client next 201, server next 601.</summary>
    private static (long, byte[])[] Idle() =>
    [
        Tcp(10, TcpFlags.Syn, 100, 0),
        Tcp(10, TcpFlags.Syn | TcpFlags.Ack, 500, 101, fromA: false),
        Tcp(10, TcpFlags.Ack, 101, 501),
        Tcp(10, TcpFlags.Ack | TcpFlags.Psh, 101, 501, len: 100),
        Tcp(10, TcpFlags.Ack | TcpFlags.Psh, 501, 201, fromA: false, len: 100),
        Tcp(10, TcpFlags.Ack, 201, 601),
    ];

    private static readonly string[] s_idleLines =
    [
        "1\tNEW\tORIGINAL\tSYN_SENT\t-",
        "2\tESTABLISHED\tREPLY\tSYN_RECV\t-",
        "3\tESTABLISHED\tORIGINAL\tESTABLISHED\t-",
        "4\tESTABLISHED\tORIGINAL\tESTABLISHED\t-",
        "5\tESTABLISHED\tREPLY\tESTABLISHED\t-",
        "6\tESTABLISHED\tORIGINAL\tESTABLISHED\t-",
    ];

    private static string WritePcap(params (long Ns, byte[] Frame)[][] parts)
    {
        string path = Path.GetTempFileName();
        using (var fs = File.Create(path))
        using (var w = new PcapWriter(fs, LinkTypes.Raw))
        {
            foreach (var part in parts)
            {
                foreach (var (ns, frame) in part)
                    w.Write(ns, frame, frame.Length);
            }
        }
        return path;
    }

    /// <summary>Runs `ctfw replay [args] PCAP` in-process; returns the exit code, the tsv lines and stderr.</summary>
    private static (int Code, string[] Lines, string Err) Replay(string pcap, params string[] args)
    {
        var stdout = new StringWriter();
        TextWriter oldErr = Console.Error;
        var err = new StringWriter();
        Console.SetError(err);
        try
        {
            int code = ReplayCommand.Run(["replay", "--set", Established60, .. args, pcap], stdout);
            return (code, [.. stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#'))], err.ToString());
        }
        finally
        {
            Console.SetError(oldErr);
        }
    }

    private static void AssertLines(string pcap, string[] expectedTail, params string[] args)
    {
        var (code, lines, err) = Replay(pcap, args);
        Assert.True(code == 0, err);
        Assert.Equal([.. s_idleLines, .. expectedTail], lines);
    }

    // ---- fitting FIN, then the whole teardown ----

    private static string FinPcap(bool reapFirst) => WritePcap(Idle(), reapFirst ? [Other(80)] : [],
    [
        Tcp(100, TcpFlags.Fin | TcpFlags.Ack, 201, 601),
        Tcp(100.01, TcpFlags.Ack, 601, 202, fromA: false),
        Tcp(100.02, TcpFlags.Fin | TcpFlags.Ack, 601, 202, fromA: false),
        Tcp(100.03, TcpFlags.Ack, 202, 602),
    ]);

    [Fact]
    public void FittingFin_Rescue_RescuedThenTeardownEstablished()
    {
        string pcap = FinPcap(reapFirst: false);
        AssertLines(pcap,
        [
            "7\tESTABLISHED\tORIGINAL\tFIN_WAIT\trescued",
            "8\tESTABLISHED\tREPLY\tCLOSE_WAIT\t-",
            "9\tESTABLISHED\tREPLY\tLAST_ACK\t-",
            "10\tESTABLISHED\tORIGINAL\tTIME_WAIT\t-",
        ], "--rescue");
        File.Delete(pcap);
    }

    [Fact]
    public void FittingFin_ReapedIntoATombstoneFirst_SameLines()
    {
        string pcap = FinPcap(reapFirst: true);
        AssertLines(pcap,
        [
            "7\tNEW\tORIGINAL\t-\t-",
            "8\tESTABLISHED\tORIGINAL\tFIN_WAIT\trescued",
            "9\tESTABLISHED\tREPLY\tCLOSE_WAIT\t-",
            "10\tESTABLISHED\tREPLY\tLAST_ACK\t-",
            "11\tESTABLISHED\tORIGINAL\tTIME_WAIT\t-",
        ], "--rescue", "tombstone");
        var (_, _, err) = Replay(pcap, "--rescue");
        Assert.Contains("rescue (tombstone, window 120 s): fin 1, rst 0, loose 0, out-of-window 0; tombstones stored 1, live 0", err, StringComparison.Ordinal);
        File.Delete(pcap);
    }

    [Fact]
    public void FittingFin_NoRescue_KernelInvalid()
    {
        string pcap = FinPcap(reapFirst: false);
        AssertLines(pcap,
        [
            "7\tINVALID\t-\t-\ttcp-invalid-new",
            "8\tNEW\tORIGINAL\tESTABLISHED\t-",   // the peer's ACK is picked up as a new flow (tcp_loose)
            "9\tNEW\tORIGINAL\tFIN_WAIT\t-",
            "10\tESTABLISHED\tREPLY\tCLOSE_WAIT\t-",  // the kernel's table: a REPLY ACK in FIN_WAIT
        ]);
        File.Delete(pcap);
    }

    // ---- fitting RST ----

    private static string RstPcap() => WritePcap(Idle(), [Tcp(100, TcpFlags.Rst, 201, 0)]);

    [Fact]
    public void FittingRst_Rescue_RescuedToClose()
    {
        string pcap = RstPcap();
        AssertLines(pcap, ["7\tESTABLISHED\tORIGINAL\tCLOSE\trescued"], "--rescue");
        File.Delete(pcap);
    }

    [Fact]
    public void FittingRst_NoRescue_KernelInvalid()
    {
        string pcap = RstPcap();
        AssertLines(pcap, ["7\tINVALID\t-\t-\ttcp-invalid-new"]);
        File.Delete(pcap);
    }

    // ---- RST outside the window ----

    private static string RstOutsidePcap() => WritePcap(Idle(),
    [
        Tcp(100, TcpFlags.Rst, 201 + 10_000_000, 0),
        Tcp(101, TcpFlags.Fin | TcpFlags.Ack, 201, 601),
    ]);

    [Fact]
    public void RstOutsideWindow_Rescue_InvalidOutOfWindowThenFittingFinRescued()
    {
        string pcap = RstOutsidePcap();
        AssertLines(pcap,
        [
            "7\tINVALID\t-\t-\trescue-out-of-window",
            "8\tESTABLISHED\tORIGINAL\tFIN_WAIT\trescued",
        ], "--rescue");
        var (_, _, err) = Replay(pcap, "--rescue");
        Assert.Contains("  rescue-out-of-window: 1", err, StringComparison.Ordinal);
        File.Delete(pcap);
    }

    [Fact]
    public void RstOutsideWindow_NoRescue_KernelInvalid()
    {
        string pcap = RstOutsidePcap();
        AssertLines(pcap,
        [
            "7\tINVALID\t-\t-\ttcp-invalid-new",
            "8\tINVALID\t-\t-\ttcp-invalid-new",
        ]);
        File.Delete(pcap);
    }

    // ---- FIN after the tombstone window ----

    private static string LateFinPcap() => WritePcap(Idle(), [Other(80), Tcp(110.5, TcpFlags.Fin | TcpFlags.Ack, 201, 601)]);

    [Fact]
    public void FinAfterWindow_Rescue_KernelInvalid()
    {
        string pcap = LateFinPcap(); // expired at 70 s; the FIN comes 40.5 s later
        AssertLines(pcap,
        [
            "7\tNEW\tORIGINAL\t-\t-",
            "8\tINVALID\t-\t-\ttcp-invalid-new",
        ], "--rescue", "--rescue-window", "40");
        AssertLines(pcap,
        [
            "7\tNEW\tORIGINAL\t-\t-",
            "8\tESTABLISHED\tORIGINAL\tFIN_WAIT\trescued",
        ], "--rescue-window=41", "--rescue");
        File.Delete(pcap);
    }

    [Fact]
    public void FinAfterWindow_NoRescue_KernelInvalid()
    {
        string pcap = LateFinPcap();
        AssertLines(pcap,
        [
            "7\tNEW\tORIGINAL\t-\t-",
            "8\tINVALID\t-\t-\ttcp-invalid-new",
        ]);
        File.Delete(pcap);
    }

    // ---- data after a rescued FIN ----

    private static string DataAfterFinPcap() => WritePcap(Idle(),
    [
        Tcp(100, TcpFlags.Fin | TcpFlags.Ack, 201, 601),
        Tcp(100.01, TcpFlags.Ack | TcpFlags.Psh, 601, 202, fromA: false, len: 100),
        Tcp(100.02, TcpFlags.Ack, 202, 701),
        Tcp(100.03, TcpFlags.Ack | TcpFlags.Psh, 202, 701, len: 10),
        Tcp(100.04, TcpFlags.Ack | TcpFlags.Psh, 701, 202, fromA: false, len: 100),
    ]);

    [Fact]
    public void DataAfterRescuedFin_Rescue_StaysClosing()
    {
        string pcap = DataAfterFinPcap();
        AssertLines(pcap,
        [
            "7\tESTABLISHED\tORIGINAL\tFIN_WAIT\trescued",
            "8\tESTABLISHED\tREPLY\tCLOSE_WAIT\t-",
            "9\tESTABLISHED\tORIGINAL\tCLOSE_WAIT\t-",
            "10\tESTABLISHED\tORIGINAL\tCLOSE_WAIT\t-",
            "11\tESTABLISHED\tREPLY\tCLOSE_WAIT\t-",
        ], "--rescue");
        File.Delete(pcap);
    }

    [Fact]
    public void DataAfterFin_NoRescue_KernelInvalidThenPickedUpAsEstablished()
    {
        string pcap = DataAfterFinPcap();
        AssertLines(pcap,
        [
            "7\tINVALID\t-\t-\ttcp-invalid-new",
            "8\tNEW\tORIGINAL\tESTABLISHED\t-",
            "9\tESTABLISHED\tREPLY\tESTABLISHED\t-",
            "10\tESTABLISHED\tREPLY\tESTABLISHED\t-",
            "11\tESTABLISHED\tORIGINAL\tESTABLISHED\t-",
        ]);
        File.Delete(pcap);
    }

    // ---- loose, formats, options ----

    [Fact]
    public void BareFin_Loose_ClosingOnlyEntry_TombstoneModeKernelInvalid()
    {
        string pcap = WritePcap([Tcp(1, TcpFlags.Fin | TcpFlags.Ack, 201, 601), Tcp(1.01, TcpFlags.Ack, 601, 202, fromA: false)]);
        var (code, lines, _) = Replay(pcap, "--rescue", "loose");
        Assert.Equal(0, code);
        Assert.Equal(["1\tESTABLISHED\tORIGINAL\tFIN_WAIT\trescued", "2\tESTABLISHED\tREPLY\tCLOSE_WAIT\t-"], lines);
        Assert.Equal(lines, Replay(pcap, "--rescue=loose").Lines);
        Assert.Equal("1\tINVALID\t-\t-\ttcp-invalid-new", Replay(pcap, "--rescue").Lines[0]);
        Assert.Equal("1\tINVALID\t-\t-\ttcp-invalid-new", Replay(pcap).Lines[0]);
        File.Delete(pcap);
    }

    [Fact]
    public void TextFormat_RescuedPacket_SaysRescued()
    {
        string pcap = RstPcap();
        var (code, lines, _) = Replay(pcap, "--rescue", "--format", "text");
        Assert.Equal(0, code);
        Assert.Matches(" ESTABLISHED +ORIGINAL +CLOSE +rescued +tcp ", lines[6]);
        Assert.DoesNotContain("rescued", Replay(pcap, "--format", "text").Lines[6], StringComparison.Ordinal);
        File.Delete(pcap);
    }

    [Fact]
    public void NoRescue_OutputAndSummaryHaveNoRescueTrace()
    {
        string pcap = FinPcap(reapFirst: true);
        var (_, _, err) = Replay(pcap);
        Assert.DoesNotContain("rescue", err, StringComparison.Ordinal);
        File.Delete(pcap);
    }

    [Theory]
    [InlineData("--rescue=bogus")]
    [InlineData("--rescue-window", "30")]
    [InlineData("--rescue", "--rescue-window", "abc")]
    [InlineData("--rescue", "--rescue-window", "-5")]
    public void BadRescueOptions_UsageError(params string[] args)
    {
        string pcap = RstPcap();
        var (code, _, err) = Replay(pcap, args);
        Assert.Equal(2, code);
        Assert.StartsWith("ctfw: --rescue", err, StringComparison.Ordinal);
        File.Delete(pcap);
    }

    [Fact]
    public void Help_MentionsRescue()
    {
        var (code, output, _) = ConsoleCapture.Run("replay", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--rescue [tombstone|loose]", output, StringComparison.Ordinal);
        Assert.Contains("--rescue-window SECONDS", output, StringComparison.Ordinal);
    }
}
