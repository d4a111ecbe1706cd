/*
 * lxcri-start: the single-threaded helper of lxcri's lxc backend.
 *
 * liblxc refuses to start a container in the foreground from a threaded process (every Go
 * program is threaded), and a daemonized start loses the init's stdio and exit status. This
 * helper runs as a child of the shim with the process's stdio and does the liblxc calls
 * that must own the container's processes:
 *
 *   lxcri-start start NAME LXCPATH [--umask OCTAL] [--env K=V]... [--cap-inheritable HEX]
 *                     [-- ARGS...]
 *       Starts container NAME of LXCPATH (config: LXCPATH/NAME/config) in the foreground.
 *       The init is the OCI process itself (ARGS, or lxc.init.cmd when no ARGS are given),
 *       as the container's PID 1 with this helper's stdin/stdout/stderr. The helper is the
 *       container's monitor and exits with the init's status. --env replaces the
 *       configuration's lxc.environment (values pass exactly, whatever they contain).
 *
 *   lxcri-start exec NAME LXCPATH [options] -- ARGS...
 *       Runs ARGS inside the running container NAME (lxc attach) with this helper's stdio,
 *       waits for it and exits with its status. Options:
 *         --cwd DIR             working directory (must exist in the container)
 *         --uid N --gid N       user and group
 *         --groups G1,G2,...    additional groups
 *         --env K=V             environment (repeatable); the environment is exactly these
 *         --umask OCTAL
 *         --tty                 run on a terminal: with file descriptor 4 open (a unix
 *                               socket), a pty is allocated from the container's
 *                               /dev/ptmx and its master sent over fd 4 (SCM_RIGHTS);
 *                               otherwise stdin must be a terminal. Either way the
 *                               terminal becomes the process's controlling terminal.
 *         --no-new-privs
 *         --caps B,E,P,I,A      capability sets as hex masks (bounding, effective,
 *                               permitted, inheritable, ambient)
 *         --rlimit RES:SOFT:HARD  (repeatable; numeric RLIMIT_*, -1 = unlimited)
 *         --oom-score-adj N
 *
 *   lxcri-start pidhook ...
 *       Internal: the lxc.hook.start-host hook the start mode installs.
 *
 *   lxcri-start devices SPEC...
 *       lxc.hook.autodev hook: makes device nodes in the container's root filesystem
 *       ($LXC_ROOTFS_MOUNT), resolving paths inside it. SPEC is TYPE:MAJOR:MINOR:MODE:UID:GID:PATH
 *       (TYPE c, b or p; MODE octal) or "ptmx" (/dev/ptmx -> pts/ptmx).
 *
 *   lxcri-start sysctl KEY=VALUE...
 *       lxc.hook.start-host hook: joins the net, ipc and uts namespaces of the container's
 *       init ($LXC_PID) and writes each VALUE to /proc/sys/KEY (dots become slashes).
 *
 *   lxcri-start oci-hook FILE
 *       lxc.hook.start-host / lxc.hook.mount hook: runs the OCI hook FILE describes (see
 *       backend/lxc/translate_security.go, hookFile) with the container state on stdin.
 *
 * Gate (start): when file descriptor 5 is open, the init is held after its pid was
 * reported, before it runs its program (liblxc has set the container up): a byte read from
 * fd 5 releases it, end of file aborts the start. This is runc's create/start split.
 *
 * Reporting: when file descriptor 3 is open, the helper writes one line to it:
 *   "pid N\n"      the host pid of the init (start) or of the attached process (exec),
 *                  written before that process runs its program;
 *   "error MSG\n"  the helper failed before any process ran.
 * Exit status: the process's exit code, or 128+signal when a signal killed it. When the
 * helper itself fails it exits 255 (after writing an error line).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <sys/sysmacros.h>
#include <time.h>

#include <lxc/attach_options.h>
#include <lxc/lxccontainer.h>

#define REPORT_FD 3
#define CONSOLE_FD 4
#define GATE_FD 5
#define GATE_FILE_ENV "LXCRI_GATE_FILE"
#define HELPER_FAILED 255
#define PID_FILE_ENV "LXCRI_PID_FILE"
#define MONITOR_PID_ENV "LXCRI_MONITOR_PID"

static bool report_ok;

/* report writes one line to the report fd, if there is one. */
static void report(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	if (!report_ok)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	/* one line: no embedded newlines */
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	buf[n++] = '\n';
	/*
	 * A reader that went away must not kill us with SIGPIPE; ignoring the signal is no
	 * option (the container's init would inherit the disposition), so block it and
	 * consume a pending one.
	 */
	{
		sigset_t pipe, old;
		struct timespec zero = { 0, 0 };
		ssize_t w;

		sigemptyset(&pipe);
		sigaddset(&pipe, SIGPIPE);
		sigprocmask(SIG_BLOCK, &pipe, &old);
		do {
			w = write(REPORT_FD, buf, n);
		} while (w < 0 && errno == EINTR);
		if (w < 0 && errno == EPIPE)
			sigtimedwait(&pipe, NULL, &zero);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
}

/* fail reports an error line, prints it to stderr and exits HELPER_FAILED. */
static void __attribute__((noreturn)) fail(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	report("error %s", buf);
	if (!report_ok)
		fprintf(stderr, "lxcri-start: %s\n", buf);
	exit(HELPER_FAILED);
}

static int exit_status(int status)
{
	/*
	 * liblxc's monitor reports an init killed by a signal as (sig << 8 | 0x7f), which
	 * reads as "stopped by sig" to the W* macros (src/lxc/start.c, signal_handler).
	 */
	if ((status & 0xff) == 0x7f)
		return 128 + ((status >> 8) & 0x7f);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return HELPER_FAILED;
}

static void open_report_fd(void)
{
	int flags = fcntl(REPORT_FD, F_GETFD);

	if (flags < 0)
		return;
	/* The container's processes must not inherit it. */
	fcntl(REPORT_FD, F_SETFD, flags | FD_CLOEXEC);
	report_ok = true;
}

static bool parse_long(const char *s, int base, long long *out)
{
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	*out = strtoll(s, &end, base);
	return errno == 0 && *end == '\0';
}

static bool parse_u64(const char *s, int base, uint64_t *out)
{
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	*out = strtoull(s, &end, base);
	return errno == 0 && *end == '\0';
}

static struct lxc_container *load(const char *name, const char *lxcpath)
{
	struct lxc_container *c = lxc_container_new(name, lxcpath);

	if (!c)
		fail("cannot load container %s in %s", name, lxcpath);
	if (!c->is_defined(c))
		fail("container %s is not defined in %s (no %s/%s/config)", name, lxcpath, lxcpath, name);
	return c;
}

/* --- start ------------------------------------------------------------------------- */

static char *shell_quote(const char *s)
{
	size_t n = 3;
	char *out, *p;

	for (const char *q = s; *q; q++)
		n += *q == '\'' ? 4 : 1;
	out = malloc(n);
	if (!out)
		return NULL;
	p = out;
	*p++ = '\'';
	for (const char *q = s; *q; q++) {
		if (*q == '\'') {
			memcpy(p, "'\\''", 4);
			p += 4;
		} else {
			*p++ = *q;
		}
	}
	*p++ = '\'';
	*p = '\0';
	return out;
}

static int do_start(int argc, char **argv)
{
	struct lxc_container *c;
	const char *name, *lxcpath;
	char **args = NULL;
	int i;

	if (argc < 4)
		fail("usage: lxcri-start start NAME LXCPATH [--umask OCTAL] [-- ARGS...]");
	name = argv[2];
	lxcpath = argv[3];
	char **env = calloc(argc, sizeof(char *));
	size_t nenv = 0;
	bool set_env = false;
	uint64_t cap_inh = 0;
	bool set_inh = false;

	if (!env)
		fail("out of memory");
	for (i = 4; i < argc; i++) {
		long long v;

		if (strcmp(argv[i], "--") == 0) {
			if (i + 1 < argc)
				args = &argv[i + 1];
			break;
		} else if (strcmp(argv[i], "--umask") == 0 && i + 1 < argc) {
			if (!parse_long(argv[++i], 8, &v) || v < 0 || v > 0777)
				fail("invalid umask %s", argv[i]);
			umask((mode_t)v);
		} else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc) {
			if (!strchr(argv[++i], '='))
				fail("invalid environment entry %s (want KEY=VALUE)", argv[i]);
			env[nenv++] = argv[i];
			set_env = true;
		} else if (strcmp(argv[i], "--no-env") == 0) {
			set_env = true;
		} else if (strcmp(argv[i], "--cap-inheritable") == 0 && i + 1 < argc) {
			if (!parse_u64(argv[++i], 16, &cap_inh))
				fail("invalid capability mask %s", argv[i]);
			set_inh = true;
		} else {
			fail("start: unknown argument %s", argv[i]);
		}
	}

	c = load(name, lxcpath);
	if (c->is_running(c))
		fail("container %s is already running", name);

	if (set_env) {
		if (!c->clear_config_item(c, "lxc.environment"))
			fail("cannot clear lxc.environment");
		for (size_t k = 0; k < nenv; k++)
			if (!c->set_config_item(c, "lxc.environment", env[k]))
				fail("cannot set environment entry %s", env[k]);
	}

	if (set_inh) {
		/* The init inherits the inheritable set: liblxc does not touch it. */
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct __user_cap_data_struct data[2];

		if (syscall(SYS_capget, &hdr, data) < 0)
			fail("capget: %s", strerror(errno));
		data[0].inheritable = (uint32_t)cap_inh;
		data[1].inheritable = (uint32_t)(cap_inh >> 32);
		if (syscall(SYS_capset, &hdr, data) < 0)
			fail("set inheritable capabilities (process.capabilities.inheritable): %s", strerror(errno));
	}

	{
		char mpid[32];
		int flags = fcntl(GATE_FD, F_GETFD);

		snprintf(mpid, sizeof(mpid), "%d", getpid());
		setenv(MONITOR_PID_ENV, mpid, 1);
		if (flags >= 0) {
			char gate[64];

			fcntl(GATE_FD, F_SETFD, flags | FD_CLOEXEC);
			snprintf(gate, sizeof(gate), "/proc/%d/fd/%d", getpid(), GATE_FD);
			setenv(GATE_FILE_ENV, gate, 1);
		}
	}

	if (report_ok) {
		/*
		 * The container's init pid is known in this process (the monitor) only inside
		 * liblxc: it exports it as LXC_PID to the start-host hooks, which run after the
		 * init was cloned and before it execs. The hook writes it to our report fd
		 * through /proc, since the fd itself is close-on-exec.
		 */
		char self[PATH_MAX], pidfile[64], *quoted, *hook;
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n < 0)
			fail("readlink /proc/self/exe: %s", strerror(errno));
		self[n] = '\0';
		snprintf(pidfile, sizeof(pidfile), "/proc/%d/fd/%d", getpid(), REPORT_FD);
		setenv(PID_FILE_ENV, pidfile, 1);
		quoted = shell_quote(self);
		if (!quoted || asprintf(&hook, "%s pidhook", quoted) < 0)
			fail("out of memory");
		if (!c->set_config_item(c, "lxc.hook.start-host", hook))
			fail("cannot set lxc.hook.start-host");
		free(hook);
		free(quoted);
	}

	if (!c->want_daemonize(c, false))
		fail("cannot run container %s in the foreground", name);

	if (!c->start(c, 0, args)) {
		/*
		 * The container did not start, or its init failed before or at exec (error_num
		 * is then liblxc's placeholder 1, not a status).
		 */
		lxc_container_put(c);
		fail("failed to start container %s (see the lxc log)", name);
	}
	i = exit_status(c->error_num);
	lxc_container_put(c);
	return i;
}

