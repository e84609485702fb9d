namespace Ctfw.Linux;

/// <summary>
/// Linux errno values (asm-generic/errno-base.h and errno.h; identical on x86-64 and arm64).
/// Errors cross the interop boundary as this type, never as a bare int.
/// </summary>
public enum Errno
{
    None = 0,
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    ENOTDIR = 20,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOSPC = 28,
    ERANGE = 34,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ELOOP = 40,
    ENOTSOCK = 88,
    EMSGSIZE = 90,
    EPROTOTYPE = 91,
    ENOPROTOOPT = 92,
    EPROTONOSUPPORT = 93,
    EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    ECONNRESET = 104,
    ENOBUFS = 105,
    ECONNREFUSED = 111,
}
