// The auth store's state machine: users, roles, key permissions, the enabled flag and the auth revision,
// with etcd v3.6's rules, error texts and revision bumps. It is pure and deterministic: every member
// applies the same Raft entries in the same order through the apply methods below and so reaches the
// same state; each apply method either throws (changing nothing) or changes the in-memory state and
// records the change in the caller's WriteBatch, which the caller writes with the rest of the entry's
// effects. Password hashing and comparison (bcrypt) happen outside: this module only stores the hash.
//
// On disk everything lives under its own key prefix byte (AUTH_PREFIX, 'A'), values JSON:
//   'A' + 'users/<name>'  {"password": "<bcrypt hash>", "roles": [...], "noPassword": false}
//   'A' + 'roles/<name>'  {"perms": [{"permType": 0|1|2, "key": "<base64>", "rangeEnd": "<base64>"}]}
//   'A' + 'enabled'       true | false
//   'A' + 'revision'      the auth revision (a number)
import { status as GrpcStatus } from '@grpc/grpc-js';
import { Backend, WriteBatch, prefixed } from '../storage/backend';
import { etcdError } from '../util/errors';
import { NAMELESS_CERT_USER } from './context';

/** The key prefix byte of the auth store's records ('A'). */
export const AUTH_PREFIX = 0x41;

const USERS = 'users/';
const ROLES = 'roles/';
const KEY_ENABLED = prefixed(AUTH_PREFIX, 'enabled');
const KEY_REVISION = prefixed(AUTH_PREFIX, 'revision');
const userKey = (name: string): Buffer => prefixed(AUTH_PREFIX, USERS + name);
const roleKey = (name: string): Buffer => prefixed(AUTH_PREFIX, ROLES + name);

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

/** authpb.Permission.Type. */
export const PermissionType = { READ: 0, WRITE: 1, READWRITE: 2 } as const;
export type PermissionTypeValue = (typeof PermissionType)[keyof typeof PermissionType];

/**
 * A key permission of a role, as etcd's authpb.Permission: `rangeEnd` empty is the single key `key`,
 * `rangeEnd` "\0" is every key from `key` on, anything else is [key, rangeEnd).
 */
export interface Permission {
  permType: PermissionTypeValue;
  key: Buffer;
  rangeEnd: Buffer;
}

export interface UserInfo {
  name: string;
  /** Sorted (byte order), as etcd keeps them. */
  roles: string[];
}

const e = etcdError;
const S = GrpcStatus;

