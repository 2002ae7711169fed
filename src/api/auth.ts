// etcdserverpb.Auth: enable/disable/status, Authenticate (simple tokens), users and roles. Changes go
// through the log (and are permission-checked when applied); reads answer from the applied auth store.
// Also: resolving who a request runs as — its token, or with --client-cert-auth its certificate's CN.
import * as grpc from '@grpc/grpc-js';
import { NAMELESS_CERT_USER, requestAuth } from '../auth/context';
import { EtcdServer } from '../server';
import { ApiDeps, ServiceModule } from './service';

/**
 * The user of a call: undefined with auth off; '' with auth on but no token and no certificate name.
 * An unknown or expired token fails with etcd's "invalid auth token".
 */
export async function callUser(server: EtcdServer, call: { metadata: grpc.Metadata; getAuthContext?: () => unknown }, clientCertAuth: boolean): Promise<string | undefined> {
  if (!server.auth.enabled) return undefined;
  const raw = call.metadata.get('token')[0] ?? call.metadata.get('authorization')[0];
  if (raw !== undefined && String(raw) !== '') {
    await server.awaitToken(String(raw));
    return server.tokenUser(String(raw));
  }
  if (clientCertAuth && call.getAuthContext) {
    // only verified certificates get this far (the listener drops the rest)
    const ctx = call.getAuthContext() as { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } | null;
    const cert = ctx?.sslPeerCertificate;
    if (cert) {
      const cn = cert.subject?.CN;
      if (typeof cn === 'string' && cn !== '') return cn;
      return NAMELESS_CERT_USER;
    }
  }
  return '';
}

/** Runs `fn` as the call's user (see requestAuth). */
export function asCallUser<T>(user: string | undefined, fn: () => T): T {
  return user === undefined ? fn() : requestAuth.run({ user }, fn);
}

function admin(server: EtcdServer): void {
  const user = server.currentUser();
  if (user !== undefined) server.auth.checkAdmin(user);
}

export function authService({ server }: ApiDeps): ServiceModule {
  const ok = (r: unknown) => ({ header: (r as { header: unknown }).header });
  return {
    service: 'etcdserverpb.Auth',
    unary: {
      AuthEnable: async () => ok(await server.authEnable()),
      AuthDisable: async () => ok(await server.authDisable()),
      AuthStatus: () => {
        admin(server);
        return server.authStatus();
      },
      Authenticate: async (r: { name: string; password: string }) => server.authenticate(r.name, r.password),
      UserAdd: async (r: { name: string; password?: string; options?: { no_password?: boolean } }) => ok(await server.userAdd(r)),
      UserGet: (r: { name: string }) => {
        const user = server.currentUser();
        if (user !== undefined && user !== r.name) server.auth.checkAdmin(user);
        return { header: server.header(), roles: server.auth.userGet(r.name).roles };
      },
      UserList: () => {
        admin(server);
        return { header: server.header(), users: server.auth.userList() };
      },
      UserDelete: async (r: { name: string }) => ok(await server.authRequest({ request: 'user_delete', user_delete: { name: r.name } })),
      UserChangePassword: async (r: { name: string; password?: string }) => ok(await server.userChangePassword(r)),
      UserGrantRole: async (r: { user: string; role: string }) => ok(await server.authRequest({ request: 'user_grant_role', user_grant_role: { user: r.user, role: r.role } })),
      UserRevokeRole: async (r: { name: string; role: string }) => ok(await server.authRequest({ request: 'user_revoke_role', user_revoke_role: { name: r.name, role: r.role } })),
      RoleAdd: async (r: { name: string }) => ok(await server.authRequest({ request: 'role_add', role_add: { name: r.name } })),
      RoleGet: (r: { role: string }) => {
        const user = server.currentUser();
        if (user !== undefined && !server.auth.hasRole(user, r.role)) server.auth.checkAdmin(user);
        const perm = server.auth.roleGet(r.role).map((p) => ({ permType: p.permType, key: p.key, range_end: p.rangeEnd }));
        return { header: server.header(), perm };
      },
      RoleList: () => {
        admin(server);
        return { header: server.header(), roles: server.auth.roleList() };
      },
      RoleDelete: async (r: { role: string }) => ok(await server.authRequest({ request: 'role_delete', role_delete: { role: r.role } })),
      RoleGrantPermission: async (r: { name: string; perm?: { permType?: number; key?: Buffer; range_end?: Buffer } }) =>
        ok(await server.authRequest({ request: 'role_grant_permission', role_grant_permission: { name: r.name, perm: r.perm } })),
      RoleRevokePermission: async (r: { role: string; key?: Buffer; range_end?: Buffer }) =>
        ok(await server.authRequest({ request: 'role_revoke_permission', role_revoke_permission: { role: r.role, key: r.key, range_end: r.range_end } })),
    },
  };
}

