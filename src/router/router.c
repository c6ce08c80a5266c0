/* router.c - the table of router kinds (see router.h). A new kind is a
 * row here: its ops in router_NAME.c. */
#include "router.h"
#include "router_k8s.h"

#include <stdio.h>
#include <string.h>

static const router_ops *const builtins[] = {
	&router_builtin,
	&router_haproxy,
	/* the Kubernetes routers (router_k8s.c); Flagger's spec.provider
	 * names map onto them in router_find */
	&router_istio,
	&router_gatewayapi,
	&router_smi,
};

#define N_BUILTINS (sizeof builtins / sizeof builtins[0])
#define MAX_REGISTERED 8

static const router_ops *registered[MAX_REGISTERED];
static size_t n_registered;

void router_register(const router_ops *ops)
{
	if (n_registered < MAX_REGISTERED)
		registered[n_registered++] = ops;
}

const router_ops *router_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = n_registered; i-- > 0;)
		if (strcmp(registered[i]->name, name) == 0)
			return registered[i];
	for (size_t i = 0; i < N_BUILTINS; i++)
		if (strcmp(builtins[i]->name, name) == 0)
			return builtins[i];
	return router_k8s_find(name);
}

void router_names(char *out, size_t outlen)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < N_BUILTINS && n < outlen; i++)
		n += (size_t)snprintf(out + n, outlen - n, "%s'%s'", i ? ", " : "",
		                      builtins[i]->name);
}