/** etcd's auth errors, with rpctypes' gRPC codes and texts. Factories, so each throw gets a fresh stack. */
export const AuthErrors = {
  rootUserNotExist: e(S.FAILED_PRECONDITION, 'etcdserver: root user does not exist'),
  rootRoleNotExist: e(S.FAILED_PRECONDITION, 'etcdserver: root user does not have root role'),
  userAlreadyExist: e(S.FAILED_PRECONDITION, 'etcdserver: user name already exists'),
  userEmpty: e(S.INVALID_ARGUMENT, 'etcdserver: user name is empty'),
  userNotFound: e(S.FAILED_PRECONDITION, 'etcdserver: user name not found'),
  roleAlreadyExist: e(S.FAILED_PRECONDITION, 'etcdserver: role name already exists'),
  roleNotFound: e(S.FAILED_PRECONDITION, 'etcdserver: role name not found'),
  roleEmpty: e(S.INVALID_ARGUMENT, 'etcdserver: role name is empty'),
  authFailed: e(S.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password'),
  permissionNotGiven: e(S.INVALID_ARGUMENT, 'etcdserver: permission not given'),
  permissionDenied: e(S.PERMISSION_DENIED, 'etcdserver: permission denied'),
  roleNotGranted: e(S.FAILED_PRECONDITION, 'etcdserver: role is not granted to the user'),
  permissionNotGranted: e(S.FAILED_PRECONDITION, 'etcdserver: permission is not granted to the role'),
  authNotEnabled: e(S.FAILED_PRECONDITION, 'etcdserver: authentication is not enabled'),
  invalidAuthToken: e(S.UNAUTHENTICATED, 'etcdserver: invalid auth token'),
  invalidAuthMgmt: e(S.INVALID_ARGUMENT, 'etcdserver: invalid auth management'),
  authOldRevision: e(S.INVALID_ARGUMENT, 'etcdserver: revision of auth store is old'),
  // etcd's gRPC layer has no mapping for this one: clients get code Unknown and the auth package's text.
  noPasswordUser: e(S.UNKNOWN, 'auth: authentication failed, password was given for no password user'),
} as const;

interface User {
  /** The bcrypt hash; empty for a no-password user (or one added without a hash: nothing matches it). */
  password: string;
  roles: string[];
  noPassword: boolean;
}

interface Role {
  /** Sorted by key (stable), as etcd keeps them. */
  perms: Permission[];
}

/** Byte order of the UTF-8 forms, which is how etcd (Go strings, bbolt keys) orders names. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function sortedNames(names: Iterable<string>): string[] {
  return [...names].sort(compareNames);
}

function copyPerm(p: Permission): Permission {
  return { permType: p.permType, key: Buffer.from(p.key), rangeEnd: Buffer.from(p.rangeEnd) };
}

// ---- key ranges, as etcd's adt.BytesAffineComparable intervals (range_perm_cache.go) ----
//
// An empty byte string is not a valid key, so it stands for +infinity: an interval whose end is empty is
// open-ended. A single key k is the interval [k, k + "\0"), the keys >= k and < its successor.

/** Compares two bounds where an empty one is larger than everything. */
function compareBound(a: Buffer, b: Buffer): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return Buffer.compare(a, b);
}

interface Interval {
  begin: Buffer;
  /** Exclusive; empty = open-ended. */
  end: Buffer;
}

/** "\0" as a range end means "to the end of the key space" (etcd's Range and Watch convention). */
function isOpenEnded(rangeEnd: Buffer): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

function pointInterval(key: Buffer): Interval {
  return { begin: key, end: Buffer.concat([key, Buffer.from([0])]) };
}

function permInterval(p: Permission): Interval {
  if (p.rangeEnd.length === 0) return pointInterval(p.key);
  return { begin: p.key, end: isOpenEnded(p.rangeEnd) ? Buffer.alloc(0) : p.rangeEnd };
}

/** Whether two intervals overlap, by etcd's interval comparison (neither strictly left nor right of the other). */
function overlaps(q: Interval, p: Interval): boolean {
  const qLeftOfP = compareBound(q.begin, p.begin) < 0 && compareBound(q.end, p.begin) <= 0;
  const qRightOfP = compareBound(q.begin, p.end) >= 0;
  return !qLeftOfP && !qRightOfP;
}

/**
 * Whether `q` lies within the union of `sorted` (intervals ordered by begin): the intervals overlapping
 * `q`, taken in order, must chain without a gap (touching is fine: ends are exclusive) and together
 * reach from at most q's begin to at least q's end. This is etcd's IntervalTree.Contains.
 */
function covers(sorted: Interval[], q: Interval): boolean {
  let minBegin: Buffer | undefined;
  let maxEnd: Buffer = Buffer.alloc(0);
  for (const p of sorted) {
    if (!overlaps(q, p)) continue;
    if (minBegin === undefined) {
      minBegin = p.begin;
      maxEnd = p.end;
      continue;
    }
    if (compareBound(maxEnd, p.begin) < 0) return false; // a gap inside q
    if (compareBound(p.end, maxEnd) > 0) maxEnd = p.end;
  }
  return minBegin !== undefined && compareBound(maxEnd, q.end) >= 0 && compareBound(minBegin, q.begin) <= 0;
}

/** etcd's isValidPermissionRange: a key, then nothing, a larger end, or the open end "\0". */
function isValidPermissionRange(key: Buffer, rangeEnd: Buffer): boolean {
  if (key.length === 0) return false;
  if (rangeEnd.length === 0) return true;
  if (compareBound(key, rangeEnd) < 0) return true;
  return isOpenEnded(rangeEnd);
}

