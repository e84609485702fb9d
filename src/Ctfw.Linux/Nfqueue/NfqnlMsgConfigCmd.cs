using System.Runtime.InteropServices;

namespace Ctfw.Linux.Nfqueue;

//  struct nfqnl_msg_config_cmd, 4 bytes: NFQA_CFG_CMD
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |    command    |     _pad      |  pf (be16; PF_[UN]BIND only)  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary><c>struct nfqnl_msg_config_cmd</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NfqnlMsgConfigCmd
{
    public const int Size = 4;
    public const int CommandOffset = 0;
    public const int PfOffset = 2;

    public byte Command;
    public byte Pad;
    public ushort PfBigEndian;
}
