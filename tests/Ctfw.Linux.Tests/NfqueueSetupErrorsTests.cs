using Ctfw.Linux.Nfqueue;

namespace Ctfw.Linux.Tests;

public sealed class NfqueueSetupErrorsTests
{
    [Theory]
    [InlineData(Errno.EPERM)]
    [InlineData(Errno.EACCES)]
    public void Bind_PermissionDeniedWithoutOwner_SaysRunAsRoot(Errno errno)
    {
        ErrnoException e = NfqueueSetupErrors.Bind(3, errno, ownerPort: null, ownerProcess: null, queueModulePresent: true);

        Assert.StartsWith($"binding NFQUEUE queue 3 failed: {errno} (", e.Message, StringComparison.Ordinal);
        Assert.EndsWith("): needs CAP_NET_ADMIN (run as root, or with AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW: deploy/ctfw.service)", e.Message, StringComparison.Ordinal);
        Assert.Equal(errno, e.Errno);
    }

    [Theory]
    [InlineData(Errno.EPERM)]
    [InlineData(Errno.EBUSY)]
    public void Bind_QueueHeldByAnotherPort_NamesTheOwnerAsEbusy(Errno errno)
    {
        ErrnoException e = NfqueueSetupErrors.Bind(7, errno, ownerPort: 4242, ownerProcess: "pid 99 (suricata)", queueModulePresent: true);

        Assert.Equal("NFQUEUE queue 7 is already bound by another process (pid 99 (suricata), netlink port 4242): stop it or use another queue number", e.Message);
        Assert.Equal(Errno.EBUSY, e.Errno);
    }

    [Theory]
    [InlineData(Errno.EINVAL)]
    [InlineData(Errno.EOPNOTSUPP)]
    [InlineData(Errno.EPROTONOSUPPORT)]
    public void Bind_SubsystemMissing_SaysModprobe(Errno errno)
    {
        ErrnoException e = NfqueueSetupErrors.Bind(0, errno, null, null, queueModulePresent: false);

        Assert.EndsWith(": kernel has no nfnetlink_queue (modprobe nfnetlink_queue)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bind_EinvalWithTheModulePresent_IsNotBlamedOnTheModule()
    {
        ErrnoException e = NfqueueSetupErrors.Bind(0, Errno.EINVAL, null, null, queueModulePresent: true);

        Assert.DoesNotContain("modprobe", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Socket_ProtocolUnsupported_SaysModprobe()
    {
        Assert.Contains("modprobe nfnetlink_queue", NfqueueSetupErrors.Socket(Errno.EPROTONOSUPPORT).Message, StringComparison.Ordinal);
        Assert.DoesNotContain("modprobe", NfqueueSetupErrors.Socket(Errno.EMFILE).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Flags_ConntrackUnsupported_NamesTheKernelOptionAndTheWayOut()
    {
        ErrnoException e = NfqueueSetupErrors.Flags(1, 0x6, conntrackRequested: true, Errno.EOPNOTSUPP);

        Assert.Contains("CONFIG_NETFILTER_NETLINK_GLUE_CT", e.Message, StringComparison.Ordinal);
        Assert.Contains("without the conntrack option", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }
}
