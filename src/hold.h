/* The holder: netsvc-sockclean --hold, the parent that owns a server's sockets where no
 * systemd does (a supervisord program, a container without an init).
 *
 *   netsvc-sockclean --hold [--unit NAME] [--user UID:GID[:G,...]] [--restarts N/SECONDS]
 *                    [--listen SPEC]... [--preload LIBRARY] LISTEN... -- COMMAND ARGS...
 *
 * Runs COMMAND as its child and stays its parent:
 * - When the child dies by a signal the holder did not pass on (SIGKILL, an OOM kill, a
 *   segfault), it starts it again at once - at most N times in SECONDS (default 20/10, the
 *   collection's StartLimitBurst=/StartLimitIntervalSec=), then it exits as the child did, so
 *   the supervisor sees the failure and applies its own policy.
 * - Every signal it gets (supervisorctl stop/signal, docker stop) goes on to the child; a child
 *   that then dies by that signal, or exits with any code, is gone on purpose: the holder
 *   exits with the same status (re-raising the signal; as a namespace's PID 1, where that
 *   cannot kill it, exit 128+N).
 * - With --listen it binds SPEC itself before the first start (SO_REUSEADDR, the options
 *   SPEC names, listen(backlog)) and keeps the sockets for good: every child gets them as
 *   fds 3.. with LISTEN_FDS and LISTEN_PID (systemd's protocol), with --preload also the
 *   preload library (LD_PRELOAD, NETSVC_PRELOAD_BACKLOG) for a server that binds them itself.
 *   Connections that arrive while the server is down wait in the queue: none is refused.
 *   SPEC: ADDR:PORT or [ADDR6]:PORT, then ,backlog=N ,v6only ,dualstack ,reuseport ,freebind
 *   ,transparent ,mark=N - the options read off the server's own listener by the module.
 * - Without --listen the server binds as it always did, and the cleanup of LISTEN runs before
 *   every start (the dead child's TIME_WAIT/FIN_WAIT sockets go): fast, but the port is closed
 *   for the child's start-up time.
 * - The child gets the holder's environment, directory, umask, stdout and stderr (what
 *   supervisord set up for the program), drops to --user before exec, and gets SIGKILL if the
 *   holder itself is killed (PR_SET_PDEATHSIG): a supervisor restarting the holder finds the
 *   port free, no worse than without it.
 * With --unit it records every start in /run/netsvc-resilience/hook/NAME.hold (root's, as the
 * status file): the holder's and the child's pids, how many starts, how the last child ended.
 */

#if defined(__x86_64__)
#define SYS_rt_sigprocmask 14
#define SYS_listen 50
#define SYS_clone 56
#define SYS_wait4 61
#define SYS_kill 62
#define SYS_fcntl 72
#define SYS_getppid 110
#define SYS_prctl 157
#define SYS_signalfd4 289
#define SYS_dup3 292
#define SYS_ppoll 271
#elif defined(__aarch64__)
#define SYS_dup3 24
#define SYS_fcntl 25
#define SYS_ppoll 73
#define SYS_signalfd4 74
#define SYS_kill 129
#define SYS_rt_sigprocmask 135
#define SYS_prctl 167
#define SYS_getppid 173
#define SYS_listen 201
#define SYS_clone 220
#define SYS_wait4 260
#endif

#define SIGKILL_ 9
#define SIGCHLD_ 17
#define SIGSTOP_ 19
#define SIG_BLOCK_ 0
#define SIG_SETMASK_ 2
#define F_DUPFD_CLOEXEC_ 1030
#define PR_SET_PDEATHSIG_ 1
#define WNOHANG_ 1
#define SO_REUSEADDR_ 2
#define SO_REUSEPORT_ 15
#define SO_MARK_ 36
#define IPPROTO_IP_ 0
#define IPPROTO_IPV6_ 41
#define IP_FREEBIND_ 15
#define IP_TRANSPARENT_ 19
#define IPV6_V6ONLY_ 26
#define IPV6_TRANSPARENT_ 75
#define IPV6_FREEBIND_ 78
#define SOCK_STREAM_ 1
#define MAX_LISTEN 16
#define HOLD_FD_BASE 200	/* where the holder keeps its sockets (close-on-exec) */
#define MAX_ENV 1024

