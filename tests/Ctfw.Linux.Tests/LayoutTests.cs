using System.Globalization;
using Ctfw.Linux.Netlink;
using Ctfw.Linux.Nfqueue;
using Ctfw.Linux.Tests.Support;
using Tmds.Linux;

namespace Ctfw.Linux.Tests;

/// <summary>
/// Proves every struct and constant that crosses into the kernel or the shim against the real
/// headers (model: Tmds.LibC StructTests): a C probe is compiled at test time against
/// linux/netlink.h, linux/netfilter/nfnetlink_queue.h, sys/socket.h, errno.h and
/// native-shim/ctfw_shim.h, prints sizeof/offsetof/values, and each is compared with the C# side:
/// the struct's real layout (field addresses), the offset constants the parsers use, and the values
/// the loaded libctfw_shim.so reports about itself.
/// </summary>
public sealed class LayoutTests
{
    private static readonly Lazy<Dictionary<string, long>> s_probe = new(RunProbe);

    [Fact]
    public void NetlinkStructs_MatchKernelHeaders() => AssertAll(NetlinkLayouts());

    [Fact]
    public void NfqueueStructs_MatchKernelHeaders() => AssertAll(NfqueueLayouts());

    [Fact]
    public void SocketStructsAndConstants_MatchLibcHeaders() => AssertAll(SocketLayouts());

    [Fact]
    public void ShimStructsAndConstants_MatchShimHeader() => AssertAll(ShimLayouts());

    [Fact]
    public void LoadedShim_ReportsTheLayoutsOfTheHeaders()
    {
        Interop.Shim.EnsureCompatible();
        Interop.Shim.AbiInfo info;
        unsafe
        {
            Assert.Equal(Interop.Shim.AbiVersion, Interop.Shim.Abi(&info));
        }
        AssertAll(
        [
            ("sizeof struct mmsghdr", info.MmsghdrSize),
            ("offsetof struct mmsghdr.msg_len", info.MmsghdrMsgLenOffset),
            ("sizeof struct msghdr", info.MsghdrSize),
            ("offsetof struct msghdr.msg_flags", info.MsghdrMsgFlagsOffset),
            ("sizeof struct iovec", info.IovecSize),
            ("sizeof struct sockaddr_nl", info.SockaddrNlSize),
            ("sizeof ctfw_rx_slot", info.RxSlotSize),
            ("sizeof ctfw_shim_abi_info", info.AbiInfoSize),
            ("CTFW_RECV_MAX_BATCH", info.MaxBatch),
            ("CTFW_SHIM_ABI_VERSION", info.AbiVersion),
        ]);
    }

    [Fact]
    public void UnixIdentityConstants_MatchTheHeaders() =>
        AssertAll(
        [
            ("SOL_SOCKET", UnixIdentity.SolSocket), ("SO_PEERCRED", UnixIdentity.SoPeerCred),
            ("sizeof struct ucred", UnixIdentity.UcredLength), ("offsetof struct ucred.pid", 0),
            ("offsetof struct ucred.uid", 4), ("offsetof struct ucred.gid", 8),
            ("S_IFMT", UnixIdentity.SIfMt), ("S_IFREG", UnixIdentity.SIfReg), ("S_IFDIR", UnixIdentity.SIfDir),
            ("S_IFLNK", UnixIdentity.SIfLnk), ("S_IFSOCK", UnixIdentity.SIfSock),
        ]);

    [Fact]
    public void ErrnoEnum_MatchesErrnoH()
    {
        List<(string, long)> checks = [];
        foreach (Errno e in Enum.GetValues<Errno>())
        {
            if (e != Errno.None)
                checks.Add((e.ToString(), (long)e));
        }
        AssertAll(checks);
    }

