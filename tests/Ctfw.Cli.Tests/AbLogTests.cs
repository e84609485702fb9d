using Ctfw.Firewall.Logging;
using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Cli.Tests;

public sealed class AbLogTests
{
    private static (byte[] Bytes, ParsedPacket Parsed) Syn()
    {
        var buffer = new byte[128];
        int n = PacketBuilder.Tcp(buffer, new TcpSpec
        {
            Src = IpAddress.FromV4(0x0A630102),
            Dst = IpAddress.FromV4(0x0A630202),
            SrcPort = 40001,
            DstPort = 80,
            Seq = 1000,
            Flags = TcpFlags.Syn,
            Window = 64240,
        });
        byte[] bytes = buffer[..n];
        Assert.Equal(InvalidReason.None, PacketParser.Parse(bytes, out ParsedPacket p));
        return (bytes, p);
    }

    [Fact]
    public void Format_NamesBothAnswersTheReasonTheTcpStatesAndThePacket()
    {
        (byte[] bytes, ParsedPacket p) = Syn();
        var facts = new PacketFacts(Hook.Forward, in p, bytes, InvalidReason.None) { State = CtState.New, Direction = CtDirection.Original, Length = bytes.Length };
        var ctfw = new Classification
        {
            State = CtState.Invalid,
            Direction = CtDirection.None,
            Reason = InvalidReason.TcpInvalidNew,
            PreviousTcpState = TcpState.TimeWait,
            TcpState = TcpState.TimeWait,
        };

        string line = AbLog.Format(CtState.New, CtDirection.Original, ctfw, facts, new char[LogFormatter.MaxLineLength]);

        Assert.StartsWith("ctfw: ab: kernel NEW ORIGINAL, ctfw INVALID - (tcp-invalid-new), tcp TIME_WAIT->TIME_WAIT: ", line, StringComparison.Ordinal);
        Assert.Contains("SRC=10.99.1.2 DST=10.99.2.2", line, StringComparison.Ordinal);
        Assert.Contains("SPT=40001 DPT=80 SEQ=1000", line, StringComparison.Ordinal);
        Assert.Contains(" SYN ", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_IsRateLimited_AndCountsWhatItSuppressed()
    {
        (byte[] bytes, ParsedPacket p) = Syn();
        var facts = new PacketFacts(Hook.Forward, in p, bytes, InvalidReason.None) { Length = bytes.Length };
        var ctfw = new Classification { State = CtState.Established, Direction = CtDirection.Original };
        var lines = new LogQueue(256);
        var log = new AbLog(lines);

        for (int i = 0; i < AbLog.Burst + 30; i++)
            log.Write(CtState.New, CtDirection.Original, ctfw, facts, now: 0);
        Assert.Equal(AbLog.Burst, log.Written);
        Assert.Equal(30, log.Suppressed);

        log.Write(CtState.New, CtDirection.Original, ctfw, facts, now: 1000); // a second later: 10 tokens back
        Assert.Equal(AbLog.Burst + 1, log.Written);
        var text = new System.Text.StringBuilder();
        while (lines.TryPeek(out ReadOnlySpan<char> line))
        {
            text.Append(line).Append('\n');
            lines.Release();
        }
        Assert.Contains("ctfw: ab: 30 disagreement lines suppressed", text.ToString(), StringComparison.Ordinal);
    }
}

public sealed class RescueLogTests
{
    [Fact]
    public void Format_NamesTheFlagTheStateAndThePacket()
    {
        var buffer = new byte[128];
        int n = PacketBuilder.Tcp(buffer, new TcpSpec
        {
            Src = IpAddress.FromV4(0x0A630102),
            Dst = IpAddress.FromV4(0x0A630202),
            SrcPort = 40001,
            DstPort = 8088,
            Seq = 5000,
            Ack = 9000,
            Flags = TcpFlags.Fin | TcpFlags.Ack,
            Window = 502,
        });
        byte[] bytes = buffer[..n];
        Assert.Equal(InvalidReason.None, PacketParser.Parse(bytes, out ParsedPacket p));
        var facts = new PacketFacts(Hook.Forward, in p, bytes, InvalidReason.None) { Length = bytes.Length };
        var ct = new Classification { State = CtState.Established, Direction = CtDirection.Original, Rescued = true, TcpState = TcpState.FinWait };

        string line = RescueLog.Format(ct, facts, new char[LogFormatter.MaxLineLength]);

        Assert.StartsWith("ctfw: rescued FIN: ESTABLISHED ORIGINAL, tcp NONE->FIN_WAIT: ", line, StringComparison.Ordinal);
        Assert.Contains("SPT=40001 DPT=8088 SEQ=5000 ACK=9000", line, StringComparison.Ordinal);
    }
}
