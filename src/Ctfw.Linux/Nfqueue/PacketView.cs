namespace Ctfw.Linux.Nfqueue;

/// <summary>
/// One packet received from an NFQUEUE queue: the decoded NFQA_* attributes plus views of the
/// payload (starting at the network header) and of the nested NFQA_CT attributes. Both views point
/// into the socket's receive buffer and are valid only until the next
/// <see cref="NfqueueSocket.Receive"/> on the same socket. Copying a PacketView allocates nothing.
/// </summary>
public readonly struct PacketView
{
    private readonly byte[]? _buffer;
    private readonly int _payloadOffset;
    private readonly int _payloadLength;
    private readonly int _ctOffset;
    private readonly int _ctLength;

    internal PacketView(
        byte[] buffer, int payloadOffset, int payloadLength, int ctOffset, int ctLength,
        uint packetId, ushort hwProtocol, NfHook hook, byte family, ushort queue,
        uint inputInterface, uint outputInterface, uint physInputInterface, uint physOutputInterface,
        uint mark, uint conntrackInfo, uint originalLength, PacketFlags flags)
    {
        _buffer = buffer;
        _payloadOffset = payloadOffset;
        _payloadLength = payloadLength;
        _ctOffset = ctOffset;
        _ctLength = ctLength;
        PacketId = packetId;
        HwProtocol = hwProtocol;
        Hook = hook;
        Family = family;
        Queue = queue;
        InputInterface = inputInterface;
        OutputInterface = outputInterface;
        PhysInputInterface = physInputInterface;
        PhysOutputInterface = physOutputInterface;
        Mark = mark;
        ConntrackInfo = conntrackInfo;
        OriginalLength = originalLength;
        Flags = flags;
    }

    /// <summary>The id to give the verdict for (per queue, +1 per queued packet, wraps at 2³²).</summary>
    public uint PacketId { get; }

    /// <summary>Ethertype in host order: 0x0800 IPv4, 0x86DD IPv6.</summary>
    public ushort HwProtocol { get; }

    public NfHook Hook { get; }

    /// <summary>nfgen_family: the hook's protocol family (2 AF_INET, 10 AF_INET6, 7 AF_BRIDGE).</summary>
    public byte Family { get; }

    /// <summary>res_id: the queue the packet came from.</summary>
    public ushort Queue { get; }

    /// <summary>Input interface index; 0 when the hook has none (LOCAL_OUT, POST_ROUTING).</summary>
    public uint InputInterface { get; }

    /// <summary>Output interface index; 0 when not yet routed (PRE_ROUTING, LOCAL_IN).</summary>
    public uint OutputInterface { get; }

    public uint PhysInputInterface { get; }

    public uint PhysOutputInterface { get; }

    /// <summary>skb mark (0 when absent: the kernel omits a zero mark).</summary>
    public uint Mark { get; }

    /// <summary>NFQA_CT_INFO (enum ip_conntrack_info) when <see cref="PacketFlags.HasConntrackInfo"/> is set.</summary>
    public uint ConntrackInfo { get; }

    /// <summary>Length of the whole packet: NFQA_CAP_LEN when the payload was cut, else the payload length.</summary>
    public uint OriginalLength { get; }

    public PacketFlags Flags { get; }

    /// <summary>The packet from its network header, up to the queue's copy range. Empty without NFQA_PAYLOAD.</summary>
    public ReadOnlySpan<byte> Payload => _buffer is null ? default : _buffer.AsSpan(_payloadOffset, _payloadLength);

    /// <summary>The CTA_* attributes nested in NFQA_CT (queue flag CONNTRACK); empty when absent.</summary>
    public ReadOnlySpan<byte> ConntrackAttributes => _buffer is null ? default : _buffer.AsSpan(_ctOffset, _ctLength);

    public bool IsGso => (Flags & PacketFlags.Gso) != 0;

    public bool ChecksumNotReady => (Flags & PacketFlags.ChecksumNotReady) != 0;

    public bool HasConntrack => (Flags & PacketFlags.HasConntrack) != 0;
}