struct listen_spec {
	struct target t;
	int v6only;		/* -1: as the kernel defaults, 0 dual-stack, 1 IPv6 only */
	int reuseport, freebind, transparent, has_mark;
	unsigned long mark, backlog;
	const char *text;
};

struct hold {
	struct listen_spec ls[MAX_LISTEN];
	int nls;
	const char *preload;
	unsigned long burst, interval_s;
	int bad;
	struct buf why;
};

static int prefix_is(const char *a, const char *word)
{
	while (*word && *a == *word)
		a++, word++;
	return !*word;
}

/* "ADDR:PORT[,opt...]" into h->ls[h->nls] */
static int parse_listen(struct hold *h, const char *a)
{
	struct listen_spec *l;
	size_t n = 0;
	if (h->nls >= MAX_LISTEN)
		return 0;
	l = &h->ls[h->nls];
	memset(l, 0, sizeof(*l));
	l->v6only = -1;
	l->backlog = 4096;
	l->text = a;
	while (a[n] && a[n] != ',')
		n++;
	if (!parse_addr(a, n, &l->t) || !l->t.family || l->t.lo != l->t.hi)
		return 0;
	while (a[n] == ',') {
		const char *o = a + n + 1;
		char val[24];
		size_t k = 0, eq = 0;
		n++;
		while (a[n] && a[n] != ',')
			n++;
		while (o + eq < a + n && o[eq] != '=')
			eq++;
		if (o + eq < a + n) {
			for (k = 0; o + eq + 1 + k < a + n && k < sizeof(val) - 1; k++)
				val[k] = o[eq + 1 + k];
			if (o + eq + 1 + k != a + n)
				return 0;
			val[k] = 0;
		}
#define OPT(name) (eq == sizeof(name) - 1 && prefix_is(o, name))
		if (OPT("backlog") && k) {
			if (!parse_u(val, 1048576, &l->backlog) || !l->backlog)
				return 0;
		} else if (OPT("mark") && k) {
			if (!parse_u(val, 4294967295ul, &l->mark))
				return 0;
			l->has_mark = 1;
		} else if (k) {
			return 0;
		} else if (OPT("v6only") && l->t.family == AF_INET6) {
			l->v6only = 1;
		} else if (OPT("dualstack") && l->t.family == AF_INET6) {
			l->v6only = 0;
		} else if (OPT("reuseport")) {
			l->reuseport = 1;
		} else if (OPT("freebind")) {
			l->freebind = 1;
		} else if (OPT("transparent")) {
			l->transparent = 1;
		} else {
			return 0;
		}
#undef OPT
	}
	h->nls++;
	return 1;
}

/* "N/SECONDS" */
static int parse_restarts(struct hold *h, const char *a)
{
	char n[12], s[12];
	size_t i = 0, j = 0;
	while (a[i] && a[i] != '/' && i < sizeof(n) - 1)
		n[i] = a[i], i++;
	n[i] = 0;
	if (a[i] != '/')
		return 0;
	for (i++; a[i] && j < sizeof(s) - 1; i++)
		s[j++] = a[i];
	s[j] = 0;
	return !a[i] && parse_u(n, 64, &h->burst) && h->burst && parse_u(s, 86400, &h->interval_s) &&
	       h->interval_s;
}

static int opt(long fd, int level, int name, int value)
{
	return (int)sys5(SYS_setsockopt, fd, level, name, &value, 4);
}

