using System.Globalization;
using System.Text;
using Ctfw.Capture;
using Ctfw.Kernel.Tests.Lab;
using Ctfw.Kernel.Tests.Recording;
using Xunit.Abstractions;

namespace Ctfw.Kernel.Tests;

/// <summary>
/// Privileged tier: real traffic through a gateway whose veths keep their offloads, captured by real
/// tcpdump with snap lengths 96 and 128; ctfw must classify every captured packet as the live
/// kernel did. With <c>CTFW_RECORD=1</c> the captures and the kernel's verdicts are written to
/// <c>tests/data/kernel/tcpdump</c> (the unprivileged tier replays them).
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(KernelDataCollection.Name)]
public sealed class SnaplenRecordingTests(ITestOutputHelper output)
{
    [Fact]
    public void TcpdumpSnaplenCaptures_RealTrafficThroughLiveKernel_CtfwAgreesOnEveryPacket()
    {
        string? why = Tool.WhyUnavailable();
        if (why is not null)
            Assert.Fail($"Privileged kernel tests cannot run: {why}.");

        SnaplenLab.RemoveLeftovers();
        string scratch = Path.Combine(Path.GetTempPath(), $"ctfw-snaplen-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            IReadOnlyList<(SnaplenCapture Capture, string Pcap, IReadOnlyList<SnaplenRow> Rows)> recorded;
            using (var lab = new SnaplenLab())
                recorded = new SnaplenRecorder(lab, scratch).Record();

            var diff = new StringBuilder();
            foreach ((SnaplenCapture capture, string pcap, IReadOnlyList<SnaplenRow> rows) in recorded)
            {
                List<(string State, string Dir, string Reason)> ours = SnaplenRecorder.Classify(pcap, ChecksumPolicy.Auto);
                (int cut, int padded) = Count(pcap);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{capture.Name}: {rows.Count} packets, {cut} cut by the snap length, {padded} with link-layer padding, {new FileInfo(pcap).Length} bytes"));
                // The traffic must have exercised what the captures are for.
                Assert.True(rows.Count >= 80, $"{capture.Name}: only {rows.Count} packets");
                Assert.True(cut >= 10, $"{capture.Name}: only {cut} records cut by the snap length");
                Assert.True(padded >= 4, $"{capture.Name}: only {padded} padded frames");
                Assert.Equal(rows.Count, ours.Count);
                for (int i = 0; i < rows.Count; i++)
                {
                    if (rows[i].CtState != ours[i].State || rows[i].Direction != ours[i].Dir)
                        diff.AppendLine(CultureInfo.InvariantCulture, $"{capture.Name} #{i + 1}: kernel {rows[i].CtState} {rows[i].Direction}, ctfw {ours[i].State} {ours[i].Dir} ({ours[i].Reason})");
                }
                if (KernelData.RecordMode)
                    Store(capture, pcap, rows);
            }
            Assert.True(diff.Length == 0, "ctfw replay disagrees with the live kernel on tcpdump captures:\n" + diff);
        }
        finally
        {
            if (Directory.Exists(scratch) && Environment.GetEnvironmentVariable("CTFW_KEEP_SCRATCH") != "1")
                Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>Records cut by the snap length, and records whose IP packet is followed by link-layer padding.</summary>
    internal static (int Cut, int Padded) Count(string pcap)
    {
        int cut = 0, padded = 0;
        using CaptureReader reader = CaptureReader.Open(pcap);
        while (reader.TryRead(out CaptureRecord record))
        {
            if (record.CapturedLength < record.OriginalLength)
                cut++;
            if (LinkLayer.TryGetNetworkPacket(record.LinkType, record.Frame, out ReadOnlySpan<byte> ip, out _)
                && CapturedDatagram.Get(record, ChecksumPolicy.Off, out CapturedDatagram datagram) == LinkResult.Ip
                && datagram.IsWhole && datagram.Packet.Length < ip.Length)
            {
                padded++;
            }
        }
        return (cut, padded);
    }

    private void Store(SnaplenCapture capture, string pcap, IReadOnlyList<SnaplenRow> rows)
    {
        string directory = Path.Combine(KernelData.Directory, "tcpdump");
        Directory.CreateDirectory(directory);
        File.Copy(pcap, Path.Combine(directory, capture.Name + ".pcap"), overwrite: true);
        File.WriteAllLines(Path.Combine(directory, capture.Name + ".tsv"), rows.Select(r => r.ToTsv()));
        output.WriteLine($"{capture.Name} written to {directory}");
    }
}