/** The merged permissions of one user: every interval its roles grant, per operation type. */
interface MergedPerms {
  read: Interval[];
  write: Interval[];
}

// ---- stored forms ----

interface StoredPerm {
  permType: number;
  key: string;
  rangeEnd: string;
}

function encodeUser(u: User): Buffer {
  return Buffer.from(JSON.stringify({ password: u.password, roles: u.roles, noPassword: u.noPassword }));
}

function decodeUser(value: Buffer): User {
  const v = JSON.parse(value.toString('utf8')) as { password?: unknown; roles?: unknown; noPassword?: unknown };
  return {
    password: typeof v.password === 'string' ? v.password : '',
    roles: Array.isArray(v.roles) ? v.roles.map(String) : [],
    noPassword: v.noPassword === true,
  };
}

function encodeRole(r: Role): Buffer {
  const perms: StoredPerm[] = r.perms.map((p) => ({ permType: p.permType, key: p.key.toString('base64'), rangeEnd: p.rangeEnd.toString('base64') }));
  return Buffer.from(JSON.stringify({ perms }));
}

function decodeRole(value: Buffer): Role {
  const v = JSON.parse(value.toString('utf8')) as { perms?: StoredPerm[] };
  const perms = (v.perms ?? []).map((p) => ({
    permType: p.permType as PermissionTypeValue,
    key: Buffer.from(p.key, 'base64'),
    rangeEnd: Buffer.from(p.rangeEnd, 'base64'),
  }));
  return { perms };
}

export class AuthStore {
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();
  private _enabled = false;
  private _revision = 1;
  /** Per-user merged permissions, built on first use and dropped on every change (etcd's rangePermCache). */
  private permCache = new Map<string, MergedPerms>();

  private constructor() {}

  /** A store with no users, no roles, auth disabled (what a new cluster starts with). */
  static empty(): AuthStore {
    return new AuthStore();
  }

  /** Reads the auth store's records from the backend. */
  static async load(backend: Backend): Promise<AuthStore> {
    const store = new AuthStore();
    let storedRevision = 0;
    const usersAt = 1 + USERS.length;
    const rolesAt = 1 + ROLES.length;
    await backend.scan(Buffer.from([AUTH_PREFIX]), Buffer.from([AUTH_PREFIX + 1]), (key, value) => {
      if (key.equals(KEY_ENABLED)) store._enabled = JSON.parse(value.toString('utf8')) === true;
      else if (key.equals(KEY_REVISION)) storedRevision = Number(JSON.parse(value.toString('utf8')));
      else if (key.subarray(1, usersAt).toString('utf8') === USERS) store.users.set(key.subarray(usersAt).toString('utf8'), decodeUser(value));
      else if (key.subarray(1, rolesAt).toString('utf8') === ROLES) store.roles.set(key.subarray(rolesAt).toString('utf8'), decodeRole(value));
    });
    // etcd commits revision 1 when it creates an auth store whose stored revision is 0. Here revision 1 is
    // the in-memory starting point and is written with the first change (which makes it 2), so an
    // untouched store reads back as 1 as well.
    store._revision = Math.max(storedRevision, 1);
    return store;
  }

  get enabled(): boolean {
    return this._enabled;
  }

  /** The auth revision: bumped by every change of users, roles or permissions, and by disabling auth. */
  get revision(): number {
    return this._revision;
  }

  // ---- apply: each validates first (throwing etcd's error, changing nothing), then changes ----

  /** Enables auth; needs user root holding role root. Already enabled: nothing happens. No revision bump (as etcd). */
  enable(batch: WriteBatch): void {
    if (this._enabled) return;
    const root = this.users.get(ROOT_USER);
    if (!root) throw AuthErrors.rootUserNotExist();
    if (!root.roles.includes(ROOT_ROLE)) throw AuthErrors.rootRoleNotExist();
    this._enabled = true;
    batch.put(KEY_ENABLED, Buffer.from('true'));
    this.permCache.clear();
  }