/* Binds and listens on one SPEC; the socket's fd or -errno, *what says which step failed */
static long bind_listen(const struct listen_spec *l, const char **what)
{
	u8 sa[28];
	long fd, r;
	int v6 = l->t.family == AF_INET6;
	memset(sa, 0, sizeof(sa));
	*what = "socket";
	fd = sys3(SYS_socket, l->t.family, SOCK_STREAM_ | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	*(u16 *)sa = l->t.family;	/* sa_family: host order */
	sa[2] = (u8)(l->t.lo >> 8);
	sa[3] = (u8)l->t.lo;
	if (v6)
		memcpy(sa + 8, l->t.addr, 16);
	else
		memcpy(sa + 4, l->t.addr, 4);
	*what = "setsockopt";
	if ((r = opt(fd, SOL_SOCKET, SO_REUSEADDR_, 1)) < 0 ||
	    (l->reuseport && (r = opt(fd, SOL_SOCKET, SO_REUSEPORT_, 1)) < 0) ||
	    (l->has_mark && (r = opt(fd, SOL_SOCKET, SO_MARK_, (int)l->mark)) < 0) ||
	    (v6 && l->v6only >= 0 && (r = opt(fd, IPPROTO_IPV6_, IPV6_V6ONLY_, l->v6only)) < 0) ||
	    (l->freebind && (r = opt(fd, v6 ? IPPROTO_IPV6_ : IPPROTO_IP_, v6 ? IPV6_FREEBIND_ : IP_FREEBIND_, 1)) < 0) ||
	    (l->transparent &&
	     (r = opt(fd, v6 ? IPPROTO_IPV6_ : IPPROTO_IP_, v6 ? IPV6_TRANSPARENT_ : IP_TRANSPARENT_, 1)) < 0))
		goto fail;
	*what = "bind";
	if ((r = sys3(SYS_bind, fd, sa, v6 ? 28 : 16)) < 0)
		goto fail;
	*what = "listen";
	if ((r = sys2(SYS_listen, fd, l->backlog)) < 0)
		goto fail;
	*what = "fcntl";
	r = sys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC_, HOLD_FD_BASE);
	sys1(SYS_close, fd);
	return r;
fail:
	sys1(SYS_close, fd);
	return r;
}

/* Drops to ``user`` (numeric ids) and exec's ``cmd``; on failure one line on stderr and exit
 * 126 (the user) or 127 (the exec). ``holder``: the pid of the holder whose child this is (0:
 * the plain wrapper) - the child then gets SIGKILL when the holder dies. */
static __attribute__((noreturn)) void run_command(char **cmd, char **envp, const char *user, long holder)
{
	struct buf why, line;
	why.n = line.n = 0;
	if (user && !drop_privileges(user, &why)) {
		put(&line, "netsvc-sockclean: not starting ");
		put(&line, cmd[0]);
		put(&line, ": ");
		putn(&line, why.b, why.n);
		put(&line, "\n");
		write_all(2, line.b, line.n);
		sys_exit(126);
	}
	if (holder) {
		/* after the user change, which clears it; exec keeps it */
		sys2(SYS_prctl, PR_SET_PDEATHSIG_, SIGKILL_);
		if (sys1(SYS_getppid, 0) != holder)
			sys_exit(126);	/* the holder died before the line above: nobody would hold this child */
	}
	int e = exec_command(cmd, envp);
	put(&line, "netsvc-sockclean: cannot execute ");
	put(&line, cmd[0]);
	put(&line, ": ");
	put_err(&line, e);
	put(&line, "\n");
	write_all(2, line.b, line.n);
	sys_exit(127);
}

static int env_is(const char *e, const char *key)
{
	while (*key && *e == *key)
		e++, key++;
	return !*key && *e == '=';
}

/* The child: sockets at 3.., its environment, its user, then exec. Never returns. */
static __attribute__((noreturn)) void child(struct hold *h, char **cmd, char **envp, const char *user, long holder)
{
	static char *env[MAX_ENV + 8];
	static struct buf fds, pid, pre, backlog;
	const char *old_pre = 0;
	u64 none = 0;
	int n = 0;
	sys4(SYS_rt_sigprocmask, SIG_SETMASK_, &none, 0, 8);
	for (char **e = envp; *e && n < MAX_ENV; e++) {
		if (env_is(*e, "LISTEN_PID") || env_is(*e, "LISTEN_FDS") || env_is(*e, "LISTEN_FDNAMES") ||
		    (h->nls && h->preload && env_is(*e, "NETSVC_PRELOAD_BACKLOG")))
			continue;
		if (h->preload && env_is(*e, "LD_PRELOAD")) {
			old_pre = *e + 11;
			continue;
		}
		env[n++] = *e;
	}
	if (h->nls) {
		unsigned long most = 0;
		for (int i = 0; i < h->nls; i++) {
			if (sys3(SYS_dup3, HOLD_FD_BASE + i, 3 + i, 0) < 0)
				sys_exit(126);
			if (h->ls[i].backlog > most)
				most = h->ls[i].backlog;
		}
		put(&fds, "LISTEN_FDS=");
		putu(&fds, (unsigned long)h->nls);
		put(&pid, "LISTEN_PID=");
		putu(&pid, (unsigned long)sys1(SYS_getpid, 0));
		env[n++] = fds.b;
		env[n++] = pid.b;
		if (h->preload) {
			put(&backlog, "NETSVC_PRELOAD_BACKLOG=");
			putu(&backlog, most);
			env[n++] = backlog.b;
		}
	}
	if (h->preload) {
		put(&pre, "LD_PRELOAD=");
		put(&pre, h->preload);
		if (old_pre && *old_pre) {
			put(&pre, " ");
			put(&pre, old_pre);
		}
		env[n++] = pre.b;
	}
	env[n] = 0;
	run_command(cmd, env, user, holder);
}

