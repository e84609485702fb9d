using CsCheck;
using Ctfw.Capture;

namespace Ctfw.Capture.Tests;

/// <summary>
/// Property tests (CsCheck): on any bytes the reader returns records and then stops, cleanly or
/// with a <see cref="CaptureError"/>; it never throws. Seeds are the built sample captures (pcap, and
/// pcapng with several interfaces and block types) mutated at random offsets and cut anywhere;
/// CsCheck shrinks a failure. Each run draws new inputs; a failure prints the seed that reproduces it.
/// </summary>
public class CaptureReaderPropertyTests
{
    private const int Iterations = 3_000;

    private static readonly byte[][] s_seeds =
    [
        SampleCaptures.RichPcapng().File.ToArray(),
        SampleCaptures.SmallPcap().File.ToArray(),
    ];

    private static readonly Gen<byte[]> s_mutated =
        Gen.Select(
            Gen.Int[0, s_seeds.Length - 1],
            Gen.Select(Gen.Int[0, 1 << 20], Gen.Byte).Array[1, 8],
            Gen.Int[0, 1 << 20],
            Gen.Bool,
            (seed, edits, cut, truncate) =>
            {
                byte[] file = (byte[])s_seeds[seed].Clone();
                foreach ((int at, byte value) in edits)
                    file[at % file.Length] = value;
                return truncate ? file[..(cut % (file.Length + 1))] : file;
            });

    [Fact]
    public void Read_ArbitraryBytes_StopsWithoutThrowing() =>
        Gen.Byte.Array[0, 512].Sample(ReadAll, iter: Iterations, threads: 1);

    [Fact]
    public void Read_ArbitraryBytesAfterAValidMagic_StopsWithoutThrowing() =>
        Gen.Select(
                Gen.OneOf<byte[]>([0xa1, 0xb2, 0xc3, 0xd4], [0xd4, 0xc3, 0xb2, 0xa1], [0x4d, 0x3c, 0xb2, 0xa1], [0x0a, 0x0d, 0x0d, 0x0a]),
                Gen.Byte.Array[0, 512],
                (magic, rest) => (byte[])[.. magic, .. rest])
            .Sample(ReadAll, iter: Iterations, threads: 1);

    [Fact]
    public void Read_MutatedCaptures_StopsWithoutThrowing() =>
        s_mutated.Sample(ReadAll, iter: Iterations, threads: 1);

    [Fact]
    public void Read_UnmutatedSeeds_ReadCleanly()
    {
        foreach (byte[] seed in s_seeds)
        {
            using var reader = new CaptureReader(new MemoryStream(seed));
            int records = 0;
            while (reader.TryRead(out _))
                records++;
            Assert.Null(reader.Error);
            Assert.True(records > 0);
        }
    }

    private static void ReadAll(byte[] file)
    {
        using var reader = new CaptureReader(new MemoryStream(file));
        long last = -1;
        while (reader.TryRead(out CaptureRecord record))
        {
            Assert.True(record.Index > last, "record indexes must increase");
            last = record.Index;
            Assert.InRange(record.CapturedLength, 0, CaptureReader.MaxRecordLength);
            Assert.InRange(record.Offset, 0, file.Length);
        }
        if (reader.Error is { } error)
        {
            Assert.True(Enum.IsDefined(error.Kind), $"undefined error kind {error.Kind}");
            Assert.InRange(error.Offset, 0, file.Length);
            Assert.False(string.IsNullOrEmpty(error.Message));
        }
        // Reading on after the end stays ended.
        Assert.False(reader.TryRead(out _));
    }
}