static int do_pidhook(void)
{
	const char *path = getenv(PID_FILE_ENV);
	const char *pid = getenv("LXC_PID");
	const char *gate = getenv(GATE_FILE_ENV);
	char buf[64];
	int fd, n;

	if (!path || !pid)
		return 0;
	if (gate) {
		/* Open the gate first: once the pid is out, the shim may close it. */
		int gfd = open(gate, O_RDONLY | O_CLOEXEC);
		char c;
		ssize_t r;

		if (gfd < 0) {
			fprintf(stderr, "lxcri-start pidhook: open %s: %s\n", gate, strerror(errno));
			return 1;
		}
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "lxcri-start pidhook: open %s: %s\n", path, strerror(errno));
			return 1;
		}
		n = snprintf(buf, sizeof(buf), "pid %s\n", pid);
		if (write(fd, buf, n) != n) {
			fprintf(stderr, "lxcri-start pidhook: write %s: %s\n", path, strerror(errno));
			return 1;
		}
		close(fd);
		do {
			r = read(gfd, &c, 1);
		} while (r < 0 && errno == EINTR);
		if (r != 1) {
			fprintf(stderr, "lxcri-start pidhook: start aborted\n");
			return 1;
		}
		return 0;
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "lxcri-start pidhook: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	n = snprintf(buf, sizeof(buf), "pid %s\n", pid);
	if (write(fd, buf, n) != n) {
		fprintf(stderr, "lxcri-start pidhook: write %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}

/* --- exec -------------------------------------------------------------------------- */

#define MAX_RLIMITS 32

struct exec_payload {
	char **args;
	char **env;
	size_t nenv;
	const char *cwd;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t ngroups;
	long long umask;
	bool tty;
	int console_sock; /* -1: use stdin as the terminal */
	bool no_new_privs;
	bool caps;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	int nrlimits;
	struct {
		int resource;
		struct rlimit lim;
	} rlimits[MAX_RLIMITS];
	const char *oom_score_adj;
};

static int last_cap(void)
{
	static int last = -1;
	FILE *f;

	if (last >= 0)
		return last;
	last = CAP_LAST_CAP;
	f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &last) != 1)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	return last;
}

