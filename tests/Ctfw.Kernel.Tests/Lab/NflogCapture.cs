using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Ctfw.Lab.Traffic;

namespace Ctfw.Kernel.Tests.Lab;

/// <summary>
/// <c>tcpdump -i nflog:&lt;group&gt; -U -w file</c> running inside a namespace. With <c>-U</c> every
/// record reaches the file as soon as the kernel hands it over, so the file's record count tells
/// when the gateway has pushed a packet through FORWARD (where the NFLOG rules sit). tcpdump runs
/// under <c>timeout</c>, so a capture orphaned by a crashed test still ends by itself.
/// </summary>
public sealed class NflogCapture : IDisposable
{
    private const int PcapHeaderLength = 24;
    private const int RecordHeaderLength = 16;
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(10);

    private readonly ChildProcess _process;
    private bool _stopped;

    public string Path { get; }

    private NflogCapture(ChildProcess process, string path)
    {
        _process = process;
        Path = path;
    }

    /// <summary>Starts tcpdump and returns once it reports that it is listening (the NFLOG group is bound).</summary>
    public static NflogCapture Start(string netns, int group, string path, TimeSpan maxLifetime)
    {
        var process = ChildProcess.StartIn(netns, "tcpdump", ["timeout", "-s", "TERM", ((int)maxLifetime.TotalSeconds).ToString(CultureInfo.InvariantCulture),
            "tcpdump", "-i", $"nflog:{group}", "-U", "-n", "-w", path]);
        var capture = new NflogCapture(process, path);
        if (!process.WaitForLine(OutputStream.StdErr, "listening on", s_startTimeout))
        {
            string err = capture.StdErr;
            capture.Dispose();
            throw new InvalidOperationException($"tcpdump on nflog:{group} in {netns} did not start listening: {err}");
        }
        return capture;
    }

    public string StdErr => _process.StdErr;

    /// <summary>Complete records currently in the file (a record being written is not counted).</summary>
    public int CountRecords()
    {
        byte[] data;
        try
        {
            using var f = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            data = new byte[f.Length];
            f.ReadExactly(data);
        }
        catch (FileNotFoundException)
        {
            return 0;
        }
        if (data.Length < PcapHeaderLength)
            return 0;
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(data);
        bool little = magic is 0xA1B2C3D4 or 0xA1B23C4D;
        int count = 0;
        int offset = PcapHeaderLength;
        while (offset + RecordHeaderLength <= data.Length)
        {
            ReadOnlySpan<byte> lenField = data.AsSpan(offset + 8, 4);
            long caplen = little ? BinaryPrimitives.ReadUInt32LittleEndian(lenField) : BinaryPrimitives.ReadUInt32BigEndian(lenField);
            if (offset + RecordHeaderLength + caplen > data.Length)
                break;
            offset += RecordHeaderLength + (int)caplen;
            count++;
        }
        return count;
    }

    /// <summary>Waits until the file holds at least <paramref name="count"/> records; false on timeout.</summary>
    public bool WaitForRecords(int count, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (CountRecords() < count)
        {
            if (watch.Elapsed > timeout || _process.HasExited)
                return false;
            Thread.Sleep(1);
        }
        return true;
    }

    /// <summary>Stops tcpdump with SIGTERM (forwarded by <c>timeout</c>) so it flushes and closes the file.</summary>
    public void Stop()
    {
        if (_stopped)
            return;
        _stopped = true;
        _process.Stop(ChildProcess.SigTerm, TimeSpan.FromSeconds(5));
    }

    public void Dispose()
    {
        Stop();
        _process.Dispose();
    }
}
