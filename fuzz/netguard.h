/* netguard.h - keeps a fuzz target that drives the daemon's network code
 * (the admin API, the controller's probes) on this machine. A fuzzed
 * request may name any endpoint ("10.1.2.3:80", "db.example:5432"); the
 * daemon would probe it and, for a host name, ask DNS. Here connect() only
 * reaches the loopback ports the target registered with netguard_allow()
 * (anything else fails as a refused connection would), and getaddrinfo()
 * only converts numeric addresses, so no packet and no DNS query leaves
 * the machine whatever the input says.
 *
 * Both functions interpose the C library's: they are defined in the fuzz
 * executable, which is linked with -rdynamic so that libuv (and libcurl,
 * loaded later with dlopen) call these. netguard_selftest() proves at start
 * that the interposition took effect, and the target aborts if it did not.
 * Include this header in exactly one file of a target. */
#ifndef CANARYD_FUZZ_NETGUARD_H
#define CANARYD_FUZZ_NETGUARD_H

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#define NETGUARD_MAX_PORTS 8
static int netguard_ports[NETGUARD_MAX_PORTS];
static int netguard_n_ports;
static unsigned long netguard_refused; /* connects turned away, for the curious */

/* Lets connect() reach 127.0.0.1:<port> (and [::1]:<port>). */
static void netguard_allow(int port)
{
	if (netguard_n_ports < NETGUARD_MAX_PORTS)
		netguard_ports[netguard_n_ports++] = port;
}

static int netguard_allowed(const struct sockaddr *sa, socklen_t len)
{
	int port = -1;
	if (sa->sa_family == AF_UNIX)
		return 1;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
			return 0;
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 0;
		port = ntohs(s6->sin6_port);
	} else {
		return 0;
	}
	for (int i = 0; i < netguard_n_ports; i++)
		if (netguard_ports[i] == port)
			return 1;
	return 0;
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (!sa || !netguard_allowed(sa, len)) {
		netguard_refused++;
		errno = ECONNREFUSED;
		return -1;
	}
	return (int)syscall(SYS_connect, fd, sa, len);
}

typedef int (*netguard_gai_fn)(const char *, const char *, const struct addrinfo *,
                               struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	static netguard_gai_fn real;
	if (!real)
		real = (netguard_gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	if (!real)
		return EAI_FAIL;
	struct addrinfo h;
	if (hints)
		h = *hints;
	else
		memset(&h, 0, sizeof h);
	h.ai_flags |= AI_NUMERICHOST; /* never a name lookup */
	return real(node, service, &h, res);
}

/* Aborts unless libuv's calls reach the two functions above: a name
 * lookup and a connect to TEST-NET-1, made through libuv, must both fail
 * here, without a packet. */
static void netguard_on_connect(uv_connect_t *req, int status)
{
	(void)req;
	(void)status;
}

static void netguard_selftest(uv_loop_t *loop)
{
	uv_getaddrinfo_t gai;
	if (uv_getaddrinfo(loop, &gai, NULL, "localhost", "80", NULL) == 0) {
		uv_freeaddrinfo(gai.addrinfo);
		fprintf(stderr, "netguard: getaddrinfo resolved a name; refusing to run\n");
		abort();
	}
	uv_tcp_t tcp;
	uv_connect_t req;
	struct sockaddr_in sa;
	uv_ip4_addr("192.0.2.1", 9, &sa);
	unsigned long before = netguard_refused;
	uv_tcp_init(loop, &tcp);
	int rc = uv_tcp_connect(&req, &tcp, (const struct sockaddr *)&sa, netguard_on_connect);
	if (netguard_refused != before + 1) {
		fprintf(stderr, "netguard: connect() is not interposed (rc %d); refusing to run\n", rc);
		abort();
	}
	uv_close((uv_handle_t *)&tcp, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

#endif