    private static unsafe List<(string, long)> NetlinkLayouts()
    {
        NlMsgHdr h;
        NlAttr a;
        NfGenMsg g;
        NlMsgErr e;
        return
        [
            ("sizeof struct nlmsghdr", sizeof(NlMsgHdr)), ("sizeof struct nlmsghdr", NlMsgHdr.Size),
            ("offsetof struct nlmsghdr.nlmsg_len", Offset(&h, &h.Length)), ("offsetof struct nlmsghdr.nlmsg_len", NlMsgHdr.LengthOffset),
            ("offsetof struct nlmsghdr.nlmsg_type", Offset(&h, &h.Type)), ("offsetof struct nlmsghdr.nlmsg_type", NlMsgHdr.TypeOffset),
            ("offsetof struct nlmsghdr.nlmsg_flags", Offset(&h, &h.Flags)), ("offsetof struct nlmsghdr.nlmsg_flags", NlMsgHdr.FlagsOffset),
            ("offsetof struct nlmsghdr.nlmsg_seq", Offset(&h, &h.Sequence)), ("offsetof struct nlmsghdr.nlmsg_seq", NlMsgHdr.SequenceOffset),
            ("offsetof struct nlmsghdr.nlmsg_pid", Offset(&h, &h.PortId)), ("offsetof struct nlmsghdr.nlmsg_pid", NlMsgHdr.PortIdOffset),
            ("sizeof struct nlmsgerr", sizeof(NlMsgErr)), ("sizeof struct nlmsgerr", NlMsgErr.Size),
            ("offsetof struct nlmsgerr.error", Offset(&e, &e.Error)), ("offsetof struct nlmsgerr.error", NlMsgErr.ErrorOffset),
            ("offsetof struct nlmsgerr.msg", Offset(&e, &e.Message)), ("offsetof struct nlmsgerr.msg", NlMsgErr.MessageOffset),
            ("sizeof struct nlattr", sizeof(NlAttr)), ("sizeof struct nlattr", NlAttr.Size),
            ("offsetof struct nlattr.nla_len", Offset(&a, &a.Length)), ("offsetof struct nlattr.nla_len", NlAttr.LengthOffset),
            ("offsetof struct nlattr.nla_type", Offset(&a, &a.Type)), ("offsetof struct nlattr.nla_type", NlAttr.TypeOffset),
            ("NLA_TYPE_MASK", NlAttr.TypeMask), ("NLA_F_NESTED", NlAttr.FlagNested),
            ("sizeof struct nfgenmsg", sizeof(NfGenMsg)), ("sizeof struct nfgenmsg", NfGenMsg.Size),
            ("offsetof struct nfgenmsg.nfgen_family", Offset(&g, &g.Family)), ("offsetof struct nfgenmsg.nfgen_family", NfGenMsg.FamilyOffset),
            ("offsetof struct nfgenmsg.version", Offset(&g, &g.Version)), ("offsetof struct nfgenmsg.version", NfGenMsg.VersionOffset),
            ("offsetof struct nfgenmsg.res_id", Offset(&g, &g.ResourceIdBigEndian)), ("offsetof struct nfgenmsg.res_id", NfGenMsg.ResourceIdOffset),
            ("NFNETLINK_V0", NfGenMsg.Version0),
            ("NLMSG_NOOP", NlMsgHdr.TypeNoop), ("NLMSG_ERROR", NlMsgHdr.TypeError), ("NLMSG_DONE", NlMsgHdr.TypeDone), ("NLMSG_OVERRUN", NlMsgHdr.TypeOverrun),
            ("NLM_F_REQUEST", NlMsgHdr.FlagRequest), ("NLM_F_MULTI", NlMsgHdr.FlagMulti), ("NLM_F_ACK", NlMsgHdr.FlagAck),
            ("NLMSG_ALIGN(13)", NlMsgHdr.Align(13)), ("NLMSG_ALIGN(16)", NlMsgHdr.Align(16)),
        ];
    }