/* Exits as the child did: its code, or its signal (re-raised with the default action; as a
 * namespace's PID 1, which that cannot kill, 128+N). */
static __attribute__((noreturn)) void exit_as(int status)
{
	int sig = status & 0x7f;
	if (!sig)
		sys_exit((status >> 8) & 0xff);
	u64 only = ~(1ull << (sig - 1)), none = 0;
	sys2(SYS_kill, sys1(SYS_getpid, 0), sig);
	sys4(SYS_rt_sigprocmask, SIG_SETMASK_, &only, 0, 8);	/* delivered here unless ignored */
	sys4(SYS_rt_sigprocmask, SIG_SETMASK_, &none, 0, 8);
	sys_exit(128 + sig);
}

static void put_status(struct buf *o, int status)
{
	if (status & 0x7f) {
		put(o, "signal ");
		putu(o, (unsigned long)(status & 0x7f));
	} else {
		put(o, "exit ");
		putu(o, (unsigned long)((status >> 8) & 0xff));
	}
}

static void hold_record(const char *unit, const char *status_dir, long child_pid, unsigned long starts,
			int last, int has_last, const char *state)
{
	struct buf st, nowrite;
	u64 ts[2] = {0, 0};
	st.n = nowrite.n = 0;
	if (!unit || !unit_ok(unit))
		return;
	sys2(SYS_clock_gettime, 0, ts);
	put(&st, "version=1\nunit=");
	put(&st, unit);
	put(&st, "\ntime=");
	putu(&st, (unsigned long)ts[0]);
	put(&st, "\nholder=");
	putu(&st, (unsigned long)sys1(SYS_getpid, 0));
	put(&st, "\nchild=");
	putu(&st, (unsigned long)child_pid);
	put(&st, "\nstarts=");
	putu(&st, starts);
	put(&st, "\nstate=");
	put(&st, state);
	put(&st, "\nlast=");
	if (has_last)
		put_status(&st, last);
	put(&st, "\n");
	write_status(status_dir, unit, ".hold", st.b, st.n, &nowrite);
}

static void say(const char *a, const char *b, long n, const char *c)
{
	struct buf line;
	line.n = 0;
	put(&line, "netsvc-sockclean: ");
	put(&line, a);
	if (b)
		put(&line, b);
	if (n >= 0)
		putu(&line, (unsigned long)n);
	if (c)
		put(&line, c);
	put(&line, "\n");
	write_all(1, line.b, line.n);
}

