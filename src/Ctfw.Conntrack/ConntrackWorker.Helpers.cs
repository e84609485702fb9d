using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>Conntrack helpers on the packet path: expectations met by new entries, FTP and TFTP reading their masters' packets.</summary>
public sealed partial class ConntrackWorker
{
    /// <summary>
    /// A new entry's helper state (init_conntrack), before it is published: an expectation it fulfils
    /// makes it EXPECTED with a master (the expectation is used up, even if the packet is dropped
    /// later, as in the kernel); otherwise it takes the helper the raw table's CT target assigned,
    /// if that helper serves its protocol. Returns the entry's first status bits.
    /// </summary>
    private uint StartHelper(in ConnTuple t, int idx, ref HelperSlot h, in ParsedPacket p, in PacketContext ctx, long now)
    {
        Expectations? expectations = _engine.Expectations;
        if (expectations != null && expectations.TryTake(t, now, out int master, out uint generation))
        {
            h.HasMaster = true;
            h.Master = master;
            h.MasterGeneration = generation;
            // TryTake found the master live at this generation: its helper is the one that expected us.
            h.MasterHelper = _table.Helpers![master].Helper;
            // TryTake saw the master live in this worker's epoch: its slot is not reused before we leave it.
            h.MasterOrig = _table.Entries[master].Orig;
            return (uint)CtStatus.Expected | PrivateStatus.Helped;
        }
        CtHelper helper = ctx.Helper;
        if (helper != CtHelper.None
            && (helper == CtHelper.Ftp ? p.Protocol == IpProto.Tcp : p.Protocol == IpProto.Udp))
        {
            h.Helper = helper;
            return PrivateStatus.Helped;
        }
        return 0;
    }

    /// <summary>
    /// TFTP on the packet that creates the entry (its helper reads every packet, the first too): a
    /// request expects the answer. False when the expectation cannot be added (the packet drops).
    /// </summary>
    private bool TftpNew(ReadOnlySpan<byte> packet, int idx, ref ConnEntry e, in ParsedPacket p, long now, ref Classification r)
    {
        if (!TftpHelper.IsRequest(UdpPayload(packet, p)))
            return true;
        if (ExpectTftp(idx, ref e, now))
            return true;
        HelperDrop(ref r, InvalidReason.HelperExpectFailed);
        return false;
    }

    /// <summary>The helper of an existing entry (entry locked) on a packet the tracker accepted.</summary>
    private void RunHelper(ReadOnlySpan<byte> packet, int idx, ref ConnEntry e, ref HelperSlot h, int dir, in ParsedPacket p, long now, ref Classification r)
    {
        if (r.State is not (CtState.Established or CtState.New or CtState.Related))
            return;
        if (h.Helper == CtHelper.Tftp)
        {
            if (TftpHelper.IsRequest(UdpPayload(packet, p)) && !ExpectTftp(idx, ref e, now))
                HelperDrop(ref r, InvalidReason.HelperExpectFailed);
            return;
        }
        // FTP: "until there's been traffic both ways, don't look in packets".
        if (r.State != CtState.Established || p.Protocol != IpProto.Tcp)
            return;
        int offset = p.L3HeaderLength + p.TcpHeaderLength;
        int length = p.TcpPayloadLength;
        if (length <= 0 || (uint)offset > (uint)packet.Length || (uint)length > (uint)(packet.Length - offset))
            return; // no data, or not all of it captured: nothing the kernel's reading can be matched on
        IpAddress sender = dir == 0 ? e.Orig.Src : e.Orig.Dst;
        HelperVerdict v = FtpHelper.Segment(ref h, dir, p.Seq, packet.Slice(offset, length), e.Orig.IsV6, sender, out FtpCommand cmd);
        if (v == HelperVerdict.Drop)
        {
            HelperDrop(ref r, InvalidReason.HelperPartial);
            return;
        }
        if (v != HelperVerdict.Expect || cmd.Address != sender)
            return; // an address other than the sender's is not recorded (the module's loose=0)
        // The data connection comes from the other side to the announced port: expected in the
        // direction opposite to this packet, from the peer's address, any source port.
        ConnTuple exp = e.Orig;
        exp.Src = dir == 0 ? e.Orig.Dst : e.Orig.Src;
        exp.Dst = dir == 0 ? e.Orig.Src : e.Orig.Dst;
        exp.SrcId = 0;
        exp.DstId = cmd.Port;
        exp.Protocol = IpProto.Tcp;
        if (_engine.Expectations!.Add(exp, idx, e.Orig, CtHelper.Ftp, FtpHelper.MaxExpected, FtpHelper.TimeoutSeconds, now) != ExpectResult.Added)
            HelperDrop(ref r, InvalidReason.HelperExpectFailed);
    }

    /// <summary>The TFTP answer: from the server's address, any port, to the client's address and port, UDP.</summary>
    private bool ExpectTftp(int idx, ref ConnEntry e, long now)
    {
        ConnTuple exp = e.Orig;
        exp.Src = e.Orig.Dst;
        exp.Dst = e.Orig.Src;
        exp.SrcId = 0;
        exp.DstId = e.Orig.SrcId;
        exp.Protocol = IpProto.Udp;
        return _engine.Expectations!.Add(exp, idx, e.Orig, CtHelper.Tftp, TftpHelper.MaxExpected, TftpHelper.TimeoutSeconds, now) == ExpectResult.Added;
    }

    private static ReadOnlySpan<byte> UdpPayload(ReadOnlySpan<byte> packet, in ParsedPacket p)
    {
        int offset = p.L3HeaderLength + 8;
        int length = p.L4Length - 8;
        return length > 0 && (uint)offset <= (uint)packet.Length && (uint)length <= (uint)(packet.Length - offset)
            ? packet.Slice(offset, length)
            : packet.Length > offset ? packet[offset..] : default;
    }

    /// <summary>A helper's NF_DROP: the tracker's update stands, the packet does not pass.</summary>
    private static void HelperDrop(ref Classification r, InvalidReason reason)
    {
        r.StateBeforeHelperDrop = r.State;
        r.State = CtState.Dropped;
        r.Reason = reason;
    }
}