/* child_fail prints to the process's stderr (the only channel left) and returns 127. */
static int child_fail(const char *what, int err)
{
	report("error %s: %s", what, strerror(err));
	fprintf(stderr, "lxcri-start exec: %s: %s\n", what, strerror(err));
	fflush(stderr);
	return 127;
}

/* drop_bounding needs CAP_SETPCAP: it runs before the switch to the process's user. */
static int drop_bounding(struct exec_payload *p)
{
	int last = last_cap();

	for (int cap = 0; cap <= last; cap++) {
		if (p->cap_bounding & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return child_fail("drop bounding capability (process.capabilities.bounding)", errno);
	}
	return 0;
}

static int apply_caps(struct exec_payload *p)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	int last = last_cap();

	memset(data, 0, sizeof(data));
	data[0].effective = (uint32_t)p->cap_effective;
	data[1].effective = (uint32_t)(p->cap_effective >> 32);
	data[0].permitted = (uint32_t)p->cap_permitted;
	data[1].permitted = (uint32_t)(p->cap_permitted >> 32);
	data[0].inheritable = (uint32_t)p->cap_inheritable;
	data[1].inheritable = (uint32_t)(p->cap_inheritable >> 32);
	if (syscall(SYS_capset, &hdr, data) < 0)
		return child_fail("set capabilities (process.capabilities)", errno);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return child_fail("clear ambient capabilities", errno);
	for (int cap = 0; cap <= last; cap++) {
		if (!(p->cap_ambient & (1ULL << cap)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			return child_fail("raise ambient capability (process.capabilities.ambient)", errno);
	}
	return 0;
}

static int send_fd(int sock, int fd)
{
	char data[] = "pty";
	char buf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *c;

	memset(buf, 0, sizeof(buf));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * container_pty allocates a pty from the container's devpts (so that ttyname(3) works
 * inside), sends its master to the shim and makes the slave the process's stdio and
 * controlling terminal.
 */
static int container_pty(struct exec_payload *p)
{
	int ptx, pty, unlock = 0;

	ptx = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (ptx < 0)
		return child_fail("open the container's /dev/ptmx", errno);
	if (ioctl(ptx, TIOCSPTLCK, &unlock) < 0)
		return child_fail("unlock pty", errno);
	pty = ioctl(ptx, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (pty < 0)
		return child_fail("open pty peer", errno);
	if (p->uid != 0 && fchown(pty, p->uid, (gid_t)-1) < 0)
		return child_fail("chown pty", errno);
	if (send_fd(p->console_sock, ptx) < 0)
		return child_fail("send the pty master", errno);
	/* The shim sizes the terminal, then lets us go on. */
	{
		char ack;

		while (read(p->console_sock, &ack, 1) < 0 && errno == EINTR)
			;
	}
	close(ptx);
	close(p->console_sock);
	setsid();
	for (int fd = 0; fd <= 2; fd++)
		if (dup2(pty, fd) < 0)
			return child_fail("dup pty", errno);
	if (pty > 2)
		close(pty);
	if (ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
		return child_fail("make the pty the controlling terminal", errno);
	return 0;
}

/* exec_function runs inside the container, as root, after liblxc attached it. */
static int exec_function(void *payload)
{
	struct exec_payload *p = payload;
	int ret;

	for (int i = 0; i < p->nrlimits; i++)
		if (setrlimit(p->rlimits[i].resource, &p->rlimits[i].lim) < 0)
			return child_fail("setrlimit (process.rlimits)", errno);

	if (p->oom_score_adj) {
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, p->oom_score_adj, strlen(p->oom_score_adj)) < 0)
			return child_fail("write /proc/self/oom_score_adj (process.oomScoreAdj)", errno);
		close(fd);
	}

	if (p->tty && p->console_sock >= 0) {
		ret = container_pty(p);
		if (ret)
			return ret;
	} else if (p->tty) {
		setsid();
		if (ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
			return child_fail("make stdin the controlling terminal", errno);
	}

	if (p->cwd && chdir(p->cwd) < 0)
		return child_fail(p->cwd, errno);

	if (p->umask >= 0)
		umask((mode_t)p->umask);

	/* user, groups, capabilities: as runc does (keep caps across setuid, then set them). */
	if (p->caps) {
		ret = drop_bounding(p);
		if (ret)
			return ret;
	}
	if (setgroups(p->ngroups, p->groups) < 0)
		return child_fail("setgroups (process.user.additionalGids)", errno);
	if (p->caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return child_fail("prctl(PR_SET_KEEPCAPS)", errno);
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		return child_fail("setgid (process.user.gid)", errno);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		return child_fail("setuid (process.user.uid)", errno);
	if (p->caps) {
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
		ret = apply_caps(p);
		if (ret)
			return ret;
	}
	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return child_fail("prctl(PR_SET_NO_NEW_PRIVS)", errno);

	if (clearenv() != 0)
		return child_fail("clearenv", errno);
	for (size_t i = 0; i < p->nenv; i++)
		putenv(p->env[i]);

	execvp(p->args[0], p->args);
	ret = errno;
	report("error exec %s: %s", p->args[0], strerror(ret));
	fprintf(stderr, "lxcri-start exec: exec %s: %s\n", p->args[0], strerror(ret));
	fflush(stderr);
	return (ret == ENOENT || ret == ENOTDIR) ? 127 : 126;
}

static int do_exec(int argc, char **argv)
{
	struct lxc_container *c;
	const char *name, *lxcpath;
	struct exec_payload p;
	lxc_attach_options_t opts = LXC_ATTACH_OPTIONS_DEFAULT;
	pid_t pid;
	int i, status, ret;

	memset(&p, 0, sizeof(p));
	p.umask = -1;
	p.console_sock = -1;
	if (argc < 4)
		fail("usage: lxcri-start exec NAME LXCPATH [options] -- ARGS...");
	name = argv[2];
	lxcpath = argv[3];
	p.env = calloc(argc, sizeof(char *));
	if (!p.env)
		fail("out of memory");
	for (i = 4; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		long long n;

		if (strcmp(a, "--") == 0) {
			if (i + 1 < argc)
				p.args = &argv[i + 1];
			break;
		}
		if (strcmp(a, "--tty") == 0) {
			p.tty = true;
			continue;
		}
		if (strcmp(a, "--no-new-privs") == 0) {
			p.no_new_privs = true;
			continue;
		}
		if (!v)
			fail("exec: %s needs a value", a);
		i++;
		if (strcmp(a, "--cwd") == 0) {
			p.cwd = v;
		} else if (strcmp(a, "--uid") == 0) {
			if (!parse_long(v, 10, &n) || n < 0 || n > UINT32_MAX - 1)
				fail("invalid uid %s", v);
			p.uid = (uid_t)n;
		} else if (strcmp(a, "--gid") == 0) {
			if (!parse_long(v, 10, &n) || n < 0 || n > UINT32_MAX - 1)
				fail("invalid gid %s", v);
			p.gid = (gid_t)n;
		} else if (strcmp(a, "--groups") == 0) {
			char *dup = strdup(v), *tok, *save = NULL;
			size_t cnt = 1;

			for (const char *q = v; *q; q++)
				cnt += *q == ',';
			p.groups = calloc(cnt, sizeof(gid_t));
			if (!dup || !p.groups)
				fail("out of memory");
			for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (!parse_long(tok, 10, &n) || n < 0 || n > UINT32_MAX - 1)
					fail("invalid group %s", tok);
				p.groups[p.ngroups++] = (gid_t)n;
			}
		} else if (strcmp(a, "--env") == 0) {
			if (!strchr(v, '='))
				fail("invalid environment entry %s (want KEY=VALUE)", v);
			p.env[p.nenv++] = (char *)v;
		} else if (strcmp(a, "--umask") == 0) {
			if (!parse_long(v, 8, &n) || n < 0 || n > 0777)
				fail("invalid umask %s", v);
			p.umask = n;
		} else if (strcmp(a, "--caps") == 0) {
			char *dup = strdup(v), *tok, *save = NULL;
			uint64_t *sets[5] = { &p.cap_bounding, &p.cap_effective, &p.cap_permitted,
					      &p.cap_inheritable, &p.cap_ambient };
			int k = 0;

			if (!dup)
				fail("out of memory");
			for (tok = strtok_r(dup, ",", &save); tok && k < 5; tok = strtok_r(NULL, ",", &save), k++)
				if (!parse_u64(tok, 16, sets[k]))
					fail("invalid capability mask %s", tok);
			if (k != 5 || tok)
				fail("--caps wants 5 hex masks, got %s", v);
			p.caps = true;
		} else if (strcmp(a, "--rlimit") == 0) {
			long long res, soft, hard;
			char *dup = strdup(v), *s1, *s2;

			if (!dup)
				fail("out of memory");
			s1 = strchr(dup, ':');
			s2 = s1 ? strchr(s1 + 1, ':') : NULL;
			if (!s2)
				fail("invalid rlimit %s (want RES:SOFT:HARD)", v);
			*s1++ = '\0';
			*s2++ = '\0';
			if (!parse_long(dup, 10, &res) || !parse_long(s1, 10, &soft) ||
			    !parse_long(s2, 10, &hard) || res < 0 || res >= RLIM_NLIMITS)
				fail("invalid rlimit %s", v);
			if (p.nrlimits >= MAX_RLIMITS)
				fail("too many rlimits");
			p.rlimits[p.nrlimits].resource = (int)res;
			p.rlimits[p.nrlimits].lim.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
			p.rlimits[p.nrlimits].lim.rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
			p.nrlimits++;
		} else if (strcmp(a, "--oom-score-adj") == 0) {
			if (!parse_long(v, 10, &n) || n < -1000 || n > 1000)
				fail("invalid oom_score_adj %s", v);
			p.oom_score_adj = v;
		} else {
			fail("exec: unknown argument %s", a);
		}
	}
	if (!p.args || !p.args[0])
		fail("exec: no command given");
	if (p.tty && fcntl(CONSOLE_FD, F_GETFD) >= 0) {
		fcntl(CONSOLE_FD, F_SETFD, FD_CLOEXEC);
		p.console_sock = CONSOLE_FD;
	}

	c = load(name, lxcpath);
	if (!c->is_running(c))
		fail("container %s is not running", name);

	/*
	 * liblxc attaches as root (uid/gid 0 of the container): the exec function switches to
	 * the process's user itself, so that it can keep the capabilities the spec asks for.
	 * The environment is cleared and set exactly by the exec function.
	 */
	opts.uid = 0;
	opts.gid = 0;
	opts.env_policy = LXC_ATTACH_CLEAR_ENV;
	opts.stdin_fd = STDIN_FILENO;
	opts.stdout_fd = STDOUT_FILENO;
	opts.stderr_fd = STDERR_FILENO;
	/* initial_cwd NULL would mean our (host) cwd: use / and chdir in the exec function. */
	opts.initial_cwd = "/";

	ret = c->attach(c, exec_function, &p, &opts, &pid);
	if (ret < 0 || pid <= 0)
		fail("failed to attach to container %s (see the lxc log)", name);
	report("pid %d", pid);
	if (report_ok)
		close(REPORT_FD);
	if (p.console_sock >= 0)
		close(p.console_sock);
	lxc_container_put(c);

	for (;;) {
		ret = waitpid(pid, &status, 0);
		if (ret == pid)
			return exit_status(status);
		if (ret < 0 && errno != EINTR)
			fail("waitpid %d: %s", pid, strerror(errno));
	}
}

/* --- devices ----------------------------------------------------------------------- */

static int open_in_root(int rootfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};

	while (*rel == '/')
		rel++;
	if (!*rel)
		rel = ".";
	return (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
}

/* mkdir_in_root makes directory rel (and its parents) inside rootfd and opens it. */
static int mkdir_in_root(int rootfd, const char *rel)
{
	char buf[PATH_MAX];
	char *p;
	int fd;

	if (strlen(rel) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, rel);
	for (p = buf; *p == '/'; p++)
		;
	for (;;) {
		char *slash = strchr(p, '/');
		char saved = 0;

		if (slash) {
			saved = *slash;
			*slash = '\0';
		}
		fd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
		if (fd < 0 && errno == ENOENT) {
			char *last = strrchr(buf, '/');
			int pfd;

			if (last && last != buf) {
				*last = '\0';
				pfd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
				*last = '/';
				if (pfd < 0)
					return -errno;
				if (mkdirat(pfd, last + 1, 0755) < 0 && errno != EEXIST) {
					close(pfd);
					return -errno;
				}
				close(pfd);
			} else {
				const char *n = last ? last + 1 : buf;

				if (mkdirat(rootfd, n, 0755) < 0 && errno != EEXIST)
					return -errno;
			}
			fd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
		}
		if (fd < 0)
			return -errno;
		if (!slash)
			return fd;
		close(fd);
		*slash = saved;
		p = slash + 1;
	}
}

static int do_devices(int argc, char **argv)
{
	const char *root = getenv("LXC_ROOTFS_MOUNT");
	int rootfd;

	if (!root)
		fail("devices: LXC_ROOTFS_MOUNT is not set (run as lxc.hook.autodev)");
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail("devices: open %s: %s", root, strerror(errno));
	for (int i = 2; i < argc; i++) {
		char *spec = argv[i], *dir, *base, *path;
		char type;
		long long maj, min, mode, uid, gid;
		char *f[6];
		int dfd, k;
		mode_t fmt;

		if (strcmp(spec, "ptmx") == 0) {
			dfd = mkdir_in_root(rootfd, "dev");
			if (dfd < 0)
				fail("devices: mkdir /dev: %s", strerror(-dfd));
			unlinkat(dfd, "ptmx", 0);
			if (symlinkat("pts/ptmx", dfd, "ptmx") < 0)
				fail("devices: symlink /dev/ptmx: %s", strerror(errno));
			close(dfd);
			continue;
		}
		/* TYPE:MAJ:MIN:MODE:UID:GID:PATH */
		f[0] = spec;
		for (k = 1; k < 6; k++) {
			char *c = strchr(f[k - 1], ':');

			if (!c)
				fail("devices: invalid spec %s", argv[i]);
			*c = '\0';
			f[k] = c + 1;
		}
		path = strchr(f[5], ':');
		if (!path || strlen(f[0]) != 1)
			fail("devices: invalid spec %s", argv[i]);
		*path++ = '\0';
		type = f[0][0];
		if (!parse_long(f[1], 10, &maj) || !parse_long(f[2], 10, &min) ||
		    !parse_long(f[3], 8, &mode) || !parse_long(f[4], 10, &uid) ||
		    !parse_long(f[5], 10, &gid) || path[0] != '/')
			fail("devices: invalid spec for %s", path);
		switch (type) {
		case 'c':
			fmt = S_IFCHR;
			break;
		case 'b':
			fmt = S_IFBLK;
			break;
		case 'p':
			fmt = S_IFIFO;
			break;
		default:
			fail("devices: invalid type %c for %s", type, path);
		}
		dir = strdup(path);
		if (!dir)
			fail("out of memory");
		base = strrchr(dir, '/');
		*base++ = '\0';
		dfd = *dir ? mkdir_in_root(rootfd, dir) : dup(rootfd);
		if (dfd < 0)
			fail("devices: mkdir %s: %s", *dir ? dir : "/", strerror(dfd == -1 ? errno : -dfd));
		if (unlinkat(dfd, base, 0) < 0 && errno != ENOENT)
			fail("devices: remove %s: %s", path, strerror(errno));
		if (mknodat(dfd, base, fmt | (mode_t)(mode & 07777), makedev(maj, min)) < 0)
			fail("devices: mknod %s: %s", path, strerror(errno));
		if (fchownat(dfd, base, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0)
			fail("devices: chown %s: %s", path, strerror(errno));
		if (fchmodat(dfd, base, (mode_t)(mode & 07777), 0) < 0)
			fail("devices: chmod %s: %s", path, strerror(errno));
		close(dfd);
		free(dir);
	}
	return 0;
}

/* --- sysctl ------------------------------------------------------------------------ */

static int do_sysctl(int argc, char **argv)
{
	const char *pid = getenv("LXC_PID");
	const char *nss[] = { "net", "ipc", "uts" };

	if (!pid)
		fail("sysctl: LXC_PID is not set (run as lxc.hook.start-host)");
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++) {
		char path[64];
		struct stat theirs, ours;
		int fd;

		snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, nss[i]);
		if (stat(path, &theirs) < 0)
			fail("sysctl: stat %s: %s", path, strerror(errno));
		snprintf(path, sizeof(path), "/proc/self/ns/%s", nss[i]);
		if (stat(path, &ours) == 0 && ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, nss[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, 0) < 0)
			fail("sysctl: join %s: %s", path, strerror(errno));
		close(fd);
	}
	for (int i = 2; i < argc; i++) {
		char path[PATH_MAX], *eq = strchr(argv[i], '=');
		size_t n;
		int fd;

		if (!eq || eq == argv[i] || strstr(argv[i], "..") || argv[i][0] == '/')
			fail("sysctl: invalid setting %s", argv[i]);
		n = (size_t)(eq - argv[i]);
		if (n + strlen("/proc/sys/") >= sizeof(path))
			fail("sysctl: name too long");
		strcpy(path, "/proc/sys/");
		for (size_t k = 0; k < n; k++)
			path[10 + k] = argv[i][k] == '.' ? '/' : argv[i][k];
		path[10 + n] = '\0';
		fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0)
			fail("sysctl: open %s: %s", path, strerror(errno));
		if (write(fd, eq + 1, strlen(eq + 1)) < 0)
			fail("sysctl: write %s to %s: %s", eq + 1, path, strerror(errno));
		close(fd);
	}
	return 0;
}

/* --- oci-hook ---------------------------------------------------------------------- */

/* init_host_pid finds the container init's host pid from a hook it ran (pre-pivot, /proc is
 * still the host's): the ancestor whose parent is the monitor. */
static long init_host_pid(void)
{
	const char *m = getenv(MONITOR_PID_ENV);
	long long monitor;
	char path[64] = "/proc/self/stat";

	if (!m || !parse_long(m, 10, &monitor))
		return -1;
	for (int depth = 0; depth < 16; depth++) {
		char buf[1024], *p;
		long pid, ppid;
		FILE *f = fopen(path, "re");
		size_t n;

		if (!f)
			return -1;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		pid = strtol(buf, NULL, 10);
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1, " %*c %ld", &ppid) != 1)
			return -1;
		if (ppid == monitor)
			return pid;
		snprintf(path, sizeof(path), "/proc/%ld/stat", ppid);
	}
	return -1;
}

