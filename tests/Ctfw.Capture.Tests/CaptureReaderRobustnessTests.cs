using System.Buffers.Binary;
using static Ctfw.Capture.Tests.CaptureReading;

namespace Ctfw.Capture.Tests;

public class CaptureReaderRobustnessTests
{
    [Fact]
    public void Read_EveryPrefixOfPcapng_ReadsCompleteBlocksThenReportsTruncationAtCutBlock()
    {
        var (file, expected) = SampleCaptures.RichPcapng();
        byte[] bytes = file.ToArray();
        var blocks = file.Blocks;

        for (int length = 0; length <= bytes.Length; length++)
        {
            var (records, error) = Read(bytes[..length], segmentSize: length % 2 == 0 ? 16 : 4096);

            int complete = blocks.Count(b => b.IsPacket && b.End <= length);
            Assert.Equal(expected.Take(complete), records, RecEquality.Instance);
            if (blocks.Any(b => b.End == length))
            {
                Assert.Null(error);
            }
            else
            {
                Assert.NotNull(error);
                Assert.Equal(CaptureErrorKind.Truncated, error.Kind);
                Assert.Equal(blocks.Last(b => b.Start <= length).Start, error.Offset);
            }
        }
    }

    [Fact]
    public void Read_EveryPrefixOfPcap_ReadsCompleteRecordsThenReportsTruncationAtCutRecord()
    {
        var (file, expected) = SampleCaptures.SmallPcap();
        byte[] bytes = file.ToArray();
        int[] starts = [0, .. file.RecordStarts];  // the file header, then each record
        int[] ends = [.. file.RecordStarts.Skip(1), bytes.Length];

        for (int length = 0; length <= bytes.Length; length++)
        {
            var (records, error) = Read(bytes[..length], segmentSize: length % 2 == 0 ? 16 : 4096);

            Assert.Equal(expected.Take(ends.Count(e => e <= length)), records, RecEquality.Instance);
            if (length == bytes.Length || file.RecordStarts.Contains(length))
            {
                Assert.Null(error);
            }
            else
            {
                Assert.NotNull(error);
                Assert.Equal((CaptureErrorKind.Truncated, (long)(length == 0 ? 0 : starts.Last(s => s < length))),
                    (error.Kind, error.Offset));
            }
        }
    }

    [Fact]
    public async Task Read_RandomMutations_NeverThrowNorHangAndStopAfterLastRecord()
    {
        byte[][] seeds = [SampleCaptures.RichPcapng().File.ToArray(), SampleCaptures.SmallPcap().File.ToArray()];
        var random = new Random(20251122);

        // A hang surfaces as a TimeoutException instead of a stuck test run.
        await Task.Run(() =>
        {
            for (int i = 0; i < 5000; i++)
            {
                byte[] file = Mutate(seeds[i % seeds.Length], random);
                var (records, error) = Read(file, segmentSize: random.Next(2) == 0 ? 16 : 4096);

                for (int k = 0; k < records.Count; k++)
                {
                    Assert.Equal(k, records[k].Index);
                    Assert.True(k == 0 || records[k].Offset > records[k - 1].Offset);
                    Assert.True(records[k].Offset + records[k].CapturedLength < file.Length);
                }
                if (error is not null)
                {
                    Assert.InRange(error.Offset, records.Count == 0 ? 0 : records[^1].Offset + 1, file.Length);
                    Assert.False(string.IsNullOrEmpty(error.Message));
                }
            }
        }).WaitAsync(TimeSpan.FromMinutes(2));
    }

    private static byte[] Mutate(byte[] seed, Random random)
    {
        var file = new List<byte>(seed);
        for (int n = random.Next(1, 4); n > 0 && file.Count > 4; n--)
        {
            int at = random.Next(file.Count - 4);
            switch (random.Next(4))
            {
                case 0:
                    file[at] ^= (byte)random.Next(1, 256);
                    break;
                case 1:
                    // Lengths and ids are where parsers break: write plausible and absurd ones.
                    uint[] interesting = [0, 1, 4, 8, 12, 13, 0x7FFFFFFF, 0xFFFFFFFF, CaptureReader.MaxRecordLength, CaptureReader.MaxRecordLength + 1, CaptureReader.MaxBlockLength, 0x0A0D0D0A, (uint)file.Count];
                    byte[] word = new byte[4];
                    BinaryPrimitives.WriteUInt32LittleEndian(word, interesting[random.Next(interesting.Length)]);
                    if (random.Next(2) == 0)
                        Array.Reverse(word);
                    for (int j = 0; j < 4; j++)
                        file[(at & ~3) + j] = word[j];
                    break;
                case 2:
                    file.RemoveRange(at, Math.Min(random.Next(1, 40), file.Count - at));
                    break;
                default:
                    file.InsertRange(at, file.GetRange(random.Next(file.Count - 8), 8));
                    break;
            }
        }
        return random.Next(5) == 0 ? [.. file.Take(random.Next(file.Count))] : [.. file];
    }
}
