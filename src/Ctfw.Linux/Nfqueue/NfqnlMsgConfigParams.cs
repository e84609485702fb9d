using System.Runtime.InteropServices;

namespace Ctfw.Linux.Nfqueue;

//  struct nfqnl_msg_config_params, packed, 5 bytes: NFQA_CFG_PARAMS
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                     copy_range (be32)                         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |   copy_mode   |
//  +-+-+-+-+-+-+-+-+

/// <summary><c>struct nfqnl_msg_config_params</c>.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct NfqnlMsgConfigParams
{
    public const int Size = 5;
    public const int CopyRangeOffset = 0;
    public const int CopyModeOffset = 4;

    public uint CopyRangeBigEndian;
    public byte CopyMode;
}
