using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Ctfw.Linux.Nftables;
using Ctfw.Packets;
using Xunit.Abstractions;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// The nf_tables client against the real kernel, inside a throwaway namespace (B of a
/// <see cref="NetnsLab"/>, deleted with it), with <c>nft list</c> as the oracle: table, sets and chain
/// as nft shows them, elements with their keys and timeouts, errors mapped to the operation that
/// caused them with nothing of the batch applied, idempotent deletes, counters and expirations read
/// back after real packets went through an nft <c>update @set</c> rule, a 1 000-element batch, and the
/// add rate for batches of 1, 64 and 1 000 elements (printed, not asserted).
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class NftablesLiveTests(ITestOutputHelper output)
{
    private static readonly NftFlowSet Set4 = new("ctfw", "flows4", isV6: false, TimeSpan.FromSeconds(30));
    private static readonly NftFlowSet Big4 = new("ctfw", "flows4", isV6: false, TimeSpan.FromSeconds(30)) { MaxElements = 1 << 20 };
    private static readonly NftFlowSet Set6 = new("ctfw", "flows6", isV6: true, TimeSpan.FromSeconds(30));

    private static T InB<T>(NetnsLab lab, Func<T> action) => NetworkNamespace.Run(NetworkNamespace.PathOf(lab.B), action);

    private static NftFlowKey Key(string src, string dst, ushort sport, ushort dport)
    {
        Assert.True(IpAddress.TryParse(src, out IpAddress s, out bool v6));
        Assert.True(IpAddress.TryParse(dst, out IpAddress d, out _));
        return new NftFlowKey(s, d, sport, dport, v6);
    }

    private static NftElement[] Many(int count, ushort firstPort = 1, TimeSpan? timeout = null) =>
        [.. Enumerable.Range(0, count).Select(i => new NftElement(
            new NftFlowKey(IpAddress.FromV4(0x0A000000u + (uint)(i >> 16)), IpAddress.FromV4(0x0A010001), (ushort)(firstPort + (i & 0xFFFF)), 80, false),
            timeout ?? TimeSpan.FromSeconds(60)))];

    private NftBatchResult Commit(NftablesSocket nft, NftBatch batch)
    {
        NftBatchResult result = nft.Commit(batch);
        output.WriteLine(result.Message);
        return result;
    }

    [Fact]
    public void TableSetsChainElements_AsNftListsThem_DumpReadsKeysTimeoutsExpirations()
    {
        using var lab = new NetnsLab();
        NftElement e4 = new(Key("10.0.0.1", "10.0.0.2", 1234, 80), TimeSpan.FromSeconds(60));
        NftElement d4 = new(Key("10.0.0.2", "10.0.0.1", 80, 1234)); // the set's default timeout
        NftElement e6 = new(Key("fd00::1", "fd00::2", 40000, 443), TimeSpan.FromSeconds(90));

        (NftBatchResult result, NftSetDumpResult dump4, NftSetDumpResult dump6) = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            Assert.True(batch.AddTable("ctfw"));
            Assert.True(batch.AddSet(Set4));
            Assert.True(batch.AddSet(Set6));
            Assert.True(batch.AddBaseChain("ctfw", "bypass", Nftables.Nftables.HookForward, -10));
            Assert.Equal(2, batch.AddElements(Set4, [e4, d4]));
            Assert.Equal(1, batch.AddElements(Set6, [e6]));
            return (Commit(nft, batch), nft.DumpElements(Set4), nft.DumpElements(Set6));
        });

        Assert.True(result.Committed, result.Message);
        Assert.Equal(6, result.Operations);
        string set4 = Tool.RunIn(lab.B, "nft", "list", "set", "inet", "ctfw", "flows4");
        string set6 = Tool.RunIn(lab.B, "nft", "list", "set", "inet", "ctfw", "flows6");
        string chain = Tool.RunIn(lab.B, "nft", "list", "chain", "inet", "ctfw", "bypass");
        output.WriteLine(set4 + set6 + chain);
        Assert.Contains("type ipv4_addr . ipv4_addr . inet_service . inet_service", set4, StringComparison.Ordinal);
        Assert.Contains("type ipv6_addr . ipv6_addr . inet_service . inet_service", set6, StringComparison.Ordinal);
        Assert.Contains("flags dynamic,timeout", set4, StringComparison.Ordinal);
        Assert.Contains("timeout 30s", set4, StringComparison.Ordinal);
        Assert.Matches(@"\n\s*counter\n", set4);
        Assert.Contains("10.0.0.1 . 10.0.0.2 . 1234 . 80 counter packets 0 bytes 0 timeout 1m expires", set4, StringComparison.Ordinal);
        Assert.Contains("10.0.0.2 . 10.0.0.1 . 80 . 1234 counter packets 0 bytes 0 expires", set4, StringComparison.Ordinal);
        Assert.Contains("fd00::1 . fd00::2 . 40000 . 443 counter packets 0 bytes 0 timeout 1m30s expires", set6, StringComparison.Ordinal);
        Assert.Contains("type filter hook forward priority filter - 10; policy accept;", chain, StringComparison.Ordinal);

        Assert.Equal((Errno.None, 0, false), (dump4.Error, dump4.Unparsed, dump4.Interrupted));
        Assert.Equal(2, dump4.Elements.Count);
        NftElementState got4 = Assert.Single(dump4.Elements, e => e.Key == e4.Key);
        Assert.Equal(TimeSpan.FromSeconds(60), got4.Timeout);
        Assert.InRange(got4.Expiration, TimeSpan.FromSeconds(50), TimeSpan.FromSeconds(60));
        Assert.True(got4.HasCounter);
        NftElementState gotDefault = Assert.Single(dump4.Elements, e => e.Key == d4.Key);
        // An element on the set's default: the kernel reports the default as its timeout (6.18), or none.
        Assert.InRange(gotDefault.Expiration, TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(30));
        NftElementState got6 = Assert.Single(dump6.Elements);
        Assert.Equal((e6.Key, TimeSpan.FromSeconds(90)), (got6.Key, got6.Timeout));
        Assert.InRange(got6.Expiration, TimeSpan.FromSeconds(80), TimeSpan.FromSeconds(90));
    }

    [Fact]
    public void RefusedOperation_MappedToItsIndexAndErrno_NothingOfTheBatchApplied()
    {
        using var lab = new NetnsLab();
        var missing = new NftFlowSet("ctfw", "nosuch", isV6: false, TimeSpan.FromSeconds(5));
        NftElement e = new(Key("10.0.0.1", "10.0.0.2", 1, 2));
        (NftBatchResult refused, NftBatchResult setUp, NftBatchResult exclusive, NftBatchResult again) = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddElements(missing, [e]);  // operation 2: no such set
            batch.AddElements(Set4, [e]);
            NftBatchResult a = Commit(nft, batch);

            batch.Clear();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddElements(Set4, [e]);
            NftBatchResult b = Commit(nft, batch);

            batch.Clear();
            batch.AddElements(Set4, Many(3), perMessage: 1);
            batch.AddElements(Set4, [e], exclusive: true); // operation 3: exists
            NftBatchResult c = Commit(nft, batch);

            batch.Clear();
            batch.AddElements(Set4, [e]); // without NLM_F_EXCL an existing element is no error
            return (a, b, c, Commit(nft, batch));
        });

        Assert.False(refused.Committed);
        NftOperationError error = Assert.Single(refused.Errors);
        Assert.Equal((2, NftOperationKind.AddElements, "inet ctfw nosuch", Errno.ENOENT), (error.Index, error.Operation.Kind, error.Operation.Subject, error.Error));
        Assert.Equal(0, refused.Unanswered);
        Assert.True(setUp.Committed, setUp.Message);
        Assert.False(exclusive.Committed);
        Assert.Equal((3, Errno.EEXIST), (exclusive.Errors.Single().Index, exclusive.Errors.Single().Error));
        Assert.True(again.Committed, again.Message);
        // The refused batches left nothing: one element, that of the batch that committed.
        string set4 = Tool.RunIn(lab.B, "nft", "list", "set", "inet", "ctfw", "flows4");
        Assert.Equal(1, ElementLines().Count(set4));
    }

    [GeneratedRegex(@"\d+\.\d+\.\d+\.\d+ \. \d+\.\d+\.\d+\.\d+ \. \d+ \. \d+")]
    private static partial Regex ElementLines();

    [Fact]
    public void DeleteElementsAndTable_IdempotentDestroy_DelOfMissingIsEnoent_DumpOfMissingSetIsEnoent()
    {
        using var lab = new NetnsLab();
        NftElement keep = new(Key("10.0.0.1", "10.0.0.2", 1, 2)), drop = new(Key("10.0.0.1", "10.0.0.2", 3, 4));
        var results = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddElements(Set4, [keep, drop]);
            List<NftBatchResult> r = [Commit(nft, batch)];
            batch.Clear();
            batch.DeleteElements(Set4, [drop.Key]);
            batch.DeleteElements(Set4, [drop.Key]); // gone already: DESTROY does not mind
            r.Add(Commit(nft, batch));
            NftSetDumpResult afterDelete = nft.DumpElements(Set4);
            batch.Clear();
            batch.DeleteElements(Set4, [drop.Key], idempotent: false);
            r.Add(Commit(nft, batch));
            batch.Clear();
            batch.DeleteTable("ctfw");
            r.Add(Commit(nft, batch));
            NftSetDumpResult afterTable = nft.DumpElements(Set4);
            batch.Clear();
            batch.DeleteTable("ctfw"); // clean-up of a table that is gone
            r.Add(Commit(nft, batch));
            batch.Clear();
            batch.DeleteTable("ctfw", idempotent: false);
            r.Add(Commit(nft, batch));
            return (r, afterDelete, afterTable);
        });
        (List<NftBatchResult> r, NftSetDumpResult afterDelete, NftSetDumpResult afterTable) = results;

        Assert.True(r[0].Committed && r[1].Committed, r[1].Message);
        Assert.Equal([keep.Key], afterDelete.Elements.Select(e => e.Key));
        Assert.Equal(Errno.ENOENT, Assert.Single(r[2].Errors).Error);
        Assert.True(r[3].Committed, r[3].Message);
        Assert.Equal(Errno.ENOENT, afterTable.Error);
        Assert.Empty(afterTable.Elements);
        Assert.True(r[4].Committed, r[4].Message);
        Assert.Equal(Errno.ENOENT, Assert.Single(r[5].Errors).Error);
        Assert.Equal("", Tool.RunIn(lab.B, "nft", "list", "tables").Trim());
    }

    /// <summary>
    /// Kernel facts issue 15 builds on, read through the dump: on 6.18 a lookup of an element runs its
    /// counter, and so does an update — a rule with both counts every packet twice; an update refreshes
    /// the expiration to the set's default timeout (the dynset carries none), not to the element's own.
    /// </summary>
    [Fact]
    public void Counters_LookupCountsOnce_LookupPlusUpdateTwice_UpdateRefreshesToTheSetDefault()
    {
        using var lab = new NetnsLab();
        const ushort SourcePort = 40123, DestinationPort = 5001;
        const int Datagrams = 25, Payload = 100;
        var key = new NftFlowKey(IpAddress.FromV4(ToHostOrder(lab.AddressA4)), IpAddress.FromV4(ToHostOrder(lab.AddressB4)), SourcePort, DestinationPort, false);
        NftBatchResult setUp = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddBaseChain("ctfw", "in", Nftables.Nftables.HookInput, -10);
            batch.AddElements(Set4, [new NftElement(key, TimeSpan.FromSeconds(10))]);
            return Commit(nft, batch);
        });
        Assert.True(setUp.Committed, setUp.Message);
        string[] tuple = ["ip", "saddr", ".", "ip", "daddr", ".", "udp", "sport", ".", "udp", "dport"];
        Tool.RunIn(lab.B, ["nft", "add", "rule", "inet", "ctfw", "in", .. tuple, "@flows4"]);

        using Socket receiver = lab.Udp(lab.B, v6: false, bindPort: DestinationPort);
        using Socket sender = lab.Udp(lab.A, v6: false, bindPort: SourcePort);
        void Send()
        {
            for (int i = 0; i < Datagrams; i++)
                sender.SendTo(new byte[Payload], new IPEndPoint(lab.AddressB4, DestinationPort));
            Assert.Equal(Datagrams, NetnsLab.Drain(receiver, Datagrams).Count);
        }
        NftElementState Read()
        {
            NftSetDumpResult dump = InB(lab, () =>
            {
                using NftablesSocket nft = NftablesSocket.Open();
                return nft.DumpElements(Set4);
            });
            output.WriteLine(Tool.RunIn(lab.B, "nft", "list", "set", "inet", "ctfw", "flows4"));
            Assert.Equal(Errno.None, dump.Error);
            return Assert.Single(dump.Elements);
        }

        Thread.Sleep(1500); // the element ages
        Send();
        NftElementState looked = Read();
        Assert.Equal(key, looked.Key);
        Assert.True(looked.HasCounter);
        // At the input hook an skb's length is the IP datagram: 20 + 8 + payload.
        const ulong Bytes = Datagrams * (20 + 8 + Payload);
        Assert.Equal(((ulong)Datagrams, Bytes), (looked.Packets, looked.Bytes));
        Assert.Equal(TimeSpan.FromSeconds(10), looked.Timeout);
        Assert.InRange(looked.Expiration, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(8.5)); // a lookup does not refresh

        Tool.RunIn(lab.B, "nft", "flush", "chain", "inet", "ctfw", "in");
        Tool.RunIn(lab.B, ["nft", "add", "rule", "inet", "ctfw", "in", .. tuple, "@flows4", "update", "@flows4", "{", .. tuple, "}"]);
        Send();
        NftElementState updated = Read();
        Assert.Equal(((ulong)Datagrams * 3, Bytes * 3), (updated.Packets, updated.Bytes));
        Assert.Equal(TimeSpan.FromSeconds(10), updated.Timeout);
        Assert.InRange(updated.Expiration, TimeSpan.FromSeconds(25), Set4.DefaultTimeout);
    }

    [Fact]
    public void FlowRules_ListedAsNftPrintsItsOwn_MarkTheSetsPackets_CountOncePerPacket()
    {
        using var lab = new NetnsLab();
        const ushort SourcePort = 40124, DestinationPort = 5002;
        const int Datagrams = 20, Payload = 50;
        const uint Mark = 0x40000000;
        var key = new NftFlowKey(IpAddress.FromV4(ToHostOrder(lab.AddressA4)), IpAddress.FromV4(ToHostOrder(lab.AddressB4)), SourcePort, DestinationPort, false);
        NftBatchResult setUp = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddSet(Set6);
            batch.AddBaseChain("ctfw", "bypass", Nftables.Nftables.HookInput, -10);
            batch.AddFlowRule(Set4, "bypass", protocol: 6, refresh: true, Mark);
            batch.AddFlowRule(Set4, "bypass", protocol: 17, refresh: false, Mark);
            batch.AddFlowRule(Set6, "bypass", protocol: 17, refresh: false, Mark);
            batch.AddElements(Set4, [new NftElement(key, TimeSpan.FromSeconds(20))]);
            return Commit(nft, batch);
        });
        Assert.True(setUp.Committed, setUp.Message);
        string chain = Tool.RunIn(lab.B, "nft", "list", "chain", "inet", "ctfw", "bypass");
        output.WriteLine(chain);
        Assert.Contains("tcp flags ! fin,syn,rst ip saddr . ip daddr . tcp sport . tcp dport @flows4 update @flows4 { ip saddr . ip daddr . tcp sport . tcp dport } meta mark set 0x40000000\n", chain, StringComparison.Ordinal);
        Assert.Contains("ip saddr . ip daddr . udp sport . udp dport @flows4 meta mark set 0x40000000\n", chain, StringComparison.Ordinal);
        Assert.Contains("ip6 saddr . ip6 daddr . udp sport . udp dport @flows6 meta mark set 0x40000000\n", chain, StringComparison.Ordinal);
        // An observer after the bypass chain counts the marked packets.
        Tool.RunIn(lab.B, "nft", "add", "chain", "inet", "ctfw", "observe", "{", "type", "filter", "hook", "input", "priority", "0", ";", "}");
        Tool.RunIn(lab.B, "nft", "add", "rule", "inet", "ctfw", "observe", "meta", "mark", "0x40000000", "counter");

        using Socket receiver = lab.Udp(lab.B, v6: false, bindPort: DestinationPort);
        using Socket sender = lab.Udp(lab.A, v6: false, bindPort: SourcePort);
        using Socket other = lab.Udp(lab.A, v6: false, bindPort: SourcePort + 1); // not in the set: not marked
        for (int i = 0; i < Datagrams; i++)
        {
            sender.SendTo(new byte[Payload], new IPEndPoint(lab.AddressB4, DestinationPort));
            other.SendTo(new byte[Payload], new IPEndPoint(lab.AddressB4, DestinationPort));
        }
        Assert.Equal(2 * Datagrams, NetnsLab.Drain(receiver, 2 * Datagrams).Count);

        NftSetDumpResult dump = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            return nft.DumpElements(Set4);
        });
        NftElementState e = Assert.Single(dump.Elements);
        Assert.Equal(((ulong)Datagrams, (ulong)(Datagrams * (28 + Payload))), (e.Packets, e.Bytes));
        string observed = Tool.RunIn(lab.B, "nft", "list", "chain", "inet", "ctfw", "observe");
        Assert.Contains($"meta mark 0x40000000 counter packets {Datagrams} bytes {Datagrams * (28 + Payload)}", observed, StringComparison.Ordinal);
    }

    [Fact]
    public void AddExistingElement_WithoutExcl_ReArmsItsTimeoutAndExpiration()
    {
        using var lab = new NetnsLab();
        NftFlowKey key = Key("10.0.0.1", "10.0.0.2", 1, 2);
        (NftSetDumpResult before, NftSetDumpResult after) = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            batch.AddElements(Set4, [new NftElement(key, TimeSpan.FromSeconds(10))]);
            Assert.True(Commit(nft, batch).Committed);
            Thread.Sleep(1200);
            NftSetDumpResult a = nft.DumpElements(Set4);
            batch.Clear();
            batch.AddElements(Set4, [new NftElement(key, TimeSpan.FromSeconds(120))]);
            Assert.True(Commit(nft, batch).Committed);
            return (a, nft.DumpElements(Set4));
        });
        Assert.InRange(Assert.Single(before.Elements).Expiration, TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(8.9));
        NftElementState e = Assert.Single(after.Elements);
        Assert.Equal(TimeSpan.FromSeconds(120), e.Timeout);
        Assert.InRange(e.Expiration, TimeSpan.FromSeconds(115), TimeSpan.FromSeconds(120));
    }

    private static uint ToHostOrder(IPAddress address)
    {
        byte[] b = address.GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }

    [Fact]
    public void ThousandElements_OneBatchOneSendto_AllThere()
    {
        using var lab = new NetnsLab();
        NftElement[] elements = Many(1000);
        (NftBatchResult result, NftSetDumpResult dump) = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Set4);
            Assert.Equal(1000, batch.AddElements(Set4, elements));
            return (Commit(nft, batch), nft.DumpElements(Set4));
        });
        Assert.True(result.Committed, result.Message);
        Assert.Equal(2 + 4, result.Operations); // 256 elements per message
        Assert.Equal(1000, dump.Elements.Count);
        Assert.Equal(elements.Select(e => e.Key).Order(KeyOrder.Instance), dump.Elements.Select(e => e.Key).Order(KeyOrder.Instance));
        string listed = Tool.RunIn(lab.B, "nft", "list", "set", "inet", "ctfw", "flows4");
        Assert.Equal(1000, ElementLines().Count(listed));
    }

    private sealed class KeyOrder : IComparer<NftFlowKey>
    {
        public static readonly KeyOrder Instance = new();

        public int Compare(NftFlowKey x, NftFlowKey y) =>
            (x.Source.Hi, x.SourcePort).CompareTo((y.Source.Hi, y.SourcePort));
    }

    [Fact]
    public void AddRate_BatchesOf1_64_1000_Printed()
    {
        using var lab = new NetnsLab();
        List<string> lines = InB(lab, () =>
        {
            using NftablesSocket nft = NftablesSocket.Open();
            NftBatch batch = nft.CreateBatch();
            batch.AddTable("ctfw");
            batch.AddSet(Big4);
            Assert.True(Commit(nft, batch).Committed);
            List<string> figures = [];
            int next = 0;
            foreach ((int size, int perMessage, int total) in ((int, int, int)[])[(1, 1, 2000), (64, 256, 19_200), (64, 1, 19_200), (1000, 256, 50_000), (1000, 1, 50_000)])
            {
                NftElement[] elements = Many(total, timeout: TimeSpan.FromMinutes(5));
                // Fresh keys for each run: shift the source address block.
                for (int i = 0; i < elements.Length; i++)
                    elements[i] = elements[i] with { Key = elements[i].Key with { Source = IpAddress.FromV4(0x0B000000u + (uint)((next + i) >> 16)), SourcePort = (ushort)(1 + ((next + i) & 0xFFFF)) } };
                next += total;
                var clock = Stopwatch.StartNew();
                int committed = 0;
                for (int done = 0; done < total; done += size)
                {
                    batch.Clear();
                    Assert.Equal(size, batch.AddElements(Big4, elements.AsSpan(done, size), perMessage));
                    NftBatchResult r = nft.Commit(batch);
                    Assert.True(r.Committed, r.Message);
                    committed += size;
                }
                double rate = committed / clock.Elapsed.TotalSeconds;
                figures.Add(string.Create(CultureInfo.InvariantCulture,
                    $"batch {size,5} elements, {Math.Min(size, perMessage),3} per message: {committed} added in {clock.Elapsed.TotalMilliseconds,7:0} ms = {rate,9:0} elements/s"));
            }
            NftSetDumpResult dump = nft.DumpElements(Big4);
            figures.Add($"dump of {dump.Elements.Count} elements: {dump.Elapsed.TotalMilliseconds:0} ms in {dump.Datagrams} datagrams");
            Assert.Equal(2000 + 19_200 + 19_200 + 50_000 + 50_000, dump.Elements.Count);
            return figures;
        });
        foreach (string line in lines)
            output.WriteLine(line);
    }
}
