using System.IO.Pipelines;

namespace Ctfw.Capture.Tests;

/// <summary>A record copied out of the reader, to compare after the reader has moved on.</summary>
internal sealed record Rec(long Index, long Offset, int InterfaceId, int LinkType, long Timestamp,
    int CapturedLength, long OriginalLength, byte[] Frame);

internal static class CaptureReading
{
    /// <summary>Reads a whole capture through a pipe of <paramref name="segmentSize"/>-byte segments.</summary>
    public static (List<Rec> Records, CaptureError? Error) Read(byte[] file, int segmentSize = 4096) =>
        Read(new MemoryStream(file), segmentSize);

    public static (List<Rec> Records, CaptureError? Error) Read(Stream stream, int segmentSize)
    {
        var pipe = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: segmentSize, minimumReadSize: segmentSize));
        using var reader = new CaptureReader(pipe);
        var records = new List<Rec>();
        while (reader.TryRead(out CaptureRecord r))
        {
            Assert.Equal(r.Frame.Length, r.CapturedLength);
            records.Add(new Rec(r.Index, r.Offset, r.InterfaceId, r.LinkType, r.TimestampNanoseconds,
                r.CapturedLength, r.OriginalLength, r.Frame.ToArray()));
        }
        Assert.False(reader.TryRead(out _));  // stays stopped
        return (records, reader.Error);
    }

    public static byte[] Frame(int length, byte seed) =>
        Enumerable.Range(0, length).Select(i => (byte)(seed + i * 7)).ToArray();
}