    private static unsafe List<(string, long)> NfqueueLayouts()
    {
        NfqnlMsgPacketHdr p;
        NfqnlMsgVerdictHdr v;
        NfqnlMsgConfigCmd c;
        NfqnlMsgConfigParams k;
        return
        [
            ("sizeof struct nfqnl_msg_packet_hdr", sizeof(NfqnlMsgPacketHdr)), ("sizeof struct nfqnl_msg_packet_hdr", NfqnlMsgPacketHdr.Size),
            ("offsetof struct nfqnl_msg_packet_hdr.packet_id", Offset(&p, &p.PacketIdBigEndian)), ("offsetof struct nfqnl_msg_packet_hdr.packet_id", NfqnlMsgPacketHdr.PacketIdOffset),
            ("offsetof struct nfqnl_msg_packet_hdr.hw_protocol", Offset(&p, &p.HwProtocolBigEndian)), ("offsetof struct nfqnl_msg_packet_hdr.hw_protocol", NfqnlMsgPacketHdr.HwProtocolOffset),
            ("offsetof struct nfqnl_msg_packet_hdr.hook", Offset(&p, &p.Hook)), ("offsetof struct nfqnl_msg_packet_hdr.hook", NfqnlMsgPacketHdr.HookOffset),
            ("sizeof struct nfqnl_msg_verdict_hdr", sizeof(NfqnlMsgVerdictHdr)), ("sizeof struct nfqnl_msg_verdict_hdr", NfqnlMsgVerdictHdr.Size),
            ("offsetof struct nfqnl_msg_verdict_hdr.verdict", Offset(&v, &v.VerdictBigEndian)), ("offsetof struct nfqnl_msg_verdict_hdr.verdict", NfqnlMsgVerdictHdr.VerdictOffset),
            ("offsetof struct nfqnl_msg_verdict_hdr.id", Offset(&v, &v.IdBigEndian)), ("offsetof struct nfqnl_msg_verdict_hdr.id", NfqnlMsgVerdictHdr.IdOffset),
            ("sizeof struct nfqnl_msg_config_cmd", sizeof(NfqnlMsgConfigCmd)), ("sizeof struct nfqnl_msg_config_cmd", NfqnlMsgConfigCmd.Size),
            ("offsetof struct nfqnl_msg_config_cmd.command", Offset(&c, &c.Command)), ("offsetof struct nfqnl_msg_config_cmd.command", NfqnlMsgConfigCmd.CommandOffset),
            ("offsetof struct nfqnl_msg_config_cmd.pf", Offset(&c, &c.PfBigEndian)), ("offsetof struct nfqnl_msg_config_cmd.pf", NfqnlMsgConfigCmd.PfOffset),
            ("sizeof struct nfqnl_msg_config_params", sizeof(NfqnlMsgConfigParams)), ("sizeof struct nfqnl_msg_config_params", NfqnlMsgConfigParams.Size),
            ("offsetof struct nfqnl_msg_config_params.copy_range", Offset(&k, &k.CopyRangeBigEndian)), ("offsetof struct nfqnl_msg_config_params.copy_range", NfqnlMsgConfigParams.CopyRangeOffset),
            ("offsetof struct nfqnl_msg_config_params.copy_mode", Offset(&k, &k.CopyMode)), ("offsetof struct nfqnl_msg_config_params.copy_mode", NfqnlMsgConfigParams.CopyModeOffset),
            ("NFNL_SUBSYS_QUEUE", Nfqnl.Subsystem),
            ("NFQNL_MSG_PACKET", Nfqnl.MsgPacket & 0xFF), ("NFQNL_MSG_VERDICT", Nfqnl.MsgVerdict & 0xFF),
            ("NFQNL_MSG_CONFIG", Nfqnl.MsgConfig & 0xFF), ("NFQNL_MSG_VERDICT_BATCH", Nfqnl.MsgVerdictBatch & 0xFF),
            ("NFQA_PACKET_HDR", Nfqnl.AttrPacketHdr), ("NFQA_VERDICT_HDR", Nfqnl.AttrVerdictHdr), ("NFQA_MARK", Nfqnl.AttrMark),
            ("NFQA_TIMESTAMP", Nfqnl.AttrTimestamp), ("NFQA_IFINDEX_INDEV", Nfqnl.AttrIfIndexInDev), ("NFQA_IFINDEX_OUTDEV", Nfqnl.AttrIfIndexOutDev),
            ("NFQA_IFINDEX_PHYSINDEV", Nfqnl.AttrIfIndexPhysInDev), ("NFQA_IFINDEX_PHYSOUTDEV", Nfqnl.AttrIfIndexPhysOutDev),
            ("NFQA_HWADDR", Nfqnl.AttrHwAddr), ("NFQA_PAYLOAD", Nfqnl.AttrPayload), ("NFQA_CT", Nfqnl.AttrCt), ("NFQA_CT_INFO", Nfqnl.AttrCtInfo),
            ("NFQA_CAP_LEN", Nfqnl.AttrCapLen), ("NFQA_SKB_INFO", Nfqnl.AttrSkbInfo), ("NFQA_UID", Nfqnl.AttrUid), ("NFQA_GID", Nfqnl.AttrGid),
            ("NFQA_PRIORITY", Nfqnl.AttrPriority),
            ("NFQA_CFG_CMD", Nfqnl.CfgCmd), ("NFQA_CFG_PARAMS", Nfqnl.CfgParams), ("NFQA_CFG_QUEUE_MAXLEN", Nfqnl.CfgQueueMaxLen),
            ("NFQA_CFG_MASK", Nfqnl.CfgMask), ("NFQA_CFG_FLAGS", Nfqnl.CfgFlags),
            ("NFQNL_CFG_CMD_BIND", Nfqnl.CmdBind), ("NFQNL_CFG_CMD_UNBIND", Nfqnl.CmdUnbind),
            ("NFQNL_COPY_NONE", Nfqnl.CopyNone), ("NFQNL_COPY_META", Nfqnl.CopyMeta), ("NFQNL_COPY_PACKET", Nfqnl.CopyPacket),
            ("NFQA_CFG_F_FAIL_OPEN", Nfqnl.FlagFailOpen), ("NFQA_CFG_F_CONNTRACK", Nfqnl.FlagConntrack), ("NFQA_CFG_F_GSO", Nfqnl.FlagGso),
            ("NFQA_CFG_F_UID_GID", Nfqnl.FlagUidGid), ("NFQA_CFG_F_SECCTX", Nfqnl.FlagSecCtx),
            ("NFQA_SKB_CSUMNOTREADY", Nfqnl.SkbCsumNotReady), ("NFQA_SKB_GSO", Nfqnl.SkbGso), ("NFQA_SKB_CSUM_NOTVERIFIED", Nfqnl.SkbCsumNotVerified),
            ("NF_DROP", (long)NfVerdict.Drop), ("NF_ACCEPT", (long)NfVerdict.Accept), ("NF_QUEUE", (long)NfVerdict.Queue), ("NF_REPEAT", (long)NfVerdict.Repeat),
            ("NF_QUEUE_NR(7)|NF_VERDICT_FLAG_QUEUE_BYPASS", (long)NfVerdicts.QueueTo(7, bypass: true)),
            ("NF_INET_PRE_ROUTING", (long)NfHook.PreRouting), ("NF_INET_LOCAL_IN", (long)NfHook.LocalIn), ("NF_INET_FORWARD", (long)NfHook.Forward),
            ("NF_INET_LOCAL_OUT", (long)NfHook.LocalOut), ("NF_INET_POST_ROUTING", (long)NfHook.PostRouting),
            ("AF_UNSPEC", Nfqnl.AfUnspec),
        ];
    }

