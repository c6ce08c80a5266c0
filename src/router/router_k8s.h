/* router_k8s.h - where the Kubernetes routers (istio, gatewayapi, smi:
 * router_k8s.c) find the API server. One client per daemon, made when the
 * first mesh canary opens and shared by all of them. */
#ifndef CANARYD_ROUTER_K8S_H
#define CANARYD_ROUTER_K8S_H

#include "router.h"

/* The kubeconfig file the mesh routers use (canaryd --kubeconfig); NULL
 * (the default): the pod's service account when KUBERNETES_SERVICE_HOST
 * is set, else a mesh canary is refused at start. <path> must outlive
 * every mesh router (main's argv). Call before the first router opens. */
void router_k8s_kubeconfig(const char *path);

/* The ops of a mesh router kind by Flagger spec.provider or canaryd
 * spec.router ("istio", "linkerd", "gatewayapi:v1beta1", "smi:v1alpha1:
 * linkerd" ...), as Flagger's router factory maps them; NULL for a name
 * no mesh router drives (builtin, the providers canaryd does not render,
 * kubernetes). */
const router_ops *router_k8s_find(const char *provider);

extern const router_ops router_istio;
extern const router_ops router_gatewayapi;
extern const router_ops router_smi;

#endif
