// Who a client request runs for. The API layer resolves the user (token or client-certificate CN) and
// runs the handler inside this context; the server reads it when it builds a log entry, so the apply
// step can check the user's permissions in log order.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestAuth {
  /** '' when the client presented neither a token nor a usable certificate */
  user: string;
}

export const requestAuth = new AsyncLocalStorage<RequestAuth>();