    private static unsafe List<(string, long)> SocketLayouts()
    {
        Interop.SockAddrNl n;
        Interop.TimeVal t;
        Interop.IfNameIndexEntry x;
        Interop.RUsage r;
        return
        [
            ("sizeof struct sockaddr_nl", sizeof(Interop.SockAddrNl)),
            ("offsetof struct sockaddr_nl.nl_family", Offset(&n, &n.Family)),
            ("offsetof struct sockaddr_nl.nl_pad", Offset(&n, &n.Pad)),
            ("offsetof struct sockaddr_nl.nl_pid", Offset(&n, &n.PortId)),
            ("offsetof struct sockaddr_nl.nl_groups", Offset(&n, &n.Groups)),
            ("sizeof struct timeval", sizeof(Interop.TimeVal)),
            ("offsetof struct timeval.tv_sec", Offset(&t, &t.Seconds)),
            ("offsetof struct timeval.tv_usec", Offset(&t, &t.Microseconds)),
            ("NETLINK_NETFILTER", Interop.NetlinkNetfilter), ("NETLINK_NO_ENOBUFS", Interop.NetlinkNoEnobufs),
            ("RUSAGE_SELF", Interop.RusageSelf), ("_SC_CLK_TCK", Interop.ScClkTck),
            // The ones taken from Tmds.LibC: the package's values for this architecture against the headers.
            ("AF_NETLINK", LibC.AF_NETLINK), ("AF_INET", LibC.AF_INET), ("AF_INET6", LibC.AF_INET6),
            ("SOCK_RAW", LibC.SOCK_RAW), ("SOCK_CLOEXEC", LibC.SOCK_CLOEXEC), ("IPPROTO_RAW", LibC.IPPROTO_RAW),
            ("SOL_SOCKET", LibC.SOL_SOCKET), ("SO_RCVBUF", LibC.SO_RCVBUF), ("SO_RCVBUFFORCE", LibC.SO_RCVBUFFORCE), ("SO_RCVTIMEO", LibC.SO_RCVTIMEO),
            ("SO_MARK", LibC.SO_MARK), ("SOL_NETLINK", LibC.SOL_NETLINK), ("CLONE_NEWNET", LibC.CLONE_NEWNET),
            ("sizeof socklen_t", sizeof(socklen_t)), ("sizeof size_t", sizeof(size_t)), ("sizeof ssize_t", sizeof(ssize_t)),
            ("sizeof struct if_nameindex", sizeof(Interop.IfNameIndexEntry)),
            ("offsetof struct if_nameindex.if_index", Offset(&x, &x.Index)), ("offsetof struct if_nameindex.if_name", Offset(&x, &x.Name)),
            ("sizeof struct rusage", sizeof(Interop.RUsage)),
            ("offsetof struct rusage.ru_utime", Offset(&r, &r.UserSeconds)), ("offsetof struct rusage.ru_stime", Offset(&r, &r.SystemSeconds)),
            ("offsetof struct rusage.ru_maxrss", Offset(&r, &r.MaxRssKiB)),
        ];
    }

