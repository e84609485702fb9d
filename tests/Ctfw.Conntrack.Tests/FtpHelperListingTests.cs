using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// What a helped session shows outside the tracker: `conntrack -L expect` lines, `helper=ftp` and the
/// master in `-L`/`-E` lines, `-F expect`, and the helper and master through a state file (version 2,
/// and a version 1 file still read).
/// </summary>
public partial class FtpHelperTests
{
    private const string Client = "10.99.1.2", Server = "10.99.2.2";

    /// <summary>PASV answered with 227 for port 50000: one expectation of the client's connection to it.</summary>
    private static FtpSession Passive(bool subscribe = false)
    {
        var s = new FtpSession();
        if (subscribe)
            s.H.Engine.Events.Subscribe();
        s.Open();
        s.Client("PASV\r\n");
        s.Server("227 Entering Passive Mode (10,99,2,2,195,80).\r\n");
        return s;
    }

    [Fact]
    public void ExpectListing_Passive227_IsConntrackToolsExpectLine()
    {
        using FtpSession s = Passive();
        ExpectationInfo x = Assert.Single(s.H.Engine.ListExpectations(s.H.Now));
        // libnetfilter_conntrack's expect snprintf over the kernel's dump of an FTP expectation.
        Assert.Equal($"300 proto=6 src={Client} dst={Server} sport=0 dport=50000 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 "
            + $"master-src={Client} master-dst={Server} sport=40000 dport=21 class=0 helper=ftp", ConntrackListing.FormatExpectation(x));
        s.H.Sleep(1.5);
        Assert.StartsWith("298 proto=6 ", ConntrackListing.FormatExpectation(Assert.Single(s.H.Engine.ListExpectations(s.H.Now))), StringComparison.Ordinal);
        Assert.Equal($$"""{"family":"ipv4","protocol":"tcp","protonum":6,"timeout":298,"timeout_ms":298500,"expected":{"src":"{{Client}}","dst":"{{Server}}","sport":0,"dport":50000},"master":{"src":"{{Client}}","dst":"{{Server}}","sport":40000,"dport":21},"class":0,"helper":"ftp","zone":0}""",
            ConntrackListing.FormatExpectationJson(Assert.Single(s.H.Engine.ListExpectations(s.H.Now))));
    }

