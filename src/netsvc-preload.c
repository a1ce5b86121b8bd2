/* libnetsvc-preload.so: socket activation for servers never written for it.
 *
 * systemd binds the service's listening sockets in a .socket unit and passes them as fds
 * 3..3+LISTEN_FDS-1 (LISTEN_PID = the main process). A server that never calls
 * sd_listen_fds() binds its port itself, which then fails with EADDRINUSE. Preloaded into
 * the server, this library hands the passed socket to the server's bind() - and otherwise
 * leaves the server exactly as it is without the library:
 *
 * - Passed fds, as libsystemd's sd_listen_fds(unset_environment=1) treats them: read once at
 *   load time, marked FD_CLOEXEC, and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES removed from the
 *   environment, so no program the server starts gets the sockets or the variables. A
 *   re-exec of the same process (same pid: haproxy's master, a server re-executing itself
 *   on SIGHUP) gets them again through the exec*() wrappers below, as NETSVC_PRELOAD_FDS
 *   (pid, fd and socket inode of each), which the new image reads, checks and removes.
 * - Exact match only: bind() takes a passed socket when family, address and port are the
 *   same, and the options that decide who reaches the socket are the same too
 *   (SO_BINDTODEVICE, SO_MARK, IP_TRANSPARENT, IPV6_V6ONLY). Anything else goes to the
 *   real bind(), with one line on stderr when the port is a passed one. Never a wider socket.
 * - Options as the server set them: setsockopt() on a not-yet-bound socket is recorded, and
 *   replayed onto the passed socket at the take-over. Nothing else is set, so buffers the
 *   server did not size stay autotuned (setting SO_SNDBUF/SO_RCVBUF, even to the value they
 *   report, locks them for every accepted socket). Options an earlier instance set on the
 *   shared socket and this one did not are put back to a fresh socket's value (keepalive,
 *   nodelay, defer-accept, fast open, ...); a buffer size cannot be unlocked, so that one is
 *   reported on stderr.
 * - listen() on a socket taken over keeps at least NETSVC_PRELOAD_BACKLOG (the socket unit's
 *   Backlog=): the backlog is what holds connections while the server restarts, and a
 *   server's own small value (socat asks for 5) would otherwise replace it on the socket.
 * - shutdown(SHUT_RD or SHUT_RDWR) of a socket taken over (a graceful stop that wakes the
 *   accept() threads) never reaches PID 1's socket, which would stop listening for every
 *   holder and reset the queued connections: the server's fd is switched to a socket of its
 *   own that is not listening, and the threads blocked in accept() on it are interrupted
 *   (a signal without SA_RESTART); their next accept() fails with EINVAL as after a real
 *   shutdown. The threads in accept() are known from the library's accept()/accept4()
 *   wrappers (a slot per thread while it is in the call), so a server that dropped its
 *   privileges - not dumpable, its /proc/self/task/TID/syscall unreadable - stops as fast;
 *   /proc is read too, for a raw accept system call. PID 1's socket keeps listening with its queue, for the next instance. A thread
 *   that does not take the signal within 100 ms (it blocks it) is woken by a real shutdown,
 *   and the socket listens again at once: the connections queued at that moment are reset,
 *   as they would be without the library. A later listen() on that fd (haproxy resumes a
 *   paused listener) gets PID 1's socket back.
 *
 * Loads on every target glibc: the kernel is called through syscall(), and nothing needs a
 * symbol version newer than GLIBC_2.17 (EL7). Static binaries and Go (raw syscalls) ignore
 * LD_PRELOAD; the module refuses them.
 * GNU GPL v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_PASSED 64
#define MAX_RECS 128
#define MAX_OPT 64
#define MAX_PARKED 64
#define MAX_ENV 4096
#define EXPORT __attribute__((visibility("default")))

#ifndef SO_MARK
#define SO_MARK 36
#endif
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IP_FREEBIND
#define IP_FREEBIND 15
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif
#ifndef SO_REUSEPORT
#define SO_REUSEPORT 15
#endif
#ifndef TCP_FASTOPEN
#define TCP_FASTOPEN 23
#endif
#ifndef TCP_USER_TIMEOUT
#define TCP_USER_TIMEOUT 18
#endif
#ifndef TCP_NOTSENT_LOWAT
#define TCP_NOTSENT_LOWAT 25
#endif

extern char **environ;

struct passed {
	int fd;
	unsigned long ino;
	int family;
};

struct rec {	/* one setsockopt() on a socket not bound yet */
	int used, fd, level, name;
	unsigned long ino;
	unsigned len;
	unsigned char val[MAX_OPT];
};

