using System.Net;
using System.Net.Sockets;
using Ctfw.Linux.Nftables;
using Ctfw.Packets;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// What issue 15's offload manager builds on, against the real kernel: a table owned by its socket
/// (refused to other sockets, gone when the socket closes), flushing a set in a batch, looking
/// elements up by key (found, missing, expired, no such set), and the bypass rule that ORs the
/// offload bit into the mark.
/// </summary>
public sealed partial class NftablesLiveTests
{
    [Fact]
    public void OwnedTable_OtherSocketsMayReadNotChange_ClosingTheOwnerDeletesIt()
    {
        using var lab = new NetnsLab();
        NftFlowKey key = Key("10.0.0.1", "10.0.0.2", 1, 2);
        NftablesSocket owner = InB(lab, () => NftablesSocket.Open());
        NftablesSocket other = InB(lab, () => NftablesSocket.Open());
        try
        {
            NftBatch batch = owner.CreateBatch();
            batch.AddTable("ctfw", owner: true);
            batch.AddSet(Set4);
            batch.AddElements(Set4, [new NftElement(key)]);
            Assert.True(Commit(owner, batch).Committed);
            string listed = Tool.RunIn(lab.B, "nft", "list", "table", "inet", "ctfw");
            output.WriteLine(listed);
            Assert.Contains("flags owner", listed, StringComparison.Ordinal);

            // Another socket: changes refused, each with EPERM; reads allowed.
            NftBatch foreign = other.CreateBatch();
            foreign.DeleteTable("ctfw");
            NftBatchResult destroy = Commit(other, foreign);
            foreign.Clear();
            foreign.AddElements(Set4, [new NftElement(Key("10.0.0.1", "10.0.0.2", 3, 4))]);
            NftBatchResult add = Commit(other, foreign);
            foreign.Clear();
            foreign.AddTable("ctfw");
            NftBatchResult recreate = Commit(other, foreign);
            Assert.Equal(Errno.EPERM, Assert.Single(destroy.Errors).Error);
            Assert.Equal(Errno.EPERM, Assert.Single(add.Errors).Error);
            Assert.Equal(Errno.EPERM, Assert.Single(recreate.Errors).Error);
            Assert.Equal([key], other.DumpElements(Set4).Elements.Select(e => e.Key));
            Assert.Equal([key], other.GetElements(Set4, [key]).Found.Select(e => e.Key));
            ToolResult nftDelete = Tool.Run(checkExit: false, Tool.InNetns(lab.B, "nft", "delete", "table", "inet", "ctfw"));
            output.WriteLine($"nft delete table from another process: {nftDelete}");
            Assert.NotEqual(0, nftDelete.ExitCode);
            Assert.Contains("Operation not permitted", nftDelete.StdErr, StringComparison.Ordinal);

            // The owner closes (as a crash would): the kernel deletes the table with its set, within
            // close(2) itself (the netlink release notifier), so the very next request finds nothing.
            owner.Dispose();
            Assert.Equal(Errno.ENOENT, other.DumpElements(Set4).Error);
            Assert.Equal("", Tool.RunIn(lab.B, "nft", "list", "tables").Trim());

            // The next start takes the name over: its own owned table.
            foreign.Clear();
            foreign.AddTable("ctfw", owner: true);
            Assert.True(Commit(other, foreign).Committed);

            // An unowned table of that name (e.g. left by `nft -f`) cannot be made owned (EOPNOTSUPP),
            // but replaced in one transaction: destroy, then create owned.
            Tool.RunIn(lab.B, "nft", "add", "table", "inet", "left");
            foreign.Clear();
            foreign.AddTable("left", owner: true);
            Assert.Equal(Errno.EOPNOTSUPP, Assert.Single(Commit(other, foreign).Errors).Error);
            foreign.Clear();
            foreign.DeleteTable("left");
            foreign.AddTable("left", owner: true);
            Assert.True(Commit(other, foreign).Committed);
            Assert.Contains("flags owner", Tool.RunIn(lab.B, "nft", "list", "table", "inet", "left"), StringComparison.Ordinal);
        }
        finally
        {
            owner.Dispose();
            other.Dispose();
        }
        Assert.Equal("", Tool.RunIn(lab.B, "nft", "list", "tables").Trim()); // and it went with its socket
    }

