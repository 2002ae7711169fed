// The auth store's state machine: every apply method's success and errors (etcd's codes and texts), the
// auth revision bumps, reads and their ordering, password checks with an injected comparison, range
// permission checks (points, prefixes, unions of intervals, gaps, open ends), and a persistence round
// trip through a real RocksDB backend.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { AUTH_PREFIX, AuthErrors, AuthStore, Permission, PermissionType } from '../../src/auth';
import { Backend, WriteBatch } from '../../src/storage';
import { EtcdError } from '../../src/util/errors';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const NONE = Buffer.alloc(0);
const OPEN = Buffer.from([0]);
const perm = (permType: Permission['permType'], key: string, rangeEnd = ''): Permission => ({ permType, key: b(key), rangeEnd: b(rangeEnd) });

function thrown(fn: () => unknown): EtcdError {
  try {
    fn();
  } catch (err) {
    if (err instanceof EtcdError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

/** Expects `fn` to throw `expected`'s error, leaving the store and the batch untouched. */
function expectRejected(store: AuthStore, fn: (batch: WriteBatch) => unknown, expected: () => EtcdError): void {
  const batch = new WriteBatch();
  const revision = store.revision;
  const want = expected();
  const err = thrown(() => fn(batch));
  expect({ code: err.code, message: err.message }).toEqual({ code: want.code, message: want.message });
  expect(batch.size).toBe(0);
  expect(store.revision).toBe(revision);
}

/** Runs one apply method on a fresh batch and returns the batch. */
function apply(fn: (batch: WriteBatch) => unknown): WriteBatch {
  const batch = new WriteBatch();
  fn(batch);
  return batch;
}

const newStore = (): AuthStore => AuthStore.empty();

/** A store with user root (role root) and auth enabled. */
function enabledStore(): AuthStore {
  const s = newStore();
  apply((t) => s.userAdd('root', 'hash-root', false, t));
  apply((t) => s.userGrantRole('root', 'root', t));
  apply((t) => s.enable(t));
  return s;
}

describe('AuthErrors', () => {
  test('carry etcd rpctypes codes and texts', () => {
    const cases: [EtcdError, GrpcStatus, string][] = [
      [AuthErrors.rootUserNotExist(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: root user does not exist'],
      [AuthErrors.rootRoleNotExist(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'],
      [AuthErrors.userAlreadyExist(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: user name already exists'],
      [AuthErrors.userEmpty(), GrpcStatus.INVALID_ARGUMENT, 'etcdserver: user name is empty'],
      [AuthErrors.userNotFound(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: user name not found'],
      [AuthErrors.roleAlreadyExist(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: role name already exists'],
      [AuthErrors.roleNotFound(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: role name not found'],
      [AuthErrors.roleEmpty(), GrpcStatus.INVALID_ARGUMENT, 'etcdserver: role name is empty'],
      [AuthErrors.authFailed(), GrpcStatus.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'],
      [AuthErrors.permissionNotGiven(), GrpcStatus.INVALID_ARGUMENT, 'etcdserver: permission not given'],
      [AuthErrors.permissionDenied(), GrpcStatus.PERMISSION_DENIED, 'etcdserver: permission denied'],
      [AuthErrors.roleNotGranted(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'],
      [AuthErrors.permissionNotGranted(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'],
      [AuthErrors.authNotEnabled(), GrpcStatus.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'],
      [AuthErrors.invalidAuthToken(), GrpcStatus.UNAUTHENTICATED, 'etcdserver: invalid auth token'],
      [AuthErrors.invalidAuthMgmt(), GrpcStatus.INVALID_ARGUMENT, 'etcdserver: invalid auth management'],
      [AuthErrors.authOldRevision(), GrpcStatus.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'],
      [AuthErrors.noPasswordUser(), GrpcStatus.UNKNOWN, 'auth: authentication failed, password was given for no password user'],
    ];
    for (const [err, code, message] of cases) {
      expect(err).toBeInstanceOf(EtcdError);
      expect({ code: err.code, message: err.message }).toEqual({ code, message });
    }
    expect(AuthErrors.userEmpty()).not.toBe(AuthErrors.userEmpty());
  });
});

describe('users', () => {
  test('a new store: revision 1, disabled, empty', () => {
    const s = newStore();
    expect(s.revision).toBe(1);
    expect(s.enabled).toBe(false);
    expect(s.userList()).toEqual([]);
    expect(s.roleList()).toEqual([]);
  });

  test('userAdd adds a user and bumps the revision; empty and duplicate names fail', () => {
    const s = newStore();
    const batch = apply((t) => s.userAdd('alice', 'h1', false, t));
    expect(batch.size).toBe(2); // the user and the revision
    expect(s.revision).toBe(2);
    expect(s.userGet('alice')).toEqual({ name: 'alice', roles: [] });
    expect(s.hasNoPassword('alice')).toBe(false);
    expectRejected(s, (t) => s.userAdd('', 'h', false, t), AuthErrors.userEmpty);
    expectRejected(s, (t) => s.userAdd('alice', 'h2', false, t), AuthErrors.userAlreadyExist);
  });

  test('userAdd of a no-password user stores no password', () => {
    const s = newStore();
    apply((t) => s.userAdd('cert-user', 'ignored', true, t));
    expect(s.hasNoPassword('cert-user')).toBe(true);
    expect(s.hasNoPassword('nobody')).toBe(false);
  });

  test('userDelete removes a user; unknown users and root while enabled fail', () => {
    const s = newStore();
    apply((t) => s.userAdd('alice', 'h', false, t));
    apply((t) => s.userDelete('alice', t));
    expect(s.revision).toBe(3);
    expect(s.userList()).toEqual([]);
    expectRejected(s, (t) => s.userDelete('alice', t), AuthErrors.userNotFound);
    expect(thrown(() => s.userGet('alice')).message).toBe(AuthErrors.userNotFound().message);

    const on = enabledStore();
    expectRejected(on, (t) => on.userDelete('root', t), AuthErrors.invalidAuthMgmt);
    // root may go while auth is off
    apply((t) => on.disable(t));
    apply((t) => on.userDelete('root', t));
    expect(on.userList()).toEqual([]);
  });

  test('userChangePassword replaces the hash; no-password users keep none; unknown users fail', () => {
    const s = enabledStore();
    const before = s.revision;
    apply((t) => s.userChangePassword('root', 'hash-new', t));
    expect(s.revision).toBe(before + 1);
    expect(s.checkPassword('root', (h) => h === 'hash-new')).toBe(s.revision);
    expectRejected(s, () => s.checkPassword('root', (h) => h === 'hash-root'), AuthErrors.authFailed);
    expectRejected(s, (t) => s.userChangePassword('nobody', 'h', t), AuthErrors.userNotFound);

    apply((t) => s.userAdd('cert-user', undefined, true, t));
    const rev = s.revision;
    apply((t) => s.userChangePassword('cert-user', 'h', t));
    expect(s.revision).toBe(rev + 1);
    expect(s.hasNoPassword('cert-user')).toBe(true);
  });

  test('userGrantRole: sorted roles, root without a root role, duplicates ignored, errors', () => {
    const s = newStore();
    apply((t) => s.userAdd('alice', 'h', false, t));
    apply((t) => s.roleAdd('writer', t));
    apply((t) => s.roleAdd('reader', t));
    const rev = s.revision;
    apply((t) => s.userGrantRole('alice', 'writer', t));
    apply((t) => s.userGrantRole('alice', 'reader', t));
    apply((t) => s.userGrantRole('alice', 'root', t)); // no role named root exists: allowed
    expect(s.revision).toBe(rev + 3);
    expect(s.userGet('alice').roles).toEqual(['reader', 'root', 'writer']);
    expect(s.hasRole('alice', 'reader')).toBe(true);
    expect(s.hasRole('alice', 'nope')).toBe(false);
    expect(s.hasRole('nobody', 'reader')).toBe(false);

    const dup = apply((t) => s.userGrantRole('alice', 'reader', t));
    expect(dup.size).toBe(0);
    expect(s.revision).toBe(rev + 3);

    expectRejected(s, (t) => s.userGrantRole('nobody', 'reader', t), AuthErrors.userNotFound);
    expectRejected(s, (t) => s.userGrantRole('alice', 'missing', t), AuthErrors.roleNotFound);
    // the user is checked first
    expectRejected(s, (t) => s.userGrantRole('nobody', 'missing', t), AuthErrors.userNotFound);
  });

  test('userRevokeRole: removes the role; errors; root keeps root while enabled', () => {
    const s = enabledStore();
    apply((t) => s.userAdd('alice', 'h', false, t));
    apply((t) => s.roleAdd('reader', t));
    apply((t) => s.userGrantRole('alice', 'reader', t));
    const rev = s.revision;
    apply((t) => s.userRevokeRole('alice', 'reader', t));
    expect(s.revision).toBe(rev + 1);
    expect(s.userGet('alice').roles).toEqual([]);
    expectRejected(s, (t) => s.userRevokeRole('alice', 'reader', t), AuthErrors.roleNotGranted);
    expectRejected(s, (t) => s.userRevokeRole('nobody', 'reader', t), AuthErrors.userNotFound);
    expectRejected(s, (t) => s.userRevokeRole('root', 'root', t), AuthErrors.invalidAuthMgmt);

    apply((t) => s.disable(t));
    apply((t) => s.userRevokeRole('root', 'root', t));
    expect(s.userGet('root').roles).toEqual([]);
  });

  test('userList is in byte order of the UTF-8 names', () => {
    const s = newStore();
    for (const name of ['b', '\u{1F600}', 'a', '\uFFFF', 'B', 'ab']) apply((t) => s.userAdd(name, 'h', false, t));
    // UTF-16 order would put the emoji (a surrogate pair) before U+FFFF; UTF-8 byte order does not
    expect(s.userList()).toEqual(['B', 'a', 'ab', 'b', '\uFFFF', '\u{1F600}']);
  });
});

describe('roles', () => {
  test('roleAdd adds a role; empty and duplicate names fail', () => {
    const s = newStore();
    apply((t) => s.roleAdd('reader', t));
    expect(s.revision).toBe(2);
    expect(s.roleGet('reader')).toEqual([]);
    expectRejected(s, (t) => s.roleAdd('', t), AuthErrors.roleEmpty);
    expectRejected(s, (t) => s.roleAdd('reader', t), AuthErrors.roleAlreadyExist);
    expect(thrown(() => s.roleGet('missing')).message).toBe(AuthErrors.roleNotFound().message);
  });

  test('roleList is sorted', () => {
    const s = newStore();
    for (const name of ['zeta', 'alpha', 'root', 'Mid']) apply((t) => s.roleAdd(name, t));
    expect(s.roleList()).toEqual(['Mid', 'alpha', 'root', 'zeta']);
  });

  test('roleGet of root reports the everything permission', () => {
    const s = newStore();
    apply((t) => s.roleAdd('root', t));
    expect(s.roleGet('root')).toEqual([{ permType: PermissionType.READWRITE, key: NONE, rangeEnd: OPEN }]);
  });

  test('roleDelete removes the role from every user, in one batch; errors; root while enabled', () => {
    const s = enabledStore();
    for (const u of ['carol', 'alice', 'bob']) apply((t) => s.userAdd(u, 'h', false, t));
    apply((t) => s.roleAdd('reader', t));
    apply((t) => s.roleAdd('other', t));
    apply((t) => s.userGrantRole('carol', 'reader', t));
    apply((t) => s.userGrantRole('alice', 'reader', t));
    apply((t) => s.userGrantRole('alice', 'other', t));
    const rev = s.revision;
    const batch = apply((t) => s.roleDelete('reader', t));
    expect(s.revision).toBe(rev + 1);
    expect(s.roleList()).toEqual(['other']);
    expect(s.userGet('alice').roles).toEqual(['other']);
    expect(s.userGet('carol').roles).toEqual([]);
    // the role, then the users holding it in name order, then the revision
    const keys = batch.ops.map((op) => `${op.type} ${op.key.subarray(1).toString()}`);
    expect(keys).toEqual(['del roles/reader', 'put users/alice', 'put users/carol', 'put revision']);

    expectRejected(s, (t) => s.roleDelete('reader', t), AuthErrors.roleNotFound);
    apply((t) => s.roleAdd('root', t));
    expectRejected(s, (t) => s.roleDelete('root', t), AuthErrors.invalidAuthMgmt);
    apply((t) => s.disable(t));
    apply((t) => s.roleDelete('root', t));
    expect(s.roleList()).toEqual(['other']);
    // the root user loses its grant of role root too
    expect(s.userGet('root').roles).toEqual([]);
  });

  test('roleGrantPermission: sorted by key, same key and end replaces the type', () => {
    const s = newStore();
    apply((t) => s.roleAdd('r', t));
    const rev = s.revision;
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'm', 'n'), t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.WRITE, 'c'), t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'x', '\0'), t));
    expect(s.revision).toBe(rev + 3);
    expect(s.roleGet('r')).toEqual([perm(PermissionType.WRITE, 'c'), perm(PermissionType.READ, 'm', 'n'), perm(PermissionType.READ, 'x', '\0')]);

    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READWRITE, 'm', 'n'), t));
    expect(s.revision).toBe(rev + 4); // a replacement is a change too
    expect(s.roleGet('r')).toEqual([perm(PermissionType.WRITE, 'c'), perm(PermissionType.READWRITE, 'm', 'n'), perm(PermissionType.READ, 'x', '\0')]);

    // same key, another end: a second permission after the first (stable sort)
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'm', 'z'), t));
    expect(s.roleGet('r').map((p) => `${p.key}-${p.rangeEnd}`)).toEqual(['c-', 'm-n', 'm-z', 'x-\0']);
  });

  test("roleGrantPermission compares only with the first permission on the key, as etcd (duplicates possible)", () => {
    const s = newStore();
    apply((t) => s.roleAdd('r', t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'a', 'b'), t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'a', 'c'), t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.WRITE, 'a', 'c'), t));
    expect(s.roleGet('r')).toEqual([perm(PermissionType.READ, 'a', 'b'), perm(PermissionType.READ, 'a', 'c'), perm(PermissionType.WRITE, 'a', 'c')]);
    // a revoke removes every copy
    apply((t) => s.roleRevokePermission('r', b('a'), b('c'), t));
    expect(s.roleGet('r')).toEqual([perm(PermissionType.READ, 'a', 'b')]);
  });

  test('roleGrantPermission errors', () => {
    const s = newStore();
    apply((t) => s.roleAdd('r', t));
    expectRejected(s, (t) => s.roleGrantPermission('r', undefined, t), AuthErrors.permissionNotGiven);
    expectRejected(s, (t) => s.roleGrantPermission('r', perm(PermissionType.READ, ''), t), AuthErrors.invalidAuthMgmt);
    expectRejected(s, (t) => s.roleGrantPermission('r', perm(PermissionType.READ, '', 'z'), t), AuthErrors.invalidAuthMgmt);
    expectRejected(s, (t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'b', 'a'), t), AuthErrors.invalidAuthMgmt);
    expectRejected(s, (t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'b', 'b'), t), AuthErrors.invalidAuthMgmt);
    // the range is checked before the role
    expectRejected(s, (t) => s.roleGrantPermission('missing', perm(PermissionType.READ, 'b', 'a'), t), AuthErrors.invalidAuthMgmt);
    expectRejected(s, (t) => s.roleGrantPermission('missing', perm(PermissionType.READ, 'a'), t), AuthErrors.roleNotFound);
    // "\0" as the end is the open end, valid for any key, including "\0" itself (every key)
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, '\0', '\0'), t));
    expect(s.roleGet('r')).toEqual([perm(PermissionType.READ, '\0', '\0')]);
  });

  test('roleRevokePermission removes exactly (key, end); errors', () => {
    const s = newStore();
    apply((t) => s.roleAdd('r', t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'a'), t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'a', 'b'), t));
    const rev = s.revision;
    expectRejected(s, (t) => s.roleRevokePermission('r', b('a'), b('c'), t), AuthErrors.permissionNotGranted);
    expectRejected(s, (t) => s.roleRevokePermission('missing', b('a'), NONE, t), AuthErrors.roleNotFound);
    apply((t) => s.roleRevokePermission('r', b('a'), NONE, t));
    expect(s.revision).toBe(rev + 1);
    expect(s.roleGet('r')).toEqual([perm(PermissionType.READ, 'a', 'b')]);
  });

  test('reads return copies', () => {
    const s = newStore();
    apply((t) => s.userAdd('alice', 'h', false, t));
    apply((t) => s.roleAdd('r', t));
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'a'), t));
    apply((t) => s.userGrantRole('alice', 'r', t));
    s.userGet('alice').roles.push('x');
    const got = s.roleGet('r');
    got[0].key[0] = 0x7a;
    got.push(perm(PermissionType.WRITE, 'q'));
    expect(s.userGet('alice').roles).toEqual(['r']);
    expect(s.roleGet('r')).toEqual([perm(PermissionType.READ, 'a')]);
  });
});