static struct passed passed[MAX_PASSED];
static int n_passed;
static long owner;		/* the process systemd passed the sockets to */
static int backlog_floor;
static int armed;		/* record setsockopt() until every passed socket was taken once */
static int taken_once[MAX_PASSED];
static struct rec recs[MAX_RECS];
static int parked[MAX_PARKED];	/* fds switched away from PID 1's socket by shutdown(), +1 */
static int parked_from[MAX_PARKED];
static unsigned long parked_ino[MAX_PARKED];	/* the stand-in socket's inode */
static int wake_sig;
static volatile int lock_word;
/* Threads in accept()/accept4() right now, and on which fd: recorded by the library's own
 * accept wrappers, so a graceful stop finds them without reading /proc/self/task/TID/syscall,
 * which a process that dropped privileges (not dumpable) cannot read. */
#define MAX_ACCEPTERS 256
static long accepter_tid[MAX_ACCEPTERS];
static int accepter_fd[MAX_ACCEPTERS];

static long sys(long n, long a, long b, long c, long d, long e)
{
	return syscall(n, a, b, c, d, e);
}

static void lock(void)
{
	while (__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE))
		;
}

static void unlock(void)
{
	__atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------ small helpers */

static unsigned long slen(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static int bytes_equal(const void *a, const void *b, unsigned long n)
{
	const unsigned char *p = a, *q = b;
	while (n--)
		if (*p++ != *q++)
			return 0;
	return 1;
}

static void bytes_copy(void *to, const void *from, unsigned long n)
{
	unsigned char *p = to;
	const unsigned char *q = from;
	while (n--)
		*p++ = *q++;
}

struct line {
	char b[512];
	unsigned long n;
};

static void put(struct line *l, const char *s)
{
	while (*s && l->n < sizeof(l->b) - 1)
		l->b[l->n++] = *s++;
}

static void putu(struct line *l, unsigned long v)
{
	char d[24];
	int i = 0;
	do
		d[i++] = (char)('0' + v % 10);
	while ((v /= 10) && i < 23);
	while (i && l->n < sizeof(l->b) - 1)
		l->b[l->n++] = d[--i];
}

static void put_addr(struct line *l, const struct sockaddr *a)
{
	char text[INET6_ADDRSTRLEN];
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)a;
		put(l, inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text)) ? text : "?");
		put(l, ":");
		putu(l, ntohs(v4->sin_port));
	} else {
		const struct sockaddr_in6 *v6 = (const void *)a;
		put(l, "[");
		put(l, inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text)) ? text : "?");
		put(l, "]:");
		putu(l, ntohs(v6->sin6_port));
	}
}

static void say(struct line *l)
{
	l->b[l->n++] = '\n';
	sys(SYS_write, 2, (long)l->b, (long)l->n, 0, 0);
}

static unsigned long inode_of(int fd)
{
	struct stat st;
	if (sys(SYS_fstat, fd, (long)&st, 0, 0, 0) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return (unsigned long)st.st_ino;
}

static int int_opt(int fd, int level, int name, int *value)
{
	socklen_t len = sizeof(*value);
	*value = 0;
	return sys(SYS_getsockopt, fd, level, name, (long)value, (long)&len) == 0 ? 0 : -1;
}

static int set_cloexec(int fd, int on)
{
	long flags = sys(SYS_fcntl, fd, F_GETFD, 0, 0, 0);
	if (flags < 0)
		return -1;
	flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
	return (int)sys(SYS_fcntl, fd, F_SETFD, flags, 0, 0);
}

static int parse_long(const char **s, long *out)
{
	long v = 0;
	const char *p = *s;
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (*p++ - '0');
	*s = p;
	*out = v;
	return 1;
}

/* index into passed[] of the socket ``fd`` refers to, or -1 */
static int passed_index(int fd)
{
	unsigned long ino;
	int i;
	if (!n_passed || !(ino = inode_of(fd)))
		return -1;
	for (i = 0; i < n_passed; i++)
		if (passed[i].ino == ino)
			return i;
	return -1;
}

/* ------------------------------------------------------------------ load time */

static void add_passed(int fd, unsigned long ino)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (n_passed >= MAX_PASSED || !ino)
		return;
	if (sys(SYS_getsockname, fd, (long)&ss, (long)&sl, 0, 0) != 0)
		return;
	passed[n_passed].fd = fd;
	passed[n_passed].ino = ino;
	passed[n_passed].family = ss.ss_family;
	n_passed++;
	set_cloexec(fd, 1);
}

