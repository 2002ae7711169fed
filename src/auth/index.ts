export { AuthStore, AuthErrors, AUTH_PREFIX, PermissionType, ROOT_USER, ROOT_ROLE } from './store';
export type { Permission, PermissionTypeValue, UserInfo } from './store';
export { SimpleTokens } from './tokens';
export { NAMELESS_CERT_USER } from './context';
