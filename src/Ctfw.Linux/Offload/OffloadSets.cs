using System.Runtime.InteropServices;
using Ctfw.Conntrack;
using Ctfw.Linux.Firewall;
using Ctfw.Linux.Nftables;
using Ctfw.Packets;

namespace Ctfw.Linux.Offload;

/// <summary>What <see cref="OffloadSets.Create"/> puts into the kernel.</summary>
public sealed record OffloadSetsOptions
{
    /// <summary>The inet table, one per run (it carries the pid): a hand-over's two processes never share one.</summary>
    public required string Table { get; init; }

    /// <summary>The hooks ctfw's NFQUEUE jumps are on; a marking chain goes on each.</summary>
    public required IReadOnlyList<IptablesHook> Hooks { get; init; }

    /// <summary>The bit(s) ORed into the mark of a packet of an offloaded flow (what the iptables rule accepts).</summary>
    public required uint Mark { get; init; }

    /// <summary>The TCP sets' timeout: an element lives this long after the last packet the kernel forwarded.</summary>
    public required TimeSpan TcpTimeout { get; init; }

    /// <summary>The UDP sets' timeout.</summary>
    public required TimeSpan UdpTimeout { get; init; }

    /// <summary>Elements each set takes (two per flow).</summary>
    public required uint MaxElements { get; init; }

    /// <summary>Priority of the marking chains: before the filter table (0), where ctfw's jumps are.</summary>
    public int Priority { get; init; } = -1;
}

/// <summary>
/// The kernel's side of offload (docs/OFFLOAD.md): an inet table owned by this process's nf_tables
/// socket (NFT_TABLE_F_OWNER: the kernel deletes it when the socket closes, so a crash leaves
/// nothing behind), four flow sets (TCP and UDP × IPv4 and IPv6: the key has no protocol field),
/// and on each of ctfw's hooks a chain whose rules mark packets of flows in the sets (TCP only
/// without SYN, FIN and RST) and refresh their element's timeout. One thread at a time (the offload
/// manager's); setup path and the manager's batches only, never the packet path.
/// </summary>
public sealed class OffloadSets : IDisposable
{
    private readonly NftablesSocket _socket;
    private readonly NftBatch _batch;
    private readonly NftFlowSet[] _sets; // tcp4, tcp6, udp4, udp6
    private bool _disposed;

    private OffloadSets(OffloadSetsOptions options, NftablesSocket socket, NftFlowSet[] sets)
    {
        Options = options;
        _socket = socket;
        _sets = sets;
        _batch = socket.CreateBatch();
    }

    public OffloadSetsOptions Options { get; }

    public IReadOnlyList<NftFlowSet> Sets => _sets;

    /// <summary>
    /// Flows (adds plus removes) one <see cref="Apply"/> carries at most: by the acknowledgements the
    /// receive buffer holds (one per message of 256 elements) and by the batch's bytes (an IPv6
    /// element takes about 60, two per flow: 200 bytes a flow leaves room for the message headers).
    /// </summary>
    public int MaxFlowsPerBatch => Math.Min((_socket.Options.MaxOperations - 8) * NftBatch.DefaultElementsPerMessage / 2, _socket.Options.MaxBatchBytes / 200);