/* NETSVC_PRELOAD_FDS=PID:FD/INO,FD/INO... left by our exec wrapper for a re-exec */
static void from_reexec(const char *text, long pid)
{
	long p, fd, ino;
	if (!parse_long(&text, &p) || *text++ != ':' || p != pid)
		return;
	while (*text) {
		if (!parse_long(&text, &fd) || *text++ != '/' || !parse_long(&text, &ino))
			return;
		if (inode_of((int)fd) == (unsigned long)ino)
			add_passed((int)fd, (unsigned long)ino);
		if (*text == ',')
			text++;
	}
}

__attribute__((constructor)) static void netsvc_preload_init(void)
{
	const char *lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS"), *re = getenv("NETSVC_PRELOAD_FDS");
	const char *bl = getenv("NETSVC_PRELOAD_BACKLOG");
	long pid = sys(SYS_getpid, 0, 0, 0, 0, 0), v;
	if (bl && parse_long(&bl, &v) && !*bl && v > 0 && v <= 1 << 20)
		backlog_floor = (int)v;
	if (lp && lf && parse_long(&lp, &v) && !*lp && v == pid) {
		long n, i;
		if (parse_long(&lf, &n) && !*lf && n > 0) {
			for (i = 0; i < n && i < MAX_PASSED; i++)
				add_passed(3 + (int)i, inode_of(3 + (int)i));
		}
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	} else if (re) {
		from_reexec(re, pid);
	}
	if (re)
		unsetenv("NETSVC_PRELOAD_FDS");
	if (n_passed) {
		owner = pid;
		armed = 1;
	}
}

/* ------------------------------------------------------------------ options */

/* Options that decide who reaches the socket: they must already be the same. */
static int identity_mismatch(int fd, int cand, int family, struct line *why)
{
	static const struct {
		int level, name, family;
		const char *what;
	} checked[] = {
		{SOL_SOCKET, SO_MARK, 0, "SO_MARK"},
		{SOL_IP, IP_TRANSPARENT, AF_INET, "IP_TRANSPARENT"},
		{SOL_IPV6, IPV6_TRANSPARENT, AF_INET6, "IPV6_TRANSPARENT"},
		{SOL_IPV6, IPV6_V6ONLY, AF_INET6, "IPV6_V6ONLY"},
	};
	char dev_a[32], dev_b[32];
	socklen_t la = sizeof(dev_a), lb = sizeof(dev_b);
	unsigned i;
	if (sys(SYS_getsockopt, fd, SOL_SOCKET, SO_BINDTODEVICE, (long)dev_a, (long)&la) != 0)
		la = 0;
	if (sys(SYS_getsockopt, cand, SOL_SOCKET, SO_BINDTODEVICE, (long)dev_b, (long)&lb) != 0)
		lb = 0;
	while (la && !dev_a[la - 1])
		la--;
	while (lb && !dev_b[lb - 1])
		lb--;
	if (la != lb || !bytes_equal(dev_a, dev_b, la)) {
		dev_a[la < sizeof(dev_a) ? la : sizeof(dev_a) - 1] = 0;
		dev_b[lb < sizeof(dev_b) ? lb : sizeof(dev_b) - 1] = 0;
		put(why, "SO_BINDTODEVICE '");
		put(why, dev_a);
		put(why, "' asked, the socket systemd passed has '");
		put(why, dev_b);
		put(why, "'");
		return 1;
	}
	for (i = 0; i < sizeof(checked) / sizeof(checked[0]); i++) {
		int a, b;
		if (checked[i].family && checked[i].family != family)
			continue;
		if (int_opt(fd, checked[i].level, checked[i].name, &a) || int_opt(cand, checked[i].level, checked[i].name, &b))
			continue;
		if (a != b) {
			put(why, checked[i].what);
			put(why, " ");
			putu(why, (unsigned long)(unsigned)a);
			put(why, " asked, the socket systemd passed has ");
			putu(why, (unsigned long)(unsigned)b);
			return 1;
		}
	}
	return 0;
}

/* Options never replayed: the identity above (already equal), and what only concerns the
 * bind() that PID 1 did (SO_REUSEADDR, SO_REUSEPORT, IP_FREEBIND). */