describe('enable / disable', () => {
  test('enable needs user root holding role root', () => {
    const s = newStore();
    expectRejected(s, (t) => s.enable(t), AuthErrors.rootUserNotExist);
    apply((t) => s.userAdd('root', 'h', false, t));
    expectRejected(s, (t) => s.enable(t), AuthErrors.rootRoleNotExist);
    apply((t) => s.userGrantRole('root', 'root', t));
    const rev = s.revision;
    const batch = apply((t) => s.enable(t));
    expect(s.enabled).toBe(true);
    expect(batch.size).toBe(1); // the flag only: enabling does not bump the revision
    expect(s.revision).toBe(rev);
    // already enabled: nothing
    expect(apply((t) => s.enable(t)).size).toBe(0);
  });

  test('disable bumps the revision; already disabled: nothing', () => {
    const s = enabledStore();
    const rev = s.revision;
    apply((t) => s.disable(t));
    expect(s.enabled).toBe(false);
    expect(s.revision).toBe(rev + 1);
    expect(apply((t) => s.disable(t)).size).toBe(0);
    expect(s.revision).toBe(rev + 1);
  });
});

describe('password and admin checks', () => {
  test('checkPassword follows etcd: not enabled, unknown user, no-password user, wrong and right password', () => {
    const s = newStore();
    apply((t) => s.userAdd('root', 'hash-root', false, t));
    expectRejected(s, () => s.checkPassword('root', () => true), AuthErrors.authNotEnabled);
    apply((t) => s.userGrantRole('root', 'root', t));
    apply((t) => s.enable(t));
    apply((t) => s.userAdd('cert-user', undefined, true, t));
    apply((t) => s.userAdd('blank', undefined, false, t));
    expectRejected(s, () => s.checkPassword('nobody', () => true), AuthErrors.authFailed);
    expectRejected(s, () => s.checkPassword('cert-user', () => true), AuthErrors.noPasswordUser);
    expectRejected(s, () => s.checkPassword('root', (h) => h === 'other'), AuthErrors.authFailed);
    const seen: string[] = [];
    expect(
      s.checkPassword('root', (h) => {
        seen.push(h);
        return true;
      }),
    ).toBe(s.revision);
    expect(seen).toEqual(['hash-root']);
    // a user added without a hash has an empty one
    s.checkPassword('blank', (h) => h === '');
  });

  test('checkAuthenticate: enabled, existing user with a password', () => {
    const s = newStore();
    expectRejected(s, () => s.checkAuthenticate('root'), AuthErrors.authNotEnabled);
    const on = enabledStore();
    apply((t) => on.userAdd('cert-user', undefined, true, t));
    on.checkAuthenticate('root');
    expectRejected(on, () => on.checkAuthenticate('nobody'), AuthErrors.authFailed);
    expectRejected(on, () => on.checkAuthenticate('cert-user'), AuthErrors.authFailed);
  });

  test('isAdmin and checkAdmin', () => {
    const s = enabledStore();
    apply((t) => s.userAdd('alice', 'h', false, t));
    expect(s.isAdmin('root')).toBe(true);
    expect(s.isAdmin('alice')).toBe(false);
    expect(s.isAdmin('nobody')).toBe(false);
    s.checkAdmin('root');
    expectRejected(s, () => s.checkAdmin('alice'), AuthErrors.permissionDenied);
    expectRejected(s, () => s.checkAdmin('nobody'), AuthErrors.userNotFound);
    expectRejected(s, () => s.checkAdmin(undefined), AuthErrors.userEmpty);
    expectRejected(s, () => s.checkAdmin(''), AuthErrors.userEmpty);
    apply((t) => s.disable(t));
    s.checkAdmin(undefined); // auth off: everyone is admin
    s.checkAdmin('alice');
  });

  test('checkAuthRevision: 0 is no user, older is stale, off is always fine', () => {
    const s = enabledStore();
    expectRejected(s, () => s.checkAuthRevision(0), AuthErrors.userEmpty);
    expectRejected(s, () => s.checkAuthRevision(s.revision - 1), AuthErrors.authOldRevision);
    s.checkAuthRevision(s.revision);
    s.checkAuthRevision(s.revision + 1);
    apply((t) => s.disable(t));
    s.checkAuthRevision(0);
  });
});

