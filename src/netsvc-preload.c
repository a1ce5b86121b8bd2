/* libnetsvc-preload.so: socket activation for servers never written for it.
 *
 * systemd binds the service's listening sockets in a .socket unit and passes them as fds
 * 3..3+LISTEN_FDS-1 (LISTEN_PID = the main process). A server that never calls
 * sd_listen_fds() binds its port itself, which then fails with EADDRINUSE. Preloaded into
 * the server, this library interposes bind(): for a TCP socket whose address matches one of
 * the passed listening sockets (same family and port; the same address, or a passed
 * wildcard), it copies the caller's common socket options onto the passed socket, dup3()s
 * the passed socket over the caller's fd (keeping the caller's FD_CLOEXEC and O_NONBLOCK)
 * and returns 0: the server's listen() then works on the socket PID 1 holds, which survives
 * every crash. Everything else goes to the real bind() untouched: other ports, UDP, unix
 * sockets, other processes (LISTEN_PID differs), and any error on the way.
 * listen() on a socket taken over keeps at least NETSVC_PRELOAD_BACKLOG (the socket unit's
 * Backlog=): the backlog is what holds connections while the server restarts, and a server's
 * own small value (socat asks for 5) would otherwise replace it on the shared socket.
 * shutdown() of a socket taken over does nothing: it would stop PID 1's socket listening
 * ("Got POLLHUP on a listening socket"; socat does it when stopped), and the socket unit would
 * fail. The server's close() only drops its own reference.
 *
 * Loads on every target glibc: the kernel is called through syscall() (glibc 2.2.5), so the
 * newest symbol version needed is what getenv/strtol/syscall/__errno_location carry (2.2.5
 * on x86_64, 2.17 on aarch64). Static binaries and Go (raw syscalls) ignore LD_PRELOAD;
 * the module refuses them.
 * GNU GPL v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_PASSED 64
#define EXPORT __attribute__((visibility("default")))

static int taken[MAX_PASSED];
static int n_taken;

static long sys(long n, long a, long b, long c, long d, long e)
{
	return syscall(n, a, b, c, d, e);
}

static int passed_count(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char *end;
	long p, n;
	if (!pid || !fds)
		return 0;
	p = strtol(pid, &end, 10);
	if (*end || p != sys(SYS_getpid, 0, 0, 0, 0, 0))
		return 0;
	n = strtol(fds, &end, 10);
	if (*end || n <= 0)
		return 0;
	return n > MAX_PASSED ? MAX_PASSED : (int)n;
}

static int int_opt(int fd, int level, int name, int *value)
{
	socklen_t len = sizeof(*value);
	return sys(SYS_getsockopt, fd, level, name, (long)value, (long)&len) == 0 ? 0 : -1;
}

static int bytes_equal(const void *a, const void *b, unsigned long n)
{
	const unsigned char *p = a, *q = b;
	while (n--)
		if (*p++ != *q++)
			return 0;
	return 1;
}

/* 2: same family, port and address; 1: same family and port, passed one is a wildcard */
static int match(const struct sockaddr *want, const struct sockaddr_storage *have)
{
	if (want->sa_family != have->ss_family)
		return 0;
	if (want->sa_family == AF_INET) {
		const struct sockaddr_in *w = (const void *)want, *h = (const void *)have;
		if (w->sin_port != h->sin_port)
			return 0;
		if (w->sin_addr.s_addr == h->sin_addr.s_addr)
			return 2;
		return h->sin_addr.s_addr == htonl(INADDR_ANY) ? 1 : 0;
	}
	{
		const struct sockaddr_in6 *w = (const void *)want, *h = (const void *)have;
		static const unsigned char any[16];
		if (w->sin6_port != h->sin6_port)
			return 0;
		if (bytes_equal(&w->sin6_addr, &h->sin6_addr, 16))
			return 2;
		return bytes_equal(&h->sin6_addr, any, 16) ? 1 : 0;
	}
}

/* Options a server commonly sets before bind(); copied so nothing it asked for is lost. */
static const int copied[][2] = {
	{SOL_SOCKET, SO_KEEPALIVE}, {SOL_SOCKET, SO_RCVBUF}, {SOL_SOCKET, SO_SNDBUF},
	{IPPROTO_TCP, TCP_NODELAY}, {IPPROTO_TCP, TCP_DEFER_ACCEPT}, {IPPROTO_TCP, TCP_FASTOPEN},
};

static int take_over(int fd, const struct sockaddr *addr, socklen_t len)
{
	int n = passed_count(), best = -1, best_score = 0, type, fd_flags, fl_flags, i;
	if (n <= 0 || !addr || len < sizeof(struct sockaddr_in) ||
	    (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
	    (addr->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6)))
		return -1;
	if (int_opt(fd, SOL_SOCKET, SO_TYPE, &type) || type != SOCK_STREAM)
		return -1;
	for (i = 0; i < n; i++) {
		int cand = 3 + i, listening, score;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (cand == fd || sys(SYS_getsockname, cand, (long)&ss, (long)&sl, 0, 0) != 0)
			continue;
		if (int_opt(cand, SOL_SOCKET, SO_TYPE, &type) || type != SOCK_STREAM ||
		    int_opt(cand, SOL_SOCKET, SO_ACCEPTCONN, &listening) || !listening)
			continue;
		score = match(addr, &ss);
		if (score > best_score) {
			best = cand;
			best_score = score;
		}
	}
	if (best < 0)
		return -1;
	fd_flags = (int)sys(SYS_fcntl, fd, F_GETFD, 0, 0, 0);
	fl_flags = (int)sys(SYS_fcntl, fd, F_GETFL, 0, 0, 0);
	if (fd_flags < 0 || fl_flags < 0)
		return -1;
	for (i = 0; i < (int)(sizeof(copied) / sizeof(copied[0])); i++) {
		int v;
		if (int_opt(fd, copied[i][0], copied[i][1], &v) == 0)
			sys(SYS_setsockopt, best, copied[i][0], copied[i][1], (long)&v, sizeof(v));
	}
	if (sys(SYS_dup3, best, fd, (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0, 0, 0) != fd)
		return -1;
	if (n_taken < MAX_PASSED)
		taken[n_taken++] = fd;
	/* O_NONBLOCK lives in the open file description, shared with the passed fd: the
	 * caller's choice wins, as it would on its own socket */
	{
		long now = sys(SYS_fcntl, fd, F_GETFL, 0, 0, 0);
		if (now >= 0)
			sys(SYS_fcntl, fd, F_SETFL, (now & ~O_NONBLOCK) | (fl_flags & O_NONBLOCK), 0, 0);
	}
	return 0;
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int saved = errno;
	if (take_over(fd, addr, len) == 0) {
		errno = saved;
		return 0;
	}
	errno = saved;
	return (int)sys(SYS_bind, fd, (long)addr, len, 0, 0);
}

static int is_taken(int fd)
{
	int i;
	for (i = 0; i < n_taken; i++)
		if (taken[i] == fd)
			return 1;
	return 0;
}

EXPORT int shutdown(int fd, int how)
{
	int listening;
	if (is_taken(fd) && int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening) == 0 && listening)
		return 0;
	return (int)sys(SYS_shutdown, fd, how, 0, 0, 0);
}

EXPORT int listen(int fd, int backlog)
{
	const char *want = getenv("NETSVC_PRELOAD_BACKLOG");
	if (want && is_taken(fd)) {
		char *end;
		long floor = strtol(want, &end, 10);
		if (!*end && floor > backlog && floor <= 1 << 20)
			backlog = (int)floor;
	}
	return (int)sys(SYS_listen, fd, backlog, 0, 0, 0);
}
