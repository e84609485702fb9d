using System.Runtime.InteropServices;

namespace Ctfw.Linux;

/// <summary>The interfaces of the current network namespace, by index.</summary>
public static class NetInterfaces
{
    /// <summary>
    /// (ifindex, name) of every interface, read with if_nameindex(3) over rtnetlink. Right in any
    /// namespace the thread is in — sysfs is not: under <c>nsenter --net</c> /sys/class/net still
    /// shows the namespace it was mounted in. Empty when the call fails. Setup path only.
    /// </summary>
    public static unsafe List<(uint Index, string Name)> List()
    {
        List<(uint, string)> result = [];
        Interop.IfNameIndexEntry* list = Interop.IfNameIndex();
        if (list is null)
            return result;
        try
        {
            for (Interop.IfNameIndexEntry* e = list; e->Index != 0; e++)
            {
                if (Marshal.PtrToStringUTF8(e->Name) is { } name)
                    result.Add((e->Index, name));
            }
        }
        finally
        {
            Interop.IfFreeNameIndex(list);
        }
        return result;
    }
}