  /** Disables auth (bumping the revision); already disabled: nothing happens. */
  disable(batch: WriteBatch): void {
    if (!this._enabled) return;
    this._enabled = false;
    batch.put(KEY_ENABLED, Buffer.from('false'));
    this.commit(batch);
  }

  /**
   * Adds a user. `hashedPassword` is the bcrypt hash of its password; it is ignored for a no-password
   * user, and a user added without one has an empty password that no check can match (as etcd).
   */
  userAdd(name: string, hashedPassword: string | undefined, noPassword: boolean, batch: WriteBatch): void {
    if (name.length === 0) throw AuthErrors.userEmpty();
    if (this.users.has(name)) throw AuthErrors.userAlreadyExist();
    this.putUser(name, { password: noPassword ? '' : (hashedPassword ?? ''), roles: [], noPassword }, batch);
    this.commit(batch);
  }

  userDelete(name: string, batch: WriteBatch): void {
    // Checked before existence, as etcd does: the root user cannot go while auth is on.
    if (this._enabled && name === ROOT_USER) throw AuthErrors.invalidAuthMgmt();
    if (!this.users.has(name)) throw AuthErrors.userNotFound();
    this.users.delete(name);
    batch.del(userKey(name));
    this.commit(batch);
  }

  /** Replaces a user's password hash; a no-password user keeps no password (but the revision still moves). */
  userChangePassword(name: string, hashedPassword: string, batch: WriteBatch): void {
    const user = this.users.get(name);
    if (!user) throw AuthErrors.userNotFound();
    this.putUser(name, { ...user, password: user.noPassword ? '' : hashedPassword }, batch);
    this.commit(batch);
  }

  /**
   * Grants a role to a user. The role must exist, except 'root', which may be granted before (or
   * without) a role named root existing. Granting a role the user already has changes nothing.
   */
  userGrantRole(name: string, role: string, batch: WriteBatch): void {
    const user = this.users.get(name);
    if (!user) throw AuthErrors.userNotFound();
    if (role !== ROOT_ROLE && !this.roles.has(role)) throw AuthErrors.roleNotFound();
    if (user.roles.includes(role)) return; // etcd ignores a duplicate grant: no write, no revision bump
    this.putUser(name, { ...user, roles: sortedNames([...user.roles, role]) }, batch);
    this.commit(batch);
  }

  userRevokeRole(name: string, role: string, batch: WriteBatch): void {
    if (this._enabled && name === ROOT_USER && role === ROOT_ROLE) throw AuthErrors.invalidAuthMgmt();
    const user = this.users.get(name);
    if (!user) throw AuthErrors.userNotFound();
    const roles = user.roles.filter((r) => r !== role);
    if (roles.length === user.roles.length) throw AuthErrors.roleNotGranted();
    this.putUser(name, { ...user, roles }, batch);
    this.commit(batch);
  }

  roleAdd(name: string, batch: WriteBatch): void {
    if (name.length === 0) throw AuthErrors.roleEmpty();
    if (this.roles.has(name)) throw AuthErrors.roleAlreadyExist();
    this.putRole(name, { perms: [] }, batch);
    this.commit(batch);
  }

  /** Deletes a role and takes it away from every user holding it. */
  roleDelete(name: string, batch: WriteBatch): void {
    if (this._enabled && name === ROOT_ROLE) throw AuthErrors.invalidAuthMgmt();
    if (!this.roles.has(name)) throw AuthErrors.roleNotFound();
    this.roles.delete(name);
    batch.del(roleKey(name));
    // In name order, so the batch is the same on every member.
    for (const userName of sortedNames(this.users.keys())) {
      const user = this.users.get(userName) as User;
      if (!user.roles.includes(name)) continue;
      this.putUser(userName, { ...user, roles: user.roles.filter((r) => r !== name) }, batch);
    }
    this.commit(batch);
  }

