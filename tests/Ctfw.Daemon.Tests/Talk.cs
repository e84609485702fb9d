using System.Net.Sockets;
using System.Text;

namespace Ctfw.Daemon.Tests;

/// <summary>One request/answer over a connected socket, as the live tests' echo servers answer it.</summary>
internal static class Talk
{
    /// <summary>Sends <paramref name="message"/> and returns the answer, "timeout" when none came in time, or "refused" (an ICMP unreachable for UDP).</summary>
    public static async Task<string> Say(Socket socket, string message, double timeoutSeconds = 3)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes(message), SocketFlags.None, cts.Token);
            byte[] buffer = new byte[1500];
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return Encoding.ASCII.GetString(buffer, 0, n);
        }
        catch (OperationCanceledException)
        {
            return "timeout";
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return "refused";
        }
    }
}
