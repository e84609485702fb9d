using System.Runtime.InteropServices;
using Ctfw.Conntrack;

namespace Ctfw.Linux.Netlink;

/// <summary>
/// Collects the answer to one ctnetlink dump request, a received datagram at a time (spec §13.2):
/// IPCTNL_MSG_CT_NEW messages with the request's sequence number until NLMSG_DONE, or an NLMSG_ERROR
/// that ends the dump. Pure over bytes, never throws: an entry that cannot be decoded is counted under
/// its reason and the walk goes on with the next message; messages of other sequence numbers (the
/// tail of an abandoned earlier dump) are ignored.
/// </summary>
public sealed class CtnetlinkDumpReader(uint sequence)
{
    private readonly Dictionary<string, int> _unparsed = new(StringComparer.Ordinal);

    public uint Sequence { get; } = sequence;

    public List<KernelConnection> Entries { get; } = [];

    /// <summary>Messages that could not be decoded, by reason.</summary>
    public IReadOnlyDictionary<string, int> UnparsedReasons => _unparsed;

    public int Unparsed { get; private set; }

    /// <summary>NLMSG_DONE (or an ending NLMSG_ERROR) was seen.</summary>
    public bool Done { get; private set; }

    /// <summary>A message carried NLM_F_DUMP_INTR: the table changed in a way that may have made the walk miss or repeat entries.</summary>
    public bool Interrupted { get; private set; }

    /// <summary>The error the kernel ended the dump with (NLMSG_ERROR, or a negative NLMSG_DONE code); None otherwise.</summary>
    public Errno Error { get; private set; }

    /// <summary>Messages that were not for this dump (other sequence numbers, other types).</summary>
    public int Ignored { get; private set; }

    /// <summary>Reads one datagram; <paramref name="truncated"/> when the receive buffer cut it (MSG_TRUNC).</summary>
    public void Read(ReadOnlySpan<byte> datagram, bool truncated = false)
    {
        var reader = new NetlinkMessageReader(datagram, truncated);
        while (!Done && reader.TryRead(out NlMsgHdr header, out int offset, out int length, out bool cut))
        {
            if (header.Sequence != Sequence)
            {
                Ignored++;
                continue;
            }
            if ((header.Flags & Ctnetlink.FlagDumpInterrupted) != 0)
                Interrupted = true;
            ReadOnlySpan<byte> message = datagram.Slice(offset, length);
            switch (header.Type)
            {
                case Ctnetlink.MsgNew:
                    if (cut)
                        Count("cut by the receive buffer");
                    else if (CtnetlinkCodec.TryParseConnection(message, out KernelConnection c, out string? reason))
                        Entries.Add(c);
                    else
                        Count(reason!);
                    break;
                case NlMsgHdr.TypeDone:
                    Done = true;
                    // The payload is the dump's final status (an int; negative errno when it failed).
                    if (message.Length >= NlMsgHdr.Size + sizeof(int))
                    {
                        int code = MemoryMarshal.Read<int>(message[NlMsgHdr.Size..]);
                        if (code < 0)
                            Error = (Errno)(-code);
                    }
                    break;
                case NlMsgHdr.TypeError:
                    if (CtnetlinkCodec.TryReadError(message, out Errno error) && error != Errno.None)
                    {
                        Error = error;
                        Done = true;
                    }
                    break;
                default:
                    Ignored++;
                    break;
            }
        }
        if (reader.Malformed)
            Count("message length runs past the datagram");
    }

    private void Count(string reason)
    {
        Unparsed++;
        _unparsed[reason] = _unparsed.GetValueOrDefault(reason) + 1;
    }
}