static __attribute__((noreturn)) void hold_main(struct hold *h, char **cmd, char **envp, const char *user,
						 const char *unit, const struct buf *ports, const char *status_dir,
						 unsigned long drain_ms)
{
	u64 mask = 0;
	long sfd, child_pid = 0, starts_at[64];
	unsigned long starts = 0, nstarts_at = 0;
	u32 sent = 0;
	const char *label = unit ? unit : cmd[0];
	long holder = sys1(SYS_getpid, 0);
	for (int s = 1; s <= 31; s++)
		if (s != SIGKILL_ && s != SIGSTOP_)
			mask |= 1ull << (s - 1);
	sys4(SYS_rt_sigprocmask, SIG_BLOCK_, &mask, 0, 8);
	sfd = sys4(SYS_signalfd4, -1, &mask, 8, O_CLOEXEC);
	if (sfd < 0) {
		say("hold ", label, -1, ": signalfd refused: not holding");
		sys_exit(1);
	}
	if (h->nls) {
		if (ntargets)
			run_cleanup(unit, ports, status_dir, drain_ms, envp);
		for (int i = 0; i < h->nls; i++) {
			const char *what;
			long fd = bind_listen(&h->ls[i], &what);
			if (fd != HOLD_FD_BASE + i) {
				struct buf line;
				line.n = 0;
				put(&line, "netsvc-sockclean: hold ");
				put(&line, label);
				put(&line, ": cannot listen on ");
				put(&line, h->ls[i].text);
				put(&line, ": ");
				put(&line, what);
				put(&line, " failed with ");
				put_err(&line, fd < 0 ? (int)-fd : EINVAL);
				put(&line, "\n");
				write_all(2, line.b, line.n);
				sys_exit(1);
			}
		}
	}
	for (;;) {
		if (!h->nls && ntargets)
			run_cleanup(unit, ports, status_dir, drain_ms, envp);
		/* a stop that came while there was no child: exit as told */
		for (;;) {
			u8 si[128];
			struct { int fd; short ev, rev; } pfd = {(int)sfd, 1, 0};
			long zero[2] = {0, 0};
			if (sys5(SYS_ppoll, &pfd, 1, zero, 0, 8) <= 0)
				break;
			if (sys3(SYS_read, sfd, si, sizeof(si)) != sizeof(si))
				break;
			u32 sig = *(u32 *)si;
			if (sig != SIGCHLD_)
				exit_as((int)sig);
			while (sys4(SYS_wait4, -1, 0, WNOHANG_, 0) > 0)
				;
		}
		sent = 0;
		child_pid = sys5(SYS_clone, SIGCHLD_, 0, 0, 0, 0);
		if (child_pid == 0)
			child(h, cmd, envp, user, holder);
		if (child_pid < 0) {
			say("hold ", label, -1, ": cannot start the server (clone failed)");
			sys_exit(1);
		}
		starts++;
		starts_at[nstarts_at++ % 64] = now_ms();
		hold_record(unit, status_dir, child_pid, starts, 0, 0, "running");
		for (;;) {
			u8 si[128];
			int status = 0;
			if (sys3(SYS_read, sfd, si, sizeof(si)) != sizeof(si))
				continue;
			u32 sig = *(u32 *)si;
			if (sig != SIGCHLD_) {
				sys2(SYS_kill, child_pid, sig);
				sent |= 1u << sig;
				continue;
			}
			long got, done = 0;
			while ((got = sys4(SYS_wait4, -1, &status, WNOHANG_, 0)) > 0)
				if (got == child_pid)
					done = 1;
			if (!done)
				continue;	/* an orphan of the server reaped (the holder as PID 1) */
			int dsig = status & 0x7f;
			if (!dsig || (sent & (1u << dsig))) {
				hold_record(unit, status_dir, 0, starts, status, 1, "exited");
				exit_as(status);
			}
			unsigned long recent = 0;
			long now = now_ms();
			for (unsigned long k = 0; k < nstarts_at && k < 64; k++)
				if (now - starts_at[k] < (long)(h->interval_s * 1000))
					recent++;
			if (recent >= h->burst) {
				struct buf line;
				line.n = 0;
				put(&line, "netsvc-sockclean: hold ");
				put(&line, label);
				put(&line, ": the server died by signal ");
				putu(&line, (unsigned long)dsig);
				put(&line, ", started ");
				putu(&line, recent);
				put(&line, " times in ");
				putu(&line, h->interval_s);
				put(&line, " s (at most ");
				putu(&line, h->burst);
				put(&line, " starts): giving up, exiting as it did\n");
				write_all(2, line.b, line.n);
				hold_record(unit, status_dir, 0, starts, status, 1, "gave-up");
				exit_as(status);
			}
			{
				struct buf line;
				line.n = 0;
				put(&line, "netsvc-sockclean: hold ");
				put(&line, label);
				put(&line, ": server PID ");
				putu(&line, (unsigned long)child_pid);
				put(&line, " died by signal ");
				putu(&line, (unsigned long)dsig);
				put(&line, h->nls ? "; starting it again (its sockets stay open)\n" : "; starting it again\n");
				write_all(1, line.b, line.n);
			}
			hold_record(unit, status_dir, 0, starts, status, 1, "restarting");
			break;
		}
	}
}
