namespace Ctfw.Linux.Nfqueue;

/// <summary>The netfilter hook a packet was queued from (enum nf_inet_hooks).</summary>
public enum NfHook : byte
{
    PreRouting = 0,
    LocalIn = 1,
    Forward = 2,
    LocalOut = 3,
    PostRouting = 4,
}
