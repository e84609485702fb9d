using System.Runtime.InteropServices;

namespace Ctfw.Linux.Netlink;

/// <summary>
/// Walks the attributes in a netlink payload. Never throws: an attribute whose length runs past the
/// end (or is shorter than its own header) ends the walk and sets <see cref="Malformed"/>; fewer
/// than 4 trailing bytes are alignment padding.
/// </summary>
internal ref struct NetlinkAttributeReader
{
    private ReadOnlySpan<byte> _rest;
    private int _consumed;

    public NetlinkAttributeReader(ReadOnlySpan<byte> attributes) => _rest = attributes;

    /// <summary>An attribute header was inconsistent with the bytes present; the walk stopped there.</summary>
    public bool Malformed { get; private set; }

    /// <summary>Offset of the payload last returned, relative to the span given to the constructor.</summary>
    public int PayloadOffset { get; private set; }

    public bool TryRead(out ushort type, out ReadOnlySpan<byte> payload)
    {
        type = 0;
        payload = default;
        if (_rest.Length < NlAttr.Size)
        {
            _rest = default;
            return false;
        }
        // Host byte order, like every netlink header.
        NlAttr header = MemoryMarshal.Read<NlAttr>(_rest);
        if (header.Length < NlAttr.Size || header.Length > _rest.Length)
        {
            Malformed = true;
            _rest = default;
            return false;
        }
        type = (ushort)(header.Type & NlAttr.TypeMask);
        payload = _rest[NlAttr.Size..header.Length];
        PayloadOffset = _consumed + NlAttr.Size;
        int advance = Math.Min(NlMsgHdr.Align(header.Length), _rest.Length);
        _rest = _rest[advance..];
        _consumed += advance;
        return true;
    }
}