    private static unsafe List<(string, long)> ShimLayouts()
    {
        Interop.Shim.RxSlot s;
        Interop.Shim.AbiInfo i;
        return
        [
            ("sizeof ctfw_rx_slot", sizeof(Interop.Shim.RxSlot)),
            ("offsetof ctfw_rx_slot.buffer", Offset(&s, &s.Buffer)),
            ("offsetof ctfw_rx_slot.capacity", Offset(&s, &s.Capacity)),
            ("offsetof ctfw_rx_slot.length", Offset(&s, &s.Length)),
            ("offsetof ctfw_rx_slot.flags", Offset(&s, &s.Flags)),
            ("offsetof ctfw_rx_slot.source_port", Offset(&s, &s.SourcePort)),
            ("sizeof ctfw_shim_abi_info", sizeof(Interop.Shim.AbiInfo)),
            ("offsetof ctfw_shim_abi_info.abi_version", Offset(&i, &i.AbiVersion)),
            ("offsetof ctfw_shim_abi_info.rx_slot_size", Offset(&i, &i.RxSlotSize)),
            ("offsetof ctfw_shim_abi_info.abi_info_size", Offset(&i, &i.AbiInfoSize)),
            ("offsetof ctfw_shim_abi_info.max_batch", Offset(&i, &i.MaxBatch)),
            ("offsetof ctfw_shim_abi_info.mmsghdr_size", Offset(&i, &i.MmsghdrSize)),
            ("offsetof ctfw_shim_abi_info.mmsghdr_msg_len_offset", Offset(&i, &i.MmsghdrMsgLenOffset)),
            ("offsetof ctfw_shim_abi_info.msghdr_size", Offset(&i, &i.MsghdrSize)),
            ("offsetof ctfw_shim_abi_info.msghdr_msg_flags_offset", Offset(&i, &i.MsghdrMsgFlagsOffset)),
            ("offsetof ctfw_shim_abi_info.iovec_size", Offset(&i, &i.IovecSize)),
            ("offsetof ctfw_shim_abi_info.sockaddr_nl_size", Offset(&i, &i.SockaddrNlSize)),
            ("CTFW_SHIM_ABI_VERSION", Interop.Shim.AbiVersion),
            ("CTFW_RECV_MAX_BATCH", Interop.Shim.MaxBatch),
            ("CTFW_RECV_NONBLOCKING", Interop.Shim.RecvNonblocking),
            ("CTFW_RECV_WAIT_FOR_ONE", Interop.Shim.RecvWaitForOne),
            ("CTFW_RX_TRUNCATED", Interop.Shim.RxTruncated),
        ];
    }