  /**
   * Grants a permission to a role. etcd looks only at the first permission whose key is >= the new one's
   * key (the permissions are sorted by key): if it has the same key and range end, its type is replaced;
   * otherwise the permission is added and the list sorted by key again (stably, so equal keys keep their
   * order: Go's sort does the same for lists of up to 12). With several permissions on one key, the
   * same (key, range end) can thus be added twice, as in etcd; a revoke removes every copy.
   */
  roleGrantPermission(role: string, perm: Permission | undefined, batch: WriteBatch): void {
    if (!perm) throw AuthErrors.permissionNotGiven();
    if (!isValidPermissionRange(perm.key, perm.rangeEnd)) throw AuthErrors.invalidAuthMgmt();
    const current = this.roles.get(role);
    if (!current) throw AuthErrors.roleNotFound();
    const perms = current.perms.map(copyPerm);
    const idx = perms.findIndex((p) => Buffer.compare(p.key, perm.key) >= 0);
    if (idx >= 0 && perms[idx].key.equals(perm.key) && perms[idx].rangeEnd.equals(perm.rangeEnd)) {
      perms[idx].permType = perm.permType;
    } else {
      perms.push(copyPerm(perm));
      perms.sort((a, b) => Buffer.compare(a.key, b.key));
    }
    this.putRole(role, { perms }, batch);
    this.commit(batch);
  }

  /** Revokes the permission on exactly (key, rangeEnd) from a role. */
  roleRevokePermission(role: string, key: Buffer, rangeEnd: Buffer, batch: WriteBatch): void {
    const current = this.roles.get(role);
    if (!current) throw AuthErrors.roleNotFound();
    const perms = current.perms.filter((p) => !p.key.equals(key) || !p.rangeEnd.equals(rangeEnd));
    if (perms.length === current.perms.length) throw AuthErrors.permissionNotGranted();
    this.putRole(role, { perms: perms.map(copyPerm) }, batch);
    this.commit(batch);
  }

  // ---- reads ----

  userGet(name: string): UserInfo {
    const user = this.users.get(name);
    if (!user) throw AuthErrors.userNotFound();
    return { name, roles: [...user.roles] };
  }

  /** Every user name, in byte order. */
  userList(): string[] {
    return sortedNames(this.users.keys());
  }

  /** A role's permissions, sorted by key. The root role reports the one permission that stands for everything. */
  roleGet(name: string): Permission[] {
    const role = this.roles.get(name);
    if (!role) throw AuthErrors.roleNotFound();
    if (name === ROOT_ROLE) return [{ permType: PermissionType.READWRITE, key: Buffer.alloc(0), rangeEnd: Buffer.from([0]) }];
    return role.perms.map(copyPerm);
  }

  /** Every role name, in byte order. */
  roleList(): string[] {
    return sortedNames(this.roles.keys());
  }

  hasRole(user: string, role: string): boolean {
    return this.stored(user)?.roles.includes(role) ?? false;
  }

  /** Whether the user exists and has no password (it authenticates only by TLS certificate). */
  hasNoPassword(name: string): boolean {
    return this.stored(name)?.noPassword ?? false;
  }

  /**
   * etcd's CheckPassword, the bcrypt comparison injected as `check` (given the stored hash): returns the
   * auth revision it checked against, so the caller can detect a concurrent change (etcd retries then).
   */
  checkPassword(name: string, check: (hash: string) => boolean): number {
    if (!this._enabled) throw AuthErrors.authNotEnabled();
    const user = this.users.get(name);
    if (!user) throw AuthErrors.authFailed();
    if (user.noPassword) throw AuthErrors.noPasswordUser();
    if (!check(user.password)) throw AuthErrors.authFailed();
    return this._revision;
  }

  /** The checks etcd makes when it applies an Authenticate entry (the password was checked before). */
  checkAuthenticate(name: string): void {
    if (!this._enabled) throw AuthErrors.authNotEnabled();
    const user = this.users.get(name);
    if (!user || user.noPassword) throw AuthErrors.authFailed();
  }

  // ---- permission checks ----

  /** A stored user by name, for permission decisions: the nameless-certificate user is never one. */
  private stored(name: string): User | undefined {
    return name === NAMELESS_CERT_USER ? undefined : this.users.get(name);
  }

