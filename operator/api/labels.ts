// The labels the operator puts on everything it creates, after Kubernetes' recommended
// app.kubernetes.io/* labels. Part of the API: people and tools select a cluster's pods by them.

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_VERSION = 'app.kubernetes.io/version';

/** app.kubernetes.io/name of every object of a cluster. */
export const APP_NAME = 'etcd-ts';
/** app.kubernetes.io/managed-by: the operator. */
export const MANAGER_NAME = 'etcd-ts-operator';
/** app.kubernetes.io/component of member pods (and what selects them). */
export const COMPONENT_MEMBER = 'member';

/** Labels the operator owns on member pods: a podTemplate label with one of these keys is ignored. */
export const RESERVED_POD_LABELS: readonly string[] = [LABEL_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_COMPONENT, LABEL_VERSION];
