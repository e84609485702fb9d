/* See ctfw_shim.h for the contract. Kept deliberately thin: no policy, no allocation. */
#define _GNU_SOURCE
#include "ctfw_shim.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/netlink.h>

/* The structs that cross the managed boundary: the managed mirrors assume exactly this. */
_Static_assert(sizeof(ctfw_rx_slot) == 24, "ctfw_rx_slot size");
_Static_assert(offsetof(ctfw_rx_slot, buffer) == 0, "ctfw_rx_slot.buffer");
_Static_assert(offsetof(ctfw_rx_slot, capacity) == 8, "ctfw_rx_slot.capacity");
_Static_assert(offsetof(ctfw_rx_slot, length) == 12, "ctfw_rx_slot.length");
_Static_assert(offsetof(ctfw_rx_slot, flags) == 16, "ctfw_rx_slot.flags");
_Static_assert(offsetof(ctfw_rx_slot, source_port) == 20, "ctfw_rx_slot.source_port");
_Static_assert(sizeof(ctfw_shim_abi_info) == 40, "ctfw_shim_abi_info size");
_Static_assert(offsetof(ctfw_shim_abi_info, abi_version) == 0, "ctfw_shim_abi_info.abi_version");
_Static_assert(offsetof(ctfw_shim_abi_info, sockaddr_nl_size) == 36, "ctfw_shim_abi_info.sockaddr_nl_size");
_Static_assert(sizeof(int32_t) == sizeof(int), "errno and fd travel as int32_t");

/* The libc/kernel structs the shim builds itself (LP64 Linux; the tests compare them with the
   headers and with what ctfw_shim_abi reports). */
_Static_assert(sizeof(void *) == 8, "64-bit only: ctfw_rx_slot.buffer is converted to a pointer");
_Static_assert(sizeof(struct iovec) == 16, "iovec");
_Static_assert(sizeof(struct msghdr) == 56, "msghdr");
_Static_assert(offsetof(struct mmsghdr, msg_len) == sizeof(struct msghdr), "mmsghdr.msg_len follows msg_hdr");
_Static_assert(sizeof(struct mmsghdr) == 64, "mmsghdr");
_Static_assert(sizeof(struct sockaddr_nl) == 12, "sockaddr_nl");
_Static_assert(CTFW_RECV_MAX_BATCH * (sizeof(struct mmsghdr) + sizeof(struct iovec) + sizeof(struct sockaddr_nl)) <= 32768,
               "stack budget of ctfw_recv_batch");

int32_t ctfw_recv_batch(int32_t fd, ctfw_rx_slot *slots, uint32_t count, int32_t mode, int32_t *error)
{
    struct mmsghdr msgs[CTFW_RECV_MAX_BATCH];
    struct iovec iov[CTFW_RECV_MAX_BATCH];
    struct sockaddr_nl from[CTFW_RECV_MAX_BATCH];
    int flags;

    *error = 0;
    if (slots == NULL || count == 0 || count > CTFW_RECV_MAX_BATCH) {
        *error = EINVAL;
        return -1;
    }
    switch (mode) {
    case CTFW_RECV_NONBLOCKING: flags = MSG_DONTWAIT; break;
    case CTFW_RECV_WAIT_FOR_ONE: flags = MSG_WAITFORONE; break;
    default: *error = EINVAL; return -1;
    }

    memset(msgs, 0, count * sizeof(msgs[0]));
    for (uint32_t i = 0; i < count; i++) {
        iov[i].iov_base = (void *)(uintptr_t)slots[i].buffer;
        iov[i].iov_len = slots[i].capacity;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
    }

    int n = recvmmsg(fd, msgs, count, flags, NULL);
    if (n < 0) {
        *error = errno;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        uint32_t len = msgs[i].msg_len;
        slots[i].length = len < slots[i].capacity ? len : slots[i].capacity;
        slots[i].flags = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? CTFW_RX_TRUNCATED : 0;
        /* A short or foreign address cannot be trusted as "from the kernel". */
        slots[i].source_port = (msgs[i].msg_hdr.msg_namelen >= sizeof(struct sockaddr_nl) && from[i].nl_family == AF_NETLINK)
                                   ? from[i].nl_pid
                                   : UINT32_MAX;
    }
    return n;
}

int32_t ctfw_send(int32_t fd, const uint8_t *buffer, uint32_t length, int32_t *error)
{
    struct sockaddr_nl kernel;
    struct iovec iov;
    struct msghdr msg;

    *error = 0;
    memset(&kernel, 0, sizeof(kernel));
    kernel.nl_family = AF_NETLINK;
    iov.iov_base = (void *)buffer;
    iov.iov_len = length;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = &kernel;
    msg.msg_namelen = sizeof(kernel);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;

    for (;;) {
        ssize_t sent = sendmsg(fd, &msg, 0);
        if (sent >= 0)
            return (int32_t)sent;
        if (errno != EINTR) {
            *error = errno;
            return -1;
        }
    }
}

uint32_t ctfw_shim_abi(ctfw_shim_abi_info *info)
{
    if (info != NULL) {
        info->abi_version = CTFW_SHIM_ABI_VERSION;
        info->rx_slot_size = (uint32_t)sizeof(ctfw_rx_slot);
        info->abi_info_size = (uint32_t)sizeof(ctfw_shim_abi_info);
        info->max_batch = CTFW_RECV_MAX_BATCH;
        info->mmsghdr_size = (uint32_t)sizeof(struct mmsghdr);
        info->mmsghdr_msg_len_offset = (uint32_t)offsetof(struct mmsghdr, msg_len);
        info->msghdr_size = (uint32_t)sizeof(struct msghdr);
        info->msghdr_msg_flags_offset = (uint32_t)offsetof(struct msghdr, msg_flags);
        info->iovec_size = (uint32_t)sizeof(struct iovec);
        info->sockaddr_nl_size = (uint32_t)sizeof(struct sockaddr_nl);
    }
    return CTFW_SHIM_ABI_VERSION;
}