  /** Whether the user exists and holds the root role (the role itself need not exist, as in etcd). */
  isAdmin(user: string): boolean {
    return this.hasRole(user, ROOT_ROLE);
  }

  /** etcd's IsAdminPermitted: with auth on, only a user holding the root role may run admin requests. */
  checkAdmin(user: string | undefined): void {
    if (!this._enabled) return;
    if (!user || user === NAMELESS_CERT_USER) throw AuthErrors.userEmpty();
    const u = this.stored(user);
    if (!u) throw AuthErrors.userNotFound();
    if (!u.roles.includes(ROOT_ROLE)) throw AuthErrors.permissionDenied();
  }

  /**
   * The revision check etcd makes before a permission check, with the auth revision a request carries
   * (from its token): 0 means no user at all, an older one means users or roles changed since.
   */
  checkAuthRevision(authRevision: number): void {
    if (!this._enabled) return;
    if (authRevision === 0) throw AuthErrors.userEmpty();
    if (authRevision < this._revision) throw AuthErrors.authOldRevision();
  }

  /**
   * etcd's range permission check, a no-op with auth off. A single key (rangeEnd absent or empty) needs
   * one permitted interval holding it; a range [key, rangeEnd) (rangeEnd "\0": every key from key on) must
   * be covered entirely by the union of the user's permitted intervals of that type (READWRITE counts as
   * both). A user holding the root role passes everything; an unknown user is denied.
   */
  checkPermission(user: string, key: Buffer, rangeEnd: Buffer | undefined, type: 'read' | 'write'): void {
    if (!this._enabled) return;
    if (!this.isPermitted(user, key, rangeEnd, type)) throw AuthErrors.permissionDenied();
  }

  /** The decision of checkPermission regardless of whether auth is enabled. */
  isPermitted(user: string, key: Buffer, rangeEnd: Buffer | undefined, type: 'read' | 'write'): boolean {
    const u = this.stored(user);
    if (!u) return false;
    if (u.roles.includes(ROOT_ROLE)) return true;
    const merged = this.mergedPerms(user, u);
    const intervals = type === 'read' ? merged.read : merged.write;
    if (!rangeEnd || rangeEnd.length === 0) {
      const point = pointInterval(key);
      return intervals.some((p) => overlaps(point, p));
    }
    return covers(intervals, { begin: key, end: isOpenEnded(rangeEnd) ? Buffer.alloc(0) : rangeEnd });
  }

  // ---- internals ----

  private mergedPerms(name: string, user: User): MergedPerms {
    const cached = this.permCache.get(name);
    if (cached) return cached;
    const merged: MergedPerms = { read: [], write: [] };
    for (const roleName of user.roles) {
      const role = this.roles.get(roleName);
      if (!role) continue; // only 'root' can be granted without existing, and root never gets here
      for (const p of role.perms) {
        const ivl = permInterval(p);
        if (p.permType === PermissionType.READ || p.permType === PermissionType.READWRITE) merged.read.push(ivl);
        if (p.permType === PermissionType.WRITE || p.permType === PermissionType.READWRITE) merged.write.push(ivl);
      }
    }
    // The order an interval tree visits them in: by begin.
    const byBegin = (a: Interval, b: Interval) => compareBound(a.begin, b.begin) || compareBound(a.end, b.end);
    merged.read.sort(byBegin);
    merged.write.sort(byBegin);
    this.permCache.set(name, merged);
    return merged;
  }

  private putUser(name: string, user: User, batch: WriteBatch): void {
    this.users.set(name, user);
    batch.put(userKey(name), encodeUser(user));
  }

  private putRole(name: string, role: Role, batch: WriteBatch): void {
    this.roles.set(name, role);
    batch.put(roleKey(name), encodeRole(role));
  }

  /** etcd's commitRevision: one more auth revision, persisted with the change. Also drops the permission cache. */
  private commit(batch: WriteBatch): void {
    this._revision++;
    batch.put(KEY_REVISION, Buffer.from(JSON.stringify(this._revision)));
    this.permCache.clear();
  }
}