static int not_replayed(int level, int name)
{
	if (level == SOL_SOCKET)
		return name == SO_BINDTODEVICE || name == SO_MARK || name == SO_REUSEADDR || name == SO_REUSEPORT;
	if (level == SOL_IP)
		return name == IP_TRANSPARENT || name == IP_FREEBIND;
	if (level == SOL_IPV6)
		return name == IPV6_TRANSPARENT || name == IPV6_V6ONLY || name == IPV6_FREEBIND;
	return 0;
}

static int recorded(int fd, unsigned long ino, int level, int name)
{
	int i;
	for (i = 0; i < MAX_RECS; i++)
		if (recs[i].used && recs[i].fd == fd && recs[i].ino == ino && recs[i].level == level &&
		    recs[i].name == name)
			return 1;
	return 0;
}

/* Options a previous instance may have left on the shared socket: put back to a fresh
 * socket's value unless this server set them. (Buffers: see below.) */
static const int resettable[][2] = {
	{SOL_SOCKET, SO_KEEPALIVE}, {SOL_SOCKET, SO_PRIORITY}, {SOL_SOCKET, SO_RCVLOWAT},
	{IPPROTO_TCP, TCP_NODELAY}, {IPPROTO_TCP, TCP_DEFER_ACCEPT}, {IPPROTO_TCP, TCP_FASTOPEN},
	{IPPROTO_TCP, TCP_KEEPIDLE}, {IPPROTO_TCP, TCP_KEEPINTVL}, {IPPROTO_TCP, TCP_KEEPCNT},
	{IPPROTO_TCP, TCP_USER_TIMEOUT}, {IPPROTO_TCP, TCP_NOTSENT_LOWAT}, {IPPROTO_TCP, TCP_CORK},
};

static void reset_and_replay(int fd, unsigned long ino, int cand, int family, const struct sockaddr *addr)
{
	int fresh = (int)sys(SYS_socket, family, SOCK_STREAM | SOCK_CLOEXEC, 0, 0, 0);
	unsigned i;
	if (fresh >= 0) {
		for (i = 0; i < sizeof(resettable) / sizeof(resettable[0]); i++) {
			int want, now;
			if (recorded(fd, ino, resettable[i][0], resettable[i][1]))
				continue;
			if (int_opt(fresh, resettable[i][0], resettable[i][1], &want) ||
			    int_opt(cand, resettable[i][0], resettable[i][1], &now) || want == now)
				continue;
			sys(SYS_setsockopt, cand, resettable[i][0], resettable[i][1], (long)&want, sizeof(want));
		}
		{
			struct linger want, now;
			socklen_t a = sizeof(want), b = sizeof(now);
			if (!recorded(fd, ino, SOL_SOCKET, SO_LINGER) &&
			    sys(SYS_getsockopt, fresh, SOL_SOCKET, SO_LINGER, (long)&want, (long)&a) == 0 &&
			    sys(SYS_getsockopt, cand, SOL_SOCKET, SO_LINGER, (long)&now, (long)&b) == 0 &&
			    (want.l_onoff != now.l_onoff || want.l_linger != now.l_linger))
				sys(SYS_setsockopt, cand, SOL_SOCKET, SO_LINGER, (long)&want, sizeof(want));
		}
		for (i = 0; i < 2; i++) {
			int name = i ? SO_RCVBUF : SO_SNDBUF, want, now;
			if (recorded(fd, ino, SOL_SOCKET, name) || int_opt(fresh, SOL_SOCKET, name, &want) ||
			    int_opt(cand, SOL_SOCKET, name, &now) || want == now)
				continue;
			{
				struct line l;
				l.n = 0;
				put(&l, "netsvc-preload: the socket systemd passed for ");
				put_addr(&l, addr);
				put(&l, i ? " keeps a receive" : " keeps a send");
				put(&l, " buffer of ");
				putu(&l, (unsigned long)now);
				put(&l, " bytes that an earlier instance set (the kernel cannot unlock it): restart its socket unit to reset it");
				say(&l);
			}
		}
		sys(SYS_close, fresh, 0, 0, 0, 0);
	}
	for (i = 0; i < MAX_RECS; i++) {
		if (!recs[i].used || recs[i].fd != fd || recs[i].ino != ino)
			continue;
		if (!not_replayed(recs[i].level, recs[i].name))
			sys(SYS_setsockopt, cand, recs[i].level, recs[i].name, (long)recs[i].val, recs[i].len);
		recs[i].used = 0;
	}
}

