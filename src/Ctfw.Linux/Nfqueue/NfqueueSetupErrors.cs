namespace Ctfw.Linux.Nfqueue;

/// <summary>
/// The one-line messages <see cref="NfqueueSocket.Open"/> fails with: what failed, the errno, and
/// the fix. Pure functions of the facts gathered at failure time, so every mapping is unit-tested.
/// </summary>
internal static class NfqueueSetupErrors
{
    public const string NeedsRoot = "needs CAP_NET_ADMIN (run as root, or with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW: deploy/ctfw.service)";
    public const string NoQueueModule = "kernel has no nfnetlink_queue (modprobe nfnetlink_queue)";

    public static ErrnoException Socket(Errno errno) => errno is Errno.EPROTONOSUPPORT or Errno.EAFNOSUPPORT
        ? new ErrnoException($"socket(AF_NETLINK, NETLINK_NETFILTER) failed: {ErrnoException.Describe(errno)}: {NoQueueModule}", errno)
        : new ErrnoException($"socket(AF_NETLINK, NETLINK_NETFILTER) failed: {ErrnoException.Describe(errno)}", errno);

    /// <param name="ownerPort">Port id nfnetlink_queue lists for the queue when it is not ours, else null.</param>
    /// <param name="ownerProcess">"pid N (comm)" of that port, when it could be found.</param>
    /// <param name="queueModulePresent">Whether /proc/net/netfilter/nfnetlink_queue exists.</param>
    public static ErrnoException Bind(ushort queue, Errno errno, uint? ownerPort, string? ownerProcess, bool queueModulePresent)
    {
        // BIND on a queue held by another port fails with EPERM (EBUSY only for our own port), so
        // an owner is looked for before privileges are blamed.
        if (errno is Errno.EPERM or Errno.EBUSY && ownerPort is { } owner)
        {
            return new ErrnoException(
                $"NFQUEUE queue {queue} is already bound by another process ({ownerProcess ?? "pid unknown"}, netlink port {owner}): stop it or use another queue number",
                Errno.EBUSY);
        }
        return errno switch
        {
            Errno.EPERM or Errno.EACCES => new ErrnoException(
                $"binding NFQUEUE queue {queue} failed: {ErrnoException.Describe(errno)}: {NeedsRoot}", errno),
            // Without the subsystem nfnetlink answers EINVAL (after trying to load it).
            Errno.EOPNOTSUPP or Errno.EPROTONOSUPPORT or Errno.EINVAL when !queueModulePresent => new ErrnoException(
                $"binding NFQUEUE queue {queue} failed: {ErrnoException.Describe(errno)}: {NoQueueModule}", errno),
            _ => new ErrnoException($"binding NFQUEUE queue {queue} failed: {ErrnoException.Describe(errno)}", errno),
        };
    }

    public static ErrnoException Flags(ushort queue, uint flags, bool conntrackRequested, Errno errno)
    {
        string fix = errno switch
        {
            Errno.EOPNOTSUPP when conntrackRequested =>
                ": this kernel cannot attach conntrack entries to queued packets (needs CONFIG_NETFILTER_NETLINK_GLUE_CT and nf_conntrack_netlink: modprobe nf_conntrack_netlink), or run without the conntrack option",
            Errno.EOPNOTSUPP => ": kernel too old for NFQA_CFG_F_GSO/FAIL_OPEN (needs Linux 3.10+)",
            Errno.EPERM or Errno.EACCES => ": " + NeedsRoot,
            _ => "",
        };
        return new ErrnoException($"NFQUEUE queue {queue}: setting flags 0x{flags:x} failed: {ErrnoException.Describe(errno)}{fix}", errno);
    }

    public static ErrnoException Step(ushort queue, string what, Errno errno) => new(
        $"NFQUEUE queue {queue}: {what} failed: {ErrnoException.Describe(errno)}{(errno is Errno.EPERM or Errno.EACCES ? ": " + NeedsRoot : "")}",
        errno);
}
