using System.Runtime.InteropServices;

namespace Ctfw.Conntrack;

/// <summary>
/// A conntrack helper (nf_conntrack_helper), assigned to a new connection by the raw table's
/// `CT --helper NAME` target (<see cref="PacketContext.Helper"/>). Automatic assignment by port
/// (the sysctl nf_conntrack_helper=1) is off, as the kernel's default since 4.7.
/// </summary>
public enum CtHelper : byte
{
    None = 0,
    /// <summary>nf_conntrack_ftp: PORT/EPRT commands and 227/229 replies on TCP.</summary>
    Ftp = 1,
    /// <summary>nf_conntrack_tftp: read/write requests on UDP.</summary>
    Tftp = 2,
}

public static class CtHelpers
{
    /// <summary>The helper's name as `CT --helper` and `conntrack -L` spell it; null for <see cref="CtHelper.None"/>.</summary>
    public static string? Name(CtHelper h) => h switch
    {
        CtHelper.Ftp => "ftp",
        CtHelper.Tftp => "tftp",
        _ => null,
    };

    /// <summary>The helper called <paramref name="name"/>, and the L4 protocol it serves; false for unknown names.</summary>
    public static bool TryParse(string name, out CtHelper helper, out byte protocol)
    {
        switch (name)
        {
            case "ftp":
                helper = CtHelper.Ftp;
                protocol = Ctfw.Packets.IpProto.Tcp;
                return true;
            case "tftp":
                helper = CtHelper.Tftp;
                protocol = Ctfw.Packets.IpProto.Udp;
                return true;
            default:
                helper = CtHelper.None;
                protocol = 0;
                return false;
        }
    }

    /// <summary>Names of the helpers ctfw has, for error messages.</summary>
    public const string Known = "ftp, tftp";
}

/// <summary>
/// Helper state of one entry (the kernel's nf_conn_help extension), indexed like the entry in
/// <see cref="ConnTable.Helpers"/>. <see cref="ConnTable.Allocate"/> resets it and bumps
/// <see cref="Generation"/>, which is how an expectation recognises that its master is still the
/// connection that created it. Written under the entry lock (or before the entry is published).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct HelperSlot
{
    public uint Generation;
    public CtHelper Helper;
    /// <summary>How many of <see cref="Nl0"/>/<see cref="Nl1"/> hold a value in each direction (seq_aft_nl_num).</summary>
    public byte NlCount0;
    public byte NlCount1;
    /// <summary>An expected connection: its master's helper, kept as the kernel's ct->master reference keeps it readable (xt_helper).</summary>
    public CtHelper MasterHelper;
    /// <summary>FTP: sequence numbers just after a segment that ended in '\n' (seq_aft_nl), two per direction.</summary>
    public uint Nl0A, Nl0B, Nl1A, Nl1B;
    /// <summary>An expected connection (<see cref="HasMaster"/>): its master's index and generation.</summary>
    public int Master;
    public uint MasterGeneration;
    public bool HasMaster;
    /// <summary>
    /// The master's ORIGINAL tuple (the kernel's ct->master, kept for the entry's life: `-o json`'s
    /// master, CTA_TUPLE_MASTER, the state file); IpVersion 0 when there is none. Also set for an
    /// adopted or restored expected entry, whose master has no index here.
    /// </summary>
    public ConnTuple MasterOrig;
}