    [Fact]
    public void FlushSet_InABatch_EmptiesTheSet_MissingSetIsEnoent()
    {
        using var lab = new NetnsLab();
        var missing = new NftFlowSet("ctfw", "nosuch", isV6: false, TimeSpan.FromSeconds(5));
        (NftBatchResult filled, int before, NftBatchResult flushed, NftSetDumpResult after, NftBatchResult refused, NftSetDumpResult afterAddThenFlush) = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddSet(Set6);
            batch.AddElements(Set4, Many(600));
            batch.AddElements(Set6, [new NftElement(Key("fd00::1", "fd00::2", 1, 2))]);
            NftBatchResult a = Commit(nft, batch);
            int count = nft.DumpElements(Set4).Elements.Count;
            batch.Clear();
            batch.FlushSet(Set4);
            NftBatchResult b = Commit(nft, batch);
            NftSetDumpResult dump = nft.DumpElements(Set4);
            batch.Clear();
            batch.FlushSet(missing);
            NftBatchResult c = Commit(nft, batch);
            batch.Clear();
            batch.AddElements(Set4, Many(10));
            batch.FlushSet(Set4); // later in the same transaction: sees the adds
            Assert.True(Commit(nft, batch).Committed);
            return (a, count, b, dump, c, nft.DumpElements(Set4));
        });
        Assert.True(filled.Committed, filled.Message);
        Assert.Equal(600, before);
        Assert.True(flushed.Committed, flushed.Message);
        Assert.Equal((Errno.None, 0), (after.Error, after.Elements.Count));
        Assert.Equal((NftOperationKind.FlushSet, Errno.ENOENT), (Assert.Single(refused.Errors).Operation.Kind, refused.Errors[0].Error));
        Assert.Empty(afterAddThenFlush.Elements);
        string set6 = Tool.RunIn(lab.B, "nft", "list", "set", "inet", "ctfw", "flows6");
        Assert.Contains("fd00::1 . fd00::2 . 1 . 2", set6, StringComparison.Ordinal); // the other set untouched
    }

    [Fact]
    public void GetElements_PresentMissingExpired_InKeyOrder_ThenANoSuchSet()
    {
        using var lab = new NetnsLab();
        NftElement[] present = Many(600);
        NftFlowKey expiring = Key("10.9.0.1", "10.9.0.2", 7, 8);
        NftFlowKey gone1 = Key("10.8.0.1", "10.8.0.2", 1, 2), gone2 = Key("10.8.0.1", "10.8.0.2", 3, 4);
        NftFlowKey v6 = Key("fd00::1", "fd00::2", 40000, 443);
        var noSet = new NftFlowSet("ctfw", "nosuch", isV6: false, TimeSpan.FromSeconds(5));
        (NftGetElementsResult mixed, NftGetElementsResult all, NftGetElementsResult six, NftGetElementsResult none, NftGetElementsResult absent) = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddSet(Set6);
            batch.AddElements(Set4, present);
            batch.AddElements(Set4, [new NftElement(expiring, TimeSpan.FromSeconds(1))]);
            batch.AddElements(Set6, [new NftElement(v6, TimeSpan.FromSeconds(90))]);
            Assert.True(Commit(nft, batch).Committed);
            Thread.Sleep(1300); // `expiring` times out; the set's garbage collection may not have run yet
            NftFlowKey[] keys = [present[0].Key, gone1, present[1].Key, expiring, gone2, present[2].Key];
            NftGetElementsResult a = nft.GetElements(Set4, keys);
            NftGetElementsResult b = nft.GetElements(Set4, [.. present.Select(e => e.Key)]);
            NftGetElementsResult c = nft.GetElements(Set6, [v6]);
            NftGetElementsResult d = nft.GetElements(noSet, [gone1, gone2]);
            // The worst case: no key present, one request per key.
            return (a, b, c, d, nft.GetElements(Set4, [.. Many(500, firstPort: 20_000).Select(e => e.Key)]));
        });

        foreach (NftGetElementsResult r in (NftGetElementsResult[])[mixed, all, six, none, absent])
            output.WriteLine($"{r.Found.Count} found, {r.Missing.Count} missing, error {r.Error}, {r.Requests} requests, {r.Elapsed.TotalMilliseconds:0.0} ms");
        Assert.Equal(Errno.None, mixed.Error);
        Assert.Equal([present[0].Key, present[1].Key, present[2].Key], mixed.Found.Select(e => e.Key));
        Assert.Equal([gone1, expiring, gone2], mixed.Missing);
        Assert.Equal(4, mixed.Requests); // the kernel stops at each missing key: 0-1, 2-3, 4, 5
        NftElementState first = mixed.Found[0];
        Assert.Equal(TimeSpan.FromSeconds(60), first.Timeout);
        Assert.InRange(first.Expiration, TimeSpan.FromSeconds(55), TimeSpan.FromSeconds(60));
        Assert.True(first.HasCounter);

        Assert.Equal((Errno.None, 600, 0, 3), (all.Error, all.Found.Count, all.Missing.Count, all.Requests)); // 256 + 256 + 88
        Assert.Equal(present.Select(e => e.Key), all.Found.Select(e => e.Key));

        NftElementState got6 = Assert.Single(six.Found);
        Assert.Equal((v6, TimeSpan.FromSeconds(90)), (got6.Key, got6.Timeout));

        Assert.Equal((Errno.ENOENT, 0, 0), (none.Error, none.Found.Count, none.Missing.Count)); // the set, not the keys
        Assert.Equal((Errno.None, 0, 500, 500), (absent.Error, absent.Found.Count, absent.Missing.Count, absent.Requests));
    }

    [Fact]
    public void FlowRule_MarkOr_ListedAsNftPrintsIt_SetsTheBitAndKeepsTheOthers()
    {
        using var lab = new NetnsLab();
        const ushort SourcePort = 40125, DestinationPort = 5003;
        const int Datagrams = 15, Payload = 40;
        const uint Offload = 0x40000000, Earlier = 0x00000005;
        var key = new NftFlowKey(IpAddress.FromV4(ToHostOrder(lab.AddressA4)), IpAddress.FromV4(ToHostOrder(lab.AddressB4)), SourcePort, DestinationPort, false);
        NftBatchResult setUp = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddBaseChain("ctfw", "bypass", Nftables.Nftables.HookInput, -10);
            batch.AddFlowRule(Set4, "bypass", protocol: 17, refresh: true, Offload, NftMarkMode.Or);
            batch.AddElements(Set4, [new NftElement(key, TimeSpan.FromSeconds(20))]);
            return Commit(nft, batch);
        });
        Assert.True(setUp.Committed, setUp.Message);
        string chain = Tool.RunIn(lab.B, "nft", "list", "chain", "inet", "ctfw", "bypass");
        output.WriteLine(chain);
        Assert.Contains("ip saddr . ip daddr . udp sport . udp dport @flows4 update @flows4 { ip saddr . ip daddr . udp sport . udp dport } meta mark set meta mark | 0x40000000\n", chain, StringComparison.Ordinal);
        // Someone's mark bits before the bypass chain, and an observer after it.
        Tool.RunIn(lab.B, "nft", "add", "chain", "inet", "ctfw", "before", "{", "type", "filter", "hook", "input", "priority", "-20", ";", "}");
        Tool.RunIn(lab.B, "nft", "add", "rule", "inet", "ctfw", "before", "meta", "mark", "set", "0x5");
        Tool.RunIn(lab.B, "nft", "add", "chain", "inet", "ctfw", "observe", "{", "type", "filter", "hook", "input", "priority", "0", ";", "}");
        Tool.RunIn(lab.B, "nft", "add", "rule", "inet", "ctfw", "observe", "udp", "dport", $"{DestinationPort}", "meta", "mark", $"0x{Offload | Earlier:x8}", "counter");
        Tool.RunIn(lab.B, "nft", "add", "rule", "inet", "ctfw", "observe", "udp", "dport", $"{DestinationPort}", "meta", "mark", $"0x{Earlier:x8}", "counter");

        using Socket receiver = lab.Udp(lab.B, v6: false, bindPort: DestinationPort);
        using Socket sender = lab.Udp(lab.A, v6: false, bindPort: SourcePort);
        using Socket other = lab.Udp(lab.A, v6: false, bindPort: SourcePort + 1); // not in the set: keeps 0x5 only
        for (int i = 0; i < Datagrams; i++)
        {
            sender.SendTo(new byte[Payload], new IPEndPoint(lab.AddressB4, DestinationPort));
            other.SendTo(new byte[Payload], new IPEndPoint(lab.AddressB4, DestinationPort));
        }
        Assert.Equal(2 * Datagrams, NetnsLab.Drain(receiver, 2 * Datagrams).Count);

        string observed = Tool.RunIn(lab.B, "nft", "list", "chain", "inet", "ctfw", "observe");
        output.WriteLine(observed);
        Assert.Contains($"meta mark 0x40000005 counter packets {Datagrams} bytes", observed, StringComparison.Ordinal);
        Assert.Contains($"meta mark 0x00000005 counter packets {Datagrams} bytes", observed, StringComparison.Ordinal);
    }
}
