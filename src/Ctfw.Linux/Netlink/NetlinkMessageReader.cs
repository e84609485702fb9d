using System.Runtime.InteropServices;

namespace Ctfw.Linux.Netlink;

/// <summary>
/// Walks the netlink messages packed into one received datagram (<c>NLMSG_NEXT</c>). Never throws.
/// A message whose length runs past the data ends the walk: as <see cref="Malformed"/> normally, or,
/// when the datagram itself was cut by the receive buffer (MSG_TRUNC), by returning the part that
/// is present with <c>cut = true</c> so that leading attributes (the packet id) are still usable.
/// </summary>
internal ref struct NetlinkMessageReader
{
    private readonly ReadOnlySpan<byte> _datagram;
    private readonly bool _datagramTruncated;
    private int _offset;

    public NetlinkMessageReader(ReadOnlySpan<byte> datagram, bool datagramTruncated, int startOffset = 0)
    {
        _datagram = datagram;
        _datagramTruncated = datagramTruncated;
        _offset = startOffset;
    }

    public bool Malformed { get; private set; }

    /// <summary>Where the next message starts (to resume a walk later).</summary>
    public readonly int Offset => _offset;

    /// <summary>
    /// Reads the next message header. <paramref name="offset"/>/<paramref name="length"/> frame the
    /// whole message (header included) inside the datagram.
    /// </summary>
    public bool TryRead(out NlMsgHdr header, out int offset, out int length, out bool cut)
    {
        header = default;
        offset = _offset;
        length = 0;
        cut = false;
        int remaining = _datagram.Length - _offset;
        if (remaining < NlMsgHdr.Size)
        {
            // Fewer bytes than a header: alignment padding, or a header cut by the receive buffer.
            Malformed |= remaining > 0 && _datagramTruncated;
            _offset = _datagram.Length;
            return false;
        }
        header = MemoryMarshal.Read<NlMsgHdr>(_datagram[_offset..]);
        if (header.Length < NlMsgHdr.Size)
        {
            Malformed = true;
            _offset = _datagram.Length;
            return false;
        }
        if (header.Length > (uint)remaining)
        {
            if (!_datagramTruncated)
            {
                Malformed = true;
                _offset = _datagram.Length;
                return false;
            }
            length = remaining;
            cut = true;
            _offset = _datagram.Length;
            return true;
        }
        length = (int)header.Length;
        _offset = Math.Min(_offset + NlMsgHdr.Align(length), _datagram.Length);
        return true;
    }
}
