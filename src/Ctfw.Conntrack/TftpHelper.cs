using System.Buffers.Binary;

namespace Ctfw.Conntrack;

/// <summary>
/// The TFTP helper (nf_conntrack_tftp.c): a read or write request (opcodes 1 and 2, RFC 1350) on
/// a connection with the helper makes the expectation of the answer, which comes from another port
/// of the server: server address, any source port, to the client's address and port, UDP. Every
/// packet of the connection is looked at, the first one included; other opcodes change nothing.
/// </summary>
internal static class TftpHelper
{
    /// <summary>tftp_exp_policy: one expectation per connection, 5 minutes.</summary>
    public const int MaxExpected = 1;
    public const int TimeoutSeconds = 300;

    /// <summary>Whether the UDP payload is a read or write request (a payload under two bytes is not looked at).</summary>
    public static bool IsRequest(ReadOnlySpan<byte> udpPayload) =>
        udpPayload.Length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(udpPayload) is 1 or 2;
}
