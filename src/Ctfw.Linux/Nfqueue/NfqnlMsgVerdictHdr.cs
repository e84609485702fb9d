using System.Runtime.InteropServices;

namespace Ctfw.Linux.Nfqueue;

//  struct nfqnl_msg_verdict_hdr, 8 bytes: NFQA_VERDICT_HDR
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |   verdict (be32: NF_DROP 0, NF_ACCEPT 1, NF_QUEUE 3 | n<<16)  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |        id (be32; for VERDICT_BATCH: every queued id <= this)  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary><c>struct nfqnl_msg_verdict_hdr</c>; both fields big-endian.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NfqnlMsgVerdictHdr
{
    public const int Size = 8;
    public const int VerdictOffset = 0;
    public const int IdOffset = 4;

    public uint VerdictBigEndian;
    public uint IdBigEndian;
}