    /// <summary>
    /// Opens the socket and creates table, sets, chains and rules in one batch (the table of a dead run
    /// with the same name is deleted first). Throws <see cref="OffloadSetupException"/> with a message
    /// that says what failed.
    /// </summary>
    public static OffloadSets Create(OffloadSetsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Mark == 0)
            throw new OffloadSetupException("--offload-mark: the mark must have at least one bit set");
        if (options.Hooks.Count == 0)
            throw new OffloadSetupException("--offload needs the hooks of --install");
        NftablesSocket socket;
        try
        {
            socket = NftablesSocket.Open();
        }
        catch (ErrnoException e)
        {
            throw new OffloadSetupException($"--offload: cannot open an nf_tables socket: {e.Message}");
        }
        var sets = new NftFlowSet[4];
        foreach (byte protocol in (ReadOnlySpan<byte>)[IpProto.Tcp, IpProto.Udp])
        {
            foreach (bool v6 in (ReadOnlySpan<bool>)[false, true])
            {
                string name = (protocol == IpProto.Tcp ? "tcp" : "udp") + (v6 ? "6" : "4");
                sets[Index(protocol, v6)] = new NftFlowSet(options.Table, name, v6, protocol == IpProto.Tcp ? options.TcpTimeout : options.UdpTimeout)
                {
                    MaxElements = options.MaxElements,
                };
            }
        }
        var result = new OffloadSets(options, socket, sets);
        try
        {
            result.Install();
            return result;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private void Install()
    {
        NftBatch b = _batch;
        b.Clear();
        b.DeleteTable(Options.Table, idempotent: true);
        b.AddTable(Options.Table, owner: true);
        foreach (NftFlowSet set in _sets)
            b.AddSet(set);
        foreach (IptablesHook hook in Options.Hooks)
        {
            string chain = ChainName(hook);
            b.AddBaseChain(Options.Table, chain, HookNumber(hook), Options.Priority);
            foreach (NftFlowSet set in _sets)
                b.AddFlowRule(set, chain, ProtocolOf(set), refresh: true, Options.Mark, NftMarkMode.Or);
        }
        NftBatchResult r = _socket.Commit(b);
        if (!r.Committed)
            throw new OffloadSetupException($"--offload: creating nftables table inet {Options.Table} failed: {r.Message}");
    }

    public static string ChainName(IptablesHook hook) => hook switch
    {
        IptablesHook.Input => "input",
        IptablesHook.Output => "output",
        _ => "forward",
    };

    private static uint HookNumber(IptablesHook hook) => hook switch
    {
        IptablesHook.Input => Nftables.Nftables.HookInput,
        IptablesHook.Output => Nftables.Nftables.HookOutput,
        _ => Nftables.Nftables.HookForward,
    };

    /// <summary>The protocol of the flows in <paramref name="set"/> (one of <see cref="Sets"/>).</summary>
    public byte ProtocolOf(NftFlowSet set) => Array.IndexOf(_sets, set) < Index(IpProto.Udp, false) ? IpProto.Tcp : IpProto.Udp;

    /// <summary>The set a flow of <paramref name="protocol"/> goes into.</summary>
    public NftFlowSet SetOf(byte protocol, bool v6) => _sets[Index(protocol, v6)];

    /// <summary>Both keys of a flow (ORIGINAL and REPLY direction), for <see cref="Apply"/>.</summary>
    public static (NftFlowKey Original, NftFlowKey Reply) KeysOf(in ConnTuple orig)
    {
        orig.TryInvert(out ConnTuple reply);
        return (NftFlowKey.FromTuple(orig), NftFlowKey.FromTuple(reply));
    }

    private readonly List<NftFlowKey>[] _addKeys = [[], [], [], []];
    private readonly List<NftElement> _addElements = [];
    private readonly List<NftFlowKey>[] _removeKeys = [[], [], [], []];
    private readonly List<NftFlowKey>[] _lookups = [[], [], [], []];

    /// <summary>Both keys of every flow, sorted into the lists of their sets (in <see cref="Sets"/>' order).</summary>
    private static void KeysBySet(IReadOnlyList<ConnTuple> flows, List<NftFlowKey>[] into)
    {
        foreach (List<NftFlowKey> list in into)
            list.Clear();
        foreach (ConnTuple t in flows)
        {
            (NftFlowKey o, NftFlowKey r) = KeysOf(t);
            List<NftFlowKey> list = into[Index(t.Protocol, t.IsV6)];
            list.Add(o);
            list.Add(r);
        }
    }

    /// <summary>
    /// One transaction: removes the elements of <paramref name="remove"/> (DESTROY: already gone is no
    /// error) and adds both elements of each flow of <paramref name="add"/> with the set's timeout. The
    /// kernel applies it all or nothing.
    /// </summary>
    public NftBatchResult Apply(IReadOnlyList<ConnTuple> add, IReadOnlyList<ConnTuple> remove)
    {
        ArgumentNullException.ThrowIfNull(add);
        ArgumentNullException.ThrowIfNull(remove);
        KeysBySet(remove, _removeKeys);
        KeysBySet(add, _addKeys);
        NftBatch b = _batch;
        b.Clear();
        for (int s = 0; s < 4; s++)
        {
            if (_removeKeys[s].Count > 0 && b.DeleteElements(_sets[s], CollectionsMarshal.AsSpan(_removeKeys[s])) != _removeKeys[s].Count)
                throw new InvalidOperationException("offload batch too large (removes)");
        }
        for (int s = 0; s < 4; s++)
        {
            if (_addKeys[s].Count == 0)
                continue;
            _addElements.Clear();
            foreach (NftFlowKey key in _addKeys[s])
                _addElements.Add(new NftElement(key)); // the set's timeout
            if (b.AddElements(_sets[s], CollectionsMarshal.AsSpan(_addElements)) != _addElements.Count)
                throw new InvalidOperationException("offload batch too large (adds)");
        }
        return _socket.Commit(b);
    }

    private static int Index(byte protocol, bool v6) => (protocol == IpProto.Tcp ? 0 : 2) + (v6 ? 1 : 0);

    /// <summary>
    /// The elements of both directions of each flow (those still in the kernel), per set: what the
    /// counters say right before the flows are removed.
    /// </summary>
    public List<(NftFlowSet Set, NftElementState Element)> Read(IReadOnlyList<ConnTuple> flows)
    {
        ArgumentNullException.ThrowIfNull(flows);
        KeysBySet(flows, _lookups);
        var found = new List<(NftFlowSet, NftElementState)>();
        for (int i = 0; i < 4; i++)
        {
            if (_lookups[i].Count == 0)
                continue;
            NftGetElementsResult r = _socket.GetElements(_sets[i], CollectionsMarshal.AsSpan(_lookups[i]));
            if (r.Error != Errno.None)
                throw new ErrnoException($"reading the elements of set {_sets[i].Name}: {ErrnoException.Describe(r.Error)}", r.Error);
            foreach (NftElementState e in r.Found)
                found.Add((_sets[i], e));
        }
        return found;
    }

    /// <summary>Every element of every set (four dumps).</summary>
    public IEnumerable<(NftFlowSet Set, NftSetDumpResult Dump)> DumpAll()
    {
        foreach (NftFlowSet set in _sets)
            yield return (set, _socket.DumpElements(set));
    }

    /// <summary>Deletes the table (and with it sets, chains and elements): the kernel forwards nothing past ctfw any more.</summary>
    public NftBatchResult Remove()
    {
        _batch.Clear();
        _batch.DeleteTable(Options.Table, idempotent: true);
        return _socket.Commit(_batch);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _socket.Dispose();
    }
}

/// <summary>A setup failure of offload, with a message for the operator.</summary>
public sealed class OffloadSetupException(string message) : Exception(message);