    [Fact]
    public void ExpectListing_V6_MaskIsAllOnes()
    {
        using var s = new FtpSession(v6: true);
        s.Open();
        s.Client("EPSV\r\n");
        s.Server("229 Entering Extended Passive Mode (|||50001|)\r\n");
        string line = ConntrackListing.FormatExpectation(Assert.Single(s.H.Engine.ListExpectations(s.H.Now)));
        Assert.Contains(" mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff sport=0 dport=65535 master-src=", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Listing_MasterHasHelper_RelatedShowsMasterAtLineEnd()
    {
        using FtpSession s = Passive();
        s.DataSyn(fromServer: false, 41000, 50000);
        List<FlowInfo> flows = s.H.Engine.Snapshot(s.H.Now);
        FlowInfo control = flows.Single(f => f.Original.DstId == 21);
        FlowInfo data = flows.Single(f => f.Original.DstId == 50000);
        Assert.Equal(CtHelper.Ftp, control.Helper);
        Assert.Null(control.Master);
        Assert.EndsWith(" [ASSURED] mark=0 helper=ftp use=1", ConntrackListing.Format(control), StringComparison.Ordinal);
        Assert.Equal(CtHelper.None, data.Helper);
        Assert.Equal(control.Original, data.Master);
        Assert.EndsWith($" [UNREPLIED] src={Server} dst={Client} sport=50000 dport=41000 mark=0 use=1 master-src={Client} master-dst={Server} master-sport=40000 master-dport=21",
            ConntrackListing.Format(data), StringComparison.Ordinal);
        string json = ConntrackListing.FormatJson(data);
        Assert.Contains($"\"master\":{{\"src\":\"{Client}\",\"dst\":\"{Server}\",\"sport\":40000,\"dport\":21}}", json, StringComparison.Ordinal);
        Assert.Contains("\"helper\":\"ftp\"", ConntrackListing.FormatJson(control), StringComparison.Ordinal);
    }

    [Fact]
    public void Events_NewOfMasterCarriesHelper_NewOfRelatedCarriesMaster_DestroyNoHelper()
    {
        using FtpSession s = Passive(subscribe: true);
        s.DataSyn(fromServer: false, 41000, 50000);
        var events = new List<ConntrackEvent>();
        s.H.Engine.Events.TakeAll(events);
        ConntrackEvent controlNew = events.First(e => e.Kind == ConntrackEventKind.New && e.Flow.Original.DstId == 21);
        Assert.EndsWith(" sport=21 dport=40000 helper=ftp", ConntrackListing.FormatEvent(controlNew.Kind, controlNew.Flow, ListingOptions.None, false), StringComparison.Ordinal);
        ConntrackEvent dataNew = events.Single(e => e.Kind == ConntrackEventKind.New && e.Flow.Original.DstId == 50000);
        Assert.EndsWith(" master-dport=21", ConntrackListing.FormatEvent(dataNew.Kind, dataNew.Flow, ListingOptions.None, false), StringComparison.Ordinal);
        Assert.Equal(2, s.H.Engine.Flush(s.H.Now));
        events.Clear();
        s.H.Engine.Events.TakeAll(events);
        ConntrackEvent controlGone = events.Single(e => e.Kind == ConntrackEventKind.Destroy && e.Flow.Original.DstId == 21);
        Assert.DoesNotContain("helper=", ConntrackListing.FormatEvent(controlGone.Kind, controlGone.Flow, ListingOptions.None, true), StringComparison.Ordinal);
        s.H.Engine.Events.Unsubscribe();
    }

    [Fact]
    public void FlushExpectations_RemovesThem_DataConnectionThenNew()
    {
        using FtpSession s = Passive();
        Assert.Equal(1, s.H.Engine.FlushExpectations(s.H.Now));
        Assert.Empty(s.H.Engine.ListExpectations(s.H.Now));
        Assert.Equal(0, s.H.Engine.FlushExpectations(s.H.Now));
        New(s.DataSyn(fromServer: false, 41000, 50000));
        // The master keeps its helper: the next 227 is read again.
        s.Client("PASV\r\n");
        s.Server("227 Entering Passive Mode (10,99,2,2,195,81).\r\n");
        Related(s.DataSyn(fromServer: false, 41001, 50001));
    }

    [Fact]
    public void StateFile_HelperAndMaster_SurviveRoundTrip()
    {
        using FtpSession s = Passive();
        s.DataSyn(fromServer: false, 41000, 50000);
        using var restored = new Harness();
        Assert.True(restored.Engine.RestoreState(new MemoryStream(WriteState(s.H)), restored.Now, 0, out StateRestoreResult r), r.Message);
        Assert.Equal(2, r.Restored);
        List<FlowInfo> flows = restored.Engine.Snapshot(restored.Now);
        FlowInfo control = flows.Single(f => f.Original.DstId == 21);
        Assert.Equal(CtHelper.Ftp, control.Helper);
        Assert.Equal(control.Original, flows.Single(f => f.Original.DstId == 50000).Master);
        Assert.True((flows.Single(f => f.Original.DstId == 50000).Status & CtStatus.Expected) != 0);
        // The related entry still knows its master's helper (what `-m helper --helper ftp` matches).
        int data = restored.Engine.Table.Lookup(flows.Single(f => f.Original.DstId == 50000).Original, restored.Engine.Table.Hash(flows.Single(f => f.Original.DstId == 50000).Original), restored.Now, out _);
        Assert.Equal(CtHelper.Ftp, restored.Engine.Table.Helpers![data].MasterHelper);
    }

    [Fact]
    public void StateFile_Version1_StillRestored_WithoutHelpers()
    {
        using FtpSession s = Passive();
        s.DataSyn(fromServer: false, 41000, 50000);
        byte[] v1 = ToVersion1(WriteState(s.H));
        using var restored = new Harness();
        Assert.True(restored.Engine.RestoreState(new MemoryStream(v1), restored.Now, 0, out StateRestoreResult r), r.Message);
        Assert.Equal(2, r.Restored);
        Assert.All(restored.Engine.Snapshot(restored.Now), f => Assert.Equal((CtHelper.None, (ConnTuple?)null), (f.Helper, f.Master)));
    }

    private static byte[] WriteState(Harness h)
    {
        using var ms = new MemoryStream();
        h.Engine.WriteState(ms, h.Now, 0);
        return ms.ToArray();
    }

    /// <summary>The same file as version 1 wrote it: entry records cut to their first 136 bytes, checksums redone.</summary>
    private static byte[] ToVersion1(byte[] v2)
    {
        var output = new MemoryStream();
        byte[] header = v2[..StateFile.HeaderSize];
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(12), StateFile.EntrySizeV1);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(60), Crc32C.Compute(0, header.AsSpan(0, 60)));
        output.Write(header);
        int at = StateFile.HeaderSize;
        while (at < v2.Length)
        {
            uint kind = BinaryPrimitives.ReadUInt32LittleEndian(v2.AsSpan(at));
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(v2.AsSpan(at + 4));
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(v2.AsSpan(at + 8));
            byte[] payload = v2.AsSpan(at + StateFile.BlockHeaderSize, length).ToArray();
            if (kind == StateFile.KindEntries)
            {
                var cut = new MemoryStream();
                for (int i = 0; i < count; i++)
                    cut.Write(payload, i * StateFile.EntrySize, StateFile.EntrySizeV1);
                payload = cut.ToArray();
            }
            byte[] block = new byte[StateFile.BlockHeaderSize + payload.Length];
            payload.CopyTo(block, StateFile.BlockHeaderSize);
            StateFile.SealBlock(block, kind, count, payload.Length);
            output.Write(block);
            at += StateFile.BlockHeaderSize + length;
        }
        return output.ToArray();
    }
}