static int do_oci_hook(int argc, char **argv)
{
	char *buf = NULL, *p, *end, **args, **env, *state, *pidpos;
	size_t cap = 0, len = 0;
	long timeout, nargs, nenv, pid = -1;
	int fd, pipefd[2], status;
	pid_t child;
	struct timespec start;
	char pidstr[32], *newstate;
	const char *lxcpid = getenv("LXC_PID");

	if (argc < 3)
		fail("usage: lxcri-start oci-hook FILE");
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("oci-hook: open %s: %s", argv[2], strerror(errno));
	for (;;) {
		ssize_t r;

		if (len + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap + 1);
			if (!buf)
				fail("out of memory");
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("oci-hook: read %s: %s", argv[2], strerror(errno));
		if (r == 0)
			break;
		len += r;
	}
	close(fd);
	buf[len] = '\0';
	p = buf;
	end = buf + len;
#define NEXT(var)                                                         \
	do {                                                              \
		if (p >= end)                                             \
			fail("oci-hook: %s is truncated", argv[2]);       \
		var = p;                                                  \
		p += strlen(p) + 1;                                       \
	} while (0)
	{
		char *magic, *path, *s;
		long long v;

		NEXT(magic);
		if (strcmp(magic, "lxcri-hook-v1") != 0)
			fail("oci-hook: %s is no hook description", argv[2]);
		NEXT(path);
		NEXT(s);
		if (!parse_long(s, 10, &v))
			fail("oci-hook: bad timeout");
		timeout = (long)v;
		NEXT(s);
		if (!parse_long(s, 10, &v) || v < 1 || v > 1 << 20)
			fail("oci-hook: bad argument count");
		nargs = (long)v;
		args = calloc(nargs + 1, sizeof(char *));
		if (!args)
			fail("out of memory");
		for (long i = 0; i < nargs; i++)
			NEXT(args[i]);
		NEXT(s);
		if (!parse_long(s, 10, &v) || v < 0 || v > 1 << 20)
			fail("oci-hook: bad environment count");
		nenv = (long)v;
		env = calloc(nenv + 1, sizeof(char *));
		if (!env)
			fail("out of memory");
		for (long i = 0; i < nenv; i++)
			NEXT(env[i]);
		NEXT(state);
		argv[2] = path;
	}
#undef NEXT

	if (lxcpid) {
		long long v;

		if (parse_long(lxcpid, 10, &v))
			pid = (long)v;
	} else {
		pid = init_host_pid();
	}
	snprintf(pidstr, sizeof(pidstr), "\"pid\":%ld", pid);
	pidpos = strstr(state, "\"pid\":-1");
	if (pidpos) {
		size_t pre = pidpos - state, oldlen = strlen("\"pid\":-1");

		newstate = malloc(strlen(state) + strlen(pidstr) + 1);
		if (!newstate)
			fail("out of memory");
		memcpy(newstate, state, pre);
		strcpy(newstate + pre, pidstr);
		strcat(newstate, pidpos + oldlen);
		state = newstate;
	}

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		fail("oci-hook: pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		fail("oci-hook: fork: %s", strerror(errno));
	if (child == 0) {
		dup2(pipefd[0], STDIN_FILENO);
		execve(argv[2], args, env);
		fprintf(stderr, "oci-hook: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	close(pipefd[0]);
	signal(SIGPIPE, SIG_IGN);
	{
		size_t off = 0, n = strlen(state);

		while (off < n) {
			ssize_t w = write(pipefd[1], state + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				break; /* the hook need not read its stdin */
			off += w;
		}
	}
	close(pipefd[1]);

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t r = waitpid(child, &status, timeout > 0 ? WNOHANG : 0);
		struct timespec now, nap = { 0, 5 * 1000 * 1000 };

		if (r == child)
			break;
		if (r < 0 && errno != EINTR)
			fail("oci-hook: waitpid: %s", strerror(errno));
		if (timeout <= 0)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= timeout) {
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
			fprintf(stderr, "oci-hook: %s timed out after %lds\n", argv[2], timeout);
			return 1;
		}
		nanosleep(&nap, NULL);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	fprintf(stderr, "oci-hook: %s failed with status %d\n", argv[2], exit_status(status));
	return 1;
}

int main(int argc, char **argv)
{
	setvbuf(stderr, NULL, _IONBF, 0);
	if (argc >= 2 && strcmp(argv[1], "pidhook") == 0)
		return do_pidhook();
	if (argc >= 2 && strcmp(argv[1], "devices") == 0)
		return do_devices(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "oci-hook") == 0)
		return do_oci_hook(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "sysctl") == 0)
		return do_sysctl(argc, argv);

	open_report_fd();
	if (argc >= 2 && strcmp(argv[1], "start") == 0)
		return do_start(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "exec") == 0)
		return do_exec(argc, argv);
	fail("usage: lxcri-start start|exec NAME LXCPATH ...");
}
