using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Lab.Network;

/// <summary>Opens sockets inside a named network namespace (see <see cref="NetworkNamespace.Run"/>).</summary>
public static class Netns
{
    /// <summary>Runs <paramref name="action"/> on a throw-away thread inside <c>/run/netns/&lt;name&gt;</c>.</summary>
    public static T Run<T>(string name, Func<T> action) => NetworkNamespace.Run(NetworkNamespace.PathOf(name), action);

    /// <summary>
    /// A raw IP socket (IPPROTO_RAW: the caller supplies the whole IP header; for IPv6 this implies
    /// IPV6_HDRINCL since Linux 4.5) opened inside the named namespace.
    /// </summary>
    public static Socket OpenRawSocket(string name, bool v6) => Run(name, () =>
        new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Raw));
}
