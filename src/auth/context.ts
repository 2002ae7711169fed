// Who a client request runs for. The API layer resolves the user (token or client-certificate CN) and
// runs the handler inside this context; the server reads it when it builds a log entry, so the apply
// step can check the user's permissions in log order.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestAuth {
  /** '' when the client presented neither a token nor a usable certificate */
  user: string;
}

/**
 * The user of a request whose verified client certificate has no common name (with --client-cert-auth).
 * etcd takes that as the user "" known to the auth store: data requests are then denied ("permission
 * denied") rather than refused as anonymous ("user name is empty"), while admin requests still say the
 * name is empty. No stored user ever matches it, whatever its name.
 */
export const NAMELESS_CERT_USER = '\u0000(client certificate without a common name)';

export const requestAuth = new AsyncLocalStorage<RequestAuth>();
