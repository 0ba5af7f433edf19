/*
 * A minimal TUN forwarder: the floor linkemu is measured against
 * (bench/peers/linkemu_vs_forwarder.sh). It opens TUN device DEV in each
 * of two existing network namespaces and copies every IP packet read from
 * one device to the other at once, in one poll loop, with no impairment,
 * no queue and no counters.
 *
 *   tun_forwarder NS_A NS_B DEV [vnet]
 *
 * With `vnet` the devices carry a virtio-net header (IFF_VNET_HDR), as
 * the testbed's do, but grant no offloads: every packet still crosses on
 * its own, and the header is copied through as read. That is the kernel
 * work the header costs per packet, without what it buys.
 *
 * NS_A and NS_B are names under /var/run/netns (`ip netns add`). The
 * devices come up unconfigured and vanish when this process exits; the
 * caller sets addresses, MTU and txqueuelen as the testbed does. Prints
 * "ready" on stdout once both devices exist.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    _exit(1);
}

/* Enters namespace `ns` and opens (creating) TUN device `dev` there. The
 * device stays in the namespace it was made in, whatever this process
 * enters afterwards. */
static int open_tun_in(const char *ns, const char *dev, bool vnet)
{
    char path[256];
    snprintf(path, sizeof path, "/var/run/netns/%s", ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
        die(path);
    close(nsfd);

    /* Non-blocking, so a ready device can be drained until EAGAIN. */
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        die("/dev/net/tun");
    struct ifreq req;
    memset(&req, 0, sizeof req);
    /* Bare IP packets: no packet-info header, and by default no
     * virtio-net header, so no offloads and no GSO super-packets either
     * (the testbed's devices have both: the forwarder is the floor
     * without them). */
    req.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
    strncpy(req.ifr_name, dev, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &req) < 0)
        die("TUNSETIFF");
    return fd;
}

/* Moves every packet `from` holds to `to`. False if reading failed. */
static int drain(int from, int to)
{
    static unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        if (write(to, buf, (size_t)n) < 0) {
            /* Refused (device down, queue full): lost, as on a wire. */
        }
    }
}

int main(int argc, char **argv)
{
    bool vnet = argc == 5 && strcmp(argv[4], "vnet") == 0;
    if (argc != 4 && !vnet) {
        fprintf(stderr, "usage: %s NS_A NS_B DEV [vnet]\n", argv[0]);
        return 2;
    }
    int a = open_tun_in(argv[1], argv[3], vnet);
    int b = open_tun_in(argv[2], argv[3], vnet);
    printf("ready\n");
    fflush(stdout);

    struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        /* A device gone (its namespace deleted) ends the forwarder. */
        if ((fds[0].revents | fds[1].revents) & (POLLERR | POLLHUP | POLLNVAL))
            return 0;
        if ((fds[0].revents & POLLIN) && !drain(a, b))
            die("a -> b");
        if ((fds[1].revents & POLLIN) && !drain(b, a))
            die("b -> a");
    }
}
