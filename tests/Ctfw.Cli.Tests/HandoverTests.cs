using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Linux.Nfqueue;
using Ctfw.Rules;

namespace Ctfw.Cli.Tests;

/// <summary>The takeover's wire pieces: the offer line and the chunked state stream.</summary>
public sealed class HandoverTests
{
    private static HandoverOffer Offer(bool failClosed = false, uint maxLength = 4096) => new(
        4242, 15, 16, failClosed, 65531, maxLength, false, "ctfw:4242:99", 123456789,
        [new NfqueueKernelCounters(15, 0, 3, 0, 0, 1, 2, 1000), null]);

    [Fact]
    public void Offer_EncodeParse_RoundTrips()
    {
        HandoverOffer? parsed = HandoverOffer.Parse(Offer().Encode(), out string? error);

        Assert.Null(error);
        Assert.NotNull(parsed);
        Assert.Equal(4242, parsed.Pid);
        Assert.Equal((ushort)15, parsed.QueueFirst);
        Assert.Equal((ushort)16, parsed.QueueLast);
        Assert.False(parsed.FailClosed);
        Assert.Equal(65531u, parsed.CopyRange);
        Assert.Equal(4096u, parsed.MaxLength);
        Assert.False(parsed.QueueFullAccept);
        Assert.Equal("ctfw:4242:99", parsed.IptablesTag);
        Assert.Equal(123456789, parsed.PausedTimestamp);
        Assert.Equal(new NfqueueKernelCounters(15, 0, 3, 0, 0, 1, 2, 1000), parsed.Counters[0]);
        Assert.Null(parsed.Counters[1]);
    }

    [Theory]
    [InlineData("error: a takeover is already under way", "a takeover is already under way")]
    [InlineData("ok\tpid=1", "lacks fields")]
    [InlineData("hello", "unexpected answer")]
    public void Offer_NotAnOffer_SaysWhy(string line, string expected)
    {
        Assert.Null(HandoverOffer.Parse(line, out string? error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Offer_NoIptablesRules_TagIsNull()
    {
        HandoverOffer offer = Offer() with { IptablesTag = null };
        Assert.Null(HandoverOffer.Parse(offer.Encode(), out _)!.IptablesTag);
    }

    [Fact]
    public void Offer_FromACtfwBeforeQueueFull_WasFailOpenOnAFullQueue()
    {
        string line = Offer().Encode().Replace("\tqueue_full=drop", "", StringComparison.Ordinal);
        Assert.DoesNotContain("queue_full", line, StringComparison.Ordinal);

        HandoverOffer? parsed = HandoverOffer.Parse(line, out string? error);

        Assert.Null(error);
        Assert.True(parsed!.QueueFullAccept);
        Assert.Contains("--queue-full accept there, drop here", parsed.Mismatch(Options(15, 16), 65531), StringComparison.Ordinal);
    }

    private static DaemonOptions Options(ushort first, ushort last, bool failClosed = false, uint maxLength = 4096)
    {
        Assert.True(Ruleset.TryLoad("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "t.rules", out Ruleset? rules, out _));
        return new(rules!, new ConntrackSettings(), first, last, [], failClosed, 0xFFFF) { QueueMaxLength = maxLength };
    }

    [Fact]
    public void Mismatch_SameQueuesAndSettings_None()
    {
        Assert.Null(Offer().Mismatch(Options(15, 16), 65531));
    }

    [Fact]
    public void Mismatch_DifferentQueuesFailClosedAndLength_NamesEach()
    {
        string? why = Offer().Mismatch(Options(15, 15, failClosed: true, maxLength: 100), 65531);

        Assert.NotNull(why);
        Assert.Contains("queues 15-16 there, 15-15 here", why, StringComparison.Ordinal);
        Assert.Contains("--fail-closed off there, on here", why, StringComparison.Ordinal);
        Assert.Contains("--queue-maxlen 4096 there, 100 here", why, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(65535)]
    [InlineData(65536)]
    [InlineData(300_001)]
    public void ChunkedStreams_AnySize_RoundTripAndEndAtTheMarker(int size)
    {
        byte[] data = new byte[size];
        new Random(size).NextBytes(data);
        using var wire = new MemoryStream();
        var writer = new ChunkedWriteStream(wire, chunkBytes: 1000);
        writer.Write(data.AsSpan(0, size / 2));
        writer.Write(data.AsSpan(size / 2));
        writer.Complete();
        wire.WriteByte(0x7F); // what follows the state on the connection: must not be consumed

        wire.Position = 0;
        var reader = new ChunkedReadStream(wire);
        using var back = new MemoryStream();
        reader.CopyTo(back);

        Assert.Equal(data, back.ToArray());
        Assert.Equal(0x7F, wire.ReadByte());
    }

    [Fact]
    public void ChunkedRead_CutShort_ThrowsInsteadOfReturningAPartialState()
    {
        using var wire = new MemoryStream();
        var writer = new ChunkedWriteStream(wire, chunkBytes: 100);
        writer.Write(new byte[250]);
        writer.Complete();
        byte[] cut = wire.ToArray()[..150];

        var reader = new ChunkedReadStream(new MemoryStream(cut));
        Assert.ThrowsAny<IOException>(() => reader.CopyTo(Stream.Null));
    }

    [Fact]
    public void ChunkedRead_OversizedChunk_IsRefused()
    {
        var reader = new ChunkedReadStream(new MemoryStream([0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]));
        Assert.Throws<InvalidDataException>(() => reader.CopyTo(Stream.Null));
    }
}
