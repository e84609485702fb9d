namespace Ctfw.Linux.Nfqueue;

/// <summary>Where a <see cref="VerdictBatcher"/> sends its encoded batch: the socket, or a test double.</summary>
internal interface IDatagramSender
{
    /// <summary>Sends one datagram to the kernel; <see cref="Errno.None"/> on success.</summary>
    Errno Send(ReadOnlySpan<byte> datagram);
}