describe('permission checks', () => {
  /** An enabled store where `alice` holds one role with the given permissions. */
  function withPerms(...perms: Permission[]): AuthStore {
    const s = enabledStore();
    apply((t) => s.userAdd('alice', 'h', false, t));
    apply((t) => s.roleAdd('r', t));
    for (const p of perms) apply((t) => s.roleGrantPermission('r', p, t));
    apply((t) => s.userGrantRole('alice', 'r', t));
    return s;
  }
  const ok = (s: AuthStore, key: string, end: string | undefined, type: 'read' | 'write') => s.isPermitted('alice', b(key), end === undefined ? undefined : b(end), type);
  const denied = (s: AuthStore, key: string, end: string | undefined, type: 'read' | 'write') =>
    expectRejected(s, () => s.checkPermission('alice', b(key), end === undefined ? undefined : b(end), type), AuthErrors.permissionDenied);

  test('auth off: everything passes, even for unknown users', () => {
    const s = newStore();
    s.checkPermission('nobody', b('k'), undefined, 'write');
  });

  test('unknown users are denied; root passes everything', () => {
    const s = enabledStore();
    expectRejected(s, () => s.checkPermission('nobody', b('k'), undefined, 'read'), AuthErrors.permissionDenied);
    s.checkPermission('root', b('k'), undefined, 'write');
    s.checkPermission('root', b('\0'), OPEN, 'read');
    // root as a role grant suffices, with no role named root
    apply((t) => s.userAdd('admin2', 'h', false, t));
    apply((t) => s.userGrantRole('admin2', 'root', t));
    s.checkPermission('admin2', b('a'), b('z'), 'write');
  });

  test('a single-key permission', () => {
    const s = withPerms(perm(PermissionType.READ, 'foo'));
    expect(ok(s, 'foo', undefined, 'read')).toBe(true);
    expect(ok(s, 'foo', '', 'read')).toBe(true);
    expect(ok(s, 'foo\0', undefined, 'read')).toBe(false);
    expect(ok(s, 'fo', undefined, 'read')).toBe(false);
    // the range holding only foo is the same interval
    expect(ok(s, 'foo', 'foo\0', 'read')).toBe(true);
    expect(ok(s, 'foo', 'fop', 'read')).toBe(false);
    denied(s, 'bar', undefined, 'read');
  });

  test('READ does not grant WRITE, WRITE does not grant READ, READWRITE grants both', () => {
    const s = withPerms(perm(PermissionType.READ, 'r'), perm(PermissionType.WRITE, 'w'), perm(PermissionType.READWRITE, 'rw'));
    expect(ok(s, 'r', undefined, 'read')).toBe(true);
    denied(s, 'r', undefined, 'write');
    expect(ok(s, 'w', undefined, 'write')).toBe(true);
    denied(s, 'w', undefined, 'read');
    s.checkPermission('alice', b('rw'), undefined, 'read');
    s.checkPermission('alice', b('rw'), undefined, 'write');
  });

  test('a prefix permission covers keys and ranges under the prefix', () => {
    const s = withPerms(perm(PermissionType.READWRITE, 'foo/', 'foo0'));
    expect(ok(s, 'foo/', undefined, 'write')).toBe(true);
    expect(ok(s, 'foo/a/b', undefined, 'write')).toBe(true);
    expect(ok(s, 'foo/a/', 'foo/a0', 'read')).toBe(true);
    expect(ok(s, 'foo/', 'foo0', 'read')).toBe(true);
    expect(ok(s, 'foo0', undefined, 'read')).toBe(false); // the end is exclusive
    expect(ok(s, 'foo', undefined, 'read')).toBe(false);
    expect(ok(s, 'foo/', 'foo1', 'read')).toBe(false); // reaches past the end
    expect(ok(s, 'foo.', 'foo0', 'read')).toBe(false); // starts before the prefix
    expect(ok(s, 'foo/', '\0', 'read')).toBe(false); // open-ended
  });

  test('the union of adjacent or overlapping intervals covers a range; a gap denies', () => {
    const s = withPerms(perm(PermissionType.READ, 'a', 'c'), perm(PermissionType.READ, 'c', 'e'), perm(PermissionType.READ, 'd', 'g'), perm(PermissionType.READ, 'h', 'k'));
    expect(ok(s, 'a', 'g', 'read')).toBe(true); // [a,c) + [c,e) + [d,g)
    expect(ok(s, 'b', 'f', 'read')).toBe(true);
    expect(ok(s, 'a', 'h', 'read')).toBe(false); // [g,h) is missing
    expect(ok(s, 'f', 'i', 'read')).toBe(false);
    expect(ok(s, 'h', 'k', 'read')).toBe(true);
    expect(ok(s, 'g', undefined, 'read')).toBe(false);
    expect(ok(s, 'f\xff', undefined, 'read')).toBe(true);
    // split over two roles of the user as well
    const t = withPerms(perm(PermissionType.READ, 'a', 'c'));
    apply((x) => t.roleAdd('r2', x));
    apply((x) => t.roleGrantPermission('r2', perm(PermissionType.READWRITE, 'c', 'e'), x));
    apply((x) => t.userGrantRole('alice', 'r2', x));
    expect(ok(t, 'a', 'e', 'read')).toBe(true);
    expect(ok(t, 'a', 'e', 'write')).toBe(false);
    expect(ok(t, 'c', 'e', 'write')).toBe(true);
  });

  test('single-key permissions chain into a range only as far as their keys reach', () => {
    // [a, a\0) and [a\0, a\0\0) are adjacent: together they hold a and a\0 and nothing else
    const s = withPerms(perm(PermissionType.READ, 'a'), perm(PermissionType.READ, 'a\0'));
    expect(ok(s, 'a', 'a\0\0', 'read')).toBe(true);
    expect(ok(s, 'a', 'a\0\x01', 'read')).toBe(false);
  });

  test('open ends: "\\0" as range end is every key from the key on', () => {
    const s = withPerms(perm(PermissionType.READ, 'm', '\0'));
    expect(ok(s, 'm', '\0', 'read')).toBe(true);
    expect(ok(s, 'zzz', '\0', 'read')).toBe(true);
    expect(ok(s, 'n', 'z', 'read')).toBe(true);
    expect(ok(s, '\xff\xff', undefined, 'read')).toBe(true);
    expect(ok(s, 'l', '\0', 'read')).toBe(false);
    expect(ok(s, 'l', undefined, 'read')).toBe(false);
    // a closed permission never covers an open range
    const closed = withPerms(perm(PermissionType.READ, 'm', '\xff\xff\xff'));
    expect(ok(closed, 'm', '\0', 'read')).toBe(false);
  });

  test('key "\\0" with range end "\\0" is every key', () => {
    const s = withPerms(perm(PermissionType.WRITE, '\0', '\0'));
    expect(ok(s, '\0', '\0', 'write')).toBe(true);
    expect(ok(s, '\0', undefined, 'write')).toBe(true);
    expect(ok(s, 'anything', undefined, 'write')).toBe(true);
    expect(ok(s, 'a', 'z', 'write')).toBe(true);
    expect(ok(s, 'a', undefined, 'read')).toBe(false);
  });

  test('changes take effect at once (the merged permissions are rebuilt)', () => {
    const s = withPerms(perm(PermissionType.READ, 'a', 'z'));
    expect(ok(s, 'k', undefined, 'read')).toBe(true);
    apply((t) => s.roleRevokePermission('r', b('a'), b('z'), t));
    expect(ok(s, 'k', undefined, 'read')).toBe(false);
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.WRITE, 'k'), t));
    expect(ok(s, 'k', undefined, 'write')).toBe(true);
    apply((t) => s.roleGrantPermission('r', perm(PermissionType.READ, 'k'), t)); // replaces the type
    expect(ok(s, 'k', undefined, 'write')).toBe(false);
    expect(ok(s, 'k', undefined, 'read')).toBe(true);
    apply((t) => s.userRevokeRole('alice', 'r', t));
    expect(ok(s, 'k', undefined, 'read')).toBe(false);
    apply((t) => s.userGrantRole('alice', 'r', t));
    expect(ok(s, 'k', undefined, 'read')).toBe(true);
    apply((t) => s.roleDelete('r', t));
    expect(ok(s, 'k', undefined, 'read')).toBe(false);
  });
});