    private static unsafe long Offset<T>(T* structure, void* field)
        where T : unmanaged => (byte*)field - (byte*)structure;

    private static void AssertAll(IEnumerable<(string Name, long Value)> checks)
    {
        Dictionary<string, long> probe = s_probe.Value;
        List<string> failures = [];
        int compared = 0;
        foreach ((string name, long value) in checks)
        {
            if (!probe.TryGetValue(name, out long expected))
                failures.Add($"{name}: not printed by the probe");
            else if (expected != value)
                failures.Add($"{name}: headers say {expected}, C# has {value}");
            compared++;
        }
        Assert.True(compared > 0);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static Dictionary<string, long> RunProbe()
    {
        string dir = Directory.CreateTempSubdirectory("ctfw-layout-").FullName;
        try
        {
            string source = Path.Combine(dir, "probe.c");
            string binary = Path.Combine(dir, "probe");
            File.WriteAllText(source, ProbeSource);
            Run("cc", "-std=c11", "-Wall", "-Werror", "-I", RepoPaths.NativeShim, "-o", binary, source);
            string output = Run(binary);
            var values = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                int space = line.LastIndexOf(' ');
                values[line[..space]] = long.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            }
            return values;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // gcc on a busy 2-core machine may take longer than Tool's default 30 s.
    private static string Run(params string[] args) => Tool.Run(checkExit: true, TimeSpan.FromMinutes(5), args).StdOut;

    private const string ProbeSource = """
        #define _GNU_SOURCE
        #include <errno.h>
        #include <sched.h>
        #include <stddef.h>
        #include <stdio.h>
        #include <net/if.h>
        #include <netinet/in.h>
        #include <sys/resource.h>
        #include <sys/socket.h>
        #include <sys/stat.h>
        #include <unistd.h>
        #include <sys/time.h>
        #include <sys/uio.h>
        #include <linux/netlink.h>
        #include <linux/netfilter.h>
        #include <linux/netfilter/nfnetlink.h>
        #include <linux/netfilter/nfnetlink_queue.h>
        #include "ctfw_shim.h"

        #define S(t) printf("sizeof %s %zu\n", #t, sizeof(t));
        #define O(t, f) printf("offsetof %s.%s %zu\n", #t, #f, offsetof(t, f));
        #define V(c) printf("%s %lld\n", #c, (long long)(c));

        int main(void)
        {
            S(struct nlmsghdr) O(struct nlmsghdr, nlmsg_len) O(struct nlmsghdr, nlmsg_type) O(struct nlmsghdr, nlmsg_flags)
            O(struct nlmsghdr, nlmsg_seq) O(struct nlmsghdr, nlmsg_pid)
            S(struct nlmsgerr) O(struct nlmsgerr, error) O(struct nlmsgerr, msg)
            S(struct nlattr) O(struct nlattr, nla_len) O(struct nlattr, nla_type)
            printf("NLA_TYPE_MASK %d\n", (int)(unsigned short)NLA_TYPE_MASK); V(NLA_F_NESTED)
            S(struct nfgenmsg) O(struct nfgenmsg, nfgen_family) O(struct nfgenmsg, version) O(struct nfgenmsg, res_id)
            V(NFNETLINK_V0) V(NLMSG_NOOP) V(NLMSG_ERROR) V(NLMSG_DONE) V(NLMSG_OVERRUN)
            V(NLM_F_REQUEST) V(NLM_F_MULTI) V(NLM_F_ACK)
            printf("NLMSG_ALIGN(13) %d\n", (int)NLMSG_ALIGN(13)); printf("NLMSG_ALIGN(16) %d\n", (int)NLMSG_ALIGN(16));

            S(struct nfqnl_msg_packet_hdr) O(struct nfqnl_msg_packet_hdr, packet_id) O(struct nfqnl_msg_packet_hdr, hw_protocol)
            O(struct nfqnl_msg_packet_hdr, hook)
            S(struct nfqnl_msg_verdict_hdr) O(struct nfqnl_msg_verdict_hdr, verdict) O(struct nfqnl_msg_verdict_hdr, id)
            S(struct nfqnl_msg_config_cmd) O(struct nfqnl_msg_config_cmd, command) O(struct nfqnl_msg_config_cmd, pf)
            S(struct nfqnl_msg_config_params) O(struct nfqnl_msg_config_params, copy_range) O(struct nfqnl_msg_config_params, copy_mode)
            V(NFNL_SUBSYS_QUEUE) V(NFQNL_MSG_PACKET) V(NFQNL_MSG_VERDICT) V(NFQNL_MSG_CONFIG) V(NFQNL_MSG_VERDICT_BATCH)
            V(NFQA_PACKET_HDR) V(NFQA_VERDICT_HDR) V(NFQA_MARK) V(NFQA_TIMESTAMP) V(NFQA_IFINDEX_INDEV) V(NFQA_IFINDEX_OUTDEV)
            V(NFQA_IFINDEX_PHYSINDEV) V(NFQA_IFINDEX_PHYSOUTDEV) V(NFQA_HWADDR) V(NFQA_PAYLOAD) V(NFQA_CT) V(NFQA_CT_INFO)
            V(NFQA_CAP_LEN) V(NFQA_SKB_INFO) V(NFQA_UID) V(NFQA_GID) V(NFQA_PRIORITY)
            V(NFQA_CFG_CMD) V(NFQA_CFG_PARAMS) V(NFQA_CFG_QUEUE_MAXLEN) V(NFQA_CFG_MASK) V(NFQA_CFG_FLAGS)
            V(NFQNL_CFG_CMD_BIND) V(NFQNL_CFG_CMD_UNBIND) V(NFQNL_COPY_NONE) V(NFQNL_COPY_META) V(NFQNL_COPY_PACKET)
            V(NFQA_CFG_F_FAIL_OPEN) V(NFQA_CFG_F_CONNTRACK) V(NFQA_CFG_F_GSO) V(NFQA_CFG_F_UID_GID) V(NFQA_CFG_F_SECCTX)
            V(NFQA_SKB_CSUMNOTREADY) V(NFQA_SKB_GSO) V(NFQA_SKB_CSUM_NOTVERIFIED)
            V(NF_DROP) V(NF_ACCEPT) V(NF_QUEUE) V(NF_REPEAT)
            printf("NF_QUEUE_NR(7)|NF_VERDICT_FLAG_QUEUE_BYPASS %lld\n", (long long)(NF_QUEUE_NR(7) | NF_VERDICT_FLAG_QUEUE_BYPASS));
            V(NF_INET_PRE_ROUTING) V(NF_INET_LOCAL_IN) V(NF_INET_FORWARD) V(NF_INET_LOCAL_OUT) V(NF_INET_POST_ROUTING)
            V(AF_UNSPEC)

            S(struct sockaddr_nl) O(struct sockaddr_nl, nl_family) O(struct sockaddr_nl, nl_pad) O(struct sockaddr_nl, nl_pid)
            O(struct sockaddr_nl, nl_groups)
            S(struct timeval) O(struct timeval, tv_sec) O(struct timeval, tv_usec)
            S(struct mmsghdr) O(struct mmsghdr, msg_len) S(struct msghdr) O(struct msghdr, msg_flags) S(struct iovec)
            V(AF_NETLINK) V(SOCK_RAW) V(SOCK_CLOEXEC) V(NETLINK_NETFILTER) V(SOL_SOCKET) V(SO_RCVBUF) V(SO_RCVBUFFORCE)
            V(SO_RCVTIMEO) V(SOL_NETLINK) V(NETLINK_NO_ENOBUFS) V(CLONE_NEWNET)
            V(AF_INET) V(AF_INET6) V(IPPROTO_RAW) V(SO_MARK) V(RUSAGE_SELF) V(_SC_CLK_TCK)
            S(socklen_t) S(size_t) S(ssize_t)
            S(struct if_nameindex) O(struct if_nameindex, if_index) O(struct if_nameindex, if_name)
            S(struct rusage) O(struct rusage, ru_utime) O(struct rusage, ru_stime) O(struct rusage, ru_maxrss)

            S(ctfw_rx_slot) O(ctfw_rx_slot, buffer) O(ctfw_rx_slot, capacity) O(ctfw_rx_slot, length) O(ctfw_rx_slot, flags)
            O(ctfw_rx_slot, source_port)
            S(ctfw_shim_abi_info) O(ctfw_shim_abi_info, abi_version) O(ctfw_shim_abi_info, rx_slot_size)
            O(ctfw_shim_abi_info, abi_info_size) O(ctfw_shim_abi_info, max_batch) O(ctfw_shim_abi_info, mmsghdr_size)
            O(ctfw_shim_abi_info, mmsghdr_msg_len_offset) O(ctfw_shim_abi_info, msghdr_size)
            O(ctfw_shim_abi_info, msghdr_msg_flags_offset) O(ctfw_shim_abi_info, iovec_size) O(ctfw_shim_abi_info, sockaddr_nl_size)
            V(CTFW_SHIM_ABI_VERSION) V(CTFW_RECV_MAX_BATCH) V(CTFW_RECV_NONBLOCKING) V(CTFW_RECV_WAIT_FOR_ONE) V(CTFW_RX_TRUNCATED)

            V(EPERM) V(ENOENT) V(ESRCH) V(EINTR) V(EIO) V(EBADF) V(EAGAIN) V(ENOMEM) V(EACCES) V(EFAULT) V(EBUSY) V(EEXIST)
            V(ENODEV) V(EINVAL) V(ENFILE) V(EMFILE) V(ENOSPC) V(ERANGE) V(ENOSYS) V(ENOTSOCK) V(EMSGSIZE) V(EPROTOTYPE)
            V(ENOPROTOOPT) V(EPROTONOSUPPORT) V(EOPNOTSUPP) V(EAFNOSUPPORT) V(EADDRINUSE) V(ECONNRESET) V(ENOBUFS) V(ECONNREFUSED)
            V(ENOTDIR) V(ENAMETOOLONG) V(ELOOP)

            V(SO_PEERCRED) S(struct ucred) O(struct ucred, pid) O(struct ucred, uid) O(struct ucred, gid)
            V(S_IFMT) V(S_IFREG) V(S_IFDIR) V(S_IFLNK) V(S_IFSOCK)
            return 0;
        }
        """;
}