static void record_option(int fd, int level, int name, const void *val, socklen_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned long ino;
	int i, slot = -1;
	if (!val || len > MAX_OPT)
		return;
	if (sys(SYS_getsockname, fd, (long)&ss, (long)&sl, 0, 0) != 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return;
	if (((struct sockaddr_in *)&ss)->sin_port != 0)	/* bound already: not ours to replay */
		return;
	if (!(ino = inode_of(fd)))
		return;
	lock();
	for (i = 0; i < MAX_RECS; i++) {
		if (recs[i].used && recs[i].fd == fd && recs[i].ino != ino)
			recs[i].used = 0;	/* the fd number was closed and reused */
		if (recs[i].used && recs[i].fd == fd && recs[i].level == level && recs[i].name == name) {
			slot = i;
			break;
		}
		if (!recs[i].used && slot < 0)
			slot = i;
	}
	if (slot >= 0) {
		recs[slot].used = 1;
		recs[slot].fd = fd;
		recs[slot].ino = ino;
		recs[slot].level = level;
		recs[slot].name = name;
		recs[slot].len = len;
		bytes_copy(recs[slot].val, val, len);
	}
	unlock();
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	long r = sys(SYS_setsockopt, fd, level, name, (long)val, len);
	if (r == 0 && armed && sys(SYS_getpid, 0, 0, 0, 0, 0) == owner) {
		int saved = errno;
		record_option(fd, level, name, val, len);
		errno = saved;
	}
	return (int)r;
}

/* ------------------------------------------------------------------ bind */

static int same_address(const struct sockaddr *want, const struct sockaddr_storage *have)
{
	if (want->sa_family == AF_INET) {
		const struct sockaddr_in *w = (const void *)want, *h = (const void *)have;
		return w->sin_addr.s_addr == h->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *w = (const void *)want, *h = (const void *)have;
		return bytes_equal(&w->sin6_addr, &h->sin6_addr, 16) && w->sin6_scope_id == h->sin6_scope_id;
	}
}

static unsigned short port_of(const void *a)
{
	return ((const struct sockaddr_in *)a)->sin_port;	/* same place in sockaddr_in6 */
}

static void mismatch(const struct sockaddr *addr, const struct sockaddr_storage *had, struct line *why)
{
	struct line l;
	l.n = 0;
	put(&l, "netsvc-preload: bind(");
	put_addr(&l, addr);
	put(&l, ") does not match the socket systemd passed (");
	put_addr(&l, (const struct sockaddr *)had);
	put(&l, why->n ? "): " : "): address differs");
	if (why->n) {
		why->b[why->n] = 0;
		put(&l, why->b);
	}
	put(&l, "; using the real bind()");
	say(&l);
}

static int take_over(int fd, const struct sockaddr *addr, socklen_t len)
{
	int i, type, best = -1, fd_flags, fl_flags, port_seen = -1;
	unsigned long ino;
	struct sockaddr_storage best_ss, seen_ss;
	struct line why;
	why.n = 0;
	if (!n_passed || !addr || sys(SYS_getpid, 0, 0, 0, 0, 0) != owner)
		return -1;
	if ((addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
	    len < (addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)))
		return -1;
	if (int_opt(fd, SOL_SOCKET, SO_TYPE, &type) || type != SOCK_STREAM)
		return -1;
	for (i = 0; i < n_passed; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int cand = passed[i].fd;
		if (passed[i].family != addr->sa_family || cand == fd || inode_of(cand) != passed[i].ino)
			continue;
		if (sys(SYS_getsockname, cand, (long)&ss, (long)&sl, 0, 0) != 0 || port_of(&ss) != port_of(addr))
			continue;
		if (same_address(addr, &ss)) {
			best = i;
			best_ss = ss;
			break;
		}
		port_seen = i;
		seen_ss = ss;
	}
	if (best < 0) {
		if (port_seen >= 0)
			mismatch(addr, &seen_ss, &why);
		return -1;
	}
	if (identity_mismatch(fd, passed[best].fd, addr->sa_family, &why)) {
		mismatch(addr, &best_ss, &why);
		return -1;
	}
	fd_flags = (int)sys(SYS_fcntl, fd, F_GETFD, 0, 0, 0);
	fl_flags = (int)sys(SYS_fcntl, fd, F_GETFL, 0, 0, 0);
	if (fd_flags < 0 || fl_flags < 0 || !(ino = inode_of(fd)))
		return -1;
	lock();
	reset_and_replay(fd, ino, passed[best].fd, addr->sa_family, addr);
	taken_once[best] = 1;
	armed = 0;
	for (i = 0; i < n_passed; i++)
		if (!taken_once[i])
			armed = 1;
	unlock();
	if (sys(SYS_dup3, passed[best].fd, fd, (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0, 0, 0) != fd)
		return -1;
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

/* ------------------------------------------------------------------ listen, shutdown */

static int parked_index(int fd)
{
	int i;
	for (i = 0; i < MAX_PARKED; i++)
		if (parked[i] == fd + 1)
			return i;
	return -1;
}

EXPORT int listen(int fd, int backlog)
{
	int p, i;
	if (n_passed && (p = parked_index(fd)) >= 0 && inode_of(fd) == parked_ino[p]) {
		/* a listener paused with shutdown() is resumed: PID 1's socket again */
		long flags = sys(SYS_fcntl, fd, F_GETFD, 0, 0, 0), fl = sys(SYS_fcntl, fd, F_GETFL, 0, 0, 0);
		i = parked_from[p];
		if (flags >= 0 && fl >= 0 &&
		    sys(SYS_dup3, passed[i].fd, fd, (flags & FD_CLOEXEC) ? O_CLOEXEC : 0, 0, 0) == fd) {
			long now = sys(SYS_fcntl, fd, F_GETFL, 0, 0, 0);
			if (now >= 0)
				sys(SYS_fcntl, fd, F_SETFL, (now & ~O_NONBLOCK) | (fl & O_NONBLOCK), 0, 0);
			parked[p] = 0;
		}
	}
	if (backlog_floor > backlog && passed_index(fd) >= 0)
		backlog = backlog_floor;
	return (int)sys(SYS_listen, fd, backlog, 0, 0, 0);
}

static void on_wake(int sig)
{
	(void)sig;
}

/* A realtime signal nobody handles, given a handler that does nothing, without SA_RESTART:
 * it only interrupts accept(). Chosen once; 0 when none is free. */
static int wake_signal(void)
{
	int sig;
	if (wake_sig)
		return wake_sig;
	for (sig = SIGRTMAX; sig > SIGRTMIN + 2; sig--) {
		struct sigaction old, sa;
		if (sigaction(sig, 0, &old) != 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
			continue;
		sa.sa_handler = on_wake;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0;
		if (sigaction(sig, &sa, 0) == 0)
			return wake_sig = sig;
	}
	return 0;
}

/* Threads of this process blocked in accept()/accept4() on ``fd``: those the library's accept
 * wrappers recorded, and those /proc/self/task/TID/syscall ("NR ARG0 ...") shows (a raw
 * system call; unreadable once the process dropped privileges); with ``sig``, each is sent it
 * (a thread found both ways gets it twice: harmless, the handler does nothing). */
static int in_accept(int fd, int sig)
{
	char buf[4096], path[64], text[128];
	long pid = sys(SYS_getpid, 0, 0, 0, 0, 0), me = sys(SYS_gettid, 0, 0, 0, 0, 0);
	int dir, count = 0, a;
	for (a = 0; a < MAX_ACCEPTERS; a++) {
		long tid = __atomic_load_n(&accepter_tid[a], __ATOMIC_ACQUIRE);
		if (!tid || tid == me || __atomic_load_n(&accepter_fd[a], __ATOMIC_ACQUIRE) != fd)
			continue;
		count++;
		if (sig)
			sys(SYS_tgkill, pid, tid, sig, 0, 0);
	}
	dir = (int)sys(SYS_openat, AT_FDCWD, (long)"/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
	if (dir < 0)
		return count;
	for (;;) {
		long got = sys(SYS_getdents64, dir, (long)buf, sizeof(buf), 0, 0), off = 0;
		if (got <= 0)
			break;
		while (off < got) {
			unsigned short reclen = *(unsigned short *)(buf + off + 16);
			const char *name = buf + off + 19, *p = name;
			long tid, nr, arg;
			off += reclen;
			if (!parse_long(&p, &tid) || *p || tid == me)
				continue;
			{
				struct line l;
				long f, n;
				l.n = 0;
				put(&l, "/proc/self/task/");
				put(&l, name);
				put(&l, "/syscall");
				l.b[l.n] = 0;
				bytes_copy(path, l.b, l.n + 1);
				f = sys(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0, 0);
				if (f < 0)
					continue;
				n = sys(SYS_read, f, (long)text, sizeof(text) - 1, 0, 0);
				sys(SYS_close, f, 0, 0, 0, 0);
				if (n <= 0)
					continue;
				text[n] = 0;
			}
			p = text;
			if (!parse_long(&p, &nr) || (nr != SYS_accept && nr != SYS_accept4))
				continue;
			if (p[0] != ' ' || p[1] != '0' || p[2] != 'x')
				continue;
			p += 3;
			arg = 0;
			while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
				arg = arg * 16 + (*p <= '9' ? *p - '0' : *p - 'a' + 10), p++;
			if (arg != fd)
				continue;
			count++;
			if (sig)
				sys(SYS_tgkill, pid, tid, sig, 0, 0);
		}
	}
	sys(SYS_close, dir, 0, 0, 0, 0);
	return count;
}

static void pause_ms(long ms)
{
	struct timespec ts;
	ts.tv_sec = 0;
	ts.tv_nsec = ms * 1000000L;
	sys(SYS_nanosleep, (long)&ts, 0, 0, 0, 0);
}

/* Wait until no thread is blocked in accept() on ``fd`` (two empty looks in a row); sends
 * ``sig`` each round when given. Returns the threads still there after ``ms``. */
static int drain_accepters(int fd, int sig, int ms)
{
	int quiet = 0, left = 0, t;
	for (t = 0; t < ms && quiet < 2; t++) {
		left = in_accept(fd, sig);
		quiet = left ? 0 : quiet + 1;
		pause_ms(1);
	}
	return quiet >= 2 ? 0 : left;
}

static int stop_listener(int fd, int i)
{
	int flags = (int)sys(SYS_fcntl, fd, F_GETFD, 0, 0, 0), fl = (int)sys(SYS_fcntl, fd, F_GETFL, 0, 0, 0);
	int mine = (int)sys(SYS_socket, passed[i].family, SOCK_STREAM | SOCK_CLOEXEC, 0, 0, 0), p, left, backlog;
	if (flags < 0 || fl < 0 || mine < 0)
		return -1;
	if (sys(SYS_dup3, mine, fd, (flags & FD_CLOEXEC) ? O_CLOEXEC : 0, 0, 0) != fd) {
		sys(SYS_close, mine, 0, 0, 0, 0);
		return -1;
	}
	sys(SYS_close, mine, 0, 0, 0, 0);
	sys(SYS_fcntl, fd, F_SETFL, fl, 0, 0);
	lock();
	for (p = 0; p < MAX_PARKED; p++)
		if (!parked[p] || parked[p] == fd + 1) {
			parked[p] = fd + 1;
			parked_from[p] = i;
			parked_ino[p] = inode_of(fd);
			break;
		}
	unlock();
	left = drain_accepters(fd, wake_signal(), 100);
	if (!left)
		return 0;
	/* a thread that blocks the signal: wake it the only other way, then listen again */
	{
		struct line l;
		int depth = 0;
		socklen_t dl = sizeof(depth);
		l.n = 0;
		sys(SYS_getsockopt, passed[i].fd, SOL_SOCKET, SO_ACCEPTCONN, (long)&depth, (long)&dl);
		backlog = backlog_floor ? backlog_floor : 4096;
		sys(SYS_shutdown, passed[i].fd, SHUT_RD, 0, 0, 0);
		drain_accepters(fd, 0, 1000);
		sys(SYS_listen, passed[i].fd, backlog, 0, 0, 0);
		put(&l, "netsvc-preload: a thread blocked in accept() did not take the wake-up signal: the shared socket was "
			"shut down and listens again; connections queued at that moment were reset");
		say(&l);
	}
	return 0;
}

EXPORT int shutdown(int fd, int how)
{
	int i, listening;
	if ((how == SHUT_RD || how == SHUT_RDWR) && (i = passed_index(fd)) >= 0 && fd != passed[i].fd &&
	    int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening) == 0 && listening) {
		int saved = errno;
		if (stop_listener(fd, i) == 0) {
			errno = saved;
			return 0;
		}
		errno = saved;
	}
	return (int)sys(SYS_shutdown, fd, how, 0, 0, 0);
}

/* ------------------------------------------------------------------ accept */

/* A slot for this thread while it is in accept() on ``fd`` (-1: none - the library holds no
 * socket, or every slot is taken: the /proc scan still finds it where it can read). Costs one
 * gettid() and two atomic stores per accept; no lock. */
static int accepting(int fd)
{
	long me;
	int i;
	if (!n_passed)
		return -1;
	me = sys(SYS_gettid, 0, 0, 0, 0, 0);
	for (i = 0; i < MAX_ACCEPTERS; i++) {
		long none = 0;
		if (__atomic_load_n(&accepter_tid[i], __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&accepter_tid[i], &none, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
			__atomic_store_n(&accepter_fd[i], fd, __ATOMIC_RELEASE);
			return i;
		}
	}
	return -1;
}

static void accepted(int slot)
{
	if (slot < 0)
		return;
	__atomic_store_n(&accepter_fd[slot], -1, __ATOMIC_RELEASE);
	__atomic_store_n(&accepter_tid[slot], 0, __ATOMIC_RELEASE);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int slot = accepting(fd);
	int r = (int)sys(SYS_accept4, fd, (long)addr, (long)len, flags, 0);
	accepted(slot);
	return r;
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return accept4(fd, addr, len, 0);
}

/* ------------------------------------------------------------------ exec */

/* Is this exec a re-exec of the process systemd passed the sockets to (same pid)? Then the
 * passed fds survive it, and NETSVC_PRELOAD_FDS (written into ``buf``) says which they are. */
static int reexec_prepare(char *buf, unsigned long cap)
{
	struct line l;
	int i, any = 0;
	if (!n_passed || sys(SYS_getpid, 0, 0, 0, 0, 0) != owner)
		return 0;
	l.n = 0;
	put(&l, "NETSVC_PRELOAD_FDS=");
	putu(&l, (unsigned long)owner);
	put(&l, ":");
	for (i = 0; i < n_passed; i++) {
		if (inode_of(passed[i].fd) != passed[i].ino)
			continue;
		if (any)
			put(&l, ",");
		putu(&l, (unsigned long)passed[i].fd);
		put(&l, "/");
		putu(&l, passed[i].ino);
		any = 1;
	}
	if (!any || l.n >= cap)
		return 0;
	for (i = 0; i < n_passed; i++)
		if (inode_of(passed[i].fd) == passed[i].ino)
			set_cloexec(passed[i].fd, 0);
	bytes_copy(buf, l.b, l.n);
	buf[l.n] = 0;
	return 1;
}

static void reexec_failed(void)
{
	int i;
	for (i = 0; i < n_passed; i++)
		if (inode_of(passed[i].fd) == passed[i].ino)
			set_cloexec(passed[i].fd, 1);
}

/* envp plus ``extra`` (replacing an older NETSVC_PRELOAD_FDS), in ``out`` */
static char *const *with_var(char *const envp[], char *extra, char **out, int cap)
{
	static const char key[] = "NETSVC_PRELOAD_FDS=";
	int n = 0, i;
	for (i = 0; envp && envp[i] && n < cap - 2; i++) {
		if (slen(envp[i]) >= sizeof(key) - 1 && bytes_equal(envp[i], key, sizeof(key) - 1))
			continue;
		out[n++] = envp[i];
	}
	out[n++] = extra;
	out[n] = 0;
	return out;
}

/* glibc's execve() is the system call itself; so is this one, with the passed fds added for
 * a re-exec. execv/execvp/execl/execlp/execle come here too (glibc's own call execve()
 * internally, which no preload can see); execvpe() and fexecve() are left to glibc. */
EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	char var[512], *env[MAX_ENV];
	long r;
	int saved;
	if (!reexec_prepare(var, sizeof(var)))
		return (int)sys(SYS_execve, (long)path, (long)argv, (long)envp, 0, 0);
	r = sys(SYS_execve, (long)path, (long)argv, (long)with_var(envp, var, env, MAX_ENV), 0, 0);
	saved = errno;
	reexec_failed();
	errno = saved;
	return (int)r;
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	char var[512], *env[MAX_ENV];
	int r, saved;
	if (!reexec_prepare(var, sizeof(var)))
		return execvpe(file, argv, environ);
	r = execvpe(file, argv, with_var(environ, var, env, MAX_ENV));
	saved = errno;
	reexec_failed();
	errno = saved;
	return r;
}

#define MAX_ARGS 4096

/* execl*: the argument list as an argv array, then the matching call above (as glibc does) */
static void collect(const char *first, va_list *ap, char **argv)
{
	int n = 0;
	argv[n++] = (char *)first;
	while (n < MAX_ARGS - 1 && (argv[n] = va_arg(*ap, char *)))
		n++;
	argv[n] = 0;
}

EXPORT int execl(const char *path, const char *arg, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;
	va_start(ap, arg);
	collect(arg, &ap, argv);
	va_end(ap);
	return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;
	va_start(ap, arg);
	collect(arg, &ap, argv);
	va_end(ap);
	return execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	char *argv[MAX_ARGS], **envp;
	va_list ap;
	va_start(ap, arg);
	collect(arg, &ap, argv);
	envp = va_arg(ap, char **);
	va_end(ap);
	return execve(path, argv, envp);
}