describe('determinism and persistence', () => {
  /** A fixed sequence of entries, errors included (they change nothing). */
  function script(s: AuthStore): WriteBatch[] {
    const steps: ((t: WriteBatch) => void)[] = [
      (t) => s.userAdd('root', 'hash-root', false, t),
      (t) => s.userGrantRole('root', 'root', t),
      (t) => s.roleAdd('reader', t),
      (t) => s.roleAdd('writer', t),
      (t) => s.roleGrantPermission('reader', perm(PermissionType.READ, 'k/', 'k0'), t),
      (t) => s.roleGrantPermission('writer', perm(PermissionType.WRITE, 'a'), t),
      (t) => s.roleGrantPermission('writer', perm(PermissionType.READWRITE, '\0', '\0'), t),
      (t) => s.userAdd('zed', 'hash-zed', false, t),
      (t) => s.userAdd('amy', undefined, true, t),
      (t) => s.userGrantRole('zed', 'writer', t),
      (t) => s.userGrantRole('zed', 'reader', t),
      (t) => s.userGrantRole('amy', 'reader', t),
      (t) => s.userAdd('zed', 'again', false, t), // fails
      (t) => s.enable(t),
      (t) => s.roleAdd('temp', t),
      (t) => s.userGrantRole('amy', 'temp', t),
      (t) => s.roleDelete('temp', t),
    ];
    return steps.map((step) => {
      const batch = new WriteBatch();
      try {
        step(batch);
      } catch (err) {
        if (!(err instanceof EtcdError)) throw err;
      }
      return batch;
    });
  }

  const dump = (batches: WriteBatch[]) => batches.map((t) => t.ops.map((op) => [op.type, op.key.toString('hex'), op.value?.toString('hex')]));

  test('the same entries give the same batches and state', () => {
    const s1 = newStore();
    const s2 = newStore();
    expect(dump(script(s1))).toEqual(dump(script(s2)));
    expect(s1.revision).toBe(s2.revision);
    expect(s1.userList()).toEqual(['amy', 'root', 'zed']);
    expect(s1.userGet('amy').roles).toEqual(['reader']);
    expect(s1.userGet('zed').roles).toEqual(['reader', 'writer']);
  });

  test('every record lives under the auth prefix', () => {
    for (const batch of script(newStore())) for (const op of batch.ops) expect(op.key[0]).toBe(AUTH_PREFIX);
  });

  test('round trip through a real backend', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-store-'));
    try {
      let backend = await Backend.open(path.join(dir, 'db'));
      const empty = await AuthStore.load(backend);
      expect({ enabled: empty.enabled, revision: empty.revision, users: empty.userList() }).toEqual({ enabled: false, revision: 1, users: [] });

      const s = await AuthStore.load(backend);
      for (const batch of script(s)) backend.write(batch, true);
      await backend.close();

      backend = await Backend.open(path.join(dir, 'db'));
      const loaded = await AuthStore.load(backend);
      expect(loaded.enabled).toBe(true);
      expect(loaded.revision).toBe(s.revision);
      expect(loaded.userList()).toEqual(s.userList());
      expect(loaded.roleList()).toEqual(['reader', 'writer']);
      for (const u of s.userList()) expect(loaded.userGet(u)).toEqual(s.userGet(u));
      for (const r of s.roleList()) expect(loaded.roleGet(r)).toEqual(s.roleGet(r));
      expect(loaded.hasNoPassword('amy')).toBe(true);
      expect(loaded.checkPassword('zed', (h) => h === 'hash-zed')).toBe(loaded.revision);
      expect(loaded.isPermitted('amy', b('k/x'), undefined, 'read')).toBe(true);
      expect(loaded.isPermitted('amy', b('k/x'), undefined, 'write')).toBe(false);
      expect(loaded.isPermitted('zed', b('\0'), OPEN, 'write')).toBe(true);

      // a later change continues from the loaded revision, and deletions persist too
      const batch = new WriteBatch();
      loaded.disable(batch);
      loaded.userDelete('amy', batch);
      loaded.roleDelete('reader', batch);
      backend.write(batch, true);
      const again = await AuthStore.load(backend);
      expect(again.enabled).toBe(false);
      expect(again.revision).toBe(s.revision + 3);
      expect(again.userList()).toEqual(['root', 'zed']);
      expect(again.roleList()).toEqual(['writer']);
      expect(again.userGet('zed').roles).toEqual(['writer']);
      await backend.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
