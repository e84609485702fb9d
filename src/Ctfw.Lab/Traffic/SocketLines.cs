using System.Net.Sockets;
using System.Text;

namespace Ctfw.Lab.Traffic;

/// <summary>The receive side of the lab's line protocols ("m N\n" echoes and the like).</summary>
public static class SocketLines
{
    /// <summary>
    /// Reads <paramref name="socket"/> until the peer closes it, calling <paramref name="onLine"/> for
    /// each '\n'-terminated line (ASCII, without the '\n'). Returns when the peer closed the
    /// connection; throws what the socket throws (reset, timeout, disposal).
    /// </summary>
    public static void ReadUntilClosed(Socket socket, Action<string> onLine)
    {
        byte[] buffer = new byte[4096];
        var line = new StringBuilder();
        while (true)
        {
            int got = socket.Receive(buffer);
            if (got == 0)
                return;
            for (int i = 0; i < got; i++)
            {
                if (buffer[i] != (byte)'\n')
                {
                    line.Append((char)buffer[i]);
                    continue;
                }
                onLine(line.ToString());
                line.Clear();
            }
        }
    }
}
